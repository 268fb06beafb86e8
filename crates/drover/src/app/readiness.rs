//! Readiness as both front ends ask for it: gather every fact the rules look at
//! (`drover_core::readiness`) through the plan's providers, then judge them. `drover
//! readiness`, each daemon round, `GET /api/v1/readiness` and the confirmation before a
//! person's failover use [`assess`].

use std::collections::BTreeMap;
use std::time::Duration;

use drover_core::join::join_all;
use drover_core::readiness::{self, BackupFact, Facts, Finding, Level, Permissions};
use drover_core::world::Answer;
use serde::Serialize;

use crate::app::backups::Backups;
use crate::app::context::Context;
use crate::app::error::Failure;

/// How long one readiness question may take: past it, the answer is "cannot tell" (a warn),
/// so a region's API that never answers cannot hold a daemon's round.
const QUESTION_DEADLINE: Duration = Duration::from_secs(30);

/// Readiness as printed and served: the stable JSON of `drover readiness -o json` and
/// `GET /api/v1/readiness`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub plan: String,
    /// When the facts were gathered, ms since the Unix epoch.
    pub at_ms: u64,
    /// The worst finding's level: `fail` makes `drover readiness` exit 1.
    pub level: Level,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn failing(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Fail)
    }
}

/// Gathers the facts and judges them. Only a journal that cannot be read fails it; every
/// provider that does not answer is a finding.
pub async fn assess(cx: &Context) -> Result<Report, Failure> {
    let facts = gather(cx).await?;
    let world = cx.adapters.providers();
    let at_ms = world.clock.now_ms();
    let findings = readiness::evaluate(&cx.plan, &facts, at_ms);
    Ok(Report { plan: cx.plan.name.clone(), at_ms, level: readiness::worst(&findings), findings })
}

async fn within<T>(
    what: impl std::fmt::Display,
    ask: impl std::future::Future<Output = T>,
    late: impl FnOnce(String) -> T,
) -> T {
    match tokio::time::timeout(QUESTION_DEADLINE, ask).await {
        Ok(answer) => answer,
        Err(_) => late(format!("{what}: no answer within {}s", QUESTION_DEADLINE.as_secs())),
    }
}

/// Every fact, asked concurrently where the providers allow.
pub async fn gather(cx: &Context) -> Result<Facts, Failure> {
    let plan = &cx.plan;
    let world = cx.adapters.providers();
    let regions: Vec<&str> = plan.service_regions().collect();
    let launch_keys: Vec<(String, String)> = plan
        .compute
        .iter()
        .filter(|(_, spec)| spec.kind.launches_machines())
        .flat_map(|(name, _)| regions.iter().map(move |r| (name.clone(), r.to_string())))
        .collect();
    let (observed, problems, settings, health_checks, launch, backups) = tokio::join!(
        cx.observe(),
        drover_core::preflight::by_resource(plan, world),
        join_all(regions.iter().map(|r| async move {
            let what = format!("{r} database settings");
            (r.to_string(), within(what, world.database.settings(r), Err).await)
        })),
        join_all(regions.iter().map(|r| async move {
            let what = format!("{r} health check");
            (r.to_string(), within(what, world.traffic.health_check(r), Answer::CannotTell).await)
        })),
        join_all(launch_keys.iter().map(|(res, r)| async move {
            let what = format!("compute {res} in {r}");
            ((res.clone(), r.clone()), within(what, world.compute.can_launch(res, r), Answer::CannotTell).await)
        })),
        backup_facts(cx),
    );
    Ok(Facts {
        observed: observed?,
        problems,
        settings: settings.into_iter().collect(),
        health_checks: health_checks.into_iter().collect(),
        launch: launch.into_iter().collect(),
        backups,
        permissions: permissions(plan),
        // The drill history is not read yet: the drills rule warns "no drill recorded".
        last_successful_drill_ms: None,
        drill_max_age: readiness::DRILL_MAX_AGE,
    })
}

/// Whether the caller may make the calls `drover plan iam` lists. drover does not ask IAM
/// yet (iam:SimulatePrincipalPolicy): a plan that calls AWS is "cannot tell".
fn permissions(plan: &drover_core::plan::Plan) -> Permissions {
    match drover_core::plan::iam::policy(plan) {
        None => Permissions::NotNeeded,
        Some(_) => Permissions::CannotTell(
            "drover does not simulate its IAM policy yet (iam:SimulatePrincipalPolicy)".to_owned(),
        ),
    }
}

/// The newest backup of each region's store: when it was taken and whether it is whole.
async fn backup_facts(cx: &Context) -> BTreeMap<String, BackupFact> {
    let Some(backups) = Backups::of(&cx.plan) else { return BTreeMap::new() };
    let key = backups.key().ok().flatten();
    let regions: Vec<String> = cx.plan.backup.iter().flat_map(|b| b.stores.keys().cloned()).collect();
    let facts = join_all(regions.iter().map(|region| {
        let store = backups.store(region);
        let key = key.clone();
        async move {
            let fact = match store {
                Err(e) => BackupFact::Unreadable(e.message),
                Ok(store) => {
                    let what = format!("backup store {region}");
                    within(what, newest_backup(&store, key), BackupFact::Unreadable).await
                }
            };
            (region.clone(), fact)
        }
    }))
    .await;
    facts.into_iter().collect()
}

async fn newest_backup(
    store: &drover_backup::BackupStore,
    key: Option<std::sync::Arc<drover_backup::SecretKey>>,
) -> BackupFact {
    let ids = match store.backup_ids().await {
        Ok(ids) => ids,
        Err(e) => return BackupFact::Unreadable(e.to_string()),
    };
    let Some(id) = ids.last() else { return BackupFact::Empty };
    let index = match store.index(id).await {
        Ok(index) => index,
        Err(e) => {
            return BackupFact::Newest { id: id.clone(), taken_ms: 0, whole: Err(format!("its index: {e}")) };
        }
    };
    let taken_ms = time::OffsetDateTime::parse(&index.created, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000).max(0) as u64)
        .unwrap_or(0);
    let whole = match store.verify(id, key).await {
        Ok(report) if report.ok() => Ok(report.checked),
        Ok(report) => Err(report.problems().join("; ")),
        Err(e) => Err(e.to_string()),
    };
    BackupFact::Newest { id: id.clone(), taken_ms, whole }
}
