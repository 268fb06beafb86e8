//! The steps a runbook names, and the runbooks themselves. Below the provider kinds,
//! which say which steps each kind can run.

/// A step a runbook can name: a built-in one, or one of the plan's own (`steps:`). The
/// journal records it by name (`fence`, `warm-cache`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
    /// One of the plan's own steps (`steps.<name>`: an `http` call or an `exec` command).
    Custom(String),
}

impl StepKind {
    /// The built-in steps, in the only order runs may take them.
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

    pub fn as_str(&self) -> &str {
        match self {
            StepKind::Fence => "fence",
            StepKind::CatchUp => "catch_up",
            StepKind::Promote => "promote",
            StepKind::Scale => "scale",
            StepKind::Switch => "switch",
            StepKind::Verify => "verify",
            StepKind::Rejoin => "rejoin",
            StepKind::Notify => "notify",
            StepKind::Custom(name) => name,
        }
    }

    /// Position of a built-in step in the only order runs may take them: fence before
    /// catch-up before promote, traffic only to a promoted target, the old primary
    /// rejoined last. None for the plan's own steps, which may stand anywhere.
    pub fn order(&self) -> Option<usize> {
        StepKind::ALL.iter().position(|k| k == self)
    }

    /// The built-in step of that name.
    pub fn from_name(name: &str) -> Option<StepKind> {
        StepKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The plan's own step of that name.
    pub fn custom(name: &str) -> StepKind {
        StepKind::Custom(name.to_owned())
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for StepKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A name that is no built-in step is one of the plan's own: the plan reader refuses
/// custom steps named like built-in ones, so the two never meet.
impl<'de> serde::Deserialize<'de> for StepKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<StepKind, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(StepKind::from_name(&name).unwrap_or(StepKind::Custom(name)))
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
