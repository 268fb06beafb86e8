//! Wiring: the plan on disk, the secrets it references, the journal, and the
//! adapters behind the core's traits — assembled once per command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use drover_adapters::notify::{WebhookNotifier, WebhookSecrets};
use drover_adapters::postgres::{PostgresConfig, PostgresDatabase, PostgresMemberConfig};
use drover_adapters::probe::CheckProber;
use drover_adapters::rfc2136::Rfc2136Traffic;
use drover_core::engine::{self, Engine, Observed, Providers};
use drover_core::error::ProviderError;
use drover_core::journal::Journal;
use drover_core::plan::{ComputeKind, DatabaseSpec, Plan, TrafficSpec, parse_plan};
use drover_core::run::Entry;
use drover_core::secret::{Secret, SecretRef, SecretSource};
use drover_core::world::{Compute, Database, NoCompute, Size, Traffic, Units};
use drover_store::{EtcdJournal, RedbJournal};

use crate::cli::PlanArgs;
use crate::commands::Failure;
use crate::commands::run::{engine_for, store_failure};

/// Secrets from the environment and from files, read only when needed.
pub struct EnvSecrets;

impl SecretSource for EnvSecrets {
    fn resolve(&self, reference: &SecretRef) -> Result<Secret, String> {
        match reference {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
                Ok(_) => Err(format!("environment variable {name} is empty")),
                Err(_) => Err(format!("environment variable {name} is not set")),
            },
            SecretRef::File(path) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
                Ok(_) => Err(format!("file {} is empty", path.display())),
                Err(e) => Err(format!("cannot read file {}: {e}", path.display())),
            },
        }
    }
}

/// Reads and validates a plan; any problem is bad input (exit 2).
pub fn load_plan(path: &Path) -> Result<Plan, Failure> {
    load_plan_with(path, &EnvSecrets)
}

/// Reads and validates a plan, resolving its secret references through `secrets`.
pub fn load_plan_with(path: &Path, secrets: &dyn SecretSource) -> Result<Plan, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::input(format!("{}: cannot read the plan: {e}", path.display())))?;
    parse_plan(path, &text, secrets).map_err(|errors| Failure::input(errors.to_string()))
}

fn state_dir(args: &PlanArgs) -> PathBuf {
    args.state.clone().unwrap_or_else(|| plan_dir(&args.plan).join(".drover"))
}

fn plan_dir(plan: &Path) -> PathBuf {
    match plan.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The journal the plan's runs are kept in: the embedded redb file under the state
/// directory, or etcd (`--store etcd://...`).
pub async fn open_journal(args: &PlanArgs) -> Result<Arc<dyn Journal>, Failure> {
    match etcd_store(args)? {
        None => Ok(Arc::new(RedbJournal::open(&state_dir(args)).map_err(store_failure)?)),
        Some(EtcdStore { endpoints, prefix }) => {
            Ok(Arc::new(EtcdJournal::connect(&endpoints, &prefix).await.map_err(store_failure)?))
        }
    }
}

/// An etcd store: its members' client URLs and the key prefix of this plan.
#[derive(Clone, Debug)]
pub struct EtcdStore {
    pub endpoints: Vec<String>,
    pub prefix: String,
}

impl EtcdStore {
    /// The key the daemons' leader election runs on.
    pub fn election_key(&self) -> String {
        format!("{}/leader", self.prefix)
    }
}

/// The etcd store `--store` names, if any.
pub fn etcd_store(args: &PlanArgs) -> Result<Option<EtcdStore>, Failure> {
    args.store
        .as_deref()
        .map(|url| parse_etcd_url(url).map(|(endpoints, prefix)| EtcdStore { endpoints, prefix }))
        .transpose()
}

/// `etcd://h1:2379,h2:2379/prefix` -> (["http://h1:2379", "http://h2:2379"], "/prefix").
fn parse_etcd_url(url: &str) -> Result<(Vec<String>, String), Failure> {
    let bad =
        |why: &str| Failure::input(format!("--store {url}: {why}; write etcd://HOST:PORT[,HOST:PORT...][/PREFIX]"));
    let rest = url.strip_prefix("etcd://").ok_or_else(|| bad("only etcd:// stores are known"))?;
    let (hosts, prefix) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p.trim_matches('/')));
    let prefix = if prefix.is_empty() { "/drover".to_string() } else { format!("/{prefix}") };
    let endpoints: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            if h.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
                Ok(format!("http://{h}"))
            } else {
                Err(bad(&format!("'{h}' is not HOST:PORT")))
            }
        })
        .collect::<Result<_, _>>()?;
    if endpoints.is_empty() {
        return Err(bad("no host given"));
    }
    Ok((endpoints, prefix))
}

fn secret(reference: &SecretRef, field: &str) -> Result<Secret, Failure> {
    EnvSecrets.resolve(reference).map_err(|e| Failure::input(format!("{field}: {e}")))
}

/// The real world's adapters for one plan.
pub struct World {
    /// Chosen by the plan's `database.kind`.
    database: Box<dyn Database>,
    /// Chosen by the plan's `traffic.kind`.
    traffic: Box<dyn Traffic>,
    /// The plan's compute resources (node groups, Auto Scaling groups).
    compute: Box<dyn Compute>,
    prober: Arc<CheckProber>,
    pub notifier: WebhookNotifier,
}

impl World {
    pub fn new(plan: &Plan) -> Result<World, Failure> {
        let mut dsns = BTreeMap::new();
        if let Some(pg) = plan.postgres() {
            for (region, member) in &pg.members {
                dsns.insert(region.clone(), secret(&member.dsn, &format!("database.members.{region}"))?);
            }
        }
        let mut hooks = BTreeMap::new();
        for (name, hook) in &plan.notify.webhooks {
            let field = format!("notify.webhooks.{name}");
            let url = hook.url.resolve(&EnvSecrets).map_err(|e| Failure::input(format!("{field}: {e}")))?;
            let routing_key =
                hook.routing_key.as_ref().map(|r| secret(r, &format!("{field}.routing_key"))).transpose()?;
            hooks.insert(name.clone(), WebhookSecrets { url, routing_key });
        }
        let notifier = WebhookNotifier::new(&plan.notify, hooks).map_err(|e| Failure::input(e.message))?;
        let prober = CheckProber::new(plan.traffic.target_addresses(), dsns.clone());
        // One AWS configuration (environment, profile, role) for every AWS client, every
        // call bounded by the plan's aws.timeouts.
        #[cfg(feature = "aws")]
        let aws = drover_adapters::aws::AwsConfig::from_env_with(plan.aws.timeouts);
        #[cfg(feature = "aws")]
        let (prober, route53) = {
            use drover_adapters::aws::{cloudwatch::CloudWatchApi, route53::Route53Api};
            let api = Route53Api::new(aws.clone());
            (prober.with_route53(api.clone()).with_cloudwatch(CloudWatchApi::new(aws.clone(), aws_regions(plan))), api)
        };
        let prober = Arc::new(prober);
        let traffic: Box<dyn Traffic> = match &plan.traffic {
            TrafficSpec::Rfc2136(spec) => {
                Box::new(Rfc2136Traffic::new(spec, secret(&spec.tsig.secret, "traffic.tsig")?))
            }
            #[cfg(feature = "aws")]
            TrafficSpec::Route53(spec) => Box::new(drover_adapters::aws::route53::Route53Traffic::new(
                spec,
                route53,
                Some(checks_gate(plan, &prober)),
            )),
            #[cfg(feature = "aws")]
            TrafficSpec::GlobalAccelerator(spec) => {
                use drover_adapters::aws::global_accelerator::{GlobalAcceleratorApi, GlobalAcceleratorTraffic};
                let api = GlobalAcceleratorApi::new(aws.clone());
                Box::new(GlobalAcceleratorTraffic::new(spec, api, Some(checks_gate(plan, &prober))))
            }
            #[cfg(not(feature = "aws"))]
            TrafficSpec::Route53(_) | TrafficSpec::GlobalAccelerator(_) => {
                return Err(Failure::input(format!(
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
                    .map_err(|e| Failure::input(e.message))?,
                )
            }
            #[cfg(feature = "aws")]
            DatabaseSpec::Rds(spec) => {
                use drover_adapters::aws::rds::{RdsApi, RdsDatabase};
                Box::new(RdsDatabase::new(spec, &aws_regions(plan), RdsApi::new(aws.clone())))
            }
            #[cfg(feature = "aws")]
            DatabaseSpec::AuroraGlobal(spec) => {
                use drover_adapters::aws::aurora::AuroraGlobalDatabase;
                use drover_adapters::aws::rds::RdsApi;
                Box::new(AuroraGlobalDatabase::new(spec, &aws_regions(plan), RdsApi::new(aws.clone())))
            }
            #[cfg(not(feature = "aws"))]
            DatabaseSpec::Rds(_) | DatabaseSpec::AuroraGlobal(_) => {
                return Err(Failure::input(format!(
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
        Ok(World { database, traffic, compute, prober, notifier })
    }

    pub fn providers(&self) -> Providers<'_> {
        Providers {
            database: self.database.as_ref(),
            traffic: self.traffic.as_ref(),
            compute: self.compute.as_ref(),
            prober: self.prober.as_ref(),
            notifier: &self.notifier,
        }
    }
}

/// The plan's compute resources, each through the provider of its kind.
struct ComputeByKind {
    by_resource: BTreeMap<String, Arc<dyn Compute>>,
}

impl ComputeByKind {
    fn new(plan: &Plan, #[cfg(feature = "aws")] aws: Arc<drover_adapters::aws::AwsConfig>) -> Result<Self, Failure> {
        let uses = |kind: ComputeKind| plan.compute.values().any(|s| s.kind == kind);
        let mut providers: BTreeMap<ComputeKind, Arc<dyn Compute>> = BTreeMap::new();
        if uses(ComputeKind::EksNodegroup) || uses(ComputeKind::AutoScalingGroup) {
            #[cfg(feature = "aws")]
            providers
                .insert(ComputeKind::EksNodegroup, Arc::new(drover_adapters::aws::compute::AwsCompute::new(plan, aws)));
            #[cfg(not(feature = "aws"))]
            return Err(Failure::input(
                "compute: eks-nodegroup and autoscaling-group need a drover built with AWS support (cargo feature aws, on by default)",
            ));
        }
        if let Some(aws) = providers.get(&ComputeKind::EksNodegroup).cloned() {
            providers.insert(ComputeKind::AutoScalingGroup, aws);
        }
        if uses(ComputeKind::Kubernetes) {
            #[cfg(feature = "kubernetes")]
            providers
                .insert(ComputeKind::Kubernetes, Arc::new(drover_adapters::kubernetes::KubernetesCompute::new(plan)));
            #[cfg(not(feature = "kubernetes"))]
            return Err(Failure::input(
                "compute: kind kubernetes needs a drover built with Kubernetes support (cargo feature kubernetes, on by default)",
            ));
        }
        let by_resource = plan
            .compute
            .iter()
            .filter_map(|(name, spec)| Some((name.clone(), providers.get(&spec.kind)?.clone())))
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
}

/// Each service region's AWS region (`regions.<name>.aws_region`, or its name).
#[cfg(feature = "aws")]
fn aws_regions(plan: &Plan) -> BTreeMap<String, String> {
    plan.service_regions().map(|r| (r.to_owned(), plan.aws_region(r).to_owned())).collect()
}

/// Holds a staged traffic shift between stages while the plan's critical checks probe the target.
#[cfg(feature = "aws")]
fn checks_gate(plan: &Plan, prober: &Arc<CheckProber>) -> Arc<dyn drover_adapters::aws::stages::StageGate> {
    let checks = plan.checks.values().cloned().collect();
    Arc::new(drover_adapters::aws::stages::ChecksGate { prober: prober.clone(), checks })
}

/// Everything a command that reads or changes the world needs.
pub struct Context {
    pub plan: Plan,
    pub journal: Arc<dyn Journal>,
    pub world: World,
    /// The etcd store the journal lives in, if any.
    pub etcd: Option<EtcdStore>,
}

impl Context {
    pub async fn open(args: &PlanArgs) -> Result<Context, Failure> {
        let plan = load_plan(&args.plan)?;
        let world = World::new(&plan)?;
        Ok(Context { journal: open_journal(args).await?, world, plan, etcd: etcd_store(args)? })
    }

    /// With an etcd store watched by `drover serve` daemons, runs are theirs to start and
    /// drive: the leader's journal writes are fenced, a command's here would not be, and a
    /// new leader could resume the same run alongside it. Refused, naming the leader.
    pub async fn refuse_if_daemons_lead(&self) -> Result<(), Failure> {
        let Some(store) = &self.etcd else { return Ok(()) };
        match drover_store::cluster::election_leader(&store.endpoints, &store.election_key()).await {
            Ok(Some(leader)) => Err(Failure::input(format!(
                "drover serve daemons protect this plan and the {leader} daemon leads them: runs are theirs to start \
                 and drive (their journal writes are fenced); send this to it with --server URL --token-file FILE, \
                 or stop the daemons first"
            ))),
            Ok(None) => Ok(()),
            Err(e) => Err(store_failure(e)),
        }
    }

    pub async fn observe(&self) -> Result<Observed, Failure> {
        engine::observe(&self.plan, self.journal.as_ref(), self.world.providers()).await.map_err(store_failure)
    }

    /// Observes only `regions` (see `engine::observe_regions`).
    pub async fn observe_regions(&self, regions: &[&str]) -> Result<Observed, Failure> {
        engine::observe_regions(&self.plan, self.journal.as_ref(), self.world.providers(), regions)
            .await
            .map_err(store_failure)
    }

    pub fn engine<'a>(&'a self, on_entry: &'a (dyn Fn(&Entry) + Send + Sync)) -> Engine<'a> {
        engine_for(self, on_entry)
    }

    /// Waits (a few seconds at most) for notifications still being sent, so a
    /// command that ends does not drop them with its runtime.
    pub async fn flush_notifications(&self) {
        if tokio::time::timeout(std::time::Duration::from_secs(10), self.world.notifier.flush()).await.is_err() {
            tracing::warn!("some notifications were still being sent after 10s; they are dropped");
        }
    }

    pub fn plan_dir(&self) -> PathBuf {
        plan_dir(&self.plan.source)
    }

    pub fn member_dsn(&self, region: &str) -> Result<Secret, Failure> {
        let pg = self.plan.postgres().ok_or_else(|| {
            Failure::input(format!(
                "database kind {} has no connection string in the plan; this needs kind: postgres",
                self.plan.database.kind()
            ))
        })?;
        let member =
            pg.members.get(region).ok_or_else(|| Failure::input(format!("no database member for region {region}")))?;
        secret(&member.dsn, &format!("database.members.{region}"))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_etcd_url;

    #[test]
    fn etcd_store_urls_name_every_member_and_a_prefix() {
        let (endpoints, prefix) = parse_etcd_url("etcd://10.0.0.1:2379,10.0.0.2:2379/prod/shop/").unwrap();
        assert_eq!(endpoints, ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]);
        assert_eq!(prefix, "/prod/shop");
        assert_eq!(parse_etcd_url("etcd://127.0.0.1:2379").unwrap().1, "/drover");
        for bad in ["redis://x:1", "etcd://", "etcd://host", "etcd://host:port"] {
            let e = parse_etcd_url(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.code, 2);
            assert!(e.message.contains("write etcd://HOST:PORT"), "{}", e.message);
        }
    }
}
