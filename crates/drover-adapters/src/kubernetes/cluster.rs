//! The cluster a backup reads and a restore writes, through kube-rs: `drover_backup`'s
//! `ClusterApi` over dynamic objects, its kinds from the API server's discovery.

use async_trait::async_trait;
use drover_backup::{ClusterApi, ClusterError, ResourceKind};
use drover_core::plan::ClusterAccess;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::core::{GroupVersion, Version};
use kube::discovery::{self, ApiGroup, Scope, verbs};
use kube::{Client, Error};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::{KubeTimeouts, api_error, connect};

/// What backups and restores need granted, for a 403's message.
const BACKUP_RBAC: &str =
    "get and list on every kind it backs up, and create and update on every kind it restores (docs/backup.md)";
/// Objects per list request; the API server pages the rest with a continue token.
const PAGE: u32 = 500;

/// One region's Kubernetes cluster, as backups and restores see it.
pub struct KubeCluster {
    access: ClusterAccess,
    /// Made on first use: a plan names clusters drover may never need to reach.
    client: OnceCell<Client>,
    /// `east's cluster`, for messages.
    name: String,
    /// Groups the last discovery left out, for the backup's index and report.
    skipped: std::sync::Mutex<Vec<String>>,
}

impl KubeCluster {
    /// Lazy: connects on first use. `name` is for messages, e.g. "east's cluster".
    pub fn new(access: &ClusterAccess, name: &str) -> KubeCluster {
        KubeCluster {
            access: access.clone(),
            client: OnceCell::new(),
            name: name.to_owned(),
            skipped: Default::default(),
        }
    }

    /// Reaches the cluster through `client` (tests: a scripted or stand-in API server).
    pub fn with_client(name: &str, client: Client) -> KubeCluster {
        let client = OnceCell::new_with(Some(client));
        KubeCluster { access: ClusterAccess::InCluster, client, name: name.to_owned(), skipped: Default::default() }
    }

    async fn client(&self) -> Result<Client, ClusterError> {
        let connected =
            self.client.get_or_try_init(|| connect(&self.access, &self.name, KubeTimeouts::default())).await;
        connected.cloned().map_err(|e| ClusterError::Other(e.message))
    }

    async fn api(&self, kind: &ResourceKind, namespace: Option<&str>) -> Result<Api<DynamicObject>, ClusterError> {
        let client = self.client().await?;
        let resource = ApiResource {
            group: kind.group.clone(),
            version: kind.version.clone(),
            api_version: kind.api_version(),
            kind: kind.kind.clone(),
            plural: kind.plural.clone(),
        };
        Ok(match namespace {
            Some(ns) if kind.namespaced => Api::namespaced_with(client, ns, &resource),
            _ => Api::all_with(client, &resource),
        })
    }

    /// NotFound, AlreadyExists and Conflict as the restore tells them apart; anything else
    /// names the cluster, the call and the cause (and on a 403, what to grant). kube's error
    /// is not kept: `drover_backup::ClusterError` carries a message only, no source.
    fn error(&self, call: &str, e: Error) -> ClusterError {
        let at = |message: &str| format!("{}: {call}: {message}", self.name);
        match &e {
            Error::Api(status) if status.code == 404 => ClusterError::NotFound(at(&status.message)),
            Error::Api(status) if status.code == 409 && status.reason == "AlreadyExists" => {
                ClusterError::AlreadyExists(at(&status.message))
            }
            Error::Api(status) if status.code == 409 => ClusterError::Conflict(at(&status.message)),
            _ => ClusterError::Other(api_error(&self.name, call, e, BACKUP_RBAC).message),
        }
    }
}

/// `create ConfigMap shop/settings`, `list configmaps in shop`, `list namespaces`.
fn call(verb: &str, kind: &ResourceKind, namespace: Option<&str>, name: Option<&str>) -> String {
    match (namespace.filter(|_| kind.namespaced), name) {
        (Some(ns), Some(name)) => format!("{verb} {} {ns}/{name}", kind.kind),
        (None, Some(name)) => format!("{verb} {} {name}", kind.kind),
        (Some(ns), None) => format!("{verb} {} in {ns}", kind.plural),
        (None, None) => format!("{verb} {}", kind.plural),
    }
}

/// The object as JSON, with the apiVersion and kind list items may leave out.
fn typed(kind: &ResourceKind, object: DynamicObject) -> Result<Value, ClusterError> {
    let mut value = serde_json::to_value(object).map_err(|e| ClusterError::Other(format!("{}: {e}", kind.kind)))?;
    value["apiVersion"] = json!(kind.api_version());
    value["kind"] = json!(kind.kind);
    Ok(value)
}

fn dynamic(kind: &ResourceKind, object: Value) -> Result<DynamicObject, ClusterError> {
    serde_json::from_value(object).map_err(|e| ClusterError::Other(format!("not a {} object: {e}", kind.kind)))
}

fn crd_kind() -> ResourceKind {
    ResourceKind::new("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false)
}

/// The group's kinds a backup can take and a restore can make: listable and creatable, not subresources.
fn usable_kinds(group: &ApiGroup) -> Vec<ResourceKind> {
    let mut kinds = Vec::new();
    for (resource, caps) in group.recommended_resources() {
        let usable = caps.supports_operation(verbs::LIST) && caps.supports_operation(verbs::CREATE);
        if !usable || resource.plural.contains('/') {
            continue;
        }
        let namespaced = matches!(caps.scope, Scope::Namespaced);
        let (group, version) = (&resource.group, &resource.version);
        kinds.push(ResourceKind::new(group, version, &resource.kind, &resource.plural, namespaced));
    }
    kinds
}

#[async_trait]
impl ClusterApi for KubeCluster {
    /// Every group at its preferred version; kinds that can be listed and created, without
    /// subresources. A CRD's kind is there once the CRD is Established. A group whose discovery
    /// fails is left out with a warning; only the core group's failing fails the call.
    async fn resource_kinds(&self) -> Result<Vec<ResourceKind>, ClusterError> {
        let client = self.client().await?;
        let core = client.list_core_api_versions().await.map_err(|e| self.error("list the core API versions", e))?;
        let groups = client.list_api_groups().await.map_err(|e| self.error("list the API groups", e))?;
        // The core group (Namespaces, ConfigMaps, Secrets) is the one that must not be missing:
        // without it this would not be a backup.
        if !core.versions.iter().any(|v| v == "v1") {
            return Err(ClusterError::Other(format!("{}: the API server serves no core v1", self.name)));
        }
        let core = discovery::pinned_group(&client, &GroupVersion::gv("", "v1")).await;
        let mut kinds = usable_kinds(&core.map_err(|e| self.error("discover the core group (v1)", e))?);
        let mut skipped = Vec::new();
        // Group by group, one after another: a group that fails (an aggregated API that is down,
        // like metrics.k8s.io when metrics-server is unhealthy) costs its own kinds, not the backup.
        for group in groups.groups {
            // API servers name a preferred version; the highest-priority one stands in otherwise.
            let latest = || group.versions.into_iter().max_by_key(|v| Version::parse(&v.version).priority());
            let preferred = group.preferred_version.or_else(latest);
            let Some(preferred) = preferred else { continue };
            match discovery::pinned_group(&client, &GroupVersion::gv(&group.name, &preferred.version)).await {
                Ok(found) => kinds.extend(usable_kinds(&found)),
                Err(e) => {
                    let why = self.error(&format!("discover {}", preferred.group_version), e);
                    tracing::warn!("{why}; its objects are not in this backup");
                    skipped.push(format!("{}: {why}", preferred.group_version));
                }
            }
        }
        *self.skipped.lock().unwrap() = skipped;
        Ok(kinds)
    }

    fn skipped_groups(&self) -> Vec<String> {
        self.skipped.lock().unwrap().clone()
    }

    async fn list(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, ClusterError> {
        let api = self.api(kind, namespace).await?;
        let mut params = ListParams::default().limit(PAGE);
        if let Some(selector) = selector {
            params = params.labels(selector);
        }
        let mut objects = Vec::new();
        loop {
            let page = api.list(&params).await.map_err(|e| self.error(&call("list", kind, namespace, None), e))?;
            let next = page.metadata.continue_.clone().filter(|token| !token.is_empty());
            for object in page.items {
                objects.push(typed(kind, object)?);
            }
            match next {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(objects),
            }
        }
    }

    async fn get(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ClusterError> {
        let api = self.api(kind, namespace).await?;
        let found = api.get_opt(name).await.map_err(|e| self.error(&call("get", kind, namespace, Some(name)), e))?;
        found.map(|object| typed(kind, object)).transpose()
    }

    async fn create(&self, kind: &ResourceKind, object: Value) -> Result<Value, ClusterError> {
        let object = dynamic(kind, object)?;
        let (namespace, name) = (object.metadata.namespace.clone(), object.metadata.name.clone());
        let what = call("create", kind, namespace.as_deref(), name.as_deref());
        let api = self.api(kind, Some(namespace.as_deref().unwrap_or("default"))).await?;
        let created = api.create(&PostParams::default(), &object).await.map_err(|e| self.error(&what, e))?;
        typed(kind, created)
    }

    async fn replace(&self, kind: &ResourceKind, object: Value) -> Result<Value, ClusterError> {
        let object = dynamic(kind, object)?;
        let (namespace, name) = (object.metadata.namespace.clone(), object.metadata.name.clone().unwrap_or_default());
        let what = call("replace", kind, namespace.as_deref(), Some(&name));
        let api = self.api(kind, Some(namespace.as_deref().unwrap_or("default"))).await?;
        let replaced = api.replace(&name, &PostParams::default(), &object).await.map_err(|e| self.error(&what, e))?;
        typed(kind, replaced)
    }

    async fn crd_established(&self, name: &str) -> Result<bool, ClusterError> {
        let kind = crd_kind();
        let api = self.api(&kind, None).await?;
        let what = call("get", &kind, None, Some(name));
        let crd = api.get_opt(name).await.map_err(|e| self.error(&what, e))?;
        let crd = crd.ok_or_else(|| ClusterError::NotFound(format!("{}: {what}: no such CRD", self.name)))?;
        let conditions = crd.data["status"]["conditions"].as_array().cloned().unwrap_or_default();
        Ok(conditions.iter().any(|c| c["type"] == "Established" && c["status"] == "True"))
    }
}
