//! `drover drill`: a real fault, detection by the plan's checks, a failover,
//! and what a client saw — measured by the probe in the hub. `--failback` measures a
//! planned failback the same way instead of a fault.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use drover_core::detect;
use drover_core::drill::{self, DrillReport, Observations, WriteSample};
use drover_core::drill_log::{DrillPhase, DrillRecord, NO_FAULT_FAILBACK};
use drover_core::duration::parse_duration;
use drover_core::engine::{self, now_ms};
use drover_core::fault::{FaultKind, Injector};
use drover_core::history::RunsPage;
use drover_core::run::{Entry, RunKind, RunState, RunSummary};

use crate::app::context::Context;
use crate::app::drill::DrillAsk;
use crate::app::drills::{DrillLog, DrillStart};
use crate::app::error::{Failure, engine_failure};
use crate::app::progress::Progress;
use crate::app::runtime;
use crate::app::store::PlanArgs;
use crate::commands::finish;
use crate::commands::terminal::confirm;

#[derive(clap::Args)]
pub struct DrillArgs {
    /// `abort ID` ends an unfinished drill (killed, crashed, or its undo failed): undoes its
    /// fault from what the drill journaled, whatever process injected it, and leaves its run
    /// as it is. `resume ID` also drives its unfinished run to its end first. Neither
    /// measures anything (the canary died with the drill).
    #[arg(value_name = "abort|resume", value_parser = ["abort", "resume"], requires = "id")]
    pub finish: Option<String>,
    /// The unfinished drill's id ('drover drills' lists them).
    #[arg(value_name = "ID")]
    pub id: Option<String>,
    #[command(flatten)]
    pub plan: PlanArgs,
    /// The fault to inject, as KIND[:REGION] (REGION: the primary's, which it must be).
    /// On any plan: none (a planned switchover drill), route53-health-check, fis, rds-reboot,
    /// rds-stop, asg-suspend, asg-scale-to-zero, kubernetes-scale-to-zero — measured by the
    /// plan's drill.canary and undone at the end. In the lab: blackout, kill, pause, partition,
    /// loss (measured by the lab's probe; 'drover lab heal REGION' lifts them). See docs/drill.md.
    #[arg(long, value_name = "KIND[:REGION]", required_unless_present_any = ["failback", "finish"])]
    pub fault: Option<String>,
    /// Confirm a drill on a plan that is not the lab's without being asked (needed off a
    /// terminal): it breaks the primary region for real, fails over, and undoes the fault.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Run the drill even when a readiness rule fails ('drover readiness' lists them).
    #[arg(long)]
    pub despite_readiness: bool,
    /// Write the self-contained HTML report (SVG timeline and write latency) here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// No fault: run a planned failback to the plan's home region (it must be a streaming standby
    /// again: 'drover reprotect') while the probe writes, and report what clients saw and the
    /// acknowledged writes lost (0 with a planned move). The report's fault is "failback:REGION".
    #[arg(long, conflicts_with_all = ["fault", "daemons", "external"])]
    pub failback: bool,
    /// Write the JSON report here (stable field names; see docs/drill.md).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a Markdown report here.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// The lab directory that owns the regions [default: the plan's directory].
    #[arg(long, value_name = "DIR")]
    pub lab: Option<PathBuf>,
    /// How long writes must succeed again before the drill ends.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Give up detecting the fault after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub detect_timeout: Duration,
    /// Milliseconds between the probe's numbered writes.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub write_interval: Duration,
    /// Port of the service behind the traffic record (the lab app listens on 8080).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Do not detect or fail over here: the lab's 'drover serve' daemons (lab up --daemons) must do
    /// it on their own. Detection and step times then come from the daemon's journal.
    #[arg(long, conflicts_with = "external")]
    pub daemons: bool,
    /// Something other than drover fails over (e.g. Patroni, for a side-by-side race): inject the
    /// fault and measure what the probe sees; the new primary is whichever member accepts writes.
    #[arg(long)]
    pub external: bool,
}

pub fn run(args: DrillArgs) -> ExitCode {
    finish(runtime().block_on(drill(args)))
}

async fn drill(args: DrillArgs) -> Result<(), Failure> {
    let cx = Context::open(&args.plan).await?;
    if let (Some(finish), Some(id)) = (&args.finish, &args.id) {
        return finish_drill(&cx, id, finish == "resume").await;
    }
    let Some(fault_arg) = &args.fault else { return failback(&cx, &args).await };
    let (kind, region) = match fault_arg.split_once(':') {
        Some((kind, region)) => (kind, Some(region)),
        None => (fault_arg.as_str(), None),
    };
    let fault_kind: FaultKind = kind.parse().map_err(|e| Failure::input(format!("--fault {fault_arg}: {e}")))?;
    if !fault_kind.is_lab() {
        return any_plan_drill(&cx, &args, fault_kind, region).await;
    }
    let region =
        region.ok_or_else(|| Failure::input(format!("--fault {fault_arg}: write KIND:REGION, e.g. blackout:east")))?;
    let lab_dir = args.lab.clone().unwrap_or_else(|| cx.plan_dir());
    let lab = lab_for(&cx, &lab_dir)?;
    let fault =
        drover_lab::injector(&lab_dir, fault_kind, region, None, None).map_err(|e| Failure::input(e.to_string()))?;

    let observed = cx.observe().await?;
    let from = observed.current_primary(&cx.plan).to_string();
    if region != from {
        return Err(Failure::input(format!(
            "--fault {fault_arg}: the drill measures losing the primary, which is {from}; use --fault {kind}:{from}"
        )));
    }
    let to = cx
        .plan
        .service_regions()
        .find(|r| *r != from)
        .ok_or_else(|| Failure::input("the plan has no standby region to fail over to"))?
        .to_string();
    // Refuse before touching anything: same gates as a failover (unless drover is not the one failing over).
    if !args.external {
        engine::plan_run(&cx.plan, RunKind::Failover, &to, &observed, "drill")
            .and_then(|_| engine::lag_gate(&cx.plan, &observed, &to))
            .map_err(|r| Failure::input(format!("drill refused: {r}")))?;
    }

    // Journaled from here, after every check: a crash leaves the drill to be found again.
    let log = DrillLog::begin(
        cx.journal.as_ref(),
        cx.plan.journal.keep,
        DrillStart { plan: &cx.plan.name, fault: kind, region, from: &from, to: &to, requested_by: "cli" },
    )
    .await?;
    println!("drill: {}", log.id);
    let result = fault_drill(&cx, &args, &log, &lab, &fault, &from, &to).await;
    log.end(&result).await;
    result
}

/// The drill itself, once journaled: inject, fail over (or watch), measure.
async fn fault_drill(
    cx: &Context,
    args: &DrillArgs,
    log: &DrillLog<'_>,
    lab: &drover_lab::Lab,
    fault: &drover_lab::LabInjector,
    from: &str,
    to: &str,
) -> Result<(), Failure> {
    let fault_arg = args.fault.clone().unwrap_or_default();
    let (from, to) = (from.to_string(), to.to_string());
    let probe = start_probe(cx, args).await?;
    // What undoing the fault needs, journaled before the fault exists (the lab's heal).
    let state = match fault.capture().await {
        Ok(state) => state,
        Err(e) => {
            probe.stop().await;
            return Err(Failure::failed(format!("{fault_arg}: {e}")));
        }
    };
    let captured = serde_json::to_value(&state).expect("a fault state serializes");
    if let Err(e) = log.record(DrillRecord::FaultCaptured { state: captured }).await {
        probe.stop().await;
        return Err(e);
    }
    let fault_at = now_ms();
    if let Err(e) = fault.inject(&state).await {
        probe.stop().await;
        return Err(Failure::failed(format!("injecting {fault_arg}: {e}")));
    }
    println!("fault: {fault_arg} injected");
    log.record(DrillRecord::FaultInjected).await?;

    let failover = if args.external {
        Ok(None)
    } else if args.daemons {
        // The daemons' run is named once it runs.
        match log.phase_started(DrillPhase::Failover, None).await {
            Ok(()) => watch_daemons(lab, fault_at, args.detect_timeout + Duration::from_secs(60)).await.map(Some),
            Err(e) => Err(e),
        }
    } else {
        fail_over_here(cx, args, log, &from, &to, fault_at).await.map(Some)
    };
    let failover = match failover {
        Ok(Some((detected, summary))) => {
            let ended = log.phase_ended(DrillPhase::Failover, Some(&summary.header.id), summary.state.as_str()).await;
            ended.map(|()| Some((detected, summary)))
        }
        other => other,
    };
    let run = match failover {
        Ok(run) => run,
        Err(e) => {
            probe.stop().await;
            return Err(e);
        }
    };
    let (settle_from, settle_guard) = match &run {
        Some(_) => (now_ms(), Duration::from_secs(60)),
        // Another system's failover: writes fail from the fault on, so the first full window of
        // acknowledged writes after it is the recovery.
        None => (fault_at, args.detect_timeout + Duration::from_secs(60)),
    };
    let samples = settle_and_stop(probe, args, run.as_ref().map(|(_, s)| s), settle_from, settle_guard).await;
    let to = match &run {
        Some((_, summary)) => summary.header.to.clone(),
        None => {
            let observed = cx.observe().await?;
            let primaries = observed.writable_primaries();
            match primaries.as_slice() {
                [(region, _)] => region.to_string(),
                [] => {
                    return Err(Failure::failed(format!(
                        "no member accepts writes after the fault; {from} still has it"
                    )));
                }
                many => {
                    let list: Vec<&str> = many.iter().map(|(r, _)| *r).collect();
                    return Err(Failure::failed(format!("more than one member accepts writes: {}", list.join(", "))));
                }
            }
        }
    };
    let detected_at = run.as_ref().map(|(d, _)| *d);
    let summary = run.map(|(_, s)| s);
    let measured = Measured {
        fault: fault_arg.clone(),
        from: from.clone(),
        to,
        fault_at,
        detected_at,
        samples,
        scale_restored: Vec::new(),
    };
    let report = report(cx, args, measured, summary.as_ref()).await?;
    log.measured(&report).await?;
    println!(
        "\n{from} still has the fault; 'drover lab heal {from}' lifts it (its database will still believe it is \
         primary: 'drover reprotect --plan {} --region {from}' then makes it a standby).",
        cx.plan.source.display()
    );
    println!("drill {} is journaled: 'drover drills show {}' (--output html for the page)", log.id, log.id);
    run_completed(summary, "failover")
}

/// A planned failback while the probe writes: the same measurement as a fault's, from the
/// run's start. With a planned move, no acknowledged write may be lost.
async fn failback(cx: &Context, args: &DrillArgs) -> Result<(), Failure> {
    let reason = "drill: failback";
    let header = engine::plan_failback(&cx.plan, None, &cx.observe().await?, reason)
        .map_err(|r| Failure::input(format!("drill refused: failback refused: {r}")))?;
    let log = DrillLog::begin(
        cx.journal.as_ref(),
        cx.plan.journal.keep,
        DrillStart {
            plan: &cx.plan.name,
            fault: NO_FAULT_FAILBACK,
            region: &header.to,
            from: &header.from,
            to: &header.to,
            requested_by: "cli",
        },
    )
    .await?;
    println!("drill: {}", log.id);
    let result = failback_drill(cx, args, &log, header).await;
    log.end(&result).await;
    result
}

async fn failback_drill(
    cx: &Context,
    args: &DrillArgs,
    log: &DrillLog<'_>,
    header: drover_core::run::RunHeader,
) -> Result<(), Failure> {
    let probe = start_probe(cx, args).await?;
    let started_at = now_ms();
    println!("failback: {} -> {} at epoch {}", header.from, header.to, header.epoch);
    let progress = Progress::default();
    let on_entry = |e: &Entry| progress.show(e);
    let started = log.phase_started(DrillPhase::Failback, Some(&header.id)).await;
    let summary = match started.and(cx.engine(&on_entry).start(&header).await.map_err(engine_failure)) {
        Ok(summary) => summary,
        Err(e) => {
            probe.stop().await;
            return Err(e);
        }
    };
    log.phase_ended(DrillPhase::Failback, Some(&header.id), summary.state.as_str()).await?;
    let samples = settle_and_stop(probe, args, Some(&summary), now_ms(), Duration::from_secs(60)).await;
    // The region left behind is a standby again: it goes back to the size it had before the
    // failover that raised it, so a drill leaves the standby costing what it did.
    // A failure here is reported after the measurements are: they are still worth having.
    let (scale_restored, undo_failed) = if summary.state == RunState::Completed {
        log.phase_started(DrillPhase::ComputeSetBack, None).await?;
        let set_back = cx.engine(&|_: &Entry| {}).undo_scale_into(&header.from).await;
        let state = if set_back.is_ok() { "completed" } else { "failed" };
        log.phase_ended(DrillPhase::ComputeSetBack, None, state).await?;
        match set_back {
            Ok(restored) => {
                for line in &restored {
                    println!("scale: {line}");
                }
                (restored, None)
            }
            Err(e) => (Vec::new(), Some(e)),
        }
    } else {
        (Vec::new(), None)
    };
    let measured = Measured {
        scale_restored,
        fault: format!("failback:{}", header.to),
        from: header.from.clone(),
        to: header.to.clone(),
        fault_at: started_at,
        detected_at: None,
        samples,
    };
    let report = report(cx, args, measured, Some(&summary)).await?;
    log.measured(&report).await?;
    println!("drill {} is journaled: 'drover drills show {}' (--output html for the page)", log.id, log.id);
    if let Some(e) = undo_failed {
        return Err(Failure::failed(format!(
            "the failback completed, but setting {}'s compute back to its size before the failover failed: {e}",
            header.from
        )));
    }
    run_completed(Some(summary), "failback")
}

/// A drill on any plan (`app::drill`): the plan's canary, an injector that undoes itself.
async fn any_plan_drill(cx: &Context, args: &DrillArgs, fault: FaultKind, region: Option<&str>) -> Result<(), Failure> {
    if !args.yes {
        let place = region.map_or("the primary region".to_owned(), |r| format!("region {r}"));
        confirm(&format!(
            "This drill breaks {place} of plan {} for real ({fault}: {}), fails over, measures what clients see, \
             and undoes the fault. Go on?",
            cx.plan.name,
            fault.changes()
        ))?;
    }
    let ask = DrillAsk {
        fault,
        region: region.map(str::to_owned),
        requested_by: "cli".into(),
        settle: args.settle,
        detect_timeout: args.detect_timeout,
        despite_readiness: args.despite_readiness,
    };
    let progress = Progress::default();
    let (id, report) = crate::app::drill::run(cx, &ask, &progress).await?;
    write_reports(args, &report)?;
    println!();
    print!("{}", report.to_markdown());
    println!("drill {id} is journaled: 'drover drills show {id}' (--output html for the page)");
    Ok(())
}

/// `drover drill abort|resume ID`.
async fn finish_drill(cx: &Context, id: &str, resume: bool) -> Result<(), Failure> {
    let progress = Progress::default();
    let drill = crate::app::drill::finish(cx, id, resume, &progress).await?;
    println!("drill {} {}: {}", drill.header.id, drill.state.as_str(), drill.reason.as_deref().unwrap_or(""));
    Ok(())
}

/// The report files the flags ask for.
fn write_reports(args: &DrillArgs, report: &DrillReport) -> Result<(), Failure> {
    let write = |path: &PathBuf, text: String| {
        std::fs::write(path, text).map_err(|e| Failure::failed(format!("{}: {e}", path.display())))
    };
    if let Some(path) = &args.json {
        write(path, serde_json::to_string_pretty(report).expect("report serializes"))?;
    }
    if let Some(path) = &args.markdown {
        write(path, report.to_markdown())?;
    }
    if let Some(path) = &args.html {
        write(path, report.to_html())?;
    }
    Ok(())
}

/// Starts the probe and waits until the service acknowledges writes.
async fn start_probe(cx: &Context, args: &DrillArgs) -> Result<drover_lab::probe::ProbeHandle, Failure> {
    // The client probe resolves the record at the plan's DNS server: drills need rfc2136 traffic.
    let traffic = cx.plan.rfc2136().ok_or_else(|| {
        Failure::input(format!(
            "drills measure clients through traffic.kind: rfc2136; this plan's traffic is {}",
            cx.plan.traffic.kind()
        ))
    })?;
    let probe = drover_lab::probe::Probe::start(drover_lab::probe::ProbeConfig {
        dns_server: traffic.server,
        name: traffic.record.clone(),
        port: args.port,
        interval: args.write_interval,
        write_timeout: Duration::from_secs(1),
        first_seq: now_ms() * 1000,
    });
    println!("probe: writing to {} every {} ms", traffic.record, args.write_interval.as_millis());
    if !probe.wait_for_success_streak(Duration::from_secs(2), now_ms(), Duration::from_secs(30)).await {
        probe.stop().await;
        return Err(Failure::failed("the service does not acknowledge writes before the fault; check 'drover status'"));
    }
    Ok(probe)
}

/// The running lab a fault drill injects into. Drills today need the lab: only there can
/// drover cut a region's network or kill its database. A plan that is not a lab's gets
/// that said once, plainly — not a complaint about its region names, which are not wrong.
fn lab_for(cx: &Context, lab_dir: &std::path::Path) -> Result<drover_lab::Lab, Failure> {
    let plan = cx.plan.source.display();
    let need = format!(
        "drills today need the lab: start it with 'drover lab up' and drill its plan ({}/plan.yaml)",
        drover_lab::DEFAULT_DIR
    );
    let foreign: Vec<&str> = cx
        .plan
        .regions
        .keys()
        .map(String::as_str)
        .filter(|r| !drover_lab::REGIONS.iter().any(|lab| lab.name == *r))
        .collect();
    if !foreign.is_empty() {
        let lab: Vec<&str> = drover_lab::REGIONS.iter().map(|r| r.name).collect();
        return Err(Failure::input(format!(
            "{need}; {plan} is not a lab plan (its regions {} are not the lab's {})",
            foreign.join(", "),
            lab.join(", ")
        )));
    }
    // The lab's state file says whether one runs there; its error would repeat the advice.
    drover_lab::Lab::load(lab_dir).map_err(|_| {
        Failure::input(format!(
            "{need}; {plan} is not a running lab's plan: no lab runs in {} (--lab DIR names the lab's directory)",
            lab_dir.display()
        ))
    })
}

/// Once the run completed (or when drover ran none), waits until writes have succeeded for
/// `--settle`; then stops the probe and returns what it sent.
async fn settle_and_stop(
    probe: drover_lab::probe::ProbeHandle,
    args: &DrillArgs,
    run: Option<&RunSummary>,
    from: u64,
    guard: Duration,
) -> Vec<WriteSample> {
    if run.is_none_or(|s| s.state == RunState::Completed) {
        let settled = probe.wait_for_success_streak(args.settle, from, guard).await;
        if !settled {
            println!("writes did not succeed for {}s within {}s", args.settle.as_secs(), guard.as_secs());
        }
    }
    probe.stop().await
}

/// What the probe saw around one fault (or planned move).
struct Measured {
    fault: String,
    from: String,
    to: String,
    fault_at: u64,
    detected_at: Option<u64>,
    samples: Vec<WriteSample>,
    scale_restored: Vec<String>,
}

/// Looks up every acknowledged write on the new primary, measures, and writes and prints the report.
async fn report(
    cx: &Context,
    args: &DrillArgs,
    m: Measured,
    summary: Option<&RunSummary>,
) -> Result<DrillReport, Failure> {
    cx.flush_notifications().await;
    let Measured { fault, from, to, fault_at, detected_at, samples, scale_restored } = m;
    let dsn = cx.member_dsn(&to)?;
    let present = drover_lab::probe::present_sequences(dsn.expose())
        .await
        .map_err(|e| Failure::failed(format!("{to} database: reading the probe's writes: {e}")))?;
    let report = drill::report(
        &cx.plan,
        Observations {
            fault,
            from,
            to,
            fault_at_ms: fault_at,
            detected_at_ms: detected_at,
            samples: &samples,
            present: &present,
            run: summary,
            scale_restored,
            canary: None,
        },
    );
    write_reports(args, &report)?;
    println!();
    print!("{}", report.to_markdown());
    Ok(report)
}

/// A drill whose run did not complete fails, saying where the run stands.
fn run_completed(summary: Option<RunSummary>, what: &str) -> Result<(), Failure> {
    match summary {
        Some(s) if s.state != RunState::Completed => Err(Failure::failed(format!(
            "the {what} run {} is {}: {}",
            s.header.id,
            s.state.as_str(),
            s.reason.unwrap_or_default()
        ))),
        _ => Ok(()),
    }
}

/// Detects the loss of `from` with the plan's checks from here, then runs the failover.
/// Returns when detection happened and the run as it ended.
async fn fail_over_here(
    cx: &Context,
    args: &DrillArgs,
    log: &DrillLog<'_>,
    from: &str,
    to: &str,
    fault_at: u64,
) -> Result<(u64, RunSummary), Failure> {
    let on_transition = |t: &detect::Transition<'_>| {
        println!("check {} on {from}: {} ({})", t.check, t.health.as_str(), t.last.detail);
    };
    if !detect::until_down(&cx.plan, cx.adapters.providers().prober, from, args.detect_timeout, &on_transition).await {
        return Err(Failure::failed(format!(
            "{from} was not detected as down within {}s; the lab still has the fault: 'drover lab heal {from}'",
            args.detect_timeout.as_secs()
        )));
    }
    let detected_at = now_ms();
    println!("detected: {from} is down after {} ms; failing over to {to}", detected_at - fault_at);

    let observed = cx.observe_regions(&[to]).await?;
    let header = engine::plan_run(
        &cx.plan,
        RunKind::Failover,
        to,
        &observed,
        &format!("drill: {}", args.fault.as_deref().unwrap_or_default()),
    )
    .and_then(|h| engine::lag_gate(&cx.plan, &observed, to).map(|_| h))
    .map_err(|r| {
        Failure::failed(format!(
            "failover refused after detection: {r}; {from} still has the fault: 'drover lab heal {from}'"
        ))
    })?;
    log.phase_started(DrillPhase::Failover, Some(&header.id)).await?;
    let progress = Progress::default();
    let on_entry = |e: &Entry| progress.show(e);
    let summary = cx.engine(&on_entry).start(&header).await.map_err(engine_failure)?;
    Ok((detected_at, summary))
}

/// Waits for the lab's daemons to start a run after the fault and end it. Detection
/// is when the run started (the daemons decide when they start it).
async fn watch_daemons(lab: &drover_lab::Lab, fault_at: u64, guard: Duration) -> Result<(u64, RunSummary), Failure> {
    let urls = lab.daemon_urls();
    if urls.is_empty() {
        return Err(Failure::input(format!(
            "--daemons: the lab in {} runs no daemons; start it with 'drover lab up --daemons'",
            lab.dir().display()
        )));
    }
    let token = lab.api_token().map_err(|e| Failure::failed(e.to_string()))?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The lab's daemons serve https with certificates from the lab CA.
    let http = crate::app::daemon_client::build(
        Some(&lab.ca_cert()),
        None,
        Duration::from_millis(300),
        Duration::from_secs(1),
    )?;
    println!("waiting for the daemons ({}) to fail over", urls.join(", "));
    let started = std::time::Instant::now();
    let mut announced: Option<String> = None;
    let mut shown = 0;
    while started.elapsed() < guard {
        for url in &urls {
            let Ok(response) = http.get(format!("{url}/api/v1/runs")).bearer_auth(&token).send().await else {
                continue;
            };
            let Ok(page) = response.json::<RunsPage>().await else { continue };
            let Some(run) = page.runs.into_iter().find(|r| r.started_ms >= fault_at) else { continue };
            if announced.as_deref() != Some(run.header.id.0.as_str()) {
                println!(
                    "detected: the daemon at {url} started run {} ({} -> {}) {} ms after the fault",
                    run.header.id,
                    run.header.from,
                    run.header.to,
                    run.started_ms - fault_at
                );
                announced = Some(run.header.id.0.clone());
            }
            shown = crate::commands::remote::print_new_steps(&run, shown);
            if !run.state.is_active() || run.state == RunState::Paused {
                return Ok((run.started_ms, run));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Failure::failed(format!(
        "the daemons did not complete a failover within {}s of the fault; see their logs in {} (serve-*.log) — the lab still has the fault",
        guard.as_secs(),
        lab.dir().display()
    )))
}
