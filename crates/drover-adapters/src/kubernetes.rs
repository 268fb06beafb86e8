//! Kubernetes workloads as compute: the Deployments and StatefulSets a namespace and a
//! label selector choose, with the HorizontalPodAutoscalers that target them. Each workload
//! is one unit, `deployment/NAME` or `statefulset/NAME`: twins are matched by kind and name,
//! so the namespaces may differ between regions.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use drover_core::duration::format_duration;
use drover_core::error::ProviderError;
use drover_core::plan::{ClusterAccess, ComputeTarget, Plan};
use drover_core::world::{Capacity, Compute, Preflight, Size, Units};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;
use tokio::sync::OnceCell;

mod cluster;
pub use cluster::KubeCluster;

const DEFAULT_POLL: Duration = Duration::from_secs(5);

/// Deadlines on every call drover makes to a Kubernetes API server, so one that accepts
/// the connection and never answers (an overloaded control plane, a half-open link)
/// cannot hold a run: the call fails and is retried within the step's policy, and the
/// engine's step timeout is never reached.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KubeTimeouts {
    /// To open the TCP (and TLS) connection.
    pub connect: Duration,
    /// The longest silence while an answer is awaited or read.
    pub read: Duration,
    /// One API call (a list, a patch), from sending it to the whole answer.
    pub call: Duration,
}

impl Default for KubeTimeouts {
    /// The calls drover makes (list Deployments, StatefulSets and autoscalers of one
    /// namespace; patch one object) answer in well under a second on a healthy API
    /// server; pods starting are waited for by polling. So: 5 s to connect (handshakes
    /// take milliseconds), and 30 s for the answer — a slow, busy control plane's worst,
    /// many times over, and still short next to a step's `ready_timeout`.
    fn default() -> Self {
        KubeTimeouts { connect: Duration::from_secs(5), read: Duration::from_secs(30), call: Duration::from_secs(30) }
    }
}
/// What the scale step needs granted, for a 403's message.
const SCALE_RBAC: &str =
    "get, list and patch on deployments, statefulsets and horizontalpodautoscalers (docs/kubernetes.md)";
const DEPLOYMENT: &str = "deployment";
const STATEFULSET: &str = "statefulset";

/// One resource's workloads in one region.
struct Target {
    access: ClusterAccess,
    /// Made on first use: a plan names clusters drover may never need to reach.
    client: OnceCell<Client>,
    namespace: String,
    selector: Option<String>,
    ready_timeout: Duration,
    /// `apps/shop in us-east-2`, for messages.
    name: String,
}

/// A workload as read: its capacity, and the autoscaler that owns its replica count, if any.
struct Workload {
    capacity: Capacity,
    autoscaler: Option<String>,
}

/// The plan's `kubernetes` compute resources in every region, through kube-rs.
pub struct KubernetesCompute {
    /// (resource, plan region) → its workloads.
    targets: BTreeMap<(String, String), Target>,
    poll: Duration,
    timeouts: KubeTimeouts,
}

impl KubernetesCompute {
    pub fn new(plan: &Plan) -> KubernetesCompute {
        let mut targets = BTreeMap::new();
        for (name, spec) in &plan.compute {
            for (region, what) in &spec.targets {
                let ComputeTarget::Kubernetes(k) = what else { continue };
                let target = Target {
                    access: k.cluster.clone(),
                    client: OnceCell::new(),
                    namespace: k.namespace.clone(),
                    selector: k.selector.clone(),
                    ready_timeout: spec.ready_timeout,
                    name: format!("{name} in {region}"),
                };
                targets.insert((name.clone(), region.clone()), target);
            }
        }
        KubernetesCompute { targets, poll: DEFAULT_POLL, timeouts: KubeTimeouts::default() }
    }

    /// Reaches `region`'s cluster for `resource` through `client` (tests: a scripted API server).
    pub fn with_client(self, resource: &str, region: &str, client: Client) -> Self {
        if let Some(t) = self.targets.get(&(resource.to_owned(), region.to_owned())) {
            let _ = t.client.set(client);
        }
        self
    }

    /// Other deadlines for its API calls (tests: a fraction of a second).
    pub fn with_timeouts(mut self, timeouts: KubeTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// How often a resize is looked at while pods start (tests use less).
    pub fn poll_every(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    fn target(&self, resource: &str, region: &str) -> Result<&Target, ProviderError> {
        self.targets.get(&(resource.to_owned(), region.to_owned())).ok_or_else(|| {
            ProviderError::permanent(format!(
                "compute {resource}: no kubernetes target for region {region} in the plan"
            ))
        })
    }

    async fn client(&self, t: &Target) -> Result<Client, ProviderError> {
        t.client.get_or_try_init(|| connect(&t.access, &t.name, self.timeouts)).await.cloned()
    }

    /// `request` to `t`'s API server (`call` names it for messages), given up after the
    /// per-call deadline: the connector's read timeout bounds each silence, this the whole.
    async fn call<T>(
        &self,
        t: &Target,
        call: &str,
        request: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ProviderError> {
        match tokio::time::timeout(self.timeouts.call, request).await {
            Ok(answer) => answer.map_err(|e| api_error(&t.name, call, e, SCALE_RBAC)),
            Err(_) => Err(ProviderError::transient(format!(
                "{}: {call}: no answer from the Kubernetes API server within {} — check that it answers ('kubectl get --raw /readyz' with the plan's kubeconfig and context) and that nothing between drover and it drops the connection",
                t.name,
                format_duration(self.timeouts.call)
            ))),
        }
    }

    /// Every selected workload, by unit name.
    async fn workloads(&self, t: &Target) -> Result<BTreeMap<String, Workload>, ProviderError> {
        let client = self.client(t).await?;
        let params = match &t.selector {
            Some(selector) => ListParams::default().labels(selector),
            None => ListParams::default(),
        };
        let ns = t.namespace.as_str();
        let deployments =
            self.call(t, "list Deployments", Api::<Deployment>::namespaced(client.clone(), ns).list(&params)).await?;
        let statefulsets =
            self.call(t, "list StatefulSets", Api::<StatefulSet>::namespaced(client.clone(), ns).list(&params)).await?;
        // Autoscalers rarely carry their workload's labels: all of the namespace's, matched by target.
        let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client, ns);
        let autoscalers = self.call(t, "list HorizontalPodAutoscalers", hpas.list(&ListParams::default())).await?;
        let mut hpa_of: BTreeMap<String, (String, u32, u32)> = BTreeMap::new();
        for hpa in autoscalers {
            let (Some(name), spec) = (hpa.metadata.name, hpa.spec) else { continue };
            let unit = format!("{}/{}", spec.scale_target_ref.kind.to_lowercase(), spec.scale_target_ref.name);
            hpa_of.insert(unit, (name, count(spec.min_replicas.unwrap_or(1)), count(spec.max_replicas)));
        }
        let mut out = BTreeMap::new();
        let deployments = deployments.into_iter().map(|d| {
            let replicas = d.spec.replicas.unwrap_or(1);
            let ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
            (DEPLOYMENT, d.metadata.name, replicas, ready)
        });
        let statefulsets = statefulsets.into_iter().map(|s| {
            let replicas = s.spec.replicas.unwrap_or(1);
            let ready = s.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
            (STATEFULSET, s.metadata.name, replicas, ready)
        });
        for (kind, name, replicas, ready) in deployments.chain(statefulsets) {
            let Some(name) = name else { continue };
            let unit = format!("{kind}/{name}");
            let (desired, ready) = (count(replicas), count(ready));
            let workload = match hpa_of.remove(&unit) {
                Some((hpa, min, max)) => {
                    Workload { capacity: Capacity { desired, min, max, ready }, autoscaler: Some(hpa) }
                }
                None => {
                    Workload { capacity: Capacity { desired, min: desired, max: desired, ready }, autoscaler: None }
                }
            };
            out.insert(unit, workload);
        }
        Ok(out)
    }

    /// Sets one workload (and its autoscaler) to `size`. The autoscaler goes first: it would
    /// otherwise take raised replicas back before traffic arrives.
    async fn set(&self, t: &Target, unit: &str, now: &Workload, size: Size) -> Result<(), ProviderError> {
        let client = self.client(t).await?;
        let ns = t.namespace.as_str();
        let (kind, name) = unit.split_once('/').unwrap_or(("", unit));
        if let Some(hpa) = &now.autoscaler {
            // While raising, its minReplicas holds the new replicas; an undo sets back exactly what was.
            let min = if size.desired > now.capacity.desired { size.min.max(size.desired) } else { size.min };
            if (min, size.max) != (now.capacity.min, now.capacity.max) {
                let patch = json!({ "spec": { "minReplicas": min, "maxReplicas": size.max.max(min) } });
                let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns);
                let what = format!("set HorizontalPodAutoscaler {hpa}'s minReplicas");
                self.call(t, &what, hpas.patch(hpa, &PatchParams::default(), &Patch::Merge(&patch))).await?;
            }
        }
        if size.desired != now.capacity.desired {
            let patch = json!({ "spec": { "replicas": size.desired } });
            let what = format!("set {unit}'s replicas");
            let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
            match kind {
                DEPLOYMENT => self
                    .call(t, &what, Api::<Deployment>::namespaced(client, ns).patch(name, &params, &patch))
                    .await
                    .map(drop),
                STATEFULSET => self
                    .call(t, &what, Api::<StatefulSet>::namespaced(client, ns).patch(name, &params, &patch))
                    .await
                    .map(drop),
                _ => Err(ProviderError::permanent(format!("{}: {unit} is not a workload drover scales", t.name))),
            }?;
        }
        Ok(())
    }
}

#[async_trait]
impl Compute for KubernetesCompute {
    /// The plan names workloads by namespace and selector: they must select at least one
    /// Deployment or StatefulSet, or the scale step has nothing to raise (or, in the target,
    /// no twin to raise). A kubeconfig that cannot be loaded is the plan's problem too; an
    /// API server that cannot be reached or refuses is observation's to judge.
    async fn preflight(&self, resource: &str, region: &str) -> Preflight {
        let Ok(t) = self.target(resource, region) else { return Vec::new() };
        let field = format!("compute.{resource}.regions.{region}");
        if let Err(e) = self.client(t).await {
            return vec![format!("{} ({field}.cluster)", e.message)];
        }
        match self.workloads(t).await {
            Ok(found) if found.is_empty() => {
                let selected = match &t.selector {
                    Some(selector) => format!(" matching selector '{selector}'"),
                    None => String::new(),
                };
                vec![format!(
                    "{}: no Deployment or StatefulSet{selected} in namespace '{}' — check {field}.namespace and {field}.selector",
                    t.name, t.namespace
                )]
            }
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::debug!("preflight of {}: not judged: {}", t.name, e.message);
                Vec::new()
            }
        }
    }

    async fn capacity(&self, resource: &str, region: &str) -> Result<Units, ProviderError> {
        let t = self.target(resource, region)?;
        Ok(self.workloads(t).await?.into_iter().map(|(unit, w)| (unit, w.capacity)).collect())
    }

    async fn resize(&self, resource: &str, region: &str, sizes: &BTreeMap<String, Size>) -> Result<(), ProviderError> {
        let t = self.target(resource, region)?;
        let now = self.workloads(t).await?;
        let missing: Vec<&str> = sizes.keys().filter(|u| !now.contains_key(*u)).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(ProviderError::permanent(format!(
                "{}: no {} in namespace {} — check the selector, or deploy it, then resume",
                t.name,
                missing.join(", "),
                t.namespace
            )));
        }
        for (unit, &size) in sizes {
            self.set(t, unit, &now[unit], size).await?;
        }
        let deadline = Instant::now() + t.ready_timeout;
        // What the last look that came back found: named when the wait ends on a look cut
        // at the deadline (the API server slow to answer while pods start).
        let mut seen: Vec<String> = Vec::new();
        loop {
            let not_ready: Vec<String> = match crate::deadline::before(deadline, self.workloads(t)).await {
                Some(Ok(now)) => sizes
                    .iter()
                    .filter_map(|(unit, size)| {
                        let ready = now.get(unit).map_or(0, |w| w.capacity.ready);
                        (ready < size.desired).then(|| format!("{unit} {ready}/{} ready", size.desired))
                    })
                    .collect(),
                // A hiccup of the API server while pods start is no reason to give up the wait.
                Some(Err(e)) if e.retryable() => vec![e.message],
                Some(Err(e)) => return Err(e),
                // A look still out at the deadline ends the wait.
                None if seen.is_empty() => {
                    vec!["the API server did not answer the last look before the deadline".to_owned()]
                }
                None => std::mem::take(&mut seen),
            };
            if not_ready.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::permanent(format!(
                    "{}: not ready within ready_timeout {}: {} — see 'kubectl -n {} get pods' and their events, then resume",
                    t.name,
                    format_duration(t.ready_timeout),
                    not_ready.join(", "),
                    t.namespace
                )));
            }
            seen = not_ready;
            tokio::time::sleep(self.poll).await;
        }
    }
}

/// Replica counts are never negative; the API's i32 says otherwise only in theory.
fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// `~/x` is `$HOME/x`, as in a shell: the plan writes kubeconfig paths that way.
fn expand_home(path: &std::path::Path) -> std::path::PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => std::path::PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

pub(crate) async fn connect(
    access: &ClusterAccess,
    what: &str,
    timeouts: KubeTimeouts,
) -> Result<Client, ProviderError> {
    let mut config = match access {
        ClusterAccess::InCluster => Config::incluster().map_err(|e| {
            ProviderError::permanent(format!(
                "{what}: no in-cluster Kubernetes config ({e}) — is drover running in a pod with a service account?"
            ))
            .with_source(e)
        })?,
        ClusterAccess::Kubeconfig { path, context } => {
            let options = KubeConfigOptions { context: context.clone(), ..KubeConfigOptions::default() };
            let config = match path {
                Some(path) => match Kubeconfig::read_from(expand_home(path)) {
                    Ok(file) => Config::from_custom_kubeconfig(file, &options).await,
                    Err(e) => Err(e),
                },
                None => Config::from_kubeconfig(&options).await,
            };
            config.map_err(|e| {
                ProviderError::permanent(format!(
                    "{what}: cannot load the kubeconfig ({e}) — check the plan's cluster.kubeconfig and cluster.context"
                ))
                .with_source(e)
            })?
        }
    };
    config.connect_timeout = Some(timeouts.connect);
    config.read_timeout = Some(timeouts.read);
    config.write_timeout = Some(timeouts.read);
    // The read timeout then counts from when a request is sent, not from when its pooled
    // connection went idle (which would cut a healthy answer on a connection idle a while).
    config.reset_reader_on_write = true;
    Client::try_from(config)
        .map_err(|e| ProviderError::permanent(format!("{what}: cannot make a Kubernetes client: {e}")).with_source(e))
}

/// Names the cluster, the call and the cause; says whether retrying can help, and on a 403
/// what to grant (`rbac`: "get and list on ..."). kube's error is kept as the source.
pub(crate) fn api_error(what: &str, call: &str, e: kube::Error, rbac: &str) -> ProviderError {
    let error = match &e {
        kube::Error::Api(status) => {
            let code = status.code;
            let message = format!("{what}: {call}: {} ({code} {})", status.message, status.reason);
            match code {
                403 => ProviderError::permanent(format!("{message} — grant drover's identity {rbac}")),
                404 => ProviderError::permanent(format!("{message} — check the plan's namespace")),
                // A conflicting write or a busy or restarting API server: trying again is the fix.
                409 | 429 | 500.. => ProviderError::transient(message),
                _ => ProviderError::permanent(message),
            }
        }
        other => ProviderError::transient(format!("{what}: {call}: {other}")),
    };
    error.with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_names_the_rbac_to_grant_and_is_not_retried() {
        let status = kube::core::Status::failure("deployments.apps is forbidden", "Forbidden").with_code(403);
        let e = api_error("apps in west", "list Deployments", kube::Error::Api(Box::new(status)), SCALE_RBAC);
        assert!(!e.retryable());
        assert!(std::error::Error::source(&e).is_some_and(|s| s.is::<kube::Error>()));
        assert!(
            e.message
                .starts_with("apps in west: list Deployments: deployments.apps is forbidden (403 Forbidden) — grant")
        );
    }
}
