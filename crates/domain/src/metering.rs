//! Usage events and their hourly rollups.
//!
//! An event lands in the bucket of its tenant × namespace × metric × object ×
//! deployment × container × hour. Buckets combine events with the meter's
//! aggregation; combining is associative and commutative (sum, max, and
//! "latest" ordered by (timestamp, event id)), so any order of arrival, any
//! batching, and any replay give the same buckets.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::str::FromStr;

use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;

use crate::catalog::{Aggregation, Meter};
use crate::names::Name;

/// Longest event id, object name, deployment or container.
pub const MAX_TEXT: usize = 256;

/// A validated usage event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent {
    pub id: crate::ids::EventId,
    pub namespace: Name,
    pub metric_label: String,
    pub object_name: String,
    pub deployment: String,
    pub container: String,
    /// In the meter's unit; never negative.
    pub quantity: Decimal,
    pub at: Timestamp,
    /// What the reporter said about the event (e.g. `user_id`), stored with
    /// it; a unique-count meter counts the distinct values of one.
    pub properties: BTreeMap<String, String>,
}

/// Most properties one event may carry.
pub const MAX_PROPERTIES: usize = 16;
/// Longest property name.
pub const MAX_PROPERTY_NAME: usize = 64;

/// Checks an event's properties: at most [`MAX_PROPERTIES`], names of 1 to
/// [`MAX_PROPERTY_NAME`] letters, digits, `_`, `-` or `.`, values strings of
/// at most [`MAX_TEXT`] printable characters. `None` values were not strings.
pub fn properties(raw: &[(String, Option<String>)]) -> Result<BTreeMap<String, String>, String> {
    if raw.len() > MAX_PROPERTIES {
        return Err(format!("properties: at most {MAX_PROPERTIES}, got {}", raw.len()));
    }
    let mut out = BTreeMap::new();
    for (name, value) in raw {
        let valid_name = !name.is_empty()
            && name.chars().count() <= MAX_PROPERTY_NAME
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid_name {
            let shown: String = name.chars().take(MAX_PROPERTY_NAME).collect();
            return Err(format!(
                "properties: {shown:?} is not a property name (1 to {MAX_PROPERTY_NAME} letters, digits, _, - or .)"
            ));
        }
        let Some(value) = value else {
            return Err(format!("properties.{name}: must be a string"));
        };
        if value.chars().count() > MAX_TEXT || value.chars().any(char::is_control) {
            return Err(format!(
                "properties.{name}: at most {MAX_TEXT} printable characters"
            ));
        }
        out.insert(name.clone(), value.clone());
    }
    Ok(out)
}

/// An event as received, before validation.
#[derive(Debug, Clone, Default)]
pub struct RawEvent {
    pub id: Option<String>,
    pub metric_label: Option<String>,
    pub object_name: Option<String>,
    /// The quantity exactly as written (a JSON number or string).
    pub quantity: Option<String>,
    /// RFC 3339, or unix seconds.
    pub timestamp: Option<String>,
    pub deployment: Option<String>,
    pub container: Option<String>,
    /// Name and value of each property; a `None` value was not a string.
    pub properties: Vec<(String, Option<String>)>,
}

/// What an event must satisfy besides its own shape.
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    pub meters: &'a [Meter],
    pub now: Timestamp,
    /// How far in the future a timestamp may be (clock skew of reporters).
    pub max_skew: SignedDuration,
    /// Events before this are refused (the tenant's start, or the start of
    /// the last period that is no longer adjustable).
    pub floor: Timestamp,
}

/// The earliest time accepted from input (events, report ranges, CLI
/// flags): 0001-01-01T00:00:00Z.
pub const EARLIEST_TIME: Timestamp = Timestamp::constant(-62_135_596_800, 0);
/// The latest time accepted from input: 9999-01-01T00:00:00Z. A year short of
/// the end of what a timestamp can hold, so that every computation on an
/// accepted time (a report's 400 days, a billing period's months, the next
/// day or hour) stays representable.
pub const LATEST_TIME: Timestamp = Timestamp::constant(253_370_764_800, 0);

/// Parses a timestamp as RFC 3339 or unix seconds (with an optional
/// fraction, truncated to microseconds), within [`EARLIEST_TIME`] ..=
/// [`LATEST_TIME`]. The error says why, without a field name.
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    let s = s.trim();
    let shown = || {
        let mut t: String = s.chars().take(64).collect();
        if t.len() < s.len() {
            t.push('…');
        }
        t
    };
    let out_of_range = || {
        format!(
            "{:?} is outside the supported range {EARLIEST_TIME} to {LATEST_TIME}",
            shown()
        )
    };
    let at = match s.parse::<Timestamp>() {
        Ok(t) => t,
        Err(_) => {
            let seconds = Decimal::from_str(s)
                .map_err(|_| format!("{:?} is not an RFC 3339 time or unix seconds", shown()))?;
            seconds
                .checked_mul(Decimal::from(1_000_000))
                .and_then(|micros| i64::try_from(micros.trunc()).ok())
                .and_then(|micros| Timestamp::from_microsecond(micros).ok())
                .ok_or_else(out_of_range)?
        }
    };
    if !(EARLIEST_TIME..=LATEST_TIME).contains(&at) {
        return Err(out_of_range());
    }
    Ok(at)
}

fn text(field: &str, value: Option<&str>, required: bool) -> Result<String, String> {
    let v = value.unwrap_or("").trim();
    if required && v.is_empty() {
        return Err(format!("{field}: is required"));
    }
    if v.chars().count() > MAX_TEXT || v.chars().any(char::is_control) {
        return Err(format!("{field}: at most {MAX_TEXT} printable characters"));
    }
    Ok(v.to_owned())
}

/// The largest quantity one event may carry (10^18: an exabyte, or a
/// billion billion requests). Sums of far more events than any tenant sends
/// still fit a decimal; arithmetic on quantities saturates beyond that.
pub const MAX_QUANTITY: Decimal = Decimal::from_parts(2_808_348_672, 232_830_643, 0, false, 0);

/// Checks one event; the error is the reason it is refused.
pub fn validate(raw: &RawEvent, namespace: &Name, rules: Admission<'_>) -> Result<UsageEvent, String> {
    let id = text("id", raw.id.as_deref(), true)?;
    let metric_label = text("metric_label", raw.metric_label.as_deref(), true)?;
    if !rules.meters.iter().any(|m| m.metric_label == metric_label) {
        return Err(format!("metric_label: unknown metric {metric_label:?}"));
    }
    let object_name = text("object_name", raw.object_name.as_deref(), false)?;
    let deployment = text("deployment", raw.deployment.as_deref(), false)?;
    let container = text("container", raw.container.as_deref(), false)?;
    let literal = raw.quantity.as_deref().map(str::trim).unwrap_or("");
    let meter = rules.meters.iter().find(|m| m.metric_label == metric_label);
    let counted = meter.is_some_and(|m| {
        matches!(
            m.aggregation,
            crate::catalog::Aggregation::Count | crate::catalog::Aggregation::UniqueCount
        )
    });
    // A count meter counts events: its quantity may be left out.
    let literal = if literal.is_empty() && counted {
        "1"
    } else {
        literal
    };
    if literal.is_empty() {
        return Err("quantity: is required".into());
    }
    let quantity = if literal.contains(['e', 'E']) {
        Decimal::from_scientific(literal)
    } else {
        Decimal::from_str(literal)
    }
    .map_err(|_| format!("quantity: {literal:?} is not a finite number"))?;
    if quantity.is_sign_negative() && !quantity.is_zero() {
        return Err(format!("quantity: must not be negative, got {literal}"));
    }
    if quantity > MAX_QUANTITY {
        return Err(format!(
            "quantity: at most {MAX_QUANTITY} per event, got {literal}"
        ));
    }
    let stamp = raw.timestamp.as_deref().unwrap_or("").trim();
    if stamp.is_empty() {
        return Err("timestamp: is required".into());
    }
    let at = parse_time(stamp).map_err(|why| format!("timestamp: {why}"))?;
    // The skew comes from configuration: saturate rather than overflow.
    let latest = rules.now.saturating_add(rules.max_skew).unwrap_or(Timestamp::MAX);
    if at > latest {
        return Err(format!("timestamp: {at} is in the future (now {})", rules.now));
    }
    if at < rules.floor {
        return Err(format!(
            "timestamp: {at} is before {}, the earliest time this tenant can still report",
            rules.floor
        ));
    }
    let properties = properties(&raw.properties)?;
    if let Some(p) = meter.and_then(|m| m.property.as_deref())
        && !properties.contains_key(p)
    {
        return Err(format!(
            "properties.{p}: is required: meter {metric_label:?} counts its distinct values"
        ));
    }
    Ok(UsageEvent {
        id: crate::ids::EventId::new(id),
        namespace: namespace.clone(),
        metric_label,
        object_name,
        deployment,
        container,
        quantity: quantity.normalize(),
        at,
        properties,
    })
}

/// The start of the hour containing `at` (UTC).
pub fn hour_of(at: Timestamp) -> Timestamp {
    let secs = at.as_second().div_euclid(3600) * 3600;
    Timestamp::from_second(secs).unwrap_or(at)
}

/// The earliest time usage of a tenant is still accepted: the start of the
/// hour in which the tenant started, or in which its latest finalized
/// invoice's period started. Hours, because usage is billed by the hour (the
/// bucket holding that instant belongs to that first period), and so that a
/// reporter whose clock is a little behind is not refused at the start.
pub fn admission_floor(tenant_start: Timestamp, latest_finalized: Option<Timestamp>) -> Timestamp {
    hour_of(latest_finalized.map_or(tenant_start, |f| f.max(tenant_start)))
}

/// How a time range maps onto hourly buckets, whose granularity is coarser
/// than the range's ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Billing periods partition the hours: an hour belongs to the period in
    /// which it ends. Adjacent periods never share or miss an hour, and a
    /// tenant's first, partial hour is billed in its first period.
    Period,
    /// An arbitrary report range covers every hour that overlaps it.
    Overlap,
}

/// The bucket hours `[first, end)` that the range `[from, to)` covers.
pub fn bucket_hours(from: Timestamp, to: Timestamp, coverage: Coverage) -> (Timestamp, Timestamp) {
    match coverage {
        Coverage::Period => (hour_of(from), hour_of(to)),
        Coverage::Overlap => (hour_of(from), to),
    }
}

/// Identifies one hourly bucket of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketKey {
    pub hour: Timestamp,
    pub namespace: String,
    pub metric_label: String,
    pub object_name: String,
    pub deployment: String,
    pub container: String,
}

impl BucketKey {
    pub fn of(e: &UsageEvent) -> Self {
        Self {
            hour: hour_of(e.at),
            namespace: e.namespace.to_string(),
            metric_label: e.metric_label.clone(),
            object_name: e.object_name.clone(),
            deployment: e.deployment.clone(),
            container: e.container.clone(),
        }
    }
}

/// The aggregate of one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub quantity: Decimal,
    /// The (timestamp, event id) of the event a "latest" meter took its value from.
    pub latest: Option<(Timestamp, String)>,
    pub events: i64,
}

impl Bucket {
    /// A bucket holding one event of a meter aggregating by `aggregation`
    /// (a `count` meter's event counts 1, whatever its quantity).
    pub fn of(e: &UsageEvent, aggregation: Aggregation) -> Self {
        Self {
            quantity: if matches!(aggregation, Aggregation::Count | Aggregation::UniqueCount) {
                Decimal::ONE
            } else {
                e.quantity
            },
            latest: Some((e.at, e.id.as_str().to_owned())),
            events: 1,
        }
    }

    /// Combines two aggregates of the same bucket.
    pub fn merge(&self, other: &Bucket, aggregation: Aggregation) -> Bucket {
        let later = |a: &Bucket, b: &Bucket| match (&a.latest, &b.latest) {
            (Some(x), Some(y)) => x.cmp(y) != Ordering::Less,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let newest = if later(self, other) { self } else { other };
        let quantity = match aggregation {
            Aggregation::Sum | Aggregation::Count | Aggregation::UniqueCount => {
                self.quantity.saturating_add(other.quantity)
            }
            Aggregation::Max => self.quantity.max(other.quantity),
            Aggregation::Latest => newest.quantity,
        };
        Bucket {
            quantity: quantity.normalize(),
            latest: newest.latest.clone(),
            events: self.events + other.events,
        }
    }
}

/// One object of a tenant: what a report line is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub metric_label: String,
    pub object_name: String,
}

impl ObjectKey {
    pub fn of(k: &BucketKey) -> Self {
        Self {
            namespace: k.namespace.clone(),
            metric_label: k.metric_label.clone(),
            object_name: k.object_name.clone(),
        }
    }
}

/// What reports need of one object over a set of hours. An *hour total* adds
/// up the object's deployments and containers in that hour; over the hours,
/// reports want the sum (sum meters), the peak (max meters) or the latest
/// hour's total (latest meters). Hour totals of sum and max meters never
/// decrease as events arrive, so a day's summary can be kept incrementally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectUsage {
    /// Sum of the hour totals.
    pub total: Decimal,
    /// The largest hour total.
    pub peak: Decimal,
    /// The latest hour with usage, and its total.
    pub last: Option<(Timestamp, Decimal)>,
}

impl ObjectUsage {
    /// One hour's total.
    pub fn hour(hour: Timestamp, total: Decimal) -> Self {
        Self {
            total,
            peak: total,
            last: Some((hour, total)),
        }
    }

    /// Adds the usage of other (disjoint) hours.
    pub fn merge(&mut self, other: &ObjectUsage) {
        self.total = self.total.saturating_add(other.total);
        self.peak = self.peak.max(other.peak);
        if let Some((at, q)) = other.last
            && self.last.is_none_or(|(mine, _)| at >= mine)
        {
            self.last = Some((at, q));
        }
    }

    /// The report quantity under a meter's aggregation.
    pub fn quantity(&self, aggregation: Aggregation) -> Decimal {
        match aggregation {
            // A unique count's buckets count events; its quantities are
            // read from the distinct values (`usage_distinct`) instead.
            Aggregation::Sum | Aggregation::Count | Aggregation::UniqueCount => self.total,
            Aggregation::Max => self.peak,
            Aggregation::Latest => self.last.map_or(Decimal::ZERO, |(_, q)| q),
        }
        .normalize()
    }
}

/// The hour totals of each object in a set of buckets.
pub fn hour_totals<'a>(
    buckets: impl IntoIterator<Item = (&'a BucketKey, &'a Bucket)>,
) -> std::collections::BTreeMap<(ObjectKey, Timestamp), Decimal> {
    let mut out: std::collections::BTreeMap<(ObjectKey, Timestamp), Decimal> = Default::default();
    for (k, b) in buckets {
        let q = out.entry((ObjectKey::of(k), k.hour)).or_default();
        *q = q.saturating_add(b.quantity);
    }
    out
}

/// Each object's usage over a set of hourly buckets.
pub fn object_usage<'a>(
    buckets: impl IntoIterator<Item = (&'a BucketKey, &'a Bucket)>,
) -> std::collections::BTreeMap<ObjectKey, ObjectUsage> {
    let mut out: std::collections::BTreeMap<ObjectKey, ObjectUsage> = Default::default();
    for ((object, hour), total) in hour_totals(buckets) {
        out.entry(object)
            .or_default()
            .merge(&ObjectUsage::hour(hour, total));
    }
    out
}

/// The quantity of each metric over its objects' usage: objects'
/// quantities (see [`ObjectUsage::quantity`]) summed per metric.
pub fn metric_quantities<'a>(
    aggregation_of: impl Fn(&str) -> Aggregation,
    objects: impl IntoIterator<Item = (&'a ObjectKey, &'a ObjectUsage)>,
) -> std::collections::BTreeMap<String, Decimal> {
    let mut out: std::collections::BTreeMap<String, Decimal> = Default::default();
    for (k, usage) in objects {
        let q = out.entry(k.metric_label.clone()).or_default();
        *q = q
            .saturating_add(usage.quantity(aggregation_of(&k.metric_label)))
            .normalize();
    }
    out
}

/// The start of the UTC day containing `at`.
pub fn day_of(at: Timestamp) -> Timestamp {
    let secs = at.as_second().div_euclid(86_400) * 86_400;
    Timestamp::from_second(secs).unwrap_or(at)
}

/// A half-open time range `[start, end)`.
pub type Span = (Timestamp, Timestamp);

/// How a range of bucket hours `[from, to)` splits into whole UTC days,
/// read from daily summaries, and the hours at its edges, read from hourly
/// buckets: `(days, edge hour ranges)`.
pub fn split_days(from: Timestamp, to: Timestamp) -> (Option<Span>, Vec<Span>) {
    let day = jiff::SignedDuration::from_hours(24);
    let first_day = if day_of(from) == from {
        from
    } else {
        // The last day a timestamp can hold has no next day: all edge hours.
        day_of(from).checked_add(day).unwrap_or(Timestamp::MAX)
    };
    let end_day = day_of(to);
    if first_day >= end_day {
        return (None, if from < to { vec![(from, to)] } else { Vec::new() });
    }
    let edges = [(from, first_day), (end_day, to)]
        .into_iter()
        .filter(|(a, b)| a < b)
        .collect();
    (Some((first_day, end_day)), edges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn raw(id: &str, metric: &str, q: &str, at: &str) -> RawEvent {
        RawEvent {
            id: Some(id.into()),
            metric_label: Some(metric.into()),
            object_name: Some("lb-1".into()),
            quantity: Some(q.into()),
            timestamp: Some(at.into()),
            deployment: None,
            container: None,
            properties: Vec::new(),
        }
    }

    #[test]
    fn events_are_validated_with_a_reason() {
        let catalog = Catalog::builtin();
        let ns = Name::system();
        let rules = Admission {
            meters: &catalog.meters,
            now: t("2026-11-20T10:00:00Z"),
            max_skew: SignedDuration::from_mins(5),
            floor: t("2026-11-01T00:00:00Z"),
        };
        let ok = validate(
            &raw("e1", "lb_requests", "12.50", "2026-11-20T09:00:00Z"),
            &ns,
            rules,
        )
        .unwrap();
        assert_eq!(ok.quantity, Decimal::new(125, 1));
        let unix = validate(&raw("e2", "lb_requests", "1e3", "1795165200"), &ns, rules).unwrap();
        assert_eq!(
            (unix.quantity, unix.at),
            (Decimal::from(1000), t("2026-11-20T09:00:00Z"))
        );
        let reasons = [
            (
                raw("", "lb_requests", "1", "2026-11-20T09:00:00Z"),
                "id: is required",
            ),
            (
                raw("e", "beer", "1", "2026-11-20T09:00:00Z"),
                "metric_label: unknown metric \"beer\"",
            ),
            (
                raw("e", "lb_requests", "-1", "2026-11-20T09:00:00Z"),
                "quantity: must not be negative",
            ),
            (
                raw("e", "lb_requests", "NaN", "2026-11-20T09:00:00Z"),
                "quantity: \"NaN\" is not a finite number",
            ),
            (
                raw("e", "lb_requests", "Infinity", "2026-11-20T09:00:00Z"),
                "quantity: \"Infinity\" is not a finite",
            ),
            (
                raw("e", "lb_requests", "1e400", "2026-11-20T09:00:00Z"),
                "quantity: ",
            ),
            (
                raw(
                    "e",
                    "lb_requests",
                    "1000000000000000000.1",
                    "2026-11-20T09:00:00Z",
                ),
                "quantity: at most 1000000000000000000 per event",
            ),
            (
                raw("e", "lb_requests", "1", "2026-11-20T10:06:00Z"),
                "is in the future",
            ),
            (
                raw("e", "lb_requests", "1", "2026-10-31T23:59:59Z"),
                "is before 2026-11-01T00:00:00Z",
            ),
            (
                raw("e", "lb_requests", "1", "yesterday"),
                "timestamp: \"yesterday\" is not an RFC 3339 time",
            ),
        ];
        for (event, reason) in reasons {
            let got = validate(&event, &ns, rules).unwrap_err();
            assert!(
                got.starts_with(reason) || got.contains(reason),
                "{got} vs {reason}"
            );
        }
        // Within the allowed skew is fine.
        assert!(validate(&raw("e", "lb_requests", "1", "2026-11-20T10:04:59Z"), &ns, rules).is_ok());
    }

    #[test]
    fn times_outside_the_supported_range_are_refused_with_a_reason() {
        let ok = |s: &str| parse_time(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("0001-01-01T00:00:00Z"), EARLIEST_TIME);
        assert_eq!(ok("9999-01-01T00:00:00Z"), LATEST_TIME);
        assert_eq!(ok("-62135596800"), EARLIEST_TIME);
        assert_eq!(ok("253370764800"), LATEST_TIME);
        assert_eq!(ok(" 1795165200.5 "), t("2026-11-20T09:00:00.5Z"));
        // Digits beyond microseconds are truncated, however many.
        assert_eq!(
            ok("1795165200.9999999999999999"),
            t("2026-11-20T09:00:00.999999Z")
        );
        for (input, reason) in [
            ("1e23", "is outside the supported range"),
            ("-1e23", "is outside the supported range"),
            ("1e-30", "is not an RFC 3339 time or unix seconds"),
            ("100000000000000000000000", "is outside the supported range"),
            ("-100000000000000000000000", "is outside the supported range"),
            ("79228162514264337593543950335", "is outside the supported range"),
            ("9999-12-31T23:59:59Z", "is not an RFC 3339 time"),
            ("9999-12-30T22:00:00.999999999Z", "is outside the supported range"),
            ("-009999-01-01T00:00:00Z", "is not an RFC 3339 time"),
            ("-009999-01-02T01:59:59Z", "is outside the supported range"),
            ("0000-12-31T23:59:59Z", "is outside the supported range"),
            ("9999-01-01T00:00:00.000001Z", "is outside the supported range"),
            ("253402300800", "is outside the supported range"),
            ("253370764800.000001", "is outside the supported range"),
            ("-62135596800.000001", "is outside the supported range"),
            ("NaN", "is not an RFC 3339 time"),
            ("inf", "is not an RFC 3339 time"),
            ("", "is not an RFC 3339 time"),
        ] {
            let got = parse_time(input).expect_err(input);
            assert!(got.contains(reason), "{input}: {got}");
        }
        // Long inputs are not echoed in full.
        let long = "9".repeat(10_000);
        assert!(parse_time(&long).unwrap_err().len() < 200);
    }

    #[test]
    fn the_skew_saturates_and_the_last_day_has_no_next_day() {
        let catalog = Catalog::builtin();
        let rules = Admission {
            meters: &catalog.meters,
            now: t("2026-11-20T10:00:00Z"),
            max_skew: SignedDuration::MAX,
            floor: t("2026-11-01T00:00:00Z"),
        };
        let e = raw("e", "lb_requests", "1", "9999-01-01T00:00:00Z");
        assert!(validate(&e, &Name::system(), rules).is_ok());
        let last = day_of(Timestamp::MAX);
        assert_eq!(
            split_days(last + SignedDuration::from_hours(1), Timestamp::MAX),
            (None, vec![(last + SignedDuration::from_hours(1), Timestamp::MAX)])
        );
        assert_eq!(hour_of(Timestamp::MIN), Timestamp::MIN);
    }

    #[test]
    fn quantities_of_any_size_are_accepted_or_refused_with_a_reason() {
        let catalog = Catalog::builtin();
        let rules = Admission {
            meters: &catalog.meters,
            now: t("2026-11-20T10:00:00Z"),
            max_skew: SignedDuration::from_mins(5),
            floor: t("2026-11-01T00:00:00Z"),
        };
        for q in [
            "1e23",
            "-1e23",
            "1e18",
            "1e-28",
            "1e-29",
            "1e4294967296",
            "1e-4294967296",
            "0.00000000000000000000000000000000001",
            "79228162514264337593543950335",
            "79228162514264337593543950336",
            "-0",
            "NaN",
            "-inf",
            "0x10",
        ] {
            match validate(&raw("e", "lb_requests", q, "1795165200"), &Name::system(), rules) {
                Ok(e) => assert!(
                    !e.quantity.is_sign_negative() && e.quantity <= MAX_QUANTITY,
                    "{q}"
                ),
                Err(reason) => assert!(reason.starts_with("quantity: "), "{q}: {reason}"),
            }
        }
    }

    proptest! {
        /// No string makes the time parser panic; what it accepts is in range.
        #[test]
        fn parse_time_never_panics(s in "\\PC{0,40}") {
            if let Ok(at) = parse_time(&s) {
                prop_assert!((EARLIEST_TIME..=LATEST_TIME).contains(&at));
            }
        }

        /// Numbers of every size, as integers, decimals with long fractions
        /// and floats as JSON numbers print them.
        #[test]
        fn parse_time_of_any_number_never_panics(
            int in proptest::num::i128::ANY,
            frac in "[0-9]{0,40}",
            float in proptest::num::f64::ANY,
        ) {
            for s in [int.to_string(), format!("{int}.{frac}"), format!("-0.{frac}"), float.to_string()] {
                if let Ok(at) = parse_time(&s) {
                    prop_assert!((EARLIEST_TIME..=LATEST_TIME).contains(&at), "{}", s);
                }
            }
        }

        /// No timestamp or quantity text makes validation panic.
        #[test]
        fn validation_never_panics(quantity in "\\PC{0,40}", stamp in "\\PC{0,40}", number in proptest::num::f64::ANY) {
            let catalog = Catalog::builtin();
            let rules = Admission {
                meters: &catalog.meters,
                now: t("2026-11-20T10:00:00Z"),
                max_skew: SignedDuration::from_mins(5),
                floor: t("2026-11-01T00:00:00Z"),
            };
            for (q, at) in [(quantity.as_str(), stamp.as_str()), (&*number.to_string(), "1795165200"), ("1", &*number.to_string())] {
                let _ = validate(&raw("e", "lb_requests", q, at), &Name::system(), rules);
            }
        }

        /// Any range of hours, up to the ends of time, splits into days and edges.
        #[test]
        fn split_days_never_panics(a in proptest::num::i64::ANY, b in proptest::num::i64::ANY) {
            let clamp = |x: i64| x.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
            let (a, b) = (clamp(a), clamp(b));
            let (from, to) = (Timestamp::from_second(a.min(b)).unwrap(), Timestamp::from_second(a.max(b)).unwrap());
            let (from, to) = (hour_of(from), hour_of(to));
            let (days, edges) = split_days(from, to);
            for (x, y) in days.into_iter().chain(edges) {
                prop_assert!(from <= x && x < y && y <= to);
            }
        }
    }

    #[test]
    fn the_largest_quantity_is_accepted_and_sums_saturate() {
        assert_eq!(MAX_QUANTITY, Decimal::from(1_000_000_000_000_000_000_i64));
        let catalog = Catalog::builtin();
        let rules = Admission {
            meters: &catalog.meters,
            now: t("2026-11-20T10:00:00Z"),
            max_skew: SignedDuration::from_mins(5),
            floor: t("2026-11-01T00:00:00Z"),
        };
        let e = validate(
            &raw("e", "lb_requests", "1e18", "2026-11-20T09:00:00Z"),
            &Name::system(),
            rules,
        )
        .unwrap();
        assert_eq!(e.quantity, MAX_QUANTITY);
        let big = Bucket {
            quantity: Decimal::MAX,
            latest: None,
            events: 1,
        };
        assert_eq!(
            big.merge(&Bucket::of(&e, Aggregation::Sum), Aggregation::Sum)
                .quantity,
            Decimal::MAX
        );
        let key = BucketKey::of(&e);
        let items = [(key.clone(), big.clone()), (key, big)];
        let by_metric = metric_quantities(
            |_| Aggregation::Sum,
            &object_usage(items.iter().map(|(k, b)| (k, b))),
        );
        assert_eq!(by_metric["lb_requests"], Decimal::MAX);
    }

    #[test]
    fn the_floor_is_the_hour_of_the_start_or_of_the_latest_finalized_period() {
        let start = t("2026-11-20T10:30:00.5Z");
        assert_eq!(admission_floor(start, None), t("2026-11-20T10:00:00Z"));
        assert_eq!(
            admission_floor(start, Some(t("2026-12-20T10:30:00.5Z"))),
            t("2026-12-20T10:00:00Z")
        );
        assert_eq!(
            admission_floor(start, Some(t("2026-01-01T00:00:00Z"))),
            t("2026-11-20T10:00:00Z")
        );
    }

    #[test]
    fn period_coverage_partitions_hours_and_overlap_covers_them() {
        let (a, b, c) = (
            t("2026-11-20T10:30:00Z"),
            t("2026-12-20T10:30:00Z"),
            t("2027-01-20T10:30:00Z"),
        );
        let first = bucket_hours(a, b, Coverage::Period);
        let second = bucket_hours(b, c, Coverage::Period);
        assert_eq!(first, (t("2026-11-20T10:00:00Z"), t("2026-12-20T10:00:00Z")));
        assert_eq!(first.1, second.0, "adjacent periods share no hour and miss none");
        assert_eq!(
            bucket_hours(a, t("2026-11-20T12:15:00Z"), Coverage::Overlap),
            (t("2026-11-20T10:00:00Z"), t("2026-11-20T12:15:00Z"))
        );
    }

    #[test]
    fn hours_floor_to_utc_hour_starts() {
        assert_eq!(hour_of(t("2026-11-20T09:59:59.999Z")), t("2026-11-20T09:00:00Z"));
        assert_eq!(hour_of(t("2026-11-20T10:00:00Z")), t("2026-11-20T10:00:00Z"));
        assert_eq!(hour_of(t("1969-12-31T23:30:00Z")), t("1969-12-31T23:00:00Z"));
    }

    fn event(id: u32, q: u32, minute: u32) -> UsageEvent {
        UsageEvent {
            id: format!("e{id}").into(),
            namespace: Name::system(),
            metric_label: "m".into(),
            object_name: "o".into(),
            deployment: String::new(),
            container: String::new(),
            quantity: Decimal::new(q.into(), 2),
            at: t("2026-11-20T09:00:00Z") + SignedDuration::from_mins(minute.into()),
            properties: BTreeMap::new(),
        }
    }

    fn rollup(events: &[UsageEvent], aggregation: Aggregation) -> BTreeMap<BucketKey, Bucket> {
        let mut out: BTreeMap<BucketKey, Bucket> = BTreeMap::new();
        for e in events {
            let b = Bucket::of(e, aggregation);
            out.entry(BucketKey::of(e))
                .and_modify(|x| *x = x.merge(&b, aggregation))
                .or_insert(b);
        }
        out
    }

    #[test]
    fn report_quantities_add_containers_then_aggregate_hours() {
        let key = |hour: &str, object: &str, container: &str| BucketKey {
            hour: t(hour),
            namespace: "system".into(),
            metric_label: "m".into(),
            object_name: object.into(),
            deployment: String::new(),
            container: container.into(),
        };
        let b = |q: i64| Bucket {
            quantity: Decimal::from(q),
            latest: None,
            events: 1,
        };
        let buckets = [
            (key("2026-11-20T09:00:00Z", "a", "c1"), b(3)),
            (key("2026-11-20T09:00:00Z", "a", "c2"), b(4)),
            (key("2026-11-20T10:00:00Z", "a", "c1"), b(5)),
            (key("2026-11-20T09:00:00Z", "b", "c1"), b(10)),
        ];
        let a: Vec<_> = buckets
            .iter()
            .filter(|(k, _)| k.object_name == "a")
            .map(|(k, v)| (k, v))
            .collect();
        let a = &object_usage(a)[&ObjectKey::of(&buckets[0].0)];
        assert_eq!(a.quantity(Aggregation::Sum), Decimal::from(12));
        assert_eq!(a.quantity(Aggregation::Max), Decimal::from(7), "peak hour: 3 + 4");
        assert_eq!(a.quantity(Aggregation::Latest), Decimal::from(5));
        let per_metric = metric_quantities(
            |_| Aggregation::Max,
            &object_usage(buckets.iter().map(|(k, b)| (k, b))),
        );
        assert_eq!(per_metric["m"], Decimal::from(17), "peaks of a (7) and b (10)");
    }

    #[test]
    fn ranges_split_into_whole_days_and_edge_hours() {
        let r = |a: &str, b: &str| (t(a), t(b));
        assert_eq!(
            split_days(t("2026-11-20T10:00:00Z"), t("2026-12-20T10:00:00Z")),
            (
                Some(r("2026-11-21T00:00:00Z", "2026-12-20T00:00:00Z")),
                vec![
                    r("2026-11-20T10:00:00Z", "2026-11-21T00:00:00Z"),
                    r("2026-12-20T00:00:00Z", "2026-12-20T10:00:00Z")
                ]
            )
        );
        assert_eq!(
            split_days(t("2026-11-01T00:00:00Z"), t("2026-12-01T00:00:00Z")),
            (Some(r("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")), vec![])
        );
        assert_eq!(
            split_days(t("2026-11-20T10:00:00Z"), t("2026-11-21T05:00:00Z")),
            (None, vec![r("2026-11-20T10:00:00Z", "2026-11-21T05:00:00Z")])
        );
        assert_eq!(
            split_days(t("2026-11-20T10:00:00Z"), t("2026-11-20T10:00:00Z")),
            (None, vec![])
        );
    }

    proptest! {
        /// Summaries of whole days merged with the edge hours give what the
        /// hours themselves give, for every aggregation and any range.
        #[test]
        fn day_summaries_and_edges_equal_the_hours(
            hours in proptest::collection::vec((0i64..24 * 6, 0u32..5, 0i64..1000), 0..80),
            from in 0i64..24 * 6,
            len in 0i64..24 * 6,
        ) {
            let base = t("2026-11-01T00:00:00Z");
            let at = |h: i64| base + SignedDuration::from_hours(h);
            let buckets: BTreeMap<BucketKey, Bucket> = hours
                .iter()
                .map(|(h, c, q)| {
                    (
                        BucketKey {
                            hour: at(*h),
                            namespace: "system".into(),
                            metric_label: "m".into(),
                            object_name: "o".into(),
                            deployment: String::new(),
                            container: format!("c{c}"),
                        },
                        Bucket { quantity: Decimal::from(*q), latest: None, events: 1 },
                    )
                })
                .collect();
            let (from, to) = (at(from), at(from + len));
            let in_range = |a: Timestamp, b: Timestamp| {
                object_usage(buckets.iter().filter(move |(k, _)| k.hour >= a && k.hour < b))
            };
            let want = in_range(from, to);
            let (days, edges) = split_days(from, to);
            let mut got: BTreeMap<ObjectKey, ObjectUsage> = BTreeMap::new();
            if let Some((d0, d1)) = days {
                let mut d = d0;
                while d < d1 {
                    for (k, u) in in_range(d, d + SignedDuration::from_hours(24)) {
                        got.entry(k).or_default().merge(&u);
                    }
                    d += SignedDuration::from_hours(24);
                }
            }
            for (a, b) in edges {
                for (k, u) in in_range(a, b) {
                    got.entry(k).or_default().merge(&u);
                }
            }
            for agg in Aggregation::ALL.iter().copied() {
                let q = |m: &BTreeMap<ObjectKey, ObjectUsage>| m.values().next().map(|u| u.quantity(agg));
                prop_assert_eq!(q(&got), q(&want));
            }
        }
    }

    /// A count meter's bucket counts events, whatever their quantities.
    #[test]
    fn a_count_meter_counts_events() {
        let events: Vec<UsageEvent> = (0..5).map(|i| event(i, 1000 + i * 7, i)).collect();
        let buckets = rollup(&events, Aggregation::Count);
        let b = buckets.values().next().unwrap();
        assert_eq!((b.quantity, b.events), (Decimal::from(5), 5));
        let usage = object_usage(buckets.iter());
        assert_eq!(
            usage.values().next().unwrap().quantity(Aggregation::Count),
            Decimal::from(5)
        );
    }

    #[test]
    fn properties_are_bounded_strings_with_plain_names() {
        let p = |pairs: &[(&str, Option<&str>)]| {
            properties(
                &pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
                    .collect::<Vec<_>>(),
            )
        };
        let ok = p(&[("user_id", Some("alice")), ("region.eu-1", Some(""))]).unwrap();
        assert_eq!(ok.len(), 2);
        assert!(
            p(&[("user id", Some("x"))])
                .unwrap_err()
                .contains("not a property name")
        );
        assert!(p(&[("", Some("x"))]).is_err());
        assert_eq!(p(&[("n", None)]).unwrap_err(), "properties.n: must be a string");
        let long = "x".repeat(MAX_TEXT + 1);
        assert!(p(&[("n", Some(&long))]).unwrap_err().contains("at most"));
        let many: Vec<(String, Option<String>)> = (0..=MAX_PROPERTIES)
            .map(|i| (format!("k{i}"), Some("v".to_owned())))
            .collect();
        assert!(
            properties(&many)
                .unwrap_err()
                .starts_with("properties: at most 16")
        );
    }

    proptest! {
        /// Any order and any grouping of the same events gives the same
        /// bill under every price model (the invoice is the bill's lines).
        #[test]
        fn any_event_order_or_grouping_gives_the_same_bill(
            specs in proptest::collection::vec((0u32..2_000, 0u32..3_000), 1..50),
            seed in proptest::collection::vec(0usize..1000, 50),
            split in 0usize..50,
        ) {
            let catalog = crate::catalog::parse("priced.toml", crate::catalog::tests::PRICED).unwrap();
            let events: Vec<UsageEvent> = specs
                .iter()
                .enumerate()
                .map(|(i, (q, m))| UsageEvent { metric_label: "requests".into(), quantity: Decimal::from(*q), ..event(i as u32, 0, *m) })
                .collect();
            let mut shuffled = events.clone();
            let n = shuffled.len();
            for (i, j) in seed.iter().enumerate().take(n) {
                shuffled.swap(i % n, j % n);
            }
            let cut = split.min(n);
            let bill_of = |batches: &[&[UsageEvent]], plan: &str| {
                let mut buckets: BTreeMap<BucketKey, Bucket> = BTreeMap::new();
                for batch in batches {
                    for (k, v) in rollup(batch, Aggregation::Sum) {
                        buckets.entry(k).and_modify(|x| *x = x.merge(&v, Aggregation::Sum)).or_insert(v);
                    }
                }
                let objects = object_usage(buckets.iter());
                let q = metric_quantities(|_| Aggregation::Sum, objects.iter());
                crate::rating::bill(&catalog, catalog.plan(plan).unwrap(), &q, Some(&crate::rating::Fixed::whole()), Vec::new())
            };
            for plan in ["graduated", "volume", "package", "per-unit"] {
                let whole = bill_of(&[&events], plan);
                let (a, b) = shuffled.split_at(cut);
                prop_assert_eq!(&whole, &bill_of(&[a, b], plan));
                prop_assert_eq!(whole.totals.subtotal, whole.line_amounts().sum::<i64>());
            }
        }

        /// Any order and any grouping of the same events gives the same buckets.
        #[test]
        fn rollups_do_not_depend_on_order_or_grouping(
            specs in proptest::collection::vec((0u32..20, 0u32..10_000, 0u32..180), 1..60),
            seed in proptest::collection::vec(0usize..1000, 60),
            split in 0usize..60,
        ) {
            // Unique ids: duplicates are removed before aggregation.
            let events: Vec<UsageEvent> = specs.iter().enumerate().map(|(i, (_, q, m))| event(i as u32, *q, *m)).collect();
            let mut shuffled = events.clone();
            let n = shuffled.len();
            for (i, j) in seed.iter().enumerate().take(n) {
                shuffled.swap(i % n, j % n);
            }
            for aggregation in Aggregation::ALL.iter().copied() {
                let whole = rollup(&events, aggregation);
                let reordered = rollup(&shuffled, aggregation);
                prop_assert_eq!(&whole, &reordered);
                // Two batches rolled up separately, then merged, agree too.
                let cut = split.min(shuffled.len());
                let (a, b) = shuffled.split_at(cut);
                let mut merged = rollup(a, aggregation);
                for (k, v) in rollup(b, aggregation) {
                    merged.entry(k).and_modify(|x| *x = x.merge(&v, aggregation)).or_insert(v);
                }
                prop_assert_eq!(&whole, &merged);
            }
        }
    }
}
