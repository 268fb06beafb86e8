//! Route 53 through the AWS SDK for Rust: traffic (failover and weighted record
//! sets) and health check status.
//!
//! The epoch lives beside the record as `_drover-epoch.<record> TXT "<epoch>"`
//! (absent means 0). Every change batch drover sends DELETEs that TXT with the
//! value it observed and CREATEs the new one, next to the record changes: Route 53
//! applies a batch whole or not at all, and refuses a DELETE whose value does not
//! match, so a stale run can never overwrite a newer switch.
//!
//! Endpoint, region and credentials come from the standard AWS chain
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_PROFILE`, ...). Messages never carry
//! credentials: they name the region, the resource, the operation and the AWS
//! error code and message.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_route53::Client;
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53::operation::list_resource_record_sets::ListResourceRecordSetsError;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, ResourceRecordSetFailover,
    RrType,
};
use drover_core::duration::format_duration;
use drover_core::error::ProviderError;
use drover_core::plan::{Route53RecordType, Route53Routing, Route53Spec};
use drover_core::run::Epoch;
use drover_core::world::{Answer, Preflight, Traffic, TrafficState};
use tokio::sync::OnceCell;

use super::stages::{StageGate, hold_after_stage, stages_ahead};
use super::{AwsConfig, Service, before, build_error, describe};

/// Prefix of the TXT record that holds the epoch, beside the switched record (as for RFC 2136).
pub const EPOCH_LABEL: &str = "_drover-epoch";

/// Route 53 is a global service whose API is signed for us-east-1.
const GLOBAL_REGION: &str = "us-east-1";

/// How often a pending change is asked about (GetChange).
const DEFAULT_POLL: Duration = Duration::from_secs(2);

/// The SDK itself, for tests and tools that set up zones.
pub use aws_sdk_route53 as sdk;

/// A Route 53 client, built from the standard AWS configuration on first use.
pub struct Route53Api {
    config: Arc<AwsConfig>,
    client: OnceCell<(Client, String)>,
}

impl Route53Api {
    /// Loads the AWS configuration (environment, profile, instance role) when first needed.
    pub fn new(config: Arc<AwsConfig>) -> Arc<Route53Api> {
        Arc::new(Route53Api { config, client: OnceCell::new() })
    }

    /// A client built elsewhere (tests); `region` names it in messages.
    pub fn with_client(client: Client, region: &str) -> Arc<Route53Api> {
        Arc::new(Route53Api {
            config: AwsConfig::from_env(),
            client: OnceCell::new_with(Some((client, region.to_owned()))),
        })
    }

    /// The client, and the AWS region it signs for (for messages).
    pub async fn client(&self) -> (Client, String) {
        self.get().await.clone()
    }

    async fn get(&self) -> &(Client, String) {
        self.client
            .get_or_init(|| async {
                let shared = self.config.sdk().await;
                let mut config = aws_sdk_route53::config::Builder::from(shared);
                if shared.region().is_none() {
                    config = config.region(aws_sdk_route53::config::Region::new(GLOBAL_REGION));
                }
                let config = config.build();
                let region = config.region().map_or(GLOBAL_REGION.to_owned(), ToString::to_string);
                (Client::from_conf(config), region)
            })
            .await
    }

    /// The status of a health check as Route 53 judges it: healthy when more than
    /// 18% of its checkers report success. `Ok` carries a short note, `Err` the reason.
    pub async fn health_check_status(&self, id: &str) -> Result<String, String> {
        match self.health_check(id).await {
            Answer::Yes(note) => Ok(note),
            Answer::No(why) | Answer::CannotTell(why) => Err(why),
        }
    }

    /// [`Route53Api::health_check_status`] telling an unhealthy or missing health check
    /// (`No`) from one Route 53 did not answer about (`CannotTell`), as readiness needs.
    pub async fn health_check(&self, id: &str) -> Answer {
        let (client, region) = self.get().await;
        let resource = format!("{region}/healthcheck/{id}");
        let out = match client.get_health_check_status().health_check_id(id).send().await {
            Ok(out) => out,
            Err(e) => {
                let missing = e.code() == Some("NoSuchHealthCheck");
                let why = describe(ROUTE53, "GetHealthCheckStatus", &resource, e).message;
                return if missing { Answer::No(why) } else { Answer::CannotTell(why) };
            }
        };
        let reports: Vec<&str> = out
            .health_check_observations()
            .iter()
            .map(|o| o.status_report().and_then(|r| r.status()).unwrap_or(""))
            .collect();
        match health_verdict(&reports) {
            Ok(note) => Answer::Yes(note),
            Err(why) if reports.is_empty() => Answer::CannotTell(why),
            Err(why) => Answer::No(why),
        }
    }
}

/// Route 53's rule: healthy when more than 18% of the checkers say `Success`.
pub fn health_verdict(reports: &[&str]) -> Result<String, String> {
    if reports.is_empty() {
        return Err("no checker has reported yet".into());
    }
    let ok = reports.iter().filter(|s| s.starts_with("Success")).count();
    let summary = format!("{ok} of {} checkers report success", reports.len());
    if ok * 100 > reports.len() * 18 {
        Ok(summary)
    } else {
        let why = reports.iter().find(|s| !s.starts_with("Success")).copied().unwrap_or("");
        Err(format!("{summary}: {why}"))
    }
}

/// Points a Route 53 name at a region's record set.
pub struct Route53Traffic {
    api: Arc<Route53Api>,
    spec: Route53Spec,
    gate: Option<Arc<dyn StageGate>>,
    poll: Duration,
}

/// One region's record set as Route 53 holds it.
#[derive(Clone, Debug, PartialEq)]
struct SetState {
    values: Vec<String>,
    failover: Option<ResourceRecordSetFailover>,
    weight: Option<i64>,
    /// Exactly as listed: a switch DELETEs this and CREATEs the new set in one batch, so
    /// Route 53 refuses the batch if the set is gone or changed, and none is ever created.
    listed: ResourceRecordSet,
}

/// What the epoch TXT holds: `<epoch>`, or `<epoch>;<percent>` while a weighted
/// shift is between stages, so every batch of a shift moves it to a new value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum EpochRecord {
    Absent,
    Holds { epoch: Epoch, value: String },
}

impl EpochRecord {
    fn epoch(&self) -> Epoch {
        match self {
            EpochRecord::Absent => 0,
            EpochRecord::Holds { epoch, .. } => *epoch,
        }
    }

    fn parse(value: &str) -> Option<EpochRecord> {
        let epoch = value.split_once(';').map_or(value, |(e, _)| e).trim().parse().ok()?;
        Some(EpochRecord::Holds { epoch, value: value.to_owned() })
    }
}

impl Route53Traffic {
    /// `gate` holds weighted shifts between stages (None: no pause checks).
    pub fn new(spec: &Route53Spec, api: Arc<Route53Api>, gate: Option<Arc<dyn StageGate>>) -> Self {
        Route53Traffic { api, spec: spec.clone(), gate, poll: DEFAULT_POLL }
    }

    /// How often GetChange is asked while a change is PENDING (tests use less).
    pub fn poll_every(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    fn epoch_name(&self) -> String {
        format!("{EPOCH_LABEL}.{}", self.spec.record)
    }

    fn rr_type(&self) -> RrType {
        match self.spec.record_type {
            Route53RecordType::A => RrType::A,
            Route53RecordType::Aaaa => RrType::Aaaa,
            Route53RecordType::Cname => RrType::Cname,
        }
    }

    async fn resource(&self) -> (&Client, String) {
        let (client, region) = self.api.get().await;
        (client, format!("{region}/hostedzone/{}", self.spec.hosted_zone_id))
    }

    /// Record sets named `name` of type `rr_type`, in Route 53's order.
    async fn record_sets(&self, name: &str, rr_type: RrType) -> Result<Vec<ResourceRecordSet>, ProviderError> {
        let (client, resource) = self.resource().await;
        let out = client
            .list_resource_record_sets()
            .hosted_zone_id(&self.spec.hosted_zone_id)
            .start_record_name(name)
            .start_record_type(rr_type.clone())
            .max_items(100)
            .send()
            .await
            .map_err(|e| describe(ROUTE53, "ListResourceRecordSets", &resource, e))?;
        Ok(out
            .resource_record_sets()
            .iter()
            .filter(|s| same_name(s.name(), name) && *s.r#type() == rr_type)
            .cloned()
            .collect())
    }

    async fn epoch_record(&self) -> Result<EpochRecord, ProviderError> {
        let name = self.epoch_name();
        let sets = self.record_sets(&name, RrType::Txt).await?;
        let values: Vec<String> = sets.iter().flat_map(|s| s.resource_records()).map(|r| unquote(r.value())).collect();
        match values.as_slice() {
            [] => Ok(EpochRecord::Absent),
            [value] => EpochRecord::parse(value).ok_or_else(|| {
                ProviderError::permanent(format!(
                    "route53 {name}: the epoch record holds \"{value}\", not an epoch number — it was not written by drover; correct it or delete it"
                ))
            }),
            _ => Err(ProviderError::permanent(format!(
                "route53 {name}: the epoch record holds {} values, drover writes one — delete the extra TXT values",
                values.len()
            ))),
        }
    }

    /// Each region's record set, by region; regions without one are left out.
    async fn sets(&self) -> Result<BTreeMap<String, SetState>, ProviderError> {
        let found = self.record_sets(&self.spec.record, self.rr_type()).await?;
        let mut sets = BTreeMap::new();
        for (region, target) in &self.spec.targets {
            if let Some(s) = found.iter().find(|s| s.set_identifier() == Some(target.set_identifier.as_str())) {
                let values = s.resource_records().iter().map(|r| r.value().trim_end_matches('.').to_owned()).collect();
                let state = SetState { values, failover: s.failover().cloned(), weight: s.weight(), listed: s.clone() };
                sets.insert(region.clone(), state);
            }
        }
        Ok(sets)
    }

    fn epoch_txt(&self, value: &str) -> Result<ResourceRecordSet, ProviderError> {
        let record =
            ResourceRecord::builder().value(format!("\"{value}\"")).build().map_err(|e| build_error(ROUTE53, e))?;
        ResourceRecordSet::builder()
            .name(self.epoch_name())
            .r#type(RrType::Txt)
            .ttl(ttl_seconds(&self.spec))
            .resource_records(record)
            .build()
            .map_err(|e| build_error(ROUTE53, e))
    }

    /// The region's record set with its routing attribute (PRIMARY/SECONDARY, or a weight).
    fn region_set(
        &self,
        region: &str,
        failover: Option<ResourceRecordSetFailover>,
        weight: Option<i64>,
    ) -> Result<ResourceRecordSet, ProviderError> {
        let target = self.spec.targets.get(region).ok_or_else(|| no_target(&self.spec.record, region))?;
        let record = ResourceRecord::builder().value(&target.value).build().map_err(|e| build_error(ROUTE53, e))?;
        ResourceRecordSet::builder()
            .name(&self.spec.record)
            .r#type(self.rr_type())
            .ttl(ttl_seconds(&self.spec))
            .resource_records(record)
            .set_identifier(&target.set_identifier)
            .set_failover(failover)
            .set_weight(weight)
            .set_health_check_id(target.health_check_id.clone())
            .build()
            .map_err(|e| build_error(ROUTE53, e))
    }

    /// One change batch: the epoch TXT moves from `expected` to `new_value` (the fence),
    /// and each record set in `sets` is replaced: DELETE the set as listed, CREATE the new
    /// one. Never UPSERT: with a set identifier the plan got wrong, an UPSERT creates a
    /// set beside the real one (a second PRIMARY), where a DELETE makes Route 53 refuse
    /// the whole batch.
    fn batch(
        &self,
        expected: &EpochRecord,
        new_value: &str,
        sets: Vec<(ResourceRecordSet, ResourceRecordSet)>,
        comment: String,
    ) -> Result<ChangeBatch, ProviderError> {
        let change = |action: ChangeAction, set: ResourceRecordSet| {
            Change::builder().action(action).resource_record_set(set).build().map_err(|e| build_error(ROUTE53, e))
        };
        let mut changes = Vec::new();
        if let EpochRecord::Holds { value, .. } = expected {
            changes.push(change(ChangeAction::Delete, self.epoch_txt(value)?)?);
        }
        changes.push(change(ChangeAction::Create, self.epoch_txt(new_value)?)?);
        for (listed, new) in sets {
            changes.push(change(ChangeAction::Delete, listed)?);
            changes.push(change(ChangeAction::Create, new)?);
        }
        ChangeBatch::builder().comment(comment).set_changes(Some(changes)).build().map_err(|e| build_error(ROUTE53, e))
    }

    /// Sends a batch that replaces the epoch record `expected` with `writes`, and waits until
    /// Route 53 reports it INSYNC (or the plan's change timeout passes).
    async fn apply(&self, batch: ChangeBatch, expected: &EpochRecord, writes: &str) -> Result<(), ProviderError> {
        let (client, resource) = self.resource().await;
        let sent = client
            .change_resource_record_sets()
            .hosted_zone_id(&self.spec.hosted_zone_id)
            .change_batch(batch)
            .send()
            .await;
        let info = match sent {
            Ok(out) => out.change_info().cloned(),
            Err(e) if fence_refused(&e) => {
                let now = self.epoch_record().await?;
                // An attempt that timed out after Route 53 applied it, then retried by the SDK:
                // the record holds what this batch writes, so the batch is in (the step's next
                // look confirms where traffic points).
                if matches!(&now, EpochRecord::Holds { value, .. } if value == writes) {
                    return Ok(());
                }
                return Err(self.stale(expected, now));
            }
            Err(e) => return Err(describe(ROUTE53, "ChangeResourceRecordSets", &resource, e)),
        };
        let Some(info) = info else {
            return Err(ProviderError::transient(format!(
                "{resource}: ChangeResourceRecordSets failed: the answer carries no change id — check the endpoint (AWS_ENDPOINT_URL) is Route 53"
            )));
        };
        let deadline = Instant::now() + self.spec.change_timeout;
        let mut status = info.status().clone();
        while status != ChangeStatus::Insync {
            if Instant::now() >= deadline {
                return Err(ProviderError::transient(format!(
                    "{resource}: change {} is still {} after {} — Route 53 has not propagated it yet; the step retries, or raise traffic.change_timeout",
                    info.id(),
                    status.as_str(),
                    format_duration(self.spec.change_timeout)
                )));
            }
            tokio::time::sleep(self.poll.min(deadline.saturating_duration_since(Instant::now()))).await;
            // A GetChange still unanswered at the deadline counts as the change still pending.
            let Some(out) = before(deadline, client.get_change().id(info.id()).send()).await else {
                continue;
            };
            let out = out.map_err(|e| describe(ROUTE53, "GetChange", &resource, e))?;
            status = out.change_info().map_or(ChangeStatus::Pending, |i| i.status().clone());
        }
        Ok(())
    }

    fn stale(&self, expected: &EpochRecord, now: EpochRecord) -> ProviderError {
        ProviderError::stale(format!(
            "route53 {}: switch refused: the epoch record holds {}, not {} (a newer run has switched traffic); abort this run",
            self.spec.record,
            now.epoch(),
            expected.epoch()
        ))
    }

    /// Every region's set as listed now; a set the plan names that the zone does not hold
    /// refuses the switch: drover changes record sets, it never creates one.
    async fn existing_sets(&self) -> Result<BTreeMap<String, SetState>, ProviderError> {
        let sets = self.sets().await?;
        let missing: Vec<String> = self
            .spec
            .targets
            .iter()
            .filter(|(region, _)| !sets.contains_key(*region))
            .map(|(region, t)| format!("'{}' (traffic.targets.{region}.set_identifier)", t.set_identifier))
            .collect();
        if missing.is_empty() {
            return Ok(sets);
        }
        Err(ProviderError::permanent(format!(
            "route53 {}: switch refused: hosted zone {} holds no {} record set with set identifier {}; drover switches only record sets that exist and never creates one — correct the plan or create the set, then resume",
            self.spec.record,
            self.spec.hosted_zone_id,
            self.spec.record_type.as_str(),
            missing.join(", ")
        )))
    }

    /// Failover: the target's set becomes PRIMARY, the other SECONDARY, in one batch.
    async fn switch_failover(
        &self,
        region: &str,
        expected: EpochRecord,
        new_epoch: Epoch,
    ) -> Result<(), ProviderError> {
        let now = self.existing_sets().await?;
        let mut sets = Vec::new();
        for other in self.spec.targets.keys() {
            let role =
                if other == region { ResourceRecordSetFailover::Primary } else { ResourceRecordSetFailover::Secondary };
            sets.push((now[other].listed.clone(), self.region_set(other, Some(role), None)?));
        }
        let comment = format!("drover: {} PRIMARY -> {region} at epoch {new_epoch}", self.spec.record);
        let writes = new_epoch.to_string();
        self.apply(self.batch(&expected, &writes, sets, comment)?, &expected, &writes).await
    }

    /// Weighted: the target's share rises through the stages still ahead of it; the
    /// regions that held weight share the rest in proportion to what they held.
    async fn switch_weighted(
        &self,
        region: &str,
        stages: &[u8],
        pause: Duration,
        mut expected: EpochRecord,
        new_epoch: Epoch,
    ) -> Result<(), ProviderError> {
        let mut now = self.existing_sets().await?;
        let weight = |r: &str| now.get(r).and_then(|s| s.weight).unwrap_or(0).max(0);
        let total: i64 = self.spec.targets.keys().map(|r| weight(r)).sum();
        let share = if total == 0 { 0 } else { weight(region) * 100 / total };
        let others: Vec<(&String, i64)> =
            self.spec.targets.keys().filter(|r| *r != region).map(|r| (r, weight(r))).collect();
        let others_total: i64 = others.iter().map(|(_, w)| w).sum();
        let ahead = stages_ahead(stages, share);
        for (i, &percent) in ahead.iter().enumerate() {
            if i > 0 {
                // Each stage replaces the sets exactly as the stage before left them.
                now = self.existing_sets().await?;
            }
            let rest = 100 - i64::from(percent);
            let mut sets = vec![(now[region].listed.clone(), self.region_set(region, None, Some(i64::from(percent)))?)];
            for (other, held) in &others {
                let w = match others_total {
                    0 => rest / others.len() as i64,
                    _ => rest * held / others_total,
                };
                sets.push((now[other.as_str()].listed.clone(), self.region_set(other, None, Some(w))?));
            }
            let comment = format!("drover: {} {percent}% -> {region} at epoch {new_epoch}", self.spec.record);
            // `<epoch>;<percent>` between stages: each batch deletes the exact value the one before wrote.
            let value = if percent == 100 { new_epoch.to_string() } else { format!("{new_epoch};{percent}") };
            self.apply(self.batch(&expected, &value, sets, comment)?, &expected, &value).await?;
            expected = EpochRecord::Holds { epoch: new_epoch, value };
            if percent == 100 {
                break;
            }
            let what = format!("route53 {}", self.spec.record);
            let stays = "the weights stay where they are";
            hold_after_stage(self.gate.as_ref(), &what, stays, region, pause, (i, percent, ahead.len())).await?;
        }
        Ok(())
    }
}

/// A record set in a message: `'us-west-1' (A, SECONDARY)`.
fn set_label(s: &ResourceRecordSet) -> String {
    let routing = match (s.failover(), s.weight()) {
        (Some(f), _) => f.as_str().to_owned(),
        (None, Some(w)) => format!("weight {w}"),
        (None, None) => "simple".to_owned(),
    };
    format!("'{}' ({}, {routing})", s.set_identifier().unwrap_or("no set identifier"), s.r#type().as_str())
}

impl Route53Traffic {
    /// Every record set named like the plan's record, whatever its type.
    async fn sets_named(&self) -> Result<Vec<ResourceRecordSet>, SdkError<ListResourceRecordSetsError>> {
        let (client, _) = self.resource().await;
        // Sets are listed in name order from the record on; 300 is the most one call returns,
        // far more than one name holds.
        let out = client
            .list_resource_record_sets()
            .hosted_zone_id(&self.spec.hosted_zone_id)
            .start_record_name(&self.spec.record)
            .max_items(300)
            .send()
            .await?;
        Ok(out.resource_record_sets().iter().filter(|s| same_name(s.name(), &self.spec.record)).cloned().collect())
    }

    /// The record sets a switch changes, against what the zone holds for the name.
    fn judge_sets(&self, listed: &[ResourceRecordSet]) -> Vec<String> {
        let record = &self.spec.record;
        let rr_type = self.rr_type();
        let failover = matches!(self.spec.routing, Route53Routing::Failover);
        let routing = if failover { "failover" } else { "weighted" };
        let held = if listed.is_empty() {
            "none".to_owned()
        } else {
            listed.iter().map(set_label).collect::<Vec<_>>().join(", ")
        };
        let mut problems = Vec::new();
        for (region, target) in &self.spec.targets {
            let id = target.set_identifier.as_str();
            let Some(set) = listed.iter().find(|s| s.set_identifier() == Some(id)) else {
                problems.push(format!(
                    "route53 {record}: hosted zone {} holds no record set with set identifier '{id}' (it holds: {held}) — check traffic.targets.{region}.set_identifier; a switch changes only record sets that exist",
                    self.spec.hosted_zone_id
                ));
                continue;
            };
            if *set.r#type() != rr_type {
                problems.push(format!(
                    "route53 {record}: record set {} is of type {}, the plan says {} — check traffic.type",
                    set_label(set),
                    set.r#type().as_str(),
                    rr_type.as_str()
                ));
            } else if (failover && set.failover().is_none()) || (!failover && set.weight().is_none()) {
                problems.push(format!(
                    "route53 {record}: record set {} is not a {routing} record set — check traffic.routing (a switch would change its routing policy)",
                    set_label(set)
                ));
            }
        }
        // Sets of the name and type the plan does not name: a switch leaves them as they
        // are, so Route 53 would go on answering with them.
        let ours: Vec<&str> = self.spec.targets.values().map(|t| t.set_identifier.as_str()).collect();
        for other in listed.iter().filter(|s| *s.r#type() == rr_type) {
            if other.set_identifier().is_some_and(|id| ours.contains(&id)) {
                continue;
            }
            let conflict = match (other.set_identifier(), failover) {
                (None, _) => Some("a record set without set identifier cannot stand beside drover's"),
                (Some(_), true) if other.failover().is_some() => {
                    Some("a second failover set: Route 53 would have two PRIMARY or two SECONDARY sets for the name")
                }
                (Some(_), false) if other.weight().unwrap_or(0) > 0 => {
                    Some("it keeps its share of the traffic whatever drover switches")
                }
                _ => None,
            };
            if let Some(why) = conflict {
                problems.push(format!(
                    "route53 {record}: hosted zone {} also holds record set {} that no traffic.targets entry names ({why}) — delete it, or name it in traffic.targets.<region>.set_identifier",
                    self.spec.hosted_zone_id,
                    set_label(other)
                ));
            }
        }
        problems
    }
}

#[async_trait]
impl Traffic for Route53Traffic {
    /// The zone exists; every record set the plan names exists with its identifier, type
    /// and routing; no other set of the name would answer beside them; the health checks
    /// the plan keeps on the sets exist. Route 53 that cannot be reached is no problem here.
    async fn preflight(&self) -> Preflight {
        let (_, resource) = self.resource().await;
        let mut problems = match self.sets_named().await {
            Ok(listed) => self.judge_sets(&listed),
            Err(e) if e.code() == Some("NoSuchHostedZone") => vec![format!(
                "{resource}: no hosted zone '{}' (ListResourceRecordSets: NoSuchHostedZone) — check traffic.hosted_zone_id",
                self.spec.hosted_zone_id
            )],
            Err(e) => {
                let why = describe(ROUTE53, "ListResourceRecordSets", &resource, e).message;
                tracing::debug!("preflight of {resource}: not judged: {why}");
                Vec::new()
            }
        };
        let (client, region) = self.api.get().await;
        for (target_region, target) in &self.spec.targets {
            let Some(id) = &target.health_check_id else { continue };
            // GetHealthCheckStatus, not GetHealthCheck: drover's IAM policy already allows it.
            let out = client.get_health_check_status().health_check_id(id).send().await;
            if let Err(e) = out
                && e.code() == Some("NoSuchHealthCheck")
            {
                problems.push(format!(
                    "{region}/healthcheck/{id}: no such health check (GetHealthCheckStatus: NoSuchHealthCheck) — check traffic.targets.{target_region}.health_check_id"
                ));
            }
        }
        problems
    }

    /// The record set's own health check (`traffic.targets.REGION.health_check_id`): Route
    /// 53 answers failover queries by it.
    async fn health_check(&self, region: &str) -> Answer {
        let Some(target) = self.spec.targets.get(region) else {
            return Answer::CannotTell(format!("traffic.targets names no record set for {region}"));
        };
        let Some(id) = &target.health_check_id else {
            return Answer::CannotTell(format!(
                "record set '{}' has no health check (traffic.targets.{region}.health_check_id)",
                target.set_identifier
            ));
        };
        match self.api.health_check(id).await {
            Answer::Yes(note) => Answer::Yes(format!("health check {id}: {note}")),
            other => other,
        }
    }

    async fn current(&self) -> Result<TrafficState, ProviderError> {
        let (sets, epoch) = tokio::try_join!(self.sets(), self.epoch_record())?;
        let (region, addresses) = match self.spec.routing {
            Route53Routing::Failover => {
                let primary = sets.iter().find(|(_, s)| s.failover == Some(ResourceRecordSetFailover::Primary));
                (primary.map(|(r, _)| r.clone()), primary.map(|(_, s)| s.values.clone()).unwrap_or_default())
            }
            Route53Routing::Weighted { .. } => {
                let weighted: Vec<(&String, &SetState)> =
                    sets.iter().filter(|(_, s)| s.weight.unwrap_or(0) > 0).collect();
                // A region only when it carries all the weight: a half-moved shift points nowhere.
                let region = match weighted.as_slice() {
                    [(r, _)] => Some((*r).clone()),
                    _ => None,
                };
                let addresses = weighted
                    .iter()
                    .flat_map(|(_, s)| s.values.iter().map(|v| format!("{v} (weight {})", s.weight.unwrap_or(0))))
                    .collect();
                (region, addresses)
            }
        };
        Ok(TrafficState { region, addresses, epoch: epoch.epoch() })
    }

    /// Safe to repeat: when the epoch record already holds `new_epoch` (an earlier
    /// attempt of this run got through), the switch goes on from where it is.
    async fn switch(&self, region: &str, observed_epoch: Epoch, new_epoch: Epoch) -> Result<(), ProviderError> {
        if !self.spec.targets.contains_key(region) {
            return Err(no_target(&self.spec.record, region));
        }
        // Refuse early, with nothing sent, when the record has moved on; Route 53's
        // batch check is what makes it safe against a race.
        let expected = match self.epoch_record().await? {
            now if now.epoch() == new_epoch => now,
            now if now.epoch() == observed_epoch => now,
            now => {
                return Err(self.stale(&EpochRecord::Holds { epoch: observed_epoch, value: String::new() }, now));
            }
        };
        match &self.spec.routing {
            Route53Routing::Failover => self.switch_failover(region, expected, new_epoch).await,
            Route53Routing::Weighted { stages, stage_pause } => {
                self.switch_weighted(region, stages, *stage_pause, expected, new_epoch).await
            }
        }
    }
}

/// Route 53 refused the batch because the epoch TXT did not hold the value drover
/// deleted (InvalidChangeBatch), or, for a CREATE, already existed. moto answers
/// a DELETE of a value it never held with InvalidInput.
fn fence_refused<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    matches!(e.code(), Some("InvalidChangeBatch" | "InvalidInput"))
        && e.message().is_some_and(|m| m.contains(EPOCH_LABEL))
}

fn same_name(found: &str, wanted: &str) -> bool {
    found.trim_end_matches('.').eq_ignore_ascii_case(wanted.trim_end_matches('.'))
}

fn unquote(value: &str) -> String {
    value.trim().trim_matches('"').to_owned()
}

fn ttl_seconds(spec: &Route53Spec) -> i64 {
    i64::try_from(spec.ttl.as_secs()).unwrap_or(i64::MAX)
}

fn no_target(record: &str, region: &str) -> ProviderError {
    ProviderError::permanent(format!(
        "route53 {record}: no target for region '{region}' in traffic.targets — add it to the plan"
    ))
}

pub(crate) const ROUTE53: Service = Service { name: "Route 53", iam: "route53", hint };

/// Route 53's own codes; throttling and access are `aws::describe`'s.
fn hint(_operation: &str, code: &str) -> Option<(String, bool)> {
    Some(match code {
        "NoSuchHostedZone" => ("check traffic.hosted_zone_id names a hosted zone of this account".into(), false),
        "NoSuchHealthCheck" => ("check the health check id in the plan exists in this account".into(), false),
        "InvalidChangeBatch" | "InvalidInput" => (
            "the hosted zone's record sets do not fit the plan; check traffic.record, type, set identifiers and routing against the zone".into(),
            false,
        ),
        _ => ("check the plan's traffic section against the hosted zone".into(), false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_route53s_18_percent_rule() {
        assert!(health_verdict(&["Success: HTTP Status Code 200"]).is_ok());
        let many_failing = ["Failure: timeout"; 5].into_iter().chain(["Success: 200"]).collect::<Vec<_>>();
        // 1 of 6 is 16.7%: not more than 18%.
        let err = health_verdict(&many_failing).unwrap_err();
        assert!(err.starts_with("1 of 6 checkers report success: Failure: timeout"), "{err}");
        let enough = ["Failure: timeout"; 4].into_iter().chain(["Success: 200"]).collect::<Vec<_>>();
        assert_eq!(health_verdict(&enough).unwrap(), "1 of 5 checkers report success");
        assert!(health_verdict(&[]).is_err());
    }

    #[test]
    fn names_compare_without_the_final_dot_and_case() {
        assert!(same_name("API.example.com.", "api.example.com."));
        assert!(same_name("api.example.com", "api.example.com."));
        assert!(!same_name("_drover-epoch.api.example.com.", "api.example.com."));
    }
}
