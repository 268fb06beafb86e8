//! In-memory world and journals for engine tests: here and in other crates
//! (the redb store runs the same crash test against its own journal).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::now_ms;
use crate::drill_log::{
    DrillEntry, DrillHeader, DrillId, DrillRecord, DrillSummary, DrillsPage, check_drill_appendable,
};
use crate::error::{ProviderError, StoreError};
use crate::history::{Keep, PageRequest, Pruned, RunStart, RunsPage, Sweep};
use crate::journal::{CapacitySeen, DriverClaim, Journal};
use crate::plan::Check;
use crate::run::{Entry, Epoch, Record, RunHeader, RunId, RunSummary};
use crate::world::{
    Capacity, Compute, Database, HostAccess, MemberStatus, ProbeResult, Prober, Size, Traffic, TrafficState, Units,
    WHOLE,
};

pub use crate::world::RejoinMethod;

/// A clock that moves only when something waits on it: `sleep` returns at once, the time
/// moved on by what was slept. A test drives a run through its timeouts and back-offs
/// without waiting, and reads on the clock how long the run would have taken.
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    pub fn starting_at(now_ms: u64) -> ManualClock {
        ManualClock { now_ms: AtomicU64::new(now_ms) }
    }
}

#[async_trait]
impl crate::clock::Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    async fn sleep(&self, duration: Duration) {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self.now_ms.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| Some(now.saturating_add(ms))).ok();
        // Once, so whatever the waiter races against gets its turn first.
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if yielded {
                return std::task::Poll::Ready(());
            }
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await;
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeMember {
    pub primary: bool,
    pub writable: bool,
    pub reachable: bool,
    pub epoch: Option<Epoch>,
    pub wal_lsn: u64,
    pub upstream: Option<String>,
    /// What a rejoin finds in the member's data directory.
    pub data: FakeData,
}

/// The knob that decides how a fake rejoin goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeData {
    /// pg_rewind can use it.
    Intact,
    /// pg_rewind cannot (no common ancestor): a base backup replaces it, the old one moved aside.
    Unrewindable,
    /// Gone: the server is down (the database unreachable) while the region is up.
    Lost,
}

/// Everything a test compares: two worlds are the same if these are equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorldSnapshot {
    pub members: BTreeMap<String, FakeMember>,
    pub traffic_region: String,
    pub traffic_epoch: Epoch,
    /// Standby → primary transitions: a correct engine makes exactly one per run.
    pub promotions: u32,
    /// The DNS server does not answer.
    pub traffic_unreachable: bool,
    /// Compute by (resource, region), unit by unit; read and resized only while the region's member is reachable.
    pub compute: BTreeMap<(String, String), Units>,
    /// Resources a preflight finds missing: a region's database member (`database:east`)
    /// or the traffic record (`traffic`). Compute is missing when `compute` lacks it.
    pub missing: std::collections::BTreeSet<String>,
    /// What the plan's own steps have done to the outside world (see `impl Hooks`).
    pub hooks_done: std::collections::BTreeSet<String>,
}

/// A two-region world: `east` primary with traffic, `west` its standby.
pub struct FakeWorld {
    pub state: Mutex<WorldSnapshot>,
    promote_calls: AtomicU64,
    promote_kinds: Mutex<Vec<crate::run::RunKind>>,
    notified: Mutex<Vec<crate::notify::NotifyEvent>>,
    /// How often each hook action was made (not observed): "called twice" shows here.
    hook_calls: Mutex<BTreeMap<String, u64>>,
}

impl FakeWorld {
    pub fn two_regions() -> FakeWorld {
        let member = |primary: bool| FakeMember {
            primary,
            writable: primary,
            reachable: true,
            epoch: None,
            wal_lsn: 1000,
            upstream: (!primary).then(|| "east".to_string()),
            data: FakeData::Intact,
        };
        FakeWorld {
            state: Mutex::new(WorldSnapshot {
                members: [("east".into(), member(true)), ("west".into(), member(false))].into(),
                traffic_region: "east".into(),
                traffic_epoch: 0,
                promotions: 0,
                traffic_unreachable: false,
                compute: BTreeMap::new(),
                missing: Default::default(),
                hooks_done: Default::default(),
            }),
            promote_calls: AtomicU64::new(0),
            promote_kinds: Mutex::default(),
            notified: Mutex::new(Vec::new()),
            hook_calls: Mutex::new(BTreeMap::new()),
        }
    }

    /// The world after a failover to west with east unreachable at the time: west is the
    /// writable primary at epoch 1 with traffic, east is back and still believes it is
    /// primary (writable, no epoch), as an old primary returns when nothing fenced it.
    pub fn after_failover() -> FakeWorld {
        let world = FakeWorld::two_regions();
        {
            let mut s = world.state.lock().unwrap();
            let west = s.members.get_mut("west").unwrap();
            (west.primary, west.writable, west.epoch, west.upstream) = (true, true, Some(1), None);
            (s.traffic_region, s.traffic_epoch) = ("west".into(), 1);
        }
        world
    }

    /// After `after_failover` and a reprotect: east is a streaming standby of west.
    pub fn reprotected() -> FakeWorld {
        let world = FakeWorld::after_failover();
        {
            let mut s = world.state.lock().unwrap();
            let east = s.members.get_mut("east").unwrap();
            (east.primary, east.writable, east.upstream) = (false, false, Some("west".into()));
        }
        world
    }

    /// Gives `resource`, scaled as a whole, `desired` (all ready, min 1, max twice it) in `region`.
    pub fn set_compute(&self, resource: &str, region: &str, desired: u32) {
        self.set_unit(resource, region, WHOLE, desired);
    }

    /// Gives one unit of `resource` (a workload) `desired` (all ready, min 1, max twice it) in `region`.
    pub fn set_unit(&self, resource: &str, region: &str, unit: &str, desired: u32) {
        let capacity = Capacity { desired, min: desired.min(1), max: desired * 2, ready: desired };
        let mut s = self.state.lock().unwrap();
        s.compute.entry((resource.into(), region.into())).or_default().insert(unit.into(), capacity);
    }

    /// What `resource`, scaled as a whole, runs in `region`.
    pub fn compute(&self, resource: &str, region: &str) -> Capacity {
        self.unit(resource, region, WHOLE)
    }

    pub fn unit(&self, resource: &str, region: &str, unit: &str) -> Capacity {
        self.state.lock().unwrap().compute[&(resource.to_string(), region.to_string())][unit]
    }

    pub fn set_data(&self, region: &str, data: FakeData) {
        self.state.lock().unwrap().members.get_mut(region).unwrap().data = data;
    }

    /// The run kind each `promote` call was given, in order.
    pub fn promote_kinds(&self) -> Vec<crate::run::RunKind> {
        self.promote_kinds.lock().unwrap().clone()
    }

    /// Every call of `promote`, even a no-op: a resumed run must not repeat it.
    /// How often the hook action `key` (a URL, or an `[act, key]` command's key) was made.
    pub fn hook_calls(&self, key: &str) -> u64 {
        self.hook_calls.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn hook_acts(&self, key: &str) {
        *self.hook_calls.lock().unwrap().entry(key.to_owned()).or_default() += 1;
        self.state.lock().unwrap().hooks_done.insert(key.to_owned());
    }

    fn hook_done(&self, key: &str) -> bool {
        self.state.lock().unwrap().hooks_done.contains(key)
    }

    pub fn promote_calls(&self) -> u64 {
        self.promote_calls.load(Ordering::SeqCst)
    }

    /// Every notification the engine sent, oldest first.
    pub fn notified(&self) -> Vec<crate::notify::NotifyEvent> {
        self.notified.lock().unwrap().clone()
    }

    pub fn snapshot(&self) -> WorldSnapshot {
        self.state.lock().unwrap().clone()
    }

    pub fn set_reachable(&self, region: &str, reachable: bool) {
        self.state.lock().unwrap().members.get_mut(region).unwrap().reachable = reachable;
    }

    fn with_member<T>(&self, region: &str, f: impl FnOnce(&mut FakeMember) -> T) -> Result<T, ProviderError> {
        let mut s = self.state.lock().unwrap();
        let m =
            s.members.get_mut(region).ok_or_else(|| ProviderError::permanent(format!("{region}: no such member")))?;
        if !m.reachable {
            return Err(ProviderError::transient(format!("{region}: connection refused")));
        }
        Ok(f(m))
    }
}

impl crate::notify::Notifier for FakeWorld {
    fn notify(&self, event: crate::notify::NotifyEvent) {
        self.notified.lock().unwrap().push(event);
    }
}

/// An outside world for the plan's own steps. HTTP: a request other than GET acts on its
/// URL and answers 200; a GET of `<url>/done` answers 200 once `<url>` was acted on, else
/// 404. Commands: `[act, <key>]` acts on `<key>` and exits 0; `[done, <key>]` exits 0 once
/// `<key>` was acted on, else 1; `[fail, …]` exits 3. Secrets are never resolved.
#[async_trait]
impl crate::world::Hooks for FakeWorld {
    async fn http(&self, request: &crate::world::HttpRequest) -> Result<crate::world::HttpAnswer, ProviderError> {
        let crate::secret::SecretText::Plain(url) = &request.url else {
            return Err(ProviderError::permanent("the fake world calls only plain URLs"));
        };
        let status = if request.method == "GET" {
            let done = url.strip_suffix("/done").is_some_and(|of| self.hook_done(of));
            if done { 200 } else { 404 }
        } else {
            self.hook_acts(url);
            200
        };
        Ok(crate::world::HttpAnswer { status, body: String::new() })
    }

    async fn exec(&self, command: &crate::world::CommandLine) -> Result<crate::world::CommandExit, ProviderError> {
        let code = match command.argv.as_slice() {
            [act, key] if act == "act" => {
                self.hook_acts(key);
                0
            }
            [done, key] if done == "done" => i32::from(!self.hook_done(key)),
            [fail, ..] if fail == "fail" => 3,
            other => return Err(ProviderError::permanent(format!("the fake world cannot run {other:?}"))),
        };
        Ok(crate::world::CommandExit { code: Some(code), output: String::new() })
    }
}

#[async_trait]
impl Database for FakeWorld {
    async fn member(&self, region: &str) -> Result<MemberStatus, ProviderError> {
        let s = self.state.lock().unwrap();
        let m = &s.members[region];
        if !m.reachable || m.data == FakeData::Lost {
            return Ok(MemberStatus::Unreachable { reason: "connection refused".into() });
        }
        Ok(if m.primary {
            MemberStatus::Primary {
                writable: m.writable,
                epoch: m.epoch,
                wal_lsn: Some(m.wal_lsn),
                sync_standbys: None,
            }
        } else {
            // A standby replays its primary's epoch table: it holds the epoch of the member it
            // follows (as last seen, if that member is lost), else what it last replayed.
            let epoch = m.upstream.as_ref().and_then(|u| s.members.get(u)).map_or(m.epoch, |up| up.epoch);
            MemberStatus::Standby {
                lag_bytes: Some(0),
                lag_seconds: Some(0.0),
                replay_lsn: Some(m.wal_lsn),
                epoch,
                upstream: m.upstream.clone(),
            }
        })
    }

    async fn fence(&self, region: &str) -> Result<(), ProviderError> {
        self.with_member(region, |m| m.writable = false)
    }

    async fn promote(&self, region: &str, kind: crate::run::RunKind) -> Result<(), ProviderError> {
        self.promote_calls.fetch_add(1, Ordering::SeqCst);
        self.promote_kinds.lock().unwrap().push(kind);
        let promoted = self.with_member(region, |m| {
            let was_standby = !m.primary;
            m.primary = true;
            m.writable = true;
            m.upstream = None;
            was_standby
        })?;
        if promoted {
            self.state.lock().unwrap().promotions += 1;
        }
        Ok(())
    }

    async fn record_epoch(&self, region: &str, epoch: Epoch, _run: &RunId) -> Result<(), ProviderError> {
        self.with_member(region, |m| {
            if m.primary && m.writable {
                m.epoch = Some(m.epoch.unwrap_or(0).max(epoch));
                Ok(())
            } else {
                Err(ProviderError::permanent(format!("{region}: read-only, cannot record the epoch")))
            }
        })?
    }

    async fn rejoin(&self, region: &str, primary: &str) -> Result<RejoinMethod, ProviderError> {
        self.with_member(region, |m| {
            let method = match m.data {
                FakeData::Lost => RejoinMethod::BaseBackup { why: "no usable data directory".into(), old_data: None },
                FakeData::Unrewindable => RejoinMethod::BaseBackup {
                    why: "could not find common ancestor of the source and target cluster's timelines".into(),
                    old_data: Some(format!("/data/{region}.drover-1")),
                },
                FakeData::Intact if !m.primary && m.upstream.as_deref() == Some(primary) => {
                    RejoinMethod::AlreadyFollowing
                }
                FakeData::Intact => RejoinMethod::Rewind,
            };
            m.primary = false;
            m.writable = false;
            m.upstream = Some(primary.to_string());
            m.data = FakeData::Intact;
            method
        })
    }

    async fn unfence(&self, region: &str) -> Result<(), ProviderError> {
        self.with_member(region, |m| {
            if m.primary {
                m.writable = true;
            }
        })
    }

    async fn preflight(&self, region: &str, _fences: bool) -> crate::world::Preflight {
        let missing = self.state.lock().unwrap().missing.contains(&format!("database:{region}"));
        if missing { vec![format!("database member {region}: no such instance")] } else { Vec::new() }
    }

    async fn host_access(&self, region: &str) -> HostAccess {
        match self.state.lock().unwrap().members.get(region) {
            Some(m) if m.reachable => HostAccess::Reachable("pg_ctl status: ok".into()),
            Some(_) => HostAccess::Unreachable(format!("ssh: connect to host {region}: Connection timed out")),
            None => HostAccess::NotConfigured,
        }
    }
}

#[async_trait]
impl Traffic for FakeWorld {
    async fn preflight(&self) -> crate::world::Preflight {
        let missing = self.state.lock().unwrap().missing.contains("traffic");
        if missing { vec!["traffic record: no record set with the plan's identifier".into()] } else { Vec::new() }
    }

    async fn current(&self) -> Result<TrafficState, ProviderError> {
        let s = self.state.lock().unwrap();
        if s.traffic_unreachable {
            return Err(ProviderError::transient("dns: timed out"));
        }
        // An empty region: traffic split between regions (a staged shift stopped part way).
        let region = (!s.traffic_region.is_empty()).then(|| s.traffic_region.clone());
        Ok(TrafficState { region, addresses: vec![], epoch: s.traffic_epoch })
    }

    async fn switch(&self, region: &str, observed_epoch: Epoch, new_epoch: Epoch) -> Result<(), ProviderError> {
        let mut s = self.state.lock().unwrap();
        if s.traffic_epoch != observed_epoch && s.traffic_epoch != new_epoch {
            return Err(ProviderError::permanent(format!(
                "epoch precondition failed: record holds {}, expected {observed_epoch}",
                s.traffic_epoch
            )));
        }
        s.traffic_region = region.into();
        s.traffic_epoch = new_epoch;
        Ok(())
    }
}

#[async_trait]
impl Prober for FakeWorld {
    async fn probe(&self, _check: &Check, region: &str) -> ProbeResult {
        let s = self.state.lock().unwrap();
        let ok = s.members.get(region).is_some_and(|m| m.reachable);
        ProbeResult { ok, latency: Duration::from_millis(1), detail: if ok { "ok".into() } else { "timeout".into() } }
    }
}

#[async_trait]
impl Compute for FakeWorld {
    async fn capacity(&self, resource: &str, region: &str) -> Result<Units, ProviderError> {
        let s = self.state.lock().unwrap();
        if !s.members.get(region).is_some_and(|m| m.reachable) {
            return Err(ProviderError::transient(format!("{region}: compute API unreachable")));
        }
        s.compute
            .get(&(resource.to_string(), region.to_string()))
            .cloned()
            .ok_or_else(|| ProviderError::permanent(format!("{region}: no compute {resource}")))
    }

    async fn preflight(&self, resource: &str, region: &str) -> crate::world::Preflight {
        let s = self.state.lock().unwrap();
        let plain = !s.compute.keys().any(|(r, _)| r == resource);
        if plain || s.compute.contains_key(&(resource.to_string(), region.to_string())) {
            Vec::new()
        } else {
            vec![format!("compute {resource} in {region}: no such resource")]
        }
    }

    async fn resize(&self, resource: &str, region: &str, sizes: &BTreeMap<String, Size>) -> Result<(), ProviderError> {
        let mut s = self.state.lock().unwrap();
        if !s.members.get(region).is_some_and(|m| m.reachable) {
            return Err(ProviderError::transient(format!("{region}: compute API unreachable")));
        }
        let units = s.compute.entry((resource.into(), region.into())).or_default();
        for (unit, &Size { desired, min, max }) in sizes {
            units.insert(unit.clone(), Capacity { desired, min, max, ready: desired });
        }
        Ok(())
    }
}

/// A journal in memory.
#[derive(Default)]
pub struct MemoryJournal {
    inner: Mutex<(Vec<(RunId, Entry)>, Epoch)>,
    seq: AtomicU64,
    capacities: Mutex<BTreeMap<(String, String), CapacitySeen>>,
    /// run -> (claim token, holder): the memory journal lives in one process, so a claim
    /// holds until it is released.
    drivers: Mutex<BTreeMap<RunId, (String, String)>>,
    /// Drill records, oldest first.
    drills: Mutex<Vec<(DrillId, DrillEntry)>>,
}

impl MemoryJournal {
    fn push(&self, entries: &mut Vec<(RunId, Entry)>, run: &RunId, record: Record) -> Entry {
        let entry = Entry { seq: self.seq.fetch_add(1, Ordering::SeqCst) + 1, at_ms: now_ms(), record };
        entries.push((run.clone(), entry.clone()));
        entry
    }
}

#[async_trait]
impl Journal for MemoryJournal {
    async fn begin(&self, header: &RunHeader) -> Result<Entry, StoreError> {
        if let Some(active) = self.active().await? {
            return Err(StoreError::ActiveRun { active: active.header.id.0 });
        }
        let mut inner = self.inner.lock().unwrap();
        Ok(self.push(&mut inner.0, &header.id, Record::Started { header: header.clone() }))
    }

    async fn append(&self, run: &RunId, record: Record) -> Result<Entry, StoreError> {
        let mut inner = self.inner.lock().unwrap();
        let entries: Vec<Entry> = inner.0.iter().filter(|(r, _)| r == run).map(|(_, e)| e.clone()).collect();
        crate::run::check_appendable(run, &entries, &record)?;
        Ok(self.push(&mut inner.0, run, record))
    }

    async fn entries(&self, run: &RunId) -> Result<Vec<Entry>, StoreError> {
        let entries: Vec<Entry> =
            self.inner.lock().unwrap().0.iter().filter(|(r, _)| r == run).map(|(_, e)| e.clone()).collect();
        if entries.is_empty() {
            return Err(StoreError::UnknownRun(run.0.clone()));
        }
        Ok(entries)
    }

    async fn epoch(&self) -> Result<Epoch, StoreError> {
        Ok(self.inner.lock().unwrap().1)
    }

    async fn compare_and_swap_epoch(&self, expected: Epoch, new: Epoch) -> Result<Result<(), Epoch>, StoreError> {
        let mut g = self.inner.lock().unwrap();
        if g.1 != expected {
            return Ok(Err(g.1));
        }
        g.1 = new;
        Ok(Ok(()))
    }

    async fn note_capacity(&self, resource: &str, region: &str, seen: CapacitySeen) -> Result<(), StoreError> {
        self.capacities.lock().unwrap().insert((resource.into(), region.into()), seen);
        Ok(())
    }

    async fn noted_capacity(&self, resource: &str, region: &str) -> Result<Option<CapacitySeen>, StoreError> {
        Ok(self.capacities.lock().unwrap().get(&(resource.to_string(), region.to_string())).cloned())
    }

    async fn claim_run(&self, run: &RunId, who: &str) -> Result<DriverClaim, StoreError> {
        let mut drivers = self.drivers.lock().unwrap();
        if let Some((_, holder)) = drivers.get(run) {
            return Err(StoreError::Driven { run: run.0.clone(), holder: holder.clone() });
        }
        let token = format!("claim-{}", self.seq.fetch_add(1, Ordering::SeqCst) + 1);
        drivers.insert(run.clone(), (token.clone(), who.to_owned()));
        Ok(DriverClaim { token, forget: None })
    }

    async fn release_run(&self, run: &RunId, claim: &DriverClaim) -> Result<(), StoreError> {
        let mut drivers = self.drivers.lock().unwrap();
        if drivers.get(run).is_some_and(|(token, _)| *token == claim.token) {
            drivers.remove(run);
        }
        Ok(())
    }

    async fn page(&self, request: &PageRequest) -> Result<RunsPage, StoreError> {
        let runs = self.summaries();
        let from = match &request.before {
            Some(before) => match runs.iter().position(|r| &r.header.id == before) {
                Some(at) => at + 1,
                None => return Err(StoreError::UnknownRun(before.0.clone())),
            },
            None => 0,
        };
        let mut page: Vec<RunSummary> = runs.into_iter().skip(from).take(request.limit + 1).collect();
        let next = (page.len() > request.limit).then(|| {
            page.truncate(request.limit);
            page[request.limit - 1].header.id.clone()
        });
        Ok(RunsPage { runs: page, next })
    }

    async fn active(&self) -> Result<Option<RunSummary>, StoreError> {
        Ok(self.summaries().into_iter().find(|r| r.state.is_active()))
    }

    async fn prune(&self, keep: &Keep, now_ms: u64) -> Result<Pruned, StoreError> {
        let runs = self.summaries();
        let active = runs.iter().find(|r| r.state.is_active()).map(|r| r.header.id.clone());
        let mut sweep = Sweep::new(keep, now_ms, active);
        for run in &runs {
            if !sweep.consider(&RunStart::of(run)) {
                break;
            }
        }
        let pruned = sweep.finish();
        self.inner.lock().unwrap().0.retain(|(run, _)| !pruned.removed.contains(run));
        Ok(pruned)
    }

    async fn begin_drill(&self, header: &DrillHeader) -> Result<DrillEntry, StoreError> {
        if let Some(active) = self.active_drill().await? {
            return Err(StoreError::ActiveDrill { active: active.header.id.0 });
        }
        let mut drills = self.drills.lock().unwrap();
        Ok(self.push_drill(&mut drills, &header.id, DrillRecord::Started { header: header.clone() }))
    }

    async fn append_drill(&self, drill: &DrillId, record: DrillRecord) -> Result<DrillEntry, StoreError> {
        let mut drills = self.drills.lock().unwrap();
        let entries: Vec<DrillEntry> = drills.iter().filter(|(d, _)| d == drill).map(|(_, e)| e.clone()).collect();
        check_drill_appendable(drill, &entries, &record)?;
        Ok(self.push_drill(&mut drills, drill, record))
    }

    async fn drill_entries(&self, drill: &DrillId) -> Result<Vec<DrillEntry>, StoreError> {
        let entries: Vec<DrillEntry> =
            self.drills.lock().unwrap().iter().filter(|(d, _)| d == drill).map(|(_, e)| e.clone()).collect();
        if entries.is_empty() {
            return Err(StoreError::UnknownDrill(drill.0.clone()));
        }
        Ok(entries)
    }

    async fn drill_page(&self, request: &PageRequest) -> Result<DrillsPage, StoreError> {
        let drills = self.drill_summaries();
        let from = match &request.before {
            Some(before) => match drills.iter().position(|d| &d.header.id == before) {
                Some(at) => at + 1,
                None => return Err(StoreError::UnknownDrill(before.0.clone())),
            },
            None => 0,
        };
        let mut page: Vec<DrillSummary> = drills.into_iter().skip(from).take(request.limit + 1).collect();
        let next = (page.len() > request.limit).then(|| {
            page.truncate(request.limit);
            page[request.limit - 1].header.id.clone()
        });
        Ok(DrillsPage { drills: page, next })
    }

    async fn active_drill(&self) -> Result<Option<DrillSummary>, StoreError> {
        Ok(self.drill_summaries().into_iter().find(|d| d.state.is_active()))
    }

    async fn prune_drills(&self, keep: &Keep, now_ms: u64) -> Result<Pruned, StoreError> {
        let drills = self.drill_summaries();
        let active = drills.iter().find(|d| d.state.is_active()).map(|d| d.header.id.clone());
        let mut sweep = Sweep::new(keep, now_ms, active);
        for drill in &drills {
            if !sweep.consider(&RunStart::of_drill(&drill.header, drill.started_ms)) {
                break;
            }
        }
        let pruned = sweep.finish();
        self.drills.lock().unwrap().retain(|(drill, _)| !pruned.removed.contains(drill));
        Ok(pruned)
    }
}

impl MemoryJournal {
    /// Every drill, newest first.
    fn drill_summaries(&self) -> Vec<DrillSummary> {
        let entries = self.drills.lock().unwrap().clone();
        let mut ids: Vec<DrillId> = Vec::new();
        for (drill, _) in &entries {
            if !ids.contains(drill) {
                ids.push(drill.clone());
            }
        }
        ids.iter()
            .rev()
            .filter_map(|id| {
                let mine: Vec<DrillEntry> = entries.iter().filter(|(d, _)| d == id).map(|(_, e)| e.clone()).collect();
                DrillSummary::fold(&mine)
            })
            .collect()
    }

    fn push_drill(&self, drills: &mut Vec<(DrillId, DrillEntry)>, drill: &DrillId, record: DrillRecord) -> DrillEntry {
        let entry = DrillEntry { seq: self.seq.fetch_add(1, Ordering::SeqCst) + 1, at_ms: now_ms(), record };
        drills.push((drill.clone(), entry.clone()));
        entry
    }

    /// Every run, newest first: in memory there is no cliff to avoid.
    fn summaries(&self) -> Vec<RunSummary> {
        let entries = self.inner.lock().unwrap().0.clone();
        let mut ids: Vec<RunId> = Vec::new();
        for (run, _) in &entries {
            if !ids.contains(run) {
                ids.push(run.clone());
            }
        }
        ids.iter()
            .rev()
            .filter_map(|id| {
                let mine: Vec<Entry> = entries.iter().filter(|(r, _)| r == id).map(|(_, e)| e.clone()).collect();
                RunSummary::fold(&mine)
            })
            .collect()
    }
}

/// Wraps a journal and "crashes" right after its Nth write: that write lands,
/// then it and every later call fail, as if the process had died.
pub struct CrashingJournal<'a> {
    pub inner: &'a dyn Journal,
    pub crash_after: u64,
    writes: AtomicU64,
    /// The crash comes while record `crash_after` is written, and loses it: what the
    /// step did to the world is done, but the journal never heard.
    loses_last: bool,
}

impl<'a> CrashingJournal<'a> {
    /// Crashes right after record `crash_after` is written.
    pub fn new(inner: &'a dyn Journal, crash_after: u64) -> Self {
        CrashingJournal { inner, crash_after, writes: AtomicU64::new(0), loses_last: false }
    }

    /// Crashes while record `crash_before` is written: it never reaches the journal.
    pub fn losing(inner: &'a dyn Journal, crash_before: u64) -> Self {
        CrashingJournal { inner, crash_after: crash_before, writes: AtomicU64::new(0), loses_last: true }
    }

    /// Before a write: a losing crash refuses the record it loses.
    fn lost(&self) -> Result<(), StoreError> {
        let next = self.writes.load(Ordering::SeqCst) + 1;
        if self.loses_last && next >= self.crash_after {
            self.writes.store(self.crash_after, Ordering::SeqCst);
            return Err(StoreError::Crashed(next));
        }
        Ok(())
    }

    pub fn crashed(&self) -> bool {
        self.writes.load(Ordering::SeqCst) >= self.crash_after
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.crashed() { Err(StoreError::Crashed(self.crash_after)) } else { Ok(()) }
    }

    fn wrote(&self) -> Result<(), StoreError> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.crash_after { Err(StoreError::Crashed(n)) } else { Ok(()) }
    }
}

#[async_trait]
impl Journal for CrashingJournal<'_> {
    async fn begin(&self, header: &RunHeader) -> Result<Entry, StoreError> {
        self.check()?;
        self.lost()?;
        let e = self.inner.begin(header).await?;
        self.wrote().map(|_| e)
    }
    async fn append(&self, run: &RunId, record: Record) -> Result<Entry, StoreError> {
        self.check()?;
        self.lost()?;
        let e = self.inner.append(run, record).await?;
        self.wrote().map(|_| e)
    }
    async fn entries(&self, run: &RunId) -> Result<Vec<Entry>, StoreError> {
        self.check()?;
        self.inner.entries(run).await
    }
    async fn page(&self, request: &PageRequest) -> Result<RunsPage, StoreError> {
        self.check()?;
        self.inner.page(request).await
    }
    async fn active(&self) -> Result<Option<RunSummary>, StoreError> {
        self.check()?;
        self.inner.active().await
    }
    async fn prune(&self, keep: &Keep, now_ms: u64) -> Result<Pruned, StoreError> {
        self.check()?;
        self.inner.prune(keep, now_ms).await
    }
    async fn epoch(&self) -> Result<Epoch, StoreError> {
        self.check()?;
        self.inner.epoch().await
    }
    async fn compare_and_swap_epoch(&self, expected: Epoch, new: Epoch) -> Result<Result<(), Epoch>, StoreError> {
        self.check()?;
        self.inner.compare_and_swap_epoch(expected, new).await
    }
    // Notes are observations, not records: they do not count towards the crash.
    async fn note_capacity(&self, resource: &str, region: &str, seen: CapacitySeen) -> Result<(), StoreError> {
        self.check()?;
        self.inner.note_capacity(resource, region, seen).await
    }
    async fn noted_capacity(&self, resource: &str, region: &str) -> Result<Option<CapacitySeen>, StoreError> {
        self.check()?;
        self.inner.noted_capacity(resource, region).await
    }
    async fn claim_run(&self, run: &RunId, who: &str) -> Result<DriverClaim, StoreError> {
        self.check()?;
        self.inner.claim_run(run, who).await
    }
    // A claim dies with the process that held it (the stores see it gone); the crash here
    // is simulated inside one process, so the claim is let go as a dead process's would be.
    async fn release_run(&self, run: &RunId, claim: &DriverClaim) -> Result<(), StoreError> {
        self.inner.release_run(run, claim).await
    }
    // Drill records are not the run's: they do not count towards the crash.
    async fn begin_drill(&self, header: &DrillHeader) -> Result<DrillEntry, StoreError> {
        self.check()?;
        self.inner.begin_drill(header).await
    }
    async fn append_drill(&self, drill: &DrillId, record: DrillRecord) -> Result<DrillEntry, StoreError> {
        self.check()?;
        self.inner.append_drill(drill, record).await
    }
    async fn drill_entries(&self, drill: &DrillId) -> Result<Vec<DrillEntry>, StoreError> {
        self.check()?;
        self.inner.drill_entries(drill).await
    }
    async fn drill_page(&self, request: &PageRequest) -> Result<DrillsPage, StoreError> {
        self.check()?;
        self.inner.drill_page(request).await
    }
    async fn active_drill(&self) -> Result<Option<DrillSummary>, StoreError> {
        self.check()?;
        self.inner.active_drill().await
    }
    async fn prune_drills(&self, keep: &Keep, now_ms: u64) -> Result<Pruned, StoreError> {
        self.check()?;
        self.inner.prune_drills(keep, now_ms).await
    }
}

pub mod scenarios;
