//! `fis`: starts the drill's AWS Fault Injection Service experiment template in the
//! region's AWS region (StartExperiment, with a client token made from the drill's id, so a
//! second start is the same experiment, and the tag `drover-drill=<id>`); undo stops every
//! experiment of the template carrying that tag (ListExperiments, StopExperiment), which
//! finds it again after a crash from the drill's id alone. What the experiment breaks is
//! the template's business: drover starts it, watches it and stops it.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_fis as fis;
use drover_core::error::ProviderError;
use drover_core::fault::{FaultKind, FaultSeen, FaultState, Injector};

use crate::aws::{AwsConfig, RegionalClients, Service, describe};

pub const FIS: Service = Service { name: "FIS", iam: "fis", hint: fis_hint };

/// The tag every experiment a drill starts carries: the drill's id.
pub const DRILL_TAG: &str = "drover-drill";

fn fis_hint(_operation: &str, code: &str) -> Option<(String, bool)> {
    match code {
        "ResourceNotFoundException" => Some((
            "check the drill's FIS experiment template id for this AWS region (aws fis list-experiment-templates)"
                .into(),
            false,
        )),
        "ConflictException" => Some(("FIS is still changing the experiment; retried".into(), true)),
        "ServiceQuotaExceededException" => {
            Some(("the account runs as many FIS experiments as its quota allows; stop one or raise it".into(), false))
        }
        _ => None,
    }
}

/// FIS clients per AWS region, from the shared configuration.
pub fn clients(config: Arc<AwsConfig>) -> Arc<RegionalClients<fis::Client>> {
    Arc::new(RegionalClients::new(config, |sdk, region| {
        fis::Client::from_conf(fis::config::Builder::from(sdk).region(region).build())
    }))
}

/// One drill's experiment in one region.
pub struct FisFault {
    pub region: String,
    pub aws_region: String,
    /// The experiment template id (`EXT...`), from the drill's settings for this region.
    pub template: String,
    /// The drill's id: the client token and the tag come from it.
    pub drill: String,
    pub clients: Arc<RegionalClients<fis::Client>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Captured {
    aws_region: String,
    template: String,
    drill: String,
}

/// StartExperiment's idempotency token: the drill's id (at most 64 characters, as FIS takes).
pub fn client_token(drill: &str) -> String {
    format!("drover-{drill}").chars().take(64).collect()
}

/// An experiment that is still running or about to: what undo stops.
fn active(status: &str) -> bool {
    matches!(status, "pending" | "initiating" | "running")
}

impl FisFault {
    /// The drill's experiments of the template, with their status.
    async fn experiments(&self, c: &Captured) -> Result<Vec<(String, String)>, ProviderError> {
        let client = self.clients.get(&c.aws_region).await;
        let resource = format!("{}/experiment-template/{}", c.aws_region, c.template);
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = client
                .list_experiments()
                .experiment_template_id(&c.template)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| describe(FIS, "ListExperiments", &resource, e))?;
            for x in page.experiments() {
                let ours = x.tags().and_then(|t| t.get(DRILL_TAG)).is_some_and(|d| *d == c.drill);
                if let (true, Some(id)) = (ours, x.id()) {
                    let status = x.state().and_then(|s| s.status()).map_or("unknown", |s| s.as_str());
                    out.push((id.to_owned(), status.to_owned()));
                }
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => return Ok(out),
            }
        }
    }
}

#[async_trait]
impl Injector for FisFault {
    fn kind(&self) -> FaultKind {
        FaultKind::Fis
    }

    async fn capture(&self) -> Result<FaultState, ProviderError> {
        let c = Captured {
            aws_region: self.aws_region.clone(),
            template: self.template.clone(),
            drill: self.drill.clone(),
        };
        let target = format!("{}/experiment-template/{} (tag {DRILL_TAG}={})", c.aws_region, c.template, c.drill);
        Ok(FaultState::new(self.kind(), &self.region, vec![target], &c))
    }

    async fn inject(&self, state: &FaultState) -> Result<(), ProviderError> {
        let c: Captured = state.read(self.kind())?;
        self.clients
            .get(&c.aws_region)
            .await
            .start_experiment()
            .client_token(client_token(&c.drill))
            .experiment_template_id(&c.template)
            .tags(DRILL_TAG, &c.drill)
            .send()
            .await
            .map_err(|e| {
                describe(FIS, "StartExperiment", &format!("{}/experiment-template/{}", c.aws_region, c.template), e)
            })?;
        Ok(())
    }

    async fn observe(&self, state: &FaultState) -> Result<FaultSeen, ProviderError> {
        let c: Captured = state.read(self.kind())?;
        let found = self.experiments(&c).await?;
        let detail = match found.is_empty() {
            true => format!("no experiment of {} tagged {DRILL_TAG}={}", c.template, c.drill),
            false => {
                found.iter().map(|(id, status)| format!("experiment {id}: {status}")).collect::<Vec<_>>().join(", ")
            }
        };
        Ok(FaultSeen { in_place: found.iter().any(|(_, s)| active(s)), detail })
    }

    async fn undo(&self, state: &FaultState) -> Result<String, ProviderError> {
        let c: Captured = state.read(self.kind())?;
        let client = self.clients.get(&c.aws_region).await;
        let mut done = Vec::new();
        for (id, status) in self.experiments(&c).await? {
            if !active(&status) {
                done.push(format!("experiment {id} already {status}"));
                continue;
            }
            client
                .stop_experiment()
                .id(&id)
                .send()
                .await
                .map_err(|e| describe(FIS, "StopExperiment", &format!("{}/experiment/{id}", c.aws_region), e))?;
            done.push(format!("stopped experiment {id}"));
        }
        Ok(match done.is_empty() {
            true => format!("no experiment of {} was started for drill {}", c.template, c.drill),
            false => done.join(", "),
        })
    }
}
