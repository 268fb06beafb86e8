//! How AWS calls fail when the endpoint is not AWS: an HTTP server that answers every
//! request with 404 (no AWS error code to report), an endpoint that accepts connections
//! and never answers (the plan's timeouts end the call), and a wait whose look never
//! comes back (the wait's own deadline ends it). No moto: these are the endpoints' faults.

#![cfg(feature = "aws")]

use std::collections::BTreeMap;
use std::time::Duration;

use drover_adapters::aws::rds::sdk::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use drover_adapters::aws::rds::{RdsApi, RdsDatabase, wait_until};
use drover_adapters::aws::{AwsConfig, SdkConfig, https_client, timeout_config};
use drover_core::plan::{AwsTimeouts, RdsMember, RdsSpec};
use drover_core::world::{Database, MemberStatus};

/// Plan region `east`, whose instance lives in AWS region us-east-2.
fn database(endpoint: &str, timeouts: AwsTimeouts) -> RdsDatabase {
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-2"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        )))
        .http_client(https_client())
        .timeout_config(timeout_config(timeouts))
        .build();
    let spec = RdsSpec {
        members: BTreeMap::from([("east".into(), RdsMember { instance: "shop-db".into() })]),
        promote_timeout: Duration::from_secs(60),
    };
    let regions = BTreeMap::from([("east".into(), "us-east-2".into())]);
    RdsDatabase::new(&spec, &regions, RdsApi::new(AwsConfig::with(sdk)))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn an_endpoint_that_is_not_the_service_is_reported_with_its_http_status() {
    runtime().block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "no such page") });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let e = database(&endpoint, AwsTimeouts::default()).member("east").await.unwrap_err();
        assert!(
            e.message.starts_with("us-east-2/shop-db: DescribeDBInstances failed: HTTP 404 with no AWS error code"),
            "{}",
            e.message
        );
        assert!(e.message.contains(&format!("{endpoint} did not answer as the RDS API would")), "{}", e.message);
        assert!(e.message.contains("AWS_ENDPOINT_URL"), "{}", e.message);
        assert!(!e.message.contains("unknown error"), "{}", e.message);
        assert!(!e.message.contains("resource names"), "the plan's names are not at fault: {}", e.message);
        assert!(!e.retryable(), "a 404 will not go away by asking again: {}", e.message);
        assert!(std::error::Error::source(&e).is_some(), "keeps the SDK's error: {e:?}");
    });
}

#[test]
fn an_endpoint_that_never_answers_times_out_naming_the_call_and_the_endpoint() {
    runtime().block_on(async {
        // Accepts connections (the kernel completes the handshake) and never reads or answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let timeouts = AwsTimeouts {
            connect: Duration::from_millis(500),
            attempt: Duration::from_millis(300),
            operation: Duration::from_secs(1),
        };
        let db = database(&endpoint, timeouts);
        // Generous: the operation timeout is one second.
        let status = tokio::time::timeout(Duration::from_secs(60), db.member("east")).await.expect("the call ended");
        // A region whose API does not answer is unreachable, as in an outage (a failover skips fencing it).
        let MemberStatus::Unreachable { reason } = status.unwrap() else { panic!("not unreachable") };
        assert!(reason.starts_with("us-east-2/shop-db: DescribeDBInstances timed out: "), "{reason}");
        assert!(reason.contains(&format!("no answer from {endpoint}")), "{reason}");
        assert!(reason.contains("raise aws.timeouts in the plan"), "{reason}");
        drop(listener);
    });
}

#[test]
fn a_wait_ends_at_its_deadline_even_when_a_look_never_returns() {
    runtime().block_on(async {
        let wait =
            wait_until(Duration::from_millis(200), Duration::from_millis(50), "us-east-2/shop-db: promote", || {
                std::future::pending::<Result<Result<(), String>, drover_core::error::ProviderError>>()
            });
        let e = tokio::time::timeout(Duration::from_secs(60), wait).await.expect("the wait ended").unwrap_err();
        assert!(e.message.starts_with("us-east-2/shop-db: promote: not done after 200ms"), "{}", e.message);
        assert!(e.message.contains("got no answer from the API in time"), "{}", e.message);
    });
}
