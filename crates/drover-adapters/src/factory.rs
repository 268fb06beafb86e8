//! The one place a plan becomes providers: each database, traffic, compute and check
//! kind the plan names is built here, with the secrets it references. The cargo features
//! (`aws`, `kubernetes`) that leave provider kinds out of a build are decided here too, so
//! the binary only opens its store and calls `build`; adding a provider kind changes this
//! file, not the front ends.

use std::collections::BTreeMap;
use std::sync::Arc;

use drover_core::clock::SystemClock;
use drover_core::engine::Providers;
use drover_core::error::ProviderError;
use drover_core::plan::{ComputeApi, DatabaseSpec, Plan, StepAction, TrafficSpec};
use drover_core::secret::{Secret, SecretRef, SecretSource};
use drover_core::world::{Compute, Database, NoCompute, Size, Traffic, Units};

use crate::hooks::HookRunner;
use crate::notify::{WebhookNotifier, WebhookSecrets};
use crate::postgres::{PostgresConfig, PostgresDatabase, PostgresMemberConfig};
use crate::probe::CheckProber;
use crate::rfc2136::Rfc2136Traffic;

/// Why the providers for a plan cannot be built: a secret that cannot be read, a member or
/// webhook that is not usable, a kind this build leaves out. The message names the plan
/// field; it is always the plan's or the environment's to fix (bad input, nothing changed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// Resolves one of the plan's secret references; an error names the field it is for
/// (`database.members.east: environment variable PG_EAST is not set`).
pub fn secret(secrets: &dyn SecretSource, reference: &SecretRef, field: &str) -> Result<Secret, BuildError> {
    secrets.resolve(reference).map_err(|e| BuildError(format!("{field}: {e}")))
}

/// The providers one plan names, built and owned; `providers()` lends them to the engine.
pub struct Adapters {
    /// Chosen by the plan's `database.kind`.
    database: Box<dyn Database>,
    /// Chosen by the plan's `traffic.kind`.
    traffic: Arc<dyn Traffic>,
    /// The plan's compute resources (node groups, Auto Scaling groups).
    compute: Box<dyn Compute>,
    prober: Arc<CheckProber>,
    pub notifier: WebhookNotifier,
    /// The plan's own `http` and `exec` steps.
    hooks: HookRunner,
}

/// Builds every provider `plan` names, resolving its secrets through `secrets`. Each
/// provider kind a build leaves out (cargo features `aws`, `kubernetes`) is refused here,
/// naming the plan field that asks for it.
pub fn build(plan: &Plan, secrets: &dyn SecretSource) -> Result<Adapters, BuildError> {
    let mut dsns = BTreeMap::new();
    if let Some(pg) = plan.postgres() {
        for (region, member) in &pg.members {
            dsns.insert(region.clone(), secret(secrets, &member.dsn, &format!("database.members.{region}"))?);
        }
    }
    let mut hooks = BTreeMap::new();
    for (name, hook) in &plan.notify.webhooks {
        let field = format!("notify.webhooks.{name}");
        let url = hook.url.resolve(secrets).map_err(|e| BuildError(format!("{field}: {e}")))?;
        let routing_key =
            hook.routing_key.as_ref().map(|r| secret(secrets, r, &format!("{field}.routing_key"))).transpose()?;
        hooks.insert(name.clone(), WebhookSecrets { url, routing_key });
    }
    let notifier = WebhookNotifier::new(&plan.notify, hooks).map_err(|e| BuildError(e.message))?;
    let prober = CheckProber::new(plan.traffic.target_addresses(), dsns.clone());
    // One AWS configuration (environment, profile, role) for every AWS client, every
    // call bounded by the plan's aws.timeouts.
    #[cfg(feature = "aws")]
    let aws = crate::aws::AwsConfig::from_env_with(plan.aws.timeouts);
    #[cfg(feature = "aws")]
    let (prober, route53) = {
        use crate::aws::{cloudwatch::CloudWatchApi, route53::Route53Api};
        let api = Route53Api::new(aws.clone());
        (prober.with_route53(api.clone()).with_cloudwatch(CloudWatchApi::new(aws.clone(), aws_regions(plan))), api)
    };
    let prober = Arc::new(prober);
    let traffic: Arc<dyn Traffic> = match &plan.traffic {
        TrafficSpec::Rfc2136(spec) => {
            Arc::new(Rfc2136Traffic::new(spec, secret(secrets, &spec.tsig.secret, "traffic.tsig")?))
        }
        #[cfg(feature = "aws")]
        TrafficSpec::Route53(spec) => {
            Arc::new(crate::aws::route53::Route53Traffic::new(spec, route53, Some(checks_gate(plan, &prober))))
        }
        #[cfg(feature = "aws")]
        TrafficSpec::GlobalAccelerator(spec) => {
            use crate::aws::global_accelerator::{GlobalAcceleratorApi, GlobalAcceleratorTraffic};
            let api = GlobalAcceleratorApi::new(aws.clone());
            Arc::new(GlobalAcceleratorTraffic::new(spec, api, Some(checks_gate(plan, &prober))))
        }
        #[cfg(not(feature = "aws"))]
        TrafficSpec::Route53(_) | TrafficSpec::GlobalAccelerator(_) => {
            return Err(BuildError(format!(
                "traffic.kind: {} needs a drover built with AWS support (cargo feature aws, on by default)",
                plan.traffic.kind()
            )));
        }
    };
    let database: Box<dyn Database> = match &plan.database {
        DatabaseSpec::Postgres(pg) => {
            let members = pg
                .members
                .iter()
                .map(|(region, m)| {
                    (region.clone(), PostgresMemberConfig { dsn: dsns[region].clone(), host: m.host.clone() })
                })
                .collect();
            Box::new(
                PostgresDatabase::new(PostgresConfig {
                    members,
                    promote_timeout: pg.promote_timeout,
                    synchronous: pg.replication == drover_core::plan::Replication::Synchronous,
                    connect_timeout: pg.connect_timeout,
                })
                .map_err(|e| BuildError(e.message))?,
            )
        }
        #[cfg(feature = "aws")]
        DatabaseSpec::Rds(spec) => {
            use crate::aws::rds::{RdsApi, RdsDatabase};
            Box::new(RdsDatabase::new(spec, &aws_regions(plan), RdsApi::new(aws.clone())))
        }
        #[cfg(feature = "aws")]
        DatabaseSpec::AuroraGlobal(spec) => {
            use crate::aws::aurora::AuroraGlobalDatabase;
            use crate::aws::rds::RdsApi;
            Box::new(AuroraGlobalDatabase::new(spec, &aws_regions(plan), RdsApi::new(aws.clone())))
        }
        #[cfg(not(feature = "aws"))]
        DatabaseSpec::Rds(_) | DatabaseSpec::AuroraGlobal(_) => {
            return Err(BuildError(format!(
                "database.kind: {} needs a drover built with AWS support (cargo feature aws, on by default)",
                plan.database.kind()
            )));
        }
    };
    let compute: Box<dyn Compute> = if plan.compute.is_empty() {
        Box::new(NoCompute)
    } else {
        Box::new(ComputeByKind::new(
            plan,
            #[cfg(feature = "aws")]
            aws,
        )?)
    };
    let hooks = HookRunner::new(plan.steps.values().flat_map(StepAction::secrets), secrets)
        .map_err(|e| BuildError(format!("steps: {e}")))?;
    Ok(Adapters { database, traffic, compute, prober, notifier, hooks })
}

impl Adapters {
    /// The providers as the engine, observation and preflight borrow them.
    pub fn providers(&self) -> Providers<'_> {
        Providers {
            database: self.database.as_ref(),
            traffic: self.traffic.as_ref(),
            compute: self.compute.as_ref(),
            prober: self.prober.as_ref(),
            notifier: &self.notifier,
            hooks: &self.hooks,
            clock: &SystemClock,
            ids: &SystemClock,
        }
    }

    /// The traffic provider, shared: what a drill's canary follows with `resolve: traffic`.
    pub fn traffic(&self) -> Arc<dyn Traffic> {
        self.traffic.clone()
    }
}

/// The plan's compute resources, each through the provider of its kind.
struct ComputeByKind {
    by_resource: BTreeMap<String, Arc<dyn Compute>>,
}

impl ComputeByKind {
    fn new(plan: &Plan, #[cfg(feature = "aws")] aws: Arc<crate::aws::AwsConfig>) -> Result<Self, BuildError> {
        // One provider per API the plan's compute kinds are reached through.
        let uses = |api: ComputeApi| plan.compute.values().any(|s| s.kind.api() == api);
        // A build with neither feature refuses every compute kind below and inserts nothing.
        #[cfg_attr(not(any(feature = "aws", feature = "kubernetes")), allow(unused_mut))]
        let mut by_api: BTreeMap<ComputeApi, Arc<dyn Compute>> = BTreeMap::new();
        if uses(ComputeApi::Aws) {
            #[cfg(feature = "aws")]
            by_api.insert(ComputeApi::Aws, Arc::new(crate::aws::compute::AwsCompute::new(plan, aws)));
            #[cfg(not(feature = "aws"))]
            return Err(BuildError(
                "compute: eks-nodegroup and autoscaling-group need a drover built with AWS support (cargo feature aws, on by default)".into(),
            ));
        }
        if uses(ComputeApi::Kubernetes) {
            #[cfg(feature = "kubernetes")]
            by_api.insert(ComputeApi::Kubernetes, Arc::new(crate::kubernetes::KubernetesCompute::new(plan)));
            #[cfg(not(feature = "kubernetes"))]
            return Err(BuildError(
                "compute: kind kubernetes needs a drover built with Kubernetes support (cargo feature kubernetes, on by default)".into(),
            ));
        }
        let by_resource = plan
            .compute
            .iter()
            .filter_map(|(name, spec)| Some((name.clone(), by_api.get(&spec.kind.api())?.clone())))
            .collect();
        Ok(ComputeByKind { by_resource })
    }

    fn provider(&self, resource: &str) -> Result<&dyn Compute, ProviderError> {
        self.by_resource
            .get(resource)
            .map(|p| p.as_ref())
            .ok_or_else(|| ProviderError::permanent(format!("compute {resource}: not in the plan")))
    }
}

#[async_trait::async_trait]
impl Compute for ComputeByKind {
    async fn capacity(&self, resource: &str, region: &str) -> Result<Units, ProviderError> {
        self.provider(resource)?.capacity(resource, region).await
    }

    async fn resize(&self, resource: &str, region: &str, sizes: &BTreeMap<String, Size>) -> Result<(), ProviderError> {
        self.provider(resource)?.resize(resource, region, sizes).await
    }

    /// Each resource's own provider judges it; without this, the trait's default would
    /// find nothing wrong with any of them.
    async fn preflight(&self, resource: &str, region: &str) -> drover_core::world::Preflight {
        match self.provider(resource) {
            Ok(p) => p.preflight(resource, region).await,
            Err(e) => vec![e.message],
        }
    }

    async fn can_launch(&self, resource: &str, region: &str) -> drover_core::world::Answer {
        match self.provider(resource) {
            Ok(p) => p.can_launch(resource, region).await,
            Err(e) => drover_core::world::Answer::CannotTell(e.message),
        }
    }
}

/// Each service region's AWS region (`regions.<name>.aws_region`, or its name).
#[cfg(feature = "aws")]
fn aws_regions(plan: &Plan) -> BTreeMap<String, String> {
    plan.service_regions().map(|r| (r.to_owned(), plan.aws_region(r).to_owned())).collect()
}

/// Holds a staged traffic shift between stages while the plan's critical checks probe the target.
#[cfg(feature = "aws")]
fn checks_gate(plan: &Plan, prober: &Arc<CheckProber>) -> Arc<dyn crate::aws::stages::StageGate> {
    let checks = plan.checks.values().cloned().collect();
    Arc::new(crate::aws::stages::ChecksGate { prober: prober.clone(), checks })
}
