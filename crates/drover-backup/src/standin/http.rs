//! The stand-in served over the Kubernetes REST API on 127.0.0.1, enough of it for kube-rs
//! clients: discovery, list (label selectors, paging), get, create, replace, merge patch,
//! and failures as `Status` objects. `MemoryCluster` behind it does all the object work.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::MemoryCluster;
use crate::cluster::{ClusterApi, ClusterError, ResourceKind};

/// What every served kind allows (no delete, watch or subresources).
const VERBS: [&str; 5] = ["create", "get", "list", "patch", "update"];

/// A Kubernetes API server in front of a `MemoryCluster`, for as long as it lives.
pub struct ApiServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    /// Serves `cluster` over HTTP on 127.0.0.1 (a free port). Its workload controllers run
    /// from now on: a Deployment's or StatefulSet's status follows its spec.replicas.
    pub async fn start(cluster: Arc<MemoryCluster>) -> ApiServer {
        cluster.run_controllers();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port on 127.0.0.1");
        let addr = listener.local_addr().expect("a bound listener has an address");
        let app = Router::new().fallback(answer).with_state(cluster);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the stand-in API server failed");
        });
        ApiServer { addr, task }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig whose context `context` points at this server (no auth); returns its path.
    pub fn write_kubeconfig(&self, dir: &Path, context: &str) -> PathBuf {
        let path = dir.join(format!("{context}.kubeconfig"));
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {context}\n\
             clusters:\n- name: {context}\n  cluster:\n    server: {url}\n\
             contexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\n\
             users:\n- name: {context}\n  user: {{}}\n",
            url = self.url()
        );
        std::fs::write(&path, text).expect("writing the kubeconfig");
        path
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a request's path names.
enum Target {
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/api/v1` or `/apis/GROUP/VERSION`
    Resources {
        group_version: String,
        kinds: Vec<ResourceKind>,
    },
    Collection {
        kind: ResourceKind,
        namespace: Option<String>,
    },
    Object {
        kind: ResourceKind,
        namespace: Option<String>,
        name: String,
    },
}

fn route(path: &str, served: Vec<ResourceKind>) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api"] => return Some(Target::CoreVersions),
        ["apis"] => return Some(Target::Groups),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let in_version = served.into_iter().filter(|k| k.group == group && k.version == version);
    let (namespace, plural, name) = match rest {
        [] => {
            let kinds: Vec<ResourceKind> = in_version.collect();
            let group_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
            return (!kinds.is_empty()).then_some(Target::Resources { group_version, kinds });
        }
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        [plural, name] => (None, *plural, Some(*name)),
        _ => return None,
    };
    let kind = in_version.into_iter().find(|k| k.plural == plural)?;
    if namespace.is_some() && !kind.namespaced {
        return None;
    }
    let namespace = namespace.map(str::to_owned);
    Some(match name {
        Some(_) if kind.namespaced && namespace.is_none() => return None,
        Some(name) => Target::Object { kind, namespace, name: name.to_owned() },
        None => Target::Collection { kind, namespace },
    })
}

async fn answer(
    State(cluster): State<Arc<MemoryCluster>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let served = match cluster.resource_kinds().await {
        Ok(kinds) => kinds,
        Err(e) => return cluster_failure(e),
    };
    let Some(target) = route(uri.path(), served.clone()) else {
        return failure(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource");
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    match (method, target) {
        (Method::GET, Target::CoreVersions) => Json(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]
        }))
        .into_response(),
        (Method::GET, Target::Groups) => Json(groups(&served)).into_response(),
        (Method::GET, Target::Resources { group_version, kinds }) => {
            Json(resources(&group_version, &kinds)).into_response()
        }
        (Method::GET, Target::Collection { kind, namespace }) => list(&cluster, &kind, namespace, &query).await,
        (Method::GET, Target::Object { kind, namespace, name }) => {
            if kind.kind == "CustomResourceDefinition" {
                // Clients read a CRD to see whether it is Established: each read is one poll.
                let _ = cluster.crd_established(&name).await;
            }
            match cluster.get(&kind, namespace.as_deref(), &name).await {
                Ok(Some(object)) => Json(object).into_response(),
                Ok(None) => not_found(&kind, &name),
                Err(e) => cluster_failure(e),
            }
        }
        (Method::POST, Target::Collection { kind, namespace }) => {
            let object = match placed(&body, &kind, namespace.as_deref(), None) {
                Ok(object) => object,
                Err((code, reason, message)) => return failure(code, reason, message),
            };
            match cluster.create(&kind, object).await {
                Ok(created) => (StatusCode::CREATED, Json(created)).into_response(),
                Err(e) => cluster_failure(e),
            }
        }
        (Method::PUT, Target::Object { kind, namespace, name }) => {
            let object = match placed(&body, &kind, namespace.as_deref(), Some(&name)) {
                Ok(object) => object,
                Err((code, reason, message)) => return failure(code, reason, message),
            };
            match cluster.replace(&kind, object).await {
                Ok(replaced) => Json(replaced).into_response(),
                Err(e) => cluster_failure(e),
            }
        }
        (Method::PATCH, Target::Object { kind, namespace, name }) => {
            let content_type = headers.get(header::CONTENT_TYPE).and_then(|h| h.to_str().ok()).unwrap_or("");
            if !content_type.starts_with("application/merge-patch+json") {
                let message = format!("the stand-in takes only application/merge-patch+json, not {content_type:?}");
                return failure(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", message);
            }
            let patch: Value = match serde_json::from_slice(&body) {
                Ok(patch) => patch,
                Err(e) => return failure(StatusCode::BAD_REQUEST, "BadRequest", format!("the patch is not JSON: {e}")),
            };
            match cluster.patch(&kind, namespace.as_deref(), &name, &patch) {
                Ok(patched) => Json(patched).into_response(),
                Err(e) => cluster_failure(e),
            }
        }
        (method, _) => failure(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the stand-in does not allow {method} on {}", uri.path()),
        ),
    }
}

/// `{Kind}List` of the matching objects; `limit` and `continue` page through them in order.
async fn list(
    cluster: &MemoryCluster,
    kind: &ResourceKind,
    namespace: Option<String>,
    query: &HashMap<String, String>,
) -> Response {
    if query.get("fieldSelector").is_some_and(|s| !s.is_empty()) {
        return failure(StatusCode::BAD_REQUEST, "BadRequest", "the stand-in does not support field selectors");
    }
    let selector = query.get("labelSelector").map(String::as_str).filter(|s| !s.is_empty());
    let version = cluster.resource_version();
    let mut items = match cluster.list(kind, namespace.as_deref(), selector).await {
        Ok(items) => items,
        Err(e) => return cluster_failure(e),
    };
    let from: usize = query.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
    let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).filter(|&l| l > 0).unwrap_or(usize::MAX);
    let rest = items.len().saturating_sub(from);
    let mut metadata = json!({"resourceVersion": version});
    if rest > limit {
        metadata["continue"] = json!((from + limit).to_string());
    }
    let from = from.min(items.len());
    let page: Vec<Value> = items.drain(from..).take(limit).collect();
    Json(json!({
        "apiVersion": kind.api_version(), "kind": format!("{}List", kind.kind), "metadata": metadata, "items": page
    }))
    .into_response()
}

/// A refusal: the code, the reason and the message of its `Status`.
type Refusal = (StatusCode, &'static str, String);

/// The request body as an object of `kind` in the path's namespace (and with its name).
fn placed(body: &[u8], kind: &ResourceKind, namespace: Option<&str>, name: Option<&str>) -> Result<Value, Refusal> {
    let bad = |message: String| (StatusCode::BAD_REQUEST, "BadRequest", message);
    let mut object: Value = serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
    if !object.is_object() {
        return Err(bad("the body is not an object".into()));
    }
    if object.get("apiVersion").is_none() {
        object["apiVersion"] = json!(kind.api_version());
    }
    if object.get("kind").is_none() {
        object["kind"] = json!(kind.kind);
    }
    if kind.namespaced {
        let Some(namespace) = namespace else {
            return Err((StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "create it in a namespace".into()));
        };
        match object["metadata"]["namespace"].as_str() {
            None => object["metadata"]["namespace"] = json!(namespace),
            Some(ns) if ns == namespace => {}
            Some(ns) => {
                return Err(bad(format!(
                    "the namespace of the object ({ns}) does not match the namespace on the request ({namespace})"
                )));
            }
        }
    }
    if let Some(name) = name
        && object["metadata"]["name"].as_str() != Some(name)
    {
        return Err(bad(format!("the name of the object does not match the name on the request ({name})")));
    }
    Ok(object)
}

/// `APIGroupList`: every group but the core one, with its versions; the first is preferred.
fn groups(served: &[ResourceKind]) -> Value {
    let mut versions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for kind in served.iter().filter(|k| !k.group.is_empty()) {
        let known = versions.entry(kind.group.as_str()).or_default();
        if !known.contains(&kind.version.as_str()) {
            known.push(&kind.version);
        }
    }
    let groups: Vec<Value> = versions
        .into_iter()
        .map(|(group, versions)| {
            let entry = |v: &str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
            json!({
                "name": group,
                "versions": versions.iter().map(|v| entry(v)).collect::<Vec<_>>(),
                "preferredVersion": entry(versions[0]),
            })
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `APIResourceList` of one group version.
fn resources(group_version: &str, kinds: &[ResourceKind]) -> Value {
    let resources: Vec<Value> = kinds
        .iter()
        .map(|k| {
            json!({
                "name": k.plural, "singularName": k.kind.to_lowercase(), "namespaced": k.namespaced,
                "kind": k.kind, "verbs": VERBS,
            })
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

/// A `Status` failure, as kube-rs parses into `kube::Error::Api`.
fn failure(code: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message.into(), "reason": reason, "code": code.as_u16(),
    });
    (code, Json(status)).into_response()
}

fn not_found(kind: &ResourceKind, name: &str) -> Response {
    let resource = if kind.group.is_empty() { kind.plural.clone() } else { format!("{}.{}", kind.plural, kind.group) };
    failure(StatusCode::NOT_FOUND, "NotFound", format!("{resource} \"{name}\" not found"))
}

fn cluster_failure(e: ClusterError) -> Response {
    let (code, reason) = match &e {
        ClusterError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
        ClusterError::AlreadyExists(_) => (StatusCode::CONFLICT, "AlreadyExists"),
        ClusterError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
        ClusterError::Other(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
    };
    failure(code, reason, e.to_string())
}
