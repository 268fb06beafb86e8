//! `database.kind: aurora-global` through aws-smithy-mocks (moto has no global database
//! switchover or failover): the exact requests drover sends for a planned move
//! (SwitchoverGlobalCluster) and an unplanned one (FailoverGlobalCluster, the only one
//! with AllowDataLoss=true), the wait until the target writes, throttling (retried,
//! transient) and errors (permanent, with what to check).

#![cfg(feature = "aws")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_rds::Client;
use aws_sdk_rds::error::ErrorMetadata;
use aws_sdk_rds::operation::describe_db_clusters::DescribeDbClustersOutput;
use aws_sdk_rds::operation::describe_global_clusters::{DescribeGlobalClustersError, DescribeGlobalClustersOutput};
use aws_sdk_rds::operation::failover_global_cluster::FailoverGlobalClusterOutput;
use aws_sdk_rds::operation::switchover_global_cluster::{SwitchoverGlobalClusterError, SwitchoverGlobalClusterOutput};
use aws_sdk_rds::types::{DbCluster, GlobalCluster, GlobalClusterMember, Tag};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use drover_adapters::aws::aurora::AuroraGlobalDatabase;
use drover_adapters::aws::rds::{RdsApi, cloudwatch_sdk};
use drover_core::plan::{AuroraGlobalSpec, AuroraMember};
use drover_core::run::RunKind;
use drover_core::world::{Database, MemberStatus};

const EAST_ARN: &str = "arn:aws:rds:us-east-2:123456789012:cluster:shop-east";
const WEST_ARN: &str = "arn:aws:rds:us-west-1:123456789012:cluster:shop-west";

/// The global cluster as the mocks hold it: who writes, and the global status.
#[derive(Clone)]
struct Global {
    writer: &'static str,
    status: &'static str,
}

fn global_cluster(g: &Global) -> GlobalCluster {
    let member = |arn: &str| GlobalClusterMember::builder().db_cluster_arn(arn).is_writer(g.writer == arn).build();
    GlobalCluster::builder()
        .global_cluster_identifier("shop-global")
        .status(g.status)
        .global_cluster_members(member(EAST_ARN))
        .global_cluster_members(member(WEST_ARN))
        .build()
}

/// DescribeGlobalClusters answers from `state`; each answer after a move was requested
/// advances it (switching-over, then available with the new writer).
fn describe_rule(state: Arc<Mutex<Global>>) -> Rule {
    mock!(Client::describe_global_clusters).then_compute_output(move |req| {
        assert_eq!(req.global_cluster_identifier(), Some("shop-global"));
        let mut g = state.lock().unwrap();
        let seen = g.clone();
        if g.status == "switching-over" {
            *g = Global { writer: WEST_ARN, status: "available" };
        }
        DescribeGlobalClustersOutput::builder().global_clusters(global_cluster(&seen)).build()
    })
}

fn clusters_rule() -> Rule {
    mock!(Client::describe_db_clusters).then_compute_output(|req| {
        let id = req.db_cluster_identifier().unwrap().to_owned();
        let arn = if id == "shop-east" { EAST_ARN } else { WEST_ARN };
        let cluster = DbCluster::builder()
            .db_cluster_identifier(&id)
            .db_cluster_arn(arn)
            .status("available")
            .tag_list(Tag::builder().key("drover:epoch").value("4").build())
            .build();
        DescribeDbClustersOutput::builder().db_clusters(cluster).build()
    })
}

fn database(client: Client) -> AuroraGlobalDatabase {
    let spec = AuroraGlobalSpec {
        global_cluster: "shop-global".into(),
        members: BTreeMap::from([
            ("us-east-2".into(), AuroraMember { cluster: "shop-east".into() }),
            ("us-west-1".into(), AuroraMember { cluster: "shop-west".into() }),
        ]),
        timeout: Duration::from_secs(30),
    };
    let regions = BTreeMap::from([("us-east-2".into(), "us-east-2".into()), ("us-west-1".into(), "us-west-1".into())]);
    AuroraGlobalDatabase::new(&spec, &regions, RdsApi::with_clients(client, cloudwatch()))
        .poll_every(Duration::from_millis(10))
}

/// A CloudWatch client nothing answers: the lag is unknown, as without datapoints.
fn cloudwatch() -> cloudwatch_sdk::Client {
    let config = cloudwatch_sdk::Config::builder()
        .behavior_version(cloudwatch_sdk::config::BehaviorVersion::latest())
        .region(cloudwatch_sdk::config::Region::new("us-west-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(cloudwatch_sdk::config::Credentials::new("AKIDMOCK", "mock-secret", None, None, "mock"))
        .retry_config(cloudwatch_sdk::config::retry::RetryConfig::disabled())
        .build();
    cloudwatch_sdk::Client::from_conf(config)
}

/// What was sent: (operation, global cluster, target, AllowDataLoss).
type Sent = Arc<Mutex<Vec<(&'static str, String, String, Option<bool>)>>>;

fn move_rules(state: Arc<Mutex<Global>>, sent: Sent) -> (Rule, Rule) {
    let (s1, st1) = (sent.clone(), state.clone());
    let switchover = mock!(Client::switchover_global_cluster).then_compute_output(move |req| {
        s1.lock().unwrap().push((
            "SwitchoverGlobalCluster",
            req.global_cluster_identifier().unwrap().into(),
            req.target_db_cluster_identifier().unwrap().into(),
            None,
        ));
        st1.lock().unwrap().status = "switching-over";
        SwitchoverGlobalClusterOutput::builder().build()
    });
    let failover = mock!(Client::failover_global_cluster).then_compute_output(move |req| {
        sent.lock().unwrap().push((
            "FailoverGlobalCluster",
            req.global_cluster_identifier().unwrap().into(),
            req.target_db_cluster_identifier().unwrap().into(),
            req.allow_data_loss(),
        ));
        state.lock().unwrap().status = "switching-over";
        FailoverGlobalClusterOutput::builder().build()
    });
    (switchover, failover)
}

async fn promote_west(kind: RunKind) -> Vec<(&'static str, String, String, Option<bool>)> {
    let state = Arc::new(Mutex::new(Global { writer: EAST_ARN, status: "available" }));
    let sent: Sent = Arc::default();
    let describe = describe_rule(state.clone());
    let clusters = clusters_rule();
    let (switchover, failover) = move_rules(state.clone(), sent.clone());
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &clusters, &switchover, &failover]);
    let db = database(client);
    assert!(matches!(db.member("us-west-1").await.unwrap(), MemberStatus::Standby { .. }));
    db.promote("us-west-1", kind).await.unwrap_or_else(|e| panic!("{kind:?}: {}", e.message));
    assert_eq!(state.lock().unwrap().writer, WEST_ARN);
    match db.member("us-west-1").await.unwrap() {
        MemberStatus::Primary { writable: true, epoch: Some(4), .. } => {}
        other => panic!("{other:?}"),
    }
    // A resumed run finds the target writing: nothing more is sent.
    db.promote("us-west-1", kind).await.unwrap();
    sent.lock().unwrap().clone()
}

#[tokio::test]
async fn a_planned_move_switches_over_and_never_allows_data_loss() {
    for kind in [RunKind::Switchover, RunKind::Failback] {
        assert_eq!(
            promote_west(kind).await,
            [("SwitchoverGlobalCluster", "shop-global".into(), WEST_ARN.into(), None)],
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn only_an_unplanned_failover_fails_over_allowing_data_loss() {
    assert_eq!(
        promote_west(RunKind::Failover).await,
        [("FailoverGlobalCluster", "shop-global".into(), WEST_ARN.into(), Some(true))]
    );
}

#[tokio::test]
async fn the_secondary_is_a_standby_of_the_writer_with_its_lag_unknown_without_cloudwatch() {
    let state = Arc::new(Mutex::new(Global { writer: EAST_ARN, status: "available" }));
    let (describe, clusters) = (describe_rule(state), clusters_rule());
    let db = database(mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &clusters]));
    assert_eq!(
        db.member("us-west-1").await.unwrap(),
        MemberStatus::Standby {
            lag_bytes: None,
            lag_seconds: None,
            replay_lsn: None,
            epoch: None,
            upstream: Some("shop-east".into())
        }
    );
    assert!(matches!(db.member("us-east-2").await.unwrap(), MemberStatus::Primary { writable: true, .. }));
}

fn throttled() -> DescribeGlobalClustersError {
    DescribeGlobalClustersError::generic(ErrorMetadata::builder().code("Throttling").message("Rate exceeded").build())
}

#[tokio::test]
async fn throttling_is_retried_and_transient() {
    // With the SDK's retries: one throttled answer, then the real one.
    let state = Arc::new(Mutex::new(Global { writer: EAST_ARN, status: "available" }));
    let once = mock!(Client::describe_global_clusters)
        .sequence()
        .error(throttled)
        .output(move || {
            DescribeGlobalClustersOutput::builder().global_clusters(global_cluster(&state.lock().unwrap())).build()
        })
        .build();
    let clusters = clusters_rule();
    let db = database(mock_client!(aws_sdk_rds, RuleMode::Sequential, [&once, &clusters]));
    assert!(matches!(db.member("us-east-2").await.unwrap(), MemberStatus::Primary { writable: true, .. }));
    assert_eq!(once.num_calls(), 2, "the throttled request was retried");

    // Without them: a transient error the engine's step retries.
    let always = mock!(Client::describe_global_clusters).then_error(throttled);
    let db = database(mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&always], |c| c
        .retry_config(aws_sdk_rds::config::retry::RetryConfig::disabled())));
    let err = db.promote("us-west-1", RunKind::Switchover).await.unwrap_err();
    assert!(err.retryable());
    assert_eq!(
        err.message,
        "us-west-1/shop-global: DescribeGlobalClusters failed: Throttling: Rate exceeded — RDS is throttling or busy; the step retries"
    );
}

#[tokio::test]
async fn errors_are_permanent_and_say_what_to_check() {
    let state = Arc::new(Mutex::new(Global { writer: EAST_ARN, status: "available" }));
    let describe = describe_rule(state);
    let refused = mock!(Client::switchover_global_cluster).then_error(|| {
        SwitchoverGlobalClusterError::generic(
            ErrorMetadata::builder()
                .code("GlobalClusterNotFoundFault")
                .message("Global cluster shop-global not found")
                .build(),
        )
    });
    let db = database(mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &refused]));
    let err = db.promote("us-west-1", RunKind::Switchover).await.unwrap_err();
    assert!(!err.retryable());
    assert_eq!(
        err.message,
        "us-west-1/shop-global: SwitchoverGlobalCluster failed: GlobalClusterNotFoundFault: Global cluster shop-global not found — check database.global_cluster names an Aurora global database of this account"
    );

    let denied = mock!(Client::describe_global_clusters).then_error(|| {
        DescribeGlobalClustersError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("not authorized to perform: rds:DescribeGlobalClusters")
                .build(),
        )
    });
    let db = database(mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&denied]));
    let err = db.member("us-east-2").await.unwrap_err();
    assert!(!err.retryable());
    assert!(err.message.contains("its IAM policy allows rds:DescribeGlobalClusters"), "{}", err.message);
    assert!(!err.message.contains("mock-secret"));
}
