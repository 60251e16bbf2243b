//! Period close reads only the tenants that are due (the billing due-date
//! index): never the other tenants' subscriptions and invoices, while every
//! period is still closed on time: new, backdated and plan-changing tenants
//! included.

use tollgate_app::invoices::{PeriodClose, close_due_periods};
use tollgate_domain::access::Role;
use tollgate_domain::clock::Clock;
use tollgate_testkit::each_backend;

use crate::billing_support::{initiate, to_team};
use crate::support::{TestApp, ts};

/// One period close at the test clock's time (1 day grace).
async fn close(app: &TestApp) -> PeriodClose {
    let ctx = app.job_context("closer", None);
    close_due_periods(&ctx, app.clock.now())
        .await
        .expect("period close")
}

/// Runs `sql` on the test database directly.
pub(crate) async fn exec(app: &TestApp, sql: String) {
    use sqlx::Connection;
    let sql = sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
    match (app.db().sqlite_dir(), app.db().postgres_url()) {
        (Some(dir), _) => {
            let url = format!("sqlite://{}", dir.join("tollgate.db").display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sql.execute(&mut conn).await.unwrap();
        }
        (None, Some(url)) => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sql.execute(&mut conn).await.unwrap();
        }
        (None, None) => unreachable!("a test database is SQLite or PostgreSQL"),
    }
}

fn did(tenants: usize, invoices: usize) -> PeriodClose {
    PeriodClose { tenants, invoices }
}

#[tokio::test]
async fn period_close_reads_only_the_due_tenants() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2027-01-01T00:00:00Z"));
        let mut tenants = Vec::new();
        for i in 0..50 {
            tenants.push(app.tenant_on(&format!("t{i:02}"), "individual").await);
        }
        let admin = app.token(&tenants[0], Role::Admin).await;

        // New tenants are worked out once: nothing to close before Feb 2.
        app.clock.set(ts("2027-01-10T00:00:00Z"));
        assert_eq!(close(&app).await, did(50, 0));
        assert_eq!(close(&app).await, did(0, 0), "no one is due");

        // A tenant backdated to November (history to import) is due at once:
        // its November and December are closed, and only it is read.
        app.clock.set(ts("2026-11-01T00:00:00Z"));
        app.tenant_on("late", "individual").await;
        app.clock.set(ts("2027-01-10T00:01:00Z"));
        assert_eq!(close(&app).await, did(1, 2));
        assert_eq!(close(&app).await, did(0, 0));

        // Mid-January t00 moves to team: its January ends now, and it alone is
        // due a grace later, with the prorated invoice; then its trial ends.
        app.clock.set(ts("2027-01-16T00:00:00Z"));
        initiate(&app, &admin, to_team("tok-team-5555")).await;
        assert_eq!(app.run_jobs().await, 1);
        assert_eq!(close(&app).await, did(0, 0), "in its grace");
        app.clock.set(ts("2027-01-17T00:00:00Z"));
        assert_eq!(close(&app).await, did(1, 1));
        assert_eq!(close(&app).await, did(0, 0));
        app.clock.set(ts("2027-01-31T00:00:00Z"));
        assert_eq!(close(&app).await, did(1, 1), "the 14-day trial");
        app.clock.set(ts("2027-02-01T12:00:00Z"));
        assert_eq!(close(&app).await, did(0, 0), "January is in its grace");

        // February 2: the other 49 and the late tenant close January; t00's
        // first team period runs to the end of February.
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        assert_eq!(close(&app).await, did(50, 50));
        assert_eq!(close(&app).await, did(0, 0));
        for t in &tenants[1..] {
            let invoices = app.store.invoices(&t.id).await.unwrap();
            assert_eq!(invoices.len(), 1, "{}", t.name);
            assert_eq!(invoices[0].invoice.name, "inv-2027-01-0001");
        }
        let names: Vec<String> = app
            .store
            .invoices(&tenants[0].id)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.invoice.name.into_string())
            .collect();
        assert_eq!(names, ["inv-2027-01-0002", "inv-2027-01-0001"]);
    })
    .await;
}

/// A tenant whose close fails stays due and is tried again; the others are
/// closed and are not read again.
#[tokio::test]
async fn a_tenant_that_cannot_be_closed_stays_due() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        app.clock.set(ts("2027-01-01T00:00:00Z"));
        let a = app.tenant_on("acme", "individual").await;
        app.tenant_on("bravo", "individual").await;
        // acme's subscription names a plan its catalog does not have.
        exec(
            &app,
            format!(
                "UPDATE subscriptions SET plan = 'nonesuch' WHERE tenant_id = '{}'",
                a.id
            ),
        )
        .await;
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        let ctx = app.job_context("closer", None);
        assert!(close_due_periods(&ctx, app.clock.now()).await.is_err());
        assert_eq!(app.store.invoices(&a.id).await.unwrap().len(), 0);
        let due = app.store.due_tenants(app.clock.now(), None, 10).await.unwrap();
        let due: Vec<&str> = due.iter().map(|d| d.tenant_id.as_str()).collect();
        assert_eq!(due, [a.id.as_str()], "only the failing tenant is still due");
        assert!(close_due_periods(&ctx, app.clock.now()).await.is_err());
    })
    .await;
}

/// Tenants of a Tollgate from before plans get the latest catalog's default
/// plan from the application layer (every `open` of the binary runs it),
/// once, starting when they were created; then period close works out their
/// periods.
#[tokio::test]
async fn tenants_from_before_plans_are_adopted_by_the_application() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let acme = app.tenant_on("acme", "individual").await;
        for sql in [
            "DELETE FROM subscriptions",
            "UPDATE tenants SET plan = NULL, catalog_version = NULL",
        ] {
            exec(&app, sql.to_owned()).await;
        }
        let versions = tollgate_app::catalogs::Versions::default();
        let now = app.clock.now();
        let adopted = tollgate_app::catalogs::adopt_planless_tenants(&*app.store, &versions, now)
            .await
            .unwrap();
        assert_eq!(adopted, 1);
        let again = tollgate_app::catalogs::adopt_planless_tenants(&*app.store, &versions, now)
            .await
            .unwrap();
        assert_eq!(again, 0, "idempotent");
        let fixed = app.store.tenant_by_name("acme").await.unwrap().unwrap();
        assert_eq!(fixed.plan.as_str(), "free", "the catalog's default plan");
        let subs = app.store.subscriptions(&acme.id).await.unwrap();
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].start, acme.created_at);
    })
    .await;
}
