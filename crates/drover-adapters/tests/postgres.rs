//! The PostgreSQL provider against real PostgreSQL 15 servers, observed the way
//! a user would notice: through `member()`, and through plain client sessions.

#[path = "support/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use drover_adapters::pg_connect::PgConnector;
use drover_adapters::postgres::{PostgresConfig, PostgresDatabase, PostgresMemberConfig};
use drover_core::run::{RunId, RunKind};
use drover_core::secret::Secret;
use drover_core::world::{Database, HostAccess, MemberStatus, RejoinMethod};
use pg::{Cluster, PASSWORD, Replication};

/// Hang guard only: every step here takes well under a few seconds.
async fn guard<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(90), f).await.expect("hung for 90s")
}

/// Polls `member(region)` until `done` holds; the guard bounds it.
async fn member_until(db: &PostgresDatabase, region: &str, done: impl Fn(&MemberStatus) -> bool) -> MemberStatus {
    loop {
        let status = db.member(region).await.expect("member()");
        if done(&status) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn timeline(c: &tokio_postgres::Client) -> i32 {
    c.query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[]).await.unwrap().get(0)
}

fn lag_of(status: &MemberStatus) -> u64 {
    match status {
        MemberStatus::Standby { lag_bytes, .. } => lag_bytes.expect("postgres knows its lag in bytes"),
        other => panic!("expected a standby, got {other:?}"),
    }
}

#[tokio::test]
async fn member_reports_primary_and_standby_with_lag() {
    let cluster = Cluster::pair(Replication::Asynchronous);
    guard(async {
        let db = cluster.database();
        match db.member("east").await.unwrap() {
            MemberStatus::Primary { writable, epoch, wal_lsn, sync_standbys } => {
                assert!(writable, "a fresh primary accepts writes");
                assert_eq!(sync_standbys, None, "asynchronous: commits wait for no standby");
                assert_eq!(epoch, None, "no drover.epoch table yet");
                assert!(wal_lsn.is_some_and(|l| l > 0));
            }
            other => panic!("east should be primary, got {other:?}"),
        }
        match db.member("west").await.unwrap() {
            MemberStatus::Standby { upstream, .. } => assert_eq!(upstream.as_deref(), Some("127.0.0.1")),
            other => panic!("west should be a standby, got {other:?}"),
        }

        let standby = cluster.client("west").await;
        standby.batch_execute("SELECT pg_wal_replay_pause()").await.unwrap();
        loop {
            let state: String = standby.query_one("SELECT pg_get_wal_replay_pause_state()", &[]).await.unwrap().get(0);
            if state == "paused" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let primary = cluster.client("east").await;
        primary
            .batch_execute(
                "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 1000)",
            )
            .await
            .unwrap();
        let behind = member_until(&db, "west", |s| lag_of(s) > 0).await;
        assert!(lag_of(&behind) > 0);

        standby.batch_execute("SELECT pg_wal_replay_resume()").await.unwrap();
        let caught_up = member_until(&db, "west", |s| lag_of(s) == 0).await;
        match caught_up {
            MemberStatus::Standby { lag_seconds, replay_lsn, .. } => {
                assert_eq!(lag_seconds, Some(0.0));
                assert!(replay_lsn.is_some_and(|l| l > 0));
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn stopped_member_is_unreachable_and_the_reason_hides_the_password() {
    let cluster = Cluster::pair(Replication::Asynchronous);
    guard(async {
        let db = cluster.database();
        cluster.stop("west");
        match db.member("west").await.expect("unreachable is a status, not an error") {
            MemberStatus::Unreachable { reason } => {
                assert!(reason.contains("connection refused"), "reason: {reason}");
                assert!(!reason.contains(PASSWORD), "reason leaks the password: {reason}");
            }
            other => panic!("a stopped member should be unreachable, got {other:?}"),
        }
        // The standby's lag falls back to its own receive position while the primary is down.
        cluster.start("west");
        cluster.stop("east");
        let west = member_until(&db, "west", |s| matches!(s, MemberStatus::Standby { .. })).await;
        assert!(matches!(west, MemberStatus::Standby { .. }), "{west:?}");
    })
    .await;
}

#[tokio::test]
async fn wrong_password_is_a_permanent_error_without_the_password() {
    let cluster = Cluster::primary();
    guard(async {
        let east = cluster.node("east");
        let wrong = "not-the-password-42";
        let dsn = format!("host=127.0.0.1 port={} user=drover password={wrong} dbname=postgres", east.port);
        let members =
            BTreeMap::from([("east".to_string(), PostgresMemberConfig { dsn: Secret::new(dsn), host: None })]);
        let db = PostgresDatabase::new(PostgresConfig::new(members)).unwrap();
        let err = db.member("east").await.expect_err("authentication cannot be retried away");
        assert!(!err.retryable(), "{err}");
        assert!(err.message.contains("east database"), "{err}");
        assert!(err.message.contains("28P01"), "names the SQL state: {err}");
        assert!(!err.message.contains(wrong), "leaks the password: {err}");
        // tokio-postgres's error is kept for logs, and it does not echo the password either.
        let source = std::error::Error::source(&err).expect("keeps tokio-postgres's error");
        assert!(!format!("{source} {source:?}").contains(wrong), "the source leaks the password: {source:?}");
    })
    .await;
}

#[tokio::test]
async fn fence_makes_the_primary_refuse_writes_and_ends_open_sessions() {
    let cluster = Cluster::primary();
    guard(async {
        let db = cluster.database();
        let app = cluster.client("east").await;
        app.batch_execute("CREATE TABLE orders (id int PRIMARY KEY)").await.unwrap();
        let before_fence = cluster.client("east").await;
        before_fence.batch_execute("INSERT INTO orders VALUES (1)").await.unwrap();

        db.fence("east").await.expect("fence");
        db.fence("east").await.expect("fencing twice is fine");

        assert!(
            before_fence.batch_execute("INSERT INTO orders VALUES (2)").await.is_err(),
            "a session opened before the fence must not keep writing"
        );
        let after = cluster.client("east").await;
        let err = after.batch_execute("INSERT INTO orders VALUES (3)").await.expect_err("fenced: read-only");
        assert_eq!(err.code().map(|c| c.code()), Some("25006"), "{err:?}");
        let count: i64 = after.query_one("SELECT count(*) FROM orders", &[]).await.unwrap().get(0);
        assert_eq!(count, 1, "reads still work on a fenced primary");
        assert!(matches!(db.member("east").await.unwrap(), MemberStatus::Primary { writable: false, .. }));

        // Promoting a fenced primary lifts the fence (switching back to it).
        db.promote("east", RunKind::Failover).await.expect("promote a fenced primary");
        assert!(matches!(db.member("east").await.unwrap(), MemberStatus::Primary { writable: true, .. }));
        cluster.client("east").await.batch_execute("INSERT INTO orders VALUES (4)").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn fence_without_privileges_is_permanent_and_names_the_sql_state() {
    let cluster = Cluster::primary();
    guard(async {
        let admin = cluster.client("east").await;
        admin.batch_execute("CREATE ROLE app LOGIN PASSWORD 'app-pw-31'").await.unwrap();
        let port = cluster.node("east").port;
        let dsn = format!("host=127.0.0.1 port={port} user=app password=app-pw-31 dbname=postgres");
        let members =
            BTreeMap::from([("east".to_string(), PostgresMemberConfig { dsn: Secret::new(dsn), host: None })]);
        let db = PostgresDatabase::new(PostgresConfig::new(members)).unwrap();
        let err = db.fence("east").await.expect_err("ALTER SYSTEM needs a superuser");
        assert!(!err.retryable(), "{err}");
        assert!(err.message.starts_with("east database: fence failed:"), "{err}");
        assert!(err.message.contains("42501"), "{err}");
        assert!(!err.message.contains("app-pw-31"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn promote_makes_the_standby_a_writable_primary_once() {
    let cluster = Cluster::pair(Replication::Asynchronous);
    guard(async {
        let db = cluster.database();
        db.promote("west", RunKind::Failover).await.expect("promote");
        assert!(matches!(db.member("west").await.unwrap(), MemberStatus::Primary { writable: true, .. }));
        let west = cluster.client("west").await;
        west.batch_execute("CREATE TABLE after_promotion (id int); INSERT INTO after_promotion VALUES (1)")
            .await
            .expect("the promoted member accepts writes");
        west.batch_execute("CHECKPOINT").await.unwrap();
        let first = timeline(&west).await;
        db.promote("west", RunKind::Failover).await.expect("promoting a primary is a no-op");
        west.batch_execute("CHECKPOINT").await.unwrap();
        assert_eq!(timeline(&west).await, first, "a second promote must not start a new timeline");
    })
    .await;
}

#[tokio::test]
async fn promote_with_synchronous_replication_does_not_wait_for_the_lost_standby() {
    let cluster = Cluster::pair(Replication::Synchronous);
    guard(async {
        let db = cluster.database();
        let east = cluster.client("east").await;
        east.batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)").await.unwrap();
        let sync =
            member_until(&db, "east", |s| matches!(s, MemberStatus::Primary { sync_standbys: Some(1), .. })).await;
        assert!(matches!(sync, MemberStatus::Primary { sync_standbys: Some(1), .. }), "{sync:?}");
        cluster.stop("east");
        db.promote("west", RunKind::Failover).await.expect("promote");
        db.record_epoch("west", 2, &RunId("r1-sync".into())).await.expect("record epoch");
        assert!(
            matches!(
                db.member("west").await.unwrap(),
                MemberStatus::Primary { writable: true, epoch: Some(2), sync_standbys: None, .. }
            ),
            "the promoted member no longer waits for the standby that is gone"
        );
        // An application's ordinary commit must not wait for the standby that is gone.
        let west = cluster.client("west").await;
        let write = west.batch_execute("INSERT INTO t VALUES (2)");
        tokio::time::timeout(Duration::from_secs(20), write)
            .await
            .expect("an application write on the promoted member hung waiting for a synchronous standby")
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn record_epoch_is_visible_in_member_and_idempotent() {
    let cluster = Cluster::primary();
    guard(async {
        let db = cluster.database();
        let run = RunId("r1700000000000-beef".into());
        db.record_epoch("east", 3, &run).await.expect("record");
        db.record_epoch("east", 3, &run).await.expect("recording twice is fine");
        assert!(matches!(db.member("east").await.unwrap(), MemberStatus::Primary { epoch: Some(3), .. }));
        db.record_epoch("east", 4, &RunId("r2".into())).await.unwrap();
        assert!(matches!(db.member("east").await.unwrap(), MemberStatus::Primary { epoch: Some(4), .. }));
        let rows: i64 =
            cluster.client("east").await.query_one("SELECT count(*) FROM drover.epoch", &[]).await.unwrap().get(0);
        assert_eq!(rows, 2);
    })
    .await;
}

#[tokio::test]
async fn rejoin_makes_the_old_primary_follow_the_new_one() {
    let cluster = Cluster::pair(Replication::Asynchronous);
    guard(async {
        let db = cluster.database();
        // A switchover: fence, catch up, promote, rejoin.
        orders_then_switch_to_west(&cluster, &db).await;
        let method = rejoin_east(&cluster, &db).await;
        assert_eq!(method, RejoinMethod::Rewind, "a cleanly fenced old primary is rewound, not copied");
        match db.member("east").await.unwrap() {
            MemberStatus::Standby { upstream, .. } => assert_eq!(upstream.as_deref(), Some("127.0.0.1")),
            other => panic!("east should now be a standby, got {other:?}"),
        }
        let again = db.rejoin("east", "west").await.expect("rejoining twice is fine");
        assert_eq!(again, RejoinMethod::AlreadyFollowing);

        east_receives(&cluster, 2).await;
        let east = cluster.client("east").await;
        let epoch: i64 = east.query_one("SELECT max(epoch) FROM drover.epoch", &[]).await.unwrap().get(0);
        assert_eq!(epoch, 2, "the rejoined member carries the new primary's epoch");
    })
    .await;
}

/// Both refusals come before any connection, so no server is needed: the DSNs point nowhere.
#[tokio::test]
async fn rejoin_without_a_host_or_onto_itself_is_refused_with_a_reason() {
    guard(async {
        let nowhere = |region: &str| PostgresMemberConfig {
            dsn: Secret::new(format!("host=127.0.0.1 port=9 user=drover dbname={region}")),
            host: None,
        };
        let members = BTreeMap::from([("east".to_string(), nowhere("east")), ("west".to_string(), nowhere("west"))]);
        let db = PostgresDatabase::new(PostgresConfig::new(members)).expect("valid DSNs");
        let err = db.rejoin("east", "west").await.expect_err("no host, no rejoin");
        assert!(!err.retryable());
        assert!(err.message.starts_with("east database: rejoin refused: no host"), "{err}");
        let err = db.rejoin("east", "east").await.expect_err("a member cannot follow itself");
        assert!(!err.retryable());
        assert!(err.message.contains("rejoin refused: a member cannot follow itself"), "{err}");
    })
    .await;
}

/// An `orders` table with one row on east, then a switchover up to the promotion: east
/// fenced, west caught up and promoted at epoch 2.
async fn orders_then_switch_to_west(cluster: &Cluster, db: &PostgresDatabase) {
    let east = cluster.client("east").await;
    east.batch_execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)").await.unwrap();
    db.fence("east").await.unwrap();
    let MemberStatus::Primary { wal_lsn: Some(wal_lsn), .. } = db.member("east").await.unwrap() else {
        panic!("east is primary")
    };
    member_until(db, "west", |s| matches!(s, MemberStatus::Standby { replay_lsn: Some(r), .. } if *r >= wal_lsn)).await;
    db.promote("west", RunKind::Failover).await.unwrap();
    db.record_epoch("west", 2, &RunId("r1-switch".into())).await.unwrap();
}

/// Rejoins east to west; a failure shows east's server log.
async fn rejoin_east(cluster: &Cluster, db: &PostgresDatabase) -> RejoinMethod {
    db.rejoin("east", "west").await.unwrap_or_else(|e| panic!("rejoin: {e}\n{}", cluster.server_log("east")))
}

/// Waits until `east` has the row `id` written on west after the rejoin: it streams.
async fn east_receives(cluster: &Cluster, id: i32) {
    cluster.client("west").await.execute("INSERT INTO orders VALUES ($1)", &[&id]).await.unwrap();
    let east = cluster.client("east").await;
    loop {
        let n: i64 = east.query_one("SELECT count(*) FROM orders WHERE id = $1", &[&id]).await.unwrap().get(0);
        if n == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn rejoin_takes_a_base_backup_when_pg_rewind_cannot_and_keeps_the_old_data() {
    let cluster = Cluster::pair(Replication::Asynchronous);
    guard(async {
        let db = cluster.database();
        orders_then_switch_to_west(&cluster, &db).await;
        // The old primary ran without checksums or wal_log_hints, so pg_rewind refuses it.
        let east_dir = cluster.node("east").data_dir.clone();
        cluster.stop("east");
        cluster.on_host("east", &[&pg::bin("pg_checksums"), "--disable", "-D", east_dir.to_str().unwrap()]);
        let auto_conf = east_dir.join("postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto_conf).unwrap();
        conf.push_str("wal_log_hints = off\n");
        std::fs::write(&auto_conf, conf).unwrap();
        cluster.start("east");
        assert!(matches!(db.member("east").await.unwrap(), MemberStatus::Primary { .. }));

        let method = rejoin_east(&cluster, &db).await;
        let RejoinMethod::BaseBackup { why, old_data: Some(old_data) } = &method else {
            panic!("expected a base backup that kept the old data, got {method:?}")
        };
        assert!(why.contains("wal_log_hints"), "the reason is pg_rewind's: {why}");
        assert!(
            old_data.starts_with(&format!("{}.drover-", east_dir.display())),
            "moved aside beside the data directory: {old_data}"
        );
        let old = std::path::Path::new(old_data);
        assert!(old.join("PG_VERSION").exists(), "the old data directory is kept whole: {old_data}");
        assert!(
            std::fs::read_to_string(old.join("postgresql.auto.conf")).unwrap().contains("wal_log_hints = off"),
            "{old_data} is the old primary's own directory, untouched"
        );
        assert!(method.describe().contains(&format!("the old data directory was moved to {old_data}")));
        match db.member("east").await.unwrap() {
            MemberStatus::Standby { upstream, .. } => assert_eq!(upstream.as_deref(), Some("127.0.0.1")),
            other => panic!("east should be a standby after the base backup, got {other:?}"),
        }
        east_receives(&cluster, 2).await;
        assert_eq!(db.rejoin("east", "west").await.unwrap(), RejoinMethod::AlreadyFollowing);
    })
    .await;
}

#[tokio::test]
async fn rejoin_rebuilds_a_member_whose_data_directory_is_gone() {
    let cluster = Cluster::pair(Replication::Synchronous);
    guard(async {
        let db = cluster.synchronous_database();
        orders_then_switch_to_west(&cluster, &db).await;
        let east_dir = cluster.node("east").data_dir.clone();
        cluster.stop("east");
        std::fs::remove_dir_all(&east_dir).unwrap();
        assert!(matches!(db.member("east").await.unwrap(), MemberStatus::Unreachable { .. }));
        match db.host_access("east").await {
            HostAccess::Reachable(detail) => assert!(detail.contains("no usable data directory"), "{detail}"),
            other => panic!("the host answers even though the database does not: {other:?}"),
        }
        assert_eq!(cluster.database_with(|_| false).host_access("east").await, HostAccess::NotConfigured);

        let method = rejoin_east(&cluster, &db).await;
        let RejoinMethod::BaseBackup { why, old_data: None } = &method else {
            panic!("expected a base backup with nothing to keep, got {method:?}")
        };
        assert!(why.starts_with(&format!("no usable data directory at {}", east_dir.display())), "{why}");
        // Synchronous plan: the rejoin returns once west counts east as its synchronous standby.
        match db.member("west").await.unwrap() {
            MemberStatus::Primary { sync_standbys, .. } => assert_eq!(sync_standbys, Some(1)),
            other => panic!("west is the primary: {other:?}"),
        }
        east_receives(&cluster, 2).await;
    })
    .await;
}

#[tokio::test]
async fn unfence_makes_a_fenced_primary_writable_again_and_is_idempotent() {
    let cluster = Cluster::primary();
    guard(async {
        let db = cluster.database();
        let app = cluster.client("east").await;
        app.batch_execute("CREATE TABLE orders (id int PRIMARY KEY)").await.unwrap();
        db.fence("east").await.expect("fence");
        let fenced = cluster.client("east").await;
        let err = fenced.batch_execute("INSERT INTO orders VALUES (1)").await.expect_err("fenced: read-only");
        assert_eq!(err.code().map(|c| c.code()), Some("25006"), "{err:?}");

        db.unfence("east").await.expect("unfence");
        db.unfence("east").await.expect("unfencing twice is fine");
        let after = cluster.client("east").await;
        after.batch_execute("INSERT INTO orders VALUES (2)").await.expect("a new session writes again");
        assert!(matches!(db.member("east").await.unwrap(), MemberStatus::Primary { writable: true, .. }));
        // The fence's ALTER SYSTEM setting is gone, not overridden with another.
        let source: String = after
            .query_one("SELECT source FROM pg_settings WHERE name = 'default_transaction_read_only'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(source, "default", "postgresql.auto.conf no longer sets it");
    })
    .await;
}

#[tokio::test]
async fn promoting_a_fenced_primary_whose_synchronous_standby_is_gone_lets_commits_through() {
    let cluster = Cluster::primary();
    guard(async {
        let db = cluster.database();
        let app = cluster.client("east").await;
        app.batch_execute("CREATE TABLE orders (id int PRIMARY KEY)").await.unwrap();
        // It was a synchronous primary; its standby now follows someone else.
        app.batch_execute("ALTER SYSTEM SET synchronous_standby_names = '*'").await.unwrap();
        app.batch_execute("SELECT pg_reload_conf()").await.unwrap();
        // The setting has landed once a commit waits for the standby nobody runs.
        let waiting = cluster.client("east").await;
        let commit = waiting.batch_execute("INSERT INTO orders VALUES (0)");
        let blocked = tokio::time::timeout(std::time::Duration::from_secs(2), commit).await;
        assert!(blocked.is_err(), "commits wait for the synchronous standby: {blocked:?}");
        db.fence("east").await.expect("fence");
        db.promote("east", drover_core::run::RunKind::Failover).await.expect("promote the fenced primary");
        let after = cluster.client("east").await;
        let commit = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            after.batch_execute("INSERT INTO orders VALUES (1)"),
        )
        .await;
        assert!(matches!(commit, Ok(Ok(()))), "a commit waits for a standby that is gone: {commit:?}");
        assert!(matches!(
            db.member("east").await.unwrap(),
            MemberStatus::Primary { writable: true, sync_standbys: None, .. }
        ));
    })
    .await;
}

/// A test CA and a server certificate it signed for 127.0.0.1 and `localhost`, as files
/// in `dir` (the CA) and PEM text (the server's, for the harness to install).
struct TestPki {
    ca_file: std::path::PathBuf,
    server_cert: String,
    server_key: String,
}

fn test_ca(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    let cert = params.self_signed(&key).unwrap();
    let file = dir.join(format!("{name}.pem"));
    std::fs::write(&file, cert.pem()).unwrap();
    (file, rcgen::Issuer::new(params, key))
}

fn test_pki(dir: &std::path::Path) -> TestPki {
    let (ca_file, issuer) = test_ca(dir, "test-ca");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "east");
    params.subject_alt_names = vec![
        rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()),
        rcgen::SanType::DnsName("localhost".try_into().unwrap()),
    ];
    let cert = params.signed_by(&key, &issuer).unwrap();
    TestPki { ca_file, server_cert: cert.pem(), server_key: key.serialize_pem() }
}

/// Connects through drover's connector and says whether the session is encrypted, or why it failed.
async fn tls_session(dsn: &str) -> Result<bool, String> {
    let connector = PgConnector::parse(dsn).map_err(|e| e.to_string())?;
    let client = connector.connect().await.map_err(|e| {
        connector.describe_tls(&e).unwrap_or_else(|| match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        })
    })?;
    let row = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
    Ok(row.get(0))
}

#[tokio::test]
async fn verify_full_connects_over_tls_and_a_plain_connection_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki(dir.path());
    let cluster = Cluster::tls_primary(&pki.server_cert, &pki.server_key);
    let port = cluster.node("east").port;
    let ca = pki.ca_file.display();
    guard(async {
        let base = format!("host=127.0.0.1 port={port} user=drover password={PASSWORD} dbname=postgres");
        // The host is an IP address: verify-full checks it against the certificate's addresses.
        assert_eq!(tls_session(&format!("{base} sslmode=verify-full sslrootcert={ca}")).await, Ok(true));
        let url = format!(
            "postgresql://drover:{PASSWORD}@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={}",
            pki.ca_file.display().to_string().replace('/', "%2F")
        );
        assert_eq!(tls_session(&url).await, Ok(true), "a URL DSN, the host by name");
        // require without a CA encrypts without identifying the server, as libpq does; so
        // does the default (prefer) against a server that offers TLS.
        assert_eq!(tls_session(&format!("{base} sslmode=require")).await, Ok(true));
        assert_eq!(tls_session(&base).await, Ok(true));
        // allow starts plain, is refused by pg_hba.conf, and tries TLS.
        assert_eq!(tls_session(&format!("{base} sslmode=allow")).await, Ok(true));

        let plain = tls_session(&format!("{base} sslmode=disable")).await.unwrap_err();
        assert!(plain.contains("no encryption"), "the server refuses a plain connection: {plain}");

        // The provider connects the same way.
        let members = BTreeMap::from([(
            "east".to_string(),
            PostgresMemberConfig {
                dsn: Secret::new(format!("{base} sslmode=verify-full sslrootcert={ca}")),
                host: None,
            },
        )]);
        let db = PostgresDatabase::new(PostgresConfig::new(members)).unwrap();
        assert!(matches!(db.member("east").await.unwrap(), MemberStatus::Primary { .. }));
    })
    .await;
}

#[tokio::test]
async fn a_server_the_ca_did_not_sign_or_a_host_the_certificate_does_not_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki(dir.path());
    let (other_ca, _) = test_ca(dir.path(), "other-ca");
    let cluster = Cluster::tls_primary(&pki.server_cert, &pki.server_key);
    let port = cluster.node("east").port;
    guard(async {
        let base = format!("host=127.0.0.1 port={port} user=drover password={PASSWORD} dbname=postgres");
        let dsn = format!("{base} sslmode=verify-full sslrootcert={}", other_ca.display());
        let members =
            BTreeMap::from([("east".to_string(), PostgresMemberConfig { dsn: Secret::new(dsn), host: None })]);
        let db = PostgresDatabase::new(PostgresConfig::new(members)).unwrap();
        let err = db.member("east").await.expect_err("another CA's server is not this database");
        assert!(!err.retryable(), "trying again cannot fix a certificate: {err}");
        assert!(
            err.message
                .contains(&format!("the server's certificate is not signed by the CA in {}", other_ca.display())),
            "{err}"
        );
        assert!(!err.message.contains(PASSWORD), "{err}");
        // require with a CA file checks the chain, as libpq does.
        let require = tls_session(&format!("{base} sslmode=require sslrootcert={}", other_ca.display())).await;
        assert!(require.unwrap_err().contains("not signed by the CA"));

        // Reached by a name the certificate does not hold: verify-full refuses, verify-ca
        // (the chain only) connects.
        let elsewhere = format!(
            "host=db.elsewhere.test hostaddr=127.0.0.1 port={port} user=drover password={PASSWORD} dbname=postgres \
             sslrootcert={}",
            pki.ca_file.display()
        );
        let full = tls_session(&format!("{elsewhere} sslmode=verify-full")).await.unwrap_err();
        assert!(full.contains("not valid for db.elsewhere.test (it is for 127.0.0.1, localhost"), "{full}");
        assert!(full.contains("verify-ca"), "says what else would do: {full}");
        assert_eq!(tls_session(&format!("{elsewhere} sslmode=verify-ca")).await, Ok(true));
    })
    .await;
}

#[tokio::test]
async fn require_against_a_server_without_tls_says_so() {
    let cluster = Cluster::primary();
    let port = cluster.node("east").port;
    guard(async {
        let base = format!("host=127.0.0.1 port={port} user=drover password={PASSWORD} dbname=postgres");
        let err = tls_session(&format!("{base} sslmode=require")).await.unwrap_err();
        assert!(err.contains("does not accept TLS"), "{err}");
        // prefer (the default) falls back to a plain session, as before.
        assert_eq!(tls_session(&base).await, Ok(false));
    })
    .await;
}
