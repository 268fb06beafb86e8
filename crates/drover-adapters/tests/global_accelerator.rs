//! Global Accelerator traffic through aws-smithy-mocks (moto has no Global
//! Accelerator): a small in-memory accelerator answers the SDK's requests, and the
//! exact requests drover sends are asserted — UpdateEndpointGroup with the dial and
//! the endpoint weights, TagResource with the epoch — with throttling (transient)
//! and errors (permanent, `region/resource: Operation failed: Code: message — hint`);
//! and the preflight: the accelerator and the plan's endpoint groups must exist.

#![cfg(feature = "aws")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_globalaccelerator::Client;
use aws_sdk_globalaccelerator::error::ErrorMetadata;
use aws_sdk_globalaccelerator::operation::describe_accelerator::{DescribeAcceleratorError, DescribeAcceleratorOutput};
use aws_sdk_globalaccelerator::operation::describe_endpoint_group::{
    DescribeEndpointGroupError, DescribeEndpointGroupOutput,
};
use aws_sdk_globalaccelerator::operation::list_tags_for_resource::ListTagsForResourceOutput;
use aws_sdk_globalaccelerator::operation::tag_resource::TagResourceOutput;
use aws_sdk_globalaccelerator::operation::update_endpoint_group::{
    UpdateEndpointGroupError, UpdateEndpointGroupOutput,
};
use aws_sdk_globalaccelerator::types::{
    Accelerator, AcceleratorStatus, EndpointDescription, EndpointGroup, IpSet, Tag,
};
use aws_smithy_mocks::{MockResponse, Rule, RuleMode, mock, mock_client};
use drover_adapters::aws::global_accelerator::{GlobalAcceleratorApi, GlobalAcceleratorTraffic};
use drover_adapters::aws::stages::StageGate;
use drover_core::plan::{EndpointGroupTarget, GlobalAcceleratorSpec};
use drover_core::world::Traffic;

const ACCELERATOR: &str = "arn:aws:globalaccelerator::123456789012:accelerator/acc1";
const EAST_GROUP: &str = "arn:aws:globalaccelerator::123456789012:accelerator/acc1/listener/l1/endpoint-group/east1";
const WEST_GROUP: &str = "arn:aws:globalaccelerator::123456789012:accelerator/acc1/listener/l1/endpoint-group/west1";
const EAST_ALB: &str = "arn:aws:elasticloadbalancing:us-east-2:123456789012:loadbalancer/app/web-east/1";
const WEST_ALB: &str = "arn:aws:elasticloadbalancing:us-west-1:123456789012:loadbalancer/app/web-west/2";
/// In east's group but not in the plan: drover must send it back as it is.
const EAST_EXTRA: &str = "eipalloc-0extra";

fn spec(stages: Vec<u8>, change_timeout: Duration) -> GlobalAcceleratorSpec {
    GlobalAcceleratorSpec {
        accelerator_arn: ACCELERATOR.into(),
        endpoint_groups: BTreeMap::from([
            ("east".into(), EndpointGroupTarget { arn: EAST_GROUP.into(), endpoints: [(EAST_ALB.into(), 100)].into() }),
            ("west".into(), EndpointGroupTarget { arn: WEST_GROUP.into(), endpoints: [(WEST_ALB.into(), 200)].into() }),
        ]),
        stages,
        stage_pause: Duration::from_millis(1),
        change_timeout,
    }
}

/// The accelerator as the mocks hold it: dials and endpoints per group, the tags,
/// how many more DescribeAccelerator calls answer IN_PROGRESS, and every write drover sent.
struct Fake {
    groups: BTreeMap<&'static str, (f32, Vec<EndpointDescription>)>,
    tags: Vec<Tag>,
    in_progress: usize,
    writes: Vec<String>,
}

type Shared = Arc<Mutex<Fake>>;

fn endpoint(id: &str, weight: i32, preserve: bool) -> EndpointDescription {
    EndpointDescription::builder().endpoint_id(id).weight(weight).client_ip_preservation_enabled(preserve).build()
}

/// East serving (dial 100), west idle (dial 0), epoch tag `epoch`.
fn accelerator(epoch: &str) -> Shared {
    Arc::new(Mutex::new(Fake {
        groups: BTreeMap::from([
            (EAST_GROUP, (100.0, vec![endpoint(EAST_ALB, 128, true), endpoint(EAST_EXTRA, 50, false)])),
            (WEST_GROUP, (0.0, vec![endpoint(WEST_ALB, 128, true)])),
        ]),
        tags: vec![
            Tag::builder().key("team").value("web").build().unwrap(),
            Tag::builder().key("drover:epoch").value(epoch).build().unwrap(),
        ],
        in_progress: 0,
        writes: Vec::new(),
    }))
}

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

/// The rules of an accelerator answering every request drover makes.
fn rules(fake: &Shared) -> Vec<Rule> {
    let f = fake.clone();
    let describe_group = mock!(Client::describe_endpoint_group).then_compute_response(move |req| {
        let fake = f.lock().unwrap();
        let arn = req.endpoint_group_arn().unwrap();
        let Some((dial, endpoints)) = fake.groups.iter().find(|(a, _)| **a == arn).map(|(_, g)| g.clone()) else {
            return MockResponse::Error(DescribeEndpointGroupError::generic(
                ErrorMetadata::builder()
                    .code("EndpointGroupNotFoundException")
                    .message(format!("Endpoint group {} not found", short(arn)))
                    .build(),
            ));
        };
        let group = EndpointGroup::builder()
            .endpoint_group_arn(arn)
            .traffic_dial_percentage(dial)
            .set_endpoint_descriptions(Some(endpoints))
            .build();
        MockResponse::Output(DescribeEndpointGroupOutput::builder().endpoint_group(group).build())
    });
    let f = fake.clone();
    let update = mock!(Client::update_endpoint_group).then_compute_output(move |req| {
        let mut fake = f.lock().unwrap();
        let arn = req.endpoint_group_arn().unwrap().to_owned();
        let dial = req.traffic_dial_percentage().unwrap();
        let sent: Vec<String> = req
            .endpoint_configurations()
            .iter()
            .map(|c| {
                format!(
                    "{} weight {} preserve {:?}",
                    c.endpoint_id().unwrap(),
                    c.weight().unwrap(),
                    c.client_ip_preservation_enabled()
                )
            })
            .collect();
        fake.writes.push(format!("UpdateEndpointGroup {} dial {dial} [{}]", short(&arn), sent.join(", ")));
        let group = fake.groups.iter_mut().find(|(a, _)| **a == arn).map(|(_, g)| g).unwrap();
        group.0 = dial;
        fake.in_progress = fake.in_progress.max(2);
        UpdateEndpointGroupOutput::builder().build()
    });
    let f = fake.clone();
    let describe = mock!(Client::describe_accelerator).then_compute_output(move |req| {
        assert_eq!(req.accelerator_arn(), Some(ACCELERATOR));
        let mut fake = f.lock().unwrap();
        let status = if fake.in_progress > 0 { AcceleratorStatus::InProgress } else { AcceleratorStatus::Deployed };
        fake.in_progress = fake.in_progress.saturating_sub(1);
        let accelerator = Accelerator::builder()
            .accelerator_arn(ACCELERATOR)
            .dns_name("a1234.awsglobalaccelerator.com")
            .ip_sets(IpSet::builder().ip_addresses("75.2.0.1").ip_addresses("99.83.0.1").build())
            .status(status)
            .build();
        DescribeAcceleratorOutput::builder().accelerator(accelerator).build()
    });
    let f = fake.clone();
    let list_tags = mock!(Client::list_tags_for_resource).then_compute_output(move |req| {
        assert_eq!(req.resource_arn(), Some(ACCELERATOR));
        ListTagsForResourceOutput::builder().set_tags(Some(f.lock().unwrap().tags.clone())).build()
    });
    let f = fake.clone();
    let tag = mock!(Client::tag_resource).then_compute_output(move |req| {
        let mut fake = f.lock().unwrap();
        for tag in req.tags() {
            fake.writes.push(format!("TagResource {}={}", tag.key(), tag.value()));
            fake.tags.retain(|t| t.key() != tag.key());
            fake.tags.push(tag.clone());
        }
        TagResourceOutput::builder().build()
    });
    vec![describe_group, update, describe, list_tags, tag]
}

fn client(rules: &[Rule]) -> Client {
    let [a, b, c, d, e] = rules else { panic!("five rules") };
    mock_client!(aws_sdk_globalaccelerator, RuleMode::MatchAny, [a, b, c, d, e], |c| c
        .retry_config(aws_sdk_globalaccelerator::config::retry::RetryConfig::disabled()))
}

fn traffic(client: Client, spec: &GlobalAcceleratorSpec, gate: Option<Arc<dyn StageGate>>) -> GlobalAcceleratorTraffic {
    GlobalAcceleratorTraffic::new(spec, GlobalAcceleratorApi::with_client(client), gate)
        .poll_every(Duration::from_millis(1))
}

fn writes(fake: &Shared) -> Vec<String> {
    fake.lock().unwrap().writes.clone()
}

#[tokio::test]
async fn a_switch_opens_the_target_closes_the_old_group_sets_weights_and_tags_the_epoch() {
    let fake = accelerator("3");
    let rules = rules(&fake);
    let ga = traffic(client(&rules), &spec(vec![100], Duration::from_secs(10)), None);

    let before = ga.current().await.unwrap();
    assert_eq!(before.region.as_deref(), Some("east"));
    assert_eq!(before.epoch, 3);
    assert_eq!(before.addresses, ["75.2.0.1", "99.83.0.1", "a1234.awsglobalaccelerator.com"]);

    ga.switch("west", 3, 4).await.unwrap();
    assert_eq!(
        writes(&fake),
        [
            // The target opens first, with the plan's weight (its client IP preservation kept).
            format!("UpdateEndpointGroup west1 dial 100 [{WEST_ALB} weight 200 preserve Some(true)]"),
            // The old group closes; the endpoint the plan does not name is sent back as it was.
            format!(
                "UpdateEndpointGroup east1 dial 0 [{EAST_ALB} weight 100 preserve Some(true), {EAST_EXTRA} weight 50 preserve Some(false)]"
            ),
            "TagResource drover:epoch=4".to_owned(),
        ]
    );
    // The accelerator was IN_PROGRESS after the updates and polled until DEPLOYED.
    assert_eq!(fake.lock().unwrap().in_progress, 0);
    let after = ga.current().await.unwrap();
    assert_eq!((after.region.as_deref(), after.epoch), (Some("west"), 4));

    // Repeating the switch (an engine retry) changes nothing new.
    fake.lock().unwrap().writes.clear();
    ga.switch("west", 4, 4).await.unwrap();
    let again = writes(&fake);
    assert_eq!(again.len(), 2, "the same dials sent again, the epoch not re-tagged: {again:?}");
    assert!(
        again[0].starts_with("UpdateEndpointGroup west1 dial 100")
            && again[1].starts_with("UpdateEndpointGroup east1 dial 0")
    );
}

/// Records each hold; fails the `fail_at`-th (1-based) if set.
struct Recorder {
    holds: Mutex<Vec<String>>,
    fake: Shared,
    fail_at: Option<usize>,
}

#[async_trait]
impl StageGate for Recorder {
    async fn hold(&self, region: &str, _pause: Duration) -> Result<(), String> {
        let dials: Vec<String> =
            self.fake.lock().unwrap().groups.iter().map(|(a, g)| format!("{} {}", short(a), g.0)).collect();
        let mut holds = self.holds.lock().unwrap();
        holds.push(format!("{region}: {}", dials.join(", ")));
        if self.fail_at == Some(holds.len()) {
            return Err("check api failed 3 times on west: status 503, expected 200".into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_staged_shift_lowers_the_old_dial_stage_by_stage_and_a_failing_check_stops_it_until_resumed() {
    let fake = accelerator("3");
    let rules = rules(&fake);
    let gate = Arc::new(Recorder { holds: Mutex::default(), fake: fake.clone(), fail_at: Some(2) });
    let ga = traffic(client(&rules), &spec(vec![25, 50, 100], Duration::from_secs(10)), Some(gate.clone()));

    let err = ga.switch("west", 3, 4).await.unwrap_err();
    assert!(!err.retryable());
    assert_eq!(
        err.message,
        "global-accelerator us-west-2/accelerator/acc1: shift to west stopped at 50% (stage 2 of 3): check api failed 3 times on west: status 503, expected 200 — the dials stay where they are; fix west and resume the run to continue the shift, or abort it"
    );
    assert_eq!(*gate.holds.lock().unwrap(), ["west: east1 75, west1 100", "west: east1 50, west1 100"]);
    let dials: Vec<&str> = writes(&fake)
        .iter()
        .map(|w| w.split(" [").next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .leak()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        dials,
        [
            "UpdateEndpointGroup west1 dial 100",
            "UpdateEndpointGroup east1 dial 75",
            "TagResource drover:epoch=4",
            "UpdateEndpointGroup east1 dial 50",
        ]
    );
    // Split between regions at the run's epoch: no region holds the traffic.
    let split = ga.current().await.unwrap();
    assert_eq!((split.region, split.epoch), (None, 4));
    assert!(split.addresses.contains(&"east dial 50%".to_owned()), "{:?}", split.addresses);

    // Resumed: the stages done are skipped, the shift goes on to 100.
    fake.lock().unwrap().writes.clear();
    ga.switch("west", 4, 4).await.unwrap();
    let resumed = writes(&fake);
    assert_eq!(resumed.len(), 2, "{resumed:?}");
    assert!(resumed[0].starts_with("UpdateEndpointGroup west1 dial 100"), "{resumed:?}");
    assert!(resumed[1].starts_with("UpdateEndpointGroup east1 dial 0"), "{resumed:?}");
    let after = ga.current().await.unwrap();
    assert_eq!((after.region.as_deref(), after.epoch), (Some("west"), 4));
}

#[tokio::test]
async fn a_moved_epoch_tag_refuses_the_switch_with_nothing_sent() {
    let fake = accelerator("5");
    let rules = rules(&fake);
    let ga = traffic(client(&rules), &spec(vec![100], Duration::from_secs(10)), None);
    let err = ga.switch("west", 3, 4).await.unwrap_err();
    assert!(!err.retryable());
    assert_eq!(err.kind(), drover_core::error::ProviderErrorKind::Stale);
    assert_eq!(
        err.message,
        "us-west-2/accelerator/acc1: switch refused: the drover:epoch tag holds 5, not 3 (a newer run has switched traffic); abort this run"
    );
    assert!(writes(&fake).is_empty(), "{:?}", writes(&fake));
}

#[tokio::test]
async fn a_newer_run_tagging_between_stages_stops_the_shift() {
    let fake = accelerator("3");
    let rules = rules(&fake);
    // The "check" between stages is where a newer run gets in and tags its epoch.
    struct NewerRun(Shared);
    #[async_trait]
    impl StageGate for NewerRun {
        async fn hold(&self, _region: &str, _pause: Duration) -> Result<(), String> {
            let mut fake = self.0.lock().unwrap();
            fake.tags.retain(|t| t.key() != "drover:epoch");
            fake.tags.push(Tag::builder().key("drover:epoch").value("7").build().unwrap());
            Ok(())
        }
    }
    let ga =
        traffic(client(&rules), &spec(vec![50, 100], Duration::from_secs(10)), Some(Arc::new(NewerRun(fake.clone()))));
    let err = ga.switch("west", 3, 4).await.unwrap_err();
    assert!(err.message.contains("switch refused: the drover:epoch tag holds 7, not 3"), "{}", err.message);
    assert!(!writes(&fake).iter().any(|w| w.contains("dial 0")), "the second stage was not sent: {:?}", writes(&fake));
}

#[tokio::test]
async fn an_accelerator_still_in_progress_after_the_timeout_is_transient() {
    let fake = accelerator("3");
    fake.lock().unwrap().in_progress = usize::MAX;
    let rules = rules(&fake);
    let ga = traffic(client(&rules), &spec(vec![100], Duration::from_millis(50)), None);
    let err = ga.switch("west", 3, 4).await.unwrap_err();
    assert!(err.retryable(), "{err:?}");
    assert_eq!(
        err.message,
        "us-west-2/accelerator/acc1: still IN_PROGRESS after 50ms — Global Accelerator has not deployed the change yet; the step retries, or raise traffic.change_timeout"
    );
}

#[tokio::test]
async fn throttling_is_transient_and_a_missing_endpoint_group_is_permanent() {
    let throttled = mock!(Client::describe_endpoint_group).then_error(|| {
        DescribeEndpointGroupError::generic(
            ErrorMetadata::builder().code("ThrottlingException").message("Rate exceeded").build(),
        )
    });
    let fake = accelerator("3");
    let mut all = rules(&fake);
    all[0] = throttled;
    let ga = traffic(client(&all), &spec(vec![100], Duration::from_secs(10)), None);
    let err = ga.current().await.unwrap_err();
    assert!(err.retryable());
    assert_eq!(
        err.message,
        "us-west-2/accelerator/acc1/listener/l1/endpoint-group/east1: DescribeEndpointGroup failed: ThrottlingException: Rate exceeded — Global Accelerator is throttling or busy; the step retries"
    );

    let missing = mock!(Client::update_endpoint_group).then_compute_response(|_| {
        MockResponse::Error(UpdateEndpointGroupError::generic(
            ErrorMetadata::builder()
                .code("EndpointGroupNotFoundException")
                .message("Endpoint group west1 not found")
                .build(),
        ))
    });
    let fake = accelerator("3");
    let mut all = rules(&fake);
    all[1] = missing;
    let ga = traffic(client(&all), &spec(vec![100], Duration::from_secs(10)), None);
    let err = ga.switch("west", 3, 4).await.unwrap_err();
    assert!(!err.retryable());
    assert_eq!(
        err.message,
        "us-west-2/accelerator/acc1/listener/l1/endpoint-group/west1: UpdateEndpointGroup failed: EndpointGroupNotFoundException: Endpoint group west1 not found — check traffic.endpoint_groups names endpoint groups of the accelerator (their ARNs)"
    );
    assert!(writes(&fake).iter().all(|w| !w.starts_with("TagResource")), "no epoch tagged: {:?}", writes(&fake));
}

#[tokio::test]
async fn preflight_finds_the_accelerator_and_every_endpoint_group_and_changes_nothing() {
    let fake = accelerator("3");
    let rules = rules(&fake);
    let ga = traffic(client(&rules), &spec(vec![100], Duration::from_secs(10)), None);
    assert_eq!(ga.preflight().await, Vec::<String>::new());
    assert!(writes(&fake).is_empty(), "a preflight only reads: {:?}", writes(&fake));
}

#[tokio::test]
async fn preflight_names_an_endpoint_group_the_listener_does_not_hold() {
    // West's group was deleted (or its ARN mistyped in the plan): the switch to west
    // would fail only after the primary was fenced.
    let fake = accelerator("3");
    fake.lock().unwrap().groups.remove(WEST_GROUP);
    let rules = rules(&fake);
    let ga = traffic(client(&rules), &spec(vec![100], Duration::from_secs(10)), None);
    assert_eq!(
        ga.preflight().await,
        [
            "us-west-2/accelerator/acc1/listener/l1/endpoint-group/west1: no such endpoint group (DescribeEndpointGroup: EndpointGroupNotFoundException) — check traffic.endpoint_groups.west.arn names an endpoint group of the accelerator's listener"
        ]
    );
}

#[tokio::test]
async fn preflight_names_a_missing_accelerator_and_each_group_under_it() {
    let fake = accelerator("3");
    fake.lock().unwrap().groups.clear();
    let mut all = rules(&fake);
    all[2] = mock!(Client::describe_accelerator).then_error(|| {
        DescribeAcceleratorError::generic(
            ErrorMetadata::builder().code("AcceleratorNotFoundException").message("Accelerator acc1 not found").build(),
        )
    });
    let ga = traffic(client(&all), &spec(vec![100], Duration::from_secs(10)), None);
    let problems = ga.preflight().await;
    assert_eq!(
        problems[0],
        "us-west-2/accelerator/acc1: no such accelerator (DescribeAccelerator: AcceleratorNotFoundException) — check traffic.accelerator_arn names an accelerator of this account"
    );
    let groups: Vec<&str> = problems[1..].iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        groups,
        [
            "us-west-2/accelerator/acc1/listener/l1/endpoint-group/east1",
            "us-west-2/accelerator/acc1/listener/l1/endpoint-group/west1"
        ]
    );
}

#[tokio::test]
async fn preflight_judges_nothing_when_global_accelerator_cannot_be_reached_or_throttles() {
    // Nothing listens on port 9: every call fails to connect.
    let config = aws_sdk_globalaccelerator::Config::builder()
        .behavior_version(aws_sdk_globalaccelerator::config::BehaviorVersion::latest())
        .region(aws_sdk_globalaccelerator::config::Region::new("us-west-2"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_sdk_globalaccelerator::config::Credentials::new(
            "AKIDMOCK",
            "mock-secret",
            None,
            None,
            "mock",
        ))
        .retry_config(aws_sdk_globalaccelerator::config::retry::RetryConfig::disabled())
        .build();
    let spec = spec(vec![100], Duration::from_secs(10));
    let ga = traffic(Client::from_conf(config), &spec, None);
    assert!(ga.current().await.is_err(), "the API is down");
    assert_eq!(ga.preflight().await, Vec::<String>::new());

    // Throttled: the API said nothing about the groups.
    let fake = accelerator("3");
    let mut all = rules(&fake);
    all[0] = mock!(Client::describe_endpoint_group).then_error(|| {
        DescribeEndpointGroupError::generic(
            ErrorMetadata::builder().code("ThrottlingException").message("Rate exceeded").build(),
        )
    });
    let ga = traffic(client(&all), &spec, None);
    assert_eq!(ga.preflight().await, Vec::<String>::new());
}
