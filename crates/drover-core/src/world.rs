//! The world as the engine sees it: traits the adapters implement.
//! Every method names a region of the plan; adapters map it to their member.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

pub use crate::capacity::{Capacity, Size, Units, WHOLE};
use crate::error::ProviderError;
use crate::plan::Check;
use crate::run::{Epoch, RunId, RunKind};
use crate::secret::SecretText;

/// What one region's database member is doing right now.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum MemberStatus {
    Primary {
        /// False once fenced (read-only).
        writable: bool,
        /// Highest epoch recorded in this member's `drover.epoch` table.
        epoch: Option<Epoch>,
        /// Current WAL write position; None when the database exposes none (RDS, Aurora).
        wal_lsn: Option<u64>,
        /// None when commits do not wait for any standby (`synchronous_standby_names`
        /// empty); otherwise how many synchronous standbys are connected — 0 means
        /// commits are blocked until one returns.
        sync_standbys: Option<u32>,
    },
    Standby {
        /// Bytes of WAL not yet replayed (against the primary when reachable); None when
        /// the database exposes no WAL positions (RDS, Aurora).
        lag_bytes: Option<u64>,
        /// Seconds since the last replayed transaction's commit on the primary; 0 when idle and
        /// caught up. None when unknown (e.g. CloudWatch has no recent datapoint).
        lag_seconds: Option<f64>,
        /// WAL replayed so far; None when the database exposes no WAL positions (RDS, Aurora),
        /// whose plans cannot hold the `catch_up` step that compares it.
        replay_lsn: Option<u64>,
        /// The epoch of the data it replays: the newest epoch its primary recorded (for
        /// PostgreSQL the replicated `drover.epoch` table; for a managed replica its
        /// source's epoch). None when no epoch was ever recorded there, or the source is
        /// not a member of the plan. A standby at an older epoch than the newest primary
        /// holds stale data: it is never a move's target (`engine::stale_target`).
        epoch: Option<Epoch>,
        /// `host` of the upstream it streams from, if streaming.
        upstream: Option<String>,
    },
    Unreachable {
        reason: String,
    },
}

/// Members that accept writes, with the epoch each has recorded, by region name.
pub fn writable_primaries(members: &std::collections::BTreeMap<String, MemberStatus>) -> Vec<(&str, Option<Epoch>)> {
    members
        .iter()
        .filter_map(|(r, m)| match m {
            MemberStatus::Primary { writable: true, epoch, .. } => Some((r.as_str(), *epoch)),
            _ => None,
        })
        .collect()
}

/// The writable primary with the highest epoch: the one acting as primary, if any.
pub fn newest_primary(members: &std::collections::BTreeMap<String, MemberStatus>) -> Option<&str> {
    writable_primaries(members).into_iter().max_by_key(|(_, epoch)| *epoch).map(|(r, _)| r)
}

impl MemberStatus {
    pub fn role_str(&self) -> &'static str {
        match self {
            MemberStatus::Primary { .. } => "primary",
            MemberStatus::Standby { .. } => "standby",
            MemberStatus::Unreachable { .. } => "unreachable",
        }
    }

    pub fn is_unreachable(&self) -> bool {
        matches!(self, MemberStatus::Unreachable { .. })
    }
}

/// One readiness question's answer from a provider (`crate::readiness`): yes with the
/// evidence, no with the cause, or that it cannot tell and why. A provider with nothing to
/// say keeps the trait's default, `CannotTell`: unknown is never taken for yes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "answer", content = "detail", rename_all = "snake_case")]
pub enum Answer {
    Yes(String),
    No(String),
    CannotTell(String),
}

/// What a managed database member is configured as, for readiness to compare the two
/// sides of an RDS or Aurora pair: a standby promoted with a different engine version,
/// instance class or parameter group family is not the database the service ran on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DatabaseSettings {
    pub engine_version: String,
    /// `db.r6g.large`; for Aurora, its writer's (or first instance's) class.
    pub instance_class: String,
    /// `postgres15`: the family of the member's parameter group.
    pub parameter_group_family: String,
    pub multi_az: bool,
    pub backup_retention_days: u32,
}

#[async_trait]
pub trait Database: Send + Sync {
    async fn member(&self, region: &str) -> Result<MemberStatus, ProviderError>;

    /// Makes a primary refuse writes from now on (and ends sessions that could still write).
    async fn fence(&self, region: &str) -> Result<(), ProviderError>;

    /// Promotes a standby and waits until it accepts writes. A no-op on a primary.
    /// `kind` says whether the run is planned: a managed database may then promise no
    /// data loss (Aurora's switchover), and may lose data only in an unplanned failover.
    async fn promote(&self, region: &str, kind: RunKind) -> Result<(), ProviderError>;

    /// Records the epoch in the member (the `drover.epoch` table); idempotent.
    async fn record_epoch(&self, region: &str, epoch: Epoch, run: &RunId) -> Result<(), ProviderError>;

    /// Makes `region` a streaming standby of `primary`, choosing how; says which way it took.
    async fn rejoin(&self, region: &str, primary: &str) -> Result<RejoinMethod, ProviderError>;

    /// Whether drover can run commands on the member's machine (to stop, rewind or rebuild
    /// its database), looked at without changing anything. Providers without hosts keep the default.
    async fn host_access(&self, _region: &str) -> HostAccess {
        HostAccess::NotConfigured
    }

    /// Lifts a fence: the member accepts writes again. Only `abort --undo` calls it, for a
    /// run that fenced `region` and never promoted anything; the engine checks that first.
    async fn unfence(&self, region: &str) -> Result<(), ProviderError> {
        Err(ProviderError::permanent(format!("{region}: this database provider cannot lift a fence")))
    }

    /// What is wrong with the member in `region` before a run touches it ([`Preflight`]);
    /// `fences`: the run will fence it, so it must be fenceable too.
    async fn preflight(&self, _region: &str, _fences: bool) -> Preflight {
        Vec::new()
    }

    /// The member's configuration as its API reports it (readiness compares both sides).
    /// `Ok(None)`: this provider has no such settings to report (PostgreSQL run by drover);
    /// `Err`: they could not be read, and why.
    async fn settings(&self, _region: &str) -> Result<Option<DatabaseSettings>, String> {
        Ok(None)
    }
}

/// Preflight: before a run's first irreversible step, each provider reads every resource
/// the run will touch and names what is definitely wrong with it — missing (the API said
/// it does not exist), or unusable for the step (a parameter group drover cannot modify, a
/// record set identifier the zone does not hold). Each problem is one line naming the
/// resource, the cause and the plan field to fix. A resource that cannot be *reached* is
/// not a problem here: a lost region is why failovers exist, and observation judges it.
pub type Preflight = Vec<String>;

/// How `Database::rejoin` made a member a standby. The engine journals it in the step's detail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum RejoinMethod {
    /// It already streamed from the primary: nothing was stopped, rewound or copied.
    AlreadyFollowing,
    /// pg_rewind turned the old data directory into a copy of the primary's history.
    Rewind,
    /// A fresh base backup from the primary replaced the data directory.
    BaseBackup {
        /// Why pg_rewind could not be used.
        why: String,
        /// Where the old data directory was moved (never deleted); None when there was none.
        old_data: Option<String>,
    },
}

const ALREADY_FOLLOWING: &str = "already streaming from the primary; nothing stopped or copied";
const REWIND: &str = "rejoined with pg_rewind";
const BASE_BACKUP: &str = "rejoined from a fresh base backup";

impl RejoinMethod {
    /// The stable name in JSON output: `already_following`, `pg_rewind` or `base_backup`.
    pub fn name(&self) -> &'static str {
        match self {
            RejoinMethod::AlreadyFollowing => "already_following",
            RejoinMethod::Rewind => "pg_rewind",
            RejoinMethod::BaseBackup { .. } => "base_backup",
        }
    }

    /// The words journaled in the rejoin step's detail.
    pub fn describe(&self) -> String {
        match self {
            RejoinMethod::AlreadyFollowing => ALREADY_FOLLOWING.into(),
            RejoinMethod::Rewind => REWIND.into(),
            RejoinMethod::BaseBackup { why, old_data: Some(path) } => {
                format!("{BASE_BACKUP} (pg_rewind impossible: {why}); the old data directory was moved to {path}")
            }
            RejoinMethod::BaseBackup { why, old_data: None } => {
                format!("{BASE_BACKUP} (pg_rewind impossible: {why}); there was no old data directory to keep")
            }
        }
    }

    /// The method's name in a journaled detail that `describe` wrote; None when the step
    /// found the member already a standby (a resumed run) or the detail is not a rejoin's.
    pub fn name_in(detail: &str) -> Option<&'static str> {
        [(REWIND, "pg_rewind"), (BASE_BACKUP, "base_backup"), (ALREADY_FOLLOWING, "already_following")]
            .into_iter()
            .find(|(words, _)| detail.contains(words))
            .map(|(_, name)| name)
    }
}

/// Whether drover can reach a member's machine, from `Database::host_access`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "host", content = "detail", rename_all = "snake_case")]
pub enum HostAccess {
    /// The plan gives no `host` for the member.
    NotConfigured,
    /// A command ran there; the detail says what it found (e.g. `server stopped`).
    Reachable(String),
    /// No command could run there; the detail says why.
    Unreachable(String),
}

/// Where traffic points, and the epoch that put it there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrafficState {
    /// The region whose target the record holds, if it matches one.
    pub region: Option<String>,
    /// What clients are sent to: addresses, or names for CNAME records (with
    /// weighted routing, each value with its weight, e.g. `192.0.2.10 (weight 90)`).
    pub addresses: Vec<String>,
    pub epoch: Epoch,
}

#[async_trait]
pub trait Traffic: Send + Sync {
    async fn current(&self) -> Result<TrafficState, ProviderError>;

    /// Points traffic at `region` and records `new_epoch`, only if the world's
    /// epoch is still `observed_epoch` (compare-and-swap). A refused
    /// precondition is a stale error (`ProviderError::stale`): a newer run has switched since.
    async fn switch(&self, region: &str, observed_epoch: Epoch, new_epoch: Epoch) -> Result<(), ProviderError>;

    /// What is wrong with the records a switch changes ([`Preflight`]): each must exist
    /// as the plan names it, and the zone must not already hold a conflicting one.
    async fn preflight(&self) -> Preflight {
        Vec::new()
    }

    /// Whether the health check the traffic provider routes `region` by is healthy (a Route
    /// 53 record set's `health_check_id`). `CannotTell`: no such health check (readiness
    /// then goes by the plan's own checks of the region).
    async fn health_check(&self, region: &str) -> Answer {
        Answer::CannotTell(format!("traffic for {region} is routed by no health check drover can read"))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeResult {
    pub ok: bool,
    pub latency: Duration,
    /// Why it failed, or a short note on success (e.g. `200 OK`).
    pub detail: String,
}

#[async_trait]
pub trait Prober: Send + Sync {
    /// Runs one check once against one region, within the check's timeout.
    async fn probe(&self, check: &Check, region: &str) -> ProbeResult;
}

#[async_trait]
pub trait Compute: Send + Sync {
    /// What `resource` (a name in the plan's `compute`) runs in `region` now, unit by unit.
    async fn capacity(&self, resource: &str, region: &str) -> Result<Units, ProviderError>;

    /// Sets the named units to exactly these sizes (units not named are left alone) and
    /// waits, within the resource's `ready_timeout`, until that many are up (a node group
    /// ACTIVE again, instances InService, pods ready). Idempotent.
    async fn resize(&self, resource: &str, region: &str, sizes: &BTreeMap<String, Size>) -> Result<(), ProviderError>;

    /// What is wrong with `resource` in `region` ([`Preflight`]): it must exist there.
    async fn preflight(&self, _resource: &str, _region: &str) -> Preflight {
        Vec::new()
    }

    /// Whether `resource` in `region` can launch what it is sized to: its launch template
    /// or launch configuration (and image) exists, its node group is healthy.
    async fn can_launch(&self, resource: &str, region: &str) -> Answer {
        Answer::CannotTell(format!("compute {resource} in {region}: this provider cannot tell what it launches"))
    }
}

/// The world of a plan without compute: nothing to read or resize.
pub struct NoCompute;

#[async_trait]
impl Compute for NoCompute {
    async fn capacity(&self, resource: &str, _region: &str) -> Result<Units, ProviderError> {
        Err(ProviderError::permanent(format!("compute {resource}: this drover has no compute provider for it")))
    }

    async fn resize(
        &self,
        resource: &str,
        _region: &str,
        _sizes: &BTreeMap<String, Size>,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::permanent(format!("compute {resource}: this drover has no compute provider for it")))
    }
}

/// The world's providers, as one value the engine and its steps borrow.
#[derive(Clone, Copy)]
pub struct Providers<'a> {
    pub database: &'a dyn Database,
    pub traffic: &'a dyn Traffic,
    /// Node groups and Auto Scaling groups the `scale` step sizes.
    pub compute: &'a dyn Compute,
    pub prober: &'a dyn Prober,
    /// Told about every run's start, pause, approval wait, completion and abort, and by `notify` steps.
    pub notifier: &'a dyn crate::notify::Notifier,
    /// The effects of the plan's own `http` and `exec` steps.
    pub hooks: &'a dyn Hooks,
    /// The time, and waiting: what observation stamps and retries sleep on.
    pub clock: &'a dyn crate::clock::Clock,
    /// Names new runs.
    pub ids: &'a dyn crate::clock::Ids,
}

impl<'a> Providers<'a> {
    /// One value that is every provider (a test double, a lab stand-in), on the machine's
    /// clock.
    pub fn all<W>(world: &'a W) -> Providers<'a>
    where
        W: Database + Traffic + Compute + Prober + crate::notify::Notifier + Hooks,
    {
        Providers {
            database: world,
            traffic: world,
            compute: world,
            prober: world,
            notifier: world,
            hooks: world,
            clock: &crate::clock::SystemClock,
            ids: &crate::clock::SystemClock,
        }
    }
}

/// One request of an `http` step. Secrets stay references: the adapter resolves them.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    pub url: SecretText,
    pub headers: Vec<(String, SecretText)>,
    pub body: Option<String>,
    /// For the whole exchange, connecting included.
    pub timeout: Duration,
}

/// What a receiver answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    /// The start of the body, for the journal and messages.
    pub body: String,
}

/// One command of an `exec` step, its host prefix already in front.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandLine {
    pub argv: Vec<String>,
    /// The whole environment the command gets (with `PATH` added by the adapter).
    pub env: Vec<(String, SecretText)>,
    /// Past it, the command is killed.
    pub timeout: Duration,
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandExit {
    /// None: killed by a signal.
    pub code: Option<i32>,
    /// The end of what it wrote (stderr, else stdout), for the journal and messages.
    pub output: String,
}

/// The effects of the plan's own steps (`http`, `exec`): the only I/O they do.
#[async_trait]
pub trait Hooks: Send + Sync {
    /// Sends the request. Any answer is Ok (the step judges its status); not reaching the
    /// receiver, or no answer within the timeout, is a transient error.
    async fn http(&self, request: &HttpRequest) -> Result<HttpAnswer, ProviderError>;
    /// Runs the command to its end. A command that cannot start is a permanent error; one
    /// still running at its timeout is killed (with its process group): a transient error.
    async fn exec(&self, command: &CommandLine) -> Result<CommandExit, ProviderError>;
}
