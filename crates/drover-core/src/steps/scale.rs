//! `scale`: raise the target region's compute to the plan's share of what the old primary
//! region runs, and wait until it is ready. Journals the sizes it found before it first
//! resizes (`ScaledFrom`), so a drill or an abort can set them back.

use std::collections::BTreeMap;

use std::time::Duration;

use async_trait::async_trait;

use super::{Need, Observation, Step, StepCx};
use crate::error::{ProviderError, StoreError};
use crate::journal::{CapacitySeen, Journal};
use crate::plan::{Plan, StepKind};
use crate::run::{Record, RunId, RunKind};
use crate::world::{Capacity, Compute, Size, Units, WHOLE};

pub struct Scale;

#[async_trait]
impl Step for Scale {
    fn kind(&self) -> StepKind {
        StepKind::Scale
    }

    /// A resize waits for the capacity to be ready: the longest `ready_timeout` of the plan.
    fn waits(&self, plan: &Plan) -> Duration {
        plan.compute.values().map(|spec| spec.ready_timeout).max().unwrap_or_default()
    }

    fn answers_from(&self, cx: &StepCx<'_>) -> String {
        format!("the compute APIs of {} and {} (a Kubernetes API server, AWS)", cx.from(), cx.to())
    }

    fn needs(&self) -> &'static [Need] {
        &[Need::Compute]
    }

    async fn observe(&self, cx: &StepCx<'_>) -> Result<Observation, ProviderError> {
        let mut short = Vec::new();
        let mut done = Vec::new();
        for (name, spec) in &cx.plan.compute {
            for unit in scale_target(cx, name, spec.capacity_percent).await? {
                let line = unit.describe(name);
                if unit.is_done() { done.push(line) } else { short.push(line) }
            }
        }
        let to = cx.to();
        Ok(if short.is_empty() {
            Observation::Done(format!("{to} runs {}", done.join(", ")))
        } else {
            Observation::Needed(format!("{to} runs {}", short.join(", ")))
        })
    }

    async fn apply(&self, cx: &StepCx<'_>) -> Result<Option<String>, ProviderError> {
        let targets = crate::join::join_all(
            cx.plan
                .compute
                .iter()
                .map(|(name, spec)| async move { (name, scale_target(cx, name, spec.capacity_percent).await) }),
        )
        .await;
        // One resource that cannot be sized keeps none of the others from scaling.
        let mut failures = Vec::new();
        let mut resizes = Vec::new();
        for (name, units) in targets {
            let units = match units {
                Ok(units) => units,
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            let sizes: BTreeMap<String, Size> =
                units.iter().filter(|u| !u.is_done()).map(|u| (u.unit.clone(), u.want)).collect();
            if sizes.is_empty() {
                continue;
            }
            let before: Units = units.iter().map(|u| (u.unit.clone(), u.have)).collect();
            match note_scaled_from(cx, name, before).await {
                Ok(()) => resizes.push((name, sizes)),
                Err(e) => failures.push(e),
            }
        }
        // Every resource at once: node groups and instances take minutes each.
        let to = cx.to();
        let resizes =
            crate::join::join_all(resizes.iter().map(|(name, sizes)| cx.world.compute.resize(name, to, sizes))).await;
        // A permanent failure outranks a transient one: retrying cannot fix it.
        failures.extend(resizes.into_iter().filter_map(Result::err));
        failures.sort_by_key(ProviderError::retryable);
        match failures.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(None),
        }
    }

    async fn undo(&self, cx: &StepCx<'_>) -> Result<String, ProviderError> {
        Ok(undo_scale(cx.journal, cx.world.compute, &cx.header.id).await?.join(", "))
    }
}

/// Reads a compute resource's capacity in a region, and notes it in the journal so a later
/// failover can size the new primary from it when this region can no longer be read. A
/// note that cannot be written leaves the previous one: it never hides the reading.
pub(crate) async fn read_capacity(
    journal: &dyn Journal,
    compute: &dyn Compute,
    resource: &str,
    region: &str,
    now_ms: u64,
) -> Result<Units, ProviderError> {
    let units = compute.capacity(resource, region).await?;
    let _ = journal.note_capacity(resource, region, CapacitySeen { units: units.clone(), at_ms: now_ms }).await;
    Ok(units)
}

/// What each unit of `resource` should run in the run's target region: `percent` of what
/// its twin in the old primary region runs — read now, or, when it cannot be read (it is
/// lost), as last noted in the journal. A unit the old primary runs and the target lacks
/// stops the step: drover sizes workloads, it does not create them.
async fn scale_target(cx: &StepCx<'_>, resource: &str, percent: u32) -> Result<Vec<UnitTarget>, ProviderError> {
    let (from, to) = (cx.from(), cx.to());
    let now = cx.world.clock.now_ms();
    let (primary, seen) = match read_capacity(cx.journal, cx.world.compute, resource, from, now).await {
        Ok(units) => (units, String::new()),
        Err(e) => match cx.journal.noted_capacity(resource, from).await {
            Ok(Some(note)) => (
                note.units,
                format!(" last seen {}s before; {from} cannot be read now", now.saturating_sub(note.at_ms) / 1000),
            ),
            Ok(None) => {
                return Err(ProviderError::permanent(format!(
                    "cannot read {resource} in {from} ({e}) and drover never saw it before: size {to}'s {resource} by hand, then resume"
                )));
            }
            Err(store) => return Err(ProviderError::transient(store.to_string())),
        },
    };
    let have = cx.world.compute.capacity(resource, to).await?;
    let missing: Vec<&str> = primary.keys().filter(|u| !have.contains_key(*u)).map(String::as_str).collect();
    if !missing.is_empty() {
        return Err(ProviderError::permanent(format!(
            "{to} has no {} that {from} runs in {resource}: deploy or restore it in {to}, then resume",
            missing.join(", ")
        )));
    }
    Ok(primary
        .iter()
        .map(|(unit, old)| {
            let now = have[unit];
            UnitTarget {
                unit: unit.clone(),
                want: Size::share_of(old, percent, &now),
                have: now,
                basis: format!("{percent}% of {from}'s {}{seen}", old.desired),
            }
        })
        .collect())
}

/// Journals what `resource` ran in the target region before this run first resized it
/// there; a resumed run keeps the first record, the sizes from before any resize.
async fn note_scaled_from(cx: &StepCx<'_>, resource: &str, units: Units) -> Result<(), ProviderError> {
    let store = |e: StoreError| ProviderError::transient(e.to_string()).with_source(e);
    let to = cx.to();
    let entries = cx.journal.entries(&cx.header.id).await.map_err(store)?;
    let noted = entries
        .iter()
        .any(|e| matches!(&e.record, Record::ScaledFrom { resource: r, region, .. } if r == resource && region == to));
    if noted {
        return Ok(());
    }
    cx.log
        .record(&cx.header.id, Record::ScaledFrom { resource: resource.to_owned(), region: to.to_owned(), units })
        .await
        .map_err(store)
}

/// Undoes the scale-up of the newest failover or switchover into `region` (the run a
/// failback out of `region` reverses), if it scaled anything. For failback drills.
pub async fn undo_scale_into(
    journal: &dyn Journal,
    compute: &dyn Compute,
    region: &str,
) -> Result<Vec<String>, ProviderError> {
    let into = crate::history::newest_where(journal, |r| {
        matches!(r.header.kind, RunKind::Failover | RunKind::Switchover) && r.header.to == region
    })
    .await
    .map_err(|e| ProviderError::transient(e.to_string()))?;
    match into {
        Some(run) => undo_scale(journal, compute, &run.header.id).await,
        None => Ok(Vec::new()),
    }
}

/// Sets every resource a run's scale step resized back to what it ran before: a drill's
/// undo, so the standby costs what it did. Returns one line per unit set back.
pub async fn undo_scale(
    journal: &dyn Journal,
    compute: &dyn Compute,
    run: &RunId,
) -> Result<Vec<String>, ProviderError> {
    let entries = journal.entries(run).await.map_err(|e| ProviderError::transient(e.to_string()))?;
    let mut restored = Vec::new();
    for entry in &entries {
        let Record::ScaledFrom { resource, region, units } = &entry.record else { continue };
        let sizes: BTreeMap<String, Size> = units.iter().map(|(u, c)| (u.clone(), Size::of(c))).collect();
        compute.resize(resource, region, &sizes).await?;
        restored
            .extend(units.iter().map(|(u, c)| format!("{region} {} back to {}", unit_name(resource, u), c.desired)));
    }
    Ok(restored)
}

/// One unit's place in a scale step: what it should run, and what it runs now.
struct UnitTarget {
    unit: String,
    want: Size,
    have: Capacity,
    /// Where `want` came from, e.g. `50% of east's 3`.
    basis: String,
}

impl UnitTarget {
    fn is_done(&self) -> bool {
        self.have.desired >= self.want.desired && self.have.ready >= self.want.desired
    }

    fn describe(&self, resource: &str) -> String {
        format!("{} {}/{} ready ({})", unit_name(resource, &self.unit), self.have.ready, self.want.desired, self.basis)
    }
}

/// `web` for a whole resource, `web deployment/shop/api` for one of its workloads.
fn unit_name(resource: &str, unit: &str) -> String {
    if unit == WHOLE { resource.to_owned() } else { format!("{resource} {unit}") }
}
