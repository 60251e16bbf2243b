//! Real payments end to end: `tollgate serve` and `tollgate jobs run` with
//! `--payment-provider stripe` against a Stripe-compatible server
//! (localstripe), on SQLite and PostgreSQL.
//!
//! They run when `TOLLGATE_TEST_STRIPE_URL` names the server (`.ci/run`
//! starts localstripe and sets it); without it each test says so and
//! returns; set but unreachable, they fail.

use std::time::Duration;

use serde_json::{Value, json};
use tollgate_payments::stripe::testing::{
    DroppingProxy, SECRET_KEY, api_get, create_card_token, drop_once, stripe_url,
};
use tollgate_payments::stripe::webhook;
use tollgate_testkit::{TestDatabase, each_backend};

use crate::support::{Http, Server, expect_ok, tollgate};

const WEBHOOK_SECRET: &str = "whsec_tollgate_e2e";
const OPERATOR: &str = "operator-secret-for-stripe-tests";

/// The flags that make a command pay through the server at `api_base`.
fn stripe_flags(api_base: &str) -> Vec<String> {
    [
        "--payment-provider",
        "stripe",
        "--stripe-secret-key",
        SECRET_KEY,
        "--stripe-api-base",
        api_base,
        "--stripe-localstripe",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `tollgate serve` paying through `api_base`, with Stripe webhooks and the
/// operator API on, and its job loop off (charges run with `jobs run --now`).
async fn serve_without_jobs(db: &TestDatabase, api_base: &str) -> Server {
    serve_with(db, api_base, &["--no-jobs"]).await
}

/// `tollgate serve` paying through `api_base`, with Stripe webhooks and the operator API on.
async fn serve(db: &TestDatabase, api_base: &str) -> Server {
    serve_with(db, api_base, &[]).await
}

async fn serve_with(db: &TestDatabase, api_base: &str, extra: &[&str]) -> Server {
    let mut flags = stripe_flags(api_base);
    flags.extend(extra.iter().map(|f| (*f).to_owned()));
    flags.extend(
        [
            "--stripe-webhook-secret",
            WEBHOOK_SECRET,
            "--operator-token",
            OPERATOR,
        ]
        .map(str::to_owned),
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start_with(db, "info", &flags).await
}

/// `tollgate jobs run all --now <now>` paying through `api_base`; its output.
async fn run_jobs(db: &TestDatabase, api_base: &str, now: &str) -> String {
    let mut args = vec![
        "jobs".to_owned(),
        "run".into(),
        "all".into(),
        "--now".into(),
        now.into(),
    ];
    args.extend(stripe_flags(api_base));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    expect_ok(tollgate(db, &args).await)
}

/// A tenant on `plan` since `since`, and an admin token.
async fn tenant(db: &TestDatabase, name: &str, plan: &str, since: Option<&str>) -> String {
    let mut args = vec!["tenant", "create", name, "--plan", plan];
    if let Some(since) = since {
        args.extend(["--since", since]);
    }
    expect_ok(tollgate(db, &args).await);
    let secret = expect_ok(tollgate(db, &["token", "create", "--tenant", name, "--role", "admin"]).await);
    secret.trim().to_owned()
}

fn api(server: &Server, path: &str) -> String {
    format!("{}/api/web/namespaces/system/{path}", server.base)
}

async fn add_method(http: &Http, server: &Server, admin: &str, token: &str, role: &str) -> (u16, Value) {
    http.call(
        "POST",
        &api(server, "billing/payment_methods"),
        Some(admin),
        Some(json!({"token": token, "role": role})),
    )
    .await
}

/// A tenant on `individual` since `since` (now: `None`) whose primary card is
/// Stripe's test Visa (`pm_card_visa`); its admin token.
async fn tenant_with_visa(
    db: &TestDatabase,
    http: &Http,
    server: &Server,
    name: &str,
    since: Option<&str>,
) -> String {
    let admin = tenant(db, name, "individual", since).await;
    let (status, body) = add_method(
        http,
        server,
        &admin,
        "pm_card_visa",
        "PAYMENT_METHOD_ROLE_PRIMARY",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    admin
}

async fn methods(http: &Http, server: &Server, admin: &str) -> Vec<Value> {
    let (status, body) = http
        .call("GET", &api(server, "billing/payment_methods"), Some(admin), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

/// The operator's view of one invoice (lines, charges with references, disputes).
async fn invoice(http: &Http, server: &Server, tenant: &str, name: &str) -> Value {
    let (status, body) = http
        .call_operator(
            "GET",
            &format!("{}/api/operator/tenants/{tenant}/invoices/{name}", server.base),
            OPERATOR,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The tenant's finalized invoices (operator view).
async fn invoices(http: &Http, server: &Server, tenant: &str) -> Vec<Value> {
    let (status, body) = http
        .call_operator(
            "GET",
            &format!("{}/api/operator/invoices?tenant={tenant}", server.base),
            OPERATOR,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{body}"))
}

/// A moment `days` from now plus `minutes`: periods of tenants created now
/// are closed by `jobs run --now` at it, never by the server's own job loop,
/// which runs on the real clock.
fn days_ahead(start: jiff::Timestamp, days: i64, minutes: i64) -> String {
    (start + jiff::SignedDuration::from_hours(24 * days) + jiff::SignedDuration::from_mins(minutes))
        .to_string()
}

/// The tenant's one finalized invoice with something to charge.
async fn charged_invoice(http: &Http, server: &Server, tenant: &str) -> Value {
    let all = invoices(http, server, tenant).await;
    let mut charged = all
        .iter()
        .filter(|i| i["status"] != "PENDING" && i["total_cents"].as_i64() > Some(0));
    let first = charged.next().unwrap_or_else(|| panic!("{all:?}")).clone();
    assert!(charged.next().is_none(), "{all:?}");
    invoice(http, server, tenant, first["name"].as_str().unwrap()).await
}

/// Every charge localstripe made for PaymentIntent `pi` (of customer `cus`).
async fn charges_of(url: &str, customer: &str, pi: &str) -> Vec<Value> {
    let list = api_get(url, &format!("/v1/charges?customer={customer}&limit=100")).await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["payment_intent"] == pi)
        .cloned()
        .collect()
}

/// Asserts `charge` (an operator charge item) was paid by one PaymentIntent
/// of `amount` cents in USD, charged once; returns the PaymentIntent.
async fn assert_paid_once(url: &str, charge: &Value, amount: i64) -> Value {
    assert_eq!(charge["outcome"], "SUCCEEDED", "{charge}");
    assert_eq!(charge["provider"], "stripe", "{charge}");
    let pi_id = charge["reference"].as_str().unwrap_or_else(|| panic!("{charge}"));
    assert!(pi_id.starts_with("pi_"), "{charge}");
    let pi = api_get(url, &format!("/v1/payment_intents/{pi_id}")).await;
    assert_eq!(pi["status"], "succeeded", "{pi}");
    assert_eq!(pi["amount"], amount, "{pi}");
    assert_eq!(pi["currency"], "usd", "{pi}");
    let customer = pi["customer"].as_str().unwrap_or_else(|| panic!("{pi}"));
    let charges = charges_of(url, customer, pi_id).await;
    assert_eq!(charges.len(), 1, "charged exactly once: {charges:?}");
    assert_eq!(charges[0]["amount"], amount);
    pi
}

/// Waits until the server has run the plan transition `id`; returns its final state.
async fn finished(http: &Http, server: &Server, id: &str) -> Value {
    for _ in 0..200 {
        let (status, body) = http
            .call(
                "GET",
                &format!(
                    "{}/no_auth/namespaces/system/billing/plan_transition?id={id}",
                    server.base
                ),
                None,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        if body["state"] != "STATE_CREATING" && body["state"] != "STATE_WAITING_FOR_APPROVAL" {
            return body;
        }
        // A real server's job loop runs it; nothing here depends on time passing.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("transition {id} did not finish");
}

#[tokio::test]
async fn a_plan_transition_with_a_stripe_token_then_its_periods_are_charged_by_payment_intents() {
    let Some(url) = stripe_url() else { return };
    each_backend(|db| {
        let url = url.clone();
        async move {
            let admin = tenant(&db, "acme", "free", None).await;
            let mut server = serve(&db, &url).await;
            let http = Http::new();
            // localstripe delivers its events to this server, signed.
            let hook = format!("tollgate-{}", uuid::Uuid::new_v4().simple());
            let (status, body) = http
                .call(
                    "POST",
                    &format!("{url}/_config/webhooks/{hook}"),
                    None,
                    Some(json!({
                        "url": format!("{}/webhooks/stripe", server.base),
                        "secret": WEBHOOK_SECRET,
                    })),
                )
                .await;
            assert_eq!(status, 200, "{body}");

            // A token Stripe does not know is refused when the transition is
            // asked for, naming the field, and nothing is recorded.
            let (status, body) = http
                .call(
                    "POST",
                    &api(&server, "billing/plan_transition"),
                    Some(&admin),
                    Some(json!({"new_plan": "individual", "payload": {"payment_provider_token": "tok_unknown0000"}})),
                )
                .await;
            assert_eq!(status, 400, "{body}");
            assert!(
                body["message"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("payload.payment_provider_token: refused by the payment provider"),
                "{body}"
            );
            assert_eq!(body["details"][0]["metadata"]["field"], "payload.payment_provider_token", "{body}");

            // A token Stripe.js made in the customer's browser pays the transition.
            let token = create_card_token(&url, "4242424242424242").await;
            let (status, body) = http
                .call(
                    "POST",
                    &api(&server, "billing/plan_transition"),
                    Some(&admin),
                    Some(json!({"new_plan": "individual", "payload": {"payment_provider_token": token}})),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            let id = body["id"].as_str().unwrap().to_owned();
            let done = finished(&http, &server, &id).await;
            assert_eq!(done["state"], "STATE_FINISHED", "{done}");
            let stored = methods(&http, &server, &admin).await;
            assert_eq!(stored.len(), 1, "{stored:?}");
            let shown = stored[0].to_string();
            assert!(shown.contains("4242") && shown.contains("12/2030"), "{shown}");
            assert!(
                !shown.contains(&token),
                "the one-time token is not what is kept: {shown}"
            );

            // Two months on, the periods are finalized and charged off-session.
            let now = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 70);
            let out = run_jobs(&db, &url, &now.to_string()).await;
            assert!(out.contains("period-close:"), "{out}");
            let finalized = invoices(&http, &server, "acme").await;
            let charged: Vec<&Value> = finalized
                .iter()
                .filter(|i| i["status"] != "PENDING" && i["total_cents"].as_i64() > Some(0))
                .collect();
            assert!(!charged.is_empty(), "{finalized:?}");
            for i in charged {
                assert_eq!(i["status"], "PAID", "{i}");
                let name = i["name"].as_str().unwrap();
                let detail = invoice(&http, &server, "acme", name).await;
                let charges = detail["charges"].as_array().unwrap();
                assert_eq!(charges.len(), 1, "{detail}");
                assert_paid_once(&url, &charges[0], i["total_cents"].as_i64().unwrap()).await;
            }
            // localstripe's own webhook reaches the server, verified, and
            // finds the payment settled already (or, arriving while the
            // job run still held the invoice, leaves it to that worker).
            let waited = std::time::Duration::from_secs(60);
            tokio::time::timeout(waited, server.wait_for_log_any(&["already_settled", "held_by_worker"]))
                .await
                .expect("localstripe's webhook reached the server within a minute");
        }
    })
    .await;
}

#[tokio::test]
async fn a_declining_primary_card_falls_back_to_the_secondary_and_a_bad_card_is_refused() {
    let Some(url) = stripe_url() else { return };
    each_backend(|db| {
        let url = url.clone();
        async move {
            let start = jiff::Timestamp::now();
            let server = serve_without_jobs(&db, &url).await;
            let admin = tenant(&db, "bravo", "individual", None).await;
            let http = Http::new();
            // Attaches fine, declines every charge.
            let declining = create_card_token(&url, "4000000000000341").await;
            let (status, body) =
                add_method(&http, &server, &admin, &declining, "PAYMENT_METHOD_ROLE_PRIMARY").await;
            assert_eq!(status, 200, "{body}");
            let (status, body) = add_method(
                &http,
                &server,
                &admin,
                "pm_card_visa",
                "PAYMENT_METHOD_ROLE_SECONDARY",
            )
            .await;
            assert_eq!(status, 200, "{body}");

            // Refused by Stripe when attached: a 400 naming the field, nothing stored.
            let refused = create_card_token(&url, "4000000000000002").await;
            let (status, body) =
                add_method(&http, &server, &admin, &refused, "PAYMENT_METHOD_ROLE_NORMAL").await;
            assert_eq!(status, 400, "{body}");
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.starts_with("token:"), "{body}");
            assert!(message.contains("declined"), "Stripe's reason: {body}");
            // The built-in test provider's tokens are not Stripe's.
            let (status, body) = add_method(
                &http,
                &server,
                &admin,
                "tok-visa-4242",
                "PAYMENT_METHOD_ROLE_NORMAL",
            )
            .await;
            assert_eq!(status, 400, "{body}");
            assert_eq!(methods(&http, &server, &admin).await.len(), 2);

            run_jobs(&db, &url, &days_ahead(start, 40, 0)).await;
            let detail = charged_invoice(&http, &server, "bravo").await;
            assert_eq!(detail["status"], "PAID", "{detail}");
            let charges = detail["charges"].as_array().unwrap();
            assert_eq!(charges.len(), 2, "{detail}");
            assert_eq!(charges[0]["role"], "PRIMARY");
            assert_eq!(charges[0]["outcome"], "DECLINED", "{detail}");
            assert!(
                charges[0]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("declined"),
                "{detail}"
            );
            assert_eq!(charges[1]["role"], "SECONDARY");
            assert_paid_once(&url, &charges[1], detail["total_cents"].as_i64().unwrap()).await;
        }
    })
    .await;
}

/// Stripe's `payment_intent.succeeded` event for `pi`, created at `t`.
fn succeeded(pi: &str, t: i64) -> Value {
    json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": t,
        "livemode": false,
        "data": {"object": {"id": pi, "object": "payment_intent", "status": "succeeded"}},
    })
}

/// Signs `event` as Stripe would at `t` (seconds) with `secret`; posts it.
async fn post_event(http: &Http, server: &Server, event: &Value, t: i64, secret: &str) -> (u16, Value) {
    let body = event.to_string();
    let header = webhook::sign(body.as_bytes(), secret, jiff::Timestamp::from_second(t).unwrap());
    http.post_raw(
        &format!("{}/webhooks/stripe", server.base),
        &[
            ("Stripe-Signature", &header),
            ("content-type", "application/json"),
        ],
        &body,
    )
    .await
}

/// A tenant on `individual` since `since` (now: `None`) with a Visa card;
/// its first period is finalized and charged by `jobs run --now <at>`
/// through a proxy that loses Stripe's answer to the confirmation: the
/// attempt stays PENDING with its PaymentIntent recorded, the invoice leased
/// until two minutes after `at`. Returns the invoice's name and the PaymentIntent.
async fn lost_answer(
    db: &TestDatabase,
    url: &str,
    server: &Server,
    http: &Http,
    tenant_name: &str,
    since: Option<&str>,
    at: &str,
) -> (String, String) {
    tenant_with_visa(db, http, server, tenant_name, since).await;
    let proxy = DroppingProxy::start(url, drop_once("POST", "/confirm")).await;
    run_jobs(db, &proxy.url(), at).await;
    assert_eq!(proxy.dropped(), 1, "{proxy:?}");
    let detail = charged_invoice(http, server, tenant_name).await;
    assert_eq!(detail["status"], "ISSUED", "{detail}");
    let charges = detail["charges"].as_array().unwrap();
    assert_eq!(charges.len(), 1, "{detail}");
    assert_eq!(charges[0]["outcome"], "PENDING", "{detail}");
    let pi = charges[0]["reference"]
        .as_str()
        .unwrap_or_else(|| panic!("{detail}"));
    // Stripe did charge: only the answer was lost.
    assert_eq!(
        api_get(url, &format!("/v1/payment_intents/{pi}")).await["status"],
        "succeeded"
    );
    (detail["name"].as_str().unwrap().to_owned(), pi.to_owned())
}

#[tokio::test]
async fn a_lost_answer_is_settled_by_the_next_run_without_a_second_charge() {
    let Some(url) = stripe_url() else { return };
    each_backend(|db| {
        let url = url.clone();
        async move {
            let start = jiff::Timestamp::now();
            let server = serve(&db, &url).await;
            let http = Http::new();
            let at = days_ahead(start, 40, 0);
            let (name, pi) = lost_answer(&db, &url, &server, &http, "dave", None, &at).await;
            // A webhook while the worker's lease holds the invoice leaves it
            // to the worker (the lease was taken 40 days from now).
            let now = jiff::Timestamp::now().as_second();
            let event = succeeded(&pi, now);
            let (status, body) = post_event(&http, &server, &event, now, WEBHOOK_SECRET).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["outcome"], "held_by_worker", "{body}");
            // Within the lease nobody asks again; after it, the job asks
            // Stripe about the recorded PaymentIntent instead of charging anew.
            run_jobs(&db, &url, &days_ahead(start, 40, 1)).await;
            let detail = invoice(&http, &server, "dave", &name).await;
            assert_eq!(detail["charges"][0]["outcome"], "PENDING", "{detail}");
            run_jobs(&db, &url, &days_ahead(start, 40, 3)).await;
            let detail = invoice(&http, &server, "dave", &name).await;
            assert_eq!(detail["status"], "PAID", "{detail}");
            let charges = detail["charges"].as_array().unwrap();
            assert_eq!(charges.len(), 1, "{detail}");
            assert_paid_once(&url, &charges[0], detail["total_cents"].as_i64().unwrap()).await;
        }
    })
    .await;
}

#[tokio::test]
async fn stripe_webhooks_are_verified_settle_once_and_record_disputes() {
    let Some(url) = stripe_url() else { return };
    each_backend(|db| {
        let url = url.clone();
        async move {
            let start = jiff::Timestamp::now();
            // Its job loop would close the backdated period on the real clock first.
            let server = serve_without_jobs(&db, &url).await;
            let http = Http::new();
            // Charged five minutes ago: the lease has expired.
            let since = days_ahead(start, -40, 0);
            let at = days_ahead(start, 0, -5);
            let (name, pi) = lost_answer(&db, &url, &server, &http, "carol", Some(&since), &at).await;
            let now = jiff::Timestamp::now().as_second();
            let succeeded = succeeded(&pi, now);

            // Refused, and nothing changes: a wrong secret, an old signature,
            // no signature at all.
            for (t, secret) in [(now, "whsec_not_the_secret"), (now - 3600, WEBHOOK_SECRET)] {
                let (status, body) = post_event(&http, &server, &succeeded, t, secret).await;
                assert_eq!(status, 400, "{body}");
                assert_eq!(
                    body["details"][0]["reason"], "WEBHOOK_SIGNATURE_INVALID",
                    "{body}"
                );
            }
            let (status, body) = http
                .post_raw(
                    &format!("{}/webhooks/stripe", server.base),
                    &[],
                    &succeeded.to_string(),
                )
                .await;
            assert_eq!(status, 400, "{body}");
            let detail = invoice(&http, &server, "carol", &name).await;
            assert_eq!(detail["charges"][0]["outcome"], "PENDING", "{detail}");

            // Accepted: the payment is read back from Stripe and settled.
            let (status, body) = post_event(&http, &server, &succeeded, now, WEBHOOK_SECRET).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["outcome"], "settled", "{body}");
            assert_eq!(body["invoice"], name.as_str(), "{body}");
            let detail = invoice(&http, &server, "carol", &name).await;
            assert_eq!(detail["status"], "PAID", "{detail}");
            assert_paid_once(
                &url,
                &detail["charges"][0],
                detail["total_cents"].as_i64().unwrap(),
            )
            .await;

            // Replayed: handled once.
            let (status, body) = post_event(&http, &server, &succeeded, now, WEBHOOK_SECRET).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["outcome"], "duplicate", "{body}");

            // A dispute marks the invoice, once, and is audited.
            let dispute = json!({
                "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
                "object": "event",
                "type": "charge.dispute.created",
                "created": now,
                "data": {"object": {
                    "id": "dp_carol_1", "object": "dispute", "payment_intent": pi,
                    "amount": detail["total_cents"], "currency": "usd", "reason": "fraudulent"
                }},
            });
            // Twice, as two events (Stripe may send one per update): the
            // dispute is recorded once all the same.
            for _ in 0..2 {
                let mut event = dispute.clone();
                event["id"] = json!(format!("evt_{}", uuid::Uuid::new_v4().simple()));
                let (status, body) = post_event(&http, &server, &event, now, WEBHOOK_SECRET).await;
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["outcome"], "disputed", "{body}");
            }
            let detail = invoice(&http, &server, "carol", &name).await;
            let disputes = detail["disputes"].as_array().unwrap();
            assert_eq!(disputes.len(), 1, "{detail}");
            assert_eq!(disputes[0]["reason"], "fraudulent");
            assert_eq!(disputes[0]["id"], "dp_carol_1");
            let (status, audit) = http
                .call_operator(
                    "GET",
                    &format!("{}/api/operator/audit?tenant=carol", server.base),
                    OPERATOR,
                    None,
                )
                .await;
            assert_eq!(status, 200, "{audit}");
            let disputed = audit.to_string().matches("invoice.disputed").count();
            assert_eq!(disputed, 1, "{audit}");
        }
    })
    .await;
}

#[tokio::test]
async fn without_a_signing_secret_the_stripe_webhook_endpoint_is_off() {
    // No Stripe server needed: the endpoint answers before reading anything.
    each_backend(|db| async move {
        let server = Server::start(&db).await;
        let (status, body) = Http::new()
            .post_raw(
                &format!("{}/webhooks/stripe", server.base),
                &[("Stripe-Signature", "t=1,v1=00")],
                "{}",
            )
            .await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["details"][0]["reason"], "WEBHOOK_NOT_CONFIGURED", "{body}");
    })
    .await;
}

#[tokio::test]
async fn stripe_secrets_never_reach_logs_errors_or_the_api_description() {
    // No Stripe server needed: Stripe "cannot be reached" at a closed port.
    each_backend(|db| async move {
        let key = "sk_test_very_secret_key_0123456789";
        let hook = "whsec_very_secret_signing_key";
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let admin = tenant(&db, "erin", "free", None).await;
        let mut server = Server::start_with(
            &db,
            "debug",
            &[
                "--payment-provider",
                "stripe",
                "--stripe-secret-key",
                key,
                "--stripe-api-base",
                &closed,
                "--stripe-webhook-secret",
                hook,
            ],
        )
        .await;
        let http = Http::new();
        let (status, body) = add_method(
            &http,
            &server,
            &admin,
            "pm_card_visa",
            "PAYMENT_METHOD_ROLE_PRIMARY",
        )
        .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(
            body["details"][0]["reason"], "PAYMENT_PROVIDER_UNAVAILABLE",
            "{body}"
        );
        let (status, body) = post_event(&http, &server, &succeeded("pi_1", 1), 1, "whsec_wrong").await;
        assert_eq!(status, 400, "{body}");
        let (status, doc) = http
            .call("GET", &format!("{}/openapi.json", server.base), None, None)
            .await;
        assert_eq!(status, 200);
        for secret in [key, hook] {
            for text in [body.to_string(), doc.to_string()] {
                assert!(!text.contains(secret), "a secret in an answer");
            }
        }
        server.signal("TERM").await;
        let mut log = String::new();
        while let Ok(Some(line)) = server.stderr.next_line().await {
            log.push_str(&line);
            log.push('\n');
        }
        assert!(log.contains("payments go to Stripe"), "{log}");
        assert!(log.contains("payment provider unavailable"), "{log}");
        for secret in [key, hook, "very_secret"] {
            assert!(!log.contains(secret), "a secret in the log:\n{log}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_partial_then_a_full_refund_go_to_stripe_against_the_payment_intent() {
    let Some(url) = stripe_url() else { return };
    each_backend(|db| {
        let url = url.clone();
        async move {
            let start = jiff::Timestamp::now();
            let server = serve_without_jobs(&db, &url).await;
            let http = Http::new();
            tenant_with_visa(&db, &http, &server, "frank", None).await;
            run_jobs(&db, &url, &days_ahead(start, 40, 0)).await;
            let paid = charged_invoice(&http, &server, "frank").await;
            assert_eq!(paid["status"], "PAID", "{paid}");
            let name = paid["name"].as_str().unwrap().to_owned();
            let total = paid["total_cents"].as_i64().unwrap();
            let pi = paid["charges"][0]["reference"].as_str().unwrap().to_owned();
            let refunds_of = |url: String, pi: String| async move {
                let list = api_get(&url, &format!("/v1/refunds?payment_intent={pi}")).await;
                list["data"].as_array().cloned().unwrap_or_default()
            };

            // Part of it, through the operator API: a credit note, the invoice stays PAID.
            let (status, body) = http
                .call_operator(
                    "POST",
                    &format!("{}/api/operator/tenants/frank/invoices/{name}/refund", server.base),
                    OPERATOR,
                    Some(json!({"amount": "10.00", "reason": "goodwill"})),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["credit_note"]["state"], "SUCCEEDED", "{body}");
            assert_eq!(body["invoice"]["status"], "PAID", "{body}");
            assert_eq!(body["remaining_cents"], total - 1000, "{body}");
            let refunds = refunds_of(url.clone(), pi.clone()).await;
            assert_eq!(refunds.len(), 1, "{refunds:?}");
            assert_eq!(refunds[0]["amount"], 1000);
            assert_eq!(body["credit_note"]["refund_reference"], refunds[0]["id"], "{body}");

            // The rest, with the CLI and the same provider configuration.
            let mut args: Vec<String> = ["invoice", "refund", &name, "--tenant", "frank", "--reason", "closing the account"]
                .map(str::to_owned)
                .to_vec();
            args.extend(stripe_flags(&url));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = expect_ok(tollgate(&db, &args).await);
            assert!(out.contains("REFUNDED"), "{out}");
            let refunds = refunds_of(url.clone(), pi.clone()).await;
            assert_eq!(refunds.len(), 2, "{refunds:?}");
            let refunded: i64 = refunds.iter().map(|r| r["amount"].as_i64().unwrap()).sum();
            assert_eq!(refunded, total, "never more than was paid");
            let detail = invoice(&http, &server, "frank", &name).await;
            assert_eq!(detail["status"], "REFUNDED", "{detail}");
            assert_eq!(detail["credit_notes"].as_array().unwrap().len(), 2, "{detail}");

            // Nothing remains: refused, and Stripe is not asked.
            let (status, body) = http
                .call_operator(
                    "POST",
                    &format!("{}/api/operator/tenants/frank/invoices/{name}/refund", server.base),
                    OPERATOR,
                    Some(json!({"amount": "0.01", "reason": "one cent more"})),
                )
                .await;
            assert_eq!(status, 409, "{body}");
            assert_eq!(refunds_of(url.clone(), pi.clone()).await.len(), 2);

            // Stripe's charge.refunded agrees with what Tollgate recorded:
            // nothing more is recorded.
            let now = jiff::Timestamp::now().as_second();
            let event = json!({
                "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
                "object": "event",
                "type": "charge.refunded",
                "created": now,
                "data": {"object": {"id": "ch_x", "object": "charge", "payment_intent": pi, "amount_refunded": total}},
            });
            let (status, body) = post_event(&http, &server, &event, now, WEBHOOK_SECRET).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["outcome"], "refunded", "{body}");
            assert_eq!(body["invoice"], name.as_str(), "{body}");
            assert_eq!(body.get("credit_note"), None, "{body}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_refund_made_in_stripe_outside_tollgate_is_recorded_as_a_credit_note() {
    let Some(url) = stripe_url() else { return };
    each_backend(|db| {
        let url = url.clone();
        async move {
            let start = jiff::Timestamp::now();
            let server = serve_without_jobs(&db, &url).await;
            let http = Http::new();
            tenant_with_visa(&db, &http, &server, "ivy", None).await;
            run_jobs(&db, &url, &days_ahead(start, 40, 0)).await;
            let paid = charged_invoice(&http, &server, "ivy").await;
            let name = paid["name"].as_str().unwrap().to_owned();
            let pi = paid["charges"][0]["reference"].as_str().unwrap().to_owned();
            // Someone refunds 5.00 in Stripe's dashboard.
            let (status, refund) = http
                .call_operator(
                    "POST",
                    &format!("{url}/v1/refunds"),
                    SECRET_KEY,
                    Some(json!({"payment_intent": pi, "amount": 500})),
                )
                .await;
            assert_eq!(status, 200, "{refund}");
            let now = jiff::Timestamp::now().as_second();
            let event = json!({
                "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
                "object": "event",
                "type": "charge.refunded",
                "created": now,
                "data": {"object": {
                    "id": "ch_x", "object": "charge", "payment_intent": pi, "amount_refunded": 500,
                    "refunds": {"object": "list", "data": [{"id": refund["id"], "amount": 500}]}
                }},
            });
            let (status, body) = post_event(&http, &server, &event, now, WEBHOOK_SECRET).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["outcome"], "refunded", "{body}");
            let note = body["credit_note"]
                .as_str()
                .unwrap_or_else(|| panic!("{body}"))
                .to_owned();
            let detail = invoice(&http, &server, "ivy", &name).await;
            assert_eq!(detail["status"], "PAID", "partly refunded: {detail}");
            let notes = detail["credit_notes"].as_array().unwrap();
            assert_eq!(notes.len(), 1, "{detail}");
            assert_eq!(notes[0]["name"], note.as_str());
            assert_eq!(notes[0]["state"], "SUCCEEDED");
            assert_eq!(notes[0]["amount_cents"], 500);
            assert_eq!(notes[0]["refund_reference"], refund["id"]);
            assert_eq!(notes[0]["actor"], "stripe/webhook");
            // Redelivered: nothing more.
            let (status, body) = post_event(&http, &server, &event, now, WEBHOOK_SECRET).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["outcome"], "duplicate", "{body}");
            // A new event saying the same total: nothing more either.
            let mut again = event.clone();
            again["id"] = json!(format!("evt_{}", uuid::Uuid::new_v4().simple()));
            let (status, body) = post_event(&http, &server, &again, now, WEBHOOK_SECRET).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body.get("credit_note"), None, "{body}");
            let detail = invoice(&http, &server, "ivy", &name).await;
            assert_eq!(detail["credit_notes"].as_array().unwrap().len(), 1, "{detail}");
            // Stripe holds exactly the one refund; Tollgate asked for none.
            let refunds = api_get(&url, &format!("/v1/refunds?payment_intent={pi}")).await;
            assert_eq!(refunds["data"].as_array().unwrap().len(), 1, "{refunds}");
        }
    })
    .await;
}

#[tokio::test]
async fn methods_of_the_test_provider_and_of_stripe_are_each_charged_by_their_own() {
    let Some(url) = stripe_url() else { return };
    each_backend(|db| {
        let url = url.clone();
        async move {
            let start = jiff::Timestamp::now();
            let server = serve_without_jobs(&db, &url).await;
            let http = Http::new();
            // gina's card was registered with the test provider before the switch to Stripe.
            tenant(&db, "gina", "individual", None).await;
            crate::invoicing::card(&db, "gina", "tok-visa-4242").await;
            tenant_with_visa(&db, &http, &server, "hank", None).await;
            run_jobs(&db, &url, &days_ahead(start, 40, 0)).await;

            let gina = charged_invoice(&http, &server, "gina").await;
            assert_eq!(gina["status"], "PAID", "{gina}");
            assert_eq!(gina["charges"][0]["provider"], "test", "{gina}");
            assert!(
                gina["charges"][0]["reference"]
                    .as_str()
                    .unwrap()
                    .starts_with("ch_"),
                "the test provider's reference: {gina}"
            );
            let hank = charged_invoice(&http, &server, "hank").await;
            assert_eq!(hank["status"], "PAID", "{hank}");
            assert_paid_once(&url, &hank["charges"][0], hank["total_cents"].as_i64().unwrap()).await;
        }
    })
    .await;
}

#[tokio::test]
async fn stripe_without_a_secret_key_is_an_error_at_start() {
    each_backend(|db| async move {
        let out = tollgate(&db, &["jobs", "run", "charge", "--payment-provider", "stripe"]).await;
        assert!(!out.ok, "{}", out.stdout);
        assert!(
            out.stderr.contains("TOLLGATE_STRIPE_SECRET_KEY"),
            "{}",
            out.stderr
        );
        let out = tollgate(
            &db,
            &[
                "jobs",
                "run",
                "charge",
                "--payment-provider",
                "stripe",
                "--stripe-secret-key",
                "pk_test_123",
            ],
        )
        .await;
        assert!(!out.ok, "{}", out.stdout);
        assert!(out.stderr.contains("publishable key"), "{}", out.stderr);
        assert!(!out.stderr.contains("pk_test_123"), "{}", out.stderr);
    })
    .await;
}
