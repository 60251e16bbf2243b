//! Fourteen months of one tenant, driven by the injected clock: usage every
//! period, periods closed after their grace and charged, a move from
//! individual to team mid-period (prorated fee, then team's trial), stable
//! names, newest-first lists, `limit`, and `monthly_usage` agreeing.

use jiff::{SignedDuration, Timestamp};
use tollgate_testkit::each_backend;

use crate::billing_support::{initiate, to_team};
use crate::invoice_support::{Entry, assert_has, billed_tenant, list, list_raw, names, pdf_text, usd};
use crate::support::{TestApp, ts};
use crate::usage_support::{event, ingest_all, month, monthly};

const DAY: SignedDuration = SignedDuration::from_hours(24);

/// One billing period of the story and what its invoice must say.
struct Period {
    name: &'static str,
    start: &'static str,
    /// Actual end (the plan change cuts July short).
    end: &'static str,
    /// lb_requests reported in the period, in millions, at `start` + 4 days.
    millions: i64,
    /// The invoice's total, worked out by hand.
    amount: i64,
}

/// Individual: 2500 ¢ a month, lb_requests 60 ¢ per million beyond 5.
/// Team (from 2027-07-16): a 14-day trial without fee, then 30000 ¢ a month
/// anchored at the trial's end, lb_requests 50 ¢ per million beyond 50.
fn story() -> Vec<Period> {
    let individual = |name, start, end, m: i64| Period {
        name,
        start,
        end,
        millions: m,
        amount: 2500 + (m - 5) * 60,
    };
    let team = |name, start, end, m: i64| Period {
        name,
        start,
        end,
        millions: m,
        amount: 30000 + (m - 50) * 50,
    };
    vec![
        individual(
            "inv-2027-01-0001",
            "2027-01-01T00:00:00Z",
            "2027-02-01T00:00:00Z",
            10,
        ),
        individual(
            "inv-2027-02-0002",
            "2027-02-01T00:00:00Z",
            "2027-03-01T00:00:00Z",
            11,
        ),
        individual(
            "inv-2027-03-0003",
            "2027-03-01T00:00:00Z",
            "2027-04-01T00:00:00Z",
            12,
        ),
        individual(
            "inv-2027-04-0004",
            "2027-04-01T00:00:00Z",
            "2027-05-01T00:00:00Z",
            13,
        ),
        individual(
            "inv-2027-05-0005",
            "2027-05-01T00:00:00Z",
            "2027-06-01T00:00:00Z",
            14,
        ),
        individual(
            "inv-2027-06-0006",
            "2027-06-01T00:00:00Z",
            "2027-07-01T00:00:00Z",
            15,
        ),
        // Cut short on 07-16 by the move to team: 15 of 31 days of the fee,
        // 2500 × 15/31 = 1209.68 → 1210 ¢; 20 million → 15 × 60 = 900 ¢.
        Period {
            name: "inv-2027-07-0007",
            start: "2027-07-01T00:00:00Z",
            end: "2027-07-16T00:00:00Z",
            millions: 20,
            amount: 1210 + 900,
        },
        // Team's trial: no fee; 30 million is within the 50 free.
        Period {
            name: "inv-2027-07-0008",
            start: "2027-07-16T00:00:00Z",
            end: "2027-07-30T00:00:00Z",
            millions: 30,
            amount: 0,
        },
        team(
            "inv-2027-07-0009",
            "2027-07-30T00:00:00Z",
            "2027-08-30T00:00:00Z",
            60,
        ),
        team(
            "inv-2027-08-0010",
            "2027-08-30T00:00:00Z",
            "2027-09-30T00:00:00Z",
            61,
        ),
        team(
            "inv-2027-09-0011",
            "2027-09-30T00:00:00Z",
            "2027-10-30T00:00:00Z",
            62,
        ),
        team(
            "inv-2027-10-0012",
            "2027-10-30T00:00:00Z",
            "2027-11-30T00:00:00Z",
            63,
        ),
        team(
            "inv-2027-11-0013",
            "2027-11-30T00:00:00Z",
            "2027-12-30T00:00:00Z",
            64,
        ),
        team(
            "inv-2027-12-0014",
            "2027-12-30T00:00:00Z",
            "2028-01-30T00:00:00Z",
            65,
        ),
        // 2028 is a leap year: Jan 30 + 1 month is Feb 29.
        team(
            "inv-2028-01-0015",
            "2028-01-30T00:00:00Z",
            "2028-02-29T00:00:00Z",
            66,
        ),
    ]
}

fn at(s: &str, plus: SignedDuration) -> Timestamp {
    ts(s) + plus
}

#[tokio::test]
async fn fourteen_months_with_a_plan_change_are_invoiced_charged_and_listed() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_tenant, admin) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        let periods = story();

        for (i, p) in periods.iter().enumerate() {
            if i > 0 {
                // The previous period's grace (1 day) is over: it is finalized,
                // under the name it had while pending, and charged.
                let prev = &periods[i - 1];
                app.clock.set(at(prev.end, DAY));
                assert_eq!(app.close_periods().await, 1, "closing {}", prev.name);
                assert_eq!(app.close_periods().await, 0, "{} is closed once", prev.name);
                let rounds = app.charge().await;
                assert_eq!(rounds, usize::from(prev.amount > 0), "charging {}", prev.name);
                let listed = list(&app, &admin).await;
                let e = crate::invoice_support::entry(&listed, prev.name);
                assert_eq!(
                    (e.status.as_str(), e.amount.clone(), e.active),
                    ("STATUS_PAID", prev.amount.to_string(), false),
                    "{e:?}"
                );
            }

            // Usage in the period; its pending invoice follows it.
            let usage_at = at(p.start, DAY * 4);
            app.clock.set(usage_at + SignedDuration::from_hours(1));
            ingest_all(
                &app,
                &admin,
                "system",
                vec![event(
                    &format!("m{i:02}"),
                    "lb_requests",
                    "lb-a",
                    p.millions * 1_000_000,
                    usage_at.to_string(),
                )],
            )
            .await;
            let listed = list(&app, &admin).await;
            let newest = &listed[0];
            let pending_amount = if p.name == "inv-2027-07-0007" {
                // Not cut short yet: the whole month's fee.
                2500 + 900
            } else {
                p.amount
            };
            assert_eq!(
                (
                    newest.name.as_str(),
                    newest.status.as_str(),
                    newest.active,
                    newest.amount.clone()
                ),
                (p.name, "STATUS_PENDING", true, pending_amount.to_string()),
                "the pending invoice of {}: {listed:#?}",
                p.start
            );
            assert_eq!(newest.period_start, p.start);

            if p.name == "inv-2027-07-0007" {
                // Mid-July: move to team, paying with a new card.
                app.clock.set(ts("2027-07-16T00:00:00Z"));
                initiate(&app, &admin, to_team("tok-team-5555")).await;
                assert_eq!(app.run_jobs().await, 1);
                let listed = list(&app, &admin).await;
                assert_eq!(
                    listed[..2],
                    [
                        Entry {
                            name: "inv-2027-07-0008".into(),
                            status: "STATUS_PENDING".into(),
                            amount: "0".into(),
                            period_start: "2027-07-16T00:00:00Z".into(),
                            period_end: "2027-07-30T00:00:00Z".into(),
                            active: true,
                        },
                        Entry {
                            name: "inv-2027-07-0007".into(),
                            status: "STATUS_PENDING".into(),
                            amount: "2110".into(),
                            period_start: "2027-07-01T00:00:00Z".into(),
                            period_end: "2027-07-16T00:00:00Z".into(),
                            active: true,
                        },
                    ],
                    "the cut period is prorated and keeps its name; the trial follows"
                );
            }
        }

        // The last period (Jan 30 to Feb 29, 2028) closes on Mar 1.
        app.clock.set(ts("2028-03-01T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        assert_eq!(app.charge().await, 1);
        assert_eq!(app.charge().await, 0, "nothing is left to charge");

        let listed = list(&app, &admin).await;
        let mut expected: Vec<Entry> = periods
            .iter()
            .rev()
            .map(|p| Entry {
                name: p.name.into(),
                status: "STATUS_PAID".into(),
                amount: p.amount.to_string(),
                period_start: p.start.into(),
                period_end: p.end.into(),
                active: false,
            })
            .collect();
        expected.insert(
            0,
            Entry {
                name: "inv-2028-02-0016".into(),
                status: "STATUS_PENDING".into(),
                amount: "30000".into(),
                period_start: "2028-02-29T00:00:00Z".into(),
                period_end: "2028-03-30T00:00:00Z".into(),
                active: true,
            },
        );
        assert_eq!(listed, expected, "every invoice, newest first");

        // limit: the newest n; 0 or more than there are: all of them.
        for (query, n) in [
            ("?limit=1", 1),
            ("?limit=3", 3),
            ("?limit=0", 16),
            ("?limit=100", 16),
            ("?limit=", 16),
        ] {
            let raw = list_raw(&app, &admin, query).await;
            let got: Vec<&str> = raw.iter().map(|v| v["name"].as_str().unwrap()).collect();
            assert_eq!(got, names(&expected)[..n], "{query}");
        }

        // Each finalized period's monthly_usage line is its invoice's total.
        let months: Vec<_> = periods
            .iter()
            .rev()
            .map(|p| month(p.start, p.end, &p.amount.to_string()))
            .collect();
        assert_eq!(monthly(&app, &admin).await, months);

        // Individual months went to the first card; July's invoice (finalized
        // after the move) and team's to the card the move made primary; the
        // trial's invoice (0) was not charged.
        let mut charges: Vec<(String, i64)> = periods
            .iter()
            .enumerate()
            .filter(|(_, p)| p.amount > 0)
            .map(|(i, p)| {
                let card = if i < 6 { "tok-visa-4242" } else { "tok-team-5555" };
                (card.to_owned(), p.amount)
            })
            .collect();
        charges.sort();
        assert_eq!(app.provider.successful_charges(), charges);

        // The prorated fee on the PDF of the period the move cut short.
        let text = pdf_text(&app, &admin, "inv-2027-07-0007").await;
        assert_has(&text, "Individual plan, prorated: 15 of 31 days");
        assert_has(&text, &usd(1210));
        assert_has(&text, &usd(900));
        assert_has(&text, &format!("TOTAL {}", usd(2110)));
        assert_has(&text, "Billing period 2027-07-01 – 2027-07-16 (UTC)");
        let trial = pdf_text(&app, &admin, "inv-2027-07-0008").await;
        assert_has(&trial, "Plan Teams");
        assert_has(&trial, &format!("TOTAL {}", usd(0)));
    })
    .await;
}
