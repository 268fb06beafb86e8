//! A drill's stop conditions (`drill.stop_when`): CloudWatch alarms that must not be in
//! ALARM while a drill runs. One already in ALARM refuses the drill; one going to ALARM
//! mid-drill aborts it and undoes its fault.
//!
//! Only ALARM stops a drill. INSUFFICIENT_DATA does not: a fault that silences a region's
//! metrics is what a drill does on purpose, and an alarm left without data by it would
//! otherwise stop every drill at once. An alarm that cannot be read is reported (the
//! caller refuses a drill it cannot guard) but is not a stop.

use drover_core::plan::{Plan, StopCondition};

use crate::factory::BuildError;

/// The plan's stop conditions, ready to be read.
pub struct StopConditions {
    conditions: Vec<StopCondition>,
    #[cfg(feature = "aws")]
    api: Option<std::sync::Arc<crate::aws::cloudwatch::CloudWatchApi>>,
}

/// What one look at the stop conditions found.
#[derive(Debug, Default, PartialEq)]
pub struct StopLook {
    /// Each alarm in ALARM: `alarm shop-5xx in us-west-1 is in ALARM: <reason>`.
    pub firing: Vec<String>,
    /// Each alarm that could not be read, with why.
    pub unreadable: Vec<String>,
}

impl StopConditions {
    /// The plan's `drill.stop_when`. Refused when the plan names alarms and this build has
    /// no AWS support.
    pub fn from_plan(plan: &Plan) -> Result<StopConditions, BuildError> {
        let conditions = plan.drill.stop_when.clone();
        #[cfg(feature = "aws")]
        {
            let api = (!conditions.is_empty()).then(|| {
                let aws = crate::aws::AwsConfig::from_env_with(plan.aws.timeouts);
                let regions = plan.regions.keys().map(|r| (r.clone(), plan.aws_region(r).to_owned())).collect();
                crate::aws::cloudwatch::CloudWatchApi::new(aws, regions)
            });
            Ok(StopConditions { conditions, api })
        }
        #[cfg(not(feature = "aws"))]
        {
            if conditions.is_empty() {
                Ok(StopConditions { conditions })
            } else {
                Err(BuildError(
                    "drill.stop_when names CloudWatch alarms: this needs a drover built with AWS support (cargo feature aws)"
                        .into(),
                ))
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// The alarms, for people: `shop-5xx in us-west-1, …`.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.conditions.iter().map(|c| format!("{} in {}", c.alarm, c.region)).collect();
        names.join(", ")
    }

    /// Reads every alarm once.
    pub async fn look(&self) -> StopLook {
        #[cfg(feature = "aws")]
        if let Some(api) = &self.api {
            let mut look = StopLook::default();
            // One after another: a drill names a few alarms, each read bounded by aws.timeouts.
            for c in &self.conditions {
                match api.alarm_firing(&c.region, &c.alarm).await {
                    Ok(Some(reason)) => {
                        look.firing.push(format!("alarm {} in {} is in ALARM: {reason}", c.alarm, c.region))
                    }
                    Ok(None) => {}
                    Err(e) => look.unreadable.push(format!("alarm {} in {}: {e}", c.alarm, c.region)),
                }
            }
            return look;
        }
        StopLook::default()
    }
}
