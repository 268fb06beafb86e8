//! The optional `policy` and `runbooks` sections: when drover may act, and
//! which steps each run takes.

use std::time::Duration;

use super::kinds::DatabaseKind;
use super::model::Policy;
use super::raw::{Node, Value};
use super::reader::{Mapping, Reader, closest, list_words};
use super::steps::{Runbooks, StepKind};

const POLICY_FIELDS: [&str; 7] = [
    "auto_failover",
    "require_approval",
    "quorum",
    "max_lag_on_failover",
    "max_lag_time_on_failover",
    "cooldown",
    "detect_with",
];
const RUNBOOK_FIELDS: [&str; 2] = ["failover", "switchover"];

impl Default for Policy {
    fn default() -> Self {
        Policy {
            auto_failover: false,
            require_approval: false,
            quorum: 1,
            max_lag_on_failover: 1 << 20,
            max_lag_time_on_failover: None,
            cooldown: Duration::from_secs(600),
        }
    }
}

/// The policy, and the checks named in `detect_with` (`None`: all checks decide).
/// `check_names` is `None` when the checks section could not be read; `database_kind`
/// (the `database.kind` written) decides the lag limits that apply.
pub(super) fn read_policy(
    r: &mut Reader<'_>,
    top: &Mapping<'_>,
    check_names: Option<&[&str]>,
    database_kind: DatabaseKind,
) -> Option<(Policy, Option<Vec<String>>)> {
    let defaults =
        Policy { max_lag_time_on_failover: database_kind.default_max_lag_time_on_failover(), ..Policy::default() };
    let Some(node) = top.get("policy") else {
        return Some((defaults, None));
    };
    if node.value == Value::Null {
        return Some((defaults, None));
    }
    let at = top.key("policy").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, "policy", at, &POLICY_FIELDS, &[], "a mapping like { auto_failover: true, quorum: 2 }")?;
    if let Some(key) = m.key("max_lag_on_failover")
        && !database_kind.knows_wal_positions()
    {
        let kind = database_kind;
        r.error(
            key.pos(),
            "policy.max_lag_on_failover",
            format!(
                "{kind} exposes no replication lag in bytes; bound an automatic failover by time with \
                 max_lag_time_on_failover (e.g. 30s) and remove this"
            ),
        );
    }
    let auto_failover =
        m.get("auto_failover").map_or(Some(defaults.auto_failover), |n| r.flag(n, "policy.auto_failover"));
    let require_approval =
        m.get("require_approval").map_or(Some(defaults.require_approval), |n| r.flag(n, "policy.require_approval"));
    let quorum = m.get("quorum").map_or(Some(defaults.quorum), |n| r.count(n, "policy.quorum", 1));
    let max_lag_on_failover = m
        .get("max_lag_on_failover")
        .map_or(Some(defaults.max_lag_on_failover), |n| r.bytes(n, "policy.max_lag_on_failover"));
    let max_lag_time_on_failover = match m.get("max_lag_time_on_failover") {
        Some(n) => r.duration(n, "policy.max_lag_time_on_failover").map(Some),
        None => Some(defaults.max_lag_time_on_failover),
    };
    let cooldown = m.get("cooldown").map_or(Some(defaults.cooldown), |n| r.duration(n, "policy.cooldown"));
    let detect_with = match m.get("detect_with") {
        Some(n) => detect_with(r, n, check_names).map(Some),
        None => Some(None),
    };
    Some((
        Policy {
            auto_failover: auto_failover?,
            require_approval: require_approval?,
            quorum: quorum?,
            max_lag_on_failover: max_lag_on_failover?,
            max_lag_time_on_failover: max_lag_time_on_failover?,
            cooldown: cooldown?,
        },
        detect_with?,
    ))
}

fn detect_with(r: &mut Reader<'_>, node: &Node, check_names: Option<&[&str]>) -> Option<Vec<String>> {
    let field = "policy.detect_with";
    let items = r.list(node, field, "a list of check names, e.g. [api]")?;
    if items.is_empty() {
        r.error(
            node.pos(),
            field,
            "is empty, so no check could ever find a region down; list checks, or remove detect_with to use them all",
        );
        return None;
    }
    let mut names = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_field = format!("{field}[{i}]");
        let Some(name) = r.text(item, &item_field, "a check name") else {
            continue;
        };
        if let Some(known) = check_names
            && !known.contains(&name)
        {
            let near = closest(name, known).map(|n| format!("did you mean {n}? ")).unwrap_or_default();
            r.error(item.pos(), &item_field, format!("no check named {name}; {near}checks are {}", list_words(known)));
            continue;
        }
        names.push(name.to_owned());
    }
    (names.len() == items.len()).then_some(names)
}

/// The runbooks; their defaults and rules depend on `kind`, and on `with_compute`: a
/// plan with a compute section scales it by default, and only such a plan may name `scale`.
pub(super) fn read_runbooks(
    r: &mut Reader<'_>,
    top: &Mapping<'_>,
    kind: DatabaseKind,
    with_compute: bool,
    custom: &[&str],
) -> Option<Runbooks> {
    let defaults = kind.default_runbooks(with_compute);
    let Some(node) = top.get("runbooks") else {
        return Some(defaults);
    };
    if node.value == Value::Null {
        return Some(defaults);
    }
    let at = top.key("runbooks").map_or(node.pos(), Node::pos);
    let m = r.mapping(
        node,
        "runbooks",
        at,
        &RUNBOOK_FIELDS,
        &[],
        "a mapping like { failover: [fence, promote, switch, verify] }",
    )?;
    let failover = m
        .get("failover")
        .map_or(Some(defaults.failover), |n| steps(r, n, "runbooks.failover", kind, with_compute, custom));
    let switchover = m
        .get("switchover")
        .map_or(Some(defaults.switchover), |n| steps(r, n, "runbooks.switchover", kind, with_compute, custom));
    Some(Runbooks { failover: failover?, switchover: switchover? })
}

fn steps(
    r: &mut Reader<'_>,
    node: &Node,
    field: &str,
    kind: DatabaseKind,
    with_compute: bool,
    custom: &[&str],
) -> Option<Vec<StepKind>> {
    let builtin: Vec<&str> = StepKind::ALL.iter().map(|k| k.as_str()).collect();
    let valid: Vec<&str> = builtin.iter().chain(custom).copied().collect();
    let items = r.list(node, field, "a list of steps, e.g. [fence, promote, switch, verify]")?;
    if items.is_empty() {
        r.error(node.pos(), field, format!("is empty; list the steps to run, from {}", valid.join(", ")));
        return None;
    }
    let mut steps: Vec<StepKind> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_field = format!("{field}[{i}]");
        let Some(name) = r.text(item, &item_field, "a step name") else {
            continue;
        };
        let step = StepKind::from_name(name).or_else(|| custom.contains(&name).then(|| StepKind::custom(name)));
        // Built-in steps keep their order; the plan's own steps may stand anywhere.
        let prev_builtin = steps.iter().rev().find(|s| s.order().is_some());
        match step {
            Some(step) if steps.contains(&step) => {
                r.error(item.pos(), &item_field, format!("{name} is already in this runbook; each step runs once"))
            }
            Some(step) if step.order().is_some() && prev_builtin.is_some_and(|prev| prev.order() > step.order()) => {
                let prev = prev_builtin.expect("checked").as_str().to_owned();
                r.error(
                    item.pos(),
                    &item_field,
                    format!("{name} cannot come after {prev}; steps run in the order {}", builtin.join(", ")),
                );
                steps.push(step);
            }
            Some(step) => steps.push(step),
            None => {
                let near = closest(name, &valid).map(|n| format!("did you mean {n}? ")).unwrap_or_default();
                r.error(
                    item.pos(),
                    &item_field,
                    format!("unknown step '{name}'; {near}steps are {}", valid.join(", ")),
                );
            }
        }
    }
    if steps.len() != items.len() {
        return None;
    }
    let mut missing = required_steps(&steps, kind);
    if steps.contains(&StepKind::Scale) && !with_compute {
        missing.push("scale needs a compute section (there is nothing to scale); add compute or remove scale".into());
    }
    if !missing.is_empty() {
        r.error(node.pos(), field, missing.join("; "));
        return None;
    }
    Some(steps)
}

/// What a runbook must hold so that it can never leave two primaries, or verify
/// a traffic switch that never happened; and the steps a kind of database cannot take.
fn required_steps(steps: &[StepKind], kind: DatabaseKind) -> Vec<String> {
    use StepKind::*;
    let has = |s: &StepKind| steps.contains(s);
    let mut missing = Vec::new();
    if !has(&Promote) {
        missing.push("has no promote; every run moves the primary database".to_string());
    }
    for (step, why) in kind.cannot_run() {
        if has(step) {
            missing.push(format!("{} cannot run with database kind {kind}: {why}; remove it", step.as_str()));
        }
    }
    // A kind that cannot fence (Aurora) demotes the old writer in its own promotion: no fence step.
    if !has(&Fence) && kind.can_fence() {
        missing.push("has no fence; without it the old primary could keep accepting writes (two primaries)".into());
    }
    for (step, needs) in [(CatchUp, Fence), (Switch, Promote), (Verify, Switch), (Rejoin, Promote)] {
        if !kind.can_run(&step) {
            continue;
        }
        if has(&step) && !has(&needs) {
            missing.push(format!("{} needs {} in the same runbook", step.as_str(), needs.as_str()));
        }
    }
    missing
}
