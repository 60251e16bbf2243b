//! API rate limits (`api_limits`): the limit values and a token bucket in exact
//! integer arithmetic, driven by timestamps passed in.
//!
//! A hand-rolled bucket rather than a limiter crate because each tenant and
//! operation has its own limit, which changes at runtime when quota objects
//! change, and tests drive it with an injected clock.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The period a rate is counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RateUnit {
    Second,
    Minute,
    Hour,
    Day,
}

impl RateUnit {
    /// Canonical name, as the `rate_limiter.RateLimitPeriodUnit` enum spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Second => "SECOND",
            Self::Minute => "MINUTE",
            Self::Hour => "HOUR",
            Self::Day => "DAY",
        }
    }

    /// Accepts the enum names (`SECOND`), their numbers (`0`), and the
    /// spellings clients use in the free-form `unit` string (`per-second`,
    /// `second`, `s`), case-insensitively. Empty means `SECOND`.
    pub fn parse(field: &str, s: &str) -> Result<Self, Error> {
        let lower = s.trim().to_ascii_lowercase();
        let bare = lower.strip_prefix("per-").unwrap_or(&lower);
        match bare {
            "" | "0" | "second" | "seconds" | "s" | "sec" => Ok(Self::Second),
            "1" | "minute" | "minutes" | "m" | "min" => Ok(Self::Minute),
            "2" | "hour" | "hours" | "h" => Ok(Self::Hour),
            "3" | "day" | "days" | "d" => Ok(Self::Day),
            _ => Err(Error::invalid(format!(
                "{field}: unknown unit {s:?}; use SECOND, MINUTE, HOUR or DAY"
            ))),
        }
    }

    /// The unit's length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    fn nanos(self) -> u128 {
        const S: u128 = 1_000_000_000;
        match self {
            Self::Second => S,
            Self::Minute => 60 * S,
            Self::Hour => 3_600 * S,
            Self::Day => 86_400 * S,
        }
    }
}

impl fmt::Display for RateUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `rate` requests per `unit`, with bursts of up to `burst` requests.
/// A rate of -1 means unlimited; a burst of 0 means "same as rate".
///
/// [`RateLimit::new`] admits only limits that let some calls through: a rate
/// of 0 would refuse an operation for good (and a tenant cannot lift a limit
/// on quota writes with the very writes it refuses). Limits stored before
/// that rule may still hold one; [`RateLimit::check`] finds them so that
/// enforcement can ignore them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimit {
    pub rate: i32,
    pub burst: i32,
    pub unit: RateUnit,
}

/// The largest rate and burst: the contract's fields are int32.
pub const MAX_RATE: i64 = i32::MAX as i64;

impl RateLimit {
    /// Validates wire values: rate -1 (unlimited) or 1 to [`MAX_RATE`],
    /// burst 0 (the rate) or 1 to [`MAX_RATE`]. The error names `field`.
    pub fn new(field: &str, rate: i64, burst: i64, unit: RateUnit) -> Result<Self, Error> {
        let rate = i32::try_from(rate)
            .ok()
            .filter(|r| *r == -1 || *r >= 1)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{field}.rate: must be -1 (unlimited) or between 1 and {MAX_RATE}, got {rate}{}",
                    if rate == 0 {
                        "; a rate of 0 would refuse every call"
                    } else {
                        ""
                    }
                ))
            })?;
        let burst = i32::try_from(burst).ok().filter(|b| *b >= 0).ok_or_else(|| {
            Error::invalid(format!(
                "{field}.burst: must be 0 (the rate) or between 1 and {MAX_RATE}, got {burst}"
            ))
        })?;
        Ok(Self { rate, burst, unit })
    }

    /// Whether a limit (read from storage, where it may predate the rules of
    /// [`RateLimit::new`]) satisfies them; the error names `field`.
    pub fn check(&self, field: &str) -> Result<(), Error> {
        Self::new(field, self.rate.into(), self.burst.into(), self.unit).map(|_| ())
    }

    /// [`RateLimit::check`] as a predicate.
    pub fn is_valid(&self) -> bool {
        (self.rate == -1 || self.rate >= 1) && self.burst >= 0
    }

    pub fn unlimited() -> Self {
        Self {
            rate: -1,
            burst: 0,
            unit: RateUnit::Second,
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.rate < 0
    }

    /// Orders limits from strictest to loosest by sustained rate per second.
    pub(crate) fn restrictiveness(&self) -> u128 {
        if self.is_unlimited() {
            u128::MAX
        } else {
            // requests per day, comparable across units
            self.rate as u128 * RateUnit::Day.nanos() / self.unit.nanos()
        }
    }

    fn capacity(&self) -> u128 {
        if self.burst > 0 {
            self.burst as u128
        } else {
            self.rate as u128
        }
    }
}

/// The fill level of one bucket. Levels are kept in "token-nanoseconds"
/// (tokens × the unit's length in ns) so that refill is exact integer math.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    level: u128,
    at: Timestamp,
    /// The unit's length in ns that `level` counts tokens in.
    period: u128,
}

/// A refusal, with how long until one request would be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after_ms: u64,
}

impl Bucket {
    /// A full bucket for `limit` at time `now`.
    pub fn full(limit: &RateLimit, now: Timestamp) -> Self {
        Self {
            level: limit.capacity().saturating_mul(limit.unit.nanos()),
            at: now,
            period: limit.unit.nanos(),
        }
    }

    /// Takes one token if there is one. A changed limit applies at once: the
    /// level is clamped to the new capacity.
    pub fn try_take(&mut self, limit: &RateLimit, now: Timestamp) -> Result<(), Throttled> {
        if limit.is_unlimited() {
            return Ok(());
        }
        let period = limit.unit.nanos();
        if self.period != period {
            // The limit changed unit: keep the number of tokens, not their
            // token-nanoseconds (199 tokens per second are not 0.002 per day).
            self.level = self.level.saturating_mul(period) / self.period;
            self.period = period;
        }
        let cap = limit.capacity().saturating_mul(period);
        let elapsed = u128::try_from(now.duration_since(self.at).as_nanos()).unwrap_or(0);
        if now > self.at {
            self.at = now;
        }
        self.level = self
            .level
            .saturating_add(elapsed.saturating_mul(limit.rate as u128))
            .min(cap);
        // A valid limit never waits longer than one unit for a token; one
        // that predates validation (rate 0) is told the same rather than
        // "never".
        let unit_ms = limit.unit.seconds() * 1000;
        if self.level >= period {
            self.level -= period;
            Ok(())
        } else if limit.rate <= 0 {
            Err(Throttled {
                retry_after_ms: unit_ms,
            })
        } else {
            let missing = period - self.level;
            let wait_ns = missing.div_ceil(limit.rate as u128);
            Err(Throttled {
                retry_after_ms: u64::try_from(wait_ns.div_ceil(1_000_000))
                    .unwrap_or(u64::MAX)
                    .min(unit_ms),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use proptest::prelude::*;

    fn t0() -> Timestamp {
        "2026-11-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn burst_then_sustained_rate() {
        let limit = RateLimit::new("l", 2, 5, RateUnit::Second).unwrap();
        let mut b = Bucket::full(&limit, t0());
        for _ in 0..5 {
            assert!(b.try_take(&limit, t0()).is_ok());
        }
        let refused = b.try_take(&limit, t0()).unwrap_err();
        assert_eq!(refused.retry_after_ms, 500);
        // Half a second later one token (2 per second) has come back.
        let t = t0() + SignedDuration::from_millis(500);
        assert!(b.try_take(&limit, t).is_ok());
        assert!(b.try_take(&limit, t).is_err());
    }

    #[test]
    fn zero_burst_means_rate_and_unlimited_always_passes() {
        let limit = RateLimit::new("l", 3, 0, RateUnit::Minute).unwrap();
        let mut b = Bucket::full(&limit, t0());
        for _ in 0..3 {
            assert!(b.try_take(&limit, t0()).is_ok());
        }
        assert_eq!(b.try_take(&limit, t0()).unwrap_err().retry_after_ms, 20_000);
        let unlimited = RateLimit::unlimited();
        for _ in 0..1000 {
            assert!(b.try_take(&unlimited, t0()).is_ok());
        }
    }

    #[test]
    fn a_stored_rate_of_zero_waits_at_most_one_unit() {
        // Built directly, as a limit stored before validation reads.
        let limit = RateLimit {
            rate: 0,
            burst: 1,
            unit: RateUnit::Day,
        };
        assert!(limit.check("l").is_err());
        let mut b = Bucket::full(&limit, t0());
        assert!(b.try_take(&limit, t0()).is_ok());
        let later = t0() + SignedDuration::from_hours(24);
        assert_eq!(b.try_take(&limit, later).unwrap_err().retry_after_ms, 86_400_000);
    }

    #[test]
    fn a_limit_changed_to_another_unit_keeps_the_tokens_left() {
        let per_second = RateLimit::new("l", 100, 200, RateUnit::Second).unwrap();
        let per_day = RateLimit::new("l", 1, 0, RateUnit::Day).unwrap();
        let mut b = Bucket::full(&per_second, t0());
        assert!(b.try_take(&per_second, t0()).is_ok());
        // 199 tokens left, clamped to the new capacity of one.
        assert!(b.try_take(&per_day, t0()).is_ok());
        assert_eq!(b.try_take(&per_day, t0()).unwrap_err().retry_after_ms, 86_400_000);
        // And back: a day's token is one token, topped up at the new rate.
        let mut b = Bucket::full(&per_day, t0());
        assert!(b.try_take(&per_second, t0()).is_ok());
        assert!(b.try_take(&per_second, t0()).is_err());
    }

    #[test]
    fn units_parse_in_every_spelling() {
        for (s, u) in [
            ("SECOND", RateUnit::Second),
            ("per-second", RateUnit::Second),
            ("", RateUnit::Second),
            ("MINUTE", RateUnit::Minute),
            ("per-hour", RateUnit::Hour),
            ("3", RateUnit::Day),
        ] {
            assert_eq!(RateUnit::parse("unit", s), Ok(u), "{s}");
        }
        assert!(RateUnit::parse("unit", "fortnight").is_err());
    }

    #[test]
    fn invalid_rates_are_refused() {
        let refused = |rate, burst| {
            RateLimit::new("l", rate, burst, RateUnit::Second)
                .unwrap_err()
                .message
        };
        assert_eq!(
            refused(0, 0),
            "l.rate: must be -1 (unlimited) or between 1 and 2147483647, got 0; a rate of 0 would refuse every call"
        );
        assert!(refused(-2, 0).starts_with("l.rate: must be -1"));
        assert!(refused(MAX_RATE + 1, 0).starts_with("l.rate: "));
        assert_eq!(
            refused(1, -1),
            "l.burst: must be 0 (the rate) or between 1 and 2147483647, got -1"
        );
        assert!(refused(1, MAX_RATE + 1).starts_with("l.burst: "));
        // The smallest and largest limits that are accepted.
        for (rate, burst) in [(1, 0), (1, 1), (-1, 0), (-1, 5), (MAX_RATE, MAX_RATE)] {
            let l = RateLimit::new("l", rate, burst, RateUnit::Day).unwrap();
            assert_eq!(l.check("l"), Ok(()));
            assert!(l.is_valid());
        }
    }

    proptest! {
        /// Any accepted limit admits a call within one unit of the bucket
        /// running dry, and says so in its Retry-After.
        #[test]
        fn accepted_limits_never_lock_out(
            rate in -1i64..=MAX_RATE, burst in 0i64..=MAX_RATE,
            unit in prop_oneof![Just(RateUnit::Second), Just(RateUnit::Minute), Just(RateUnit::Hour), Just(RateUnit::Day)],
            calls in 1usize..50,
        ) {
            let Ok(limit) = RateLimit::new("l", rate, burst, unit) else {
                prop_assert_eq!(rate, 0);
                let stored = RateLimit { rate: 0, burst: burst as i32, unit };
                prop_assert!(!stored.is_valid() && stored.check("l").is_err());
                return Ok(());
            };
            prop_assert!(limit.is_valid());
            let mut b = Bucket::full(&limit, t0());
            let mut refused = None;
            for _ in 0..calls {
                if let Err(t) = b.try_take(&limit, t0()) {
                    refused = Some(t);
                    break;
                }
            }
            if let Some(t) = refused {
                prop_assert!(t.retry_after_ms <= unit.seconds() * 1000);
                let later = t0() + SignedDuration::from_millis(t.retry_after_ms as i64);
                prop_assert!(b.try_take(&limit, later).is_ok());
            }
        }
    }

    proptest! {
        /// Over any window, admitted requests never exceed burst + rate × elapsed.
        #[test]
        fn never_admits_more_than_burst_plus_refill(
            rate in 1i32..50, burst in 0i32..50,
            steps in proptest::collection::vec(0u64..200, 1..300),
        ) {
            let limit = RateLimit::new("l", rate.into(), burst.into(), RateUnit::Second).unwrap();
            let mut b = Bucket::full(&limit, t0());
            let mut now = t0();
            let mut admitted = 0u128;
            for ms in steps {
                now += SignedDuration::from_millis(ms as i64);
                if b.try_take(&limit, now).is_ok() {
                    admitted += 1;
                }
            }
            let elapsed_ns = now.duration_since(t0()).as_nanos() as u128;
            let bound = limit.capacity() + elapsed_ns * rate as u128 / 1_000_000_000;
            prop_assert!(admitted <= bound, "admitted {} > bound {}", admitted, bound);
        }
    }
}
