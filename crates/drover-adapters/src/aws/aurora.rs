//! Aurora global databases through the AWS SDK for Rust: `database.kind: aurora-global`,
//! one DB cluster per region in one global cluster.
//!
//! - member: DescribeGlobalClusters and DescribeDBClusters in the member's AWS region.
//!   The global cluster's writer is the primary (writable unless its status refuses
//!   writes; epoch from the `drover:epoch` tag); the other members are standbys of it,
//!   with lag from CloudWatch `AuroraGlobalDBReplicationLag` (milliseconds) of that
//!   secondary cluster. A cluster that is no longer in the global cluster stands alone:
//!   a primary if writable (which the split-brain check then sees).
//! - promote: a planned run (switchover, failback) calls SwitchoverGlobalCluster, which
//!   waits for the secondary to catch up and loses nothing; an unplanned failover calls
//!   FailoverGlobalCluster with AllowDataLoss=true. Both are sent in the target's AWS
//!   region (the old one may be down), then drover waits until the target is the writer
//!   and the global cluster is available again.
//! - fence, catch_up and rejoin are Aurora's own: the runbook rules refuse those steps.
//! - preflight: the global cluster exists, and each member's cluster exists in its AWS
//!   region and is a member of the global cluster (compared by ARN).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::types::{DbCluster, GlobalCluster};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use drover_core::error::ProviderError;
use drover_core::plan::AuroraGlobalSpec;
use drover_core::run::{Epoch, RunId, RunKind};
use drover_core::world::{Database, MemberStatus, Preflight, RejoinMethod};

use super::rds::{
    DEFAULT_POLL, RDS, RdsApi, epoch_tag, epoch_tags, member_hint, refuses_writes, unreachable, wait_until,
};
use super::{describe, describe_unreachable, describe_with};

#[derive(Clone, Debug)]
struct Member {
    /// The plan's name for the region, which the plan's fields are named by.
    region: String,
    aws_region: String,
    cluster: String,
}

impl Member {
    fn resource(&self) -> String {
        format!("{}/{}", self.aws_region, self.cluster)
    }

    /// A failed call about this cluster, with what to check named by the plan's fields.
    fn failed<
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    >(
        &self,
        operation: &str,
        e: aws_sdk_rds::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> ProviderError {
        describe_with(RDS, operation, &self.resource(), e, &|code| member_hint(&self.region, &self.aws_region, code))
    }

    /// [`Member::failed`] for a call whose failure counts as the cluster being out of reach: transient.
    fn out_of_reach<
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    >(
        &self,
        operation: &str,
        e: aws_sdk_rds::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> ProviderError {
        describe_unreachable(RDS, operation, &self.resource(), e, &|code| {
            member_hint(&self.region, &self.aws_region, code)
        })
    }
}

/// `database.kind: aurora-global`.
pub struct AuroraGlobalDatabase {
    api: Arc<RdsApi>,
    global_cluster: String,
    members: BTreeMap<String, Member>,
    timeout: Duration,
    poll: Duration,
}

/// The cluster identifier in a cluster ARN (`arn:aws:rds:us-east-2:123:cluster:shop-east`).
fn cluster_id(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// `us-east-2/shop-east` for a cluster ARN, as messages name clusters.
fn arn_resource(arn: &str) -> String {
    match arn.split(':').nth(3) {
        Some(region) if !region.is_empty() => format!("{region}/{}", cluster_id(arn)),
        _ => arn.to_owned(),
    }
}

impl AuroraGlobalDatabase {
    /// `aws_regions` maps each plan region to its AWS region (`Plan::aws_region`).
    pub fn new(spec: &AuroraGlobalSpec, aws_regions: &BTreeMap<String, String>, api: Arc<RdsApi>) -> Self {
        let members = spec
            .members
            .iter()
            .map(|(region, m)| {
                let aws_region = aws_regions.get(region).cloned().unwrap_or_else(|| region.clone());
                (region.clone(), Member { region: region.clone(), aws_region, cluster: m.cluster.clone() })
            })
            .collect();
        AuroraGlobalDatabase {
            api,
            global_cluster: spec.global_cluster.clone(),
            members,
            timeout: spec.timeout,
            poll: DEFAULT_POLL,
        }
    }

    /// How often a switchover or failover is looked at (tests use less).
    pub fn poll_every(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    fn member(&self, region: &str) -> Result<&Member, ProviderError> {
        self.members
            .get(region)
            .ok_or_else(|| ProviderError::permanent(format!("no database member for region {region} in the plan")))
    }

    /// The global cluster, asked in `m`'s AWS region; `Ok(Err(why))` (transient) when unreachable.
    async fn global(&self, m: &Member) -> Result<Result<GlobalCluster, ProviderError>, ProviderError> {
        let resource = format!("{}/{}", m.aws_region, self.global_cluster);
        let out = self
            .api
            .rds(&m.aws_region)
            .await
            .describe_global_clusters()
            .global_cluster_identifier(&self.global_cluster)
            .send()
            .await;
        match out {
            Ok(out) => {
                Ok(Ok(out.global_clusters().first().cloned().unwrap_or_else(|| GlobalCluster::builder().build())))
            }
            Err(e) if unreachable(&e) => {
                Ok(Err(describe_unreachable(RDS, "DescribeGlobalClusters", &resource, e, &|_| None)))
            }
            Err(e) => Err(describe(RDS, "DescribeGlobalClusters", &resource, e)),
        }
    }

    /// The member's DB cluster; `Ok(Err(why))` (transient) when unreachable.
    async fn cluster(&self, m: &Member) -> Result<Result<DbCluster, ProviderError>, ProviderError> {
        let out =
            self.api.rds(&m.aws_region).await.describe_db_clusters().db_cluster_identifier(&m.cluster).send().await;
        match out {
            Ok(out) => Ok(Ok(out.db_clusters().first().cloned().unwrap_or_else(|| DbCluster::builder().build()))),
            Err(e) if unreachable(&e) => Ok(Err(m.out_of_reach("DescribeDBClusters", e))),
            Err(e) => Err(m.failed("DescribeDBClusters", e)),
        }
    }

    /// Whether `m` is the global cluster's writer, and the writer's cluster id; None when
    /// `m` is not a member of it.
    fn role(global: &GlobalCluster, m: &Member) -> Option<(bool, Option<String>)> {
        let members = global.global_cluster_members();
        let own = members.iter().find(|g| g.db_cluster_arn().is_some_and(|a| cluster_id(a) == m.cluster))?;
        let writer = members
            .iter()
            .find(|g| g.is_writer() == Some(true))
            .and_then(|g| g.db_cluster_arn())
            .map(|a| cluster_id(a).to_owned());
        Some((own.is_writer() == Some(true), writer))
    }

    /// Whether the target is the writer and the global cluster is done moving it.
    async fn moved(&self, to: &Member) -> Result<Result<(), String>, ProviderError> {
        let global = self.global(to).await??;
        let status = global.status().unwrap_or("unknown");
        match Self::role(&global, to) {
            Some((true, _)) if status == "available" => Ok(Ok(())),
            Some((true, _)) => Ok(Err(format!("{} is the writer; the global cluster is {status}", to.cluster))),
            Some((false, writer)) => Ok(Err(format!(
                "the writer is {}; the global cluster is {status}",
                writer.as_deref().unwrap_or("none")
            ))),
            None => Err(ProviderError::permanent(format!(
                "{}: the cluster is not a member of global cluster {}; check database.members and database.global_cluster",
                to.resource(),
                self.global_cluster
            ))),
        }
    }
}

#[async_trait]
impl Database for AuroraGlobalDatabase {
    async fn member(&self, region: &str) -> Result<MemberStatus, ProviderError> {
        let m = self.member(region)?;
        let global = match self.global(m).await? {
            Ok(g) => g,
            Err(why) => return Ok(MemberStatus::Unreachable { reason: why.message }),
        };
        let cluster = match self.cluster(m).await? {
            Ok(c) => c,
            Err(why) => return Ok(MemberStatus::Unreachable { reason: why.message }),
        };
        let status = cluster.status().unwrap_or("unknown");
        let primary = |writable: bool| MemberStatus::Primary {
            writable: writable && !refuses_writes(status),
            epoch: epoch_tag(cluster.tag_list()),
            wal_lsn: None,
            sync_standbys: None,
        };
        Ok(match Self::role(&global, m) {
            Some((true, _)) => primary(true),
            Some((false, writer)) => {
                let lag_ms = self
                    .api
                    .latest_metric(
                        &m.aws_region,
                        "AWS/RDS",
                        "AuroraGlobalDBReplicationLag",
                        ("DBClusterIdentifier", &m.cluster),
                    )
                    .await;
                MemberStatus::Standby {
                    lag_bytes: None,
                    lag_seconds: lag_ms.map(|ms| ms / 1000.0),
                    replay_lsn: None,
                    // A secondary replicates the global writer, whatever its epoch tag says.
                    epoch: None,
                    upstream: writer,
                }
            }
            // Detached from the global cluster (e.g. by hand after a failover): it stands alone.
            None => primary(true),
        })
    }

    async fn fence(&self, region: &str) -> Result<(), ProviderError> {
        Err(ProviderError::permanent(format!(
            "{region}: aurora-global has no fence step: SwitchoverGlobalCluster and FailoverGlobalCluster demote the old writer themselves; remove fence from the runbook"
        )))
    }

    async fn promote(&self, region: &str, kind: RunKind) -> Result<(), ProviderError> {
        let to = self.member(region)?;
        // A call already made (a resumed run) shows as a moving global cluster: only wait then.
        let global = self.global(to).await??;
        let status = global.status().unwrap_or("unknown").to_owned();
        let writer = Self::role(&global, to);
        let target_arn = global
            .global_cluster_members()
            .iter()
            .find_map(|g| g.db_cluster_arn().filter(|a| cluster_id(a) == to.cluster))
            .map(str::to_owned);
        let resource = format!("{}/{}", to.aws_region, self.global_cluster);
        match (writer, target_arn) {
            (Some((true, _)), _) => {}
            (_, None) | (None, _) => return self.moved(to).await?.map_err(ProviderError::permanent),
            (Some((false, _)), Some(arn)) if status == "available" => {
                let client = self.api.rds(&to.aws_region).await;
                if kind.is_planned() {
                    client
                        .switchover_global_cluster()
                        .global_cluster_identifier(&self.global_cluster)
                        .target_db_cluster_identifier(arn)
                        .send()
                        .await
                        .map_err(|e| describe(RDS, "SwitchoverGlobalCluster", &resource, e))?;
                } else {
                    // Only an unplanned failover may lose the writes the secondary has not received.
                    client
                        .failover_global_cluster()
                        .global_cluster_identifier(&self.global_cluster)
                        .target_db_cluster_identifier(arn)
                        .allow_data_loss(true)
                        .send()
                        .await
                        .map_err(|e| describe(RDS, "FailoverGlobalCluster", &resource, e))?;
                }
            }
            (Some((false, _)), Some(_)) => {}
        }
        let what = format!("{resource}: move the writer to {}", to.cluster);
        wait_until(self.timeout, self.poll, &what, || self.moved(to)).await
    }

    async fn record_epoch(&self, region: &str, epoch: Epoch, run: &RunId) -> Result<(), ProviderError> {
        let m = self.member(region)?;
        let cluster = self.cluster(m).await??;
        if epoch_tag(cluster.tag_list()).is_some_and(|e| e >= epoch) {
            return Ok(());
        }
        self.api
            .rds(&m.aws_region)
            .await
            .add_tags_to_resource()
            .resource_name(cluster.db_cluster_arn().unwrap_or_default())
            .set_tags(Some(epoch_tags(epoch, run)))
            .send()
            .await
            .map_err(|e| m.failed("AddTagsToResource", e))?;
        Ok(())
    }

    async fn rejoin(&self, _region: &str, _primary: &str) -> Result<RejoinMethod, ProviderError> {
        Err(ProviderError::permanent(
            drover_core::plan::DatabaseKind::AuroraGlobal.rejoin_by_hand().unwrap_or_default(),
        ))
    }

    /// The global cluster must exist, and the region's cluster must exist in its AWS region
    /// and be a member of the global cluster: `promote` makes that member the writer, and
    /// SwitchoverGlobalCluster cannot move the writer to a cluster outside it. Only RDS's
    /// "not found" (or an answer without the thing) is a problem; an API that cannot be
    /// reached, or any other error, is observation's to judge.
    async fn preflight(&self, region: &str, _fences: bool) -> Preflight {
        let Ok(m) = self.member(region) else { return Vec::new() };
        let client = self.api.rds(&m.aws_region).await;
        let (global, cluster) = tokio::join!(
            client.describe_global_clusters().global_cluster_identifier(&self.global_cluster).send(),
            client.describe_db_clusters().db_cluster_identifier(&m.cluster).send(),
        );
        let mut problems = Vec::new();
        // Named without an AWS region: a global cluster is the same one seen from every
        // region, so each member's preflight words it alike and a run lists it once.
        let no_global = |cause: &str| {
            format!(
                "global cluster '{}': no such Aurora global database ({cause}) — check database.global_cluster names an Aurora global database of this account",
                self.global_cluster
            )
        };
        let global = match global {
            Ok(out) => match out.global_clusters().first() {
                Some(g) if g.global_cluster_identifier().is_some() => Some(g.clone()),
                _ => {
                    problems.push(no_global("DescribeGlobalClusters returned no global cluster"));
                    None
                }
            },
            Err(e) if e.code() == Some("GlobalClusterNotFoundFault") => {
                problems.push(no_global("DescribeGlobalClusters: GlobalClusterNotFoundFault"));
                None
            }
            Err(e) => {
                let resource = format!("{}/{}", m.aws_region, self.global_cluster);
                let why = describe(RDS, "DescribeGlobalClusters", &resource, e).message;
                tracing::debug!("preflight of {resource}: not judged: {why}");
                None
            }
        };
        let field = format!("database.members.{region}.cluster");
        let no_cluster = |cause: &str| {
            format!(
                "{}: no DB cluster '{}' in AWS region {} ({cause}) — check {field} names a DB cluster there, and regions.{region}.aws_region",
                m.resource(),
                m.cluster,
                m.aws_region
            )
        };
        let cluster = match cluster {
            Ok(out) => match out.db_clusters().first() {
                Some(c) if c.db_cluster_identifier().is_some() => Some(c.clone()),
                _ => {
                    problems.push(no_cluster("DescribeDBClusters returned no cluster"));
                    None
                }
            },
            Err(e) if e.code() == Some("DBClusterNotFoundFault") => {
                problems.push(no_cluster("DescribeDBClusters: DBClusterNotFoundFault"));
                None
            }
            Err(e) => {
                tracing::debug!(
                    "preflight of {}: not judged: {}",
                    m.resource(),
                    m.failed("DescribeDBClusters", e).message
                );
                None
            }
        };
        if let (Some(global), Some(cluster)) = (global, cluster) {
            let members: Vec<&str> =
                global.global_cluster_members().iter().filter_map(|g| g.db_cluster_arn()).collect();
            // By ARN where RDS gives one: a cluster of the same name in another region or
            // account is not this member.
            let is_member = members.iter().any(|arn| match cluster.db_cluster_arn() {
                Some(own) => *arn == own,
                None => cluster_id(arn) == m.cluster,
            });
            if !is_member {
                let listed = if members.is_empty() {
                    "it has no member clusters".to_owned()
                } else {
                    let names: Vec<String> = members.iter().map(|a| arn_resource(a)).collect();
                    format!("its members: {}", names.join(", "))
                };
                problems.push(format!(
                    "{} ({field}): not a member of global cluster '{}' ({listed}) — a run cannot make it the writer; check {field} and database.global_cluster, or add the cluster to the global database",
                    m.resource(),
                    self.global_cluster
                ));
            }
        }
        problems
    }
}
