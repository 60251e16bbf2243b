//! Housekeeping: forgetting idempotency records of quota requests once their
//! window has passed, web console sessions once they have ended, and raw
//! usage events once no event that old can be admitted, in small batches so
//! the writer is never held for long.

use jiff::{SignedDuration, Timestamp};
use tollgate_domain::metering;
use tollgate_store::{EventRetention, StoreError};

use crate::JobContext;

/// How long a quota request's `request_id` is remembered by default: a retry
/// within it replays the first answer; after it, the same id is a new request.
pub const DEFAULT_IDEMPOTENCY_WINDOW: SignedDuration = SignedDuration::from_hours(24);

/// Records deleted per transaction.
pub const PRUNE_BATCH: u32 = 1000;

/// Batches one pass of the job loop deletes at most (a backlog drains over
/// several ticks).
pub const PRUNE_BATCHES_PER_TICK: usize = 10;

/// Raw events deleted per transaction: a few milliseconds of the writer.
pub const PURGE_BATCH: u32 = 1000;

/// Batches of raw events one pass of the job loop deletes at most; a larger
/// backlog drains over the next ticks (the loop comes back at once while
/// one is left).
pub const PURGE_BATCHES_PER_TICK: usize = 100;

/// What housekeeping keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How long idempotency records of quota requests are kept (at least 24 hours).
    pub idempotency_window: SignedDuration,
    /// How long raw usage events are kept.
    pub raw_events: RawEvents,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            idempotency_window: DEFAULT_IDEMPOTENCY_WINDOW,
            raw_events: RawEvents::UntilFinalized,
        }
    }
}

/// How long raw usage events are kept. The hourly and daily rollups,
/// invoices and the audit log are always kept: reports and bills never read
/// raw events. What raw events are for is exactly-once counting (a re-sent
/// id is recognized) and `usage replay` (rollups rebuilt from them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawEvents {
    /// Until the period they fall in is finalized and the late-usage window
    /// after it has closed: an event is deleted once it is before the
    /// tenant's admission floor (the start of its latest finalized period),
    /// so no event that old can be admitted, and so none counted twice.
    UntilFinalized,
    /// As [`RawEvents::UntilFinalized`], and at least this long after the
    /// event's time.
    AtLeast(SignedDuration),
    /// Never deleted.
    Forever,
}

impl RawEvents {
    /// The time before which `tenant`'s raw events may be deleted at `now`,
    /// a whole hour never above its admission floor; `None` if none may.
    pub fn cut(self, tenant: &EventRetention, now: Timestamp) -> Option<Timestamp> {
        // Before any finalized period the floor is the tenant's start, and
        // there is nothing before it.
        tenant.latest_invoice_start?;
        let floor = metering::admission_floor(tenant.created_at, tenant.latest_invoice_start);
        match self {
            Self::UntilFinalized => Some(floor),
            Self::AtLeast(keep) => Some(floor.min(metering::hour_of(now - keep))),
            Self::Forever => None,
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

/// Deletes raw usage events that retention no longer keeps, at most
/// `batches` batches of [`PURGE_BATCH`] (each its own short transaction);
/// returns how many went. Tenants are visited in id order; one whose oldest
/// event is within retention costs nothing more than reading that event's time.
pub async fn purge_events(ctx: &JobContext, batches: usize) -> Result<u64, StoreError> {
    purge_events_timed(ctx, batches, |_| {}).await
}

/// [`purge_events`], telling `each_batch` how long each batch's
/// transaction took: how long it held the writer (`bench year` reports it).
pub async fn purge_events_timed(
    ctx: &JobContext,
    batches: usize,
    mut each_batch: impl FnMut(std::time::Duration) + Send,
) -> Result<u64, StoreError> {
    if ctx.retention.raw_events == RawEvents::Forever || batches == 0 {
        return Ok(0);
    }
    let now = ctx.clock.now();
    let mut left = batches;
    let mut purged = 0;
    for tenant in ctx.store.event_retention().await? {
        let (Some(oldest), Some(cut)) = (tenant.oldest_event, ctx.retention.raw_events.cut(&tenant, now))
        else {
            continue;
        };
        if oldest >= cut {
            continue;
        }
        let mut from_tenant = 0;
        while left > 0 {
            left -= 1;
            let started = std::time::Instant::now();
            let n = ctx
                .store
                .purge_events(&tenant.tenant_id, cut, PURGE_BATCH)
                .await?;
            each_batch(started.elapsed());
            from_tenant += n;
            if n < u64::from(PURGE_BATCH) {
                break;
            }
        }
        if from_tenant > 0 {
            tracing::debug!(tenant = tenant.tenant_id.as_str(), events = from_tenant, before = %cut, "deleted raw usage events past retention");
        }
        purged += from_tenant;
        if left == 0 {
            break;
        }
    }
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_domain::ids::TenantId;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tenant(latest: Option<&str>) -> EventRetention {
        EventRetention {
            tenant_id: TenantId::new("t"),
            created_at: t("2027-01-01T10:20:00Z"),
            latest_invoice_start: latest.map(t),
            oldest_event: Some(t("2027-01-01T10:30:00Z")),
        }
    }

    #[test]
    fn the_cut_is_the_admission_floor_or_older_and_a_whole_hour() {
        let now = t("2027-03-15T12:34:56Z");
        // Nothing finalized: every event can still be billed.
        for keep in [
            RawEvents::UntilFinalized,
            RawEvents::AtLeast(SignedDuration::ZERO),
            RawEvents::Forever,
        ] {
            assert_eq!(keep.cut(&tenant(None), now), None, "{keep:?}");
        }
        let finalized = tenant(Some("2027-03-01T00:00:00Z"));
        assert_eq!(
            RawEvents::UntilFinalized.cut(&finalized, now),
            Some(t("2027-03-01T00:00:00Z"))
        );
        assert_eq!(RawEvents::Forever.cut(&finalized, now), None);
        // At least 30 days: the hour 30 days ago, below the floor.
        assert_eq!(
            RawEvents::AtLeast(SignedDuration::from_hours(30 * 24)).cut(&finalized, now),
            Some(t("2027-02-13T12:00:00Z"))
        );
        // A short minimum changes nothing: the floor is lower.
        assert_eq!(
            RawEvents::AtLeast(SignedDuration::from_hours(1)).cut(&finalized, now),
            Some(t("2027-03-01T00:00:00Z"))
        );
        // A period that started before the tenant (its first, partial one):
        // the floor is the tenant's first hour.
        assert_eq!(
            RawEvents::UntilFinalized.cut(&tenant(Some("2027-01-01T00:00:00Z")), now),
            Some(t("2027-01-01T10:00:00Z"))
        );
    }
}
