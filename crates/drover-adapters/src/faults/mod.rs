//! Drills' fault injectors over real systems, one module per injector, and the one place a
//! fault kind and a plan become an injector ([`injector_for`]); the cargo features (`aws`,
//! `kubernetes`) that leave kinds out of a build are decided here. The kinds, what they
//! need in the plan and the trait they implement are the core's (`drover_core::fault`).
//! The lab's kinds (blackout, kill, pause, partition, loss) are built by `drover-lab`
//! (`drover_lab::injector`), which sits above this crate.

#[cfg(feature = "aws")]
pub mod asg_suspend;
#[cfg(feature = "aws")]
pub mod fis;
#[cfg(feature = "aws")]
pub mod rds;
#[cfg(feature = "aws")]
pub mod route53_health_check;

use std::collections::BTreeMap;
#[cfg(any(feature = "aws", feature = "kubernetes"))]
use std::sync::Arc;

use drover_core::fault::{FaultKind, Injector, NoFault};
use drover_core::plan::Plan;

use crate::factory::BuildError;

/// What a drill gives its injector beyond the plan.
#[derive(Clone, Default)]
pub struct FaultSettings {
    /// The drill's id: FIS's client token and tag come from it, so an undo after a crash
    /// finds the experiment again.
    pub drill: String,
    /// The FIS experiment template to start in each plan region (`fis` only).
    pub fis_templates: BTreeMap<String, String>,
    /// The AWS configuration to use; None: the standard chain with the plan's `aws.timeouts`.
    #[cfg(feature = "aws")]
    pub aws: Option<Arc<crate::aws::AwsConfig>>,
}

/// The injector of `kind` in `region` of `plan`. Refused (bad input, nothing done) when the
/// kind does not fit the plan ([`FaultKind::can_inject`]), when a `fis` drill names no
/// template for the region, for a lab kind (`drover_lab::injector` builds those), and for a
/// kind this build leaves out. The same call in a new process, given the journaled
/// [`drover_core::fault::FaultState`], undoes a drill that crashed.
pub fn injector_for(
    kind: FaultKind,
    region: &str,
    plan: &Plan,
    settings: &FaultSettings,
) -> Result<Box<dyn Injector>, BuildError> {
    kind.can_inject(plan, region).map_err(BuildError)?;
    if kind.is_lab() {
        return Err(BuildError(format!("fault {kind}: the lab injects it (drover_lab::injector), not the adapters")));
    }
    match kind {
        FaultKind::None => Ok(Box::new(NoFault { region: region.to_owned() })),
        #[cfg(feature = "aws")]
        _ if kind.is_aws() => aws_injector(kind, region, plan, settings),
        #[cfg(feature = "kubernetes")]
        FaultKind::KubernetesScaleToZero => Ok(Box::new(drover_core::fault::ScaleToZero {
            kind,
            region: region.to_owned(),
            resources: kind.compute_resources(plan, region),
            compute: Arc::new(crate::kubernetes::KubernetesCompute::new(plan)),
        })),
        _ => {
            let _ = settings;
            let feature = if kind == FaultKind::KubernetesScaleToZero { "kubernetes" } else { "aws" };
            Err(BuildError(format!("fault {kind}: needs a drover built with cargo feature {feature} (on by default)")))
        }
    }
}

#[cfg(feature = "aws")]
fn aws_injector(
    kind: FaultKind,
    region: &str,
    plan: &Plan,
    settings: &FaultSettings,
) -> Result<Box<dyn Injector>, BuildError> {
    use drover_core::plan::{ComputeTarget, DatabaseSpec, TrafficSpec};

    let aws = settings.aws.clone().unwrap_or_else(|| crate::aws::AwsConfig::from_env_with(plan.aws.timeouts));
    let aws_region = plan.aws_region(region).to_owned();
    // `can_inject` has checked that what each kind needs is in the plan.
    let missing = || BuildError(format!("fault {kind} in {region}: not in the plan"));
    Ok(match kind {
        FaultKind::Route53HealthCheck => {
            let TrafficSpec::Route53(t) = &plan.traffic else { return Err(missing()) };
            let health_checks = t.targets.get(region).and_then(|t| t.health_check_id.clone()).into_iter().collect();
            Box::new(route53_health_check::HealthCheckFault {
                region: region.to_owned(),
                health_checks,
                api: crate::aws::route53::Route53Api::new(aws),
            })
        }
        FaultKind::RdsReboot | FaultKind::RdsStop => {
            let DatabaseSpec::Rds(db) = &plan.database else { return Err(missing()) };
            let member = db.members.get(region).ok_or_else(missing)?;
            Box::new(rds::RdsFault::new(kind, region, &aws_region, &member.instance, crate::aws::rds::RdsApi::new(aws)))
        }
        FaultKind::AsgSuspend => {
            let groups = plan
                .compute
                .values()
                .filter_map(|c| match c.targets.get(region) {
                    Some(ComputeTarget::AutoScalingGroup { name }) => Some(name.clone()),
                    _ => None,
                })
                .collect();
            Box::new(asg_suspend::AsgSuspend {
                region: region.to_owned(),
                aws_region,
                groups,
                clients: asg_suspend::clients(aws),
            })
        }
        FaultKind::AsgScaleToZero => Box::new(drover_core::fault::ScaleToZero {
            kind,
            region: region.to_owned(),
            resources: kind.compute_resources(plan, region),
            compute: Arc::new(crate::aws::compute::AwsCompute::new(plan, aws)),
        }),
        FaultKind::Fis => {
            let template = settings.fis_templates.get(region).ok_or_else(|| {
                BuildError(format!(
                    "fault fis in {region}: no FIS experiment template is given for {region} (aws fis list-experiment-templates --region {aws_region} lists them)"
                ))
            })?;
            Box::new(fis::FisFault {
                region: region.to_owned(),
                aws_region,
                template: template.clone(),
                drill: settings.drill.clone(),
                clients: fis::clients(aws),
            })
        }
        _ => return Err(missing()),
    })
}
