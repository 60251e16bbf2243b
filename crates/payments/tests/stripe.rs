//! The Stripe provider against servers that answer like Stripe.
//!
//! - Against localstripe, when `TOLLGATE_TEST_STRIPE_URL` names one (`.ci/run`
//!   starts it): customers, tokens and PaymentMethods, prepared and direct
//!   charges, declines, 3-D Secure, refunds, and a confirmation whose answer
//!   is lost on the way back. Without the variable these tests print a skip
//!   message and pass; with it set and nothing there, they fail.
//! - Against scripted local servers, always: the exact requests sent
//!   (headers, parameters Stripe takes and localstripe does not), 429
//!   retries, outages, timeouts, and how Stripe's errors are read.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_domain::contact::Contact;
use tollgate_payments::stripe::testing::{
    self, DroppingProxy, Reply, ScriptedServer, api_get, create_card_token, drop_once, stripe_url,
};
use tollgate_payments::stripe::{STRIPE_VERSION, StripeConfig, StripeProvider};
use tollgate_payments::{
    AUTHENTICATION_REQUIRED, Charge, ChargeRequest, PaymentProvider, ProviderError, RefundRequest,
};

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn charge_req<'a>(
    token: &'a str,
    customer: &'a str,
    amount_cents: i64,
    key: &'a str,
    reference: Option<&'a str>,
) -> ChargeRequest<'a> {
    ChargeRequest {
        token,
        customer: Some(customer),
        amount_cents,
        currency: "EUR",
        idempotency_key: key,
        reference,
        description: "Tollgate invoice INV-1",
    }
}

/// A new customer with a card registered from a token of `number`.
async fn customer_with_card(url: &str, p: &StripeProvider, number: &str) -> (String, String) {
    let tenant = unique("tenant");
    let customer = p
        .create_customer(&tenant, "Acme", &Contact::default())
        .await
        .unwrap();
    let token = create_card_token(url, number).await;
    let registered = p
        .register(&token, Some(&customer), &Contact::default())
        .await
        .unwrap();
    (customer, registered.token)
}

/// The charges the server made for `customer`'s PaymentIntent `pi`.
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

// ---------------------------------------------------------------------------
// Against localstripe

#[tokio::test]
async fn customers_are_made_with_the_tenant_in_their_metadata() {
    let Some(url) = stripe_url() else { return };
    let p = testing::provider(&url);
    let tenant = unique("tenant");
    let contact = Contact {
        address1: "1 Main St".into(),
        city: "Springfield".into(),
        zip_code: "12345".into(),
        state_code: "IL".into(),
        country: "us".into(),
        phone_number: "+1 555 0100".into(),
        ..Contact::default()
    };
    let id = p.create_customer(&tenant, "Acme & Co", &contact).await.unwrap();
    assert!(id.starts_with("cus_"), "{id}");
    let customer = api_get(&url, &format!("/v1/customers/{id}")).await;
    assert_eq!(customer["name"], "Acme & Co");
    assert_eq!(customer["phone"], "+1 555 0100");
    assert_eq!(customer["metadata"]["tollgate_tenant"], tenant.as_str());
    assert_eq!(customer["address"]["line1"], "1 Main St");
    assert_eq!(customer["address"]["country"], "US");
    assert_eq!(customer["address"]["state"], "IL");
    // A country written out is left out, not refused.
    let contact = Contact {
        country: "United States".into(),
        ..Contact::default()
    };
    let id = p
        .create_customer(&unique("tenant"), "Beta", &contact)
        .await
        .unwrap();
    assert_eq!(
        api_get(&url, &format!("/v1/customers/{id}")).await["address"],
        Value::Null
    );
}

#[tokio::test]
async fn card_tokens_and_payment_methods_are_registered_on_the_customer() {
    let Some(url) = stripe_url() else { return };
    let p = testing::provider(&url);
    let customer = p
        .create_customer(&unique("tenant"), "Acme", &Contact::default())
        .await
        .unwrap();

    // A one-time token becomes a lasting card of the customer.
    let token = create_card_token(&url, "4242424242424242").await;
    let card = p
        .register(&token, Some(&customer), &Contact::default())
        .await
        .unwrap();
    assert!(card.token.starts_with("card_"), "{card:?}");
    assert_eq!(card.display, "Visa ending 4242, expires 12/2030");
    let sources = api_get(&url, &format!("/v1/customers/{customer}/sources")).await;
    assert_eq!(sources["data"][0]["id"], card.token.as_str());

    // A PaymentMethod is attached; its own id is stored.
    let pm = p
        .register("pm_card_visa", Some(&customer), &Contact::default())
        .await
        .unwrap();
    assert!(
        pm.token.starts_with("pm_") && pm.token != "pm_card_visa",
        "{pm:?}"
    );
    assert_eq!(pm.display, "Visa ending 4242, expires 12/2030");
    let attached = api_get(&url, &format!("/v1/payment_methods/{}", pm.token)).await;
    assert_eq!(attached["customer"], customer.as_str());
}

#[tokio::test]
async fn bad_tokens_are_refused_with_stripes_reason() {
    let Some(url) = stripe_url() else { return };
    let p = testing::provider(&url);
    let customer = p
        .create_customer(&unique("tenant"), "Acme", &Contact::default())
        .await
        .unwrap();
    let c = Contact::default();

    let Err(ProviderError::Refused(why)) = p.register("tok_doesnotexist", Some(&customer), &c).await else {
        panic!("an unknown token must be refused")
    };
    assert!(why.contains("Not Found") && why.contains("HTTP 404"), "{why}");

    let Err(ProviderError::Refused(why)) = p.register("pm_doesnotexist", Some(&customer), &c).await else {
        panic!("an unknown PaymentMethod must be refused")
    };
    assert!(why.contains("HTTP 404"), "{why}");

    // A card the bank refuses to save: Stripe's message and code.
    let declined = create_card_token(&url, "4000000000000002").await;
    let Err(ProviderError::Refused(why)) = p.register(&declined, Some(&customer), &c).await else {
        panic!("a card declined at attach must be refused")
    };
    assert!(
        why.contains("Your card was declined.") && why.contains("card_declined"),
        "{why}"
    );

    // Not a token at all; it is not repeated (it could be a card number).
    let Err(ProviderError::Refused(why)) = p.register("4242424242424242", Some(&customer), &c).await else {
        panic!("a card number must be refused")
    };
    assert!(!why.contains("4242"), "{why}");
    assert!(why.contains("tok_") && why.contains("pm_"), "{why}");

    let token = create_card_token(&url, "4242424242424242").await;
    let Err(ProviderError::Refused(why)) = p.register(&token, None, &c).await else {
        panic!("no customer must be refused")
    };
    assert!(why.contains("stripe needs the tenant's customer"), "{why}");
}

#[tokio::test]
async fn a_prepared_payment_moves_no_money_until_charged_and_is_charged_once() {
    let Some(url) = stripe_url() else { return };
    let p = testing::provider(&url);
    let (customer, card) = customer_with_card(&url, &p, "4242424242424242").await;
    let key = unique("attempt");

    let reference = p
        .prepare(&charge_req(&card, &customer, 1999, &key, None))
        .await
        .unwrap()
        .expect("stripe prepares a PaymentIntent");
    assert!(reference.starts_with("pi_"), "{reference}");
    let pi = api_get(&url, &format!("/v1/payment_intents/{reference}")).await;
    assert_eq!(pi["status"], "requires_confirmation");
    assert_eq!(pi["amount"], 1999);
    assert_eq!(pi["currency"], "eur");
    assert_eq!(pi["customer"], customer.as_str());
    assert_eq!(pi["payment_method"], card.as_str());
    assert_eq!(pi["metadata"]["tollgate_attempt"], key.as_str());
    assert_eq!(pi["latest_charge"], Value::Null);
    assert!(charges_of(&url, &customer, &reference).await.is_empty());

    let req = charge_req(&card, &customer, 1999, &key, Some(&reference));
    assert_eq!(
        p.charge(&req).await.unwrap(),
        Charge::Succeeded {
            reference: reference.clone()
        }
    );
    let pi = api_get(&url, &format!("/v1/payment_intents/{reference}")).await;
    assert_eq!(pi["status"], "succeeded");
    assert_eq!(pi["amount"], 1999);
    assert_eq!(pi["currency"], "eur");
    // Asked again: the same answer, read, not charged again.
    assert_eq!(
        p.charge(&req).await.unwrap(),
        Charge::Succeeded {
            reference: reference.clone()
        }
    );
    let charges = charges_of(&url, &customer, &reference).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0]["amount"], 1999);

    // A prepared payment is never confirmed for another amount than asked.
    let key = unique("attempt");
    let other = p
        .prepare(&charge_req(&card, &customer, 1999, &key, None))
        .await
        .unwrap()
        .unwrap();
    let Err(ProviderError::Refused(why)) = p
        .charge(&charge_req(&card, &customer, 2500, &key, Some(&other)))
        .await
    else {
        panic!("another amount must be refused")
    };
    assert!(why.contains("1999 eur, not the 2500 eur"), "{why}");
    let pi = api_get(&url, &format!("/v1/payment_intents/{other}")).await;
    assert_eq!(pi["status"], "requires_confirmation");
}

#[tokio::test]
async fn a_charge_without_preparation_is_made_and_confirmed_at_once() {
    let Some(url) = stripe_url() else { return };
    let p = testing::provider(&url);
    let (customer, _) = customer_with_card(&url, &p, "4242424242424242").await;
    let pm = p
        .register("pm_card_visa", Some(&customer), &Contact::default())
        .await
        .unwrap();
    let key = unique("attempt");
    let Charge::Succeeded { reference } = p
        .charge(&charge_req(&pm.token, &customer, 700, &key, None))
        .await
        .unwrap()
    else {
        panic!("the charge must succeed")
    };
    assert!(reference.starts_with("pi_"), "{reference}");
    let pi = api_get(&url, &format!("/v1/payment_intents/{reference}")).await;
    assert_eq!(
        (pi["status"].as_str(), pi["amount"].as_i64()),
        (Some("succeeded"), Some(700))
    );
    assert_eq!(charges_of(&url, &customer, &reference).await.len(), 1);
}

#[tokio::test]
async fn a_card_that_declines_at_charge_time_is_declined() {
    let Some(url) = stripe_url() else { return };
    let p = testing::provider(&url);
    // 4000000000000341 attaches fine and declines when charged.
    let (customer, card) = customer_with_card(&url, &p, "4000000000000341").await;

    let key = unique("attempt");
    let reference = p
        .prepare(&charge_req(&card, &customer, 1500, &key, None))
        .await
        .unwrap()
        .unwrap();
    let req = charge_req(&card, &customer, 1500, &key, Some(&reference));
    let Charge::Declined { reason } = p.charge(&req).await.unwrap() else {
        panic!("the charge must be declined")
    };
    assert_eq!(reason, "Your card was declined. (card_declined)");
    // Asked again, the PaymentIntent's last error says the same.
    assert_eq!(p.charge(&req).await.unwrap(), Charge::Declined { reason });
    let pi = api_get(&url, &format!("/v1/payment_intents/{reference}")).await;
    assert_eq!(pi["status"], "requires_payment_method");

    // Without preparation: the same decline.
    let key = unique("attempt");
    let Charge::Declined { reason } = p
        .charge(&charge_req(&card, &customer, 1500, &key, None))
        .await
        .unwrap()
    else {
        panic!("the direct charge must be declined")
    };
    assert!(reason.contains("card_declined"), "{reason}");
}

#[tokio::test]
async fn a_card_that_needs_3d_secure_is_declined_off_session_and_its_payment_cancelled() {
    let Some(url) = stripe_url() else { return };
    let p = testing::provider(&url);
    let (customer, card) = customer_with_card(&url, &p, "4000002760003184").await;

    let key = unique("attempt");
    let reference = p
        .prepare(&charge_req(&card, &customer, 1200, &key, None))
        .await
        .unwrap()
        .unwrap();
    let req = charge_req(&card, &customer, 1200, &key, Some(&reference));
    assert_eq!(
        p.charge(&req).await.unwrap(),
        Charge::Declined {
            reason: AUTHENTICATION_REQUIRED.into()
        }
    );
    let pi = api_get(&url, &format!("/v1/payment_intents/{reference}")).await;
    assert_eq!(pi["status"], "canceled");
    assert!(charges_of(&url, &customer, &reference).await.is_empty());
    // Asked again: still declined (now as cancelled), never charged.
    assert!(matches!(p.charge(&req).await.unwrap(), Charge::Declined { .. }));

    // Without preparation, likewise.
    let key = unique("attempt");
    assert_eq!(
        p.charge(&charge_req(&card, &customer, 1200, &key, None))
            .await
            .unwrap(),
        Charge::Declined {
            reason: AUTHENTICATION_REQUIRED.into()
        }
    );
}

#[tokio::test]
async fn refunds_go_up_to_what_remains_and_a_key_refunds_once() {
    let Some(url) = stripe_url() else { return };
    let p = testing::provider(&url);
    let (customer, card) = customer_with_card(&url, &p, "4242424242424242").await;
    let key = unique("attempt");
    let reference = p
        .prepare(&charge_req(&card, &customer, 5000, &key, None))
        .await
        .unwrap()
        .unwrap();
    let paid = p
        .charge(&charge_req(&card, &customer, 5000, &key, Some(&reference)))
        .await
        .unwrap();
    assert_eq!(
        paid,
        Charge::Succeeded {
            reference: reference.clone()
        }
    );
    let refund = |amount_cents, idempotency_key| RefundRequest {
        reference: &reference,
        amount_cents,
        idempotency_key,
    };
    let (k1, k2, k3, k4) = (unique("r1"), unique("r2"), unique("r3"), unique("r4"));

    let first = p.refund(&refund(2000, &k1)).await.unwrap();
    assert!(first.starts_with("re_"), "{first}");
    // The same key again (a lost answer): the same refund, found, not made again.
    assert_eq!(p.refund(&refund(2000, &k1)).await.unwrap(), first);

    let Err(ProviderError::Refused(why)) = p.refund(&refund(3001, &k2)).await else {
        panic!("more than remains must be refused")
    };
    assert!(why.contains("exceeds the 3000 that remains"), "{why}");

    let rest = p.refund(&refund(3000, &k3)).await.unwrap();
    assert_ne!(rest, first);
    assert!(matches!(
        p.refund(&refund(1, &k4)).await,
        Err(ProviderError::Refused(_))
    ));

    let charges = charges_of(&url, &customer, &reference).await;
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0]["amount_refunded"], 5000);
    let refunds = api_get(&url, &format!("/v1/refunds?payment_intent={reference}")).await;
    assert_eq!(refunds["data"].as_array().unwrap().len(), 2, "{refunds}");

    // A charge id works too; an unknown payment is refused.
    let charge_id = charges[0]["id"].as_str().unwrap().to_owned();
    let by_charge = RefundRequest {
        reference: &charge_id,
        amount_cents: 1,
        idempotency_key: &k4,
    };
    assert!(matches!(
        p.refund(&by_charge).await,
        Err(ProviderError::Refused(_))
    ));
    let unknown = RefundRequest {
        reference: "pi_doesnotexist",
        amount_cents: 1,
        idempotency_key: &k4,
    };
    assert!(matches!(p.refund(&unknown).await, Err(ProviderError::Refused(_))));
}

#[tokio::test]
async fn a_charge_whose_answer_was_lost_is_found_by_reading_the_payment_not_made_twice() {
    let Some(url) = stripe_url() else { return };
    let p = testing::provider(&url);
    let (customer, card) = customer_with_card(&url, &p, "4242424242424242").await;
    let key = unique("attempt");
    // The reference is recorded before any money moves.
    let reference = p
        .prepare(&charge_req(&card, &customer, 4200, &key, None))
        .await
        .unwrap()
        .unwrap();
    let req = charge_req(&card, &customer, 4200, &key, Some(&reference));

    // The confirmation reaches the server, its answer never comes back.
    let proxy = DroppingProxy::start(&url, drop_once("POST", "/confirm")).await;
    let behind_proxy = StripeProvider::new(testing::config(&proxy.url())).unwrap();
    let Err(ProviderError::Unavailable(why)) = behind_proxy.charge(&req).await else {
        panic!("a lost answer is an unknown outcome")
    };
    assert_eq!(proxy.dropped(), 1, "{why}");
    assert!(why.contains("/confirm"), "{why}");
    assert_eq!(charges_of(&url, &customer, &reference).await.len(), 1);

    // Asked again (through the same proxy, which now passes answers on):
    // the PaymentIntent is read and found paid; nothing is confirmed again.
    assert_eq!(
        behind_proxy.charge(&req).await.unwrap(),
        Charge::Succeeded {
            reference: reference.clone()
        }
    );
    assert_eq!(
        p.charge(&req).await.unwrap(),
        Charge::Succeeded {
            reference: reference.clone()
        }
    );
    let charges = charges_of(&url, &customer, &reference).await;
    assert_eq!(charges.len(), 1, "charged exactly once: {charges:?}");
    assert_eq!(charges[0]["amount"], 4200);
    let pi = api_get(&url, &format!("/v1/payment_intents/{reference}")).await;
    assert_eq!(pi["status"], "succeeded");
    assert_eq!(pi["latest_charge"]["id"], charges[0]["id"]);
    assert_eq!(proxy.dropped(), 1);
}

// ---------------------------------------------------------------------------
// Against scripted servers

fn scripted_config(url: &str) -> StripeConfig {
    let mut config = StripeConfig::new("sk_test_scripted_SECRET");
    config.api_base = url.to_owned();
    config.backoff_base = Duration::from_millis(5);
    config.max_retries_on_429 = 2;
    config.request_timeout = Duration::from_secs(5);
    config
}

fn scripted(url: &str) -> StripeProvider {
    StripeProvider::new(scripted_config(url)).unwrap()
}

fn error_json(kind: &str, code: &str, message: &str) -> String {
    json!({"error": {"type": kind, "code": code, "message": message}}).to_string()
}

fn pi_json(status: &str) -> String {
    json!({"id": "pi_123", "object": "payment_intent", "status": status, "amount": 1999,
           "currency": "eur", "last_payment_error": null, "latest_charge": null})
    .to_string()
}

fn form_pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn requests_carry_stripes_headers_and_the_parameters_stripe_takes() {
    let server = ScriptedServer::start(vec![
        Reply::Json(200, json!({"id": "cus_1", "object": "customer"}).to_string()),
        Reply::Json(200, pi_json("requires_confirmation")),
        Reply::Json(200, pi_json("requires_confirmation")),
        Reply::Json(200, pi_json("succeeded")),
    ])
    .await;
    let p = scripted(&server.url());
    assert_eq!(
        p.create_customer("t-1", "Acme Inc", &Contact::default())
            .await
            .unwrap(),
        "cus_1"
    );
    let req = ChargeRequest {
        token: "pm_1",
        customer: Some("cus_1"),
        amount_cents: 1999,
        currency: "EUR",
        idempotency_key: "inv-1/attempt-1",
        reference: None,
        description: "Invoice INV-1 & more",
    };
    assert_eq!(p.prepare(&req).await.unwrap().as_deref(), Some("pi_123"));
    let req = ChargeRequest {
        reference: Some("pi_123"),
        ..req
    };
    assert_eq!(
        p.charge(&req).await.unwrap(),
        Charge::Succeeded {
            reference: "pi_123".into()
        }
    );

    let r = server.requests();
    assert_eq!(r.len(), 4);
    for request in &r {
        assert_eq!(
            request.header("authorization"),
            Some("Bearer sk_test_scripted_SECRET")
        );
        assert_eq!(request.header("stripe-version"), Some(STRIPE_VERSION));
    }
    assert_eq!(
        (r[0].method.as_str(), r[0].target.as_str()),
        ("POST", "/v1/customers")
    );
    assert_eq!(r[0].header("idempotency-key"), Some("customer/t-1"));
    assert_eq!(
        r[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        form_pairs(&r[0].body),
        pairs(&[("name", "Acme%20Inc"), ("metadata[tollgate_tenant]", "t-1")])
    );

    assert_eq!(
        (r[1].method.as_str(), r[1].target.as_str()),
        ("POST", "/v1/payment_intents")
    );
    assert_eq!(r[1].header("idempotency-key"), Some("inv-1/attempt-1/prepare"));
    assert_eq!(
        form_pairs(&r[1].body),
        pairs(&[
            ("amount", "1999"),
            ("currency", "eur"),
            ("customer", "cus_1"),
            ("payment_method", "pm_1"),
            ("confirm", "false"),
            ("payment_method_types[]", "card"),
            ("description", "Invoice%20INV-1%20%26%20more"),
            ("metadata[tollgate_attempt]", "inv-1%2Fattempt-1"),
        ])
    );

    assert_eq!(
        (r[2].method.as_str(), r[2].target.as_str()),
        ("GET", "/v1/payment_intents/pi_123")
    );
    assert_eq!(r[2].header("idempotency-key"), None);
    assert_eq!(
        (r[3].method.as_str(), r[3].target.as_str()),
        ("POST", "/v1/payment_intents/pi_123/confirm")
    );
    assert_eq!(r[3].header("idempotency-key"), Some("inv-1/attempt-1/confirm"));
    assert_eq!(form_pairs(&r[3].body), pairs(&[("off_session", "true")]));
}

#[tokio::test]
async fn a_direct_charge_is_confirmed_off_session_in_one_request() {
    let server = ScriptedServer::start(vec![Reply::Json(200, pi_json("processing"))]).await;
    let p = scripted(&server.url());
    let req = ChargeRequest {
        token: "card_1",
        customer: Some("cus_1"),
        amount_cents: 1999,
        currency: "eur",
        idempotency_key: "k-9",
        reference: None,
        description: "",
    };
    assert_eq!(
        p.charge(&req).await.unwrap(),
        Charge::Processing {
            reference: "pi_123".into()
        }
    );
    let r = server.requests();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].header("idempotency-key"), Some("k-9"));
    assert_eq!(
        form_pairs(&r[0].body),
        pairs(&[
            ("amount", "1999"),
            ("currency", "eur"),
            ("customer", "cus_1"),
            ("payment_method", "card_1"),
            ("confirm", "true"),
            ("off_session", "true"),
            ("payment_method_types[]", "card"),
            ("metadata[tollgate_attempt]", "k-9"),
        ])
    );
}

#[tokio::test]
async fn too_many_requests_are_retried_with_backoff_then_given_up() {
    let server = ScriptedServer::start(vec![
        Reply::Json(
            429,
            error_json("invalid_request_error", "rate_limit", "Too many requests"),
        ),
        Reply::Json(
            429,
            error_json("invalid_request_error", "rate_limit", "Too many requests"),
        ),
        Reply::Json(200, json!({"id": "cus_after_429"}).to_string()),
    ])
    .await;
    let mut config = scripted_config(&server.url());
    config.backoff_base = Duration::from_millis(40);
    let p = StripeProvider::new(config).unwrap();
    let started = Instant::now();
    assert_eq!(
        p.create_customer("t-429", "Acme", &Contact::default())
            .await
            .unwrap(),
        "cus_after_429"
    );
    // 40 ms, then 80 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(120),
        "{:?}",
        started.elapsed()
    );
    let r = server.requests();
    assert_eq!(r.len(), 3);
    assert!(
        r.iter()
            .all(|r| r.header("idempotency-key") == Some("customer/t-429"))
    );
    assert!(r.iter().all(|x| x.body == r[0].body));

    let always = ScriptedServer::start(vec![Reply::Json(
        429,
        error_json("invalid_request_error", "rate_limit", "Too many requests"),
    )])
    .await;
    let p = scripted(&always.url());
    let Err(ProviderError::Unavailable(why)) = p.create_customer("t-1", "Acme", &Contact::default()).await
    else {
        panic!("429 past the retries is unavailable")
    };
    assert!(why.contains("429") && why.contains("2 retries"), "{why}");
    assert_eq!(always.requests().len(), 3);
}

#[tokio::test]
async fn outages_timeouts_and_key_problems_are_unavailable_and_never_show_the_key() {
    let c = Contact::default();
    // 5xx.
    let server = ScriptedServer::start(vec![Reply::Json(
        500,
        error_json("api_error", "", "Something went wrong on Stripe's end."),
    )])
    .await;
    let Err(ProviderError::Unavailable(why)) = scripted(&server.url()).create_customer("t", "A", &c).await
    else {
        panic!("a 500 is unavailable")
    };
    assert!(
        why.contains("Something went wrong") && why.contains("HTTP 500"),
        "{why}"
    );
    assert_eq!(server.requests().len(), 1, "a 500 is not retried here");

    // A wrong key: Stripe quotes part of it; the caller sees none of it.
    let server = ScriptedServer::start(vec![Reply::Json(
        401,
        error_json(
            "invalid_request_error",
            "",
            "Invalid API Key provided: sk_test_scripted_SECRET",
        ),
    )])
    .await;
    let Err(ProviderError::Unavailable(why)) = scripted(&server.url()).create_customer("t", "A", &c).await
    else {
        panic!("a 401 is unavailable (the operator's key), not a refusal")
    };
    assert!(!why.contains("SECRET"), "{why}");
    assert!(why.contains("API key"), "{why}");

    // No answer within the timeout.
    let server = ScriptedServer::start(vec![Reply::Hang]).await;
    let mut config = scripted_config(&server.url());
    config.request_timeout = Duration::from_millis(300);
    let p = StripeProvider::new(config).unwrap();
    let started = Instant::now();
    let Err(ProviderError::Unavailable(why)) = p.create_customer("t", "A", &c).await else {
        panic!("a timeout is unavailable")
    };
    assert!(why.contains("timed out"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Nobody listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = scripted(&format!("http://127.0.0.1:{port}"));
    assert!(matches!(
        p.create_customer("t", "A", &c).await,
        Err(ProviderError::Unavailable(_))
    ));
}

#[tokio::test]
async fn card_errors_decline_and_other_refusals_refuse() {
    let req = ChargeRequest {
        token: "pm_1",
        customer: Some("cus_1"),
        amount_cents: 1999,
        currency: "eur",
        idempotency_key: "k",
        reference: None,
        description: "x",
    };
    let card_error = |code: &str, decline: &str, message: &str| {
        json!({"error": {"type": "card_error", "code": code, "decline_code": decline, "message": message,
                         "payment_intent": {"id": "pi_123", "status": "requires_payment_method"}}})
        .to_string()
    };
    let server = ScriptedServer::start(vec![Reply::Json(
        402,
        card_error(
            "card_declined",
            "insufficient_funds",
            "Your card has insufficient funds.",
        ),
    )])
    .await;
    assert_eq!(
        scripted(&server.url()).charge(&req).await.unwrap(),
        Charge::Declined {
            reason: "Your card has insufficient funds. (card_declined: insufficient_funds)".into()
        }
    );
    // Stripe's off-session answer for a card that needs 3-D Secure.
    let server = ScriptedServer::start(vec![Reply::Json(
        402,
        card_error(
            "authentication_required",
            "authentication_required",
            "Your card was declined. This transaction requires authentication.",
        ),
    )])
    .await;
    assert_eq!(
        scripted(&server.url()).charge(&req).await.unwrap(),
        Charge::Declined {
            reason: AUTHENTICATION_REQUIRED.into()
        }
    );
    // A confirmation declined: the card error is the answer.
    let server = ScriptedServer::start(vec![
        Reply::Json(200, pi_json("requires_confirmation")),
        Reply::Json(
            402,
            card_error("expired_card", "expired_card", "Your card has expired."),
        ),
    ])
    .await;
    let with_reference = ChargeRequest {
        reference: Some("pi_123"),
        ..req
    };
    assert_eq!(
        scripted(&server.url()).charge(&with_reference).await.unwrap(),
        Charge::Declined {
            reason: "Your card has expired. (expired_card)".into()
        }
    );
    // A confirmation refused because someone else moved the payment on:
    // its status now is the answer.
    let server = ScriptedServer::start(vec![
        Reply::Json(200, pi_json("requires_confirmation")),
        Reply::Json(
            400,
            error_json(
                "invalid_request_error",
                "payment_intent_unexpected_state",
                "This PaymentIntent's status is succeeded.",
            ),
        ),
        Reply::Json(200, pi_json("succeeded")),
    ])
    .await;
    assert_eq!(
        scripted(&server.url()).charge(&with_reference).await.unwrap(),
        Charge::Succeeded {
            reference: "pi_123".into()
        }
    );
    // Other 4xx: refused with Stripe's message and code.
    let server = ScriptedServer::start(vec![Reply::Json(
        400,
        error_json(
            "invalid_request_error",
            "parameter_invalid_integer",
            "Invalid integer: abc",
        ),
    )])
    .await;
    let Err(ProviderError::Refused(why)) = scripted(&server.url()).charge(&req).await else {
        panic!("a 400 is a refusal")
    };
    assert_eq!(
        why,
        "Invalid integer: abc (code parameter_invalid_integer, HTTP 400, request req_scripted_0)"
    );
    // A 409 (the same key in flight elsewhere) is no answer yet.
    let server = ScriptedServer::start(vec![Reply::Json(
        409,
        error_json("idempotency_error", "idempotency_key_in_use", "in use"),
    )])
    .await;
    assert!(matches!(
        scripted(&server.url()).charge(&req).await,
        Err(ProviderError::Unavailable(_))
    ));
    // Nothing is asked for an id that cannot be Stripe's.
    let server = ScriptedServer::start(vec![Reply::Json(200, pi_json("succeeded"))]).await;
    let bad = ChargeRequest {
        reference: Some("pi_1/../../v1/charges"),
        ..req
    };
    assert!(matches!(
        scripted(&server.url()).charge(&bad).await,
        Err(ProviderError::Refused(_))
    ));
    assert!(server.requests().is_empty());
}
