//! Amazon RDS through the AWS SDK for Rust: `database.kind: rds`, one DB instance per
//! region, the standby region's a cross-region read replica of the primary's.
//!
//! - member: DescribeDBInstances in the member's AWS region. A read replica is a standby
//!   (lag: CloudWatch `ReplicaLag`, unknown without a recent datapoint); anything else is
//!   a primary, writable unless stopped, broken or fenced; its epoch is the `drover:epoch` tag.
//! - fence: `default_transaction_read_only=1` (PostgreSQL) or `read_only=1` (MySQL,
//!   MariaDB) in the instance's custom DB parameter group, applied immediately; drover
//!   waits until the instance reports the group in sync.
//! - promote: PromoteReadReplica, then wait until the instance is available, standalone
//!   and not fenced (a fence left from an earlier run is lifted).
//! - record_epoch: AddTagsToResource `drover:epoch`, `drover:run`.
//!
//! Messages never carry credentials (see [`super::describe`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_sdk_rds::Client;
use aws_sdk_rds::error::SdkError;
use aws_sdk_rds::types::{ApplyMethod, DbInstance, Parameter, Tag};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use drover_core::duration::format_duration;
use drover_core::error::ProviderError;
use drover_core::plan::RdsSpec;
use drover_core::run::{Epoch, RunId, RunKind};
use drover_core::world::{Database, DatabaseSettings, MemberStatus, Preflight, RejoinMethod};

use super::cloudwatch::CLOUDWATCH;
use super::{AwsConfig, RegionalClients, Service, before, describe, describe_unreachable, describe_with};

/// The SDKs themselves, for tests and tools that set up instances.
pub use {aws_sdk_cloudwatch as cloudwatch_sdk, aws_sdk_rds as sdk};

/// The tag that holds the epoch a member was promoted at (and the run that did it).
pub const EPOCH_TAG: &str = "drover:epoch";
pub const RUN_TAG: &str = "drover:run";

/// Promotions and parameter changes take minutes: asking every 10 s is plenty.
pub const DEFAULT_POLL: Duration = Duration::from_secs(10);

pub const RDS: Service = Service { name: "RDS", iam: "rds", hint: rds_hint };

/// RDS's hints where the plan region is not known; a member's errors name its own fields
/// ([`member_hint`]).
fn rds_hint(operation: &str, code: &str) -> Option<(String, bool)> {
    let (hint, transient) = match code {
        "DBInstanceNotFound" | "DBInstanceNotFoundFault" => (
            "check each database.members entry's instance names a DB instance in that plan region's AWS region (its aws_region, or its name)",
            false,
        ),
        "DBClusterNotFoundFault" => (
            "check each database.members entry's cluster names a DB cluster in that plan region's AWS region (its aws_region, or its name)",
            false,
        ),
        "GlobalClusterNotFoundFault" => {
            ("check database.global_cluster names an Aurora global database of this account", false)
        }
        "DBParameterGroupNotFound" => ("check the instance's DB parameter group still exists", false),
        // Busy (modifying, backing up, switching over): it clears by itself, so the step retries.
        "InvalidDBInstanceState" | "InvalidDBInstanceStateFault" => (
            "the instance is busy (modifying, rebooting, backing up) or not in a state for this; the step retries — if it persists, check the instance's status in the RDS console",
            true,
        ),
        "InvalidDBClusterStateFault" | "InvalidGlobalClusterStateFault" => (
            "the cluster or global database is busy (another switchover, failover or modification); the step retries — if it persists, check its status in the RDS console",
            true,
        ),
        "InvalidDBParameterGroupState" | "InvalidDBParameterGroupStateFault" => {
            ("the DB parameter group is being modified; the step retries", true)
        }
        _ => return None,
    };
    let _ = operation;
    Some((hint.to_owned(), transient))
}

/// What to check when a member's own instance or cluster is not found, naming the plan
/// region's fields and the AWS region drover asked in (`region`: the plan's name for it).
pub(super) fn member_hint(region: &str, aws_region: &str, code: &str) -> Option<(String, bool)> {
    let field = match code {
        "DBInstanceNotFound" | "DBInstanceNotFoundFault" => "instance",
        "DBClusterNotFoundFault" => "cluster",
        _ => return None,
    };
    let what = if field == "instance" { "a DB instance" } else { "a DB cluster" };
    let source = if region == aws_region {
        format!("the region's own name; set regions.{region}.aws_region if it lives elsewhere")
    } else {
        format!("regions.{region}.aws_region")
    };
    Some((format!("check database.members.{region}.{field} names {what} in {aws_region} ({source})"), false))
}

/// RDS and CloudWatch clients, one pair per AWS region, built from the shared configuration.
pub struct RdsApi {
    /// Clients built elsewhere (tests), used for every region.
    fixed: Option<(Client, aws_sdk_cloudwatch::Client)>,
    clients: RegionalClients<(Client, aws_sdk_cloudwatch::Client)>,
}

/// A region's RDS client, and its CloudWatch client for replica lag.
fn rds_and_cloudwatch(sdk: &aws_config::SdkConfig, region: aws_config::Region) -> (Client, aws_sdk_cloudwatch::Client) {
    let rds = aws_sdk_rds::config::Builder::from(sdk).region(region.clone()).build();
    let cloudwatch = aws_sdk_cloudwatch::config::Builder::from(sdk).region(region).build();
    (Client::from_conf(rds), aws_sdk_cloudwatch::Client::from_conf(cloudwatch))
}

impl RdsApi {
    pub fn new(config: Arc<AwsConfig>) -> Arc<RdsApi> {
        Arc::new(RdsApi { fixed: None, clients: RegionalClients::new(config, rds_and_cloudwatch) })
    }

    /// Clients built elsewhere (tests, mocks), whatever the region.
    pub fn with_clients(rds: Client, cloudwatch: aws_sdk_cloudwatch::Client) -> Arc<RdsApi> {
        Arc::new(RdsApi {
            fixed: Some((rds, cloudwatch)),
            clients: RegionalClients::new(AwsConfig::from_env(), rds_and_cloudwatch),
        })
    }

    pub async fn rds(&self, aws_region: &str) -> Client {
        self.clients(aws_region).await.0
    }

    pub async fn cloudwatch(&self, aws_region: &str) -> aws_sdk_cloudwatch::Client {
        self.clients(aws_region).await.1
    }

    async fn clients(&self, aws_region: &str) -> (Client, aws_sdk_cloudwatch::Client) {
        if let Some(fixed) = &self.fixed {
            return fixed.clone();
        }
        self.clients.get(aws_region).await
    }

    /// The latest value of a CloudWatch metric over the last 10 minutes (maximum per minute),
    /// or None without a datapoint. A failed read is logged and counted unknown: lag is
    /// information for the lag gate, which refuses an unknown lag, not a reason to call the
    /// member unreachable.
    pub async fn latest_metric(
        &self,
        aws_region: &str,
        namespace: &str,
        metric: &str,
        dimension: (&str, &str),
    ) -> Option<f64> {
        use aws_sdk_cloudwatch::primitives::DateTime;
        use aws_sdk_cloudwatch::types::{Dimension, Statistic};
        let now = SystemTime::now();
        let out = self
            .cloudwatch(aws_region)
            .await
            .get_metric_statistics()
            .namespace(namespace)
            .metric_name(metric)
            .dimensions(Dimension::builder().name(dimension.0).value(dimension.1).build())
            .start_time(DateTime::from(now - Duration::from_secs(600)))
            .end_time(DateTime::from(now))
            .period(60)
            .statistics(Statistic::Maximum)
            .send()
            .await;
        match out {
            Ok(out) => out
                .datapoints()
                .iter()
                .filter_map(|d| Some((d.timestamp()?.secs(), d.maximum()?)))
                .max_by_key(|(at, _)| *at)
                .map(|(_, value)| value),
            Err(e) => {
                let resource = format!("{aws_region}/{}", dimension.1);
                tracing::warn!("lag unknown: {}", describe(CLOUDWATCH, "GetMetricStatistics", &resource, e).message);
                None
            }
        }
    }
}

/// An error that means the region's API cannot be reached (network, timeout, the service
/// down): the member counts as unreachable, so a failover skips fencing it.
pub fn unreachable<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => true,
        _ => matches!(e.code(), Some("ServiceUnavailable" | "InternalFailure" | "InternalServiceError")),
    }
}

/// RDS answered that the DB instance does not exist (both codes are seen in the wild).
fn instance_not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e.code(), Some("DBInstanceNotFound" | "DBInstanceNotFoundFault"))
}

/// The epoch in a resource's tags.
pub fn epoch_tag(tags: &[Tag]) -> Option<Epoch> {
    tags.iter().find(|t| t.key() == Some(EPOCH_TAG)).and_then(|t| t.value()?.parse().ok())
}

/// The tags `record_epoch` writes.
pub fn epoch_tags(epoch: Epoch, run: &RunId) -> Vec<Tag> {
    vec![
        Tag::builder().key(EPOCH_TAG).value(epoch.to_string()).build(),
        Tag::builder().key(RUN_TAG).value(run.0.clone()).build(),
    ]
}

/// Waits until `done` says the world is as wanted, asking every `poll`, for at most `timeout`.
/// `Ok(None)` from `done` means not yet, with why in the `String` of the last look.
pub async fn wait_until<F, Fut>(timeout: Duration, poll: Duration, what: &str, mut done: F) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Result<(), String>, ProviderError>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        // A look that has not come back by the deadline ends the wait: the deadline is the
        // promise, whatever the API does (each call has its own timeout, maybe a longer one).
        let Some(look) = before(deadline, done()).await else {
            return Err(ProviderError::permanent(format!(
                "{what}: not done after {} (the last look at it got no answer from the API in time); check it in the RDS console, then 'drover resume' waits again",
                format_duration(timeout)
            )));
        };
        let why = match look? {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            return Err(ProviderError::permanent(format!(
                "{what}: not done after {} ({why}); check it in the RDS console, then 'drover resume' waits again",
                format_duration(timeout)
            )));
        }
        tokio::time::sleep(poll.min(deadline.saturating_duration_since(Instant::now())).max(Duration::from_millis(1)))
            .await;
    }
}

/// Statuses in which an instance (or cluster) cannot take writes whatever its parameters say.
const REFUSES_WRITES: [&str; 11] = [
    "stopped",
    "stopping",
    "starting",
    "failed",
    "deleting",
    "storage-full",
    "inaccessible-encryption-credentials",
    "inaccessible-encryption-credentials-recoverable",
    "incompatible-network",
    "incompatible-restore",
    "restore-error",
];

pub fn refuses_writes(status: &str) -> bool {
    REFUSES_WRITES.contains(&status)
}

/// One region's DB instance.
#[derive(Clone, Debug)]
struct Member {
    /// The plan's name for the region, which the plan's fields are named by.
    region: String,
    aws_region: String,
    instance: String,
}

impl Member {
    fn resource(&self) -> String {
        format!("{}/{}", self.aws_region, self.instance)
    }

    /// A failed call about this instance, with what to check named by the plan's fields.
    fn failed<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
        &self,
        operation: &str,
        e: SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> ProviderError {
        describe_with(RDS, operation, &self.resource(), e, &|code| member_hint(&self.region, &self.aws_region, code))
    }

    /// [`Member::failed`] for a call whose failure counts as the instance being out of reach: transient.
    fn out_of_reach<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
        &self,
        operation: &str,
        e: SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> ProviderError {
        describe_unreachable(RDS, operation, &self.resource(), e, &|code| {
            member_hint(&self.region, &self.aws_region, code)
        })
    }
}

/// What DescribeDBInstances and the parameter group say about one instance.
struct Seen {
    status: String,
    /// The primary it replicates from, for a read replica.
    source: Option<String>,
    arn: String,
    epoch: Option<Epoch>,
    /// The custom parameter group and whether its read-only setting is applied.
    fence: Fence,
}

enum Fence {
    /// The instance uses a `default.*` group, which cannot be modified.
    DefaultGroup(String),
    /// An engine drover has no read-only setting for.
    UnknownEngine(String),
    Group {
        name: String,
        parameter: &'static str,
        /// The group holds the read-only setting...
        set: bool,
        /// ...and the instance has applied the group as it is.
        in_sync: bool,
    },
}

impl Fence {
    /// Read-only in effect: set in the group and applied.
    fn fenced(&self) -> bool {
        matches!(self, Fence::Group { set: true, in_sync: true, .. })
    }
}

/// The read-only setting of an engine's parameter group.
fn read_only_parameter(engine: &str) -> Option<&'static str> {
    if engine.contains("postgres") {
        Some("default_transaction_read_only")
    } else if engine.contains("mysql") || engine.contains("mariadb") {
        Some("read_only")
    } else {
        None
    }
}

/// `database.kind: rds`.
pub struct RdsDatabase {
    api: Arc<RdsApi>,
    members: BTreeMap<String, Member>,
    promote_timeout: Duration,
    poll: Duration,
}

impl RdsDatabase {
    /// `aws_regions` maps each plan region to its AWS region (`Plan::aws_region`).
    pub fn new(spec: &RdsSpec, aws_regions: &BTreeMap<String, String>, api: Arc<RdsApi>) -> RdsDatabase {
        let members = spec
            .members
            .iter()
            .map(|(region, m)| {
                let aws_region = aws_regions.get(region).cloned().unwrap_or_else(|| region.clone());
                (region.clone(), Member { region: region.clone(), aws_region, instance: m.instance.clone() })
            })
            .collect();
        RdsDatabase { api, members, promote_timeout: spec.promote_timeout, poll: DEFAULT_POLL }
    }

    /// How often a promotion or a parameter change is looked at (tests use less).
    pub fn poll_every(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    fn member(&self, region: &str) -> Result<&Member, ProviderError> {
        self.members
            .get(region)
            .ok_or_else(|| ProviderError::permanent(format!("no database member for region {region} in the plan")))
    }

    async fn describe_instance(
        &self,
        m: &Member,
    ) -> Result<
        DbInstance,
        SdkError<
            aws_sdk_rds::operation::describe_db_instances::DescribeDBInstancesError,
            aws_smithy_runtime_api::http::Response,
        >,
    > {
        let out = self
            .api
            .rds(&m.aws_region)
            .await
            .describe_db_instances()
            .db_instance_identifier(&m.instance)
            .send()
            .await?;
        Ok(out.db_instances().first().cloned().unwrap_or_else(|| DbInstance::builder().build()))
    }

    /// The instance as RDS reports it; `Ok(Err(why))` (transient) when its API cannot be reached.
    async fn see(&self, m: &Member) -> Result<Result<Seen, ProviderError>, ProviderError> {
        let instance = match self.describe_instance(m).await {
            Ok(i) => i,
            // Gone counts as unreachable here: a failover skips fencing an instance that no longer
            // exists (deleted in the disaster); a misnamed one is refused before, by preflight.
            Err(e) if unreachable(&e) || instance_not_found(&e) => {
                return Ok(Err(m.out_of_reach("DescribeDBInstances", e)));
            }
            Err(e) => return Err(m.failed("DescribeDBInstances", e)),
        };
        let engine = instance.engine().unwrap_or_default();
        let group = instance.db_parameter_groups().first();
        let group_name = group.and_then(|g| g.db_parameter_group_name()).unwrap_or_default().to_owned();
        let in_sync = group.and_then(|g| g.parameter_apply_status()).is_none_or(|s| s == "in-sync");
        let fence = match read_only_parameter(engine) {
            None => Fence::UnknownEngine(engine.to_owned()),
            Some(_) if group_name.is_empty() || group_name.starts_with("default.") => Fence::DefaultGroup(group_name),
            Some(parameter) => {
                let set = self.parameter(m, &group_name, parameter).await?;
                Fence::Group { set, in_sync, name: group_name, parameter }
            }
        };
        Ok(Ok(Seen {
            status: instance.db_instance_status().unwrap_or("unknown").to_owned(),
            source: instance.read_replica_source_db_instance_identifier().map(str::to_owned),
            arn: instance.db_instance_arn().unwrap_or_default().to_owned(),
            epoch: epoch_tag(instance.tag_list()),
            fence,
        }))
    }

    /// Whether `parameter` is set to on in the group (only user-set values are listed).
    async fn parameter(&self, m: &Member, group: &str, parameter: &str) -> Result<bool, ProviderError> {
        let client = self.api.rds(&m.aws_region).await;
        let resource = format!("{}/{group}", m.aws_region);
        let mut marker = None;
        loop {
            let out = client
                .describe_db_parameters()
                .db_parameter_group_name(group)
                .source("user")
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| describe(RDS, "DescribeDBParameters", &resource, e))?;
            if let Some(p) = out.parameters().iter().find(|p| p.parameter_name() == Some(parameter)) {
                return Ok(matches!(p.parameter_value(), Some("1" | "on" | "ON" | "true")));
            }
            match out.marker() {
                Some(next) if !next.is_empty() => marker = Some(next.to_owned()),
                _ => return Ok(false),
            }
        }
    }

    async fn set_read_only(&self, m: &Member, group: &str, parameter: &str, on: bool) -> Result<(), ProviderError> {
        let value = if on { "1" } else { "0" };
        self.api
            .rds(&m.aws_region)
            .await
            .modify_db_parameter_group()
            .db_parameter_group_name(group)
            .parameters(
                Parameter::builder()
                    .parameter_name(parameter)
                    .parameter_value(value)
                    .apply_method(ApplyMethod::Immediate)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| describe(RDS, "ModifyDBParameterGroup", &format!("{}/{group}", m.aws_region), e))?;
        Ok(())
    }

    /// The family of a DB parameter group (DescribeDBParameterGroups).
    async fn group_family(&self, m: &Member, group: &str) -> Result<String, String> {
        let resource = format!("{}/{group}", m.aws_region);
        let out = self
            .api
            .rds(&m.aws_region)
            .await
            .describe_db_parameter_groups()
            .db_parameter_group_name(group)
            .send()
            .await
            .map_err(|e| describe(RDS, "DescribeDBParameterGroups", &resource, e).message)?;
        out.db_parameter_groups()
            .first()
            .and_then(|g| g.db_parameter_group_family())
            .map(str::to_owned)
            .ok_or_else(|| format!("{resource}: RDS reports no family for the parameter group"))
    }

    /// Sees the member, or fails: acting on an unreachable member is not possible.
    async fn see_reachable(&self, m: &Member) -> Result<Seen, ProviderError> {
        self.see(m).await?
    }
}

#[async_trait]
impl Database for RdsDatabase {
    async fn member(&self, region: &str) -> Result<MemberStatus, ProviderError> {
        let m = self.member(region)?;
        let seen = match self.see(m).await? {
            Ok(seen) => seen,
            Err(why) => return Ok(MemberStatus::Unreachable { reason: why.message }),
        };
        if let Some(source) = seen.source {
            let lag = self
                .api
                .latest_metric(&m.aws_region, "AWS/RDS", "ReplicaLag", ("DBInstanceIdentifier", &m.instance))
                .await;
            return Ok(MemberStatus::Standby {
                lag_bytes: None,
                lag_seconds: lag,
                replay_lsn: None,
                // A read replica holds its source's data; RDS cannot say which epoch that is
                // when the source's region is lost, so drover does not guess.
                epoch: None,
                upstream: Some(source),
            });
        }
        let fenced = seen.fence.fenced();
        Ok(MemberStatus::Primary {
            writable: !fenced && !refuses_writes(&seen.status),
            epoch: seen.epoch,
            wal_lsn: None,
            sync_standbys: None,
        })
    }

    async fn fence(&self, region: &str) -> Result<(), ProviderError> {
        let m = self.member(region)?;
        let seen = self.see_reachable(m).await?;
        if seen.source.is_some() {
            return Ok(());
        }
        let (group, parameter) = match seen.fence {
            ref fence if fence.fenced() => return Ok(()),
            Fence::Group { name, parameter, .. } => (name, parameter),
            Fence::DefaultGroup(group) => {
                return Err(ProviderError::permanent(format!(
                    "{}: cannot fence: the instance uses the default DB parameter group '{group}', which cannot be modified; give it a custom parameter group of its own (aws rds create-db-parameter-group, then modify-db-instance --db-parameter-group-name and a reboot) so drover can make it read-only",
                    m.resource()
                )));
            }
            Fence::UnknownEngine(engine) => {
                return Err(ProviderError::permanent(format!(
                    "{}: cannot fence: drover knows no read-only setting for engine '{engine}' (only PostgreSQL, MySQL and MariaDB)",
                    m.resource()
                )));
            }
        };
        self.set_read_only(m, &group, parameter, true).await?;
        // RDS applies a dynamic parameter within seconds to a minute; the fence is done once in sync.
        wait_until(
            self.promote_timeout,
            self.poll,
            &format!("{}: fence ({parameter}=1 in {group})", m.resource()),
            || async {
                let seen = self.see_reachable(m).await?;
                Ok(if seen.fence.fenced() { Ok(()) } else { Err("the parameter group is not in sync yet".to_owned()) })
            },
        )
        .await
    }

    async fn promote(&self, region: &str, _kind: RunKind) -> Result<(), ProviderError> {
        // Planned moves of RDS are refused when runs are planned (no WAL positions to catch up
        // on), so every promotion is the same: the replica becomes a standalone instance.
        let m = self.member(region)?;
        let seen = self.see_reachable(m).await?;
        if seen.source.is_some() && seen.status == "available" {
            self.api
                .rds(&m.aws_region)
                .await
                .promote_read_replica()
                .db_instance_identifier(&m.instance)
                .send()
                .await
                .map_err(|e| m.failed("PromoteReadReplica", e))?;
        }
        let what = format!("{}: promote", m.resource());
        let unfenced = std::sync::atomic::AtomicBool::new(false);
        wait_until(self.promote_timeout, self.poll, &what, || {
            let unfenced = &unfenced;
            async move {
                let seen = self.see_reachable(m).await?;
                if let Some(source) = &seen.source {
                    return Ok(Err(format!("still a read replica of {source}, status {}", seen.status)));
                }
                if seen.status != "available" {
                    return Ok(Err(format!("status {}", seen.status)));
                }
                match seen.fence {
                    // A fence left from when this instance was an old primary: lift it once.
                    Fence::Group { set: true, in_sync: true, name, parameter } => {
                        if !unfenced.swap(true, std::sync::atomic::Ordering::SeqCst) {
                            self.set_read_only(m, &name, parameter, false).await?;
                        }
                        Ok(Err(format!("{parameter}=1 in {name} is being lifted")))
                    }
                    _ => Ok(Ok(())),
                }
            }
        })
        .await
    }

    async fn record_epoch(&self, region: &str, epoch: Epoch, run: &RunId) -> Result<(), ProviderError> {
        let m = self.member(region)?;
        let seen = self.see_reachable(m).await?;
        if seen.epoch.is_some_and(|e| e >= epoch) {
            return Ok(());
        }
        self.api
            .rds(&m.aws_region)
            .await
            .add_tags_to_resource()
            .resource_name(&seen.arn)
            .set_tags(Some(epoch_tags(epoch, run)))
            .send()
            .await
            .map_err(|e| m.failed("AddTagsToResource", e))?;
        Ok(())
    }

    async fn rejoin(&self, _region: &str, _primary: &str) -> Result<RejoinMethod, ProviderError> {
        Err(ProviderError::permanent(drover_core::plan::DatabaseKind::Rds.rejoin_by_hand().unwrap_or_default()))
    }

    /// `fence` in reverse: the read-only parameter back to 0 in the instance's group, then
    /// wait until the instance has applied it. An instance drover cannot fence (default
    /// group, unknown engine) was never fenced by it: nothing to lift.
    async fn unfence(&self, region: &str) -> Result<(), ProviderError> {
        let m = self.member(region)?;
        let seen = self.see_reachable(m).await?;
        let (group, parameter) = match seen.fence {
            Fence::Group { set: false, in_sync: true, .. } | Fence::DefaultGroup(_) | Fence::UnknownEngine(_) => {
                return Ok(());
            }
            // Set: lift it. Not set but not applied yet: an earlier attempt lifted it; only wait.
            Fence::Group { set, name, parameter, .. } => {
                if set {
                    self.set_read_only(m, &name, parameter, false).await?;
                }
                (name, parameter)
            }
        };
        wait_until(
            self.promote_timeout,
            self.poll,
            &format!("{}: unfence ({parameter}=0 in {group})", m.resource()),
            || async {
                let seen = self.see_reachable(m).await?;
                Ok(match seen.fence {
                    Fence::Group { set: true, .. } => Err(format!("{parameter} is still 1 in {group}")),
                    Fence::Group { in_sync: false, .. } => Err("the parameter group is not in sync yet".to_owned()),
                    _ => Ok(()),
                })
            },
        )
        .await
    }

    /// The instance must exist; one that stands alone (the primary a run fences) must be
    /// fenceable: a known engine on a custom parameter group. Only RDS's "not found" is a
    /// problem: an API that cannot be reached, or any other error, is observation's to judge.
    /// DescribeDBInstances (engine version, class, Multi-AZ, backup retention) and the
    /// family of its parameter group.
    async fn settings(&self, region: &str) -> Result<Option<DatabaseSettings>, String> {
        let m = self.member(region).map_err(|e| e.message)?;
        let instance = self.describe_instance(m).await.map_err(|e| m.failed("DescribeDBInstances", e).message)?;
        let group =
            instance.db_parameter_groups().first().and_then(|g| g.db_parameter_group_name()).unwrap_or_default();
        let family = if group.is_empty() {
            return Err(format!("{}: RDS reports no parameter group for the instance", m.resource()));
        } else {
            self.group_family(m, group).await?
        };
        Ok(Some(DatabaseSettings {
            engine_version: instance.engine_version().unwrap_or("unknown").to_owned(),
            instance_class: instance.db_instance_class().unwrap_or("unknown").to_owned(),
            parameter_group_family: family,
            multi_az: instance.multi_az().unwrap_or(false),
            backup_retention_days: instance.backup_retention_period().unwrap_or(0).max(0) as u32,
        }))
    }

    async fn preflight(&self, region: &str, fences: bool) -> Preflight {
        let Ok(m) = self.member(region) else { return Vec::new() };
        let field = format!("database.members.{region}.instance");
        let not_found = |cause: String| {
            vec![format!(
                "{}: no DB instance '{}' in AWS region {} ({cause}) — check {field} names a DB instance there, and regions.{region}.aws_region",
                m.resource(),
                m.instance,
                m.aws_region
            )]
        };
        let instance = match self.describe_instance(m).await {
            Ok(i) if i.db_instance_identifier().is_some() => i,
            Ok(_) => return not_found("DescribeDBInstances returned no instance".to_owned()),
            Err(e) if instance_not_found(&e) => {
                let code = e.code().unwrap_or_default();
                return not_found(format!("DescribeDBInstances: {code}"));
            }
            Err(e) => {
                let why = describe(RDS, "DescribeDBInstances", &m.resource(), e).message;
                tracing::debug!("preflight of {}: not judged: {why}", m.resource());
                return Vec::new();
            }
        };
        // A replica refuses writes already, and a member the run does not fence (its target)
        // never needs a parameter group drover can change.
        if !fences || instance.read_replica_source_db_instance_identifier().is_some() {
            return Vec::new();
        }
        let engine = instance.engine().unwrap_or_default();
        let group =
            instance.db_parameter_groups().first().and_then(|g| g.db_parameter_group_name()).unwrap_or_default();
        match read_only_parameter(engine) {
            None => vec![format!(
                "{} ({field}): cannot be fenced: drover knows no read-only setting for engine '{engine}' (only PostgreSQL, MySQL and MariaDB)",
                m.resource()
            )],
            Some(_) if group.is_empty() || group.starts_with("default.") => vec![format!(
                "{} ({field}): cannot be fenced: it uses the default DB parameter group '{group}', which cannot be modified — give it a custom parameter group of its own (aws rds create-db-parameter-group, then modify-db-instance --db-parameter-group-name and a reboot)",
                m.resource()
            )],
            Some(_) => Vec::new(),
        }
    }
}
