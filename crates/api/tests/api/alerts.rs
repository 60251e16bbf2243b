//! Usage alerts: on spend or one meter (or one namespace's), fired once per
//! billing period as `usage.alert_triggered` when ingested usage reaches
//! them, re-armed at the next period, each tenant's own.

use serde_json::{Value, json};
use tollgate_app::Job;
use tollgate_testkit::each_backend;

use crate::invoice_support::billed_tenant;
use crate::support::{TestApp, ts};
use crate::usage_support::{event, ingest_all};
use crate::webhooks_out::{Receiver, assert_signed, deliver, endpoint};

const ALERTS: &str = "/api/web/namespaces/system/alerts";

/// Runs the alerts job at the test clock's time; returns how many fired.
async fn evaluate(app: &TestApp) -> usize {
    Job::Alerts.run(&app.job_context("w", None)).await.unwrap()
}

/// `millions` of load-balancer requests in namespace `ns`, now.
async fn requests(app: &TestApp, tok: &str, ns: &str, id: &str, millions: i64) {
    let at = tollgate_domain::clock::Clock::now(app.clock.as_ref()).to_string();
    ingest_all(
        app,
        tok,
        ns,
        vec![event(id, "lb_requests", "lb-1", millions * 1_000_000, at)],
    )
    .await;
}

fn states(list: &Value) -> Vec<(String, String)> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn alerts_fire_once_per_period_as_usage_reaches_them() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let rx = Receiver::start().await;
        let (acme, admin) = billed_tenant(&app, "acme", "individual", "2027-01-01T00:00:00Z", None).await;
        app.namespace(&acme, "web").await;
        let (_, secret) = endpoint(&app, &admin, &rx.url, &["usage.alert_triggered"]).await;
        app.clock.set(ts("2027-01-10T00:00:00Z"));
        // individual: 25.00 a month, lb_requests 0.60 per million past 5 million.
        let spend = app.post(ALERTS, &admin, json!({"name": "spend-30", "metric": "spend", "threshold": "3000"})).await;
        assert_eq!(
            spend.ok(),
            &json!({"name": "spend-30", "metric": "spend", "threshold": "3000", "state": "ARMED", "created_at": "2027-01-10T00:00:00Z"})
        );
        app.post(ALERTS, &admin, json!({"name": "requests-10", "metric": "lb_requests", "threshold": 10})).await.ok();
        app.post(ALERTS, &admin, json!({"name": "web-3", "metric": "lb_requests", "threshold": "3", "namespace": "web"}))
            .await
            .ok();
        assert_eq!(evaluate(&app).await, 0, "nothing reached on creation");

        requests(&app, &admin, "system", "a", 8).await; // 26.80, 8 million
        assert_eq!(evaluate(&app).await, 0);
        requests(&app, &admin, "system", "b", 6).await; // 30.40, 14 million
        assert_eq!(evaluate(&app).await, 2, "spend and requests reached");
        requests(&app, &admin, "system", "c", 1).await;
        assert_eq!(evaluate(&app).await, 0, "once per period");
        assert_eq!(evaluate(&app).await, 0, "nothing pending");
        requests(&app, &admin, "web", "d", 3).await;
        assert_eq!(evaluate(&app).await, 1, "the namespace's own usage");

        let list = app.get(ALERTS, &admin).await;
        assert_eq!(
            states(list.ok()),
            [
                ("requests-10".into(), "TRIGGERED".into()),
                ("spend-30".into(), "TRIGGERED".into()),
                ("web-3".into(), "TRIGGERED".into())
            ]
        );
        let spend = app.get(&format!("{ALERTS}/spend-30"), &admin).await;
        assert_eq!((spend.ok()["triggered_value"].as_str(), spend.ok()["triggered_at"].as_str()), (Some("3040"), Some("2027-01-10T00:00:00Z")), "{}", spend.body);

        deliver(&app).await;
        let got = rx.got();
        assert_signed(&got, &secret, acme.id.as_str());
        let names: Vec<&str> = got.iter().map(|r| r.json["data"]["name"].as_str().unwrap()).collect();
        assert_eq!(names.len(), 3);
        assert!(names.contains(&"spend-30") && names.contains(&"requests-10") && names.contains(&"web-3"), "{names:?}");
        let spent = got.iter().find(|r| r.json["data"]["name"] == "spend-30").unwrap();
        let d = &spent.json["data"];
        assert_eq!(
            (d["state"].as_str(), d["triggered_value"].as_str(), d["currency"].as_str(), d["period_start"].as_str(), d["period_end"].as_str()),
            (Some("TRIGGERED"), Some("3040"), Some("USD"), Some("2027-01-01T00:00:00Z"), Some("2027-02-01T00:00:00Z")),
            "{d}"
        );
        assert_eq!(spent.json["type"], "usage.alert_triggered");

        // The next period re-arms them: ARMED, and nothing fires below the thresholds.
        app.clock.set(ts("2027-02-05T00:00:00Z"));
        let list = app.get(ALERTS, &admin).await;
        assert!(states(list.ok()).iter().all(|(_, s)| s == "ARMED"), "{}", list.body);
        requests(&app, &admin, "system", "e", 1).await;
        assert_eq!(evaluate(&app).await, 0);
        requests(&app, &admin, "system", "f", 10).await;
        assert_eq!(evaluate(&app).await, 1, "requests-10 again, in February");
    })
    .await;
}

#[tokio::test]
async fn alerts_are_checked_and_each_tenants_own() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let (_, other) = app.admin("globex").await;
        for (body, field) in [
            (
                json!({"name": "Bad Name", "metric": "spend", "threshold": "1"}),
                "name",
            ),
            (json!({"name": "x", "metric": "nope", "threshold": "1"}), "metric"),
            (
                json!({"name": "x", "metric": "spend", "threshold": "12.5"}),
                "threshold",
            ),
            (
                json!({"name": "x", "metric": "spend", "threshold": "0"}),
                "threshold",
            ),
            (
                json!({"name": "x", "metric": "lb_requests", "threshold": "-1"}),
                "threshold",
            ),
            (json!({"name": "x", "metric": "lb_requests"}), "threshold"),
            (
                json!({"name": "x", "metric": "lb_requests", "threshold": true}),
                "threshold",
            ),
        ] {
            let r = app.post(ALERTS, &admin, body.clone()).await;
            r.error(400, 3);
            assert!(
                r.body["message"].as_str().unwrap().starts_with(field),
                "{body}: {}",
                r.body
            );
        }
        app.post(
            ALERTS,
            &admin,
            json!({"name": "x", "metric": "lb_requests", "threshold": "1", "namespace": "nope"}),
        )
        .await
        .error(404, 5);
        assert!(
            app.get(ALERTS, &admin).await.ok()["items"]
                .as_array()
                .unwrap()
                .is_empty(),
            "nothing stored"
        );
        app.post(
            ALERTS,
            &admin,
            json!({"name": "x", "metric": "lb_requests", "threshold": "2.5"}),
        )
        .await
        .ok();
        app.post(
            ALERTS,
            &admin,
            json!({"name": "x", "metric": "spend", "threshold": "1"}),
        )
        .await
        .reason("ALERT_EXISTS");
        // Another tenant sees none of it, by any route.
        assert!(
            app.get(ALERTS, &other).await.ok()["items"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        app.get(&format!("{ALERTS}/x"), &other).await.error(404, 5);
        app.delete(&format!("{ALERTS}/x"), &other).await.error(404, 5);
        assert_eq!(
            app.get(&format!("{ALERTS}/x"), &admin).await.ok()["threshold"],
            "2.5"
        );
        let acme = app.store.tenant_by_name("acme").await.unwrap().unwrap();
        let monitor = app.token(&acme, tollgate_domain::access::Role::Monitor).await;
        app.get(ALERTS, &monitor).await.ok();
        app.delete(&format!("{ALERTS}/x"), &monitor).await.error(403, 7);
        assert_eq!(app.delete(&format!("{ALERTS}/x"), &admin).await.status, 200);
        app.get(&format!("{ALERTS}/x"), &admin).await.error(404, 5);
        for i in 0..50 {
            app.post(
                ALERTS,
                &admin,
                json!({"name": format!("a{i}"), "metric": "spend", "threshold": "100"}),
            )
            .await
            .ok();
        }
        app.post(
            ALERTS,
            &admin,
            json!({"name": "one-more", "metric": "spend", "threshold": "100"}),
        )
        .await
        .reason("ALERT_LIMIT");
    })
    .await;
}
