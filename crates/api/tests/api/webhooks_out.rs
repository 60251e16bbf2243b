//! Webhooks out, against a real HTTP receiver on loopback: each event type
//! arrives signed as the Standard Webhooks specification says, failed
//! attempts come again with the same id after the backoff (time injected),
//! a rolled-back change emits nothing, two workers make each attempt once,
//! an endpoint's events arrive in order, a secret rotation signs with both
//! secrets, an endpoint failing for too long is disabled, private URLs are
//! refused without the operator's leave, and no tenant reaches another's
//! endpoints.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::post;
use jiff::SignedDuration;
use serde_json::{Value, json};
use tollgate_app::webhooks::{self, EndpointInput, WebhookSettings};
use tollgate_app::{AppError, JobContext};
use tollgate_domain::access::Role;
use tollgate_domain::webhook::{EventType, verify};
use tollgate_store::faults::Fault;
use tollgate_testkit::each_backend;

use crate::billing_support::{
    OPERATOR_TRANSITIONS, PAYMENT_METHODS, add_card, card, initiate, to_organization,
};
use crate::invoice_support::billed_tenant;
use crate::support::{TestApp, ts};

const HOOKS: &str = "/api/web/namespaces/system/webhooks";
const DAY: SignedDuration = SignedDuration::from_hours(24);

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: String,
    pub json: Value,
}

#[derive(Default)]
struct Inbox {
    got: Vec<Received>,
    /// Statuses to answer next (then 200).
    script: VecDeque<u16>,
}

/// A real HTTP server on loopback recording what it is sent.
pub struct Receiver {
    pub url: String,
    inbox: Arc<Mutex<Inbox>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(inbox): State<Arc<Mutex<Inbox>>>, headers: HeaderMap, body: String) -> StatusCode {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut inbox = inbox.lock().unwrap();
    inbox.got.push(Received {
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp").parse().unwrap_or(-1),
        signature: h("webhook-signature"),
        json: serde_json::from_str(&body).unwrap_or(Value::Null),
        body,
    });
    StatusCode::from_u16(inbox.script.pop_front().unwrap_or(200)).unwrap()
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(inbox.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, inbox, task }
    }

    /// Answers the next requests with these statuses.
    fn answer(&self, statuses: &[u16]) {
        self.inbox.lock().unwrap().script.extend(statuses);
    }

    pub fn got(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().got.clone()
    }

    fn types(&self) -> Vec<String> {
        self.got()
            .iter()
            .map(|r| r.json["type"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

/// Creates an endpoint as the tenant; returns its id and secret.
pub async fn endpoint(app: &TestApp, admin: &str, url: &str, events: &[&str]) -> (String, String) {
    let resp = app
        .post(
            HOOKS,
            admin,
            json!({"url": url, "events": events, "description": "ours"}),
        )
        .await;
    let e = resp.ok();
    assert!(e["secret"].as_str().unwrap().starts_with("whsec_"), "{e}");
    (
        e["id"].as_str().unwrap().to_owned(),
        e["secret"].as_str().unwrap().to_owned(),
    )
}

fn ctx(app: &TestApp, worker: &str) -> JobContext {
    app.job_context(worker, None)
}

/// Dispatches and delivers what is due at the test clock's time.
pub async fn deliver(app: &TestApp) -> usize {
    webhooks::run_until_idle(&ctx(app, "test-worker"))
        .await
        .expect("webhooks run")
}

/// Asserts every request verifies with `secret` and its body is the
/// documented envelope, with `webhook-id` its `id`.
pub fn assert_signed(got: &[Received], secret: &str, tenant: &str) {
    for r in got {
        assert!(
            verify(secret, &r.id, r.timestamp, r.body.as_bytes(), &r.signature),
            "{r:?}"
        );
        let keys: Vec<&String> = r.json.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["data", "id", "tenant", "timestamp", "type"], "{}", r.body);
        assert_eq!(r.json["id"], r.id.as_str());
        assert!(r.id.starts_with("msg_"), "{}", r.id);
        assert_eq!(r.json["tenant"], tenant);
        assert!(
            EventType::parse(r.json["type"].as_str().unwrap()).is_some(),
            "{}",
            r.body
        );
        r.json["timestamp"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap();
    }
}

fn of_type<'a>(got: &'a [Received], t: &str) -> Vec<&'a Received> {
    got.iter().filter(|r| r.json["type"] == t).collect()
}

#[tokio::test]
async fn billing_events_arrive_signed_with_their_objects() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let rx = Receiver::start().await;
        let (acme, admin) = billed_tenant(&app, "acme", "individual", "2027-01-01T00:00:00Z", None).await;
        let (_, secret) = endpoint(&app, &admin, &rx.url, &[]).await;

        // payment_method.changed: the tenant's methods after the change.
        add_card(&app, &admin, "tok-ok-0001", None).await;
        // A period closes: invoice.finalized, subscription.period_started.
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        // Dispatched between the jobs, as the job loop does: each data is
        // the object as that job left it.
        let dispatcher = ctx(&app, "dispatcher");
        webhooks::dispatch(&dispatcher).await.unwrap();
        // Charged: invoice.paid.
        assert_eq!(app.charge().await, 1);
        webhooks::dispatch(&dispatcher).await.unwrap();
        // Refunded in full: credit_note.created, invoice.refunded.
        let refund = app
            .operator(
                Method::POST,
                "/api/operator/tenants/acme/invoices/inv-2027-01-0001/refund",
                Some(json!({"reason": "goodwill"})),
            )
            .await;
        assert_eq!(refund.status, 200, "{}", refund.body);
        // A transition waiting for approval, approved and finished.
        let (id, manual) = initiate(&app, &admin, to_organization()).await;
        assert!(manual);
        let approve = format!("{OPERATOR_TRANSITIONS}/{id}/approve");
        assert_eq!(
            app.operator(Method::POST, &approve, Some(json!({}))).await.status,
            200
        );
        app.run_jobs().await;

        assert!(deliver(&app).await > 0);
        let got = rx.got();
        assert_signed(&got, &secret, acme.id.as_str());
        assert_eq!(
            rx.types(),
            [
                "payment_method.changed",
                "invoice.finalized",
                "subscription.period_started",
                "invoice.paid",
                "credit_note.created",
                "invoice.refunded",
                "plan_transition.waiting_for_approval",
                "plan_transition.finished",
            ]
        );
        // Each data is the object as the API returns it.
        let methods = &of_type(&got, "payment_method.changed")[0].json["data"];
        assert_eq!(
            methods["items"][0]["role"], "PAYMENT_METHOD_ROLE_PRIMARY",
            "{methods}"
        );
        let finalized = &of_type(&got, "invoice.finalized")[0].json["data"];
        assert_eq!(finalized["name"], "inv-2027-01-0001", "{finalized}");
        assert_eq!(
            (finalized["currency"].as_str(), finalized["status"].as_str()),
            (Some("USD"), Some("STATUS_ISSUED")),
            "{finalized}"
        );
        let paid = &of_type(&got, "invoice.paid")[0].json["data"];
        assert_eq!(paid["status"], "STATUS_PAID", "{paid}");
        let refunded = &of_type(&got, "invoice.refunded")[0].json["data"];
        assert_eq!(refunded["status"], "STATUS_REFUNDED", "{refunded}");
        let subs = &of_type(&got, "subscription.period_started")[0].json["data"];
        assert!(
            subs["subscriptions"][0]["last_billing_period_start_date"].is_string(),
            "{subs}"
        );
        let cn = &of_type(&got, "credit_note.created")[0].json["data"];
        assert_eq!(
            (cn["invoice"].as_str(), cn["state"].as_str()),
            (Some("inv-2027-01-0001"), Some("SUCCEEDED")),
            "{cn}"
        );
        let finished = &of_type(&got, "plan_transition.finished")[0].json["data"];
        assert_eq!(
            (finished["id"].as_str(), finished["state"].as_str()),
            (Some(id.as_str()), Some("STATE_FINISHED")),
            "{finished}"
        );
        // Every delivery is DELIVERED after one attempt, and nothing is left.
        let eps = app.get(HOOKS, &admin).await;
        let ep = eps.ok()["items"][0]["id"].as_str().unwrap().to_owned();
        let dl = app.get(&format!("{HOOKS}/{ep}/deliveries"), &admin).await;
        let items = dl.ok()["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), got.len());
        assert!(
            items
                .iter()
                .all(|d| d["status"] == "DELIVERED" && d["attempts"] == 1),
            "{items:?}"
        );
        assert_eq!(deliver(&app).await, 0, "nothing twice");
        assert_eq!(rx.got().len(), got.len());
    })
    .await;
}

#[tokio::test]
async fn unpaid_invoices_tell_of_failed_payments_overdue_and_suspension() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let rx = Receiver::start().await;
        let (acme, admin) = billed_tenant(
            &app,
            "acme",
            "individual",
            "2027-01-01T00:00:00Z",
            Some("tok-declined-4000"),
        )
        .await;
        let wanted = [
            "invoice.payment_failed",
            "invoice.overdue",
            "tenant.suspended",
            "tenant.reinstated",
        ];
        let (_, secret) = endpoint(&app, &admin, &rx.url, &wanted).await;
        app.clock.set(ts("2027-02-02T00:00:00Z"));
        assert_eq!(app.close_periods().await, 1);
        for days in [0, 1, 3, 7] {
            app.clock.set(ts("2027-02-02T00:00:00Z") + DAY * days);
            assert_eq!(app.charge().await, 1);
        }
        app.clock.set(ts("2027-02-23T00:00:00Z"));
        let c = ctx(&app, "w");
        assert_eq!(tollgate_app::Job::Suspend.run(&c).await.unwrap(), 1);
        let reinstate = app
            .operator(Method::POST, "/api/operator/tenants/acme/reinstate", None)
            .await;
        assert_eq!(reinstate.status, 200, "{}", reinstate.body);
        deliver(&app).await;
        let got = rx.got();
        assert_signed(&got, &secret, acme.id.as_str());
        let mut expected = vec!["invoice.payment_failed"; 4];
        expected.extend(["invoice.overdue", "tenant.suspended", "tenant.reinstated"]);
        assert_eq!(rx.types(), expected, "only the types asked for, in order");
        let overdue = &of_type(&got, "invoice.overdue")[0].json["data"];
        assert_eq!(overdue["status"], "OVERDUE", "{overdue}");
        let suspended = &of_type(&got, "tenant.suspended")[0].json["data"];
        assert_eq!(suspended["name"], "acme", "{suspended}");
    })
    .await;
}

#[tokio::test]
async fn a_failing_receiver_gets_the_same_event_again_after_the_backoff() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let rx = Receiver::start().await;
        let (acme, admin) = app.admin("acme").await;
        let (ep, secret) = endpoint(&app, &admin, &rx.url, &["payment_method.changed"]).await;
        rx.answer(&[500, 503]);
        add_card(&app, &admin, "tok-ok-0001", None).await;
        assert_eq!(deliver(&app).await, 1);
        assert_eq!(deliver(&app).await, 0, "not due before the backoff");
        app.clock.advance(SignedDuration::from_secs(4));
        assert_eq!(deliver(&app).await, 0, "4 s: still not due");
        app.clock.advance(SignedDuration::from_secs(1));
        assert_eq!(deliver(&app).await, 1, "5 s after the first");
        let dl = app.get(&format!("{HOOKS}/{ep}/deliveries"), &admin).await;
        let d = dl.ok()["items"][0].clone();
        assert_eq!(
            (
                d["status"].as_str(),
                d["attempts"].as_u64(),
                d["last_status"].as_u64()
            ),
            (Some("PENDING"), Some(2), Some(503)),
            "{d}"
        );
        assert!(d["last_error"].as_str().unwrap().contains("HTTP 503"), "{d}");
        app.clock.advance(SignedDuration::from_mins(5));
        assert_eq!(deliver(&app).await, 1, "5 min after the second");
        let got = rx.got();
        assert_eq!(got.len(), 3);
        assert!(
            got.iter().all(|r| r.id == got[0].id && r.body == got[0].body),
            "the same id and body: {got:?}"
        );
        assert_signed(&got, &secret, acme.id.as_str());
        let dl = app.get(&format!("{HOOKS}/{ep}/deliveries"), &admin).await;
        let d = dl.ok()["items"][0].clone();
        assert_eq!(
            (d["status"].as_str(), d["attempts"].as_u64()),
            (Some("DELIVERED"), Some(3)),
            "{d}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_endpoints_events_arrive_in_order_behind_a_failing_one() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let rx = Receiver::start().await;
        let (_, admin) = app.admin("acme").await;
        endpoint(&app, &admin, &rx.url, &[]).await;
        rx.answer(&[500]);
        let first = add_card(&app, &admin, "tok-ok-0001", None).await;
        // The request dispatches its event in the background: its data is
        // the methods as that change left them.
        app.state.dispatched().await;
        add_card(&app, &admin, "tok-ok-0002", None).await;
        app.state.dispatched().await;
        assert_eq!(
            deliver(&app).await,
            1,
            "the first failed; the second waits behind it"
        );
        app.clock.advance(SignedDuration::from_secs(5));
        assert_eq!(deliver(&app).await, 2);
        let got = rx.got();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].id, got[1].id, "the first again, then the second");
        assert_ne!(got[1].id, got[2].id);
        // The same bytes on every attempt; each event's data as its change left it.
        assert_eq!(got[0].body, got[1].body);
        assert_eq!(
            got[0].json["data"]["items"].as_array().unwrap().len(),
            1,
            "{}",
            got[0].body
        );
        assert_eq!(
            got[2].json["data"]["items"].as_array().unwrap().len(),
            2,
            "{}",
            got[2].body
        );
        assert_eq!(got[0].json["data"]["items"][0]["name"], first.as_str());
    })
    .await;
}

#[tokio::test]
async fn a_change_that_rolls_back_emits_nothing() {
    each_backend(|db| async move {
        let (app, plan) = TestApp::with_faults(db).await;
        let rx = Receiver::start().await;
        let (acme, admin) = app.admin("acme").await;
        endpoint(&app, &admin, &rx.url, &["payment_method.changed"]).await;
        // Faults at every point of the write (and a full disk, which still
        // takes writes that need no new page): each card either is stored
        // with its event or neither is.
        let mut stored = 0;
        let mut refused = 0;
        let faults = [1, 20, 60, 150, 400, 1000, 3000]
            .map(|after_steps| Fault::ConnectionLost { after_steps })
            .into_iter()
            .chain([Fault::DiskFull]);
        for (i, fault) in faults.enumerate() {
            plan.set(Some(fault));
            let r = app
                .post(PAYMENT_METHODS, &admin, card(&format!("tok-ok-{i:04}")))
                .await;
            plan.set(None);
            match r.status {
                200 => stored += 1,
                503 => refused += 1,
                other => panic!("{fault:?}: {other} {}", r.body),
            }
        }
        assert!(refused > 0, "some writes met their fault");
        let methods = app.get(PAYMENT_METHODS, &admin).await;
        assert_eq!(methods.ok()["items"].as_array().unwrap().len(), stored);
        assert_eq!(
            app.store.webhook_events(&acme.id, 100).await.unwrap().len(),
            stored
        );
        assert_eq!(deliver(&app).await, stored);
        assert_eq!(rx.got().len(), stored);
    })
    .await;
}

#[tokio::test]
async fn two_workers_make_each_attempt_once() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let rx = Receiver::start().await;
        let (_, admin) = app.admin("acme").await;
        for _ in 0..3 {
            endpoint(&app, &admin, &rx.url, &[]).await;
        }
        for i in 0..4 {
            add_card(&app, &admin, &format!("tok-ok-000{i}"), None).await;
        }
        let (a, b) = (ctx(&app, "replica-a"), ctx(&app, "replica-b"));
        let (ra, rb) = tokio::join!(webhooks::run_until_idle(&a), webhooks::run_until_idle(&b));
        assert_eq!(
            ra.unwrap() + rb.unwrap(),
            12,
            "3 endpoints × 4 events, each attempted once"
        );
        let got = rx.got();
        assert_eq!(got.len(), 12);
        let mut pairs: Vec<(String, String)> =
            got.iter().map(|r| (r.id.clone(), r.signature.clone())).collect();
        pairs.sort();
        pairs.dedup();
        assert_eq!(pairs.len(), 12, "no attempt made twice");
    })
    .await;
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one_for_a_day() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let rx = Receiver::start().await;
        let (_, admin) = app.admin("acme").await;
        let (ep, old) = endpoint(&app, &admin, &rx.url, &[]).await;
        let rotated = app
            .post(&format!("{HOOKS}/{ep}/rotate_secret"), &admin, json!({}))
            .await;
        let new = rotated.ok()["secret"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        assert!(rotated.ok()["previous_secret_until"].is_string());
        add_card(&app, &admin, "tok-ok-0001", None).await;
        deliver(&app).await;
        let r = &rx.got()[0];
        assert_eq!(r.signature.split(' ').count(), 2, "{}", r.signature);
        assert!(verify(&new, &r.id, r.timestamp, r.body.as_bytes(), &r.signature));
        assert!(verify(&old, &r.id, r.timestamp, r.body.as_bytes(), &r.signature));
        // A day later the old secret no longer signs.
        app.clock.advance(DAY + SignedDuration::from_secs(1));
        add_card(&app, &admin, "tok-ok-0002", None).await;
        deliver(&app).await;
        let r = &rx.got()[1];
        assert_eq!(r.signature.split(' ').count(), 1, "{}", r.signature);
        assert!(!verify(&old, &r.id, r.timestamp, r.body.as_bytes(), &r.signature));
        // The secret is never shown again.
        let shown = app.get(&format!("{HOOKS}/{ep}"), &admin).await;
        assert!(shown.ok().get("secret").is_none(), "{}", shown.body);
        let audit = app
            .operator(Method::GET, "/api/operator/audit?tenant=acme", None)
            .await;
        assert!(
            !audit.body.to_string().contains(&new),
            "no secret in the audit trail"
        );
    })
    .await;
}

#[tokio::test]
async fn an_endpoint_failing_for_too_long_is_disabled_then_enabled_again() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let rx = Receiver::start().await;
        let (_, admin) = app.admin("acme").await;
        let (ep, _) = endpoint(&app, &admin, &rx.url, &[]).await;
        rx.answer(&[500; 5]);
        add_card(&app, &admin, "tok-ok-0001", None).await;
        let mut c = ctx(&app, "w");
        c.webhooks.settings.disable_after = SignedDuration::from_hours(1);
        // Attempts at 0, +5 s, +5 min, +30 min fail; at +2 h the endpoint has
        // failed for over an hour and is disabled.
        for wait in [0, 5, 300, 1800, 7200] {
            app.clock.advance(SignedDuration::from_secs(wait));
            assert_eq!(webhooks::run_until_idle(&c).await.unwrap(), 1, "+{wait}s");
        }
        let e = app.get(&format!("{HOOKS}/{ep}"), &admin).await;
        let e = e.ok().clone();
        assert_eq!(e["disabled"], true, "{e}");
        assert!(e["disabled_reason"].as_str().unwrap().contains("HTTP 500"), "{e}");
        app.clock.advance(SignedDuration::from_hours(5));
        assert_eq!(
            webhooks::run_until_idle(&c).await.unwrap(),
            0,
            "a disabled endpoint gets nothing"
        );
        let audit = app
            .operator(Method::GET, "/api/operator/audit?tenant=acme", None)
            .await;
        assert!(
            audit.body.to_string().contains("webhook_endpoint.disabled"),
            "{}",
            audit.body
        );
        let enabled = app.post(&format!("{HOOKS}/{ep}/enable"), &admin, json!({})).await;
        assert_eq!(enabled.ok()["disabled"], false);
        assert_eq!(webhooks::run_until_idle(&c).await.unwrap(), 1);
        let dl = app.get(&format!("{HOOKS}/{ep}/deliveries"), &admin).await;
        let d = dl.ok()["items"][0].clone();
        assert_eq!(
            (d["status"].as_str(), d["attempts"].as_u64()),
            (Some("DELIVERED"), Some(6)),
            "{d}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_failed_delivery_can_be_sent_again_by_hand() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let rx = Receiver::start().await;
        let (_, admin) = app.admin("acme").await;
        let (ep, _) = endpoint(&app, &admin, &rx.url, &[]).await;
        rx.answer(&[410; 8]);
        add_card(&app, &admin, "tok-ok-0001", None).await;
        for wait in [0i64, 5, 300, 1800, 7200, 18000, 36000, 36000] {
            app.clock.advance(SignedDuration::from_secs(wait));
            assert_eq!(deliver(&app).await, 1, "+{wait}s");
        }
        let dl = app.get(&format!("{HOOKS}/{ep}/deliveries"), &admin).await;
        let d = dl.ok()["items"][0].clone();
        assert_eq!(
            (d["status"].as_str(), d["attempts"].as_u64()),
            (Some("FAILED"), Some(8)),
            "{d}"
        );
        app.clock.advance(SignedDuration::from_hours(48));
        assert_eq!(deliver(&app).await, 0, "no ninth attempt");
        let dlv = d["id"].as_str().unwrap();
        let again = app
            .post(
                &format!("{HOOKS}/{ep}/deliveries/{dlv}/redeliver"),
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(again.ok()["status"], "PENDING");
        assert_eq!(deliver(&app).await, 1);
        let got = rx.got();
        assert_eq!(got.len(), 9);
        assert_eq!(got[8].id, got[0].id, "the same event id");
        let missing = app
            .post(
                &format!("{HOOKS}/{ep}/deliveries/dlv_nope/redeliver"),
                &admin,
                json!({}),
            )
            .await;
        missing.error(404, 5);
    })
    .await;
}

#[tokio::test]
async fn private_addresses_are_refused_without_the_operators_leave() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let rx = Receiver::start().await;
        let (acme, admin) = app.admin("acme").await;
        let strict = tollgate_api::events::standalone(
            app.store.clone(),
            app.clock.clone(),
            WebhookSettings::default(),
        );
        for url in [
            rx.url.as_str(),
            "http://localhost:9/x",
            "http://169.254.169.254/latest",
            "http://[::1]/",
        ] {
            let input = EndpointInput {
                url: url.into(),
                ..Default::default()
            };
            let refused = webhooks::create_endpoint(
                app.store.as_ref(),
                &strict,
                Some(acme.id.clone()),
                input,
                "t",
                ts("2027-01-01T00:00:00Z"),
            )
            .await;
            match refused {
                Err(AppError::Rule(e)) => {
                    assert_eq!(e.reason.as_str(), "WEBHOOK_URL_REFUSED", "{url}: {e:?}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        // Made while private addresses were allowed, then not: not called.
        let (ep, _) = endpoint(&app, &admin, &rx.url, &[]).await;
        add_card(&app, &admin, "tok-ok-0001", None).await;
        let mut c = ctx(&app, "w");
        c.webhooks = strict;
        assert_eq!(webhooks::run_until_idle(&c).await.unwrap(), 1);
        assert!(rx.got().is_empty(), "the receiver on loopback got nothing");
        let dl = app.get(&format!("{HOOKS}/{ep}/deliveries"), &admin).await;
        let d = dl.ok()["items"][0].clone();
        assert!(
            d["last_error"]
                .as_str()
                .unwrap()
                .contains("--webhook-allow-private"),
            "{d}"
        );
    })
    .await;
}

#[tokio::test]
async fn endpoints_are_checked_and_limited() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        for (body, field) in [
            (json!({"url": ""}), "url"),
            (json!({"url": "ftp://example.com/"}), "url"),
            (
                json!({"url": "https://example.com/", "events": ["invoice.nope"]}),
                "events[0]",
            ),
            (
                json!({"url": "https://example.com/", "description": "x".repeat(300)}),
                "description",
            ),
            (
                json!({"url": "https://example.com/", "tenant": "other"}),
                "tenant",
            ),
        ] {
            let r = app.post(HOOKS, &admin, body.clone()).await;
            r.error(400, 3);
            assert!(
                r.body["message"].as_str().unwrap().starts_with(field),
                "{body}: {}",
                r.body
            );
        }
        assert!(
            app.get(HOOKS, &admin).await.ok()["items"]
                .as_array()
                .unwrap()
                .is_empty(),
            "nothing stored"
        );
        for i in 0..16 {
            app.post(
                HOOKS,
                &admin,
                json!({"url": format!("https://hooks{i}.example.com/")}),
            )
            .await
            .ok();
        }
        let over = app
            .post(HOOKS, &admin, json!({"url": "https://hooks.example.com/"}))
            .await;
        over.error(409, 9);
        over.reason("WEBHOOK_ENDPOINT_LIMIT");
    })
    .await;
}

#[tokio::test]
async fn a_tenant_reaches_only_its_own_endpoints_and_events() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let rx_a = Receiver::start().await;
        let rx_b = Receiver::start().await;
        let rx_op = Receiver::start().await;
        let (acme, admin_a) = app.admin("acme").await;
        let (_, admin_b) = app.admin("globex").await;
        let monitor = app.token(&acme, Role::Monitor).await;
        let (ep_a, _) = endpoint(&app, &admin_a, &rx_a.url, &[]).await;
        endpoint(&app, &admin_b, &rx_b.url, &[]).await;
        let op = app
            .operator(
                Method::POST,
                "/api/operator/webhooks",
                Some(json!({"url": rx_op.url, "events": ["payment_method.changed"]})),
            )
            .await;
        assert_eq!(op.status, 200, "{}", op.body);
        let ep_op = op.body["id"].as_str().unwrap().to_owned();

        // B cannot see or touch A's endpoint or the operator's, by any route.
        for id in [&ep_a, &ep_op] {
            app.get(&format!("{HOOKS}/{id}"), &admin_b).await.error(404, 5);
            app.delete(&format!("{HOOKS}/{id}"), &admin_b).await.error(404, 5);
            app.post(&format!("{HOOKS}/{id}/rotate_secret"), &admin_b, json!({}))
                .await
                .error(404, 5);
            app.post(&format!("{HOOKS}/{id}/enable"), &admin_b, json!({}))
                .await
                .error(404, 5);
            app.get(&format!("{HOOKS}/{id}/deliveries"), &admin_b)
                .await
                .error(404, 5);
        }
        let listed = app.get(HOOKS, &admin_b).await;
        assert_eq!(listed.ok()["items"].as_array().unwrap().len(), 1);
        // A monitor token reads but does not change.
        assert_eq!(
            app.get(HOOKS, &monitor).await.ok()["items"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        app.post(HOOKS, &monitor, json!({"url": "https://example.com/"}))
            .await
            .error(403, 7);
        app.delete(&format!("{HOOKS}/{ep_a}"), &monitor)
            .await
            .error(403, 7);

        add_card(&app, &admin_a, "tok-ok-0001", None).await;
        add_card(&app, &admin_b, "tok-ok-0002", None).await;
        deliver(&app).await;
        let tenants = |rx: &Receiver| {
            rx.got()
                .iter()
                .map(|r| r.json["tenant"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(tenants(&rx_a), [acme.id.to_string()]);
        assert_eq!(tenants(&rx_b).len(), 1);
        assert_ne!(tenants(&rx_b), tenants(&rx_a));
        assert_eq!(
            tenants(&rx_op).len(),
            2,
            "the operator's endpoint gets every tenant's"
        );

        // The operator sees all, and one tenant's.
        let all = app.operator(Method::GET, "/api/operator/webhooks", None).await;
        assert_eq!(all.body["items"].as_array().unwrap().len(), 3, "{}", all.body);
        let one = app
            .operator(Method::GET, "/api/operator/webhooks?tenant=acme", None)
            .await;
        assert_eq!(one.body["items"].as_array().unwrap().len(), 1, "{}", one.body);
        assert_eq!(one.body["items"][0]["tenant"], "acme");
        let deleted = app.delete(&format!("{HOOKS}/{ep_a}"), &admin_a).await;
        assert_eq!(deleted.status, 200);
        app.get(&format!("{HOOKS}/{ep_a}"), &admin_a).await.error(404, 5);
    })
    .await;
}

const RESERVE: &str = "/api/web/namespaces/system/quota/reserve";
const RELEASE: &str = "/api/web/namespaces/system/quota/release";
const USAGE: &str = "/api/web/namespaces/system/quota/usage";
const QUOTAS: &str = "/api/web/namespaces/system/quotas";

fn vhosts(amount: i64, id: &str) -> Value {
    json!({"kind": "virtual_host", "amount": amount, "request_id": id})
}

/// The crossings the receiver got: (threshold, used, operation).
fn crossings(rx: &Receiver) -> Vec<(u64, u64, String)> {
    rx.got()
        .iter()
        .filter(|r| r.json["type"] == "quota.threshold_crossed")
        .map(|r| {
            let d = &r.json["data"];
            assert_eq!(
                (d["kind"].as_str(), d["key"].as_str(), d["limit"].as_u64()),
                (Some("object"), Some("virtual_host"), Some(10)),
                "{d}"
            );
            (
                d["threshold_percent"].as_u64().unwrap(),
                d["used"].as_u64().unwrap(),
                d["operation"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn quota_thresholds_fire_on_crossing_only() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let rx = Receiver::start().await;
        let (_, admin) = app.admin("acme").await;
        let (_, secret) = endpoint(&app, &admin, &rx.url, &["quota.threshold_crossed"]).await;
        app.create_quota(&admin, crate::support::quota_body("q", 10))
            .await;
        let step = |amount: i64, id: &'static str| {
            let app = &app;
            let admin = admin.clone();
            async move {
                app.post(RESERVE, &admin, vhosts(amount, id)).await.ok();
            }
        };
        step(7, "a").await; // 70 %: below both
        step(1, "b").await; // 80 %: crossed
        step(1, "c").await; // 90 %: above 80 already
        app.post(RESERVE, &admin, vhosts(1, "c")).await.ok(); // a replay changes nothing
        step(1, "d").await; // 100 %
        app.post(RESERVE, &admin, vhosts(1, "e")).await.error(429, 8); // refused: nothing
        app.post(RELEASE, &admin, vhosts(5, "f")).await.ok(); // down to 5: no event
        step(3, "g").await; // 80 % again, after falling below
        app.put(USAGE, &admin, json!({"kind": "virtual_host", "current": 10}))
            .await
            .ok(); // reconciled to 100 %
        deliver(&app).await;
        assert_eq!(
            crossings(&rx),
            [
                (80, 8, "reserve".to_owned()),
                (100, 10, "reserve".to_owned()),
                (80, 8, "reserve".to_owned()),
                (100, 10, "reconcile".to_owned()),
            ]
        );
        let acme = app.store.tenant_by_name("acme").await.unwrap().unwrap();
        assert_signed(&rx.got(), &secret, acme.id.as_str());
    })
    .await;
}

#[tokio::test]
async fn a_quota_object_sets_its_own_thresholds() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let rx = Receiver::start().await;
        let (_, admin) = app.admin("acme").await;
        endpoint(&app, &admin, &rx.url, &["quota.threshold_crossed"]).await;
        let mut body = crate::support::quota_body("q", 10);
        body["spec"]["alert_thresholds"] = json!([100, 50]);
        app.create_quota(&admin, body).await;
        let shown = app.get(&format!("{QUOTAS}/q"), &admin).await;
        assert_eq!(
            shown.ok()["spec"]["alert_thresholds"],
            json!([50, 100]),
            "{}",
            shown.body
        );
        app.post(RESERVE, &admin, vhosts(9, "a")).await.ok();
        deliver(&app).await;
        let got: Vec<u64> = crossings(&rx).iter().map(|c| c.0).collect();
        assert_eq!(got, [50], "50 crossed; 80 is not one of its thresholds");
        for (bad, field) in [
            (json!([0]), "spec.alert_thresholds[0]"),
            (json!([50, 50]), "spec.alert_thresholds[1]"),
            (json!([101]), "spec.alert_thresholds[0]"),
        ] {
            let mut body = crate::support::quota_body("bad", 10);
            body["spec"]["alert_thresholds"] = bad;
            let r = app.post(QUOTAS, &admin, body).await;
            r.error(400, 3);
            assert!(
                r.body["message"].as_str().unwrap().starts_with(field),
                "{}",
                r.body
            );
        }
        // Without the field the shape is the contract's.
        app.create_quota(&admin, crate::support::quota_body("plain", 10))
            .await;
        let plain = app.get(&format!("{QUOTAS}/plain"), &admin).await;
        assert!(
            plain.ok()["spec"].get("alert_thresholds").is_none(),
            "{}",
            plain.body
        );
    })
    .await;
}

/// The value of an unlabelled or labelled sample in a scrape, 0 if absent.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn delivered_events_are_forgotten_after_30_days_and_counted_in_metrics() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let handle = tollgate_api::metrics::handle().expect("the recorder");
        let delivered = "tollgate_webhook_deliveries_total{outcome=\"delivered\"}";
        let retrying = "tollgate_webhook_deliveries_total{outcome=\"retrying\"}";
        let before = handle.render();
        let rx = Receiver::start().await;
        let (acme, admin) = app.admin("acme").await;
        endpoint(&app, &admin, &rx.url, &[]).await;
        let failing = Receiver::start().await;
        failing.answer(&[500; 10]);
        let (stuck, _) = endpoint(&app, &admin, &failing.url, &[]).await;
        add_card(&app, &admin, "tok-ok-0001", None).await;
        assert_eq!(deliver(&app).await, 2);
        let after = handle.render();
        assert!(
            sample(&after, delivered) >= sample(&before, delivered) + 1.0,
            "{after}"
        );
        assert!(
            sample(&after, retrying) >= sample(&before, retrying) + 1.0,
            "{after}"
        );
        assert!(after.contains("tollgate_webhook_queue_depth"), "{after}");

        app.clock.advance(DAY * 29);
        deliver(&app).await;
        assert_eq!(
            app.store.webhook_events(&acme.id, 10).await.unwrap().len(),
            1,
            "kept 30 days"
        );
        // Past 30 days an event still PENDING somewhere is kept; once its
        // last delivery is over, it goes with its deliveries.
        app.clock.advance(DAY * 2);
        deliver(&app).await;
        assert_eq!(
            app.store.webhook_events(&acme.id, 10).await.unwrap().len(),
            1,
            "pending at one endpoint"
        );
        app.delete(&format!("{HOOKS}/{stuck}"), &admin).await.ok();
        deliver(&app).await;
        assert!(app.store.webhook_events(&acme.id, 10).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_rejected_transition_is_told_as_failed_with_its_reason() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let rx = Receiver::start().await;
        let (acme, admin) = app.admin("acme").await;
        let (_, secret) = endpoint(&app, &admin, &rx.url, &["plan_transition.failed"]).await;
        let (id, manual) = initiate(&app, &admin, to_organization()).await;
        assert!(manual);
        let reject = format!("{OPERATOR_TRANSITIONS}/{id}/reject");
        let r = app
            .operator(Method::POST, &reject, Some(json!({"reason": "no contract yet"})))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        deliver(&app).await;
        let got = rx.got();
        assert_signed(&got, &secret, acme.id.as_str());
        assert_eq!(rx.types(), ["plan_transition.failed"], "only the type asked for");
        let d = &got[0].json["data"];
        assert_eq!(
            (d["id"].as_str(), d["state"].as_str(), d["reason"].as_str()),
            (Some(id.as_str()), Some("STATE_FAILED"), Some("no contract yet")),
            "{d}"
        );
    })
    .await;
}
