//! Wiring: the plan on disk, the secrets it references, the journal, and the
//! adapters behind the core's traits — assembled once per command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use drover_adapters::notify::{WebhookNotifier, WebhookSecrets};
use drover_adapters::postgres::{PostgresConfig, PostgresDatabase, PostgresMemberConfig};
use drover_adapters::probe::CheckProber;
use drover_adapters::rfc2136::Rfc2136Traffic;
use drover_core::engine::{self, Engine, Observed, Providers};
use drover_core::plan::{Plan, parse_plan};
use drover_core::run::Entry;
use drover_core::secret::{Secret, SecretRef, SecretSource};
use drover_store::RedbJournal;

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
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::input(format!("{}: cannot read the plan: {e}", path.display())))?;
    parse_plan(path, &text, &EnvSecrets).map_err(|errors| Failure::input(errors.to_string()))
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

pub fn open_journal(args: &PlanArgs) -> Result<RedbJournal, Failure> {
    RedbJournal::open(&state_dir(args)).map_err(store_failure)
}

fn secret(reference: &SecretRef, field: &str) -> Result<Secret, Failure> {
    EnvSecrets.resolve(reference).map_err(|e| Failure::input(format!("{field}: {e}")))
}

/// The real world's adapters for one plan.
pub struct World {
    database: PostgresDatabase,
    traffic: Rfc2136Traffic,
    prober: CheckProber,
    pub notifier: WebhookNotifier,
}

impl World {
    pub fn new(plan: &Plan) -> Result<World, Failure> {
        let pg = plan.postgres();
        let mut members = BTreeMap::new();
        let mut dsns = BTreeMap::new();
        for (region, member) in &pg.members {
            let dsn = secret(&member.dsn, &format!("database.members.{region}"))?;
            dsns.insert(region.clone(), dsn.clone());
            members.insert(region.clone(), PostgresMemberConfig { dsn, host: member.host.clone() });
        }
        let traffic = plan.rfc2136();
        let key = secret(&traffic.tsig.secret, "traffic.tsig")?;
        let mut hooks = BTreeMap::new();
        for (name, hook) in &plan.notify.webhooks {
            let field = format!("notify.webhooks.{name}");
            let url = hook.url.resolve(&EnvSecrets).map_err(|e| Failure::input(format!("{field}: {e}")))?;
            let routing_key =
                hook.routing_key.as_ref().map(|r| secret(r, &format!("{field}.routing_key"))).transpose()?;
            hooks.insert(name.clone(), WebhookSecrets { url, routing_key });
        }
        let notifier = WebhookNotifier::new(&plan.notify, hooks).map_err(|e| Failure::input(e.message))?;
        Ok(World {
            database: PostgresDatabase::new(PostgresConfig {
                members,
                promote_timeout: pg.promote_timeout,
                synchronous: pg.replication == drover_core::plan::Replication::Synchronous,
                connect_timeout: pg.connect_timeout,
            })
            .map_err(|e| Failure::input(e.message))?,
            traffic: Rfc2136Traffic::new(traffic, key),
            prober: CheckProber::new(traffic.targets.clone(), dsns),
            notifier,
        })
    }

    pub fn providers(&self) -> Providers<'_> {
        Providers { database: &self.database, traffic: &self.traffic, prober: &self.prober, notifier: &self.notifier }
    }
}

/// Everything a command that reads or changes the world needs.
pub struct Context {
    pub plan: Plan,
    pub journal: RedbJournal,
    pub world: World,
}

impl Context {
    pub fn open(args: &PlanArgs) -> Result<Context, Failure> {
        let plan = load_plan(&args.plan)?;
        let world = World::new(&plan)?;
        Ok(Context { journal: open_journal(args)?, world, plan })
    }

    pub async fn observe(&self) -> Result<Observed, Failure> {
        engine::observe(&self.plan, &self.journal, self.world.providers()).await.map_err(store_failure)
    }

    /// Observes only `regions` (see `engine::observe_regions`).
    pub async fn observe_regions(&self, regions: &[&str]) -> Result<Observed, Failure> {
        engine::observe_regions(&self.plan, &self.journal, self.world.providers(), regions).await.map_err(store_failure)
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
        let member = self
            .plan
            .postgres()
            .members
            .get(region)
            .ok_or_else(|| Failure::input(format!("no database member for region {region}")))?;
        secret(&member.dsn, &format!("database.members.{region}"))
    }
}
