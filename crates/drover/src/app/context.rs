//! A plan opened for work: the plan, its journal, and the providers its adapters build,
//! assembled once per command or daemon; and the engine that runs over them.

use std::path::PathBuf;
use std::sync::Arc;

use drover_adapters::factory::{self, Adapters};
use drover_core::engine::{self, Engine, Observed};
use drover_core::journal::Journal;
use drover_core::plan::Plan;
use drover_core::run::Entry;
use drover_core::secret::Secret;

use crate::app::error::{Failure, store_failure};
use crate::app::plan::{EnvSecrets, load_plan};
use crate::app::store::{EtcdStore, PlanArgs, etcd_store, open_journal, plan_dir};

/// The providers `plan` names, with the secrets it references read from the environment
/// and files. A plan they cannot be built for is bad input: the message names its field.
pub fn adapters(plan: &Plan) -> Result<Adapters, Failure> {
    factory::build(plan, &EnvSecrets).map_err(|e| Failure::input(e.0))
}

/// Everything a command that reads or changes the world needs.
pub struct Context {
    pub plan: Plan,
    pub journal: Arc<dyn Journal>,
    /// The providers the plan names (database, traffic, compute, checks, notifiers).
    pub adapters: Adapters,
    /// The etcd store the journal lives in, if any.
    pub etcd: Option<EtcdStore>,
}

/// Who drives a run started or resumed from the command line, as a second driver is told.
const DRIVER: &str = "a drover command";

impl Context {
    pub async fn open(args: &PlanArgs) -> Result<Context, Failure> {
        let plan = load_plan(&args.plan)?;
        let adapters = adapters(&plan)?;
        let etcd = etcd_store(args)?;
        Ok(Context { journal: open_journal(args).await?, adapters, plan, etcd })
    }

    /// With an etcd store watched by `drover serve` daemons, runs are theirs to start and
    /// drive: the leader's journal writes are fenced, a command's here would not be, and a
    /// new leader could resume the same run alongside it. Refused, naming the leader.
    pub async fn refuse_if_daemons_lead(&self) -> Result<(), Failure> {
        let Some(store) = &self.etcd else { return Ok(()) };
        match drover_store::cluster::election_leader(&store.access, &store.election_key()).await {
            Ok(Some(leader)) => Err(Failure::conflict(format!(
                "drover serve daemons protect this plan and the {leader} daemon leads them: runs are theirs to start \
                 and drive (their journal writes are fenced); send this to it with --server URL --token-file FILE, \
                 or stop the daemons first"
            ))),
            Ok(None) => Ok(()),
            Err(e) => Err(store_failure(e)),
        }
    }

    /// The world as it is now. A provider that cannot be read is part of what is observed;
    /// only a journal that cannot be read (its epoch, its active run) fails it, and then the
    /// world cannot be judged now: unavailable, to be asked again.
    pub async fn observe(&self) -> Result<Observed, Failure> {
        engine::observe(&self.plan, self.journal.as_ref(), self.adapters.providers()).await.map_err(unobservable)
    }

    /// Observes only `regions` (see `engine::observe_regions`).
    pub async fn observe_regions(&self, regions: &[&str]) -> Result<Observed, Failure> {
        engine::observe_regions(&self.plan, self.journal.as_ref(), self.adapters.providers(), regions)
            .await
            .map_err(unobservable)
    }

    /// The engine as commands use it: real retry budgets, journaling through the plan's journal.
    pub fn engine<'a>(&'a self, on_entry: &'a (dyn Fn(&Entry) + Send + Sync)) -> Engine<'a> {
        self.engine_with(self.journal.as_ref(), on_entry)
    }

    /// An engine that journals through `journal` (a daemon's leader writes through its fenced one).
    pub fn engine_with<'a>(
        &'a self,
        journal: &'a dyn Journal,
        on_entry: &'a (dyn Fn(&Entry) + Send + Sync),
    ) -> Engine<'a> {
        Engine::new(&self.plan, journal, self.adapters.providers()).with_progress(on_entry).with_driver(DRIVER)
    }

    /// Waits (a few seconds at most) for notifications still being sent, so a
    /// command that ends does not drop them with its runtime.
    pub async fn flush_notifications(&self) {
        if tokio::time::timeout(std::time::Duration::from_secs(10), self.adapters.notifier.flush()).await.is_err() {
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
        factory::secret(&EnvSecrets, &member.dsn, &format!("database.members.{region}"))
            .map_err(|e| Failure::input(e.0))
    }
}

/// Why the world could not be observed: its journal could not be read.
fn unobservable(e: drover_core::StoreError) -> Failure {
    Failure::unavailable(e.to_string())
}
