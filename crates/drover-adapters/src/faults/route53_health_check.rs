//! `route53-health-check`: inverts the Route 53 health check of the region's record set, so
//! Route 53 judges the region unhealthy and failover routing answers with the other region;
//! undo sets each health check's `Inverted` back to what it was (GetHealthCheck,
//! UpdateHealthCheck).

use std::sync::Arc;

use async_trait::async_trait;
use drover_core::error::ProviderError;
use drover_core::fault::{FaultKind, FaultSeen, FaultState, Injector};

use crate::aws::describe;
use crate::aws::route53::{ROUTE53, Route53Api};

/// The health checks of one region's record set.
pub struct HealthCheckFault {
    pub region: String,
    /// `traffic.targets.<region>.health_check_id`.
    pub health_checks: Vec<String>,
    pub api: Arc<Route53Api>,
}

/// One health check as captured.
#[derive(serde::Serialize, serde::Deserialize)]
struct Captured {
    id: String,
    /// Its `Inverted` before the drill.
    inverted: bool,
}

impl HealthCheckFault {
    async fn inverted(&self, id: &str) -> Result<bool, ProviderError> {
        let (client, region) = self.api.client().await;
        let out = client
            .get_health_check()
            .health_check_id(id)
            .send()
            .await
            .map_err(|e| describe(ROUTE53, "GetHealthCheck", &format!("{region}/healthcheck/{id}"), e))?;
        Ok(out.health_check().and_then(|h| h.health_check_config()).and_then(|c| c.inverted()).unwrap_or(false))
    }

    async fn set_inverted(&self, id: &str, inverted: bool) -> Result<(), ProviderError> {
        if self.inverted(id).await? == inverted {
            return Ok(());
        }
        let (client, region) = self.api.client().await;
        client
            .update_health_check()
            .health_check_id(id)
            .inverted(inverted)
            .send()
            .await
            .map_err(|e| describe(ROUTE53, "UpdateHealthCheck", &format!("{region}/healthcheck/{id}"), e))?;
        Ok(())
    }
}

#[async_trait]
impl Injector for HealthCheckFault {
    fn kind(&self) -> FaultKind {
        FaultKind::Route53HealthCheck
    }

    async fn capture(&self) -> Result<FaultState, ProviderError> {
        let mut captured = Vec::new();
        for id in &self.health_checks {
            captured.push(Captured { id: id.clone(), inverted: self.inverted(id).await? });
        }
        let targets = captured.iter().map(|c| format!("health check {} (inverted: {})", c.id, c.inverted)).collect();
        Ok(FaultState::new(self.kind(), &self.region, targets, &captured))
    }

    /// Flips each check from what it was, so one already inverted before the drill fails too.
    async fn inject(&self, state: &FaultState) -> Result<(), ProviderError> {
        for c in state.read::<Vec<Captured>>(self.kind())? {
            self.set_inverted(&c.id, !c.inverted).await?;
        }
        Ok(())
    }

    async fn observe(&self, state: &FaultState) -> Result<FaultSeen, ProviderError> {
        let mut flipped = Vec::new();
        let mut as_before = Vec::new();
        for c in state.read::<Vec<Captured>>(self.kind())? {
            let now = self.inverted(&c.id).await?;
            let line = format!("health check {}: inverted {now}", c.id);
            if now != c.inverted { flipped.push(line) } else { as_before.push(line) }
        }
        Ok(FaultSeen {
            in_place: as_before.is_empty(),
            detail: flipped.into_iter().chain(as_before).collect::<Vec<_>>().join(", "),
        })
    }

    async fn undo(&self, state: &FaultState) -> Result<String, ProviderError> {
        let mut done = Vec::new();
        for c in state.read::<Vec<Captured>>(self.kind())? {
            self.set_inverted(&c.id, c.inverted).await?;
            done.push(format!("health check {} inverted {}", c.id, c.inverted));
        }
        Ok(format!("set back {}", done.join(", ")))
    }
}
