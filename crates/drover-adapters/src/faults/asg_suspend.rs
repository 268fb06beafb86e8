//! `asg-suspend`: the region's Auto Scaling groups (the plan's `autoscaling-group` compute)
//! stop launching, replacing, rebalancing and reacting to alarms and schedules, as in a
//! regional control-plane outage; the instances that run keep running (SuspendProcesses).
//! Undo resumes only the processes the drill suspended: one suspended before stays
//! suspended (ResumeProcesses). Read back with DescribeAutoScalingGroups.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_autoscaling as asg;
use drover_core::error::ProviderError;
use drover_core::fault::{FaultKind, FaultSeen, FaultState, Injector};

use crate::aws::compute::AUTOSCALING;
use crate::aws::{AwsConfig, RegionalClients, describe};

/// The processes suspended: the group can neither add nor replace capacity. `Terminate`,
/// `AddToLoadBalancer` and `InstanceRefresh` are left alone: with no launch they change
/// nothing a drill measures, and a scale-in stays possible.
pub const SUSPENDED: [&str; 6] =
    ["Launch", "HealthCheck", "ReplaceUnhealthy", "AZRebalance", "AlarmNotification", "ScheduledActions"];

/// One region's Auto Scaling groups.
pub struct AsgSuspend {
    pub region: String,
    pub aws_region: String,
    /// The group names (`compute.<name>.regions.<region>.name`).
    pub groups: Vec<String>,
    pub clients: Arc<RegionalClients<asg::Client>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Captured {
    aws_region: String,
    group: String,
    /// The processes of [`SUSPENDED`] the drill suspends: those not suspended before it.
    suspends: Vec<String>,
}

/// Auto Scaling clients per AWS region, from the shared configuration.
pub fn clients(config: Arc<AwsConfig>) -> Arc<RegionalClients<asg::Client>> {
    Arc::new(RegionalClients::new(config, |sdk, region| {
        asg::Client::from_conf(asg::config::Builder::from(sdk).region(region).build())
    }))
}

impl AsgSuspend {
    /// The group's suspended processes now.
    async fn suspended(&self, aws_region: &str, group: &str) -> Result<BTreeSet<String>, ProviderError> {
        let resource = format!("{aws_region}/autoscaling/{group}");
        let out = self
            .clients
            .get(aws_region)
            .await
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(group)
            .send()
            .await
            .map_err(|e| describe(AUTOSCALING, "DescribeAutoScalingGroups", &resource, e))?;
        let found = out.auto_scaling_groups().first().ok_or_else(|| {
            ProviderError::permanent(format!(
                "{resource}: no such Auto Scaling group — check the name in the plan's compute regions"
            ))
        })?;
        Ok(found.suspended_processes().iter().filter_map(|p| p.process_name().map(str::to_owned)).collect())
    }
}

#[async_trait]
impl Injector for AsgSuspend {
    fn kind(&self) -> FaultKind {
        FaultKind::AsgSuspend
    }

    async fn capture(&self) -> Result<FaultState, ProviderError> {
        let mut captured = Vec::new();
        for group in &self.groups {
            let before = self.suspended(&self.aws_region, group).await?;
            let suspends = SUSPENDED.iter().filter(|p| !before.contains(**p)).map(|p| p.to_string()).collect();
            captured.push(Captured { aws_region: self.aws_region.clone(), group: group.clone(), suspends });
        }
        let targets = captured
            .iter()
            .map(|c| format!("{}/autoscaling/{} (to suspend: {})", c.aws_region, c.group, c.suspends.join(", ")))
            .collect();
        Ok(FaultState::new(self.kind(), &self.region, targets, &captured))
    }

    async fn inject(&self, state: &FaultState) -> Result<(), ProviderError> {
        for c in state.read::<Vec<Captured>>(self.kind())? {
            if c.suspends.is_empty() {
                continue;
            }
            self.clients
                .get(&c.aws_region)
                .await
                .suspend_processes()
                .auto_scaling_group_name(&c.group)
                .set_scaling_processes(Some(c.suspends.clone()))
                .send()
                .await
                .map_err(|e| {
                    describe(AUTOSCALING, "SuspendProcesses", &format!("{}/autoscaling/{}", c.aws_region, c.group), e)
                })?;
        }
        Ok(())
    }

    async fn observe(&self, state: &FaultState) -> Result<FaultSeen, ProviderError> {
        let mut running = Vec::new();
        for c in state.read::<Vec<Captured>>(self.kind())? {
            let now = self.suspended(&c.aws_region, &c.group).await?;
            let not: Vec<&str> = SUSPENDED.iter().copied().filter(|p| !now.contains(*p)).collect();
            if !not.is_empty() {
                running.push(format!("{}: {} not suspended", c.group, not.join(", ")));
            }
        }
        Ok(match running.is_empty() {
            true => FaultSeen { in_place: true, detail: format!("suspended: {}", SUSPENDED.join(", ")) },
            false => FaultSeen { in_place: false, detail: running.join("; ") },
        })
    }

    /// Resumes what the drill suspended, and only that (an empty list to ResumeProcesses
    /// would resume every process: it is never sent).
    async fn undo(&self, state: &FaultState) -> Result<String, ProviderError> {
        let mut done = Vec::new();
        for c in state.read::<Vec<Captured>>(self.kind())? {
            if c.suspends.is_empty() {
                done.push(format!("{}: nothing the drill suspended", c.group));
                continue;
            }
            self.clients
                .get(&c.aws_region)
                .await
                .resume_processes()
                .auto_scaling_group_name(&c.group)
                .set_scaling_processes(Some(c.suspends.clone()))
                .send()
                .await
                .map_err(|e| {
                    describe(AUTOSCALING, "ResumeProcesses", &format!("{}/autoscaling/{}", c.aws_region, c.group), e)
                })?;
            done.push(format!("{}: resumed {}", c.group, c.suspends.join(", ")));
        }
        Ok(done.join("; "))
    }
}
