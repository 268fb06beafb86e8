//! AWS Global Accelerator through the AWS SDK for Rust: traffic moved between
//! regions with the endpoint groups' traffic dials, and endpoint weights set as
//! the plan says.
//!
//! Global Accelerator sends each client to the nearest endpoint group; a group's
//! dial is the share of the traffic that reaches it which it keeps, the rest going
//! to the other groups. So a switch raises the target's dial to 100 and lowers the
//! others' to 0 — through `stages`, each the percent of the other groups' traffic
//! moved — and the target alone takes the traffic.
//!
//! Global Accelerator has no conditional writes. The epoch is a tag on the
//! accelerator (`drover:epoch`): a switch reads it and refuses when it moved, then
//! updates the dials, then writes the new epoch; it reads the tag again before each
//! stage. That narrows a race between two runs but cannot close it: the journal's
//! epoch compare-and-swap is what lets only one run at a time switch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_globalaccelerator::Client;
use aws_sdk_globalaccelerator::types::{AcceleratorStatus, EndpointConfiguration, EndpointDescription, Tag};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use drover_core::duration::format_duration;
use drover_core::error::ProviderError;
use drover_core::plan::GlobalAcceleratorSpec;
use drover_core::run::Epoch;
use drover_core::world::{Preflight, Traffic, TrafficState};
use tokio::sync::OnceCell;

use super::stages::{StageGate, hold_after_stage, stages_ahead};
use super::{AwsConfig, Service, before, build_error, describe};

/// The accelerator tag that holds the epoch of the run that last switched traffic.
pub const EPOCH_TAG: &str = "drover:epoch";

/// Global Accelerator's API is served from us-west-2 only, whatever region its endpoints are in.
pub const API_REGION: &str = "us-west-2";

/// How often the accelerator is asked whether a change is DEPLOYED.
const DEFAULT_POLL: Duration = Duration::from_secs(5);

/// The SDK itself, for tests and tools.
pub use aws_sdk_globalaccelerator as sdk;

/// A Global Accelerator client (us-west-2), built from the standard AWS configuration on first use.
pub struct GlobalAcceleratorApi {
    config: Arc<AwsConfig>,
    client: OnceCell<Client>,
}

impl GlobalAcceleratorApi {
    pub fn new(config: Arc<AwsConfig>) -> Arc<GlobalAcceleratorApi> {
        Arc::new(GlobalAcceleratorApi { config, client: OnceCell::new() })
    }

    /// A client built elsewhere (tests).
    pub fn with_client(client: Client) -> Arc<GlobalAcceleratorApi> {
        Arc::new(GlobalAcceleratorApi { config: AwsConfig::from_env(), client: OnceCell::new_with(Some(client)) })
    }

    async fn get(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let config = aws_sdk_globalaccelerator::config::Builder::from(self.config.sdk().await)
                    .region(aws_sdk_globalaccelerator::config::Region::new(API_REGION))
                    .build();
                Client::from_conf(config)
            })
            .await
    }
}

/// Points a Global Accelerator's traffic at a region's endpoint group.
pub struct GlobalAcceleratorTraffic {
    api: Arc<GlobalAcceleratorApi>,
    spec: GlobalAcceleratorSpec,
    gate: Option<Arc<dyn StageGate>>,
    poll: Duration,
}

/// One region's endpoint group as Global Accelerator holds it.
#[derive(Clone, Debug)]
struct GroupState {
    dial: f32,
    endpoints: Vec<EndpointDescription>,
}

impl GlobalAcceleratorTraffic {
    /// `gate` holds staged shifts between stages (None: no pause checks).
    pub fn new(spec: &GlobalAcceleratorSpec, api: Arc<GlobalAcceleratorApi>, gate: Option<Arc<dyn StageGate>>) -> Self {
        GlobalAcceleratorTraffic { api, spec: spec.clone(), gate, poll: DEFAULT_POLL }
    }

    /// How often DescribeAccelerator is asked while a change is IN_PROGRESS (tests use less).
    pub fn poll_every(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    fn accelerator(&self) -> String {
        resource(&self.spec.accelerator_arn)
    }

    /// The epoch in the accelerator's tag; 0 when there is none yet.
    async fn epoch_tag(&self) -> Result<Epoch, ProviderError> {
        let client = self.api.get().await;
        let out = client
            .list_tags_for_resource()
            .resource_arn(&self.spec.accelerator_arn)
            .send()
            .await
            .map_err(|e| describe(GLOBAL_ACCELERATOR, "ListTagsForResource", &self.accelerator(), e))?;
        match out.tags().iter().find(|t| t.key() == EPOCH_TAG) {
            None => Ok(0),
            Some(tag) => tag.value().trim().parse().map_err(|_| {
                ProviderError::permanent(format!(
                    "{}: the {EPOCH_TAG} tag holds \"{}\", not an epoch number — it was not written by drover; correct it or remove it",
                    self.accelerator(),
                    tag.value()
                ))
            }),
        }
    }

    /// The tag's epoch; refuses, with nothing changed, when it is none of `allowed`.
    async fn check_fence(&self, allowed: &[Epoch], observed: Epoch) -> Result<Epoch, ProviderError> {
        let now = self.epoch_tag().await?;
        if allowed.contains(&now) {
            return Ok(now);
        }
        Err(ProviderError::stale(format!(
            "{}: switch refused: the {EPOCH_TAG} tag holds {now}, not {observed} (a newer run has switched traffic); abort this run",
            self.accelerator()
        )))
    }

    async fn write_epoch(&self, epoch: Epoch) -> Result<(), ProviderError> {
        let client = self.api.get().await;
        let tag = Tag::builder()
            .key(EPOCH_TAG)
            .value(epoch.to_string())
            .build()
            .map_err(|e| build_error(GLOBAL_ACCELERATOR, e))?;
        client
            .tag_resource()
            .resource_arn(&self.spec.accelerator_arn)
            .tags(tag)
            .send()
            .await
            .map_err(|e| describe(GLOBAL_ACCELERATOR, "TagResource", &self.accelerator(), e))?;
        Ok(())
    }

    /// Each region's endpoint group: its dial and endpoints.
    async fn groups(&self) -> Result<BTreeMap<String, GroupState>, ProviderError> {
        let client = self.api.get().await;
        let mut groups = BTreeMap::new();
        for (region, group) in &self.spec.endpoint_groups {
            let out = client
                .describe_endpoint_group()
                .endpoint_group_arn(&group.arn)
                .send()
                .await
                .map_err(|e| describe(GLOBAL_ACCELERATOR, "DescribeEndpointGroup", &resource(&group.arn), e))?;
            let found = out.endpoint_group();
            let state = GroupState {
                // Global Accelerator's default dial is 100.
                dial: found.and_then(|g| g.traffic_dial_percentage()).unwrap_or(100.0),
                endpoints: found.map(|g| g.endpoint_descriptions().to_vec()).unwrap_or_default(),
            };
            groups.insert(region.clone(), state);
        }
        Ok(groups)
    }

    /// Sets a region's dial, and its endpoints' weights when the plan lists them.
    /// UpdateEndpointGroup replaces the whole endpoint list, so endpoints the plan
    /// does not name are sent back as they are, and each keeps its client IP preservation.
    async fn set_group(&self, region: &str, dial: u8, now: &GroupState) -> Result<(), ProviderError> {
        let group = &self.spec.endpoint_groups[region];
        let mut configurations = Vec::new();
        if !group.endpoints.is_empty() {
            let preserve = |id: &str| {
                now.endpoints
                    .iter()
                    .find(|e| e.endpoint_id() == Some(id))
                    .and_then(|e| e.client_ip_preservation_enabled())
            };
            for (id, weight) in &group.endpoints {
                configurations.push(
                    EndpointConfiguration::builder()
                        .endpoint_id(id)
                        .weight(i32::from(*weight))
                        .set_client_ip_preservation_enabled(preserve(id))
                        .build(),
                );
            }
            for kept in
                now.endpoints.iter().filter(|e| e.endpoint_id().is_some_and(|id| !group.endpoints.contains_key(id)))
            {
                configurations.push(
                    EndpointConfiguration::builder()
                        .set_endpoint_id(kept.endpoint_id().map(str::to_owned))
                        .set_weight(kept.weight())
                        .set_client_ip_preservation_enabled(kept.client_ip_preservation_enabled())
                        .build(),
                );
            }
        }
        let client = self.api.get().await;
        client
            .update_endpoint_group()
            .endpoint_group_arn(&group.arn)
            .traffic_dial_percentage(f32::from(dial))
            .set_endpoint_configurations((!configurations.is_empty()).then_some(configurations))
            .send()
            .await
            .map_err(|e| describe(GLOBAL_ACCELERATOR, "UpdateEndpointGroup", &resource(&group.arn), e))?;
        Ok(())
    }

    /// Waits until the accelerator is DEPLOYED again (or the plan's change timeout passes).
    async fn wait_deployed(&self) -> Result<(), ProviderError> {
        let deadline = Instant::now() + self.spec.change_timeout;
        loop {
            // A look still unanswered at the deadline ends the wait, as a late answer would.
            let Some(look) = before(deadline, self.describe_accelerator()).await else {
                return Err(ProviderError::transient(format!(
                    "{}: DescribeAccelerator got no answer before traffic.change_timeout {} ran out — the step retries; check the network to Global Accelerator's API",
                    self.accelerator(),
                    format_duration(self.spec.change_timeout)
                )));
            };
            let (_, status) = look?;
            if status == Some(AcceleratorStatus::Deployed) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::transient(format!(
                    "{}: still {} after {} — Global Accelerator has not deployed the change yet; the step retries, or raise traffic.change_timeout",
                    self.accelerator(),
                    status.as_ref().map_or("without a status", AcceleratorStatus::as_str),
                    format_duration(self.spec.change_timeout)
                )));
            }
            tokio::time::sleep(self.poll.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// What clients are sent to (the static addresses, then the DNS names) and the accelerator's status.
    async fn describe_accelerator(&self) -> Result<(Vec<String>, Option<AcceleratorStatus>), ProviderError> {
        let client = self.api.get().await;
        let out = client
            .describe_accelerator()
            .accelerator_arn(&self.spec.accelerator_arn)
            .send()
            .await
            .map_err(|e| describe(GLOBAL_ACCELERATOR, "DescribeAccelerator", &self.accelerator(), e))?;
        let Some(accelerator) = out.accelerator() else { return Ok((Vec::new(), None)) };
        let mut addresses: Vec<String> =
            accelerator.ip_sets().iter().flat_map(|s| s.ip_addresses().iter().cloned()).collect();
        addresses.extend(accelerator.dns_name().map(str::to_owned));
        addresses.extend(accelerator.dual_stack_dns_name().map(str::to_owned));
        Ok((addresses, accelerator.status().cloned()))
    }
}

#[async_trait]
impl Traffic for GlobalAcceleratorTraffic {
    /// The accelerator and each region's endpoint group (under its listener) must exist: a
    /// switch tags the one and sets the others' dials, and a missing one would fail the
    /// switch after the primary was fenced and the standby promoted. Only Global
    /// Accelerator's "not found" (or an answer without the thing) is a problem; an API
    /// that cannot be reached, or any other error, is observation's to judge.
    async fn preflight(&self) -> Preflight {
        let client = self.api.get().await;
        let mut problems = Vec::new();
        let accelerator = client.describe_accelerator().accelerator_arn(&self.spec.accelerator_arn).send().await;
        let cause = match accelerator {
            Ok(out) if out.accelerator().is_some() => None,
            Ok(_) => Some("DescribeAccelerator returned no accelerator".to_owned()),
            Err(e) if e.code() == Some("AcceleratorNotFoundException") => {
                Some("DescribeAccelerator: AcceleratorNotFoundException".to_owned())
            }
            Err(e) => {
                let why = describe(GLOBAL_ACCELERATOR, "DescribeAccelerator", &self.accelerator(), e).message;
                tracing::debug!("preflight of {}: not judged: {why}", self.accelerator());
                None
            }
        };
        if let Some(cause) = cause {
            problems.push(format!(
                "{}: no such accelerator ({cause}) — check traffic.accelerator_arn names an accelerator of this account",
                self.accelerator()
            ));
        }
        for (region, group) in &self.spec.endpoint_groups {
            let out = client.describe_endpoint_group().endpoint_group_arn(&group.arn).send().await;
            let cause = match out {
                Ok(out) if out.endpoint_group().is_some() => None,
                Ok(_) => Some("DescribeEndpointGroup returned no endpoint group".to_owned()),
                Err(e) if e.code() == Some("EndpointGroupNotFoundException") => {
                    Some("DescribeEndpointGroup: EndpointGroupNotFoundException".to_owned())
                }
                Err(e) => {
                    let why = describe(GLOBAL_ACCELERATOR, "DescribeEndpointGroup", &resource(&group.arn), e).message;
                    tracing::debug!("preflight of {}: not judged: {why}", resource(&group.arn));
                    None
                }
            };
            if let Some(cause) = cause {
                problems.push(format!(
                    "{}: no such endpoint group ({cause}) — check traffic.endpoint_groups.{region}.arn names an endpoint group of the accelerator's listener",
                    resource(&group.arn)
                ));
            }
        }
        problems
    }

    /// The region is the one group whose dial lets traffic through while every
    /// other group's is 0; with traffic split (a shift part way, or an
    /// accelerator serving every region) no region holds it.
    async fn current(&self) -> Result<TrafficState, ProviderError> {
        let (groups, (mut addresses, _), epoch) =
            tokio::try_join!(self.groups(), self.describe_accelerator(), self.epoch_tag())?;
        let open: Vec<&String> = groups.iter().filter(|(_, g)| g.dial > 0.0).map(|(r, _)| r).collect();
        let region = match open.as_slice() {
            [one] => Some((*one).clone()),
            _ => None,
        };
        if region.is_none() {
            addresses.extend(groups.iter().map(|(r, g)| format!("{r} dial {}%", g.dial)));
        }
        Ok(TrafficState { region, addresses, epoch })
    }

    /// Safe to repeat: when the tag already holds `new_epoch` (an earlier attempt of
    /// this run got through), the shift goes on from the dials as they are.
    async fn switch(&self, region: &str, observed_epoch: Epoch, new_epoch: Epoch) -> Result<(), ProviderError> {
        if !self.spec.endpoint_groups.contains_key(region) {
            return Err(ProviderError::permanent(format!(
                "{}: no endpoint group for region '{region}' in traffic.endpoint_groups — add it to the plan",
                self.accelerator()
            )));
        }
        let tagged = self.check_fence(&[observed_epoch, new_epoch], observed_epoch).await?;
        let groups = self.groups().await?;
        // How much of the other groups' traffic the target already took: none until its dial is full.
        let others_max = groups.iter().filter(|(r, _)| *r != region).map(|(_, g)| g.dial).fold(0.0f32, f32::max);
        let share = match groups.get(region) {
            Some(g) if g.dial >= 100.0 => (100.0 - others_max).round() as i64,
            _ => 0,
        };
        let ahead = stages_ahead(&self.spec.stages, share);
        let mut written = tagged == new_epoch;
        for (i, &percent) in ahead.iter().enumerate() {
            if i > 0 {
                self.check_fence(&[new_epoch], observed_epoch).await?;
            }
            // The target opens first, so no moment has every dial closed.
            if i == 0 {
                self.set_group(region, 100, &groups[region]).await?;
            }
            for (other, now) in groups.iter().filter(|(r, _)| *r != region) {
                self.set_group(other, 100 - percent, now).await?;
            }
            self.wait_deployed().await?;
            if !written {
                self.write_epoch(new_epoch).await?;
                written = true;
            }
            if percent == 100 {
                break;
            }
            let what = format!("global-accelerator {}", self.accelerator());
            let stays = "the dials stay where they are";
            let pause = self.spec.stage_pause;
            hold_after_stage(self.gate.as_ref(), &what, stays, region, pause, (i, percent, ahead.len())).await?;
        }
        Ok(())
    }
}

/// `accelerator/<id>/...`: the ARN's resource part, as messages name it, after the API's region.
fn resource(arn: &str) -> String {
    let part = arn.splitn(6, ':').nth(5).unwrap_or(arn);
    format!("{API_REGION}/{part}")
}

const GLOBAL_ACCELERATOR: Service = Service { name: "Global Accelerator", iam: "globalaccelerator", hint };

/// Global Accelerator's own codes; throttling and access are `aws::describe`'s.
fn hint(_operation: &str, code: &str) -> Option<(String, bool)> {
    Some(match code {
        "InternalServiceErrorException" | "TransactionInProgressException" => {
            ("Global Accelerator is busy with another change or failed inside; the step retries".into(), true)
        }
        "AcceleratorNotFoundException" => {
            ("check traffic.accelerator_arn names an accelerator of this account".into(), false)
        }
        "EndpointGroupNotFoundException" => (
            "check traffic.endpoint_groups names endpoint groups of the accelerator (their ARNs)".into(),
            false,
        ),
        "InvalidArgumentException" => (
            "the plan's endpoint groups do not fit the accelerator; check the endpoint ids and weights in traffic.endpoint_groups".into(),
            false,
        ),
        "LimitExceededException" => {
            ("a Global Accelerator limit of the account is reached; raise it or remove endpoints".into(), false)
        }
        _ => ("check the plan's traffic section against the accelerator".into(), false),
    })
}

#[cfg(test)]
mod tests {
    use super::resource;

    #[test]
    fn messages_name_the_arns_resource_part() {
        assert_eq!(
            resource("arn:aws:globalaccelerator::123456789012:accelerator/a1/listener/l1/endpoint-group/g1"),
            "us-west-2/accelerator/a1/listener/l1/endpoint-group/g1"
        );
    }
}
