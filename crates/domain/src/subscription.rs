//! Subscriptions and their billing periods.
//!
//! Periods are monthly, anchored on the day the paid part of the subscription
//! starts (after any trial) and clamped at month end: period n runs from
//! anchor + n months to anchor + (n + 1) months, always computed from the
//! anchor (never by adding to the previous period, which would drift from
//! Jan 31 to Feb 28 to Mar 28).

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ToSpan};

use crate::catalog::{PeriodUnit, Plan};

/// A tenant's subscription to a plan, at one catalog version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub tenant_id: crate::ids::TenantId,
    pub plan: String,
    pub catalog_version: i64,
    pub start: Timestamp,
    /// End of the trial; billing periods are anchored here.
    pub trial_end: Option<Timestamp>,
    /// When the subscription was closed (plan transition), if it was.
    pub end: Option<Timestamp>,
}

/// One billing period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// 0 for the first period (the trial, if there is one).
    pub index: u32,
    /// Nominal bounds.
    pub start: Timestamp,
    pub end: Timestamp,
    /// Actual end: `end`, or earlier when the subscription was closed in it.
    pub actual_end: Timestamp,
    pub trial: bool,
}

/// A time an add-on was subscribed: from `start` to `end` (none: still).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonSpan {
    pub addon: String,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

impl AddonSpan {
    /// Seconds of [from, to) the add-on was subscribed.
    pub fn secs_within(&self, from: Timestamp, to: Timestamp) -> i64 {
        let start = self.start.max(from);
        let end = self.end.map_or(to, |e| e.min(to));
        if end <= start {
            0
        } else {
            end.duration_since(start).as_secs()
        }
    }
}

impl Period {
    /// Whether the period was cut short by the subscription's end.
    pub fn is_prorated(&self) -> bool {
        self.actual_end < self.end
    }
}

/// `n` calendar units, as a span.
pub fn unit_span(n: u32, unit: PeriodUnit) -> Span {
    let n = i64::from(n);
    match unit {
        PeriodUnit::Day => n.days(),
        PeriodUnit::Week => n.weeks(),
        PeriodUnit::Month => n.months(),
        PeriodUnit::Year => n.years(),
    }
}

/// `at` plus a calendar span, in UTC; saturates at the end of time.
fn add(at: Timestamp, span: Span) -> Timestamp {
    at.to_zoned_datetime(TimeZone::UTC)
        .checked_add(span)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MAX)
}

/// `at` plus `n` months in UTC; saturates at the end of time, also for more
/// months than a span can hold.
fn add_months(at: Timestamp, n: i64) -> Timestamp {
    Span::new()
        .try_months(n)
        .map_or(Timestamp::MAX, |span| add(at, span))
}

impl Subscription {
    /// A subscription to `plan` starting at `start`, with the plan's trial.
    pub fn new(
        id: String,
        tenant_id: crate::ids::TenantId,
        plan: &Plan,
        catalog_version: i64,
        start: Timestamp,
    ) -> Self {
        let trial_end =
            (plan.trial_period > 0).then(|| add(start, unit_span(plan.trial_period, plan.trial_period_unit)));
        Self {
            id,
            tenant_id,
            plan: plan.name.clone(),
            catalog_version,
            start,
            trial_end,
            end: None,
        }
    }

    /// The same subscription without a trial (a tenant gets a plan's trial once).
    pub fn without_trial(mut self) -> Self {
        self.trial_end = None;
        self
    }

    /// Whether the subscription is in force at `at`.
    pub fn is_current(&self) -> bool {
        self.end.is_none()
    }

    fn anchor(&self) -> Timestamp {
        self.trial_end.unwrap_or(self.start)
    }

    fn first_paid_index(&self) -> u32 {
        u32::from(self.trial_end.is_some())
    }

    /// Period number `index` (nominal bounds, clamped by the subscription's end).
    pub fn period(&self, index: u32) -> Period {
        let (start, end, trial) = match (index, self.trial_end) {
            (0, Some(trial_end)) => (self.start, trial_end, true),
            _ => {
                let n = i64::from(index - self.first_paid_index());
                let anchor = self.anchor();
                (add_months(anchor, n), add_months(anchor, n + 1), false)
            }
        };
        let actual_end = self.end.map_or(end, |e| e.clamp(start, end));
        Period {
            index,
            start,
            end,
            actual_end,
            trial,
        }
    }

    /// The period containing `at` (the last one, if the subscription ended).
    pub fn period_at(&self, at: Timestamp) -> Period {
        let at = self.end.map_or(at, |e| at.min(e)).max(self.start);
        if let Some(trial_end) = self.trial_end
            && at < trial_end
        {
            return self.period(0);
        }
        // Estimate by whole months, then correct for month-length clamping.
        let anchor = self.anchor();
        let months = anchor
            .to_zoned_datetime(TimeZone::UTC)
            .until((jiff::Unit::Month, &at.to_zoned_datetime(TimeZone::UTC)))
            .map_or(0, |s| s.get_months().max(0));
        let mut index = self.first_paid_index() + u32::try_from(months).unwrap_or(0);
        while index > self.first_paid_index() && self.period(index).start > at {
            index -= 1;
        }
        // Periods past the end of time all saturate to it: stop there.
        while self.period(index).end <= at
            && self.period(index).end < Timestamp::MAX
            && self.end.is_none_or(|e| self.period(index).end < e)
            && index < u32::MAX
        {
            index += 1;
        }
        let p = self.period(index);
        // A subscription closed exactly at a period boundary ends in the
        // previous period.
        if self.end == Some(p.start) && index > 0 {
            return self.period(index - 1);
        }
        p
    }

    /// Every period from the first up to the one containing `now`.
    pub fn periods_until(&self, now: Timestamp) -> Vec<Period> {
        let last = self.period_at(now).index;
        (0..=last).map(|i| self.period(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use proptest::prelude::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn sub(plan: &str, start: &str) -> Subscription {
        let c = Catalog::builtin();
        Subscription::new("s".into(), "t".into(), c.plan(plan).unwrap(), 1, t(start))
    }

    #[test]
    fn periods_are_anchored_and_clamped_at_month_end() {
        let s = sub("individual", "2027-01-31T10:00:00Z");
        let bounds: Vec<(String, String)> = (0..4)
            .map(|i| {
                let p = s.period(i);
                (p.start.to_string(), p.end.to_string())
            })
            .collect();
        assert_eq!(
            bounds,
            [
                ("2027-01-31T10:00:00Z".into(), "2027-02-28T10:00:00Z".into()),
                ("2027-02-28T10:00:00Z".into(), "2027-03-31T10:00:00Z".into()),
                ("2027-03-31T10:00:00Z".into(), "2027-04-30T10:00:00Z".into()),
                ("2027-04-30T10:00:00Z".into(), "2027-05-31T10:00:00Z".into()),
            ]
        );
    }

    #[test]
    fn leap_years_give_february_its_29th() {
        let s = sub("individual", "2028-01-30T00:00:00Z");
        assert_eq!(s.period(0).end, t("2028-02-29T00:00:00Z"));
        assert_eq!(s.period(1).end, t("2028-03-30T00:00:00Z"));
        let leap_day = sub("individual", "2028-02-29T12:00:00Z");
        assert_eq!(leap_day.period(0).end, t("2028-03-29T12:00:00Z"));
        assert_eq!(leap_day.period(12).start, t("2029-02-28T12:00:00Z"));
        assert_eq!(leap_day.period(48).start, t("2032-02-29T12:00:00Z"));
    }

    #[test]
    fn a_trial_is_its_own_first_period_and_anchors_the_rest() {
        let s = sub("team", "2026-11-20T09:00:00Z");
        let trial = s.period(0);
        assert!(trial.trial);
        assert_eq!(
            (trial.start, trial.end),
            (t("2026-11-20T09:00:00Z"), t("2026-12-04T09:00:00Z"))
        );
        let first_paid = s.period(1);
        assert!(!first_paid.trial);
        assert_eq!(
            (first_paid.start, first_paid.end),
            (t("2026-12-04T09:00:00Z"), t("2027-01-04T09:00:00Z"))
        );
        assert_eq!(s.period_at(t("2026-12-01T00:00:00Z")).index, 0);
        assert_eq!(s.period_at(t("2026-12-04T09:00:00Z")).index, 1);
    }

    #[test]
    fn closing_a_subscription_prorates_its_last_period() {
        let mut s = sub("individual", "2026-11-15T00:00:00Z");
        s.end = Some(t("2027-01-01T00:00:00Z"));
        let periods = s.periods_until(t("2027-06-01T00:00:00Z"));
        assert_eq!(periods.len(), 2);
        let last = periods[1];
        assert_eq!(
            (last.start, last.end, last.actual_end),
            (
                t("2026-12-15T00:00:00Z"),
                t("2027-01-15T00:00:00Z"),
                t("2027-01-01T00:00:00Z")
            )
        );
        assert!(last.is_prorated() && !periods[0].is_prorated());
        // Closed exactly on a boundary: the last period is whole.
        s.end = Some(t("2026-12-15T00:00:00Z"));
        let periods = s.periods_until(t("2027-06-01T00:00:00Z"));
        assert_eq!(periods.len(), 1);
        assert!(!periods[0].is_prorated());
    }

    #[test]
    fn periods_past_the_end_of_time_saturate_instead_of_panicking() {
        let s = sub("team", "2026-11-20T09:00:00Z");
        for index in [239_976, 239_977, 1_000_000, u32::MAX] {
            let p = s.period(index);
            assert_eq!((p.start, p.end), (Timestamp::MAX, Timestamp::MAX), "{index}");
        }
        // The last periods a timestamp can hold, and an instant beyond them.
        let p = s.period_at(Timestamp::MAX);
        assert!(p.start <= Timestamp::MAX && p.index > 95_000, "{p:?}");
        assert_eq!(s.period_at(Timestamp::MIN).index, 0);
        let late = sub("individual", "9998-12-31T00:00:00Z");
        assert_eq!(late.period(10).end, t("9999-11-30T00:00:00Z"));
        assert_eq!(late.period(11).end, Timestamp::MAX);
        assert_eq!(late.periods_until(Timestamp::MAX).len(), 12);
    }

    proptest! {
        /// Periods tile time: each starts where the previous ended, and
        /// period_at finds the period that contains the instant.
        #[test]
        fn periods_tile_and_period_at_contains(
            start_secs in 1_700_000_000i64..1_900_000_000,
            offset_secs in 0i64..200_000_000,
            trial in proptest::bool::ANY,
        ) {
            let plan = if trial { "team" } else { "individual" };
            let start = Timestamp::from_second(start_secs).unwrap();
            let s = Subscription::new("s".into(), "t".into(), Catalog::builtin().plan(plan).unwrap(), 1, start);
            let at = Timestamp::from_second(start_secs + offset_secs).unwrap();
            let p = s.period_at(at);
            prop_assert!(p.start <= at && at < p.end, "{p:?} does not contain {at}");
            let periods = s.periods_until(at);
            prop_assert_eq!(periods[0].start, start);
            for w in periods.windows(2) {
                prop_assert_eq!(w[0].end, w[1].start);
            }
            prop_assert_eq!(periods.last().copied(), Some(p));
        }
    }
}
