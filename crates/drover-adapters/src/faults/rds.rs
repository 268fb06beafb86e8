//! `rds-reboot` and `rds-stop`: the region's RDS instance (`database.members.<region>`)
//! rebooted (RebootDBInstance; nothing to set back) or stopped (StopDBInstance; undo
//! StartDBInstance, once the instance is stopped, if it was available before the drill).
//! Read back with DescribeDBInstances' status.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use drover_core::error::ProviderError;
use drover_core::fault::{FaultKind, FaultSeen, FaultState, Injector};

use crate::aws::describe;
use crate::aws::rds::{RDS, RdsApi, wait_until};

/// How long an undo waits for a stopping instance to be stopped before starting it (RDS
/// takes minutes to stop; a stop it cannot finish is the console's to explain).
pub const DEFAULT_STOP_WAIT: Duration = Duration::from_secs(30 * 60);
const DEFAULT_POLL: Duration = Duration::from_secs(10);

/// One region's RDS instance, rebooted or stopped.
pub struct RdsFault {
    /// `rds-reboot` or `rds-stop`.
    pub kind: FaultKind,
    pub region: String,
    pub aws_region: String,
    pub instance: String,
    pub api: Arc<RdsApi>,
    /// How long an undo waits for a stopping instance (tests: seconds).
    pub stop_wait: Duration,
    pub poll: Duration,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Captured {
    aws_region: String,
    instance: String,
    /// DescribeDBInstances' status before the drill (`available`, `stopped`, ...).
    status: String,
}

impl RdsFault {
    pub fn new(kind: FaultKind, region: &str, aws_region: &str, instance: &str, api: Arc<RdsApi>) -> RdsFault {
        RdsFault {
            kind,
            region: region.to_owned(),
            aws_region: aws_region.to_owned(),
            instance: instance.to_owned(),
            api,
            stop_wait: DEFAULT_STOP_WAIT,
            poll: DEFAULT_POLL,
        }
    }

    fn resource(c: &Captured) -> String {
        format!("{}/{}", c.aws_region, c.instance)
    }

    async fn status(&self, aws_region: &str, instance: &str) -> Result<String, ProviderError> {
        let out = self
            .api
            .rds(aws_region)
            .await
            .describe_db_instances()
            .db_instance_identifier(instance)
            .send()
            .await
            .map_err(|e| describe(RDS, "DescribeDBInstances", &format!("{aws_region}/{instance}"), e))?;
        Ok(out.db_instances().first().and_then(|i| i.db_instance_status()).unwrap_or("unknown").to_owned())
    }

    /// The statuses in which this fault is in place.
    fn faulted(&self, status: &str) -> bool {
        match self.kind {
            FaultKind::RdsStop => matches!(status, "stopping" | "stopped"),
            _ => status == "rebooting",
        }
    }
}

#[async_trait]
impl Injector for RdsFault {
    fn kind(&self) -> FaultKind {
        self.kind
    }

    async fn capture(&self) -> Result<FaultState, ProviderError> {
        let status = self.status(&self.aws_region, &self.instance).await?;
        let captured = Captured { aws_region: self.aws_region.clone(), instance: self.instance.clone(), status };
        let target = format!("{} ({})", Self::resource(&captured), captured.status);
        Ok(FaultState::new(self.kind, &self.region, vec![target], &captured))
    }

    /// Only an instance without the fault is rebooted or stopped: one rebooting, stopping or
    /// stopped already has it, and a second call changes nothing. One exception: a reboot
    /// that has already ended leaves no trace in the instance's status, so a second call
    /// then reboots again; the drill journals the injection to call it once.
    async fn inject(&self, state: &FaultState) -> Result<(), ProviderError> {
        let c: Captured = state.read(self.kind)?;
        let now = self.status(&c.aws_region, &c.instance).await?;
        if self.faulted(&now) {
            return Ok(());
        }
        let client = self.api.rds(&c.aws_region).await;
        let resource = Self::resource(&c);
        match self.kind {
            FaultKind::RdsStop => client
                .stop_db_instance()
                .db_instance_identifier(&c.instance)
                .send()
                .await
                .map(drop)
                .map_err(|e| describe(RDS, "StopDBInstance", &resource, e)),
            _ => client
                .reboot_db_instance()
                .db_instance_identifier(&c.instance)
                .send()
                .await
                .map(drop)
                .map_err(|e| describe(RDS, "RebootDBInstance", &resource, e)),
        }
    }

    async fn observe(&self, state: &FaultState) -> Result<FaultSeen, ProviderError> {
        let c: Captured = state.read(self.kind)?;
        let now = self.status(&c.aws_region, &c.instance).await?;
        Ok(FaultSeen { in_place: self.faulted(&now), detail: format!("{}: {now}", Self::resource(&c)) })
    }

    /// A reboot ends by itself. A stop is undone only for an instance that was available
    /// before the drill (one stopped before stays stopped): once it is stopped, it is
    /// started; one already starting or available is left alone.
    async fn undo(&self, state: &FaultState) -> Result<String, ProviderError> {
        let c: Captured = state.read(self.kind)?;
        let resource = Self::resource(&c);
        if self.kind != FaultKind::RdsStop {
            return Ok(format!("{resource}: nothing to set back (a reboot ends by itself)"));
        }
        if c.status != "available" {
            return Ok(format!("{resource}: left {} as it was before the drill", c.status));
        }
        let what = format!("{resource}: stopped before it can be started again");
        wait_until(self.stop_wait, self.poll, &what, || async {
            let now = self.status(&c.aws_region, &c.instance).await?;
            Ok(if now == "stopping" { Err(format!("status {now}")) } else { Ok(()) })
        })
        .await?;
        if self.status(&c.aws_region, &c.instance).await? != "stopped" {
            return Ok(format!("{resource}: not stopped; nothing to start"));
        }
        self.api
            .rds(&c.aws_region)
            .await
            .start_db_instance()
            .db_instance_identifier(&c.instance)
            .send()
            .await
            .map_err(|e| describe(RDS, "StartDBInstance", &resource, e))?;
        Ok(format!("{resource}: started (StartDBInstance)"))
    }
}
