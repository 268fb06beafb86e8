//! An in-memory stand-in for a Kubernetes API server, for tests and the benchmark (no API
//! server can be installed where CI runs). It keeps what a restore depends on: objects
//! stored by kind, namespace and name; resourceVersion checked on replace; namespaced
//! objects refused in a namespace that does not exist; and a CRD's kind served only once
//! the CRD is Established, which takes a few polls, as on a real server. `http` serves it
//! over the Kubernetes REST API, for kube-rs clients.

pub mod http;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::cluster::{ClusterApi, ClusterError, ResourceKind};

type Key = (String, String, String, String); // group, plural, namespace ("" when cluster-scoped), name

struct Crd {
    kind: ResourceKind,
    /// Polls of `crd_established` left before it is.
    polls_left: u32,
}

#[derive(Default)]
struct Inner {
    builtin: Vec<ResourceKind>,
    crds: HashMap<String, Crd>,
    objects: BTreeMap<Key, Value>,
    version: u64,
    log: Vec<String>,
    /// Whether workloads' status follows their spec, as the controllers of a running cluster make it.
    controllers: bool,
}

pub struct MemoryCluster {
    inner: Mutex<Inner>,
    /// How many polls a newly created CRD takes to become Established.
    establish_after: u32,
}

impl Default for MemoryCluster {
    fn default() -> Self {
        MemoryCluster::new()
    }
}

/// The CustomResourceDefinition of `widgets.example.com` (kind Widget, namespaced, v1) as a
/// client sends it; `MemoryCluster::seed` makes it Established.
pub fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [{"name": "v1", "served": true, "storage": true}]}
    })
}

/// Benchmark object `i` in namespace `bench`: a small ConfigMap when even, a Secret when odd.
pub fn bench_object(i: usize) -> Value {
    let (kind, data) = if i.is_multiple_of(2) {
        ("ConfigMap", json!({"setting": format!("value-{i}"), "mode": "live"}))
    } else {
        ("Secret", json!({"token": format!("c2VjcmV0LXt7aX19LXt{i:08}")}))
    };
    json!({"apiVersion": "v1", "kind": kind,
        "metadata": {"name": format!("obj-{i:06}"), "namespace": "bench", "labels": {"app": "bench"}}, "data": data})
}

/// The built-in kinds a cluster serves (a subset, enough for backups of applications).
pub fn builtin_kinds() -> Vec<ResourceKind> {
    let k = ResourceKind::new;
    vec![
        k("", "v1", "Namespace", "namespaces", false),
        k("", "v1", "ConfigMap", "configmaps", true),
        k("", "v1", "Secret", "secrets", true),
        k("", "v1", "ServiceAccount", "serviceaccounts", true),
        k("", "v1", "Service", "services", true),
        k("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true),
        k("", "v1", "PersistentVolume", "persistentvolumes", false),
        k("", "v1", "Pod", "pods", true),
        k("", "v1", "Event", "events", true),
        k("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
        k("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true),
        k("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false),
        k("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false),
        k("storage.k8s.io", "v1", "StorageClass", "storageclasses", false),
        k("apps", "v1", "Deployment", "deployments", true),
        k("apps", "v1", "StatefulSet", "statefulsets", true),
        k("apps", "v1", "DaemonSet", "daemonsets", true),
        k("apps", "v1", "ReplicaSet", "replicasets", true),
        k("batch", "v1", "Job", "jobs", true),
        k("batch", "v1", "CronJob", "cronjobs", true),
        k("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true),
        k("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false),
    ]
}

const CRD_GROUP: &str = "apiextensions.k8s.io";

fn is_workload(group: &str, plural: &str) -> bool {
    group == "apps" && matches!(plural, "deployments" | "statefulsets")
}

/// What the workload controllers make of a Deployment or StatefulSet: every replica ready.
fn reconcile_workload(object: &mut Value) {
    let replicas = object["spec"].get("replicas").and_then(Value::as_u64).unwrap_or(1);
    for field in ["replicas", "readyReplicas", "availableReplicas"] {
        object["status"][field] = json!(replicas);
    }
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// Whether `labels` satisfy a label selector of `k=v`, `k==v`, `k!=v`, `k` and `!k` terms.
fn selects(selector: &str, object: &Value) -> bool {
    let labels = object.get("metadata").and_then(|m| m.get("labels"));
    let label = |k: &str| labels.and_then(|l| l.get(k.trim())).and_then(Value::as_str);
    selector.split(',').filter(|t| !t.trim().is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            label(k) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once('=') {
            label(k.trim_end_matches('=')) == Some(v.trim_start_matches('=').trim())
        } else if let Some(k) = term.trim().strip_prefix('!') {
            label(k).is_none()
        } else {
            label(term).is_some()
        }
    })
}

/// Merges `patch` into `target` as RFC 7386 (JSON merge patch) says: objects merge key by
/// key, `null` removes a key, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in fields {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.as_str()).or_insert(Value::Null), value);
        }
    }
}

/// The kind a CRD object defines, at its storage version.
fn crd_kind(crd: &Value) -> Option<ResourceKind> {
    let spec = crd.get("spec")?;
    let versions = spec.get("versions")?.as_array()?;
    let version = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .or(versions.first())?
        .get("name")?
        .as_str()?;
    let names = spec.get("names")?;
    Some(ResourceKind::new(
        spec.get("group")?.as_str()?,
        version,
        names.get("kind")?.as_str()?,
        names.get("plural")?.as_str()?,
        spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
    ))
}

impl MemoryCluster {
    pub fn new() -> MemoryCluster {
        MemoryCluster::with_establish_after(2)
    }

    pub fn with_establish_after(polls: u32) -> MemoryCluster {
        let inner = Inner { builtin: builtin_kinds(), ..Inner::default() };
        MemoryCluster { inner: Mutex::new(inner), establish_after: polls }
    }

    /// Puts `object` in place as if it had long existed (a seeded CRD is already
    /// Established), with the fields a server adds.
    pub fn seed(&self, object: Value) {
        let mut inner = self.inner.lock().unwrap();
        let kind = inner.kind_of(&object).unwrap_or_else(|| panic!("no kind serves {object}"));
        if kind.kind == "CustomResourceDefinition" {
            let defined = crd_kind(&object).expect("a CRD with group, names and versions");
            inner.crds.insert(meta_str(&object, "name").unwrap().to_owned(), Crd { kind: defined, polls_left: 0 });
        }
        let name = meta_str(&object, "name").unwrap_or_default().to_owned();
        let crd = kind.kind == "CustomResourceDefinition";
        inner.store(&kind, object);
        if crd {
            inner.set_established(&name, true);
        }
    }

    /// Makes workloads' status follow their spec from now on, as a running cluster's
    /// controllers do: a Deployment's or StatefulSet's replicas are all ready at once.
    pub fn run_controllers(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.controllers = true;
        let workloads: Vec<Key> = inner.objects.keys().filter(|(g, p, _, _)| is_workload(g, p)).cloned().collect();
        for key in workloads {
            let object = inner.objects.get_mut(&key).expect("listed above");
            reconcile_workload(object);
        }
    }

    /// The latest resourceVersion, as a list reports it.
    pub fn resource_version(&self) -> String {
        self.inner.lock().unwrap().version.to_string()
    }

    /// Merge-patches one object (RFC 7386, as `kubectl patch --type merge`); a
    /// `metadata.resourceVersion` in the patch must be the current one.
    pub fn patch(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ClusterError> {
        let mut inner = self.inner.lock().unwrap();
        inner.check_served(kind)?;
        let ns = if kind.namespaced { namespace.unwrap_or("default") } else { "" };
        let key = (kind.group.clone(), kind.plural.clone(), ns.to_owned(), name.to_owned());
        let label = format!("{} {ns}/{name}", kind.kind);
        let mut object = inner.objects.get(&key).cloned().ok_or_else(|| ClusterError::NotFound(label.clone()))?;
        let wanted = patch.get("metadata").and_then(|m| m.get("resourceVersion"));
        if wanted.is_some_and(|v| Some(v) != object["metadata"].get("resourceVersion")) {
            return Err(ClusterError::Conflict(format!("{label}: the object has been modified")));
        }
        merge_patch(&mut object, patch);
        // The patch cannot move the object.
        object["metadata"]["name"] = json!(name);
        if kind.namespaced {
            object["metadata"]["namespace"] = json!(ns);
        }
        inner.log.push(format!("patch {label}"));
        Ok(inner.store(kind, object))
    }

    /// The objects of the kind with `plural`, as stored.
    pub fn objects(&self, plural: &str) -> Vec<Value> {
        let inner = self.inner.lock().unwrap();
        inner.objects.iter().filter(|((_, p, _, _), _)| p == plural).map(|(_, v)| v.clone()).collect()
    }

    /// One object, by plural, namespace ("" for cluster-scoped) and name.
    pub fn object(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let inner = self.inner.lock().unwrap();
        inner
            .objects
            .iter()
            .find(|((_, p, n, m), _)| p == plural && n == namespace && m == name)
            .map(|(_, v)| v.clone())
    }

    /// Makes every CRD Established now, as a server that finally caught up.
    pub fn establish_all(&self) {
        let mut inner = self.inner.lock().unwrap();
        let names: Vec<String> = inner.crds.iter().filter(|(_, c)| c.polls_left > 0).map(|(n, _)| n.clone()).collect();
        for name in names {
            inner.crds.get_mut(&name).unwrap().polls_left = 0;
            inner.set_established(&name, true);
            inner.log.push(format!("established {name}"));
        }
    }

    /// What was done, in order: `create KIND ns/name`, `replace ...`, `established CRD`.
    pub fn log(&self) -> Vec<String> {
        self.inner.lock().unwrap().log.clone()
    }
}

impl Inner {
    fn served(&self) -> Vec<ResourceKind> {
        let mut kinds = self.builtin.clone();
        kinds.extend(self.crds.values().filter(|c| c.polls_left == 0).map(|c| c.kind.clone()));
        kinds
    }

    fn kind_of(&self, object: &Value) -> Option<ResourceKind> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        self.served().into_iter().find(|k| k.api_version() == api_version && k.kind == kind)
    }

    fn key(kind: &ResourceKind, object: &Value) -> Key {
        let ns = if kind.namespaced { meta_str(object, "namespace").unwrap_or("default") } else { "" };
        (kind.group.clone(), kind.plural.clone(), ns.to_owned(), meta_str(object, "name").unwrap_or("").to_owned())
    }

    /// Stores `object` with a new resourceVersion and the fields a server adds.
    fn store(&mut self, kind: &ResourceKind, mut object: Value) -> Value {
        self.version += 1;
        let key = Self::key(kind, &object);
        let meta = object.as_object_mut().unwrap().entry("metadata").or_insert_with(|| json!({}));
        let meta = meta.as_object_mut().unwrap();
        meta.insert("resourceVersion".into(), json!(self.version.to_string()));
        meta.entry("uid").or_insert_with(|| json!(format!("uid-{}", self.version)));
        meta.entry("creationTimestamp").or_insert_with(|| json!("2026-01-01T00:00:00Z"));
        meta.insert("managedFields".into(), json!([{"manager": "stand-in"}]));
        if self.controllers && is_workload(&kind.group, &kind.plural) {
            reconcile_workload(&mut object);
        }
        self.objects.insert(key, object.clone());
        object
    }

    /// Records in the CRD's status whether it is Established, as clients read it.
    fn set_established(&mut self, name: &str, established: bool) {
        let key = (CRD_GROUP.to_owned(), "customresourcedefinitions".to_owned(), String::new(), name.to_owned());
        if let Some(crd) = self.objects.get_mut(&key) {
            let status = if established { "True" } else { "False" };
            crd["status"]["conditions"] = json!([{"type": "Established", "status": status}]);
        }
    }

    fn check_served(&self, kind: &ResourceKind) -> Result<(), ClusterError> {
        if self.served().iter().any(|k| k == kind) {
            Ok(())
        } else {
            Err(ClusterError::NotFound(format!("the server does not serve {}/{}", kind.api_version(), kind.plural)))
        }
    }
}

#[async_trait]
impl ClusterApi for MemoryCluster {
    async fn resource_kinds(&self) -> Result<Vec<ResourceKind>, ClusterError> {
        Ok(self.inner.lock().unwrap().served())
    }

    async fn list(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, ClusterError> {
        let inner = self.inner.lock().unwrap();
        inner.check_served(kind)?;
        Ok(inner
            .objects
            .iter()
            .filter(|((g, p, ns, _), _)| *g == kind.group && *p == kind.plural && namespace.is_none_or(|n| n == ns))
            .filter(|(_, v)| selector.is_none_or(|s| selects(s, v)))
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn get(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ClusterError> {
        let inner = self.inner.lock().unwrap();
        inner.check_served(kind)?;
        let key = (kind.group.clone(), kind.plural.clone(), namespace.unwrap_or("").to_owned(), name.to_owned());
        Ok(inner.objects.get(&key).cloned())
    }

    async fn create(&self, kind: &ResourceKind, object: Value) -> Result<Value, ClusterError> {
        let mut inner = self.inner.lock().unwrap();
        inner.check_served(kind)?;
        let key = Inner::key(kind, &object);
        let label = format!("{} {}/{}", kind.kind, key.2, key.3);
        if meta_str(&object, "resourceVersion").is_some() {
            return Err(ClusterError::Other(format!(
                "{label}: resourceVersion should not be set on objects to be created"
            )));
        }
        if inner.objects.contains_key(&key) {
            return Err(ClusterError::AlreadyExists(label));
        }
        let namespace = (String::new(), "namespaces".to_owned(), String::new(), key.2.clone());
        if kind.namespaced && !inner.objects.contains_key(&namespace) {
            return Err(ClusterError::NotFound(format!("namespace {} (creating {label})", key.2)));
        }
        if kind.kind == "CustomResourceDefinition" {
            let defined = crd_kind(&object).ok_or_else(|| ClusterError::Other(format!("{label}: invalid CRD")))?;
            inner.crds.insert(key.3.clone(), Crd { kind: defined, polls_left: self.establish_after });
        }
        inner.log.push(format!("create {label}"));
        let created = inner.store(kind, object);
        if kind.kind == "CustomResourceDefinition" {
            let established = inner.crds.get(&key.3).is_some_and(|c| c.polls_left == 0);
            inner.set_established(&key.3, established);
            return Ok(inner.objects[&key].clone());
        }
        Ok(created)
    }

    async fn replace(&self, kind: &ResourceKind, object: Value) -> Result<Value, ClusterError> {
        let mut inner = self.inner.lock().unwrap();
        inner.check_served(kind)?;
        let key = Inner::key(kind, &object);
        let label = format!("{} {}/{}", kind.kind, key.2, key.3);
        let current = inner.objects.get(&key).ok_or_else(|| ClusterError::NotFound(label.clone()))?;
        if meta_str(current, "resourceVersion") != meta_str(&object, "resourceVersion") {
            return Err(ClusterError::Conflict(format!("{label}: the object has been modified")));
        }
        inner.log.push(format!("replace {label}"));
        Ok(inner.store(kind, object))
    }

    async fn crd_established(&self, name: &str) -> Result<bool, ClusterError> {
        let mut inner = self.inner.lock().unwrap();
        let crd = inner.crds.get_mut(name).ok_or_else(|| ClusterError::NotFound(format!("CRD {name}")))?;
        if crd.polls_left == 0 {
            return Ok(true);
        }
        crd.polls_left -= 1;
        if crd.polls_left == 0 {
            inner.set_established(name, true);
            inner.log.push(format!("established {name}"));
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        assert!(selects("app=web", &o));
        assert!(selects("app==web,tier", &o));
        assert!(selects("app!=db", &o));
        assert!(!selects("app=db", &o));
        assert!(!selects("missing", &o));
        assert!(selects("!missing,tier!=back", &o));
        assert!(!selects("!app", &o));
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]});
        merge_patch(&mut target, &json!({"a": "z", "c": {"f": null}, "list": [3], "new": {"x": 1}}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}, "list": [3], "new": {"x": 1}}));
    }
}
