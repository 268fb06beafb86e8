//! The few Kubernetes API calls backup and restore make. A kube-backed implementation
//! lives behind the `kubernetes` feature elsewhere; tests use the in-memory stand-in.

use async_trait::async_trait;
use serde_json::Value;

/// A kind of resource the API server serves, as discovery reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceKind {
    /// Empty for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl ResourceKind {
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> ResourceKind {
        ResourceKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
        }
    }

    /// `group/version`, or `version` for the core group, as `apiVersion` spells it.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The object changed since it was read (its resourceVersion is stale).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("{0}")]
    Other(String),
}

#[async_trait]
pub trait ClusterApi: Send + Sync {
    /// Every listable kind, custom resources included, at its preferred version.
    async fn resource_kinds(&self) -> Result<Vec<ResourceKind>, ClusterError>;

    /// The API groups the last `resource_kinds` could not discover, each with why.
    fn skipped_groups(&self) -> Vec<String> {
        Vec::new()
    }

    /// The objects of `kind` (in `namespace`, or everywhere), matching the label selector.
    async fn list(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, ClusterError>;

    async fn get(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ClusterError>;

    async fn create(&self, kind: &ResourceKind, object: Value) -> Result<Value, ClusterError>;

    /// Replaces the object; `metadata.resourceVersion` must be the current one.
    async fn replace(&self, kind: &ResourceKind, object: Value) -> Result<Value, ClusterError>;

    /// Whether the CustomResourceDefinition `name` has the condition Established=True.
    async fn crd_established(&self, name: &str) -> Result<bool, ClusterError>;
}
