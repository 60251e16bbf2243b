//! Prepaid credits: whatever sequence of grants, reversals (some asking
//! for more than is left), expiries and threshold changes, every grant's
//! remaining amount is the sum of its ledger entries and never negative, a
//! refused change writes nothing, and the low-balance event fires exactly
//! on downward crossings.

use jiff::SignedDuration;
use tollgate_domain::Reason;
use tollgate_domain::credits::{EntryKind, NewGrant};
use tollgate_store::StoreError;
use tollgate_testkit::each_backend;

use crate::{open, t, tenant};

/// A small deterministic generator (the same sequence on both backends).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test]
async fn the_ledger_always_adds_up_and_never_goes_negative() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let acme = tenant(&*store, "acme").await;
        let other = tenant(&*store, "other").await;
        for seed in [1u64, 7, 42] {
            let mut rng = Lcg(seed);
            let mut now = t("2027-01-01T00:00:00Z") + SignedDuration::from_hours(24 * 400 * seed as i64);
            let mut threshold: Option<i64> = None;
            let mut expected_events = 0usize;
            let events_before = store
                .webhook_events(&acme.id, 10_000)
                .await
                .unwrap()
                .iter()
                .filter(|e| e.event_type == "credits.low_balance")
                .count();
            for _ in 0..40 {
                now += SignedDuration::from_hours(1 + rng.next(48) as i64);
                let balance = |grants: &[tollgate_domain::credits::Grant]| -> i64 {
                    grants
                        .iter()
                        .filter(|g| g.currency == "USD")
                        .map(|g| g.remaining_cents)
                        .sum()
                };
                let before = balance(&store.credit_grants(&acme.id).await.unwrap());
                match rng.next(5) {
                    0 | 1 => {
                        let expires = (rng.next(2) == 0)
                            .then(|| now + SignedDuration::from_hours(1 + rng.next(96) as i64));
                        let g = NewGrant::check(
                            "USD",
                            1 + rng.next(5000) as i64,
                            rng.next(3) as i64,
                            expires,
                            "promo",
                            now,
                        )
                        .unwrap();
                        store.grant_credits(&acme.id, &g, "operator", now).await.unwrap();
                    }
                    2 => {
                        let grants = store.credit_grants(&acme.id).await.unwrap();
                        if grants.is_empty() {
                            continue;
                        }
                        let g = &grants[rng.next(grants.len() as u64) as usize];
                        let ask = if rng.next(3) == 0 {
                            None
                        } else {
                            Some(1 + rng.next(3000) as i64)
                        };
                        let entries = store.credit_ledger(&acme.id, None, 10_000).await.unwrap().len();
                        match store
                            .reverse_credits(&acme.id, &g.id, ask, "correction", "operator", now)
                            .await
                        {
                            Ok(after) => {
                                let taken = ask.unwrap_or(g.remaining_cents);
                                assert_eq!(after.remaining_cents, g.remaining_cents - taken);
                                if threshold.is_some_and(|th| before >= th && before - taken < th) {
                                    expected_events += 1;
                                }
                            }
                            Err(StoreError::Conflict(Reason::CreditsExceedRemaining, _)) => {
                                assert!(
                                    ask.is_none_or(|a| a > g.remaining_cents)
                                        && (ask.is_some() || g.remaining_cents == 0)
                                );
                                // Refused: nothing written.
                                assert_eq!(
                                    store.credit_ledger(&acme.id, None, 10_000).await.unwrap().len(),
                                    entries
                                );
                            }
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                    3 => {
                        let grants = store.credit_grants(&acme.id).await.unwrap();
                        let lost: i64 = grants
                            .iter()
                            .filter(|g| g.expired_with_balance(now))
                            .map(|g| g.remaining_cents)
                            .sum();
                        let n = grants.iter().filter(|g| g.expired_with_balance(now)).count();
                        assert_eq!(store.expire_credits(now, 1000).await.unwrap(), n);
                        // Each expiry is its own entry: count the crossings one by one.
                        let mut b = before;
                        for g in grants.iter().filter(|g| g.expired_with_balance(now)) {
                            if threshold.is_some_and(|th| b >= th && b - g.remaining_cents < th) {
                                expected_events += 1;
                            }
                            b -= g.remaining_cents;
                        }
                        assert_eq!(b, before - lost);
                    }
                    _ => {
                        threshold = (rng.next(3) != 0).then(|| rng.next(4000) as i64);
                        store
                            .set_low_balance_threshold(&acme.id, threshold, "tenant", now)
                            .await
                            .unwrap();
                    }
                }
                // The invariant, after every step.
                let grants = store.credit_grants(&acme.id).await.unwrap();
                let entries = store.credit_ledger(&acme.id, None, 10_000).await.unwrap();
                for g in &grants {
                    let sum: i64 = entries
                        .iter()
                        .filter(|e| e.grant_id == g.id)
                        .map(|e| e.amount_cents)
                        .sum();
                    assert_eq!(sum, g.remaining_cents, "grant {} (seed {seed})", g.id);
                    assert!(g.remaining_cents >= 0);
                    assert!(g.remaining_cents <= g.amount_cents);
                }
                for e in &entries {
                    assert_eq!(e.amount_cents > 0, e.kind.adds(), "{e:?}");
                    assert!(e.kind != EntryKind::Apply);
                }
            }
            let events = store
                .webhook_events(&acme.id, 10_000)
                .await
                .unwrap()
                .iter()
                .filter(|e| e.event_type == "credits.low_balance")
                .count();
            assert_eq!(events - events_before, expected_events, "seed {seed}");
        }
        // Another tenant's books are untouched.
        assert!(store.credit_grants(&other.id).await.unwrap().is_empty());
        assert!(store.credit_ledger(&other.id, None, 10).await.unwrap().is_empty());
    })
    .await;
}
