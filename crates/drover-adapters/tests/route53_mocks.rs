//! Route 53 answers moto never gives, through aws-smithy-mocks: changes that stay
//! PENDING (moto reports every change INSYNC at once), a batch refused because a
//! newer run moved the epoch record between drover's read and its write (moto
//! checks a DELETE against the zone's history, not its current value), and
//! throttling. The exact requests drover sends are asserted.

#![cfg(feature = "aws")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_route53::Client;
use aws_sdk_route53::error::ErrorMetadata;
use aws_sdk_route53::operation::change_resource_record_sets::{
    ChangeResourceRecordSetsError, ChangeResourceRecordSetsOutput,
};
use aws_sdk_route53::operation::get_change::GetChangeOutput;
use aws_sdk_route53::operation::list_resource_record_sets::{
    ListResourceRecordSetsError, ListResourceRecordSetsOutput,
};
use aws_sdk_route53::primitives::DateTime;
use aws_sdk_route53::types::error::InvalidChangeBatch;
use aws_sdk_route53::types::{
    ChangeBatch, ChangeInfo, ChangeStatus, ResourceRecord, ResourceRecordSet, ResourceRecordSetFailover, RrType,
};
use aws_smithy_mocks::{MockResponse, RuleMode, mock, mock_client};
use drover_adapters::aws::route53::{Route53Api, Route53Traffic};
use drover_core::plan::{Route53RecordType, Route53Routing, Route53Spec, Route53Target};
use drover_core::world::Traffic;

const RECORD: &str = "api.example.test.";
const EPOCH_NAME: &str = "_drover-epoch.api.example.test.";

fn spec(change_timeout: Duration) -> Route53Spec {
    let target = |value: &str, hc: Option<&str>| Route53Target {
        value: value.into(),
        set_identifier: value.into(),
        health_check_id: hc.map(str::to_owned),
    };
    Route53Spec {
        hosted_zone_id: "Z1".into(),
        record: RECORD.into(),
        record_type: Route53RecordType::A,
        ttl: Duration::from_secs(60),
        routing: Route53Routing::Failover,
        targets: BTreeMap::from([
            ("east".into(), target("192.0.2.10", Some("hc-east"))),
            ("west".into(), target("192.0.2.20", None)),
        ]),
        change_timeout,
    }
}

fn txt_set(value: &str) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(EPOCH_NAME)
        .r#type(RrType::Txt)
        .ttl(60)
        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
        .build()
        .unwrap()
}

fn listing(sets: Vec<ResourceRecordSet>) -> ListResourceRecordSetsOutput {
    ListResourceRecordSetsOutput::builder()
        .set_resource_record_sets(Some(sets))
        .is_truncated(false)
        .max_items(100)
        .build()
        .unwrap()
}

fn change_info(status: ChangeStatus) -> ChangeInfo {
    ChangeInfo::builder().id("/change/C1").status(status).submitted_at(DateTime::from_secs(0)).build().unwrap()
}

/// The epoch record holds each of `epochs` in turn (the last one from then on); the record is east PRIMARY.
fn zone_rule(epochs: Vec<&'static str>) -> aws_smithy_mocks::Rule {
    let calls = Mutex::new(0usize);
    mock!(Client::list_resource_record_sets).then_compute_output(move |req| {
        if req.start_record_type() == Some(&RrType::Txt) {
            let mut n = calls.lock().unwrap();
            let value = epochs[(*n).min(epochs.len() - 1)];
            *n += 1;
            return listing(vec![txt_set(value)]);
        }
        let set = |id: &str, role| {
            ResourceRecordSet::builder()
                .name(RECORD)
                .r#type(RrType::A)
                .ttl(60)
                .set_identifier(id)
                .failover(role)
                .resource_records(ResourceRecord::builder().value(id).build().unwrap())
                .build()
                .unwrap()
        };
        listing(vec![
            set("192.0.2.10", ResourceRecordSetFailover::Primary),
            set("192.0.2.20", ResourceRecordSetFailover::Secondary),
        ])
    })
}

fn traffic(client: Client, change_timeout: Duration) -> Route53Traffic {
    Route53Traffic::new(&spec(change_timeout), Route53Api::with_client(client, "us-east-1"), None)
        .poll_every(Duration::from_millis(10))
}

/// Each change of a batch as `ACTION name type [values] failover set-id health-check`.
fn describe(batch: &ChangeBatch) -> Vec<String> {
    batch
        .changes()
        .iter()
        .map(|c| {
            let s = c.resource_record_set().unwrap();
            let values: Vec<&str> = s.resource_records().iter().map(|r| r.value()).collect();
            format!(
                "{} {} {} ttl {} {:?} {} {} {}",
                c.action().as_str(),
                s.name(),
                s.r#type().as_str(),
                s.ttl().unwrap_or(0),
                values,
                s.failover().map_or("-", |f| f.as_str()),
                s.set_identifier().unwrap_or("-"),
                s.health_check_id().unwrap_or("-"),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_pending_change_is_polled_until_insync_and_the_batch_is_fenced_on_the_epoch_record() {
    let sent: Arc<Mutex<Vec<ChangeBatch>>> = Arc::default();
    let change = {
        let sent = sent.clone();
        mock!(Client::change_resource_record_sets).then_compute_output(move |req| {
            assert_eq!(req.hosted_zone_id(), Some("Z1"));
            sent.lock().unwrap().push(req.change_batch().unwrap().clone());
            ChangeResourceRecordSetsOutput::builder().change_info(change_info(ChangeStatus::Pending)).build()
        })
    };
    let get_change = mock!(Client::get_change)
        // The SDK trims the `/change/` prefix of the id drover passes on.
        .match_requests(|req| req.id() == Some("C1"))
        .sequence()
        .output(|| GetChangeOutput::builder().change_info(change_info(ChangeStatus::Pending)).build())
        .times(2)
        .output(|| GetChangeOutput::builder().change_info(change_info(ChangeStatus::Insync)).build())
        .build();
    let zone = zone_rule(vec!["\"3\""]);
    let client = mock_client!(aws_sdk_route53, RuleMode::MatchAny, [&zone, &change, &get_change]);

    traffic(client, Duration::from_secs(10)).switch("west", 3, 4).await.unwrap();
    assert_eq!(get_change.num_calls(), 3, "PENDING, PENDING, INSYNC");
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1, "one batch");
    assert_eq!(
        describe(&sent[0]),
        [
            "DELETE _drover-epoch.api.example.test. TXT ttl 60 [\"\\\"3\\\"\"] - - -",
            "CREATE _drover-epoch.api.example.test. TXT ttl 60 [\"\\\"4\\\"\"] - - -",
            // Each set deleted exactly as the zone lists it and created as drover wants it:
            // one batch, so a set the zone lacks fails the batch instead of being created.
            "DELETE api.example.test. A ttl 60 [\"192.0.2.10\"] PRIMARY 192.0.2.10 -",
            "CREATE api.example.test. A ttl 60 [\"192.0.2.10\"] SECONDARY 192.0.2.10 hc-east",
            "DELETE api.example.test. A ttl 60 [\"192.0.2.20\"] SECONDARY 192.0.2.20 -",
            "CREATE api.example.test. A ttl 60 [\"192.0.2.20\"] PRIMARY 192.0.2.20 -",
        ]
    );
    assert_eq!(sent[0].comment(), Some("drover: api.example.test. PRIMARY -> west at epoch 4"));
}

#[tokio::test]
async fn a_change_still_pending_after_the_timeout_fails_as_transient() {
    let change = mock!(Client::change_resource_record_sets).then_output(|| {
        ChangeResourceRecordSetsOutput::builder().change_info(change_info(ChangeStatus::Pending)).build()
    });
    let get_change = mock!(Client::get_change)
        .then_output(|| GetChangeOutput::builder().change_info(change_info(ChangeStatus::Pending)).build());
    let zone = zone_rule(vec!["\"3\""]);
    let client = mock_client!(aws_sdk_route53, RuleMode::MatchAny, [&zone, &change, &get_change]);

    let err = traffic(client, Duration::from_millis(100)).switch("west", 3, 4).await.unwrap_err();
    assert!(err.retryable(), "{err:?}");
    assert_eq!(
        err.message,
        "us-east-1/hostedzone/Z1: change /change/C1 is still PENDING after 100ms — Route 53 has not propagated it yet; the step retries, or raise traffic.change_timeout"
    );
    assert!(get_change.num_calls() >= 2, "polled: {}", get_change.num_calls());
}

/// ChangeResourceRecordSets refused as Route 53 refuses a DELETE of an epoch value the record no longer holds.
fn refused_on_the_epoch_record() -> aws_smithy_mocks::Rule {
    mock!(Client::change_resource_record_sets).then_error(|| {
        let message = format!(
            "[Tried to delete resource record set [name='{EPOCH_NAME}', type='TXT'] but the values provided do not match the current values]"
        );
        ChangeResourceRecordSetsError::InvalidChangeBatch(
            InvalidChangeBatch::builder()
                .message(&message)
                .meta(ErrorMetadata::builder().code("InvalidChangeBatch").message(&message).build())
                .build(),
        )
    })
}

#[tokio::test]
async fn a_batch_refused_on_the_epoch_record_is_a_stale_switch() {
    // drover reads epoch 3; a newer run writes 5 before drover's batch lands, and Route 53 refuses it.
    let change = refused_on_the_epoch_record();
    let zone = zone_rule(vec!["\"3\"", "\"5\""]);
    let client = mock_client!(aws_sdk_route53, RuleMode::MatchAny, [&zone, &change]);

    let err = traffic(client, Duration::from_secs(10)).switch("west", 3, 4).await.unwrap_err();
    assert!(!err.retryable());
    assert_eq!(
        err.message,
        "route53 api.example.test.: switch refused: the epoch record holds 5, not 3 (a newer run has switched traffic); abort this run"
    );
    assert_eq!(change.num_calls(), 1);
}

#[tokio::test]
async fn a_refused_batch_whose_epoch_record_holds_what_it_writes_had_landed() {
    // The first attempt timed out after Route 53 applied it and the SDK sent it again: the
    // retry is refused on the epoch record, which already holds this run's 4. Not stale.
    let change = refused_on_the_epoch_record();
    let zone = zone_rule(vec!["\"3\"", "\"4\""]);
    let client = mock_client!(aws_sdk_route53, RuleMode::MatchAny, [&zone, &change]);
    traffic(client, Duration::from_secs(10)).switch("west", 3, 4).await.expect("the batch had landed");
    assert_eq!(change.num_calls(), 1);
}

#[tokio::test]
async fn throttling_is_transient_and_access_denied_names_the_credentials_to_check() {
    let throttled = mock!(Client::list_resource_record_sets).then_error(|| {
        ListResourceRecordSetsError::generic(
            ErrorMetadata::builder().code("Throttling").message("Rate exceeded").build(),
        )
    });
    let client = mock_client!(aws_sdk_route53, RuleMode::MatchAny, [&throttled], |c| c
        .retry_config(aws_sdk_route53::config::retry::RetryConfig::disabled()));
    let err = traffic(client, Duration::from_secs(10)).current().await.unwrap_err();
    assert!(err.retryable());
    assert_eq!(
        err.message,
        "us-east-1/hostedzone/Z1: ListResourceRecordSets failed: Throttling: Rate exceeded — Route 53 is throttling or busy; the step retries"
    );
    assert!(std::error::Error::source(&err).is_some(), "keeps the SDK's error: {err:?}");

    let denied = mock!(Client::list_resource_record_sets).then_compute_response(|_| {
        MockResponse::Error(ListResourceRecordSetsError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("User: arn:aws:iam::123456789012:user/drover is not authorized to perform: route53:ListResourceRecordSets")
                .build(),
        ))
    });
    let client = mock_client!(aws_sdk_route53, RuleMode::MatchAny, [&denied]);
    let err = traffic(client, Duration::from_secs(10)).current().await.unwrap_err();
    assert!(!err.retryable());
    assert!(
        err.message.starts_with("us-east-1/hostedzone/Z1: ListResourceRecordSets failed: AccessDenied: User: "),
        "{}",
        err.message
    );
    assert!(
        err.message.ends_with(
            " — check the credentials drover runs with (AWS_PROFILE, AWS_ACCESS_KEY_ID or the instance role) and that its IAM policy allows route53:ListResourceRecordSets here ('drover plan iam' prints the policy)"
        ),
        "{}",
        err.message
    );
}
