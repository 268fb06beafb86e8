//! `database.kind: rds` against a real moto server: a primary instance in us-east-2 with
//! its own parameter group, a cross-region read replica in us-west-1. drover reads the
//! members, fences the primary through its parameter group, promotes the replica and tags
//! it with the epoch; everything is read back from moto with the SDK.

#![cfg(feature = "aws")]

#[path = "support/moto.rs"]
mod moto;

use std::collections::BTreeMap;
use std::time::Duration;

use drover_adapters::aws::AwsConfig;
use drover_adapters::aws::rds::{RdsApi, RdsDatabase};
use drover_core::plan::{RdsMember, RdsSpec};
use drover_core::run::{RunId, RunKind};
use drover_core::world::{Database, MemberStatus};
use moto::{Moto, seed_rds as seed};

const EAST: &str = "us-east-2";
const WEST: &str = "us-west-1";

fn database(moto: &Moto) -> RdsDatabase {
    let spec = RdsSpec {
        members: BTreeMap::from([
            (EAST.into(), RdsMember { instance: "shop-db".into() }),
            (WEST.into(), RdsMember { instance: "shop-db-replica".into() }),
        ]),
        promote_timeout: Duration::from_secs(60),
    };
    let regions = BTreeMap::from([(EAST.into(), EAST.into()), (WEST.into(), WEST.into())]);
    RdsDatabase::new(&spec, &regions, RdsApi::new(AwsConfig::with(moto.sdk_config())))
        .poll_every(Duration::from_millis(50))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn fence_then_promote_makes_the_replica_a_standalone_primary_at_the_epoch() {
    let moto = Moto::start();
    runtime().block_on(async {
        let (east, west) = (moto.rds(EAST), moto.rds(WEST));
        seed(&east, &west, "shop-pg").await;
        let db = database(&moto);

        let primary = db.member(EAST).await.unwrap();
        assert_eq!(primary, MemberStatus::Primary { writable: true, epoch: None, wal_lsn: None, sync_standbys: None });
        match db.member(WEST).await.unwrap() {
            // moto has no CloudWatch datapoints: the lag is honestly unknown.
            MemberStatus::Standby { lag_bytes: None, lag_seconds: None, upstream: Some(up), .. } => {
                assert!(up.ends_with(":db:shop-db"), "{up}")
            }
            other => panic!("{other:?}"),
        }

        db.fence(EAST).await.expect("fence");
        let params = east.describe_db_parameters().db_parameter_group_name("shop-pg").send().await.unwrap();
        let set: Vec<_> =
            params.parameters().iter().map(|p| (p.parameter_name().unwrap(), p.parameter_value().unwrap())).collect();
        assert_eq!(set, [("default_transaction_read_only", "1")]);
        assert!(matches!(db.member(EAST).await.unwrap(), MemberStatus::Primary { writable: false, .. }));
        db.fence(EAST).await.expect("fencing again is a no-op");

        db.promote(WEST, RunKind::Failover).await.expect("promote");
        db.record_epoch(WEST, 3, &RunId("r-test".into())).await.expect("record epoch");
        let replica = west.describe_db_instances().db_instance_identifier("shop-db-replica").send().await.unwrap();
        let replica = &replica.db_instances()[0];
        assert_eq!(replica.read_replica_source_db_instance_identifier(), None);
        assert_eq!(replica.db_instance_status(), Some("available"));
        let tags: Vec<_> = replica.tag_list().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
        assert_eq!(tags, [("drover:epoch", "3"), ("drover:run", "r-test")]);
        assert_eq!(
            db.member(WEST).await.unwrap(),
            MemberStatus::Primary { writable: true, epoch: Some(3), wal_lsn: None, sync_standbys: None }
        );
        db.promote(WEST, RunKind::Failover).await.expect("promoting a primary is a no-op");
        db.record_epoch(WEST, 2, &RunId("r-old".into())).await.expect("an older epoch never lowers the tag");
        assert!(matches!(db.member(WEST).await.unwrap(), MemberStatus::Primary { epoch: Some(3), .. }));
    });
}

#[test]
fn fencing_an_instance_on_a_default_parameter_group_is_refused_with_what_to_do() {
    let moto = Moto::start();
    runtime().block_on(async {
        seed(&moto.rds(EAST), &moto.rds(WEST), "default.postgres15").await;
        let e = database(&moto).fence(EAST).await.unwrap_err();
        assert!(!e.retryable());
        assert!(
            e.message.starts_with(
                "us-east-2/shop-db: cannot fence: the instance uses the default DB parameter group 'default."
            ),
            "{}",
            e.message
        );
        assert!(e.message.contains("give it a custom parameter group"), "{}", e.message);
    });
}

#[test]
fn an_unknown_instance_is_reported_with_region_operation_code_and_what_to_check() {
    let moto = Moto::start();
    runtime().block_on(async {
        // A member whose instance is gone counts as unreachable (a failover skips its fence; a
        // misnamed one is refused before any run by the preflight), with the reason in full.
        let member = database(&moto).member(EAST).await.unwrap();
        let MemberStatus::Unreachable { reason } = member else { panic!("{member:?}") };
        let e = drover_core::error::ProviderError::permanent(reason);
        assert!(
            e.message.starts_with("us-east-2/shop-db: DescribeDBInstances failed: DBInstanceNotFound"),
            "{}",
            e.message
        );
        // The plan's own fields, for this member's region: no placeholder to fill in by hand.
        assert!(
            e.message.ends_with(
                "— check database.members.us-east-2.instance names a DB instance in us-east-2 (the region's own name; set regions.us-east-2.aws_region if it lives elsewhere)"
            ),
            "{}",
            e.message
        );
    });
}

#[test]
fn an_unreachable_api_makes_the_member_unreachable() {
    // Nothing listens on this port: the region's API is down, as in a regional outage.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let moto = Moto::start();
    let config = moto.sdk_config().into_builder().endpoint_url(format!("http://127.0.0.1:{port}")).build();
    let spec = RdsSpec {
        members: BTreeMap::from([(EAST.into(), RdsMember { instance: "shop-db".into() })]),
        promote_timeout: Duration::from_secs(5),
    };
    let regions = BTreeMap::from([(EAST.into(), EAST.into())]);
    let db = RdsDatabase::new(&spec, &regions, RdsApi::new(AwsConfig::with(config)));
    runtime().block_on(async {
        match db.member(EAST).await.unwrap() {
            MemberStatus::Unreachable { reason } => {
                assert!(reason.starts_with("us-east-2/shop-db: DescribeDBInstances failed: "), "{reason}");
                assert!(reason.contains(&format!("cannot reach http://127.0.0.1:{port}")), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    });
}

/// The primary's `default_transaction_read_only` in its parameter group, as moto holds it.
async fn read_only_in(east: &drover_adapters::aws::rds::sdk::Client) -> Option<String> {
    let params = east.describe_db_parameters().db_parameter_group_name("shop-pg").send().await.unwrap();
    params
        .parameters()
        .iter()
        .find(|p| p.parameter_name() == Some("default_transaction_read_only"))
        .and_then(|p| p.parameter_value())
        .map(str::to_owned)
}

#[test]
fn unfence_lifts_the_fence_and_the_primary_is_writable_again() {
    let moto = Moto::start();
    runtime().block_on(async {
        let (east, west) = (moto.rds(EAST), moto.rds(WEST));
        seed(&east, &west, "shop-pg").await;
        let db = database(&moto);
        db.fence(EAST).await.expect("fence");
        assert_eq!(read_only_in(&east).await.as_deref(), Some("1"));
        assert!(matches!(db.member(EAST).await.unwrap(), MemberStatus::Primary { writable: false, .. }));

        db.unfence(EAST).await.expect("unfence");
        assert_eq!(read_only_in(&east).await.as_deref(), Some("0"), "the parameter is set back in the group");
        assert!(matches!(db.member(EAST).await.unwrap(), MemberStatus::Primary { writable: true, .. }));
        db.unfence(EAST).await.expect("unfencing an unfenced instance is a no-op");
        assert_eq!(read_only_in(&east).await.as_deref(), Some("0"));
        // The replica was never touched: it still replicates from the primary.
        assert!(matches!(db.member(WEST).await.unwrap(), MemberStatus::Standby { .. }));
    });
}

#[test]
fn preflight_names_a_missing_instance_and_an_unfenceable_primary_with_the_plan_field() {
    let moto = Moto::start();
    runtime().block_on(async {
        let db = database(&moto);
        // Nothing seeded yet: both instances are missing, each named with its field and AWS region.
        assert_eq!(
            db.preflight(EAST, true).await,
            ["us-east-2/shop-db: no DB instance 'shop-db' in AWS region us-east-2 (DescribeDBInstances: DBInstanceNotFound) — check database.members.us-east-2.instance names a DB instance there, and regions.us-east-2.aws_region"]
        );
        assert!(db.preflight(WEST, true).await[0].contains("database.members.us-west-1.instance"));

        seed(&moto.rds(EAST), &moto.rds(WEST), "default.postgres15").await;
        let problems = db.preflight(EAST, true).await;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "us-east-2/shop-db (database.members.us-east-2.instance): cannot be fenced: it uses the default DB parameter group 'default."
            ),
            "{problems:?}"
        );
        // A run that does not fence it (it is the target) does not need its group changeable.
        assert_eq!(db.preflight(EAST, false).await, Vec::<String>::new());
        // The replica is not fenced by a run: its group does not matter here.
        assert_eq!(db.preflight(WEST, true).await, Vec::<String>::new());
    });
}

#[test]
fn preflight_finds_nothing_wrong_with_a_fenceable_pair_or_an_unreachable_region() {
    let moto = Moto::start();
    runtime().block_on(async {
        seed(&moto.rds(EAST), &moto.rds(WEST), "shop-pg").await;
        let db = database(&moto);
        assert_eq!(db.preflight(EAST, true).await, Vec::<String>::new());
        assert_eq!(db.preflight(WEST, true).await, Vec::<String>::new());
    });
    // A region whose API cannot be reached is what failovers are for: no problem.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = moto.sdk_config().into_builder().endpoint_url(format!("http://127.0.0.1:{port}")).build();
    let spec = RdsSpec {
        members: BTreeMap::from([(EAST.into(), RdsMember { instance: "shop-db".into() })]),
        promote_timeout: Duration::from_secs(5),
    };
    let regions = BTreeMap::from([(EAST.into(), EAST.into())]);
    let db = RdsDatabase::new(&spec, &regions, RdsApi::new(AwsConfig::with(config)));
    assert_eq!(runtime().block_on(db.preflight(EAST, true)), Vec::<String>::new());
}
