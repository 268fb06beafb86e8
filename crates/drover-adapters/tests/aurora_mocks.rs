//! `database.kind: aurora-global` through aws-smithy-mocks (moto has no global database
//! switchover or failover): the exact requests drover sends for a planned move
//! (SwitchoverGlobalCluster) and an unplanned one (FailoverGlobalCluster, the only one
//! with AllowDataLoss=true), the wait until the target writes, throttling (retried,
//! transient) and errors (permanent, with what to check); and the preflight: what is
//! definitely wrong with the global cluster and its members before a run starts.

#![cfg(feature = "aws")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_rds::Client;
use aws_sdk_rds::error::ErrorMetadata;
use aws_sdk_rds::operation::describe_db_clusters::{DescribeDBClustersError, DescribeDbClustersOutput};
use aws_sdk_rds::operation::describe_global_clusters::{DescribeGlobalClustersError, DescribeGlobalClustersOutput};
use aws_sdk_rds::operation::failover_global_cluster::FailoverGlobalClusterOutput;
use aws_sdk_rds::operation::switchover_global_cluster::{SwitchoverGlobalClusterError, SwitchoverGlobalClusterOutput};
use aws_sdk_rds::types::{DbCluster, GlobalCluster, GlobalClusterMember, Tag};
use aws_smithy_mocks::{MockResponse, Rule, RuleMode, mock, mock_client};
use drover_adapters::aws::aurora::AuroraGlobalDatabase;
use drover_adapters::aws::rds::{RdsApi, cloudwatch_sdk};
use drover_core::engine::Providers;
use drover_core::plan::{AuroraGlobalSpec, AuroraMember};
use drover_core::run::RunKind;
use drover_core::testing::FakeWorld;
use drover_core::testing::scenarios::two_region_plan;
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

// Preflight. The plan names its regions east and west, in AWS regions us-east-2 and
// us-west-1, so each message shows both the AWS resource and the plan field to fix.

/// A cluster in us-west-2 that bears west's name: not the plan's member in us-west-1.
const OTHER_WEST_ARN: &str = "arn:aws:rds:us-west-2:123456789012:cluster:shop-west";

/// DescribeGlobalClusters: `shop-global` with these member cluster ARNs, or not found.
fn global_rule(members: Option<&'static [&'static str]>) -> Rule {
    mock!(Client::describe_global_clusters).then_compute_response(move |req| {
        assert_eq!(req.global_cluster_identifier(), Some("shop-global"));
        let Some(members) = members else {
            return MockResponse::Error(DescribeGlobalClustersError::generic(
                ErrorMetadata::builder()
                    .code("GlobalClusterNotFoundFault")
                    .message("GlobalCluster shop-global not found")
                    .build(),
            ));
        };
        let mut global = GlobalCluster::builder().global_cluster_identifier("shop-global").status("available");
        for arn in members {
            global = global.global_cluster_members(
                GlobalClusterMember::builder().db_cluster_arn(*arn).is_writer(*arn == EAST_ARN).build(),
            );
        }
        MockResponse::Output(DescribeGlobalClustersOutput::builder().global_clusters(global.build()).build())
    })
}

/// DescribeDBClusters: the clusters that exist, by identifier, with their ARNs.
fn existing_clusters(existing: &'static [(&'static str, &'static str)]) -> Rule {
    mock!(Client::describe_db_clusters).then_compute_response(move |req| {
        let id = req.db_cluster_identifier().unwrap();
        match existing.iter().find(|(name, _)| *name == id) {
            Some((name, arn)) => MockResponse::Output(
                DescribeDbClustersOutput::builder()
                    .db_clusters(
                        DbCluster::builder()
                            .db_cluster_identifier(*name)
                            .db_cluster_arn(*arn)
                            .status("available")
                            .build(),
                    )
                    .build(),
            ),
            None => MockResponse::Error(DescribeDBClustersError::generic(
                ErrorMetadata::builder()
                    .code("DBClusterNotFoundFault")
                    .message(format!("DBCluster {id} not found"))
                    .build(),
            )),
        }
    })
}

const BOTH: &[(&str, &str)] = &[("shop-east", EAST_ARN), ("shop-west", WEST_ARN)];

fn planned_database(client: Client) -> AuroraGlobalDatabase {
    let spec = AuroraGlobalSpec {
        global_cluster: "shop-global".into(),
        members: BTreeMap::from([
            ("east".into(), AuroraMember { cluster: "shop-east".into() }),
            ("west".into(), AuroraMember { cluster: "shop-west".into() }),
        ]),
        timeout: Duration::from_secs(30),
    };
    let regions = BTreeMap::from([("east".into(), "us-east-2".into()), ("west".into(), "us-west-1".into())]);
    AuroraGlobalDatabase::new(&spec, &regions, RdsApi::with_clients(client, cloudwatch()))
}

fn preflight_database(global: Rule, clusters: Rule) -> AuroraGlobalDatabase {
    planned_database(mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&global, &clusters], |c| c
        .retry_config(aws_sdk_rds::config::retry::RetryConfig::disabled())))
}

/// What `drover plan check --live` would list: every region's member, through the same
/// gathering a run's preflight uses (the fake world has no other problem).
async fn plan_problems(db: &AuroraGlobalDatabase) -> Vec<String> {
    let world = FakeWorld::two_regions();
    let providers = Providers { database: db, ..Providers::all(&world) };
    drover_core::preflight::for_plan(&two_region_plan(), providers).await
}

#[tokio::test]
async fn preflight_finds_nothing_wrong_with_a_global_database_as_planned() {
    let db = preflight_database(global_rule(Some(&[EAST_ARN, WEST_ARN])), existing_clusters(BOTH));
    assert_eq!(db.preflight("east", false).await, Vec::<String>::new());
    assert_eq!(db.preflight("west", false).await, Vec::<String>::new());
    assert_eq!(plan_problems(&db).await, Vec::<String>::new());
}

#[tokio::test]
async fn preflight_names_a_missing_global_cluster_once_for_every_member() {
    let db = preflight_database(global_rule(None), existing_clusters(BOTH));
    let missing = "global cluster 'shop-global': no such Aurora global database (DescribeGlobalClusters: GlobalClusterNotFoundFault) — check database.global_cluster names an Aurora global database of this account";
    assert_eq!(db.preflight("west", false).await, [missing]);

    // Credentials of another account: nothing is found. The global cluster is one line,
    // though each region's member names it among its own problems.
    let db = preflight_database(global_rule(None), existing_clusters(&[]));
    assert_eq!(
        plan_problems(&db).await,
        [
            missing.to_owned(),
            "us-east-2/shop-east: no DB cluster 'shop-east' in AWS region us-east-2 (DescribeDBClusters: DBClusterNotFoundFault) — check database.members.east.cluster names a DB cluster there, and regions.east.aws_region".to_owned(),
            "us-west-1/shop-west: no DB cluster 'shop-west' in AWS region us-west-1 (DescribeDBClusters: DBClusterNotFoundFault) — check database.members.west.cluster names a DB cluster there, and regions.west.aws_region".to_owned(),
        ]
    );
}

#[tokio::test]
async fn preflight_names_a_member_cluster_missing_from_its_aws_region() {
    let db =
        preflight_database(global_rule(Some(&[EAST_ARN, WEST_ARN])), existing_clusters(&[("shop-east", EAST_ARN)]));
    assert_eq!(db.preflight("east", false).await, Vec::<String>::new());
    assert_eq!(
        db.preflight("west", false).await,
        [
            "us-west-1/shop-west: no DB cluster 'shop-west' in AWS region us-west-1 (DescribeDBClusters: DBClusterNotFoundFault) — check database.members.west.cluster names a DB cluster there, and regions.west.aws_region"
        ]
    );
}

#[tokio::test]
async fn preflight_names_a_cluster_that_is_not_in_the_global_cluster() {
    // West's cluster exists, but the global cluster's other member is a cluster of the
    // same name in us-west-2: the plan's us-west-1 cluster could never become the writer.
    let db = preflight_database(global_rule(Some(&[EAST_ARN, OTHER_WEST_ARN])), existing_clusters(BOTH));
    assert_eq!(db.preflight("east", false).await, Vec::<String>::new());
    assert_eq!(
        db.preflight("west", false).await,
        [
            "us-west-1/shop-west (database.members.west.cluster): not a member of global cluster 'shop-global' (its members: us-east-2/shop-east, us-west-2/shop-west) — a run cannot make it the writer; check database.members.west.cluster and database.global_cluster, or add the cluster to the global database"
        ]
    );

    // Detached after a failover by hand: the global cluster holds only east.
    let db = preflight_database(global_rule(Some(&[EAST_ARN])), existing_clusters(BOTH));
    let problems = db.preflight("west", false).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(
            "us-west-1/shop-west (database.members.west.cluster): not a member of global cluster 'shop-global' (its members: us-east-2/shop-east)"
        ),
        "{problems:?}"
    );
}

#[tokio::test]
async fn preflight_judges_nothing_when_rds_cannot_be_reached() {
    // Nothing listens on port 9: every call fails to connect. A lost region is why
    // failovers exist, so it must not refuse the run.
    let config = aws_sdk_rds::Config::builder()
        .behavior_version(aws_sdk_rds::config::BehaviorVersion::latest())
        .region(aws_sdk_rds::config::Region::new("us-west-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_sdk_rds::config::Credentials::new("AKIDMOCK", "mock-secret", None, None, "mock"))
        .retry_config(aws_sdk_rds::config::retry::RetryConfig::disabled())
        .build();
    let db = planned_database(Client::from_conf(config));
    assert!(matches!(db.member("west").await.unwrap(), MemberStatus::Unreachable { .. }), "the API is down");
    assert_eq!(db.preflight("east", false).await, Vec::<String>::new());
    assert_eq!(db.preflight("west", false).await, Vec::<String>::new());
    assert_eq!(plan_problems(&db).await, Vec::<String>::new());
}
