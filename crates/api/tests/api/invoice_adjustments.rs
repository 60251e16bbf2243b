//! Usage that reaches a period after its invoice was finalized: accepted
//! while the period is the latest finalized one, billed as an adjustment
//! line on the next invoice (the finalized one never changes), refused once
//! it is older than that.

use tollgate_domain::invoice::LineKind;
use tollgate_testkit::each_backend;

use crate::invoice_support::{assert_has, billed_tenant, entry, lines_total, list, pdf_text, stored, usd};
use crate::support::{TestApp, ts};
use crate::usage_support::{ingest, ingest_all, lr, month, monthly, results};

const JAN: &str = "inv-2027-01-0001";
const FEB: &str = "inv-2027-02-0002";
const MAR: &str = "inv-2027-03-0003";

#[tokio::test]
async fn late_usage_becomes_an_adjustment_on_the_next_invoice_and_older_usage_is_refused() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;

        // January: 10 million → 5 × 60 = 300 ¢, plus the 2500 ¢ fee.
        app.clock.set(ts("2027-01-10T12:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![lr("jan-1", 10, "2027-01-10T10:00:00Z")],
        )
        .await;
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        assert_eq!(app.charge().await, 1);
        let jan_entry = entry(&list(&app, &admin).await, JAN).clone();
        assert_eq!(
            (jan_entry.status.as_str(), jan_entry.amount.as_str()),
            ("STATUS_PAID", "2800")
        );
        let jan_pdf = pdf_text(&app, &admin, JAN).await;
        let jan_stored = stored(&app, &acme, JAN).await;

        // February usage, and January usage reported late (while January is
        // the latest finalized period): both accepted.
        app.clock.set(ts("2027-02-05T00:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![
                lr("feb-1", 6, "2027-02-03T10:00:00Z"),
                lr("jan-late-1", 7, "2027-01-20T10:00:00Z"),
            ],
        )
        .await;

        // The finalized invoice did not move.
        assert_eq!(entry(&list(&app, &admin).await, JAN), &jan_entry);
        assert_eq!(pdf_text(&app, &admin, JAN).await, jan_pdf);
        assert_eq!(stored(&app, &acme, JAN).await, jan_stored);
        // January's line in monthly_usage stays its invoice's total.
        assert_eq!(
            monthly(&app, &admin).await,
            [month("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z", "2800")]
        );

        // January re-rated: 17 million → 12 × 60 = 720 ¢, 420 ¢ more than
        // billed; February: 6 million → 60 ¢.
        let feb = entry(&list(&app, &admin).await, FEB).clone();
        assert_eq!(
            (feb.status.as_str(), feb.amount.as_str()),
            ("STATUS_PENDING", "2980")
        );
        let adjustment = "Adjustment: usage reported late for inv-2027-01-0001 (2027-01-01 to 2027-02-01)";
        let pending = pdf_text(&app, &admin, FEB).await;
        assert_has(&pending, adjustment);
        assert_has(&pending, &usd(420));

        // More, still within January, still accepted: 20 million → 900 ¢.
        app.clock.set(ts("2027-02-20T00:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![lr("jan-late-2", 3, "2027-01-31T23:59:59Z")],
        )
        .await;
        assert_eq!(entry(&list(&app, &admin).await, JAN), &jan_entry);
        assert_eq!(
            entry(&list(&app, &admin).await, FEB).amount,
            (2500 + 60 + 600).to_string()
        );

        // February is finalized with the adjustment.
        app.clock.set(ts("2027-03-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        assert_eq!(app.charge().await, 1);
        let feb = stored(&app, &acme, FEB).await;
        feb.invoice.check().unwrap();
        let kinds: Vec<_> = feb
            .invoice
            .lines
            .iter()
            .map(|l| (l.kind, l.amount_cents, l.adjusts.clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                (LineKind::Fee, 2500, None),
                (LineKind::Usage, 60, None),
                (LineKind::Adjustment, 600, Some(JAN.to_owned())),
            ]
        );
        assert_eq!(feb.invoice.totals.total, 3160);
        assert_eq!(lines_total(&feb, LineKind::Adjustment), 600);
        let text = pdf_text(&app, &admin, FEB).await;
        assert_has(&text, adjustment);
        assert_has(&text, &usd(600));
        assert_has(&text, &format!("TOTAL {}", usd(3160)));
        assert_eq!(
            app.provider.successful_charges(),
            [
                ("tok-visa-4242".to_owned(), 2800),
                ("tok-visa-4242".to_owned(), 3160)
            ]
        );
        assert_eq!(
            stored(&app, &acme, JAN).await,
            jan_stored,
            "January never changed"
        );

        // February is now the latest finalized period: January is closed
        // for good, to the second.
        app.clock.set(ts("2027-03-03T00:00:00Z"));
        let resp = ingest(
            &app,
            &admin,
            "system",
            vec![
                lr("jan-too-late", 1, "2027-01-31T23:59:59Z"),
                lr("feb-late", 4, "2027-02-01T00:00:00Z"),
            ],
        )
        .await;
        assert_eq!(
            (resp["accepted"].as_u64(), resp["rejected"].as_u64()),
            (Some(1), Some(1)),
            "{resp}"
        );
        let got = results(&resp);
        assert_eq!(
            (got[0].0.as_str(), got[0].1.as_str()),
            ("jan-too-late", "REJECTED")
        );
        let reason = got[0].2.as_deref().expect("a reason");
        assert!(
            reason.contains("2027-01-31T23:59:59Z") && reason.contains("2027-02-01T00:00:00Z"),
            "the reason names the event's time and the earliest time still billable: {reason}"
        );
        assert_eq!(
            (got[1].0.as_str(), got[1].1.as_str(), &got[1].2),
            ("feb-late", "ACCEPTED", &None)
        );

        // March's invoice adjusts February (10 million → 300 ¢, 240 more),
        // and not January again.
        let mar = entry(&list(&app, &admin).await, MAR).clone();
        assert_eq!(mar.amount, (2500 + 240).to_string());
        let text = pdf_text(&app, &admin, MAR).await;
        assert_has(
            &text,
            "Adjustment: usage reported late for inv-2027-02-0002 (2027-02-01 to 2027-03-01)",
        );
        assert!(!text.contains("for inv-2027-01-0001"), "{text}");
        app.clock.set(ts("2027-04-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        let mar = stored(&app, &acme, MAR).await;
        assert_eq!(mar.invoice.totals.total, 2740);
        assert_eq!(lines_total(&mar, LineKind::Adjustment), 240);
        let jan = stored(&app, &acme, JAN).await;
        assert_eq!(jan, jan_stored);
    })
    .await;
}

/// Two periods finalized, then late usage in the latest: the adjustment is
/// the difference between the re-rated period and what was billed, not the
/// re-rated amount, even when the period's usage was under the allowance.
#[tokio::test]
async fn an_adjustment_is_the_rerated_difference_across_the_free_allowance() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        app.clock.set(ts("2027-01-10T12:00:00Z"));
        // 3 million: within the 5 free.
        ingest_all(&app, &admin, "system", vec![lr("a", 3, "2027-01-10T10:00:00Z")]).await;
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        app.close_periods().await;
        assert_eq!(stored(&app, &acme, JAN).await.invoice.totals.total, 2500);
        // 4 million more, late: 7 → 2 chargeable × 60 = 120 ¢.
        ingest_all(&app, &admin, "system", vec![lr("b", 4, "2027-01-31T10:00:00Z")]).await;
        app.clock.set(ts("2027-03-02T00:00:00Z"));
        app.close_periods().await;
        let feb = stored(&app, &acme, FEB).await;
        assert_eq!(lines_total(&feb, LineKind::Adjustment), 120);
        assert_eq!(feb.invoice.totals.total, 2620);
    })
    .await;
}

/// Usage admitted while January was still the latest finalized period, but
/// stored only after February was finalized (in flight at the time): the
/// invoice after February corrects January.
#[tokio::test]
async fn usage_in_flight_while_the_next_period_closed_is_adjusted_one_invoice_later() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        app.clock.set(ts("2027-01-10T12:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![lr("jan-1", 10, "2027-01-10T10:00:00Z")],
        )
        .await;
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        app.clock.set(ts("2027-03-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        let jan_stored = stored(&app, &acme, JAN).await;
        let feb = stored(&app, &acme, FEB).await;
        assert_eq!(lines_total(&feb, LineKind::Adjustment), 0);

        // The event the API admitted before February closed lands now.
        let late = tollgate_domain::metering::UsageEvent {
            id: "jan-in-flight".into(),
            namespace: tollgate_domain::names::Name::parse("ns", "system").unwrap(),
            metric_label: "lb_requests".into(),
            object_name: "lb-a".into(),
            deployment: String::new(),
            container: String::new(),
            quantity: 7_000_000.into(),
            at: ts("2027-01-20T10:00:00Z"),
            properties: Default::default(),
        };
        let aggregations = tollgate_domain::catalog::Catalog::builtin().aggregations();
        let stored_new = app
            .store
            .ingest(&acme.id, &[late], &aggregations, ts("2027-03-02T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(stored_new, [true]);

        // 17 million → 720 ¢: 420 ¢ more for January, on March's invoice.
        let mar = entry(&list(&app, &admin).await, MAR).clone();
        assert_eq!(mar.amount, (2500 + 420).to_string());
        app.clock.set(ts("2027-04-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        let mar = stored(&app, &acme, MAR).await;
        let adjustments: Vec<_> = mar
            .invoice
            .lines
            .iter()
            .filter(|l| l.kind == LineKind::Adjustment)
            .map(|l| (l.adjusts.clone(), l.amount_cents))
            .collect();
        assert_eq!(adjustments, [(Some(JAN.to_owned()), 420)]);
        assert_eq!(stored(&app, &acme, JAN).await, jan_stored);
        assert_eq!(stored(&app, &acme, FEB).await, feb);
        // Settled: April's invoice has no adjustment.
        let apr = entry(&list(&app, &admin).await, "inv-2027-04-0004").clone();
        assert_eq!(apr.amount, "2500");
    })
    .await;
}

/// Late usage for January reported while February is over but still in its
/// grace: two invoices are pending (February, closing soon, and March). The
/// correction belongs on the next invoice to be finalized, February, and
/// only there; listing it on March too counts it twice (March's amount
/// would then drop by itself once February is finalized).
#[tokio::test]
async fn a_correction_is_pending_on_one_invoice_only() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        app.clock.set(ts("2027-01-10T12:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![lr("jan-1", 10, "2027-01-10T10:00:00Z")],
        )
        .await;
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);

        // March 1st, 06:00: February ended 6 hours ago, its grace runs until
        // March 2nd. January usage reported late: 17 million → +420 ¢.
        app.clock.set(ts("2027-03-01T06:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![lr("jan-late", 7, "2027-01-20T10:00:00Z")],
        )
        .await;
        let listed = list(&app, &admin).await;
        let amounts: Vec<_> = listed
            .iter()
            .map(|e| (e.name.as_str(), e.status.as_str(), e.amount.as_str()))
            .collect();
        assert_eq!(
            amounts,
            [
                (MAR, "STATUS_PENDING", "2500"),
                (FEB, "STATUS_PENDING", "2920"),
                (JAN, "STATUS_ISSUED", "2800"),
            ],
            "the 420 ¢ correction of January is pending on February only"
        );
        let march = pdf_text(&app, &admin, MAR).await;
        assert!(!march.contains("Adjustment"), "{march}");

        // What February and March are finalized with.
        app.clock.set(ts("2027-03-02T00:00:00Z"));
        app.close_periods().await;
        assert_eq!(
            lines_total(&stored(&app, &acme, FEB).await, LineKind::Adjustment),
            420
        );
        assert_eq!(entry(&list(&app, &admin).await, MAR).amount, "2500");
    })
    .await;
}

/// `monthly_usage` shows a finalized period's invoice total (adjustments
/// included). A period that is over but still in its grace shows its bill
/// without the pending adjustment, so its line changes by itself when the
/// invoice is finalized a day later; it should be the invoice's amount
/// throughout.
#[tokio::test]
async fn monthly_usage_of_a_period_in_its_grace_is_its_pending_invoice() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        app.clock.set(ts("2027-01-10T12:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![lr("jan-1", 10, "2027-01-10T10:00:00Z")],
        )
        .await;
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        app.clock.set(ts("2027-02-10T00:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![lr("jan-late", 7, "2027-01-20T10:00:00Z")],
        )
        .await;

        // February is over, in its grace.
        app.clock.set(ts("2027-03-01T06:00:00Z"));
        let feb_pending = entry(&list(&app, &admin).await, FEB).amount.clone();
        assert_eq!(feb_pending, "2920");
        let during_grace = monthly(&app, &admin).await;
        app.clock.set(ts("2027-03-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        let finalized = monthly(&app, &admin).await;
        assert_eq!(
            finalized[0],
            month("2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z", "2920")
        );
        assert_eq!(
            during_grace, finalized,
            "February's line must not change when it is finalized"
        );
    })
    .await;
}

/// The move to team cuts July short; usage for that (individual) period
/// reported after it was finalized is re-rated at individual prices and
/// billed on the next invoice, the team trial's, which then has something
/// to charge.
#[tokio::test]
async fn late_usage_for_a_period_a_plan_change_cut_short_is_adjusted_on_the_new_plans_invoice() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, admin) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-07-01T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        app.clock.set(ts("2027-07-16T00:00:00Z"));
        crate::billing_support::initiate(&app, &admin, crate::billing_support::to_team("tok-team-5555"))
            .await;
        assert_eq!(app.run_jobs().await, 1);
        app.clock.set(ts("2027-07-17T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        assert_eq!(app.charge().await, 1);
        let july = stored(&app, &acme, "inv-2027-07-0001").await;
        // 15 of 31 days of 2500 ¢.
        assert_eq!(july.invoice.totals.total, 1210);

        // 9 million requests on July 10th, reported on the 20th: at
        // individual prices 4 × 60 = 240 ¢ (at team's, nothing).
        app.clock.set(ts("2027-07-20T00:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![lr("late", 9, "2027-07-10T10:00:00Z")],
        )
        .await;
        assert_eq!(stored(&app, &acme, "inv-2027-07-0001").await, july);
        let trial = entry(&list(&app, &admin).await, "inv-2027-07-0002").clone();
        assert_eq!(
            (trial.status.as_str(), trial.amount.as_str()),
            ("STATUS_PENDING", "240")
        );

        app.clock.set(ts("2027-07-31T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        assert_eq!(app.charge().await, 1);
        let trial = stored(&app, &acme, "inv-2027-07-0002").await;
        assert_eq!(trial.invoice.plan, "team");
        let lines: Vec<_> = trial
            .invoice
            .lines
            .iter()
            .map(|l| (l.kind, l.amount_cents, l.adjusts.as_deref()))
            .collect();
        assert_eq!(lines, [(LineKind::Adjustment, 240, Some("inv-2027-07-0001"))]);
        assert_eq!(
            app.provider.successful_charges(),
            [
                ("tok-team-5555".to_owned(), 240),
                ("tok-team-5555".to_owned(), 1210)
            ]
        );
    })
    .await;
}

/// Periods that do not start on the hour: an hour belongs to the period it
/// ends in, on invoices as in late-usage corrections, so each hour is billed
/// once.
#[tokio::test]
async fn hours_across_a_period_boundary_are_billed_once_in_the_period_they_end_in() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        // Periods: [01-15 10:30, 02-15 10:30), [02-15 10:30, 03-15 10:30), …
        let (acme, admin) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-15T10:30:00Z",
            Some("tok-visa-4242"),
        )
        .await;
        app.clock.set(ts("2027-01-15T10:45:00Z"));
        // The tenant's first, partial hour: its first period.
        ingest_all(
            &app,
            &admin,
            "system",
            vec![lr("first-hour", 1, "2027-01-15T10:40:00Z")],
        )
        .await;
        app.clock.set(ts("2027-02-15T10:25:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![
                // 09:00–10:00 ends in the first period.
                lr("before", 2, "2027-02-15T09:50:00Z"),
                // 10:00–11:00 ends in the second: billed there, although
                // these come before 10:30.
                lr("boundary-1", 4, "2027-02-15T10:10:00Z"),
                lr("boundary-2", 8, "2027-02-15T10:20:00Z"),
            ],
        )
        .await;
        app.clock.set(ts("2027-02-16T10:30:00Z"));
        assert_eq!(app.close_periods().await, 1);
        let first = stored(&app, &acme, "inv-2027-01-0001").await;
        let usage: Vec<_> = first
            .invoice
            .lines
            .iter()
            .filter(|l| l.kind == LineKind::Usage)
            .map(|l| (l.metric_label.as_deref(), l.quantity.to_string(), l.amount_cents))
            .collect();
        assert_eq!(usage, [(Some("lb_requests"), "3".to_owned(), 0)]);

        // After the first period is finalized: an event in the boundary hour
        // goes to the second period as usual; one in the hour before is late
        // usage of the first (5 million: 6 in all, 60 ¢ more).
        ingest_all(
            &app,
            &admin,
            "system",
            vec![
                lr("boundary-3", 16, "2027-02-15T10:05:00Z"),
                lr("late", 3, "2027-02-15T09:59:00Z"),
            ],
        )
        .await;
        assert_eq!(stored(&app, &acme, "inv-2027-01-0001").await, first);
        app.clock.set(ts("2027-03-16T10:30:00Z"));
        assert_eq!(app.close_periods().await, 1);
        let second = stored(&app, &acme, "inv-2027-02-0002").await;
        let lines: Vec<_> = second
            .invoice
            .lines
            .iter()
            .map(|l| (l.kind, l.quantity.to_string(), l.amount_cents))
            .collect();
        // 4 + 8 + 16 = 28 million → 23 × 60 = 1380 ¢; the first period now
        // has 6 million → 1 × 60 = 60 ¢.
        assert_eq!(
            lines,
            [
                (LineKind::Fee, "1".to_owned(), 2500),
                (LineKind::Usage, "28".to_owned(), 1380),
                (LineKind::Adjustment, "1".to_owned(), 60),
            ]
        );
    })
    .await;
}
