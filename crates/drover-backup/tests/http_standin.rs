//! The stand-in's HTTP front, through plain HTTP: failures are `Status` objects a
//! Kubernetes client parses, replace refuses a stale resourceVersion, merge patches apply,
//! and workloads' status follows their replicas.

use std::sync::Arc;

use drover_backup::standin::http::ApiServer;
use drover_backup::standin::{MemoryCluster, widget_crd};
use serde_json::{Value, json};

const CONFIGMAPS: &str = "/api/v1/namespaces/shop/configmaps";

async fn server() -> (Arc<MemoryCluster>, ApiServer, reqwest::Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = Arc::new(MemoryCluster::new());
    cluster.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    let server = ApiServer::start(cluster.clone()).await;
    (cluster, server, reqwest::Client::new())
}

async fn body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn assert_status(body: &Value, code: u16, reason: &str) {
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["apiVersion"], "v1", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[tokio::test]
async fn failures_are_status_objects() {
    let (_cluster, server, http) = server().await;
    let url = server.url();
    let settings =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "live"}});

    let (code, created) = body(http.post(format!("{url}{CONFIGMAPS}")).json(&settings).send().await.unwrap()).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["namespace"], "shop");

    let (code, again) = body(http.post(format!("{url}{CONFIGMAPS}")).json(&settings).send().await.unwrap()).await;
    assert_eq!(code, 409);
    assert_status(&again, 409, "AlreadyExists");

    let elsewhere = format!("{url}/api/v1/namespaces/gone/configmaps");
    let (code, missing_ns) = body(http.post(elsewhere).json(&settings).send().await.unwrap()).await;
    assert_eq!(code, 404);
    assert_status(&missing_ns, 404, "NotFound");
    assert!(missing_ns["message"].as_str().unwrap().contains("namespace gone"), "{missing_ns}");

    let (code, absent) = body(http.get(format!("{url}{CONFIGMAPS}/nope")).send().await.unwrap()).await;
    assert_eq!(code, 404);
    assert_status(&absent, 404, "NotFound");
    assert_eq!(absent["message"], "configmaps \"nope\" not found");

    let (code, unknown) = body(http.get(format!("{url}/apis/example.com/v1/widgets")).send().await.unwrap()).await;
    assert_eq!(code, 404);
    assert_status(&unknown, 404, "NotFound");

    let strategic = http
        .patch(format!("{url}{CONFIGMAPS}/settings"))
        .header("content-type", "application/strategic-merge-patch+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (code, refused) = body(strategic).await;
    assert_eq!(code, 415);
    assert_status(&refused, 415, "UnsupportedMediaType");
}

#[tokio::test]
async fn replace_with_a_stale_resource_version_conflicts() {
    let (cluster, server, http) = server().await;
    let url = server.url();
    let settings =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "live"}});
    let (_, created) = body(http.post(format!("{url}{CONFIGMAPS}")).json(&settings).send().await.unwrap()).await;

    let mut first = created.clone();
    first["data"]["mode"] = json!("first");
    let (code, replaced) =
        body(http.put(format!("{url}{CONFIGMAPS}/settings")).json(&first).send().await.unwrap()).await;
    assert_eq!(code, 200, "{replaced}");
    assert_ne!(replaced["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);

    // A second writer still holding the old resourceVersion loses.
    let mut stale = created;
    stale["data"]["mode"] = json!("second");
    let (code, conflict) =
        body(http.put(format!("{url}{CONFIGMAPS}/settings")).json(&stale).send().await.unwrap()).await;
    assert_eq!(code, 409);
    assert_status(&conflict, 409, "Conflict");
    assert_eq!(cluster.object("configmaps", "shop", "settings").unwrap()["data"]["mode"], "first");
}

#[tokio::test]
async fn lists_select_by_label_and_page() {
    let (cluster, server, http) = server().await;
    for (name, labels) in [("a", json!({"app": "shop"})), ("b", json!({"app": "shop", "tier": "db"})), ("c", json!({}))]
    {
        cluster.seed(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "shop", "labels": labels}}));
    }
    let names = |list: &Value| -> Vec<String> {
        list["items"].as_array().unwrap().iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_owned()).collect()
    };
    let get = |query: &str| http.get(format!("{}{CONFIGMAPS}?{query}", server.url())).send();
    for (selector, expected) in [
        ("app%3Dshop", vec!["a", "b"]),
        ("app%3D%3Dshop%2Ctier", vec!["b"]),
        ("tier%21%3Ddb", vec!["a", "c"]),
        ("%21app", vec!["c"]),
    ] {
        let (code, list) = body(get(&format!("labelSelector={selector}")).await.unwrap()).await;
        assert_eq!(code, 200);
        assert_eq!((list["kind"].as_str(), list["apiVersion"].as_str()), (Some("ConfigMapList"), Some("v1")));
        assert!(list["metadata"]["resourceVersion"].is_string());
        assert_eq!(names(&list), expected, "{selector}");
    }
    let (_, first) = body(get("limit=2").await.unwrap()).await;
    assert_eq!(names(&first), ["a", "b"]);
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    let (_, second) = body(get(&format!("limit=2&continue={token}")).await.unwrap()).await;
    assert_eq!(names(&second), ["c"]);
    assert!(second["metadata"].get("continue").is_none());
}

#[tokio::test]
async fn merge_patch_scales_a_deployment_and_its_status_follows() {
    let (cluster, server, http) = server().await;
    cluster.seed(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"}, "spec": {"replicas": 1, "template": {}}}));
    let path = format!("{}/apis/apps/v1/namespaces/shop/deployments/web", server.url());
    let (_, before) = body(http.get(&path).send().await.unwrap()).await;
    assert_eq!(before["status"]["readyReplicas"], 1, "the controllers run behind the HTTP front");

    let patch = http
        .patch(&path)
        .header("content-type", "application/merge-patch+json")
        .body(json!({"spec": {"replicas": 3}}).to_string())
        .send()
        .await
        .unwrap();
    let (code, patched) = body(patch).await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["spec"]["template"], json!({}), "a merge patch keeps what it does not name");
    for field in ["replicas", "readyReplicas", "availableReplicas"] {
        assert_eq!(patched["status"][field], 3, "{field}");
    }
    assert!(cluster.log().contains(&"patch Deployment shop/web".to_string()));
}

#[tokio::test]
async fn discovery_serves_a_crd_kind_once_established() {
    let (_cluster, server, http) = server().await;
    let url = server.url();
    let crd = widget_crd();
    let crds = format!("{url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions");
    let (code, _) = body(http.post(&crds).json(&crd).send().await.unwrap()).await;
    assert_eq!(code, 201);
    let group_names = |list: &Value| -> Vec<String> {
        list["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap().to_owned()).collect()
    };
    let (_, groups) = body(http.get(format!("{url}/apis")).send().await.unwrap()).await;
    assert!(!group_names(&groups).contains(&"example.com".to_string()));

    // Each read of the CRD is a poll; the stand-in takes two to establish it.
    let (_, first) = body(http.get(format!("{crds}/widgets.example.com")).send().await.unwrap()).await;
    assert_eq!(first["status"]["conditions"][0], json!({"type": "Established", "status": "False"}));
    let (_, second) = body(http.get(format!("{crds}/widgets.example.com")).send().await.unwrap()).await;
    assert_eq!(second["status"]["conditions"][0], json!({"type": "Established", "status": "True"}));

    let (_, groups) = body(http.get(format!("{url}/apis")).send().await.unwrap()).await;
    let example = groups["groups"].as_array().unwrap().iter().find(|g| g["name"] == "example.com").unwrap();
    assert_eq!(example["preferredVersion"], json!({"groupVersion": "example.com/v1", "version": "v1"}));
    let (_, resources) = body(http.get(format!("{url}/apis/example.com/v1")).send().await.unwrap()).await;
    assert_eq!(resources["kind"], "APIResourceList");
    assert_eq!(resources["resources"][0]["name"], "widgets");
    assert_eq!(resources["resources"][0]["kind"], "Widget");
    assert_eq!(resources["resources"][0]["namespaced"], true);
    let (_, core) = body(http.get(format!("{url}/api")).send().await.unwrap()).await;
    assert_eq!(core["versions"], json!(["v1"]));
}
