//! Storage faults met in the middle of a write: a full disk, and a
//! connection lost mid-transaction, injected into the store's writer on every
//! engine (SQLite: `max_page_count` held at the file's size, and the engine
//! interrupted after a chosen number of steps, swept over the whole write;
//! PostgreSQL: the server's `disk_full` error and a terminated backend before
//! the commit). While a fault lasts, clients get 503 with code 14 and
//! `Retry-After`, and nothing of the write is kept; once it is gone, the next
//! request succeeds without a restart.

use std::sync::Arc;

use tollgate_payments::Providers;

use axum::body::Body;
use axum::http::Method;
use jiff::SignedDuration;
use serde_json::{Value, json};
use tollgate_app::invoices::{charge_until_idle, close_periods};
use tollgate_domain::clock::Clock;
use tollgate_domain::invoice::InvoiceStatus;
use tollgate_store::ChargeOutcome;
use tollgate_store::faults::Fault;
use tollgate_testkit::{TestDatabase, each_backend};

use crate::invoice_support::{attempts, billed_tenant, status, stored};
use crate::provider_support::Hooked;
use crate::support::{Resp, TestApp, ts};
use crate::usage_support::{event, events_path};

const RESERVE: &str = "/api/web/namespaces/system/quota/reserve";

/// Where in a write the connection is lost (SQLite engine steps), from
/// before its first statement finishes to after its last.
const SWEEP: [u32; 9] = [1, 5, 15, 40, 100, 250, 600, 1500, 4000];

/// The faults every test meets: a full disk, then connections lost at every
/// point of the sweep.
fn faults() -> Vec<Fault> {
    let mut all = vec![Fault::DiskFull];
    all.extend(SWEEP.map(|after_steps| Fault::ConnectionLost { after_steps }));
    all
}

/// A 503 of a write: code 14, `Retry-After`, and it says nothing changed.
#[track_caller]
fn unavailable(resp: &Resp) {
    let message = resp.reason("UNAVAILABLE").error(503, 14);
    assert!(message.contains("nothing was changed"), "{message}");
    retry_after(resp);
}

/// A readiness probe answered "not ready".
#[track_caller]
fn not_ready(resp: &Resp) {
    let message = resp.reason("NOT_READY").error(503, 14);
    assert!(message.starts_with("not ready: "), "{message}");
    retry_after(resp);
}

#[track_caller]
fn retry_after(resp: &Resp) {
    assert_eq!(
        resp.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1"),
        "503 says when to retry"
    );
}

async fn readyz(app: &TestApp) -> Resp {
    app.request(Method::GET, "/readyz", None, Body::empty(), &[])
        .await
}

fn reservation(id: &str) -> Value {
    json!({"kind": "widget", "amount": 1, "request_id": id})
}

#[tokio::test]
async fn reservations_are_all_or_nothing_under_faults_and_succeed_once_they_are_gone() {
    each_backend(|db| async move {
        let (app, plan) = TestApp::with_faults(db).await;
        let (_, admin) = app.admin("acme").await;
        let mut granted = 0;
        for (round, fault) in faults().into_iter().enumerate() {
            plan.set(Some(fault));
            // Clients keep reserving; some writes may fit (a full disk still
            // takes writes that need no new page), until one meets the fault.
            let mut refused = None;
            for i in 0..3000 {
                let id = format!("r{round}-{i}");
                let resp = app.post(RESERVE, &admin, reservation(&id)).await;
                if resp.status == 200 {
                    granted += 1;
                    assert_eq!(resp.body["current"], granted, "{fault:?}: {}", resp.body);
                    continue;
                }
                unavailable(&resp);
                refused = Some(id);
                break;
            }
            let id = refused.unwrap_or_else(|| panic!("{fault:?} was never met"));
            not_ready(&readyz(&app).await);
            if fault == Fault::DiskFull {
                // A retry while the disk is full is refused again.
                unavailable(&app.post(RESERVE, &admin, reservation(&id)).await);
            }

            plan.set(None);
            // The refused reservation counted nothing and claimed nothing:
            // its retry is a first, and is counted once.
            let resp = app.post(RESERVE, &admin, reservation(&id)).await;
            let body = resp.ok();
            granted += 1;
            assert_eq!(
                (body["current"].clone(), body["replayed"].clone()),
                (json!(granted), json!(false)),
                "{fault:?}: {body}"
            );
            let again = app.post(RESERVE, &admin, reservation(&id)).await;
            assert_eq!(again.ok()["replayed"], true);
            assert_eq!(readyz(&app).await.ok()["status"], "ready");
        }
        let usage = app.get("/api/web/namespaces/system/quota/usage", &admin).await;
        assert_eq!(
            usage.ok()["objects"]["widget"]["usage"]["current"],
            granted,
            "{}",
            usage.body
        );
    })
    .await;
}

#[tokio::test]
async fn an_ingestion_batch_is_stored_whole_or_not_at_all_under_faults() {
    each_backend(|db| async move {
        let (app, plan) = TestApp::with_faults(db).await;
        let (_, admin) = app.admin("acme").await;
        let now = app.clock.now().to_string();
        for (round, fault) in faults().into_iter().enumerate() {
            let batch: Vec<Value> = (0..400)
                .map(|i| event(&format!("b{round}-{i}"), "lb_requests", "lb-1", 1000, now.clone()))
                .collect();
            plan.set(Some(fault));
            let resp = app
                .post(&events_path("system"), &admin, json!({ "events": batch }))
                .await;
            if resp.status == 200 {
                // Only a fault met after the whole write can let it through
                // (the longest sweep points).
                assert!(
                    matches!(fault, Fault::ConnectionLost { after_steps } if after_steps >= 600),
                    "{fault:?}"
                );
                assert_eq!(resp.body["accepted"], 400);
                plan.set(None);
                continue;
            }
            unavailable(&resp);
            not_ready(&readyz(&app).await);
            plan.set(None);
            // Nothing of the batch was kept: resent, every event is new.
            let resp = app
                .post(&events_path("system"), &admin, json!({ "events": batch }))
                .await;
            assert_eq!(
                (resp.ok()["accepted"].clone(), resp.body["duplicates"].clone()),
                (json!(400), json!(0)),
                "{fault:?}: {}",
                resp.body
            );
            assert_eq!(readyz(&app).await.ok()["status"], "ready");
        }
        let usage = app
            .post("/api/web/namespaces/system/usage_details", &admin, json!({}))
            .await;
        let items = usage.ok()["usage_items"].as_array().expect("items").clone();
        let total: f64 = items.iter().filter_map(|i| i["quantity"].as_f64()).sum();
        assert_eq!(total, (faults().len() * 400 * 1000) as f64, "{}", usage.body);
    })
    .await;
}

/// When the tenant's first period (January 2027) is finalized.
const CLOSE: &str = "2027-02-02T00:00:00Z";
const FIRST: &str = "inv-2027-01-0001";

/// A tenant on the individual plan since 2027-01-01 with a card, at `CLOSE`.
async fn billed(app: &TestApp) -> tollgate_domain::tenant::Tenant {
    let (tenant, _) = billed_tenant(
        app,
        "acme",
        "individual",
        "2027-01-01T00:00:00Z",
        Some("tok-visa-4242"),
    )
    .await;
    app.clock.set(ts(CLOSE));
    tenant
}

/// Runs `fault` against the period close of a fresh database: the close
/// either finishes or fails as unavailable with no invoice stored; after the
/// fault, one close stores the invoice once.
async fn period_close_meets(db: TestDatabase, fault: Fault) {
    let (app, plan) = TestApp::with_faults(db).await;
    let tenant = billed(&app).await;
    let ctx = app.job_context("closer", None);
    plan.set(Some(fault));
    let closed = close_periods(&ctx, app.clock.now()).await;
    plan.set(None);
    match closed {
        Ok(n) => assert_eq!(n, 1, "{fault:?}"),
        Err(e) => {
            assert!(e.is_unavailable(), "{fault:?}: {e}");
            assert!(
                app.store.invoices(&tenant.id).await.unwrap().is_empty(),
                "{fault:?}: a failed close stores nothing"
            );
            assert_eq!(close_periods(&ctx, app.clock.now()).await.unwrap(), 1);
        }
    }
    assert_eq!(close_periods(&ctx, app.clock.now()).await.unwrap(), 0);
    let invoices = app.store.invoices(&tenant.id).await.unwrap();
    assert_eq!(invoices.len(), 1);
    assert_eq!(status(&invoices[0]), InvoiceStatus::Issued);
}

#[tokio::test]
async fn period_close_is_all_or_nothing_under_faults() {
    for fault in faults() {
        each_backend(|db| period_close_meets(db, fault)).await;
    }
}

/// Charges the finalized invoice with `fault` armed: either the round ends
/// or it fails as unavailable leaving the invoice ISSUED; after the fault
/// (and the lease), it is PAID with exactly one charge at the provider.
async fn charge_meets(db: TestDatabase, fault: Fault) {
    let (app, plan) = TestApp::with_faults(db).await;
    let tenant = billed(&app).await;
    let ctx = app.job_context("charger", None);
    assert_eq!(close_periods(&ctx, app.clock.now()).await.unwrap(), 1);
    plan.set(Some(fault));
    let charged = charge_until_idle(&ctx).await;
    plan.set(None);
    if let Err(e) = charged {
        assert!(e.is_unavailable(), "{fault:?}: {e}");
        assert_eq!(status(&stored(&app, &tenant, FIRST).await), InvoiceStatus::Issued);
    }
    // A lease a failed worker may hold expires; the next run finishes.
    app.clock.set(ts(CLOSE) + SignedDuration::from_mins(10));
    charge_until_idle(&ctx).await.unwrap();
    assert_eq!(status(&stored(&app, &tenant, FIRST).await), InvoiceStatus::Paid);
    let tried = attempts(&app, &tenant, FIRST).await;
    assert_eq!(
        tried
            .iter()
            .filter(|a| a.outcome == ChargeOutcome::Succeeded)
            .count(),
        1,
        "{fault:?}: {tried:#?}"
    );
    assert_eq!(app.provider.successful_charges().len(), 1, "charged once");
}

#[tokio::test]
async fn a_charge_is_all_or_nothing_under_faults() {
    for fault in faults() {
        each_backend(|db| charge_meets(db, fault)).await;
    }
}

/// A connection lost right after the provider charged: the charge is
/// recorded as pending, and the next worker settles it with the same
/// idempotency key, so the customer is charged once.
#[tokio::test]
async fn a_connection_lost_after_the_provider_charged_never_charges_twice() {
    each_backend(|db| async move {
        let (app, plan) = TestApp::with_faults(db).await;
        let tenant = billed(&app).await;
        let mut ctx = app.job_context("charger", None);
        assert_eq!(close_periods(&ctx, app.clock.now()).await.unwrap(), 1);
        let arm = plan.clone();
        ctx.providers = Providers::new(Arc::new(Hooked {
            after_charge: Some(Box::new(move || {
                arm.set(Some(Fault::ConnectionLost { after_steps: 1 }));
                Box::pin(async {})
            })),
            ..Hooked::new(app.provider.clone())
        }));
        let lost = charge_until_idle(&ctx).await.unwrap_err();
        assert!(lost.is_unavailable(), "{lost}");
        plan.set(None);
        let pending = attempts(&app, &tenant, FIRST).await;
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].outcome, ChargeOutcome::Pending);
        assert_eq!(status(&stored(&app, &tenant, FIRST).await), InvoiceStatus::Issued);

        ctx.providers = Providers::new(app.provider.clone());
        app.clock.set(ts(CLOSE) + SignedDuration::from_mins(10));
        charge_until_idle(&ctx).await.unwrap();
        assert_eq!(status(&stored(&app, &tenant, FIRST).await), InvoiceStatus::Paid);
        assert_eq!(app.provider.successful_charges().len(), 1, "charged once");
    })
    .await;
}

/// PostgreSQL turns every connection away (`ALLOW_CONNECTIONS false`, open
/// backends terminated): reads and writes get 503 and the server is not
/// ready; once the database takes connections again, the next request
/// succeeds without a restart. (SQLite's equivalents are the faults above.)
#[tokio::test]
async fn a_postgres_outage_answers_503_and_heals_by_itself() {
    use sqlx::Connection;
    let Some(admin_url) = tollgate_testkit::backends().into_iter().find_map(|b| match b {
        tollgate_testkit::Backend::Postgres(url) => Some(url),
        tollgate_testkit::Backend::Sqlite => None,
    }) else {
        eprintln!(
            "PostgreSQL is not configured ({}); the outage test runs with it",
            tollgate_testkit::POSTGRES_URL_VAR
        );
        return;
    };
    let db = TestDatabase::create(&tollgate_testkit::Backend::Postgres(admin_url.clone())).await;
    let name = db.postgres_admin().expect("a PostgreSQL database").1.to_owned();
    let app = TestApp::new(db).await;
    let (_, admin) = app.admin("acme").await;
    app.post(RESERVE, &admin, reservation("before")).await.ok();

    let mut operator = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    let run = |sql: String| sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
    run(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut operator)
        .await
        .unwrap();
    run(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .execute(&mut operator)
    .await
    .unwrap();

    unavailable(&app.post(RESERVE, &admin, reservation("during")).await);
    let read = app.get("/api/web/namespaces/system/quota/usage", &admin).await;
    read.reason("UNAVAILABLE").error(503, 14);
    retry_after(&read);
    not_ready(&readyz(&app).await);

    run(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut operator)
        .await
        .unwrap();
    let resp = app.post(RESERVE, &admin, reservation("during")).await;
    assert_eq!(
        (resp.ok()["current"].clone(), resp.body["replayed"].clone()),
        (json!(2), json!(false)),
        "the refused reservation counted nothing"
    );
    assert_eq!(readyz(&app).await.ok()["status"], "ready");
}
