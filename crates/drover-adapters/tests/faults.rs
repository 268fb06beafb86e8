//! Drills' AWS fault injectors against a real moto server: each fault injected through the
//! injector `faults::injector_for` builds from a plan, read back with the SDK, then undone by
//! a new injector from the journaled state alone (as after a crash of the drill), twice.

#![cfg(feature = "aws")]

#[path = "support/moto.rs"]
mod moto;

use std::path::Path;

use drover_adapters::aws::AwsConfig;
use drover_adapters::aws::fis_sdk as fis;
use drover_adapters::faults::{FaultSettings, injector_for};
use drover_core::fault::{FaultKind, FaultState, Injector};
use drover_core::plan::{Plan, parse_plan};
use drover_core::secret::{Secret, SecretRef, SecretSource};
use moto::{Moto, auto_scaling_group, autoscaling, eks, group_size, health_check, nodegroup, nodegroup_size, seed_rds};

const EAST: &str = "us-east-2";

struct NoSecrets;
impl SecretSource for NoSecrets {
    fn resolve(&self, r: &SecretRef) -> Result<Secret, String> {
        Err(format!("{r}: no secrets here"))
    }
}

/// The customer's shape: RDS with a cross-region replica, Route 53 failover records with a
/// health check on the primary's, an EKS node group and an Auto Scaling group per region.
fn plan(health_check: &str) -> Plan {
    let text = format!(
        r#"
name: shop
objectives: {{ rto: 15m, rpo: 5m }}
regions:
  us-east-2: {{ role: primary }}
  us-west-1: {{ role: standby }}
database:
  kind: rds
  members:
    us-east-2: {{ instance: shop-db }}
    us-west-1: {{ instance: shop-db-replica }}
traffic:
  kind: route53
  hosted_zone_id: Z0123456789ABCDEFGHIJ
  record: shop.example.test.
  type: A
  ttl: 60s
  routing: failover
  targets:
    us-east-2: {{ value: 192.0.2.10, health_check_id: {health_check} }}
    us-west-1: {{ value: 198.51.100.10 }}
compute:
  nodes:
    kind: eks-nodegroup
    ready_timeout: 1m
    regions:
      us-east-2: {{ cluster: shop-east, nodegroup: general }}
      us-west-1: {{ cluster: shop-west, nodegroup: general }}
  web:
    kind: autoscaling-group
    ready_timeout: 1m
    regions:
      us-east-2: {{ name: shop-web-east }}
      us-west-1: {{ name: shop-web-west }}
checks:
  api: {{ http: "http://{{target}}/healthz" }}
"#
    );
    parse_plan(Path::new("plan.yaml"), &text, &NoSecrets).unwrap()
}

fn settings(moto: &Moto, templates: &[(&str, &str)]) -> FaultSettings {
    FaultSettings {
        drill: "20261206-1700-drill".into(),
        fis_templates: templates.iter().map(|(r, t)| (r.to_string(), t.to_string())).collect(),
        aws: Some(AwsConfig::with(moto.sdk_config())),
    }
}

/// Injects `kind` in us-east-2, checks `faulted` (read from moto) and the injector's own
/// read back, then undoes it twice from the journaled state through new injectors.
async fn inject_then_undo_after_a_crash(
    kind: FaultKind,
    plan: &Plan,
    settings: &FaultSettings,
) -> (String, Box<dyn Fn() -> Box<dyn Injector>>) {
    let injector = injector_for(kind, EAST, plan, settings).unwrap();
    let state = injector.capture().await.unwrap();
    let journaled = serde_json::to_string(&state).unwrap();
    assert!(!injector.observe(&state).await.unwrap().in_place, "{kind}: in place before injecting");
    injector.inject(&state).await.unwrap();
    injector.inject(&state).await.unwrap();
    let seen = injector.observe(&state).await.unwrap();
    assert!(seen.in_place, "{kind}: not in place after injecting: {}", seen.detail);
    let (plan, settings) = (plan.clone(), settings.clone());
    (journaled, Box::new(move || injector_for(kind, EAST, &plan, &settings).unwrap()))
}

async fn undo_twice(journaled: &str, fresh: &dyn Fn() -> Box<dyn Injector>) -> Vec<String> {
    let state: FaultState = serde_json::from_str(journaled).unwrap();
    let mut said = Vec::new();
    for _ in 0..2 {
        let injector = fresh();
        said.push(injector.undo(&state).await.unwrap());
    }
    assert!(!fresh().observe(&state).await.unwrap().in_place);
    said
}

#[tokio::test]
async fn route53_health_check_is_inverted_then_set_back() {
    let moto = Moto::start();
    let r53 = moto.route53();
    let id = health_check(&r53, "192.0.2.10").await;
    let other = health_check(&r53, "198.51.100.10").await;
    let inverted = |id: String| {
        let r53 = r53.clone();
        async move {
            let out = r53.get_health_check().health_check_id(id).send().await.unwrap();
            out.health_check().unwrap().health_check_config().unwrap().inverted().unwrap_or(false)
        }
    };
    let plan = plan(&id);
    let (journaled, fresh) =
        inject_then_undo_after_a_crash(FaultKind::Route53HealthCheck, &plan, &settings(&moto, &[])).await;
    assert!(inverted(id.clone()).await, "the primary's health check is inverted");
    assert!(!inverted(other.clone()).await, "another health check is left alone");
    assert!(journaled.contains(&id) && journaled.contains("\"inverted\":false"), "{journaled}");
    undo_twice(&journaled, fresh.as_ref()).await;
    assert!(!inverted(id).await);
}

#[tokio::test]
async fn rds_stop_stops_the_primary_and_undo_starts_it_once() {
    let moto = Moto::start();
    let (east, west) = (moto.rds(EAST), moto.rds("us-west-1"));
    seed_rds(&east, &west, "shop-pg").await;
    let status = || {
        let east = east.clone();
        async move {
            let out = east.describe_db_instances().db_instance_identifier("shop-db").send().await.unwrap();
            out.db_instances()[0].db_instance_status().unwrap().to_owned()
        }
    };
    let plan = plan("unused");
    let (journaled, fresh) = inject_then_undo_after_a_crash(FaultKind::RdsStop, &plan, &settings(&moto, &[])).await;
    assert_eq!(status().await, "stopped");
    let said = undo_twice(&journaled, fresh.as_ref()).await;
    assert_eq!(status().await, "available");
    assert!(said[0].contains("started (StartDBInstance)"), "{said:?}");
    assert!(said[1].contains("not stopped; nothing to start"), "{said:?}");
}

#[tokio::test]
async fn rds_stop_leaves_an_instance_stopped_before_the_drill_stopped() {
    let moto = Moto::start();
    let (east, west) = (moto.rds(EAST), moto.rds("us-west-1"));
    seed_rds(&east, &west, "shop-pg").await;
    east.stop_db_instance().db_instance_identifier("shop-db").send().await.unwrap();
    let plan = plan("unused");
    let injector = injector_for(FaultKind::RdsStop, EAST, &plan, &settings(&moto, &[])).unwrap();
    let state = injector.capture().await.unwrap();
    assert_eq!(state.targets, ["us-east-2/shop-db (stopped)"]);
    injector.inject(&state).await.unwrap();
    assert!(injector.undo(&state).await.unwrap().contains("left stopped as it was before the drill"));
    let out = east.describe_db_instances().db_instance_identifier("shop-db").send().await.unwrap();
    assert_eq!(out.db_instances()[0].db_instance_status(), Some("stopped"));
}

/// moto reboots at once (the instance never shows `rebooting`), so what is checked here is
/// that the call is made and accepted, and that the undo sets nothing back.
#[tokio::test]
async fn rds_reboot_is_accepted_and_its_undo_changes_nothing() {
    let moto = Moto::start();
    let (east, west) = (moto.rds(EAST), moto.rds("us-west-1"));
    seed_rds(&east, &west, "shop-pg").await;
    let plan = plan("unused");
    let injector = injector_for(FaultKind::RdsReboot, EAST, &plan, &settings(&moto, &[])).unwrap();
    let state = injector.capture().await.unwrap();
    injector.inject(&state).await.unwrap();
    let said = injector.undo(&state).await.unwrap();
    assert!(said.contains("nothing to set back"), "{said}");
    let out = east.describe_db_instances().db_instance_identifier("shop-db").send().await.unwrap();
    assert_eq!(out.db_instances()[0].db_instance_status(), Some("available"));
}

#[tokio::test]
async fn asg_suspend_suspends_and_resumes_only_what_it_suspended() {
    let moto = Moto::start();
    let asg = autoscaling(&moto, EAST);
    auto_scaling_group(&asg, "shop-web-east", "us-east-2a", 2).await;
    // Suspended by someone before the drill: it stays suspended after.
    asg.suspend_processes()
        .auto_scaling_group_name("shop-web-east")
        .scaling_processes("AZRebalance")
        .send()
        .await
        .unwrap();
    let suspended = || {
        let asg = asg.clone();
        async move {
            let out =
                asg.describe_auto_scaling_groups().auto_scaling_group_names("shop-web-east").send().await.unwrap();
            let mut names: Vec<String> = out.auto_scaling_groups()[0]
                .suspended_processes()
                .iter()
                .map(|p| p.process_name().unwrap().to_owned())
                .collect();
            names.sort();
            names
        }
    };
    let plan = plan("unused");
    let (journaled, fresh) = inject_then_undo_after_a_crash(FaultKind::AsgSuspend, &plan, &settings(&moto, &[])).await;
    assert_eq!(
        suspended().await,
        ["AZRebalance", "AlarmNotification", "HealthCheck", "Launch", "ReplaceUnhealthy", "ScheduledActions"]
    );
    // observe() is false once the drill's processes are resumed, but AZRebalance stays.
    let state: FaultState = serde_json::from_str(&journaled).unwrap();
    for _ in 0..2 {
        fresh().undo(&state).await.unwrap();
    }
    assert_eq!(suspended().await, ["AZRebalance"]);
}

#[tokio::test]
async fn asg_scale_to_zero_empties_the_group_and_the_node_group_and_undo_restores_them() {
    let moto = Moto::start();
    let asg = autoscaling(&moto, EAST);
    auto_scaling_group(&asg, "shop-web-east", "us-east-2a", 3).await;
    let eks = eks(&moto, EAST);
    nodegroup(&eks, "shop-east", "general", 3).await;
    let plan = plan("unused");
    let (journaled, fresh) =
        inject_then_undo_after_a_crash(FaultKind::AsgScaleToZero, &plan, &settings(&moto, &[])).await;
    assert_eq!(group_size(&asg, "shop-web-east").await.0, 0);
    assert_eq!(nodegroup_size(&eks, "shop-east", "general").await, (0, 0, 10));
    let min = |asg: drover_adapters::aws::autoscaling_sdk::Client| async move {
        let out = asg.describe_auto_scaling_groups().auto_scaling_group_names("shop-web-east").send().await.unwrap();
        out.auto_scaling_groups()[0].min_size().unwrap()
    };
    assert_eq!(min(asg.clone()).await, 0);
    undo_twice(&journaled, fresh.as_ref()).await;
    assert_eq!(group_size(&asg, "shop-web-east").await, (3, 3));
    assert_eq!(min(asg.clone()).await, 1);
    assert_eq!(nodegroup_size(&eks, "shop-east", "general").await, (3, 1, 10));
}

/// A template that waits: what it would break is FIS's business, starting and stopping it drover's.
async fn template(client: &fis::Client) -> String {
    use fis::types::{CreateExperimentTemplateActionInput, CreateExperimentTemplateStopConditionInput};
    let out = client
        .create_experiment_template()
        .client_token("drover-test-template")
        .description("drover drill")
        .role_arn("arn:aws:iam::123456789012:role/fis")
        .stop_conditions(CreateExperimentTemplateStopConditionInput::builder().source("none").build().unwrap())
        .actions(
            "wait",
            CreateExperimentTemplateActionInput::builder()
                .action_id("aws:fis:wait")
                .parameters("duration", "PT10M")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create FIS experiment template in moto");
    out.experiment_template().unwrap().id().unwrap().to_owned()
}

#[tokio::test]
async fn fis_starts_one_tagged_experiment_and_undo_finds_and_stops_it_by_the_drill_id() {
    let moto = Moto::start();
    let client = fis::Client::from_conf(
        fis::config::Builder::from(&moto.sdk_config()).region(fis::config::Region::new(EAST)).build(),
    );
    let template = template(&client).await;
    let plan = plan("unused");
    let settings = settings(&moto, &[(EAST, &template)]);
    let (journaled, fresh) = inject_then_undo_after_a_crash(FaultKind::Fis, &plan, &settings).await;
    let experiments = || {
        let client = client.clone();
        async move {
            let out = client.list_experiments().send().await.unwrap();
            out.experiments()
                .iter()
                .map(|x| {
                    let tag = x.tags().and_then(|t| t.get("drover-drill")).cloned().unwrap_or_default();
                    (tag, x.state().unwrap().status().unwrap().as_str().to_owned())
                })
                .collect::<Vec<_>>()
        }
    };
    // Injected twice, started once: the client token is the drill's.
    assert_eq!(experiments().await, [("20261206-1700-drill".to_owned(), "pending".to_owned())]);
    let said = undo_twice(&journaled, fresh.as_ref()).await;
    assert!(said[0].starts_with("stopped experiment"), "{said:?}");
    assert!(said[1].contains("already stopping"), "{said:?}");
    assert_eq!(experiments().await, [("20261206-1700-drill".to_owned(), "stopping".to_owned())]);
}

#[tokio::test]
async fn a_fis_drill_without_a_template_for_the_region_is_refused() {
    let moto = Moto::start();
    let plan = plan("unused");
    let err = injector_for(FaultKind::Fis, EAST, &plan, &settings(&moto, &[])).err().unwrap();
    assert!(err.0.contains("no FIS experiment template is given for us-east-2"), "{}", err.0);
    let err = injector_for(FaultKind::Blackout, EAST, &plan, &settings(&moto, &[])).err().unwrap();
    assert!(err.0.contains("only the lab injects it"), "{}", err.0);
}
