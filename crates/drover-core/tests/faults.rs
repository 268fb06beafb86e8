//! Drills' faults in the core: each kind's name read in one place, refused with a reason
//! when it does not fit the plan, and the compute injector (scale to zero) that undoes
//! itself from its journaled state alone.

use std::path::Path;
use std::sync::Arc;

use drover_core::capacity::WHOLE;
use drover_core::fault::{FaultKind, FaultState, Injector, NoFault, ScaleToZero};
use drover_core::plan::{Plan, parse_plan};
use drover_core::secret::{Secret, SecretRef, SecretSource};
use drover_core::testing::FakeWorld;
use drover_core::world::Compute;

struct AnySecret;
impl SecretSource for AnySecret {
    fn resolve(&self, _: &SecretRef) -> Result<Secret, String> {
        Ok(Secret::new("dHNpZy1zM2NyZXQ="))
    }
}

fn plan(path: &str) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&path).unwrap();
    parse_plan(&path, &text, &AnySecret).unwrap()
}

/// The shipped AWS example: rds, route53 with health checks, an EKS node group and an ASG.
fn aws() -> Plan {
    plan("../../examples/aws-two-region/plan.yaml")
}

fn lab() -> Plan {
    plan("tests/plans/good/lab.yaml")
}

#[test]
fn every_name_reads_back_as_its_kind_and_nothing_else_reads() {
    for kind in FaultKind::ALL {
        assert_eq!(kind.name().parse::<FaultKind>(), Ok(kind));
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{}\"", kind.name()));
        assert_eq!(serde_json::from_str::<FaultKind>(&json).unwrap(), kind);
    }
    let err = "flood".parse::<FaultKind>().unwrap_err();
    assert!(err.contains("unknown fault 'flood'") && err.contains("route53-health-check, fis, rds-reboot"), "{err}");
}

#[test]
fn aws_faults_fit_the_aws_plan_and_lab_faults_do_not() {
    let plan = aws();
    for kind in [
        FaultKind::None,
        FaultKind::Route53HealthCheck,
        FaultKind::Fis,
        FaultKind::RdsReboot,
        FaultKind::RdsStop,
        FaultKind::AsgSuspend,
        FaultKind::AsgScaleToZero,
    ] {
        assert_eq!(kind.can_inject(&plan, "us-east-2"), Ok(()), "{kind}");
    }
    let err = FaultKind::Blackout.can_inject(&plan, "us-east-2").unwrap_err();
    assert!(err.contains("only the lab injects it") && err.contains("database.kind rds"), "{err}");
    let err = FaultKind::KubernetesScaleToZero.can_inject(&plan, "us-east-2").unwrap_err();
    assert!(err.contains("no compute resource of kind kubernetes"), "{err}");
    let err = FaultKind::RdsStop.can_inject(&plan, "us-east-1").unwrap_err();
    assert!(err.contains("database.members has no RDS instance for us-east-1"), "{err}");
    let err = FaultKind::Fis.can_inject(&plan, "us-east-1").unwrap_err();
    assert!(err.contains("witness"), "{err}");
    let err = FaultKind::RdsReboot.can_inject(&plan, "eu-west-1").unwrap_err();
    assert!(err.contains("region 'eu-west-1' is not in the plan"), "{err}");
    assert_eq!(FaultKind::AsgScaleToZero.compute_resources(&plan, "us-east-2"), ["nodes", "web"]);
    assert!(FaultKind::RdsStop.compute_resources(&plan, "us-east-2").is_empty());
}

#[test]
fn a_fault_that_needs_what_the_plan_lacks_names_the_field() {
    let mut plan = aws();
    let drover_core::plan::TrafficSpec::Route53(t) = &mut plan.traffic else { panic!("route53") };
    t.targets.get_mut("us-east-2").unwrap().health_check_id = None;
    let err = FaultKind::Route53HealthCheck.can_inject(&plan, "us-east-2").unwrap_err();
    assert!(err.contains("add traffic.targets.us-east-2.health_check_id"), "{err}");
    plan.compute.remove("web");
    let err = FaultKind::AsgSuspend.can_inject(&plan, "us-east-2").unwrap_err();
    assert!(err.contains("autoscaling-group"), "{err}");
    // The node group alone still scales to zero.
    assert_eq!(FaultKind::AsgScaleToZero.can_inject(&plan, "us-east-2"), Ok(()));
}

#[test]
fn lab_faults_fit_the_lab_plan_and_aws_faults_do_not() {
    let plan = lab();
    for kind in FaultKind::ALL.into_iter().filter(|k| k.is_lab()) {
        assert_eq!(kind.can_inject(&plan, "east"), Ok(()), "{kind}");
    }
    assert_eq!(FaultKind::Blackout.can_inject(&plan, "witness"), Ok(()));
    let err = FaultKind::Kill.can_inject(&plan, "witness").unwrap_err();
    assert!(err.contains("witness runs no database"), "{err}");
    let err = FaultKind::RdsReboot.can_inject(&plan, "east").unwrap_err();
    assert!(err.contains("needs database.kind rds, and the plan's is postgres"), "{err}");
    let err = FaultKind::Route53HealthCheck.can_inject(&plan, "east").unwrap_err();
    assert!(err.contains("needs traffic.kind route53, and the plan's is rfc2136"), "{err}");
    assert!(FaultKind::AsgScaleToZero.can_inject(&plan, "east").is_err());
}

/// A world with one Auto Scaling group `web` in east (4 desired, 1..8) and one in west.
fn world() -> FakeWorld {
    let world = FakeWorld::two_regions();
    world.set_compute("web", "east", 4);
    world.set_compute("web", "west", 1);
    world
}

#[tokio::test]
async fn scale_to_zero_undoes_itself_from_the_journaled_state_in_a_new_injector() {
    let world = Arc::new(world());
    let injector = |world: &Arc<FakeWorld>| ScaleToZero {
        kind: FaultKind::AsgScaleToZero,
        region: "east".into(),
        resources: vec!["web".into()],
        compute: world.clone() as Arc<dyn Compute>,
    };
    let first = injector(&world);
    let state = first.capture().await.unwrap();
    assert_eq!(state.targets, ["web (desired 4, min 1, max 8)"]);
    let journaled = serde_json::to_string(&state).unwrap();
    assert!(!first.observe(&state).await.unwrap().in_place);
    first.inject(&state).await.unwrap();
    first.inject(&state).await.unwrap();
    let east = world.capacity("web", "east").await.unwrap()[WHOLE];
    assert_eq!((east.desired, east.min, east.max), (0, 0, 8));
    assert!(first.observe(&state).await.unwrap().in_place);
    // West is not the fault's region.
    assert_eq!(world.capacity("web", "west").await.unwrap()[WHOLE].desired, 1);

    // The drill's process died; a new one reads the journal and builds a new injector.
    drop(first);
    let state: FaultState = serde_json::from_str(&journaled).unwrap();
    let second = injector(&world);
    second.undo(&state).await.unwrap();
    second.undo(&state).await.unwrap();
    let east = world.capacity("web", "east").await.unwrap()[WHOLE];
    assert_eq!((east.desired, east.min, east.max), (4, 1, 8));
    assert!(!second.observe(&state).await.unwrap().in_place);
}

#[tokio::test]
async fn an_undo_of_a_fault_never_injected_changes_nothing_and_a_foreign_state_is_refused() {
    let world = Arc::new(world());
    let injector = ScaleToZero {
        kind: FaultKind::AsgScaleToZero,
        region: "east".into(),
        resources: vec!["web".into()],
        compute: world.clone() as Arc<dyn Compute>,
    };
    let state = injector.capture().await.unwrap();
    injector.undo(&state).await.unwrap();
    assert_eq!(world.capacity("web", "east").await.unwrap()[WHOLE].desired, 4);
    let none = NoFault { region: "east".into() }.capture().await.unwrap();
    let err = injector.undo(&none).await.unwrap_err();
    assert!(err.message.contains("given the state of a none fault"), "{}", err.message);
}
