//! Raw usage events past retention: deleted by the `purge-events` job once
//! no event that old can be admitted (the default), never counted twice
//! after that (the admission floor refuses them), and reports, invoices and
//! other tenants untouched.

use serde_json::json;
use tollgate_app::Job;
use tollgate_app::maintenance::{RawEvents, Retention};
use tollgate_testkit::each_backend;

use crate::invoice_support::billed_tenant;
use crate::support::{TestApp, ts};
use crate::usage_support::{details, ingest, ingest_all, lr, monthly, results};

/// Runs the purge job at the test clock's time with `keep`.
async fn purge(app: &TestApp, keep: RawEvents) -> usize {
    let mut ctx = app.job_context("test-worker", None);
    ctx.retention = Retention {
        raw_events: keep,
        ..Retention::default()
    };
    Job::PurgeEvents.run(&ctx).await.expect("purge-events")
}

/// (id, status) of each result of an ingestion response.
fn statuses(resp: &serde_json::Value) -> Vec<(String, String)> {
    results(resp)
        .into_iter()
        .map(|(id, status, _)| (id, status))
        .collect()
}

#[tokio::test]
async fn raw_events_go_once_their_period_can_no_longer_take_usage_and_are_never_counted_twice() {
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
        // globex starts mid-February: nothing of it is finalized by March 2.
        let (_, globex) = billed_tenant(
            &app,
            "globex",
            "individual",
            "2027-02-15T00:00:00Z",
            Some("tok-visa-4242"),
        )
        .await;

        app.clock.set(ts("2027-01-20T00:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![
                lr("jan-1", 10, "2027-01-10T10:00:00Z"),
                lr("jan-2", 2, "2027-01-19T23:00:00Z"),
            ],
        )
        .await;
        // January finalized: its usage may still arrive late (it is the
        // latest finalized period), so its raw events are kept.
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        assert_eq!(purge(&app, RawEvents::UntilFinalized).await, 0);
        let resent = ingest(
            &app,
            &admin,
            "system",
            vec![lr("jan-1", 10, "2027-01-10T10:00:00Z")],
        )
        .await;
        assert_eq!(statuses(&resent), [("jan-1".to_owned(), "DUPLICATE".to_owned())]);

        app.clock.set(ts("2027-02-20T00:00:00Z"));
        ingest_all(
            &app,
            &admin,
            "system",
            vec![lr("feb-1", 6, "2027-02-03T10:00:00Z")],
        )
        .await;
        ingest_all(
            &app,
            &globex,
            "system",
            vec![lr("g-1", 3, "2027-02-16T10:00:00Z")],
        )
        .await;
        app.clock.set(ts("2027-03-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1, "acme's February");
        let jan_details = json!({
            "start_timestamp": "2027-01-01T00:00:00Z",
            "end_timestamp": "2027-02-01T00:00:00Z",
        });
        let reports_before = (
            monthly(&app, &admin).await,
            details(&app, &admin, "system", jan_details.clone()).await,
        );

        // Kept for at least 60 days: January's events are younger.
        assert_eq!(
            purge(
                &app,
                RawEvents::AtLeast(jiff::SignedDuration::from_hours(60 * 24))
            )
            .await,
            0
        );
        assert_eq!(purge(&app, RawEvents::Forever).await, 0);
        // The default: February is the latest finalized period, so nothing
        // before February 1 can be admitted; January's two events go.
        assert_eq!(purge(&app, RawEvents::UntilFinalized).await, 2);
        assert_eq!(purge(&app, RawEvents::UntilFinalized).await, 0, "nothing left");
        let floor = app.store.usage_floor(&acme.id).await.unwrap();
        assert_eq!(floor.events_purged_before, Some(ts("2027-02-01T00:00:00Z")));

        // Reports read rollups: nothing changed.
        assert_eq!(
            (
                monthly(&app, &admin).await,
                details(&app, &admin, "system", jan_details).await
            ),
            reports_before
        );
        // A January event sent again is refused, not counted again; a
        // February one is still recognized as a duplicate.
        let resent = ingest(
            &app,
            &admin,
            "system",
            vec![
                lr("jan-1", 10, "2027-01-10T10:00:00Z"),
                lr("feb-1", 6, "2027-02-03T10:00:00Z"),
            ],
        )
        .await;
        assert_eq!(
            statuses(&resent),
            [
                ("jan-1".to_owned(), "REJECTED".to_owned()),
                ("feb-1".to_owned(), "DUPLICATE".to_owned())
            ]
        );
        assert_eq!(monthly(&app, &admin).await, reports_before.0);
        // globex's events are kept.
        let resent = ingest(
            &app,
            &globex,
            "system",
            vec![lr("g-1", 3, "2027-02-16T10:00:00Z")],
        )
        .await;
        assert_eq!(statuses(&resent), [("g-1".to_owned(), "DUPLICATE".to_owned())]);
    })
    .await;
}
