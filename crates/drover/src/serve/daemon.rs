//! The daemon's loops: probe every check on its interval (this vantage), fetch
//! the peers' reports, judge each region by quorum, and let the autopilot act.
//! All shared state sits in `Daemon` behind one mutex, read by the API. Each loop runs
//! under the daemon's supervisor (`super::supervisor`), beating once a round.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use drover_core::StoreError;
use drover_core::autopilot::{self, Decision, GateRefusal};
use drover_core::check::CheckState;
use drover_core::engine::{self, Engine, EngineError, Held, Observed, now_ms};
use drover_core::history;
use drover_core::journal::Journal;
use drover_core::notify::{EventKind, Notifier, NotifyEvent};
use drover_core::plan::Check;
use drover_core::run::{Entry, Record, RunHeader, RunId, RunKind, RunState, RunSummary};
use drover_core::vantage::{self, RegionVerdict, VantageExchange, VantageReport};
use drover_core::world::{MemberStatus, ProbeResult};

use super::leadership::{Authority, Election};
use super::supervisor::{Heartbeat, Restart, Supervisor, unpoisoned};
use crate::app::context::Context;
use crate::app::progress::Progress;

/// One check's state at this vantage, with its last result.
#[derive(Clone, Debug)]
pub struct CheckEntry {
    pub state: CheckState,
    pub last: Option<ProbeResult>,
}

#[derive(Default)]
pub struct Shared {
    /// (region, check) -> state at this vantage.
    pub checks: BTreeMap<(String, String), CheckEntry>,
    pub verdicts: BTreeMap<String, RegionVerdict>,
    /// Members' status from the last world observation (every few seconds).
    pub members: BTreeMap<String, MemberStatus>,
    /// Regions whose database was a writable primary when last reached: while one cannot be
    /// reached, it is watched closely, to be fenced the moment it returns at an old epoch.
    pub last_writable: BTreeSet<String>,
    /// Autopilot refusals by gate label, since start.
    pub refusals: BTreeMap<&'static str, u64>,
    /// The last refusal, for the API and to log each new reason once.
    pub last_refusal: Option<GateRefusal>,
    /// Set once the first round of probes has finished.
    pub ready: bool,
    /// Whether this daemon acted in the last autopilot round (leads, or is the acting vantage).
    pub acting: bool,
    /// The backup schedule's record (the schedule is `super::backups`).
    pub backups: BackupRecord,
    /// The last readiness evaluation (`super::readiness`), for the API and /metrics.
    pub readiness: Option<crate::app::readiness::Report>,
}

/// What the backup schedule has done since the daemon started, for /metrics.
#[derive(Clone, Debug, Default)]
pub struct BackupRecord {
    pub succeeded: u64,
    /// Written to some stores but not all (or retention failed in one).
    pub incomplete: u64,
    pub failed: u64,
    /// Unix ms of the newest backup in the stores, this daemon's or another's.
    pub last_success_ms: Option<u64>,
    pub last_objects: Option<usize>,
}

pub struct Daemon {
    pub cx: Context,
    pub vantage: String,
    /// How this vantage hears the others.
    pub exchange: Arc<dyn VantageExchange>,
    /// How this vantage signs its report (and its exchange checks the others').
    pub rules: Arc<vantage::ReportRules>,
    /// Locked through `state()`, never `lock().unwrap()`: a loop that panics holding it
    /// must not take every other loop and the API with it.
    shared: Mutex<Shared>,
    /// The loops, restarted when they die; what `/readyz` and /metrics say of them.
    pub loops: Arc<Supervisor>,
    /// With an etcd store: the leader election that decides who acts.
    pub election: Option<Arc<Election>>,
    /// Serializes starting runs inside this process (the journal guards across processes).
    starting: tokio::sync::Mutex<()>,
    /// Who drives this daemon's runs, as a second driver is told ("the east daemon").
    driver: String,
}

/// How a held run is driven on: approved by a person, or resumed (by one, when it was paused).
#[derive(Clone, Copy)]
pub enum Drive<'a> {
    Approve { by: &'a str },
    Resume { by: Option<&'a str> },
}

/// A change refused because another daemon leads.
#[derive(Debug)]
pub struct NotLeader(pub String);

/// How often the autopilot looks.
const ROUND: Duration = Duration::from_millis(500);
/// How often members' status is read: metrics, the API, and fencing a returning old primary.
/// Autopilot rounds between two retention sweeps of the journal (about a minute); a sweep
/// that left runs due runs again the next round.
const TRIM_EVERY: u64 = 120;
const WORLD_ROUND: Duration = Duration::from_secs(2);
/// How often a lost writable primary is tried again between those reads.
const WATCH_ROUND: Duration = Duration::from_millis(250);

impl Daemon {
    pub fn new(
        cx: Context,
        vantage: String,
        exchange: Arc<dyn VantageExchange>,
        rules: Arc<vantage::ReportRules>,
        election: Option<Arc<Election>>,
    ) -> Daemon {
        let mut shared = Shared::default();
        for region in cx.plan.service_regions() {
            for check in cx.plan.checks_for(region) {
                shared.checks.insert(
                    (region.to_string(), check.name.clone()),
                    CheckEntry { state: CheckState::new(check.failure_threshold, check.success_threshold), last: None },
                );
            }
        }
        Daemon {
            cx,
            vantage: vantage.clone(),
            exchange,
            rules,
            shared: Mutex::new(shared),
            loops: Supervisor::new(Default::default()),
            election,
            starting: tokio::sync::Mutex::new(()),
            driver: format!("the {vantage} daemon"),
        }
    }

    /// The shared state, locked; recovered if a panicking loop poisoned the lock
    /// (`supervisor::unpoisoned` says why that is safe).
    pub fn state(&self) -> MutexGuard<'_, Shared> {
        unpoisoned(&self.shared)
    }

    /// Whether this daemon may start or drive runs now, and through which journal.
    pub async fn authority(&self) -> Result<Authority, NotLeader> {
        let Some(election) = &self.election else { return Ok(Authority::local(Arc::clone(&self.cx.journal))) };
        match election.authority() {
            Some(a) => Ok(a),
            None => Err(NotLeader(format!(
                "this daemon ({}) does not lead; {} leads: send changes there",
                self.vantage,
                election.leader_name().await
            ))),
        }
    }

    /// True when this daemon may act: it leads the election, or there is none.
    pub fn leads(&self) -> bool {
        self.election.as_ref().is_none_or(|e| e.is_leader())
    }

    /// Runs `work` while `authority` holds; dropped (stopped) the moment leadership is lost.
    pub async fn authorized<T>(&self, authority: &Authority, work: impl Future<Output = T>) -> Result<T, String> {
        let Some(election) = &self.election else { return Ok(work.await) };
        tokio::select! {
            done = work => Ok(done),
            _ = election.ended(authority) => Err("leadership lost: the new leader takes the run over".into()),
        }
    }

    /// Takes run `id` for this daemon under `authority` (`Engine::hold`): refused, naming
    /// the holder, while another live driver (a CLI, this daemon's own autopilot) drives it.
    pub async fn hold(&self, authority: &Authority, id: &RunId) -> Result<Held, EngineError> {
        let on_entry = |_: &Entry| {};
        self.engine(authority, &on_entry).hold(id).await
    }

    /// Starts run `header` (journals its start) and holds it for this daemon, as one step
    /// among this process's starts: a take-over cannot claim it in between.
    pub async fn begin_held(&self, authority: &Authority, header: &RunHeader) -> Result<Held, EngineError> {
        let _one_at_a_time = self.starting.lock().await;
        let on_entry = |_: &Entry| {};
        let engine = self.engine(authority, &on_entry);
        engine.begin(header).await?;
        engine.hold(&header.id).await
    }

    /// Drives run `held` under `authority` — resumes it, or approves it — logging each
    /// entry; stopped the moment leadership is lost (the claim rides on the leader's lease).
    pub async fn drive_held(&self, authority: &Authority, held: Held, how: Drive<'_>) -> Result<RunSummary, String> {
        let progress = Progress::default();
        let on_entry = |e: &Entry| self.on_entry(&progress, e);
        let engine = self.engine(authority, &on_entry);
        let work = async {
            match how {
                Drive::Approve { by } => engine.approve_held(held, by).await,
                Drive::Resume { by } => engine.resume_held(held, by).await,
            }
        };
        self.authorized(authority, work).await?.map_err(|e| e.to_string())
    }

    /// An engine journaling through `authority`, logging each entry, driving as this daemon.
    pub fn engine<'a>(&'a self, authority: &'a Authority, on_entry: &'a (dyn Fn(&Entry) + Send + Sync)) -> Engine<'a> {
        self.cx.engine_with(authority.journal.as_ref(), on_entry).with_driver(&self.driver)
    }

    /// Finishes what a driver before this one started: the active run, when the journal shows
    /// it running (not paused, not awaiting a person) and no live driver holds it. A new
    /// leader does this as it wins; a daemon without etcd as it starts (its own run, left by
    /// a crash, would otherwise hold the active slot and refuse every later failover).
    async fn take_over(&self) {
        let Ok(authority) = self.authority().await else { return };
        let _one_at_a_time = self.starting.lock().await;
        // Only the active run can be running: one run is active at a time.
        let active = match authority.journal.active().await {
            Ok(active) => active,
            Err(e) => {
                tracing::warn!(vantage = %self.vantage, error = %e, "cannot read the journal to take over runs");
                return;
            }
        };
        let Some(run) = active.filter(|r| r.state == RunState::Running) else { return };
        let id = run.header.id.clone();
        let held = match self.hold(&authority, &id).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(vantage = %self.vantage, run = %id, "not taking over run {id}: {e}");
                return;
            }
        };
        tracing::warn!(vantage = %self.vantage, run = %id, "taking over run {id}, interrupted at step {}, from the journal", run.next_step().unwrap_or(run.header.steps.len()));
        match self.drive_held(&authority, held, Drive::Resume { by: None }).await {
            Ok(s) => {
                tracing::warn!(vantage = %self.vantage, run = %id, state = s.state.as_str(), "run taken over and driven to its end")
            }
            Err(e) => tracing::warn!(vantage = %self.vantage, run = %id, "taking over the run stopped: {e}"),
        }
        self.refresh_members().await;
    }

    /// Every journal entry this daemon writes: logged, and (built with the `fault-injection`
    /// feature, for tests only) the fault point of `super::faults`.
    pub fn on_entry(&self, progress: &Progress, entry: &Entry) {
        log_entry(&self.vantage, progress, entry);
        #[cfg(feature = "fault-injection")]
        super::faults::after_journaled(&self.vantage, entry);
    }

    /// Starts the daemon's loops (probes, world, autopilot, election) under its supervisor;
    /// they run until the process ends. The backup schedule starts beside them
    /// (`backups::spawn_schedule`), the peers' polling too (`peers::HttpPeers::spawn`).
    pub fn spawn(self: &Arc<Self>) {
        for region in self.cx.plan.service_regions() {
            for check in self.cx.plan.checks_for(region) {
                let (d, region, check) = (Arc::clone(self), region.to_string(), check.clone());
                let name = format!("probe {region}/{}", check.name);
                self.loops.spawn(name, Some(check.interval), Restart::WithBackoff, move |beat| {
                    let (d, region, check) = (Arc::clone(&d), region.clone(), check.clone());
                    async move { d.probe_loop(region, check, beat).await }
                });
            }
        }
        let d = Arc::clone(self);
        self.loops.spawn("world", Some(WORLD_ROUND), Restart::WithBackoff, move |beat| {
            let d = Arc::clone(&d);
            async move { d.world_loop(beat).await }
        });
        let d = Arc::clone(self);
        // A restarted loop would leave the run it was driving half done until the daemon
        // restarts (and resumes it) or another leader takes it over: exit, so that happens now.
        let driving = "a run it was driving would stay half done until the daemon restarts";
        self.loops.spawn("autopilot", Some(ROUND), Restart::Never(driving), move |beat| {
            let d = Arc::clone(&d);
            async move { d.autopilot_loop(beat).await }
        });
        if let Some(election) = self.election.clone() {
            let d = Arc::clone(self);
            // It waits on etcd, not in rounds: no heartbeat. Dead, it might leave this daemon
            // acting on a term whose lease nobody renews: exit, and let another daemon lead.
            let term = "this daemon would go on believing it leads on a lease nobody renews";
            self.loops.spawn("leadership", None, Restart::Never(term), move |_| {
                let (election, d) = (Arc::clone(&election), Arc::clone(&d));
                async move {
                    election
                        .run(&d.vantage, || {
                            let d = Arc::clone(&d);
                            tokio::spawn(async move { d.take_over().await });
                        })
                        .await
                }
            });
        } else {
            let d = Arc::clone(self);
            tokio::spawn(async move { d.take_over().await });
        }
    }

    /// This vantage's own report, as peers fetch it (signed when the plan sets a peer key).
    pub fn own_report(&self) -> VantageReport {
        let states: BTreeMap<(String, String), CheckState> =
            self.state().checks.iter().map(|(k, v)| (k.clone(), v.state.clone())).collect();
        let mut report = VantageReport::from_states(
            &self.cx.plan,
            &self.vantage,
            &states,
            now_ms(),
            vantage::report_ttl_ms(&self.cx.plan),
        );
        self.rules.seal(&mut report);
        report
    }

    /// Every report this vantage knows: its own first, then its peers' (fresh or not).
    pub async fn reports(&self) -> Vec<VantageReport> {
        let own = self.own_report();
        let others = self.exchange.others().await;
        std::iter::once(own).chain(others.into_iter().filter(|r| r.vantage != self.vantage)).collect()
    }

    async fn probe_loop(&self, region: String, check: Check, beat: Heartbeat) {
        // A random start within the interval, so thousands of checks do not all open
        // their sockets in the same millisecond (as Prometheus spreads its scrapes).
        // Checked: the reader caps intervals (duration::MAX_DURATION), and a start that still
        // would not fit on the clock is now rather than a panic in the loop.
        let offset = check.interval.mul_f64(rand::random::<f64>());
        let now = tokio::time::Instant::now();
        let mut tick = tokio::time::interval_at(now.checked_add(offset).unwrap_or(now), check.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let key = (region.clone(), check.name.clone());
        loop {
            tick.tick().await;
            beat.beat();
            let result = self.cx.adapters.providers().prober.probe(&check, &region).await;
            let mut shared = self.state();
            let entry = shared.checks.get_mut(&key).expect("entry per check");
            if let Some(health) = entry.state.record(result.ok) {
                tracing::info!(vantage = %self.vantage, %region, check = %check.name, health = health.as_str(), detail = %result.detail, "check changed");
            }
            entry.last = Some(result);
            // Once ready, always ready: do not walk every check after every probe.
            if !shared.ready {
                shared.ready = shared.checks.values().all(|c| c.last.is_some());
            }
        }
    }

    async fn world_loop(&self, beat: Heartbeat) {
        loop {
            beat.beat();
            self.refresh_members().await;
            self.fence_stale_primaries().await;
            // Until the next full read, watch the members last seen as a writable primary
            // that cannot be reached now: one may be an old primary about to come back
            // writable, to be fenced the moment it can be reached rather than a round later.
            // Only those: a member that is merely down or misconfigured is not worth
            // four connection attempts a second.
            let next = tokio::time::Instant::now() + WORLD_ROUND;
            loop {
                let watched: Vec<String> = {
                    let shared = self.state();
                    let lost = |r: &&String| shared.members.get(*r).is_some_and(MemberStatus::is_unreachable);
                    shared.last_writable.iter().filter(lost).cloned().collect()
                };
                if watched.is_empty() || tokio::time::Instant::now() + WATCH_ROUND >= next {
                    tokio::time::sleep_until(next).await;
                    break;
                }
                tokio::time::sleep(WATCH_ROUND).await;
                // A member that answers slowly must not hold back the next full read.
                if let Ok(true) = tokio::time::timeout_at(next, self.any_reachable(&watched)).await {
                    break;
                }
            }
        }
    }

    /// Whether one of `regions`' members can be reached now (a full read follows: the
    /// fence decides from one consistent view of every member).
    async fn any_reachable(&self, regions: &[String]) -> bool {
        let read = engine::join_all(regions.iter().map(|r| self.member(r))).await;
        read.iter().any(|m| !m.is_unreachable())
    }

    async fn member(&self, region: &str) -> MemberStatus {
        let status = self.cx.adapters.providers().database.member(region).await;
        status.unwrap_or_else(|e| MemberStatus::Unreachable { reason: e.message })
    }

    /// An old primary that comes back after a failover still accepts writes at its
    /// old epoch: fence it as soon as it is seen. Safe from any vantage — the one
    /// with the higher epoch is never touched.
    async fn fence_stale_primaries(&self) {
        let stale = vantage::stale_primaries(&self.state().members);
        if stale.is_empty() {
            return;
        }
        for (region, old, newest) in stale {
            tracing::warn!(vantage = %self.vantage, %region, "{region} came back as a writable primary at epoch {old} while epoch {newest} is newer: fencing it");
            if let Err(e) = self.cx.adapters.providers().database.fence(&region).await {
                tracing::warn!(vantage = %self.vantage, %region, "fencing the returning old primary failed: {e}");
            }
        }
        self.refresh_members().await;
    }

    async fn refresh_members(&self) {
        let members = engine::join_all(
            self.cx.plan.service_regions().map(|r| async move { (r.to_string(), self.member(r).await) }),
        )
        .await;
        let mut shared = self.state();
        for (region, member) in &members {
            match member {
                MemberStatus::Primary { writable: true, .. } => {
                    shared.last_writable.insert(region.clone());
                }
                MemberStatus::Unreachable { .. } => {}
                _ => {
                    shared.last_writable.remove(region);
                }
            }
        }
        shared.members = members.into_iter().collect();
    }

    async fn autopilot_loop(&self, beat: Heartbeat) {
        let mut rounds: u64 = 0;
        let mut backlog = false;
        loop {
            tokio::time::sleep(ROUND).await;
            beat.beat();
            rounds += 1;
            let now = now_ms();
            let reports = self.reports().await;
            // Published once a round, here: readers of the API and /metrics only look.
            self.exchange.publish(&reports[0]).await;
            let verdicts = vantage::verdicts(&self.cx.plan, &reports, now);
            // With an election the leader acts; otherwise the acting-vantage rule picks one.
            let acting = match &self.election {
                Some(election) => election.is_leader(),
                None => vantage::acting_vantage(&reports, &verdicts, now) == Some(self.vantage.as_str()),
            };
            {
                let mut shared = self.state();
                shared.verdicts = verdicts.clone();
                shared.acting = acting;
            }
            if acting && (backlog || rounds % TRIM_EVERY == 1) {
                backlog = self.trim_history().await;
            }
            let primary = self.primary_region();
            match autopilot::primary_down(&verdicts, &primary) {
                Ok(Some(_)) if acting => {}
                Ok(_) => continue,
                Err(refusal) => {
                    self.refused(refusal);
                    continue;
                }
            }
            // Observing the candidates and driving a failover take far longer than a round.
            if let Err(e) = beat.through(self.consider(&primary, &verdicts, now)).await {
                tracing::warn!(vantage = %self.vantage, error = %e, "autopilot could not look at the world");
            }
        }
    }

    /// One batch of the ended runs `journal.keep` no longer keeps, through the fenced
    /// journal: a backlog (a keep newly set on a long history) drains without waiting for a
    /// run to end. Returns whether more are due.
    async fn trim_history(&self) -> bool {
        let Some(keep) = &self.cx.plan.journal.keep else { return false };
        let Ok(authority) = self.authority().await else { return false };
        match authority.journal.prune(keep, now_ms()).await {
            Ok(pruned) => {
                if !pruned.removed.is_empty() {
                    tracing::info!(vantage = %self.vantage, removed = pruned.removed.len(), "removed ended runs past journal.keep");
                }
                pruned.more
            }
            Err(e) => {
                tracing::warn!(vantage = %self.vantage, error = %e, "could not remove ended runs past journal.keep");
                false
            }
        }
    }

    /// Whether this daemon does the work one daemon does: it leads the etcd election, or,
    /// without one, it was the acting vantage in the last autopilot round after its first
    /// round of probes.
    pub fn acts(&self) -> bool {
        match &self.election {
            Some(election) => election.is_leader(),
            // Not before every check has been probed once: until then this daemon has not
            // judged its own region, nor heard its peers, and would act beside them.
            None => {
                let shared = self.state();
                shared.ready && shared.acting
            }
        }
    }

    /// The primary region as the last world observation and the journal show it.
    pub fn primary_region(&self) -> String {
        let shared = self.state();
        drover_core::world::newest_primary(&shared.members).unwrap_or(self.cx.plan.planned_primary()).to_string()
    }

    /// The primary looks down: observe the candidates, run the gates, act.
    async fn consider(
        &self,
        primary: &str,
        verdicts: &BTreeMap<String, RegionVerdict>,
        now: u64,
    ) -> Result<(), String> {
        let _one_at_a_time = self.starting.lock().await;
        let others: Vec<&str> = self.cx.plan.service_regions().filter(|r| *r != primary).collect();
        let observed = self.cx.observe_regions(&others).await.map_err(|f| f.message)?;
        // Another region already holds a writable primary (a run here or elsewhere moved it):
        // the lost region is no longer the primary, so there is nothing to fail over.
        if let Some((moved, _)) = observed.writable_primaries().first() {
            tracing::info!(vantage = %self.vantage, "{moved} already holds the writable primary; {primary} is not the primary any more");
            let mut shared = self.state();
            for (region, status) in &observed.members {
                shared.members.insert(region.clone(), status.clone());
            }
            return Ok(());
        }
        let last_ended = last_move_ended(self.cx.journal.as_ref()).await.map_err(|e| e.to_string())?;
        let decision = autopilot::decide(&autopilot::Context {
            plan: &self.cx.plan,
            verdicts,
            observed: &observed,
            primary,
            last_run_ended_ms: last_ended,
            now_ms: now,
        });
        match decision {
            Decision::Hold => Ok(()),
            Decision::Refuse(refusal) => {
                self.refused(refusal);
                Ok(())
            }
            Decision::Failover { to, reason, .. } => self.start_run(&observed, &to, &reason, false).await,
            Decision::AskApproval { to, reason, .. } => self.start_run(&observed, &to, &reason, true).await,
        }
    }

    fn refused(&self, refusal: GateRefusal) {
        let mut shared = self.state();
        *shared.refusals.entry(refusal.label()).or_default() += 1;
        if shared.last_refusal.as_ref() != Some(&refusal) {
            tracing::warn!(vantage = %self.vantage, gate = refusal.label(), "automatic failover refused: {refusal}");
            // Once per new reason, not every round: a pager must not ring twice a second. A
            // minority view is not news for a person: only refusals once a quorum sees it down.
            if !matches!(refusal, GateRefusal::NoQuorum { .. }) {
                let event = NotifyEvent::new(&self.cx.plan, EventKind::FailoverRefused, refusal.to_string(), now_ms());
                self.cx.adapters.notifier.notify(event);
            }
        }
        shared.last_refusal = Some(refusal);
    }

    async fn start_run(&self, observed: &Observed, to: &str, reason: &str, ask: bool) -> Result<(), String> {
        let planned = engine::plan_run(&self.cx.plan, RunKind::Failover, to, observed, reason);
        let header = match planned {
            // The quorum judged the source region lost: only what the failover needs there counts.
            Ok(h) => match drover_core::preflight::for_run(
                &self.cx.plan,
                self.cx.adapters.providers(),
                &h,
                drover_core::preflight::Scope::TargetOnly,
            )
            .await
            {
                problems if problems.is_empty() => h,
                // Counted, logged and told to the notifiers once per reason, as the gates' are:
                // a daemon that will not fail over must not be silent about it.
                problems => {
                    let why = engine::Refusal::Preflight(problems).to_string();
                    self.refused(GateRefusal::Planner { why });
                    return Ok(());
                }
            },
            Err(refusal) => {
                self.refused(GateRefusal::Planner { why: refusal.to_string() });
                return Ok(());
            }
        };
        self.state().last_refusal = None;
        let authority = self.authority().await.map_err(|e| e.0)?;
        let progress = Progress::default();
        let on_entry = |e: &Entry| self.on_entry(&progress, e);
        let engine = self.engine(&authority, &on_entry);
        if ask {
            tracing::warn!(vantage = %self.vantage, run = %header.id, "failover to {to} waits for approval: {reason}");
            engine.open_for_approval(&header, reason).await.map_err(|e| e.to_string())?;
            return Ok(());
        }
        tracing::warn!(vantage = %self.vantage, run = %header.id, "automatic failover to {to}: {reason}");
        let summary = self.authorized(&authority, engine.start(&header)).await?.map_err(|e| e.to_string());
        // Look at the world again now, not in a few seconds: the primary has moved.
        self.refresh_members().await;
        let summary = summary?;
        tracing::warn!(vantage = %self.vantage, run = %header.id, state = summary.state.as_str(), "automatic failover ended");
        Ok(())
    }
}

/// When the most recent failover or switchover ended (for the cooldown).
pub async fn last_move_ended(journal: &dyn Journal) -> Result<Option<u64>, StoreError> {
    // A reprotect moves nothing: it must not hold back a failover that is needed.
    let moved = |r: &RunSummary| r.state == RunState::Completed && r.header.kind.moves_primary();
    Ok(history::newest_where(journal, moved).await?.and_then(|r| r.finished_ms))
}

/// A journal entry as one log line, worded as the CLI prints its progress.
pub fn log_entry(vantage: &str, progress: &Progress, entry: &Entry) {
    let Some(line) = progress.line(entry) else { return };
    match &entry.record {
        Record::Paused { .. } => tracing::warn!(%vantage, "{line}"),
        _ => tracing::info!(%vantage, "{line}"),
    }
}
