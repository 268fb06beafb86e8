//! The events a run raises, by kind: the words the plan's `notify` section subscribes
//! to and the notifiers send. Both the plan and the notifications use them, so they
//! live on a floor below both.

/// Something a responder may want to hear about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A failover or switchover began.
    RunStarted,
    /// A step failed and the run waits for a human (`drover resume` or `drover abort`).
    RunPaused,
    /// The target is primary and serves traffic.
    RunCompleted,
    /// Someone ended the run before it completed.
    RunAborted,
    /// A run drover started on its own waits for a human to approve it.
    ApprovalNeeded,
    /// drover found the primary region down but would not fail over (lag, cooldown, an active run…).
    FailoverRefused,
    /// A runbook's `notify` step: where the run stands (the steps done so far).
    RunProgress,
    /// A readiness rule's level changed in a region (`drover serve`'s readiness loop).
    ReadinessChanged,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::RunStarted,
        EventKind::RunPaused,
        EventKind::RunCompleted,
        EventKind::RunAborted,
        EventKind::ApprovalNeeded,
        EventKind::FailoverRefused,
        EventKind::RunProgress,
        EventKind::ReadinessChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RunStarted => "run_started",
            EventKind::RunPaused => "run_paused",
            EventKind::RunCompleted => "run_completed",
            EventKind::RunAborted => "run_aborted",
            EventKind::ApprovalNeeded => "approval_needed",
            EventKind::FailoverRefused => "failover_refused",
            EventKind::RunProgress => "run_progress",
            EventKind::ReadinessChanged => "readiness_changed",
        }
    }

    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Someone has to act now: the service may be down and drover is waiting.
    pub fn needs_a_human(self) -> bool {
        matches!(self, EventKind::RunPaused | EventKind::ApprovalNeeded | EventKind::FailoverRefused)
    }
}
