//! A drill on any plan: the plan's canary writes through the service's front door, one
//! fault injector breaks the primary region, the plan's checks detect it, drover fails
//! over, and what clients saw is measured; then the fault is undone. Journaled from the
//! moment anything is touched (`drover_core::drill_log`), so a drill that dies with its
//! fault in place is found and undone by `drover drill abort|resume ID`.
//!
//! Guard rails, all before anything is touched: the fault must fit the plan, the run
//! must plan and pass its preflight, readiness must not fail, and no stop condition
//! (`drill.stop_when`) may be in ALARM. While the drill runs, Ctrl-C or a stop condition
//! going to ALARM aborts it at the next safe point: never inside the failover run, which
//! is always driven to its end (a run half done is worse than a drill cut short).

use std::sync::Arc;
use std::time::Duration;

use drover_adapters::canary::{Canary, RunningCanary};
use drover_adapters::faults::{FaultSettings, injector_for};
use drover_adapters::stop_conditions::StopConditions;
use drover_core::clock::{Ids, SystemClock};
use drover_core::detect;
use drover_core::drill::{self, DrillReport, Observations, WriteSample};
use drover_core::drill_log::{DrillOutcome, DrillPhase, DrillRecord, DrillSummary};
use drover_core::engine::{self, now_ms};
use drover_core::fault::{FaultKind, FaultState, Injector};
use drover_core::run::{Entry, RunKind, RunState, RunSummary};
use tokio::sync::watch;

use crate::app::context::Context;
use crate::app::drills::{DrillLog, DrillStart};
use crate::app::error::{Failure, engine_failure, refused};
use crate::app::plan::EnvSecrets;
use crate::app::progress::Progress;

/// What a person (or a schedule) asks a drill to do.
pub struct DrillAsk {
    pub fault: FaultKind,
    /// Where the fault goes; None: the current primary's region.
    pub region: Option<String>,
    pub requested_by: String,
    /// How long writes must succeed again before the drill ends.
    pub settle: Duration,
    /// Give up detecting the fault after this long.
    pub detect_timeout: Duration,
    /// Run the drill even though readiness fails (the rules that fail are still shown).
    pub despite_readiness: bool,
}

/// How often the stop conditions are read while a drill runs.
const STOP_LOOK_EVERY: Duration = Duration::from_secs(5);
/// Acknowledged writes the canary must see before anything is broken.
const BEFORE_FAULT: Duration = Duration::from_secs(2);

/// Runs a drill on the plan `cx` opened. Returns the report; a drill that could not be
/// measured, or was stopped, is an error saying why and what state the world is in.
pub async fn run(cx: &Context, ask: &DrillAsk, progress: &Progress) -> Result<(String, DrillReport), Failure> {
    let plan = &cx.plan;
    let observed = cx.observe().await?;
    let from = observed.current_primary(plan).to_string();
    let region = ask.region.clone().unwrap_or_else(|| from.clone());
    if region != from {
        return Err(Failure::input(format!(
            "drill refused: the drill measures losing the primary, which is {from}; use --fault {}:{from}",
            ask.fault
        )));
    }
    let to = plan
        .service_regions()
        .find(|r| *r != from)
        .ok_or_else(|| Failure::input("drill refused: the plan has no standby region to fail over to"))?
        .to_string();
    ask.fault.can_inject(plan, &region).map_err(|why| Failure::input(format!("drill refused: {why}")))?;
    let kind = run_kind(ask.fault);
    // The run the drill will make must be one drover would make now, preflight included.
    let request = crate::app::runs::Request::Move { kind, to: &to, accept_data_loss: false };
    crate::app::runs::PlanRequest::plan_with(request, cx, &observed, "drill").await.map_err(|r| {
        let f = refused(kind, &r);
        Failure::new(f.class, format!("drill refused: {}", f.message))
    })?;
    guard_readiness(cx, ask.despite_readiness, progress).await?;
    let stops = StopConditions::from_plan(plan).map_err(|e| Failure::input(e.0))?;
    refuse_if_stopped(&stops, "drill refused").await?;
    let canary = Canary::from_plan(plan, &EnvSecrets, Some(cx.adapters.traffic()))
        .map_err(|e| Failure::input(format!("drill refused: {e}")))?;
    let id = SystemClock.drill_id(now_ms());
    let injector = build_injector(cx, ask.fault, &region, &id.0)?;

    let log = DrillLog::begin_as(
        cx.journal.as_ref(),
        plan.journal.keep,
        &id,
        DrillStart {
            plan: &plan.name,
            fault: ask.fault.name(),
            region: &region,
            from: &from,
            to: &to,
            requested_by: &ask.requested_by,
        },
    )
    .await?;
    progress.say(&format!("drill {id}: {} in {region}, {from} -> {to}; canary: {}", ask.fault, canary.describe()));
    let stop = Stop::watch(stops);
    let mut fault: Option<FaultState> = None;
    let result = measure(cx, ask, &log, &canary, injector.as_ref(), &mut fault, &stop, progress, (&from, &to)).await;
    // Journaled from here: whatever went wrong, something was touched, so never exit 2.
    let result = result.map_err(|e| Failure::failed(e.message));
    let run_began = log_run_began(cx, &log).await;
    // The fault goes at the end, on a stop and on a failure — unless undoing it would bring
    // the old primary's database back as a second writer the failover did not fence.
    let undone = match &fault {
        Some(state) if !undo_is_safe(state.kind, run_began) => {
            progress.say(&kept_fault(state, &from, &log.id.0));
            Ok(())
        }
        Some(state) => undo(&log, injector.as_ref(), state, progress).await,
        None => Ok(()),
    };
    if let Err(undo_failed) = undone {
        // The drill stays unfinished, its fault in place: 'drover drill abort ID' tries again,
        // and no other drill starts meanwhile.
        let message = match &result {
            Err(e) => format!("{}; and then {}", e.message, undo_failed.message),
            Ok(_) => undo_failed.message,
        };
        return Err(Failure::failed(message));
    }
    let outcome = match &result {
        Ok(_) => (DrillOutcome::Completed, None),
        Err(e) if e.message.starts_with(STOPPED) => (DrillOutcome::Aborted, Some(e.message.clone())),
        Err(e) => (DrillOutcome::Failed, Some(e.message.clone())),
    };
    log.end_as(outcome.0, outcome.1).await;
    Ok((id.0, result?))
}

/// Whether the drill's run began (a phase was journaled): from then on the standby may be
/// the primary, and the old primary may be unfenced.
async fn log_run_began(cx: &Context, log: &DrillLog<'_>) -> bool {
    match cx.journal.drill(&log.id).await {
        Ok(summary) => !summary.phases.is_empty(),
        // Cannot tell: the safe answer keeps a reviving fault in place.
        Err(_) => true,
    }
}

/// Undoing a fault that brings the old primary's database back (a stopped RDS instance
/// started, a killed or paused PostgreSQL resumed, a cut network healed, an experiment's
/// actions rolled back) is safe only before the drill's run began: after it, that database
/// may come back writable beside the new primary.
fn undo_is_safe(kind: FaultKind, run_began: bool) -> bool {
    !(run_began && kind.revives_old_primary())
}

/// What the person is told when the fault stays.
fn kept_fault(state: &FaultState, from: &str, drill: &str) -> String {
    format!(
        "the {} fault stays in place: undoing it now would bring {from}'s database back beside the new primary, \
         possibly writable. {from} is an old primary: make it a standby of the new one (or fence it) first, then set \
         back by hand what the fault changed ({}); 'drover drills show {drill}' shows it",
        state.kind,
        state.targets.join(", ")
    )
}

/// The words an error starts with when the drill was stopped (Ctrl-C, a stop condition).
const STOPPED: &str = "drill stopped";

/// The run a drill of this fault makes: a planned switchover for `none`, else a failover.
fn run_kind(fault: FaultKind) -> RunKind {
    if fault == FaultKind::None { RunKind::Switchover } else { RunKind::Failover }
}

/// The drill's measured part: canary, fault, detection, the run, settling, read-back.
#[allow(clippy::too_many_arguments)]
async fn measure(
    cx: &Context,
    ask: &DrillAsk,
    log: &DrillLog<'_>,
    canary: &Canary,
    injector: &dyn Injector,
    fault: &mut Option<FaultState>,
    stop: &Stop,
    progress: &Progress,
    (from, to): (&str, &str),
) -> Result<DrillReport, Failure> {
    let plan = &cx.plan;
    canary.prepare().await.map_err(|e| Failure::failed(e.to_string()))?;
    let running = canary.start(&log.id.0).map_err(|e| Failure::failed(e.to_string()))?;
    let timeout = plan.drill.canary.as_ref().map_or(Duration::from_secs(2), |c| c.timeout);
    let writes = Writes { running, timeout };
    let before = now_ms();
    let acked = stop.or(writes.streak(BEFORE_FAULT, before, Duration::from_secs(30))).await;
    match acked {
        Err(why) => return Err(writes.stopped(why).await),
        Ok(false) => {
            writes.running.stop().await;
            return Err(Failure::failed(format!(
                "the service did not acknowledge the canary's writes for {}s before the fault ({}); nothing was broken",
                BEFORE_FAULT.as_secs(),
                canary.describe()
            )));
        }
        Ok(true) => {}
    }

    // What undoing the fault needs, journaled before the fault exists.
    let state = injector.capture().await.map_err(|e| Failure::failed(format!("fault {}: {e}", injector.kind())))?;
    let captured = serde_json::to_value(&state).expect("a fault state serializes");
    log.record(DrillRecord::FaultCaptured { state: captured }).await?;
    *fault = Some(state.clone());
    let fault_at = now_ms();
    if let Err(e) = injector.inject(&state).await {
        writes.running.stop().await;
        return Err(Failure::failed(format!("injecting {}: {e}", injector.kind())));
    }
    log.record(DrillRecord::FaultInjected).await?;
    let seen = injector.observe(&state).await.map(|s| s.detail).unwrap_or_else(|e| format!("not read back: {e}"));
    progress.say(&format!("fault: {} injected in {} ({seen})", injector.kind(), state.region));

    let detected_at = if injector.kind() == FaultKind::None {
        None
    } else {
        let on_transition = |t: &detect::Transition<'_>| {
            progress.say(&format!("check {} on {from}: {} ({})", t.check, t.health.as_str(), t.last.detail));
        };
        let prober = cx.adapters.providers().prober;
        let down = detect::until_down(plan, prober, from, ask.detect_timeout, &on_transition);
        match stop.or(down).await {
            Err(why) => return Err(writes.stopped(why).await),
            Ok(false) => {
                writes.running.stop().await;
                return Err(Failure::failed(format!(
                    "{from} was not detected as down within {}s of the fault: the plan's deciding checks \
                     (policy.detect_with) do not see a {} fault; no run was started",
                    ask.detect_timeout.as_secs(),
                    injector.kind()
                )));
            }
            Ok(true) => {
                let at = now_ms();
                progress.say(&format!("detected: {from} is down after {} ms", at - fault_at));
                Some(at)
            }
        }
    };

    // The run: planned on the world as it is now, then driven to its end whatever a stop
    // condition or Ctrl-C says meanwhile.
    let kind = run_kind(injector.kind());
    let observed = cx.observe_regions(&[to]).await?;
    let reason = format!("drill {}: {}", log.id, injector.kind());
    // A person asked for the drill: a person's rules (a lag known beyond policy refuses;
    // one the service cannot measure now does not).
    let planned = engine::plan_run(plan, kind, to, &observed, &reason);
    let header = match planned {
        Ok(h) => h,
        Err(r) => {
            writes.running.stop().await;
            return Err(Failure::failed(format!("{} refused after the fault: {r}", kind.as_str())));
        }
    };
    // The last safe point before the run: a stop asked for meanwhile still counts.
    if let Some(why) = stop.said() {
        return Err(writes.stopped(why).await);
    }
    log.phase_started(DrillPhase::of_run(kind), Some(&header.id)).await?;
    let on_entry = |e: &Entry| progress.show(e);
    let ran = cx.engine(&on_entry).start(&header).await;
    let summary = match ran {
        Ok(s) => s,
        Err(e) => {
            writes.running.stop().await;
            let _ = log.phase_ended(DrillPhase::of_run(kind), Some(&header.id), "unknown").await;
            return Err(engine_failure(e));
        }
    };
    log.phase_ended(DrillPhase::of_run(kind), Some(&header.id), summary.state.as_str()).await?;
    if summary.state != RunState::Completed {
        writes.running.stop().await;
        return Err(Failure::failed(format!(
            "the {} run {} is {}: {}; see 'drover runs show {}'",
            kind.as_str(),
            header.id,
            summary.state.as_str(),
            summary.reason.clone().unwrap_or_default(),
            header.id
        )));
    }

    let settled = stop.or(writes.streak(ask.settle, now_ms(), Duration::from_secs(60))).await;
    let samples = match settled {
        Err(why) => return Err(writes.stopped(why).await),
        Ok(ok) => {
            if !ok {
                progress.say(&format!("writes did not succeed for {}s within 60s", ask.settle.as_secs()));
            }
            writes.running.stop().await
        }
    };
    let present = canary.read_back(&log.id.0).await.map_err(|e| Failure::failed(e.to_string()))?;
    cx.flush_notifications().await;
    let report = drill::report(
        plan,
        Observations {
            fault: format!("{}:{}", injector.kind(), state.region),
            from: from.to_owned(),
            to: summary.header.to.clone(),
            fault_at_ms: fault_at,
            detected_at_ms: detected_at,
            samples: &samples,
            present: &present,
            run: Some(&summary),
            scale_restored: Vec::new(),
            canary: Some(format!("{}; {}", canary.describe(), canary.resolution())),
        },
    );
    log.measured(&report).await?;
    Ok(report)
}

/// Sets the fault back and journals it. An undo that fails leaves the drill needing one:
/// `drover drill abort ID` tries again.
async fn undo(
    log: &DrillLog<'_>,
    injector: &dyn Injector,
    state: &FaultState,
    progress: &Progress,
) -> Result<(), Failure> {
    match injector.undo(state).await {
        Ok(detail) => {
            progress.say(&format!("fault undone: {detail}"));
            log.record(DrillRecord::FaultUndone { detail }).await
        }
        Err(e) => Err(Failure::failed(format!(
            "undoing the {} fault in {} failed: {e}; try again with 'drover drill abort {}'",
            state.kind, state.region, log.id
        ))),
    }
}

/// The injector for `kind`: the lab builds its own; every other kind comes from the adapters.
fn build_injector(cx: &Context, kind: FaultKind, region: &str, drill: &str) -> Result<Box<dyn Injector>, Failure> {
    if kind.is_lab() {
        let injector = drover_lab::injector(&cx.plan_dir(), kind, region, None, None)
            .map_err(|e| Failure::input(format!("drill refused: {e}")))?;
        return Ok(Box::new(injector));
    }
    let settings = FaultSettings {
        drill: drill.to_owned(),
        fis_templates: cx.plan.drill.fis.clone(),
        #[cfg(feature = "aws")]
        aws: None,
    };
    injector_for(kind, region, &cx.plan, &settings).map_err(|e| Failure::input(format!("drill refused: {}", e.0)))
}

/// Readiness is evaluated first; a failing rule refuses the drill unless the person said
/// to go on anyway. Rules that warn are shown and do not stop it.
async fn guard_readiness(cx: &Context, despite: bool, progress: &Progress) -> Result<(), Failure> {
    let report = crate::app::readiness::assess(cx).await?;
    let failing: Vec<String> = report
        .failing()
        .map(|f| match &f.region {
            Some(region) => format!("{} in {region}: {}", f.rule.as_str(), f.reason),
            None => format!("{}: {}", f.rule.as_str(), f.reason),
        })
        .collect();
    if failing.is_empty() {
        return Ok(());
    }
    if despite {
        for f in &failing {
            progress.say(&format!("readiness fails (going on: --despite-readiness): {f}"));
        }
        return Ok(());
    }
    Err(Failure::input(format!(
        "drill refused: readiness fails:\n  {}\n('drover readiness --plan {}' shows every rule; --despite-readiness runs the drill anyway)",
        failing.join("\n  "),
        cx.plan.source.display()
    )))
}

/// A stop condition in ALARM, or one that cannot be read, refuses what `what` names.
async fn refuse_if_stopped(stops: &StopConditions, what: &str) -> Result<(), Failure> {
    if stops.is_empty() {
        return Ok(());
    }
    let look = stops.look().await;
    if let Some(firing) = look.firing.first() {
        return Err(Failure::conflict(format!("{what}: stop condition {firing}")));
    }
    if !look.unreadable.is_empty() {
        return Err(Failure::unavailable(format!(
            "{what}: a stop condition cannot be read, so the drill could not be stopped by it: {}",
            look.unreadable.join("; ")
        )));
    }
    Ok(())
}

/// The canary's writes while the drill runs.
struct Writes {
    running: RunningCanary,
    /// The canary's write timeout: an unanswered write older than this failed.
    timeout: Duration,
}

impl Writes {
    /// Waits until writes sent from `since_ms` on have been acknowledged for `streak`
    /// without a failure; false when that did not happen within `guard`.
    async fn streak(&self, streak: Duration, since_ms: u64, guard: Duration) -> bool {
        let give_up = tokio::time::Instant::now() + guard;
        loop {
            if has_streak(&self.running.samples(), since_ms, streak.as_millis() as u64, now_ms(), self.timeout) {
                return true;
            }
            if tokio::time::Instant::now() >= give_up {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The drill was stopped: the canary stops too, and the error says why.
    async fn stopped(self, why: String) -> Failure {
        self.running.stop().await;
        Failure::failed(format!("{STOPPED}: {why}"))
    }
}

/// Whether, among the writes sent at or after `since_ms`, the newest ones acknowledged
/// without a failure between them span `streak_ms` (from the first send to the newest
/// ack). A write still unanswered is in flight until its `timeout` (the canary gives up on
/// every write by then), and a failure after that.
fn has_streak(samples: &[WriteSample], since_ms: u64, streak_ms: u64, now_ms: u64, timeout: Duration) -> bool {
    // A moment more than the timeout: the answer is recorded just after it.
    let given_up = timeout.as_millis() as u64 + 200;
    let mut start: Option<u64> = None;
    let mut newest_ack = 0;
    for s in samples.iter().filter(|s| s.sent_ms >= since_ms) {
        match s.acked_ms {
            Some(acked) => {
                start.get_or_insert(s.sent_ms);
                newest_ack = newest_ack.max(acked);
            }
            None if now_ms.saturating_sub(s.sent_ms) <= given_up => {}
            None => {
                start = None;
                newest_ack = 0;
            }
        }
    }
    start.is_some_and(|start| newest_ack.saturating_sub(start) >= streak_ms)
}

/// What stops a drill at its next safe point: Ctrl-C, or a stop condition in ALARM.
struct Stop {
    said: watch::Receiver<Option<String>>,
    _watcher: tokio::task::JoinHandle<()>,
}

impl Stop {
    fn watch(stops: StopConditions) -> Stop {
        let (tell, said) = watch::channel(None);
        let stops = Arc::new(stops);
        // Ctrl-C is watched on its own, so a slow look at the alarms never hides it.
        let interrupted = tell.clone();
        let ctrl_c = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = interrupted.send(Some("interrupted (Ctrl-C)".into()));
            }
        });
        let watcher = tokio::spawn(async move {
            let _ctrl_c = AbortOnDrop(ctrl_c);
            let mut every = tokio::time::interval(STOP_LOOK_EVERY);
            let mut unreadable = 0;
            loop {
                every.tick().await;
                if stops.is_empty() {
                    continue;
                }
                let look = stops.look().await;
                if let Some(firing) = look.firing.into_iter().next() {
                    let _ = tell.send(Some(format!("stop condition {firing}")));
                    return;
                }
                // A guard that cannot be read for a minute no longer guards: stop.
                unreadable = if look.unreadable.is_empty() { 0 } else { unreadable + 1 };
                if unreadable * STOP_LOOK_EVERY.as_secs() >= 60 {
                    let why = look.unreadable.join("; ");
                    let _ = tell.send(Some(format!("the stop conditions could not be read for a minute: {why}")));
                    return;
                }
            }
        });
        Stop { said, _watcher: watcher }
    }

    /// Why the drill was stopped, if it was.
    fn said(&self) -> Option<String> {
        self.said.borrow().clone()
    }

    /// `work`, unless the drill is stopped first: then why.
    async fn or<T>(&self, work: impl Future<Output = T>) -> Result<T, String> {
        let mut said = self.said.clone();
        if let Some(why) = said.borrow().clone() {
            return Err(why);
        }
        tokio::select! {
            done = work => Ok(done),
            why = said.wait_for(Option::is_some) => Err(why.ok().and_then(|w| w.clone()).unwrap_or_default()),
        }
    }
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        self._watcher.abort();
    }
}

/// `drover drill abort|resume ID`: the unfinished drill `id` (a drill that crashed, was
/// killed, or whose undo failed). Resume first drives its unfinished run to its end;
/// both then undo the fault from its journaled state and end the drill — aborted, or
/// failed for a resume (its canary's writes died with the process that measured them).
pub async fn finish(cx: &Context, id: &str, resume: bool, progress: &Progress) -> Result<DrillSummary, Failure> {
    let drill = crate::app::drills::show(cx.journal.as_ref(), id).await?;
    if !drill.state.is_active() {
        return Err(Failure::conflict(format!(
            "drill {id} has ended ({}); 'drover drills show {id}' shows it",
            drill.state.as_str()
        )));
    }
    let log = DrillLog::resume(cx.journal.as_ref(), cx.plan.journal.keep, &drill.header.id);
    if let Some(open) = drill.open_phase().cloned() {
        let run = open.run.clone();
        match (resume, run) {
            (true, Some(run)) => {
                let on_entry = |e: &Entry| progress.show(e);
                let engine = cx.engine(&on_entry);
                let ended: Result<RunSummary, Failure> = match cx.journal.summary(&run).await {
                    Ok(s) if s.state.is_active() => engine.resume(&run).await.map_err(engine_failure),
                    Ok(s) => Ok(s),
                    Err(e) => Err(crate::app::error::store_failure(e)),
                };
                let ended = ended?;
                log.phase_ended(open.phase, Some(&run), ended.state.as_str()).await?;
            }
            (_, run) => {
                let state = match &run {
                    Some(r) => {
                        cx.journal.summary(r).await.map(|s| s.state.as_str().to_owned()).unwrap_or("unknown".into())
                    }
                    None => "unknown".into(),
                };
                log.phase_ended(open.phase, run.as_ref(), &state).await?;
                if let Some(r) = run.filter(|_| state == "running" || state == "paused") {
                    progress.say(&format!(
                        "the drill's run {r} is {state}: it is left as it is; 'drover resume {r}' or 'drover abort {r}' ends it"
                    ));
                }
            }
        }
    }
    let run_began = !drill.phases.is_empty();
    if drill.needs_undo() {
        let captured = drill.fault_state.clone().ok_or_else(|| {
            Failure::failed(format!("drill {id}: its fault was journaled without what undoing it needs"))
        })?;
        let state: FaultState = serde_json::from_value(captured).map_err(|e| {
            Failure::failed(format!(
                "drill {id}: its journaled fault state cannot be read by this drover ({e}); undo it by hand"
            ))
        })?;
        if undo_is_safe(state.kind, run_began) {
            let injector = build_injector(cx, state.kind, &state.region, id)?;
            undo(&log, injector.as_ref(), &state, progress).await?;
        } else {
            progress.say(&kept_fault(&state, &drill.header.from, id));
        }
    }
    let (outcome, reason) = if resume {
        (DrillOutcome::Failed, "resumed after the drill was interrupted: nothing was measured")
    } else {
        (DrillOutcome::Aborted, "aborted by a person")
    };
    log.end_as(outcome, Some(reason.into())).await;
    crate::app::drills::show(cx.journal.as_ref(), id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64, sent_ms: u64, acked: Option<u64>) -> WriteSample {
        WriteSample { seq, sent_ms, acked_ms: acked, target: None }
    }

    #[test]
    fn a_streak_counts_acknowledged_writes_since_the_last_failure() {
        let now = 100_000;
        let timeout = Duration::from_secs(1);
        let writes = [
            sample(1, now - 5_000, Some(now - 4_990)),
            sample(2, now - 4_000, None),
            sample(3, now - 3_000, Some(now - 2_990)),
            sample(4, now - 1_000, Some(now - 990)),
            // In flight: sent 100 ms ago, not answered yet.
            sample(5, now - 100, None),
        ];
        assert!(has_streak(&writes, 0, 2_000, now, timeout), "3 and 4 span 2 s after the failure");
        assert!(!has_streak(&writes, 0, 2_100, now, timeout), "not 2.1 s");
        assert!(!has_streak(&writes[..2], 0, 1, now, timeout), "the newest write failed");
        assert!(!has_streak(&writes, now, 1, now, timeout), "nothing sent since then");
        // The write in flight fails once its timeout has passed.
        assert!(!has_streak(&writes, 0, 2_000, now + 1_500, timeout));
        // A slow acknowledgement of a write sent before a failure does not stretch the
        // streak after it.
        let late = [
            sample(1, now - 5_000, Some(now - 10)),
            sample(2, now - 4_000, None),
            sample(3, now - 1_000, Some(now - 990)),
        ];
        assert!(!has_streak(&late, 0, 2_000, now, timeout), "only write 3 counts: 10 ms");
    }

    #[test]
    fn a_fault_that_revives_the_old_primary_is_undone_only_before_the_run() {
        assert!(undo_is_safe(FaultKind::RdsStop, false), "nothing was promoted yet");
        assert!(!undo_is_safe(FaultKind::RdsStop, true), "a started old primary could take writes");
        assert!(undo_is_safe(FaultKind::Route53HealthCheck, true), "a health check brings back no database");
    }
}
