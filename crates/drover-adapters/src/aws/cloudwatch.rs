//! CloudWatch alarms as checks: an alarm's state, read with DescribeAlarms in the
//! AWS region of the plan region it judges.
//!
//! OK passes. ALARM fails. INSUFFICIENT_DATA fails too: the alarm cannot say the
//! region is well, and a region that stopped sending metrics (the very outage drover
//! is for) looks exactly like that. An alarm that should pass without data says so
//! itself, with `TreatMissingData: notBreaching`.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{AlarmType, StateValue};

use super::{AwsConfig, RegionalClients, Service, describe};

/// The SDK itself, for tests and tools.
pub use aws_sdk_cloudwatch as sdk;

/// CloudWatch clients, one per AWS region, built from the standard AWS configuration when first needed.
pub struct CloudWatchApi {
    /// Plan region -> AWS region; a region not listed is its own AWS region.
    aws_regions: BTreeMap<String, String>,
    clients: RegionalClients<Client>,
}

impl CloudWatchApi {
    pub fn new(config: Arc<AwsConfig>, aws_regions: BTreeMap<String, String>) -> Arc<CloudWatchApi> {
        let clients = RegionalClients::new(config, |sdk, region| {
            Client::from_conf(aws_sdk_cloudwatch::config::Builder::from(sdk).region(region).build())
        });
        Arc::new(CloudWatchApi { aws_regions, clients })
    }

    async fn client(&self, aws_region: &str) -> Client {
        self.clients.get(aws_region).await
    }

    /// The state of alarm `name` in `region`'s AWS region: `Ok` with a short note when
    /// it is OK, `Err` saying why not otherwise.
    pub async fn alarm_state(&self, region: &str, name: &str) -> Result<String, String> {
        let (state, reason) = self.read_alarm(region, name).await?;
        alarm_verdict(state.as_ref(), &reason)
    }

    /// Whether alarm `name` in `region` is in ALARM (a drill's stop condition): its reason
    /// when it is, None in any other state. Err when it cannot be read or does not exist.
    pub async fn alarm_firing(&self, region: &str, name: &str) -> Result<Option<String>, String> {
        let (state, reason) = self.read_alarm(region, name).await?;
        Ok((state == Some(StateValue::Alarm))
            .then(|| if reason.is_empty() { "no reason given".into() } else { reason }))
    }

    /// The alarm's state and reason, metric or composite.
    async fn read_alarm(&self, region: &str, name: &str) -> Result<(Option<StateValue>, String), String> {
        let aws_region = self.aws_regions.get(region).map_or(region, String::as_str);
        let resource = format!("{aws_region}/alarm/{name}");
        let out = self
            .client(aws_region)
            .await
            .describe_alarms()
            .alarm_names(name)
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .send()
            .await
            .map_err(|e| describe(CLOUDWATCH, "DescribeAlarms", &resource, e).message)?;
        let metric = out.metric_alarms().iter().find(|a| a.alarm_name() == Some(name));
        let composite = out.composite_alarms().iter().find(|a| a.alarm_name() == Some(name));
        let (state, reason) = match (metric, composite) {
            (Some(a), _) => (a.state_value(), a.state_reason()),
            (None, Some(a)) => (a.state_value(), a.state_reason()),
            (None, None) => {
                return Err(format!(
                    "{resource}: DescribeAlarms found no alarm of that name — check the check's alarm name exists in {aws_region}"
                ));
            }
        };
        Ok((state.cloned(), reason.unwrap_or("").to_owned()))
    }
}

/// OK passes; ALARM and INSUFFICIENT_DATA fail (see the module's comment).
pub fn alarm_verdict(state: Option<&StateValue>, reason: &str) -> Result<String, String> {
    let with_reason = |state: &str| if reason.is_empty() { state.to_owned() } else { format!("{state}: {reason}") };
    match state {
        Some(StateValue::Ok) => Ok(with_reason("OK")),
        Some(StateValue::Alarm) => Err(with_reason("ALARM")),
        Some(StateValue::InsufficientData) => Err(format!(
            "{} — the alarm has too little data to judge, which drover counts as failing; set the alarm's TreatMissingData to notBreaching if no data means healthy",
            with_reason("INSUFFICIENT_DATA")
        )),
        Some(other) => Err(with_reason(other.as_str())),
        None => Err("the alarm has no state".into()),
    }
}

/// CloudWatch, for alarm checks here and for replica lag (`rds`, `aurora-global`).
pub const CLOUDWATCH: Service = Service { name: "CloudWatch", iam: "cloudwatch", hint };

/// CloudWatch's own codes; throttling and access are `aws::describe`'s. Only alarm
/// reads point at the plan's alarm names.
fn hint(operation: &str, code: &str) -> Option<(String, bool)> {
    if operation != "DescribeAlarms" {
        return None;
    }
    Some(match code {
        "InvalidNextToken" | "InvalidParameterValue" | "InvalidParameterCombination" => {
            ("check the alarm name in the plan's cloudwatch_alarm check".into(), false)
        }
        _ => ("check the plan's cloudwatch_alarm names against the account's alarms".into(), false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_passes_alarm_and_insufficient_data_fail() {
        assert_eq!(alarm_verdict(Some(&StateValue::Ok), "fine").unwrap(), "OK: fine");
        assert_eq!(alarm_verdict(Some(&StateValue::Alarm), "5xx above 1%").unwrap_err(), "ALARM: 5xx above 1%");
        let unknown = alarm_verdict(Some(&StateValue::InsufficientData), "").unwrap_err();
        assert!(unknown.starts_with("INSUFFICIENT_DATA — the alarm has too little data"), "{unknown}");
        assert!(alarm_verdict(None, "").is_err());
    }
}
