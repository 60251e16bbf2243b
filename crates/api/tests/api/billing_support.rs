//! Paths, bodies and readers shared by the billing tests (plans,
//! subscriptions, add-ons, payment methods, plan transitions, operator API).

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use jiff::SignedDuration;
use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_domain::tenant::Tenant;
use tower::ServiceExt;

use crate::support::TestApp;

pub const PLAN_LIST: &str = "/api/web/namespaces/system/usage_plans/custom_list";
pub const CURRENT_PLAN: &str = "/api/web/namespaces/system/usage_plans/current";
pub const SUBSCRIPTIONS: &str = "/api/web/namespaces/system/subscriptions/custom_list";
pub const SUBSCRIBE: &str = "/api/web/namespaces/system/addon/subscribe";
pub const UNSUBSCRIBE: &str = "/api/web/namespaces/system/addon/unsubscribe";
pub const PAYMENT_METHODS: &str = "/api/web/namespaces/system/billing/payment_methods";
pub const TRANSITION: &str = "/api/web/namespaces/system/billing/plan_transition";
pub const OPERATOR_TRANSITIONS: &str = "/api/operator/transitions";

/// The path of a role call (`primary`, `secondary`, `swap-primary`) on a method.
pub fn role_path(name: &str, call: &str) -> String {
    format!("/api/web/namespaces/system/billing/payment_method/{name}/{call}")
}

pub fn method_path(name: &str) -> String {
    format!("{PAYMENT_METHODS}/{name}")
}

/// A full create-payment-method body.
pub fn card(token: &str) -> Value {
    json!({
        "token": token,
        "contact": {"address1": "1 Main St", "city": "Paris", "country": "FR", "contact_type": "BILLING"},
        "role": "PAYMENT_METHOD_ROLE_PRIMARY",
        "namespace": "system"
    })
}

/// A request through a clone of the router, for concurrent tasks of their
/// own; returns the status and the JSON body.
pub async fn send_on(
    router: Router,
    method: Method,
    path: String,
    tok: String,
    body: Option<Value>,
) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("APIToken {tok}"))
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let resp = router.oneshot(req).await.expect("router is infallible");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).expect("a JSON body"))
}

/// Creates a payment method with `role` (none: the field is left out),
/// checks the generated name, and moves the clock one second on so that
/// methods list in creation order.
pub async fn add_card(app: &TestApp, tok: &str, token: &str, role: Option<Value>) -> String {
    let mut body = card(token);
    match role {
        Some(r) => body["role"] = r,
        None => {
            body.as_object_mut().unwrap().remove("role");
        }
    }
    let resp = app.post(PAYMENT_METHODS, tok, body).await;
    let created = resp.ok();
    assert_eq!(created.as_object().unwrap().len(), 1, "{created}");
    let name = created["name"].as_str().expect("name is a string").to_owned();
    assert_is_method_name(&name);
    app.clock.advance(SignedDuration::from_secs(1));
    name
}

#[track_caller]
pub fn assert_is_method_name(name: &str) {
    let hex = name
        .strip_prefix("pm-")
        .unwrap_or_else(|| panic!("{name:?} does not start with pm-"));
    assert_eq!(hex.len(), 12, "{name:?}");
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{name:?} is not pm- and 12 lowercase hex digits"
    );
}

/// The tenant's payment methods as (name, role without its prefix), in list order.
pub async fn roles(app: &TestApp, tok: &str) -> Vec<(String, String)> {
    let list = app.get(PAYMENT_METHODS, tok).await;
    list.ok()["items"]
        .as_array()
        .expect("items is a list")
        .iter()
        .map(|m| {
            let role = m["role"].as_str().unwrap();
            (
                m["name"].as_str().unwrap().to_owned(),
                role.strip_prefix("PAYMENT_METHOD_ROLE_")
                    .unwrap_or_else(|| panic!("role {role:?}"))
                    .to_owned(),
            )
        })
        .collect()
}

/// The one entry of the tenant's payment-method list.
pub async fn only_method(app: &TestApp, tok: &str) -> Value {
    let list = app.get(PAYMENT_METHODS, tok).await;
    let items = list.ok()["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", list.body);
    items[0].clone()
}

/// (name, role) pairs to compare with [`roles`].
pub fn expect_roles(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, r)| ((*n).to_owned(), (*r).to_owned()))
        .collect()
}

/// The one plan of `usage_plans/current`.
pub async fn current_plan(app: &TestApp, tok: &str) -> Value {
    let resp = app.get(CURRENT_PLAN, tok).await;
    let plans = resp.ok()["plans"].as_array().expect("plans is a list");
    assert_eq!(plans.len(), 1, "{}", resp.body);
    plans[0].clone()
}

/// The names in an add-on list of a plan (`included_addon_services`, …).
pub fn addon_names(plan: &Value, field: &str) -> Vec<String> {
    plan[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} is not a list: {plan}"))
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The tenant's subscriptions (`?current=…` appended when given).
pub async fn subscriptions(app: &TestApp, tok: &str, query: &str) -> Vec<Value> {
    let resp = app.get(&format!("{SUBSCRIPTIONS}{query}"), tok).await;
    resp.ok()["subscriptions"]
        .as_array()
        .expect("subscriptions is a list")
        .clone()
}

/// A request to move to team, paying with `token`.
pub fn to_team(token: &str) -> Value {
    json!({"namespace": "system", "new_plan": "team", "payload": {"payment_provider_token": token}})
}

/// A complete request to move to organization.
pub fn to_organization() -> Value {
    json!({
        "namespace": "system",
        "new_plan": "organization",
        "payload": {
            "domain": "acme.com",
            "billing_address": {"address1": "1 Main St", "city": "Seattle", "country": "US"}
        }
    })
}

/// Requests a plan transition; returns its id and whether it needs approval.
pub async fn initiate(app: &TestApp, tok: &str, body: Value) -> (String, bool) {
    let resp = app.post(TRANSITION, tok, body).await;
    let rsp = resp.ok();
    assert_eq!(rsp.as_object().unwrap().len(), 2, "{rsp}");
    let id = rsp["id"].as_str().expect("id is a string").to_owned();
    uuid::Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{id:?} is not a uuid: {e}"));
    (id, rsp["requires_manual_approval"].as_bool().unwrap())
}

/// How the audit trail names the API token of `role` of `tenant`.
pub async fn actor_of(app: &TestApp, tenant: &Tenant, role: Role) -> String {
    let tokens = app.store.tokens(&tenant.id).await.unwrap();
    let matching: Vec<_> = tokens.iter().filter(|t| t.role == role).collect();
    assert_eq!(matching.len(), 1, "one {role} token of {}", tenant.name);
    format!("token/{}", matching[0].id)
}
