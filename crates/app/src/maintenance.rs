//! Housekeeping: forgetting idempotency records of quota requests once their
//! window has passed, and web console sessions once they have ended, in
//! small batches so the writer is never held for long.

use jiff::SignedDuration;
use tollgate_store::StoreError;

use crate::JobContext;

/// How long a quota request's `request_id` is remembered by default: a retry
/// within it replays the first answer; after it, the same id is a new request.
pub const DEFAULT_IDEMPOTENCY_WINDOW: SignedDuration = SignedDuration::from_hours(24);

/// Records deleted per transaction.
pub const PRUNE_BATCH: u32 = 1000;

/// Batches one pass of the job loop deletes at most (a backlog drains over
/// several ticks).
pub const PRUNE_BATCHES_PER_TICK: usize = 10;

/// What housekeeping keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How long idempotency records of quota requests are kept (at least 24 hours).
    pub idempotency_window: SignedDuration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            idempotency_window: DEFAULT_IDEMPOTENCY_WINDOW,
        }
    }
}

/// Deletes idempotency records older than the window, at most `batches`
/// batches of [`PRUNE_BATCH`]; returns how many went. Ended console
/// sessions go too (one batch; not counted in the answer).
pub async fn prune(ctx: &JobContext, batches: usize) -> Result<u64, StoreError> {
    let now = ctx.clock.now();
    let sessions = ctx.store.prune_console_sessions(now, PRUNE_BATCH).await?;
    if sessions > 0 {
        tracing::debug!(sessions, "forgot ended console sessions");
    }
    let before = now - ctx.retention.idempotency_window;
    let mut pruned = 0;
    for _ in 0..batches {
        let n = ctx.store.prune_quota_requests(before, PRUNE_BATCH).await?;
        pruned += n;
        if n < u64::from(PRUNE_BATCH) {
            break;
        }
    }
    Ok(pruned)
}
