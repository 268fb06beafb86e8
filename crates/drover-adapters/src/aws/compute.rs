//! Compute that follows the primary: EKS managed node groups (UpdateNodegroupConfig,
//! then ACTIVE) and EC2 Auto Scaling groups (UpdateAutoScalingGroup, then InService),
//! each in the AWS region of its plan region.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_autoscaling as asg;
use aws_sdk_eks as eks;
use drover_core::duration::format_duration;
use drover_core::error::ProviderError;
use drover_core::plan::{ComputeTarget, Plan};
use drover_core::world::{Answer, Capacity, Compute, Preflight, Size, Units, WHOLE};

use super::{AwsConfig, RegionalClients, Service, before, describe};

const DEFAULT_POLL: Duration = Duration::from_secs(10);

const EKS: Service = Service { name: "EKS", iam: "eks", hint: eks_hint };
pub(crate) const AUTOSCALING: Service = Service { name: "Auto Scaling", iam: "autoscaling", hint: asg_hint };

fn eks_hint(_operation: &str, code: &str) -> Option<(String, bool)> {
    match code {
        "ResourceNotFoundException" => {
            Some(("check the cluster and nodegroup names in the plan's compute regions".into(), false))
        }
        // Another update of the node group is still running: waiting is the fix.
        "ResourceInUseException" => {
            Some(("another update of this node group is in progress; the step retries".into(), true))
        }
        "InvalidParameterException" => {
            Some(("the sizes do not fit the node group (max size is capped by the account's limits)".into(), false))
        }
        _ => None,
    }
}

fn asg_hint(_operation: &str, code: &str) -> Option<(String, bool)> {
    match code {
        "ScalingActivityInProgress" | "ResourceContention" => {
            Some(("the group is busy with another scaling activity; the step retries".into(), true))
        }
        "ValidationError" => Some(("check the Auto Scaling group name in the plan's compute regions".into(), false)),
        _ => None,
    }
}

/// One resource in one region, as the adapter needs it.
struct Target {
    aws_region: String,
    what: ComputeTarget,
    ready_timeout: Duration,
}

/// The plan's compute resources in every region, through the AWS SDK.
pub struct AwsCompute {
    /// (resource, plan region) → what it is.
    targets: BTreeMap<(String, String), Target>,
    poll: Duration,
    eks: RegionalClients<eks::Client>,
    asg: RegionalClients<asg::Client>,
}

impl AwsCompute {
    pub fn new(plan: &Plan, config: Arc<AwsConfig>) -> AwsCompute {
        let mut targets = BTreeMap::new();
        for (name, spec) in &plan.compute {
            for (region, what) in &spec.targets {
                if matches!(what, ComputeTarget::Kubernetes(_)) {
                    continue;
                }
                let target = Target {
                    aws_region: plan.aws_region(region).to_owned(),
                    what: what.clone(),
                    ready_timeout: spec.ready_timeout,
                };
                targets.insert((name.clone(), region.clone()), target);
            }
        }
        let eks = RegionalClients::new(config.clone(), |sdk, region| {
            eks::Client::from_conf(eks::config::Builder::from(sdk).region(region).build())
        });
        let asg = RegionalClients::new(config, |sdk, region| {
            asg::Client::from_conf(asg::config::Builder::from(sdk).region(region).build())
        });
        AwsCompute { targets, poll: DEFAULT_POLL, eks, asg }
    }

    /// How often a resize is looked at while it settles (tests use less).
    pub fn poll_every(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    fn target(&self, resource: &str, region: &str) -> Result<&Target, ProviderError> {
        self.targets.get(&(resource.to_owned(), region.to_owned())).ok_or_else(|| {
            ProviderError::permanent(format!("compute {resource}: no target for region {region} in the plan"))
        })
    }

    async fn eks(&self, aws_region: &str) -> eks::Client {
        self.eks.get(aws_region).await
    }

    async fn asg(&self, aws_region: &str) -> asg::Client {
        self.asg.get(aws_region).await
    }

    /// DescribeNodegroup, as the SDK answers it (status reads and preflight judge it differently).
    async fn describe_nodegroup(
        &self,
        t: &Target,
        cluster: &str,
        nodegroup: &str,
    ) -> Result<
        eks::operation::describe_nodegroup::DescribeNodegroupOutput,
        eks::error::SdkError<eks::operation::describe_nodegroup::DescribeNodegroupError>,
    > {
        self.eks(&t.aws_region).await.describe_nodegroup().cluster_name(cluster).nodegroup_name(nodegroup).send().await
    }

    /// A node group's sizes and status (`ACTIVE`, `UPDATING`, ...).
    async fn nodegroup(&self, t: &Target, cluster: &str, nodegroup: &str) -> Result<(Capacity, String), ProviderError> {
        let resource = format!("{}/eks/{cluster}/{nodegroup}", t.aws_region);
        let out = self
            .describe_nodegroup(t, cluster, nodegroup)
            .await
            .map_err(|e| describe(EKS, "DescribeNodegroup", &resource, e))?;
        let group = out.nodegroup().ok_or_else(|| ProviderError::permanent(format!("{resource}: no node group")))?;
        let scaling = group.scaling_config();
        let size = |v: Option<i32>| v.unwrap_or(0).max(0) as u32;
        let desired = size(scaling.and_then(|s| s.desired_size()));
        let status = group.status().map_or("UNKNOWN".to_owned(), |s| s.as_str().to_owned());
        let capacity = Capacity {
            desired,
            min: size(scaling.and_then(|s| s.min_size())),
            max: size(scaling.and_then(|s| s.max_size())),
            // EKS reports no count of ready nodes: an ACTIVE group has settled at its desired size.
            ready: if status == "ACTIVE" { desired } else { 0 },
        };
        Ok((capacity, status))
    }

    /// A group's sizes, and its instances that are not InService and healthy (id and state).
    async fn group(&self, t: &Target, name: &str) -> Result<(Capacity, Vec<String>), ProviderError> {
        let resource = format!("{}/autoscaling/{name}", t.aws_region);
        let out = self
            .asg(&t.aws_region)
            .await
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| describe(AUTOSCALING, "DescribeAutoScalingGroups", &resource, e))?;
        let group = out.auto_scaling_groups().first().ok_or_else(|| {
            ProviderError::permanent(format!(
                "{resource}: no such Auto Scaling group — check the name in the plan's compute regions"
            ))
        })?;
        let serving = |i: &&asg::types::Instance| {
            i.lifecycle_state().is_some_and(|s| s.as_str() == "InService") && i.health_status() == Some("Healthy")
        };
        let ready = group.instances().iter().filter(serving).count() as u32;
        let not_ready = group
            .instances()
            .iter()
            .filter(|i| !serving(i))
            .map(|i| {
                let state = i.lifecycle_state().map_or("unknown", |s| s.as_str());
                format!("{} {state}", i.instance_id().unwrap_or("?"))
            })
            .collect();
        let size = |v: Option<i32>| v.unwrap_or(0).max(0) as u32;
        let capacity = Capacity {
            desired: size(group.desired_capacity()),
            min: size(group.min_size()),
            max: size(group.max_size()),
            ready,
        };
        Ok((capacity, not_ready))
    }

    /// Looks until `settled` says the resize is done, or the target's ready_timeout passes.
    async fn wait<F, Fut>(&self, t: &Target, what: &str, mut settled: F) -> Result<(), ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Result<(), String>, ProviderError>>,
    {
        let deadline = Instant::now() + t.ready_timeout;
        loop {
            // A look still unanswered at the deadline ends the wait, as a late answer would.
            let Some(look) = before(deadline, settled()).await else {
                return Err(ProviderError::permanent(format!(
                    "{what}: not ready within ready_timeout {}: the last look got no answer from the API in time — see the AWS console's activity for it, then resume",
                    format_duration(t.ready_timeout)
                )));
            };
            let why = match look {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(why)) => why,
                // Throttling while waiting is no reason to give up the wait.
                Err(e) if e.retryable() => e.message,
                Err(e) => return Err(e),
            };
            if Instant::now() >= deadline {
                return Err(ProviderError::permanent(format!(
                    "{what}: not ready within ready_timeout {}: {why} — see the AWS console's activity for it, then resume",
                    format_duration(t.ready_timeout)
                )));
            }
            tokio::time::sleep(self.poll.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }
}

/// Whether an AWS error says the thing asked about does not exist (a preflight problem),
/// rather than that the API could not answer or refused the caller (observation's to judge).
fn not_found<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ResourceNotFoundException")
}

impl AwsCompute {
    /// The node group must exist in its cluster; the problem names which plan field is wrong.
    async fn preflight_nodegroup(
        &self,
        resource: &str,
        region: &str,
        t: &Target,
        cluster: &str,
        nodegroup: &str,
    ) -> Preflight {
        let name = format!("{}/eks/{cluster}/{nodegroup}", t.aws_region);
        let e = match self.describe_nodegroup(t, cluster, nodegroup).await {
            Ok(_) => return Vec::new(),
            Err(e) => e,
        };
        if !e.as_service_error().is_some_and(not_found) {
            tracing::debug!(
                "preflight of {name}: not judged: {}",
                describe(EKS, "DescribeNodegroup", &name, e).message
            );
            return Vec::new();
        }
        let message = aws_smithy_types::error::metadata::ProvideErrorMetadata::message(&e).unwrap_or("not found");
        // EKS says which one it did not find: "No cluster found for name: X." or "No node group found ...".
        let fields = format!("compute.{resource}.regions.{region}");
        let (what, field) = if message.contains("cluster") {
            (format!("no EKS cluster '{cluster}'"), format!("{fields}.cluster"))
        } else {
            (format!("no node group '{nodegroup}' in EKS cluster '{cluster}'"), format!("{fields}.nodegroup"))
        };
        vec![format!(
            "{name}: {what} in AWS region {} (DescribeNodegroup: {message}) — check {field}, and regions.{region}.aws_region",
            t.aws_region
        )]
    }

    /// The Auto Scaling group must exist: DescribeAutoScalingGroups answers an unknown name
    /// with no group, not an error.
    async fn preflight_group(&self, resource: &str, region: &str, t: &Target, group: &str) -> Preflight {
        let name = format!("{}/autoscaling/{group}", t.aws_region);
        match self.asg(&t.aws_region).await.describe_auto_scaling_groups().auto_scaling_group_names(group).send().await
        {
            Ok(out) if out.auto_scaling_groups().is_empty() => vec![format!(
                "{name}: no Auto Scaling group '{group}' in AWS region {} — check compute.{resource}.regions.{region}.name, and regions.{region}.aws_region",
                t.aws_region
            )],
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::debug!(
                    "preflight of {name}: not judged: {}",
                    describe(AUTOSCALING, "DescribeAutoScalingGroups", &name, e).message
                );
                Vec::new()
            }
        }
    }
}

impl AwsCompute {
    /// A node group launches what EKS manages for it: ready when it is ACTIVE without health issues.
    async fn nodegroup_launches(&self, t: &Target, cluster: &str, nodegroup: &str) -> Answer {
        let name = format!("{}/eks/{cluster}/{nodegroup}", t.aws_region);
        let out = match self.describe_nodegroup(t, cluster, nodegroup).await {
            Ok(out) => out,
            Err(e) => return Answer::CannotTell(describe(EKS, "DescribeNodegroup", &name, e).message),
        };
        let Some(group) = out.nodegroup() else {
            return Answer::CannotTell(format!("{name}: EKS returned no node group"));
        };
        let status = group.status().map_or("UNKNOWN", |s| s.as_str());
        let issues: Vec<String> = group
            .health()
            .map(|h| h.issues())
            .unwrap_or_default()
            .iter()
            .map(|i| {
                let code = i.code().map_or("unknown", |c| c.as_str());
                format!("{code}: {}", i.message().unwrap_or_default())
            })
            .collect();
        let template = group
            .launch_template()
            .and_then(|l| l.name().or(l.id()))
            .map_or_else(|| "its image managed by EKS".to_owned(), |t| format!("launch template {t}"));
        match (status, issues.is_empty()) {
            ("ACTIVE", true) => Answer::Yes(format!("{name}: node group ACTIVE, no health issues ({template})")),
            _ if !issues.is_empty() => Answer::No(format!("{name}: node group {status}: {}", issues.join("; "))),
            ("CREATE_FAILED" | "DEGRADED" | "DELETING" | "DELETE_FAILED", _) => {
                Answer::No(format!("{name}: node group {status}"))
            }
            _ => Answer::CannotTell(format!("{name}: node group {status}: not yet settled")),
        }
    }

    /// An Auto Scaling group launches from its launch configuration (which must exist) or its
    /// launch template (an EC2 resource drover has no client for: it cannot tell).
    async fn group_launches(&self, t: &Target, name: &str) -> Answer {
        let resource = format!("{}/autoscaling/{name}", t.aws_region);
        let client = self.asg(&t.aws_region).await;
        let out = match client.describe_auto_scaling_groups().auto_scaling_group_names(name).send().await {
            Ok(out) => out,
            Err(e) => {
                return Answer::CannotTell(describe(AUTOSCALING, "DescribeAutoScalingGroups", &resource, e).message);
            }
        };
        let Some(group) = out.auto_scaling_groups().first() else {
            return Answer::No(format!("{resource}: no such Auto Scaling group"));
        };
        if let Some(config) = group.launch_configuration_name() {
            let found = client.describe_launch_configurations().launch_configuration_names(config).send().await;
            return match found {
                Ok(out) => match out.launch_configurations().first() {
                    Some(lc) => Answer::Yes(format!(
                        "{resource}: launch configuration {config} exists (image {}; drover reads no EC2 image, so not whether the image does)",
                        lc.image_id().unwrap_or("unknown")
                    )),
                    None => Answer::No(format!(
                        "{resource}: its launch configuration {config} does not exist: the group cannot launch instances"
                    )),
                },
                Err(e) => {
                    Answer::CannotTell(describe(AUTOSCALING, "DescribeLaunchConfigurations", &resource, e).message)
                }
            };
        }
        let template = group
            .launch_template()
            .or_else(|| {
                group.mixed_instances_policy().and_then(|m| m.launch_template()?.launch_template_specification())
            })
            .and_then(|l| l.launch_template_name().or(l.launch_template_id()));
        match template {
            Some(template) => Answer::CannotTell(format!(
                "{resource}: launches from launch template {template}, an EC2 resource drover does not read"
            )),
            None => Answer::No(format!("{resource}: neither a launch configuration nor a launch template")),
        }
    }
}

#[async_trait]
impl Compute for AwsCompute {
    async fn can_launch(&self, resource: &str, region: &str) -> Answer {
        let t = match self.target(resource, region) {
            Ok(t) => t,
            Err(e) => return Answer::CannotTell(e.message),
        };
        match &t.what {
            ComputeTarget::EksNodegroup { cluster, nodegroup } => self.nodegroup_launches(t, cluster, nodegroup).await,
            ComputeTarget::AutoScalingGroup { name } => self.group_launches(t, name).await,
            ComputeTarget::Kubernetes(_) => Answer::CannotTell(format!("compute {resource}: not an AWS resource")),
        }
    }

    async fn preflight(&self, resource: &str, region: &str) -> Preflight {
        let Ok(t) = self.target(resource, region) else { return Vec::new() };
        match &t.what {
            ComputeTarget::EksNodegroup { cluster, nodegroup } => {
                self.preflight_nodegroup(resource, region, t, cluster, nodegroup).await
            }
            ComputeTarget::AutoScalingGroup { name } => self.preflight_group(resource, region, t, name).await,
            ComputeTarget::Kubernetes(_) => Vec::new(),
        }
    }

    async fn capacity(&self, resource: &str, region: &str) -> Result<Units, ProviderError> {
        let t = self.target(resource, region)?;
        let capacity = match &t.what {
            ComputeTarget::EksNodegroup { cluster, nodegroup } => self.nodegroup(t, cluster, nodegroup).await?.0,
            ComputeTarget::AutoScalingGroup { name } => self.group(t, name).await?.0,
            ComputeTarget::Kubernetes(_) => {
                return Err(ProviderError::permanent(format!("compute {resource}: not an AWS resource")));
            }
        };
        Ok(Units::from([(WHOLE.to_owned(), capacity)]))
    }

    async fn resize(&self, resource: &str, region: &str, sizes: &BTreeMap<String, Size>) -> Result<(), ProviderError> {
        let t = self.target(resource, region)?;
        // A node group or an Auto Scaling group is one unit: nothing named, nothing to do.
        let Some(&size) = sizes.get(WHOLE) else { return Ok(()) };
        let as_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        match &t.what {
            ComputeTarget::EksNodegroup { cluster, nodegroup } => {
                let name = format!("{}/eks/{cluster}/{nodegroup}", t.aws_region);
                let (now, _) = self.nodegroup(t, cluster, nodegroup).await?;
                if Size::of(&now) != size {
                    let scaling = eks::types::NodegroupScalingConfig::builder()
                        .desired_size(as_i32(size.desired))
                        .min_size(as_i32(size.min))
                        .max_size(as_i32(size.max))
                        .build();
                    self.eks(&t.aws_region)
                        .await
                        .update_nodegroup_config()
                        .cluster_name(cluster)
                        .nodegroup_name(nodegroup)
                        .scaling_config(scaling)
                        .send()
                        .await
                        .map_err(|e| describe(EKS, "UpdateNodegroupConfig", &name, e))?;
                }
                self.wait(t, &name, || async {
                    let (now, status) = self.nodegroup(t, cluster, nodegroup).await?;
                    Ok(if status == "ACTIVE" && now.desired >= size.desired {
                        Ok(())
                    } else {
                        Err(format!("status {status}, desired size {} of {}", now.desired, size.desired))
                    })
                })
                .await
            }
            ComputeTarget::AutoScalingGroup { name } => {
                let resource = format!("{}/autoscaling/{name}", t.aws_region);
                let (now, _) = self.group(t, name).await?;
                if Size::of(&now) != size {
                    self.asg(&t.aws_region)
                        .await
                        .update_auto_scaling_group()
                        .auto_scaling_group_name(name)
                        .min_size(as_i32(size.min))
                        .max_size(as_i32(size.max))
                        .desired_capacity(as_i32(size.desired))
                        .send()
                        .await
                        .map_err(|e| describe(AUTOSCALING, "UpdateAutoScalingGroup", &resource, e))?;
                }
                self.wait(t, &resource, || async {
                    let (now, not_ready) = self.group(t, name).await?;
                    Ok(if now.ready >= size.desired {
                        Ok(())
                    } else if not_ready.is_empty() {
                        Err(format!("{} of {} instances InService; the rest not launched yet", now.ready, size.desired))
                    } else {
                        Err(format!(
                            "{} of {} instances InService; not yet: {}",
                            now.ready,
                            size.desired,
                            not_ready.join(", ")
                        ))
                    })
                })
                .await
            }
            ComputeTarget::Kubernetes(_) => {
                Err(ProviderError::permanent(format!("compute {resource}: not an AWS resource")))
            }
        }
    }
}
