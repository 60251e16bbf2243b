//! Usage ingestion, the one use case behind `POST …/usage/events` and
//! `tollgate usage import`: each event of a batch is checked against the
//! tenant's meters, the clock-skew rule and the admission floor, the valid
//! ones are stored in one transaction, and every event gets its outcome.
//! Each batch is timed (`tollgate_ingest_duration_seconds`) and its events
//! counted by outcome (`tollgate_usage_events_total`).

use jiff::{SignedDuration, Timestamp};
use tollgate_domain::catalog::Catalog;
use tollgate_domain::metering::{self, Admission, RawEvent};
use tollgate_domain::names::Name;
use tollgate_domain::tenant::Tenant;
use tollgate_store::{Store, StoreError};

/// Most events one batch holds (one API request, one import transaction).
pub const MAX_BATCH: usize = 1000;

/// How far in the future an event's timestamp may be, by default: reporters'
/// clocks are a little ahead at times (`serve --max-event-skew` changes it).
pub const DEFAULT_MAX_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// One event as reported, with the namespace it was reported for.
#[derive(Debug, Clone)]
pub struct Reported {
    pub namespace: Name,
    pub event: RawEvent,
}

/// What became of one event of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// Stored and counted.
    Accepted,
    /// Its id was stored before: acknowledged, not counted again.
    Duplicate,
    /// Not valid; the reason names the field.
    Rejected(String),
}

/// How many events of a batch had each outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
}

impl Tally {
    pub fn of(outcomes: &[EventOutcome]) -> Self {
        let mut t = Self::default();
        for o in outcomes {
            match o {
                EventOutcome::Accepted => t.accepted += 1,
                EventOutcome::Duplicate => t.duplicates += 1,
                EventOutcome::Rejected(_) => t.rejected += 1,
            }
        }
        t
    }
}

/// Ingests a batch of the tenant's events, rated by `catalog` (the tenant's
/// catalog version): events that break a rule are rejected with the reason
/// and the others stored, all in one transaction, so one bad event does not
/// stop the rest. Returns an outcome per event, in order.
pub async fn ingest(
    store: &dyn Store,
    tenant: &Tenant,
    catalog: &Catalog,
    max_skew: SignedDuration,
    now: Timestamp,
    batch: &[Reported],
) -> Result<Vec<EventOutcome>, StoreError> {
    let _timer = crate::telemetry::Timer::ingest();
    // Usage in the latest finalized period is still billed (as an
    // adjustment on the next invoice); anything older is refused.
    // Raw events before the retention mark are gone and could not be
    // recognized as duplicates: the floor never goes below it (it is at
    // or below the floor when set, but an invoice could be deleted).
    let bounds = store.usage_floor(&tenant.id).await?;
    let floor = metering::admission_floor(tenant.created_at, bounds.latest_invoice_start);
    let rules = Admission {
        meters: &catalog.meters,
        now,
        max_skew,
        floor: bounds.events_purged_before.map_or(floor, |p| p.max(floor)),
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut valid = Vec::new();
    let mut valid_at = Vec::new();
    for (i, r) in batch.iter().enumerate() {
        match metering::validate(&r.event, &r.namespace, rules) {
            Ok(event) => {
                valid.push(event);
                valid_at.push(i);
                outcomes.push(EventOutcome::Accepted);
            }
            Err(reason) => outcomes.push(EventOutcome::Rejected(reason)),
        }
    }
    if !valid.is_empty() {
        let new = store
            .ingest(&tenant.id, &valid, &catalog.aggregations(), now)
            .await?;
        for (fresh, i) in new.into_iter().zip(valid_at) {
            if !fresh {
                outcomes[i] = EventOutcome::Duplicate;
            }
        }
    }
    let (mut accepted, mut duplicate, mut rejected) = (0u64, 0u64, 0u64);
    for o in &outcomes {
        match o {
            EventOutcome::Accepted => accepted += 1,
            EventOutcome::Duplicate => duplicate += 1,
            EventOutcome::Rejected(_) => rejected += 1,
        }
    }
    for (outcome, n) in [
        ("accepted", accepted),
        ("duplicate", duplicate),
        ("rejected", rejected),
    ] {
        if n > 0 {
            metrics::counter!("tollgate_usage_events_total", "outcome" => outcome).increment(n);
        }
    }
    Ok(outcomes)
}

/// An event's properties as sent (a JSON object), as validation takes them:
/// each name with its value if that is a string (`None` otherwise, which
/// validation refuses naming it). The API and the CLI's import read them so.
pub fn raw_properties<I: IntoIterator<Item = (String, serde_json::Value)>>(
    properties: I,
) -> Vec<(String, Option<String>)> {
    properties
        .into_iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(s) => (name, Some(s)),
            _ => (name, None),
        })
        .collect()
}
