//! The RFC 2136 traffic adapter against a real Knot DNS server, checked the way a user
//! would: through the adapter, and through `kdig`, an independent client.

#[path = "support/knot.rs"]
mod knot;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use drover_adapters::dns::resolve;
use drover_adapters::rfc2136::Rfc2136Traffic;
use drover_core::plan::{Rfc2136Spec, Tsig, TsigAlgorithm};
use drover_core::secret::{Secret, SecretRef};
use drover_core::world::Traffic;
use knot::{EAST, Knot, RECORD, WEST, ZONE};

/// Hang guard only; every exchange here takes milliseconds.
async fn guard<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("hung for 60s")
}

fn spec(knot: &Knot, key_name: &str) -> Rfc2136Spec {
    Rfc2136Spec {
        server: knot.addr,
        zone: ZONE.into(),
        record: RECORD.into(),
        ttl: Duration::from_secs(5),
        tsig: Tsig {
            name: key_name.into(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: SecretRef::Env("UNUSED_IN_TESTS".into()),
        },
        targets: BTreeMap::from([("east".into(), EAST.parse().unwrap()), ("west".into(), WEST.parse().unwrap())]),
    }
}

fn traffic(knot: &Knot) -> Rfc2136Traffic {
    Rfc2136Traffic::new(&spec(knot, "drover"), Secret::new(knot.secret.clone()))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// What an independent client sees: (ttl, address) of the A records, and the epoch TXT values.
fn seen_by_kdig(knot: &Knot) -> (Vec<(u32, String)>, Vec<String>) {
    let a = knot.kdig_records(RECORD, "A");
    let txt = knot.kdig_records(&format!("_drover-epoch.{RECORD}"), "TXT").into_iter().map(|(_, v)| v).collect();
    (a, txt)
}

#[tokio::test]
async fn a_fresh_zone_points_at_east_at_epoch_0() {
    let knot = Knot::start();
    let now = guard(traffic(&knot).current()).await.unwrap();
    assert_eq!(now.region.as_deref(), Some("east"));
    assert_eq!(now.addresses, vec![EAST.to_string()]);
    assert_eq!(now.epoch, 0);
}

#[tokio::test]
async fn switch_to_west_moves_the_record_with_the_plans_ttl_and_records_the_epoch() {
    let knot = Knot::start();
    let t = traffic(&knot);
    guard(t.switch("west", 0, 1)).await.unwrap();

    let now = guard(t.current()).await.unwrap();
    assert_eq!(now.region.as_deref(), Some("west"));
    assert_eq!(now.addresses, vec![WEST.to_string()]);
    assert_eq!(now.epoch, 1);

    let (a, txt) = seen_by_kdig(&knot);
    assert_eq!(a, vec![(5, WEST.to_string())], "kdig sees the record on west with ttl 5");
    assert_eq!(txt, vec!["\"1\"".to_string()], "kdig sees the epoch");
}

#[tokio::test]
async fn a_stale_run_cannot_overwrite_a_newer_switch() {
    let knot = Knot::start();
    let t = traffic(&knot);
    guard(t.switch("west", 0, 1)).await.unwrap();

    // A run that observed epoch 0 before the switch above tries to move traffic back.
    let err = guard(t.switch("east", 0, 2)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "dns api.app.test.: switch refused: the epoch record no longer holds 0 (a newer run has switched traffic); abort this run"
    );
    assert!(!err.retryable(), "a refused precondition is permanent");
    assert_eq!(err.kind(), drover_core::error::ProviderErrorKind::Stale);

    // Same with a stale non-zero epoch.
    guard(t.switch("east", 1, 2)).await.unwrap();
    let err = guard(t.switch("west", 1, 3)).await.unwrap_err();
    assert!(err.to_string().contains("no longer holds 1"), "{err}");

    let now = guard(t.current()).await.unwrap();
    assert_eq!((now.region.as_deref(), now.epoch), (Some("east"), 2), "the newer switch stands");
    let (a, txt) = seen_by_kdig(&knot);
    assert_eq!(a, vec![(5, EAST.to_string())]);
    assert_eq!(txt, vec!["\"2\"".to_string()]);
}

#[tokio::test]
async fn a_wrong_tsig_key_is_an_authentication_error_and_changes_nothing() {
    let knot = Knot::start();
    let wrong = "c3RhbGUtb3Itd3Jvbmcta2V5LXN0YWxlLW9yLXdyb25nIQ==";
    let t = Rfc2136Traffic::new(&spec(&knot, "drover"), Secret::new(wrong));

    let err = guard(t.switch("west", 0, 1)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "dns {}: TSIG authentication failed for key 'drover' — check traffic.tsig secret and algorithm match the server's key",
            knot.addr
        )
    );
    assert!(!err.retryable());
    assert!(!err.to_string().contains(wrong) && !err.to_string().contains(&knot.secret), "never prints a key");

    // A key name the server does not know is the same failure, named.
    let unknown = Rfc2136Traffic::new(&spec(&knot, "nobody"), Secret::new(knot.secret.clone()));
    let err = guard(unknown.switch("west", 0, 1)).await.unwrap_err();
    assert!(err.to_string().contains("TSIG authentication failed for key 'nobody'"), "{err}");

    // So is the right secret with another algorithm than the server's key.
    let mut sha512 = spec(&knot, "drover");
    sha512.tsig.algorithm = TsigAlgorithm::HmacSha512;
    let err =
        guard(Rfc2136Traffic::new(&sha512, Secret::new(knot.secret.clone())).switch("west", 0, 1)).await.unwrap_err();
    assert!(err.to_string().contains("TSIG authentication failed for key 'drover'"), "{err}");

    let now = guard(traffic(&knot).current()).await.unwrap();
    assert_eq!((now.region.as_deref(), now.epoch), (Some("east"), 0));
    assert_eq!(seen_by_kdig(&knot), (vec![(1, EAST.to_string())], vec![]));
}

#[tokio::test]
async fn a_key_the_zones_update_acl_does_not_allow_is_refused_naming_the_zone_and_acl() {
    let knot = Knot::start();
    let t = Rfc2136Traffic::new(&spec(&knot, "reader"), Secret::new(knot.reader_secret.clone()));
    let err = guard(t.switch("west", 0, 1)).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("key 'reader'") && msg.contains("zone app.test.") && msg.contains("ACL"), "{msg}");
    assert!(!err.retryable());
    assert_eq!(guard(traffic(&knot).current()).await.unwrap().epoch, 0);
}

#[tokio::test]
async fn repeating_a_switch_is_safe() {
    let knot = Knot::start();
    let t = traffic(&knot);
    guard(t.switch("west", 0, 1)).await.unwrap();
    // A resumed run that lost the answer repeats exactly the same call...
    guard(t.switch("west", 0, 1)).await.unwrap();
    // ...or re-observes first and asks again at the epoch it now sees.
    guard(t.switch("west", 1, 1)).await.unwrap();

    let now = guard(t.current()).await.unwrap();
    assert_eq!((now.region.as_deref(), now.epoch), (Some("west"), 1));
    assert_eq!(seen_by_kdig(&knot), (vec![(5, WEST.to_string())], vec!["\"1\"".to_string()]));
}

#[tokio::test]
async fn resolve_returns_the_address_and_its_ttl() {
    let knot = Knot::start();
    let (addresses, ttl) = guard(resolve(knot.addr, "api.app.test")).await.unwrap();
    assert_eq!((addresses, ttl), (vec![ip(EAST)], Duration::from_secs(1)));

    guard(traffic(&knot).switch("west", 0, 1)).await.unwrap();
    let (addresses, ttl) = guard(resolve(knot.addr, RECORD)).await.unwrap();
    assert_eq!((addresses, ttl), (vec![ip(WEST)], Duration::from_secs(5)));

    let (addresses, _) = guard(resolve(knot.addr, "missing.app.test.")).await.unwrap();
    assert!(addresses.is_empty());
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_error() {
    let knot = Knot::start();
    let s = spec(&knot, "drover");
    drop(knot); // nothing listens on its port any more
    let t = Rfc2136Traffic::new(&s, Secret::new("c2VjcmV0"));
    let err = guard(t.current()).await.unwrap_err();
    assert!(err.retryable(), "{err}");
    assert!(err.to_string().starts_with(&format!("dns {}:", s.server)), "{err}");
    assert!(std::error::Error::source(&err).is_some(), "keeps hickory's error: {err:?}");
}
