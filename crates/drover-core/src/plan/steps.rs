//! The steps a runbook names, and the runbooks themselves. Below the provider kinds,
//! which say which steps each kind can run.

/// A step a runbook can name. The engine knows how to observe and apply each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Make the old primary refuse writes (best effort when it is unreachable in a failover).
    Fence,
    /// Wait until the target has replayed all WAL the fenced old primary wrote.
    CatchUp,
    /// Raise the epoch, promote the target, and record the epoch in it.
    Promote,
    /// Raise the target region's compute to the plan's share of the primary's, and wait until it is ready.
    Scale,
    /// Point traffic at the target, conditional on the epoch.
    Switch,
    /// Run the plan's checks against the target until they pass.
    Verify,
    /// Make the old primary a streaming standby of the new one.
    Rejoin,
    /// Tell the plan's webhooks where the run stands (at least once; never waits for them).
    Notify,
}

impl StepKind {
    pub const ALL: [StepKind; 8] = [
        StepKind::Fence,
        StepKind::CatchUp,
        StepKind::Promote,
        StepKind::Scale,
        StepKind::Switch,
        StepKind::Verify,
        StepKind::Rejoin,
        StepKind::Notify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Fence => "fence",
            StepKind::CatchUp => "catch_up",
            StepKind::Promote => "promote",
            StepKind::Scale => "scale",
            StepKind::Switch => "switch",
            StepKind::Verify => "verify",
            StepKind::Rejoin => "rejoin",
            StepKind::Notify => "notify",
        }
    }

    /// Position in the only order runs may take them: fence before catch-up before
    /// promote, traffic only to a promoted target, the old primary rejoined last.
    pub fn order(self) -> usize {
        StepKind::ALL.iter().position(|&k| k == self).expect("every step is in ALL")
    }

    pub fn from_name(name: &str) -> Option<StepKind> {
        StepKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// The steps each kind of run takes. The defaults depend on the database kind
/// (`DatabaseKind::default_runbooks`); for postgres they are the ones below.
#[derive(Clone, Debug, PartialEq)]
pub struct Runbooks {
    /// Unplanned: default `[fence, promote, switch, verify]` (with `scale` after promote
    /// when the plan has compute).
    pub failover: Vec<StepKind>,
    /// Planned, zero data loss: default `[fence, catch_up, promote, switch, verify, rejoin]`
    /// (with `scale` after promote when the plan has compute).
    pub switchover: Vec<StepKind>,
}
