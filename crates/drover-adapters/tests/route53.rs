//! Route 53 traffic and health checks against a real moto server: record sets
//! are created in moto, switched by the adapter, and read back with the SDK.

#![cfg(feature = "aws")]

#[path = "support/moto.rs"]
mod moto;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use drover_adapters::aws::route53::sdk::Client;
use drover_adapters::aws::route53::sdk::types::ResourceRecordSetFailover;
use drover_adapters::aws::route53::{Route53Api, Route53Traffic};
use drover_adapters::aws::stages::{ChecksGate, StageGate};
use drover_core::plan::{Check, Probe, Route53RecordType, Route53Routing, Route53Spec, Route53Target};
use drover_core::world::{ProbeResult, Prober, Traffic};
use moto::{Moto, REGION, a_set, create_sets, health_check, hosted_zone, read_back, roles, weights};

const RECORD: &str = "api.example.test.";
const EAST: &str = "192.0.2.10";
const WEST: &str = "192.0.2.20";

fn spec(zone: &str, routing: Route53Routing, health: [Option<String>; 2]) -> Route53Spec {
    let [east_hc, west_hc] = health;
    let target = |value: &str, id: &str, hc| Route53Target {
        value: value.into(),
        set_identifier: id.into(),
        health_check_id: hc,
    };
    Route53Spec {
        hosted_zone_id: zone.into(),
        record: RECORD.into(),
        record_type: Route53RecordType::A,
        ttl: Duration::from_secs(60),
        routing,
        targets: BTreeMap::from([
            ("east".into(), target(EAST, "east-set", east_hc)),
            ("west".into(), target(WEST, "west-set", west_hc)),
        ]),
        change_timeout: Duration::from_secs(10),
    }
}

fn traffic(moto: &Moto, spec: &Route53Spec, gate: Option<Arc<dyn StageGate>>) -> Route53Traffic {
    Route53Traffic::new(spec, Route53Api::with_client(moto.route53(), REGION), gate)
        .poll_every(Duration::from_millis(50))
}

async fn failover_zone(moto: &Moto) -> (Client, String, String, String) {
    let client = moto.route53();
    let zone = hosted_zone(&client, "example.test.").await;
    let (east_hc, west_hc) = (health_check(&client, EAST).await, health_check(&client, WEST).await);
    let primary = ResourceRecordSetFailover::Primary;
    let secondary = ResourceRecordSetFailover::Secondary;
    create_sets(
        &client,
        &zone,
        vec![
            a_set(RECORD, EAST, "east-set").failover(primary).health_check_id(&east_hc).build().unwrap(),
            a_set(RECORD, WEST, "west-set").failover(secondary).health_check_id(&west_hc).build().unwrap(),
        ],
    )
    .await;
    (client, zone, east_hc, west_hc)
}

#[tokio::test]
async fn failover_switch_makes_the_target_primary_in_one_fenced_batch() {
    let moto = Moto::start();
    let (client, zone, east_hc, west_hc) = failover_zone(&moto).await;
    let spec = spec(&zone, Route53Routing::Failover, [Some(east_hc.clone()), Some(west_hc.clone())]);
    let t = traffic(&moto, &spec, None);

    let before = t.current().await.unwrap();
    assert_eq!((before.region.as_deref(), before.epoch), (Some("east"), 0));
    assert_eq!(before.addresses, vec![EAST.to_string()]);

    t.switch("west", 0, 1).await.unwrap();
    let (sets, txt) = read_back(&client, &zone, RECORD).await;
    assert_eq!(roles(&sets), [("east-set", EAST, Some("SECONDARY")), ("west-set", WEST, Some("PRIMARY"))]);
    let kept: Vec<_> = sets.iter().map(|s| s.health_check_id.clone()).collect();
    assert_eq!(kept, [Some(east_hc), Some(west_hc)], "health check ids stay on the sets");
    assert_eq!(weights(&sets), [None, None]);
    assert_eq!(txt, vec!["\"1\"".to_string()]);
    let after = t.current().await.unwrap();
    assert_eq!((after.region.as_deref(), after.epoch), (Some("west"), 1));

    // And back, fenced on epoch 1.
    t.switch("east", 1, 2).await.unwrap();
    let (sets, txt) = read_back(&client, &zone, RECORD).await;
    assert_eq!(roles(&sets), [("east-set", EAST, Some("PRIMARY")), ("west-set", WEST, Some("SECONDARY"))]);
    assert_eq!(txt, vec!["\"2\"".to_string()]);
}

#[tokio::test]
async fn a_stale_epoch_is_refused_and_nothing_changes() {
    let moto = Moto::start();
    let (client, zone, east_hc, west_hc) = failover_zone(&moto).await;
    let spec = spec(&zone, Route53Routing::Failover, [Some(east_hc), Some(west_hc)]);
    let t = traffic(&moto, &spec, None);
    t.switch("west", 0, 4).await.unwrap();
    let before = read_back(&client, &zone, RECORD).await;

    // A run that observed epoch 2 (the world has moved on to 4) must not switch back.
    let err = t.switch("east", 2, 3).await.unwrap_err();
    assert!(!err.retryable());
    assert_eq!(err.kind(), drover_core::error::ProviderErrorKind::Stale);
    assert_eq!(
        err.message,
        "route53 api.example.test.: switch refused: the epoch record holds 4, not 2 (a newer run has switched traffic); abort this run"
    );
    assert_eq!(read_back(&client, &zone, RECORD).await, before, "nothing changed");
}

/// (east, west) weights and the epoch TXT values moto holds at one pause.
type Pause = (Vec<Option<i64>>, Vec<String>);

/// Records what moto holds at each pause, then lets the shift go on (or stops it).
struct Recorder {
    client: Client,
    zone: String,
    seen: Mutex<Vec<Pause>>,
    stop_at_pause: Option<usize>,
}

#[async_trait]
impl StageGate for Recorder {
    async fn hold(&self, region: &str, pause: Duration) -> Result<(), String> {
        assert_eq!((region, pause), ("west", Duration::from_millis(20)));
        let (sets, txt) = read_back(&self.client, &self.zone, RECORD).await;
        let mut seen = self.seen.lock().unwrap();
        seen.push((weights(&sets), txt));
        if Some(seen.len()) == self.stop_at_pause { Err("check api failed".into()) } else { Ok(()) }
    }
}

async fn weighted_zone(moto: &Moto) -> (Client, String) {
    let client = moto.route53();
    let zone = hosted_zone(&client, "example.test.").await;
    create_sets(
        &client,
        &zone,
        vec![
            a_set(RECORD, EAST, "east-set").weight(100).build().unwrap(),
            a_set(RECORD, WEST, "west-set").weight(0).build().unwrap(),
        ],
    )
    .await;
    (client, zone)
}

fn staged() -> Route53Routing {
    Route53Routing::Weighted { stages: vec![10, 25, 50, 100], stage_pause: Duration::from_millis(20) }
}

#[tokio::test]
async fn a_weighted_shift_applies_each_stage_in_order_then_all_the_weight() {
    let moto = Moto::start();
    let (client, zone) = weighted_zone(&moto).await;
    let recorder =
        Arc::new(Recorder { client: client.clone(), zone: zone.clone(), seen: Mutex::default(), stop_at_pause: None });
    let t = traffic(&moto, &spec(&zone, staged(), [None, None]), Some(recorder.clone()));
    assert_eq!(t.current().await.unwrap().region.as_deref(), Some("east"));

    t.switch("west", 0, 1).await.unwrap();
    let seen = recorder.seen.lock().unwrap().clone();
    let q = |s: &str| format!("\"{s}\"");
    assert_eq!(
        seen,
        vec![
            (vec![Some(90), Some(10)], vec![q("1;10")]),
            (vec![Some(75), Some(25)], vec![q("1;25")]),
            (vec![Some(50), Some(50)], vec![q("1;50")]),
        ],
        "(east, west) weights and the epoch record at each pause"
    );
    let (sets, txt) = read_back(&client, &zone, RECORD).await;
    assert_eq!(weights(&sets), [Some(0), Some(100)]);
    assert_eq!(txt, vec![q("1")]);
    let now = t.current().await.unwrap();
    assert_eq!((now.region.as_deref(), now.epoch), (Some("west"), 1));
    assert_eq!(now.addresses, vec![format!("{WEST} (weight 100)")]);
}

#[tokio::test]
async fn a_failing_check_stops_the_shift_where_it_is_and_a_resume_continues_it() {
    let moto = Moto::start();
    let (client, zone) = weighted_zone(&moto).await;
    let stopper = Arc::new(Recorder {
        client: client.clone(),
        zone: zone.clone(),
        seen: Mutex::default(),
        stop_at_pause: Some(2),
    });
    let spec = spec(&zone, staged(), [None, None]);
    let err = traffic(&moto, &spec, Some(stopper)).switch("west", 0, 1).await.unwrap_err();
    assert!(!err.retryable());
    assert!(
        err.message
            .starts_with("route53 api.example.test.: shift to west stopped at 25% (stage 2 of 4): check api failed"),
        "{}",
        err.message
    );
    let (sets, txt) = read_back(&client, &zone, RECORD).await;
    assert_eq!(weights(&sets), [Some(75), Some(25)], "weights stay");
    assert_eq!(txt, vec!["\"1;25\"".to_string()]);

    // The engine's resume observes epoch 1 (this run's) and calls again: the shift goes on from 25%.
    let recorder =
        Arc::new(Recorder { client: client.clone(), zone: zone.clone(), seen: Mutex::default(), stop_at_pause: None });
    let t = traffic(&moto, &spec, Some(recorder.clone()));
    let now = t.current().await.unwrap();
    assert_eq!((now.region, now.epoch), (None, 1), "half-moved: no region");
    t.switch("west", 1, 1).await.unwrap();
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen, vec![(vec![Some(50), Some(50)], vec!["\"1;50\"".to_string()])]);
    assert_eq!(weights(&read_back(&client, &zone, RECORD).await.0), [Some(0), Some(100)]);
}

/// Fails every probe of every check.
struct Down;

#[async_trait]
impl Prober for Down {
    async fn probe(&self, _check: &Check, region: &str) -> ProbeResult {
        ProbeResult { ok: false, latency: Duration::ZERO, detail: format!("connection refused on {region}") }
    }
}

#[tokio::test]
async fn the_checks_gate_stops_a_shift_when_a_critical_check_reaches_its_threshold() {
    let check = Check {
        name: "api".into(),
        probe: Probe::Tcp { address: "{target}:9".into() },
        interval: Duration::from_millis(10),
        timeout: Duration::from_millis(5),
        failure_threshold: 2,
        success_threshold: 1,
        per_region: true,
        critical: true,
    };
    let gate = ChecksGate { prober: Arc::new(Down), checks: vec![check] };
    let started = std::time::Instant::now();
    let err = gate.hold("west", Duration::from_secs(30)).await.unwrap_err();
    assert_eq!(err, "check api failed 2 times on west: connection refused on west");
    assert!(started.elapsed() < Duration::from_secs(5), "stops at the threshold, not at the end of the pause");
}

#[tokio::test]
async fn health_check_status_is_read_and_errors_name_region_resource_and_aws_code() {
    let moto = Moto::start();
    let client = moto.route53();
    let id = health_check(&client, EAST).await;
    let api = Route53Api::with_client(client, REGION);
    // moto reports one checker, always healthy.
    assert_eq!(api.health_check_status(&id).await.unwrap(), "1 of 1 checkers report success");

    let err = api.health_check_status("00000000-0000-0000-0000-000000000000").await.unwrap_err();
    assert!(
        err.starts_with("us-east-1/healthcheck/00000000-0000-0000-0000-000000000000: GetHealthCheckStatus failed: NoSuchHealthCheck: "),
        "{err}"
    );
    assert!(err.ends_with(" — check the health check id in the plan exists in this account"), "{err}");
}

#[tokio::test]
async fn an_unknown_hosted_zone_is_reported_with_region_resource_operation_and_hint() {
    let moto = Moto::start();
    let spec = spec("ZNOSUCHZONE0000", Route53Routing::Failover, [None, None]);
    let err = traffic(&moto, &spec, None).current().await.unwrap_err();
    assert!(!err.retryable());
    assert!(
        err.message
            .starts_with("us-east-1/hostedzone/ZNOSUCHZONE0000: ListResourceRecordSets failed: NoSuchHostedZone: "),
        "{}",
        err.message
    );
    assert!(
        err.message.ends_with(" — check traffic.hosted_zone_id names a hosted zone of this account"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_switch_to_a_set_identifier_the_zone_lacks_fails_and_creates_no_set() {
    let moto = Moto::start();
    let (client, zone, east_hc, west_hc) = failover_zone(&moto).await;
    let mut wrong = spec(&zone, Route53Routing::Failover, [Some(east_hc), Some(west_hc)]);
    wrong.targets.get_mut("west").unwrap().set_identifier = "ncal".into();
    let t = traffic(&moto, &wrong, None);
    let before = read_back(&client, &zone, RECORD).await;

    let problems = t.preflight().await;
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("holds no record set with set identifier 'ncal'"), "{problems:?}");
    assert!(problems[0].contains("traffic.targets.west.set_identifier"), "{problems:?}");
    assert!(problems[1].contains("also holds record set 'west-set' (A, SECONDARY)"), "{problems:?}");

    // Should a run get past the preflight (the set deleted since), the switch still creates nothing.
    let err = t.switch("west", 0, 1).await.unwrap_err();
    assert!(!err.retryable());
    assert_eq!(
        err.message,
        format!(
            "route53 {RECORD}: switch refused: hosted zone {zone} holds no A record set with set identifier 'ncal' (traffic.targets.west.set_identifier); drover switches only record sets that exist and never creates one — correct the plan or create the set, then resume"
        )
    );
    assert_eq!(read_back(&client, &zone, RECORD).await, before, "no set created, none changed, no epoch written");
}

#[tokio::test]
async fn preflight_finds_a_second_primary_and_a_missing_health_check() {
    let moto = Moto::start();
    let (client, zone, east_hc, west_hc) = failover_zone(&moto).await;
    let good = spec(&zone, Route53Routing::Failover, [Some(east_hc.clone()), Some(west_hc)]);
    assert_eq!(traffic(&moto, &good, None).preflight().await, Vec::<String>::new(), "the zone fits the plan");

    // What an earlier UPSERT with a wrong identifier left: a second PRIMARY for the name.
    let primary = ResourceRecordSetFailover::Primary;
    create_sets(&client, &zone, vec![a_set(RECORD, WEST, "ncal").failover(primary).build().unwrap()]).await;
    let mut missing_hc = good.clone();
    missing_hc.targets.get_mut("west").unwrap().health_check_id = Some("00000000-0000-0000-0000-000000000000".into());
    let problems = traffic(&moto, &missing_hc, None).preflight().await;
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains(
            "also holds record set 'ncal' (A, PRIMARY) that no traffic.targets entry names (a second failover set"
        ),
        "{problems:?}"
    );
    assert_eq!(
        problems[1],
        "us-east-1/healthcheck/00000000-0000-0000-0000-000000000000: no such health check (GetHealthCheckStatus: NoSuchHealthCheck) — check traffic.targets.west.health_check_id"
    );

    let mut no_zone = good;
    no_zone.hosted_zone_id = "ZNOSUCHZONE0000".into();
    let problems = traffic(&moto, &no_zone, None).preflight().await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("no hosted zone 'ZNOSUCHZONE0000'") && problems[0].contains("traffic.hosted_zone_id"),
        "{problems:?}"
    );
}
