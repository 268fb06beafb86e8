//! Deadlines shared by the adapters' waits: a wait for the world (a promotion, a change
//! going in sync, pods starting) polls, and each poll is one call that may itself hang.

use std::time::Instant;

/// Runs `call` for at most what is left until `deadline`; `None` when the time ran out first.
/// Polling loops bound each look with it, so one call that never returns cannot carry a
/// wait past its own deadline (a call's own timeout may be longer than what is left).
pub async fn before<T>(deadline: Instant, call: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), call).await.ok()
}
