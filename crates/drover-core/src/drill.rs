//! Drill arithmetic: from the probe's numbered writes, the fault time and what
//! the new primary holds, the numbers users buy drover for — RTO and RPO as a
//! client saw them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// One numbered write the probe sent. Times are milliseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WriteSample {
    pub seq: u64,
    pub sent_ms: u64,
    /// When the acknowledgement arrived; None if the write failed or timed out.
    pub acked_ms: Option<u64>,
    /// The address the name resolved to for this write.
    pub target: Option<String>,
}

impl WriteSample {
    /// How long the acknowledgement took; None for a write never acknowledged.
    pub fn latency_ms(&self) -> Option<u64> {
        self.acked_ms.map(|acked| acked.saturating_sub(self.sent_ms))
    }
}

/// The HTTP canary protocol (docs/drill.md, "Canary protocol"): `POST {url}/writes` takes
/// this body and answers 200 with it echoed, only once the write is durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryWrite {
    pub drill: String,
    pub seq: u64,
}

/// `GET {url}/writes?drill=ID` answers every sequence number the service holds for the
/// drill, as inclusive `[first, last]` ranges in ascending order: thousands of writes in
/// a few bytes when little was lost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryHeld {
    pub drill: String,
    pub ranges: Vec<(u64, u64)>,
}

impl CanaryHeld {
    /// The answer for `seqs`, in ranges.
    pub fn new(drill: &str, seqs: impl IntoIterator<Item = u64>) -> CanaryHeld {
        let sorted: BTreeSet<u64> = seqs.into_iter().collect();
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for seq in sorted {
            match ranges.last_mut() {
                Some((_, last)) if last.checked_add(1) == Some(seq) => *last = seq,
                _ => ranges.push((seq, seq)),
            }
        }
        CanaryHeld { drill: drill.to_owned(), ranges }
    }

    /// Every sequence number the ranges hold; None when they are not ranges (first after
    /// last) or hold more than `limit` numbers, which no drill writes.
    pub fn seqs(&self, limit: u64) -> Option<BTreeSet<u64>> {
        let mut total = 0u64;
        for (first, last) in &self.ranges {
            total = total.checked_add(last.checked_sub(*first)?.checked_add(1)?)?;
        }
        (total <= limit).then(|| self.ranges.iter().flat_map(|(first, last)| *first..=*last).collect())
    }
}

/// Milliseconds after the fault at which each milestone was reached.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub fault: u64,
    pub detected: Option<u64>,
    pub fenced: Option<u64>,
    pub promoted: Option<u64>,
    pub switched: Option<u64>,
    pub verified: Option<u64>,
    pub first_success: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Writes {
    pub attempted: u64,
    pub acknowledged: u64,
    pub failed: u64,
    /// Acknowledged before the fault.
    pub acknowledged_before_fault: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub target_ms: u64,
    pub measured_ms: Option<u64>,
    pub met: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    pub plan: String,
    pub fault: String,
    pub replication: String,
    pub run_id: Option<String>,
    pub from: String,
    pub to: String,
    /// Wall-clock time of the fault, milliseconds since the Unix epoch.
    pub fault_at_ms: u64,
    /// First acknowledged write after the outage, minus the fault time. None: never recovered.
    pub rto_ms: Option<u64>,
    /// Fault time (or the last lost acknowledgement, if later) minus the oldest lost
    /// acknowledged write; 0 only when nothing was lost.
    pub rpo_ms: u64,
    pub lost_acknowledged_writes: u64,
    /// Sequence numbers acknowledged to the client but missing from the new primary.
    pub lost_sequences: Vec<u64>,
    pub writes: Writes,
    pub timeline: Timeline,
    pub objectives: DrillObjectives,
    pub run_state: String,
    /// A failback drill sets the compute the failover raised in the region it leaves back
    /// to what it ran before (`Engine::undo_scale`): one line per unit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scale_restored: Vec<String>,
    /// Every step of the drill's runs, with its times in ms after the fault (from the
    /// runs' journal), in the order they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepTime>,
    /// Every write the canary sent, in the order sent: when (ms after the fault, negative
    /// before it), how long its acknowledgement took, or that it failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<SampleTime>,
    /// What measured the writes, and how it found the service's address: the plan's canary
    /// (`http canary https://…; names resolved with DNS`), or None for the lab's probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
}

/// Everything one drill saw, before it is a report.
pub struct Observations<'a> {
    /// The fault as written (`KIND:REGION`), or `failback:REGION`.
    pub fault: String,
    pub from: String,
    pub to: String,
    pub fault_at_ms: u64,
    /// When the fault was detected (ms since the epoch); None when nothing detected it.
    pub detected_at_ms: Option<u64>,
    pub samples: &'a [WriteSample],
    /// The sequence numbers the service holds after the run.
    pub present: &'a BTreeSet<u64>,
    /// The drill's run (its failover, switchover or failback), as it ended; None when
    /// something other than drover moved the service.
    pub run: Option<&'a crate::run::RunSummary>,
    pub scale_restored: Vec<String>,
    pub canary: Option<String>,
}

/// The report of a drill: RTO and RPO as clients saw them, judged against the plan's
/// objectives, with the run's milestones on the fault's clock. One place builds it, for
/// the lab's drills and for drills on any plan.
pub fn report(plan: &crate::plan::Plan, o: Observations<'_>) -> DrillReport {
    use crate::plan::StepKind;
    use crate::run::StepState;
    let m = measure(&Measurement { fault_at_ms: o.fault_at_ms, samples: o.samples, present: o.present });
    let step_at = |kind: StepKind| {
        o.run?
            .steps
            .iter()
            // A skipped step (an unreachable old primary left unfenced) achieved nothing: no time.
            .find(|s| s.kind == kind && s.state.is_done() && s.state != StepState::Skipped)
            .and_then(|s| s.finished_ms)
            .map(|at| at.saturating_sub(o.fault_at_ms))
    };
    let (rto, rpo) = (plan.objectives.rto.as_millis() as u64, plan.objectives.rpo.as_millis() as u64);
    DrillReport {
        plan: plan.name.clone(),
        fault: o.fault,
        replication: plan.database.replication().into(),
        run_id: o.run.map(|s| s.header.id.0.clone()),
        from: o.from,
        to: o.to,
        fault_at_ms: o.fault_at_ms,
        rto_ms: m.rto_ms,
        rpo_ms: m.rpo_ms,
        lost_acknowledged_writes: m.lost.len() as u64,
        lost_sequences: m.lost.clone(),
        timeline: Timeline {
            fault: 0,
            detected: o.detected_at_ms.map(|d| d.saturating_sub(o.fault_at_ms)),
            fenced: step_at(StepKind::Fence),
            promoted: step_at(StepKind::Promote),
            switched: step_at(StepKind::Switch),
            verified: step_at(StepKind::Verify),
            first_success: m.first_success_ms,
        },
        objectives: DrillObjectives {
            rto: Objective { target_ms: rto, measured_ms: m.rto_ms, met: m.rto_ms.is_some_and(|r| r <= rto) },
            rpo: Objective {
                target_ms: rpo,
                measured_ms: Some(m.rpo_ms),
                // An RPO of 0 means no acknowledged write may be lost, whatever the arithmetic.
                met: m.rpo_ms <= rpo && (rpo > 0 || m.lost.is_empty()),
            },
        },
        writes: m.writes,
        run_state: o.run.map_or("external", |s| s.state.as_str()).into(),
        scale_restored: o.scale_restored,
        steps: step_times(o.fault_at_ms, &o.run.into_iter().collect::<Vec<_>>()),
        samples: sample_times(o.fault_at_ms, o.samples),
        canary: o.canary,
    }
}

/// One step of one of the drill's runs, its times in ms after the fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepTime {
    /// The run's kind: failover, failback, reprotect, switchover.
    pub run: String,
    pub step: String,
    /// The step's state when the run ended (`applied`, `already done`, `skipped`, …).
    pub state: String,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
}

/// One write of the canary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleTime {
    /// When it was sent, ms after the fault (negative: before).
    pub sent_ms: i64,
    /// How long until it was acknowledged; None: it failed or timed out.
    pub latency_ms: Option<u64>,
    pub acknowledged: bool,
}

/// The canary's writes as the report keeps them, timed from the fault.
pub fn sample_times(fault_at_ms: u64, samples: &[WriteSample]) -> Vec<SampleTime> {
    samples
        .iter()
        .map(|s| SampleTime {
            sent_ms: s.sent_ms as i64 - fault_at_ms as i64,
            latency_ms: s.acked_ms.map(|a| a.saturating_sub(s.sent_ms)),
            acknowledged: s.acked_ms.is_some(),
        })
        .collect()
}

/// The steps of `runs` (in the order they ran), timed from the fault.
pub fn step_times(fault_at_ms: u64, runs: &[&crate::run::RunSummary]) -> Vec<StepTime> {
    let after = |t: Option<u64>| t.map(|t| t.saturating_sub(fault_at_ms));
    runs.iter()
        .flat_map(|run| {
            run.steps.iter().map(|step| StepTime {
                run: run.header.kind.as_str().into(),
                step: step.kind.as_str().into(),
                state: step.state.as_str().into(),
                started_ms: after(step.started_ms),
                finished_ms: after(step.finished_ms),
            })
        })
        .collect()
}

/// One event of a drill's timeline, in ms after the fault.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineEvent {
    pub label: String,
    /// When it began; a milestone's only time.
    pub at_ms: u64,
    /// A step's end (a span from `at_ms`); None for a milestone.
    pub until_ms: Option<u64>,
    /// A milestone (fault, detected, …, first success) rather than a step.
    pub milestone: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillObjectives {
    pub rto: Objective,
    pub rpo: Objective,
}

/// What a drill measured, before it becomes a report.
pub struct Measurement<'a> {
    pub fault_at_ms: u64,
    pub samples: &'a [WriteSample],
    /// Sequence numbers found on the new primary after the run.
    pub present: &'a BTreeSet<u64>,
}

pub struct Outcome {
    pub rto_ms: Option<u64>,
    pub first_success_ms: Option<u64>,
    pub rpo_ms: u64,
    pub lost: Vec<u64>,
    pub writes: Writes,
}

/// RTO, RPO and lost writes from the probe's record.
pub fn measure(m: &Measurement<'_>) -> Outcome {
    let after = |t: u64| t.saturating_sub(m.fault_at_ms);
    // Recovery is the first ack of a write sent after the last failure following the fault:
    // an ack that slipped through before the fault took hold is not recovery.
    let last_failure_sent =
        m.samples.iter().filter(|s| s.sent_ms >= m.fault_at_ms && s.acked_ms.is_none()).map(|s| s.sent_ms).max();
    let first_success = m
        .samples
        .iter()
        .filter(|s| s.sent_ms >= m.fault_at_ms && last_failure_sent.is_none_or(|f| s.sent_ms > f))
        .filter_map(|s| s.acked_ms)
        .min();
    let lost: Vec<&WriteSample> =
        m.samples.iter().filter(|s| s.acked_ms.is_some() && !m.present.contains(&s.seq)).collect();
    let oldest_lost_ack = lost.iter().filter_map(|s| s.acked_ms).min();
    let newest_lost_ack = lost.iter().filter_map(|s| s.acked_ms).max();
    let acknowledged = m.samples.iter().filter(|s| s.acked_ms.is_some()).count() as u64;
    Outcome {
        rto_ms: first_success.map(after),
        first_success_ms: first_success.map(after),
        // The span of acknowledged data lost: up to the fault, or to the last lost ack when
        // some landed while the fault was being injected (then it is never 0 with a loss).
        rpo_ms: match (oldest_lost_ack, newest_lost_ack) {
            (Some(oldest), Some(newest)) => m.fault_at_ms.max(newest).saturating_sub(oldest).max(1),
            _ => 0,
        },
        lost: lost.iter().map(|s| s.seq).collect(),
        writes: Writes {
            attempted: m.samples.len() as u64,
            acknowledged,
            failed: m.samples.len() as u64 - acknowledged,
            acknowledged_before_fault: m
                .samples
                .iter()
                .filter(|s| s.acked_ms.is_some_and(|a| a < m.fault_at_ms))
                .count() as u64,
        },
    }
}

impl DrillReport {
    /// The timeline's events in time order: the milestones that happened (fault, detected,
    /// fenced, promoted, switched, verified, first success) and every step that started.
    /// A milestone comes before a step that starts at the same ms.
    pub fn timeline_events(&self) -> Vec<TimelineEvent> {
        let t = &self.timeline;
        let mut events: Vec<TimelineEvent> = [
            ("fault", Some(t.fault)),
            ("detected", t.detected),
            ("fenced", t.fenced),
            ("promoted", t.promoted),
            ("switched", t.switched),
            ("verified", t.verified),
            ("first success", t.first_success),
        ]
        .into_iter()
        .filter_map(|(label, at)| {
            at.map(|at_ms| TimelineEvent { label: label.into(), at_ms, until_ms: None, milestone: true })
        })
        .collect();
        for step in &self.steps {
            let Some(started) = step.started_ms.or(step.finished_ms) else { continue };
            events.push(TimelineEvent {
                label: format!("{}: {} ({})", step.run, step.step, step.state),
                at_ms: started,
                until_ms: step.finished_ms,
                milestone: false,
            });
        }
        // Stable: equal times keep the order above (milestones, then steps as they ran).
        events.sort_by_key(|e| e.at_ms);
        events
    }

    /// Whether both objectives were met.
    pub fn objectives_met(&self) -> bool {
        self.objectives.rto.met && self.objectives.rpo.met
    }

    pub fn to_markdown(&self) -> String {
        let ms = |v: Option<u64>| v.map(|v| format!("{v} ms")).unwrap_or_else(|| "—".into());
        let met = |o: &Objective| if o.met { "met" } else { "MISSED" };
        let t = &self.timeline;
        let mut out = format!(
            "# Drill report: {plan}\n\n\
             Fault `{fault}`, {repl} replication, {from} → {to}, run `{run}` ({state}).\n\n\
             | measure | value | objective |\n|---|---|---|\n\
             | RTO (client-observed) | {rto} | {rto_t} ms ({rto_met}) |\n\
             | RPO | {rpo} ms | {rpo_t} ms ({rpo_met}) |\n\
             | lost acknowledged writes | {lost} | 0 |\n\
             | writes attempted / acknowledged | {att} / {ack} | |\n\n\
             ## Timeline (ms after the fault)\n\n| event | at |\n|---|---|\n",
            plan = self.plan,
            fault = self.fault,
            repl = self.replication,
            from = self.from,
            to = self.to,
            run = self.run_id.as_deref().unwrap_or("none"),
            state = self.run_state,
            rto = ms(self.rto_ms),
            rto_t = self.objectives.rto.target_ms,
            rto_met = met(&self.objectives.rto),
            rpo = self.rpo_ms,
            rpo_t = self.objectives.rpo.target_ms,
            rpo_met = met(&self.objectives.rpo),
            lost = self.lost_acknowledged_writes,
            att = self.writes.attempted,
            ack = self.writes.acknowledged,
        );
        for (name, at) in [
            ("fault", Some(t.fault)),
            ("detected", t.detected),
            ("fenced", t.fenced),
            ("promoted", t.promoted),
            ("switched", t.switched),
            ("verified", t.verified),
            ("first success", t.first_success),
        ] {
            out.push_str(&format!("| {name} | {} |\n", ms(at)));
        }
        if !self.lost_sequences.is_empty() {
            out.push_str(&format!("\nLost sequence numbers: {:?}\n", self.lost_sequences));
        }
        if !self.scale_restored.is_empty() {
            out.push_str("\n## Compute set back\n\n");
            for line in &self.scale_restored {
                out.push_str(&format!("- {line}\n"));
            }
        }
        if !self.steps.is_empty() {
            out.push_str("\n## Steps (ms after the fault)\n\n| run | step | state | started | finished |\n|---|---|---|---|---|\n");
            for s in &self.steps {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    s.run,
                    s.step,
                    s.state,
                    ms(s.started_ms),
                    ms(s.finished_ms)
                ));
            }
        }
        if let Some(latency) = LatencySummary::of(&self.samples) {
            out.push_str(&format!(
                "\n## Canary writes\n\n{} sent, {} failed; acknowledged in {} ms median, {} ms at the 99th percentile, {} ms at most.\n",
                self.samples.len(),
                latency.failed,
                latency.p50_ms,
                latency.p99_ms,
                latency.max_ms
            ));
        }
        out
    }
}

/// The canary's acknowledged write latency, summed up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencySummary {
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
    pub failed: usize,
}

impl LatencySummary {
    /// None when no write was acknowledged.
    pub fn of(samples: &[SampleTime]) -> Option<LatencySummary> {
        let mut acked: Vec<u64> = samples.iter().filter_map(|s| s.latency_ms).collect();
        if acked.is_empty() {
            return None;
        }
        acked.sort_unstable();
        let at = |q: usize| acked[(acked.len() - 1) * q / 100];
        Some(LatencySummary {
            p50_ms: at(50),
            p99_ms: at(99),
            max_ms: acked[acked.len() - 1],
            failed: samples.iter().filter(|s| !s.acknowledged).count(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64, sent: u64, acked: Option<u64>) -> WriteSample {
        WriteSample { seq, sent_ms: sent, acked_ms: acked, target: None }
    }

    #[test]
    fn canary_ranges_hold_exactly_the_numbers_given() {
        let held = CanaryHeld::new("d1", [7, 1, 2, 3, 5, 6, u64::MAX]);
        assert_eq!(held.ranges, vec![(1, 3), (5, 7), (u64::MAX, u64::MAX)]);
        assert_eq!(held.seqs(10).unwrap(), BTreeSet::from([1, 2, 3, 5, 6, 7, u64::MAX]));
        assert_eq!(held.seqs(6), None, "more than the limit");
        assert_eq!(CanaryHeld { drill: "d1".into(), ranges: vec![(5, 4)] }.seqs(10), None);
        assert_eq!(CanaryHeld { drill: "d1".into(), ranges: vec![(0, u64::MAX)] }.seqs(u64::MAX), None);
        assert!(CanaryHeld::new("d1", []).seqs(0).unwrap().is_empty());
    }

    #[test]
    fn rto_counts_from_fault_to_first_ack_after_the_outage() {
        let samples = vec![
            sample(1, 900, Some(910)),
            sample(2, 1000, Some(1005)), // slipped through as the fault landed
            sample(3, 1050, None),
            sample(4, 3000, None),
            sample(5, 4000, Some(4020)),
            sample(6, 4050, Some(4060)),
        ];
        let present: BTreeSet<u64> = [1, 2, 5, 6].into();
        let out = measure(&Measurement { fault_at_ms: 1000, samples: &samples, present: &present });
        assert_eq!(out.rto_ms, Some(3020));
        assert!(out.lost.is_empty());
        assert_eq!(out.rpo_ms, 0);
        assert_eq!(out.writes.attempted, 6);
        assert_eq!(out.writes.acknowledged, 4);
    }

    #[test]
    fn a_lost_ack_after_the_fault_time_still_counts() {
        let samples = vec![sample(1, 990, Some(1001)), sample(2, 995, Some(1003))];
        let present: BTreeSet<u64> = BTreeSet::new();
        let out = measure(&Measurement { fault_at_ms: 1000, samples: &samples, present: &present });
        assert_eq!(out.lost, vec![1, 2]);
        assert_eq!(out.rpo_ms, 2);
    }

    #[test]
    fn lost_acks_give_rpo_from_the_oldest() {
        let samples = vec![sample(1, 700, Some(710)), sample(2, 800, Some(805)), sample(3, 900, Some(950))];
        let present: BTreeSet<u64> = [1].into();
        let out = measure(&Measurement { fault_at_ms: 1000, samples: &samples, present: &present });
        assert_eq!(out.lost, vec![2, 3]);
        assert_eq!(out.rpo_ms, 195);
        assert_eq!(out.rto_ms, None, "no write after the fault was acknowledged");
    }
}
