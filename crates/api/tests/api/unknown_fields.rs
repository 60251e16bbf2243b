//! Unknown fields in request bodies are ignored at every level, as
//! grpc-gateway does, so that a client built from a newer contract keeps
//! working: every operation that reads a body answers a valid body with
//! unknown fields added exactly as it answers the body alone.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::Method;
use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::billing_support::{
    OPERATOR_TRANSITIONS, PAYMENT_METHODS, SUBSCRIBE, TRANSITION, UNSUBSCRIBE, add_card, card, role_path,
    to_organization,
};
use crate::support::{OPERATOR_TOKEN, Resp, START, TestApp, quota_body, ts};
use crate::usage_support::{SUMMARY, event, events_path, report};

const QUOTAS: &str = "/api/web/namespaces/system/quotas";
const QUOTA: &str = "/api/web/namespaces/system/quotas/q";
const QUOTA_USAGE: &str = "/api/web/namespaces/system/quota/usage";
const CURRENT_PLAN: &str = "/api/web/namespaces/system/usage_plans/current";

/// What a case needs to exist before its request.
#[derive(Debug, Clone, Copy)]
enum Needs {
    Nothing,
    /// A quota object `q`.
    Quota,
    /// The add-on f5xc_waap_standard subscribed.
    Addon,
    /// Two payment methods; the second has this role.
    Methods(&'static str),
    /// Usage events in namespace system.
    Usage,
    /// A plan transition waiting for the operator's approval.
    WaitingTransition,
    /// The coupon `shared` defined.
    Coupon,
    /// The tenant's first invoice finalized and paid with a card.
    PaidInvoice,
    /// A grant of prepaid credits.
    Credits,
}

/// What the setup made, for building paths and bodies.
#[derive(Debug, Default)]
struct Made {
    /// The second payment method's name.
    method: String,
    /// The waiting transition's id.
    transition: String,
    /// The `hourly_breakdown_query` of the tenant's only usage line.
    query: String,
    /// The tenant's name (operator calls name it in paths, and name new
    /// things after it as `new-<tenant>`).
    tenant: String,
    /// The paid invoice's name.
    invoice: String,
    /// The credit grant's id.
    grant: String,
}

struct Case {
    /// The operationId, so that the cases can be checked against the document.
    op: &'static str,
    method: Method,
    path: fn(&Made) -> String,
    body: fn(&Made) -> Value,
    /// JSON pointers of the messages (not maps: a key added to `labels` or
    /// `object_limits` is data) that get unknown fields; "" is the top level.
    messages: &'static [&'static str],
    needs: Needs,
    /// A read whose answer must also be the same afterwards (the state the
    /// call left).
    then: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    let post = Method::POST;
    vec![
        Case {
            op: "ves.io.schema.quota.API.Create",
            method: post.clone(),
            path: |_| QUOTAS.into(),
            body: |_| quota_body("q", 10),
            messages: &[
                "",
                "/metadata",
                "/spec",
                "/spec/object_limits/virtual_host",
                "/spec/resource_limits/vcpu",
                "/spec/api_limits/ves.io.schema.quota.API.Get",
            ],
            needs: Needs::Nothing,
            then: Some(QUOTA),
        },
        Case {
            op: "ves.io.schema.quota.API.Replace",
            method: Method::PUT,
            path: |_| QUOTA.into(),
            body: |_| quota_body("q", 3),
            messages: &[
                "",
                "/metadata",
                "/spec",
                "/spec/object_limits/virtual_host",
                "/spec/resource_limits/vcpu",
                "/spec/api_limits/ves.io.schema.quota.API.Get",
            ],
            needs: Needs::Quota,
            then: Some(QUOTA),
        },
        Case {
            op: "ves.io.schema.quota.API.Delete",
            method: Method::DELETE,
            path: |_| QUOTA.into(),
            body: |_| json!({"fail_if_referred": true, "name": "q", "namespace": "system"}),
            messages: &[""],
            needs: Needs::Quota,
            then: Some(QUOTAS),
        },
        Case {
            op: "tollgate.quota.Reserve",
            method: post.clone(),
            path: |_| "/api/web/namespaces/system/quota/reserve".into(),
            body: |_| json!({"kind": "virtual_host", "amount": 2, "request_id": "r1"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: Some(QUOTA_USAGE),
        },
        Case {
            op: "tollgate.quota.Release",
            method: post.clone(),
            path: |_| "/api/web/namespaces/system/quota/release".into(),
            body: |_| json!({"resource": "vcpu", "amount": "0.5", "request_id": "r2"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: Some(QUOTA_USAGE),
        },
        Case {
            op: "tollgate.quota.Reconcile",
            method: Method::PUT,
            path: |_| QUOTA_USAGE.into(),
            body: |_| json!({"kind": "origin_pool", "current": 4}),
            messages: &[""],
            needs: Needs::Nothing,
            then: Some(QUOTA_USAGE),
        },
        Case {
            op: "ves.io.schema.subscription.CustomAPI.Subscribe",
            method: post.clone(),
            path: |_| SUBSCRIBE.into(),
            body: |_| json!({"f5xc_waap_standard": {}}),
            messages: &["", "/f5xc_waap_standard"],
            needs: Needs::Nothing,
            then: Some(CURRENT_PLAN),
        },
        Case {
            op: "ves.io.schema.subscription.CustomAPI.Unsubscribe",
            method: post.clone(),
            path: |_| UNSUBSCRIBE.into(),
            body: |_| json!({"f5xc_waap_standard": {}}),
            messages: &["", "/f5xc_waap_standard"],
            needs: Needs::Addon,
            then: Some(CURRENT_PLAN),
        },
        Case {
            op: "ves.io.schema.billing.payment_method.CustomAPI.Create",
            method: post.clone(),
            path: |_| PAYMENT_METHODS.into(),
            body: |_| card("tok-visa-4242"),
            messages: &["", "/contact"],
            needs: Needs::Nothing,
            then: Some(PAYMENT_METHODS),
        },
        Case {
            op: "ves.io.schema.billing.payment_method.CustomAPI.MakePaymentMethodPrimary",
            method: post.clone(),
            path: |m| role_path(&m.method, "primary"),
            body: |m| json!({"name": m.method, "namespace": "system"}),
            messages: &[""],
            needs: Needs::Methods("PAYMENT_METHOD_ROLE_NORMAL"),
            then: Some(PAYMENT_METHODS),
        },
        Case {
            op: "ves.io.schema.billing.payment_method.CustomAPI.MakePaymentMethodSecondary",
            method: post.clone(),
            path: |m| role_path(&m.method, "secondary"),
            body: |m| json!({"name": m.method, "namespace": "system"}),
            messages: &[""],
            needs: Needs::Methods("PAYMENT_METHOD_ROLE_NORMAL"),
            then: Some(PAYMENT_METHODS),
        },
        Case {
            op: "ves.io.schema.billing.payment_method.CustomAPI.SwapPaymentMethodRole",
            method: post.clone(),
            path: |m| role_path(&m.method, "swap-primary"),
            body: |m| json!({"name": m.method, "namespace": "system"}),
            messages: &[""],
            needs: Needs::Methods("PAYMENT_METHOD_ROLE_SECONDARY"),
            then: Some(PAYMENT_METHODS),
        },
        Case {
            op: "ves.io.schema.billing.plan_transition.CustomAPI.InitiatePlanTransition",
            method: post.clone(),
            path: |_| TRANSITION.into(),
            body: |_| to_organization(),
            messages: &["", "/payload", "/payload/billing_address"],
            needs: Needs::Nothing,
            then: Some(CURRENT_PLAN),
        },
        Case {
            op: "tollgate.usage.IngestEvents",
            method: post.clone(),
            path: |_| events_path("system"),
            body: |_| {
                json!({"events": [
                    event("e1", "lb_requests", "lb-1", 120, START),
                    event("e2", "no_such_metric", "lb-1", 1, START),
                ]})
            },
            messages: &["", "/events/0", "/events/1"],
            needs: Needs::Nothing,
            then: None,
        },
        Case {
            op: "ves.io.schema.usage.CustomAggregatedUsageAPI.ListUsageDetails",
            method: post.clone(),
            path: |_| report("system", "usage_details"),
            body: |_| json!({"namespace": "system", "from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}),
            messages: &[""],
            needs: Needs::Usage,
            then: None,
        },
        Case {
            op: "ves.io.schema.usage.CustomAggregatedUsageAPI.ListHourlyUsageDetails",
            method: post.clone(),
            path: |_| report("system", "hourly_usage_details"),
            body: |m| json!({"namespace": "system", "query": m.query}),
            messages: &[""],
            needs: Needs::Usage,
            then: None,
        },
        Case {
            op: "ves.io.schema.usage.CustomCalculatedUsageAPI.ListCurrentUsage",
            method: post.clone(),
            path: |_| report("system", "current_usage"),
            body: |_| json!({"namespace": "system"}),
            messages: &[""],
            needs: Needs::Usage,
            then: None,
        },
        Case {
            op: "ves.io.schema.usage.CustomCalculatedUsageAPI.ListMonthlyUsage",
            method: post.clone(),
            path: |_| report("system", "monthly_usage"),
            body: |_| json!({"namespace": "system"}),
            messages: &[""],
            needs: Needs::Usage,
            then: None,
        },
        Case {
            op: "ves.io.schema.billing.CustomPublicAPI.BillingUsageSummary",
            method: post.clone(),
            path: |_| SUMMARY.into(),
            body: |_| json!({"start_time": "2026-11-20T06:00:00Z", "end_time": "2026-11-20T12:00:00Z"}),
            messages: &[""],
            needs: Needs::Usage,
            then: None,
        },
        Case {
            op: "tollgate.operator.RefundInvoice",
            method: post.clone(),
            path: |m| format!("/api/operator/tenants/{}/invoices/{}/refund", m.tenant, m.invoice),
            body: |_| json!({"amount": "1.00", "reason": "goodwill"}),
            messages: &[""],
            needs: Needs::PaidInvoice,
            then: None,
        },
        Case {
            op: "tollgate.operator.RejectTransition",
            method: post.clone(),
            path: |m| format!("{OPERATOR_TRANSITIONS}/{}/reject", m.transition),
            body: |_| json!({"reason": "no contract yet"}),
            messages: &[""],
            needs: Needs::WaitingTransition,
            then: None,
        },
        Case {
            op: "tollgate.operator.CreateTenant",
            method: post.clone(),
            path: |_| "/api/operator/tenants".into(),
            body: |m| json!({"name": format!("new-{}", m.tenant), "plan": "individual", "since": "2026-11-01T00:00:00Z"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: None,
        },
        Case {
            op: "tollgate.operator.CreateNamespace",
            method: post.clone(),
            path: |m| format!("/api/operator/tenants/{}/namespaces", m.tenant),
            body: |_| json!({"name": "shop"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: None,
        },
        Case {
            op: "tollgate.operator.CreateToken",
            method: post.clone(),
            path: |m| format!("/api/operator/tenants/{}/tokens", m.tenant),
            body: |_| json!({"role": "monitor", "namespaces": ["system"], "expires_in": "3600s", "name": "ci"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: None,
        },
        Case {
            op: "tollgate.operator.CreateOperatorToken",
            method: post.clone(),
            path: |_| "/api/operator/operator-tokens".into(),
            body: |m| json!({"name": format!("new-{}", m.tenant), "role": "operator-read"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: None,
        },
        Case {
            op: "tollgate.operator.ValidateCatalog",
            method: post.clone(),
            path: |_| "/api/operator/catalog/validate".into(),
            body: |_| json!({"source": tollgate_domain::catalog::BUILTIN_TOML, "source_name": "mine.toml"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: None,
        },
        Case {
            op: "tollgate.operator.PublishCatalog",
            method: post.clone(),
            path: |_| "/api/operator/catalog/publish".into(),
            body: |_| json!({"source": tollgate_domain::catalog::BUILTIN_TOML, "source_name": "mine.toml"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: None,
        },
        Case {
            op: "tollgate.operator.SetTenantCurrency",
            method: Method::PUT,
            path: |m| format!("/api/operator/tenants/{}/currency", m.tenant),
            body: |_| json!({"currency": "USD"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: None,
        },
        Case {
            op: "tollgate.operator.SetTenantTax",
            method: Method::PUT,
            path: |m| format!("/api/operator/tenants/{}/tax", m.tenant),
            body: |_| json!({"treatment": "exempt"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: None,
        },
        Case {
            op: "tollgate.operator.ScheduleCatalogMoves",
            method: post.clone(),
            path: |_| "/api/operator/catalog/moves".into(),
            body: |_| json!({"plan": "individual"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: None,
        },
        Case {
            op: "tollgate.operator.CreateCoupon",
            method: post.clone(),
            path: |_| "/api/operator/coupons".into(),
            body: |m| json!({"code": format!("new-{}", m.tenant), "title": "Spring", "percent": "12.5"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: None,
        },
        Case {
            op: "tollgate.operator.ApplyCoupon",
            method: post.clone(),
            path: |m| format!("/api/operator/tenants/{}/coupons", m.tenant),
            body: |_| json!({"code": "shared", "from": "2026-11-01T00:00:00Z"}),
            messages: &[""],
            needs: Needs::Coupon,
            then: None,
        },
        Case {
            op: "tollgate.operator.GrantCredits",
            method: post.clone(),
            path: |m| format!("/api/operator/tenants/{}/credits", m.tenant),
            body: |_| json!({"amount": "5.00", "priority": 3, "reason": "promo"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: Some("/api/web/namespaces/system/billing/credits"),
        },
        Case {
            op: "tollgate.operator.ReverseCredits",
            method: post.clone(),
            path: |m| format!("/api/operator/tenants/{}/credits/{}/reverse", m.tenant, m.grant),
            body: |_| json!({"amount": "1.00", "reason": "correction"}),
            messages: &[""],
            needs: Needs::Credits,
            then: Some("/api/web/namespaces/system/billing/credits/ledger"),
        },
        Case {
            op: "tollgate.billing.SetCreditSettings",
            method: Method::PUT,
            path: |_| "/api/web/namespaces/system/billing/credits/settings".into(),
            body: |_| json!({"low_balance_threshold": "2.50"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: Some("/api/web/namespaces/system/billing/credits"),
        },
        Case {
            op: "tollgate.alerts.CreateAlert",
            method: post.clone(),
            path: |_| "/api/web/namespaces/system/alerts".into(),
            body: |_| json!({"name": "big", "metric": "spend", "threshold": "5000"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: Some("/api/web/namespaces/system/alerts"),
        },
        Case {
            op: "tollgate.webhooks.CreateEndpoint",
            method: post.clone(),
            path: |_| "/api/web/namespaces/system/webhooks".into(),
            body: |_| json!({"url": "https://hooks.example.com/t", "events": ["invoice.paid"], "description": "d"}),
            messages: &[""],
            needs: Needs::Nothing,
            then: Some("/api/web/namespaces/system/webhooks"),
        },
        Case {
            op: "tollgate.operator.CreateWebhookEndpoint",
            method: post.clone(),
            path: |_| "/api/operator/webhooks".into(),
            body: |m| json!({"url": "https://hooks.example.com/o", "tenant": m.tenant, "events": []}),
            messages: &[""],
            needs: Needs::Nothing,
            then: Some("/api/web/namespaces/system/webhooks"),
        },
        Case {
            op: "tollgate.operator.CancelTransition",
            method: post,
            path: |m| format!("{OPERATOR_TRANSITIONS}/{}/cancel", m.transition),
            body: |_| json!({"reason": "the customer asked"}),
            messages: &[""],
            needs: Needs::WaitingTransition,
            then: None,
        },
    ]
}

/// Unknown fields of every JSON type, added to each message of `pointers`.
fn with_unknown_fields(body: &Value, pointers: &[&str]) -> Value {
    let mut out = body.clone();
    for pointer in pointers {
        let target = out
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer:?} is not in {body}"));
        let message = target
            .as_object_mut()
            .unwrap_or_else(|| panic!("{pointer:?} of {body} is not an object"));
        message.insert("future_field".into(), json!(1));
        message.insert("future_text".into(), json!("x"));
        message.insert("future_flag".into(), json!(false));
        message.insert("future_null".into(), Value::Null);
        message.insert("future_list".into(), json!([1, "two", {"three": [3]}]));
        message.insert(
            "future_message".into(),
            json!({"nested": {"deeper": [{"a": 1}]}, "enum": "FUTURE_VALUE"}),
        );
    }
    out
}

/// The answer with the values that differ between two tenants by
/// construction (tenant names, token ids, generated uids, names and ids, and
/// the creation times of payment methods, which the setup spaces out)
/// replaced by placeholders.
fn redacted(resp: &Resp) -> (u16, Value) {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    let volatile = matches!(
                        key.as_str(),
                        "uid"
                            | "tenant"
                            | "creator_id"
                            | "requested_by"
                            | "id"
                            | "hourly_breakdown_query"
                            | "created"
                            | "created_by"
                            | "secret"
                            | "version"
                            | "idempotency_key"
                            | "refund_reference"
                            | "grant"
                            | "seq"
                    );
                    if volatile && !value.is_object() {
                        *value = json!(format!("<{key}>"));
                    } else {
                        walk(value);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::String(s) if s.starts_with("pm-") => *s = "<payment method>".into(),
            Value::String(s) if s.starts_with("new-") => *s = "<new>".into(),
            // A tenant's name in an operator answer.
            Value::String(s) if s.starts_with("plain") || s.starts_with("extra") => *s = "<tenant>".into(),
            _ => {}
        }
    }
    let mut body = resp.body.clone();
    walk(&mut body);
    (resp.status, body)
}

/// Makes what `needs` asks for, for a new tenant `name`; returns its admin
/// token and what was made.
async fn prepare(app: &TestApp, name: &str, needs: Needs) -> (String, Made) {
    let back = tollgate_domain::clock::Clock::now(&*app.clock);
    if let Needs::PaidInvoice = needs {
        // Both tenants of the case on the same periods.
        app.clock.set(ts(START));
    }
    let (_, admin) = app.admin(name).await;
    let mut made = Made {
        tenant: name.to_owned(),
        ..Made::default()
    };
    match needs {
        Needs::Nothing => {}
        Needs::Coupon => {
            let shared = tollgate_store::CouponDef {
                code: "shared".into(),
                title: "Shared".into(),
                discount: tollgate_domain::rating::Discount::Percent(500),
            };
            let exists = app
                .store
                .coupons()
                .await
                .unwrap()
                .iter()
                .any(|c| c.code == "shared");
            if !exists {
                app.store.create_coupon(&shared, "test", ts(START)).await.unwrap();
            }
        }
        Needs::Quota => {
            app.create_quota(&admin, quota_body("q", 10)).await;
        }
        Needs::Addon => {
            app.post(SUBSCRIBE, &admin, json!({"f5xc_waap_standard": {}}))
                .await
                .ok();
        }
        Needs::Methods(role) => {
            add_card(app, &admin, "tok-visa-4242", None).await;
            made.method = add_card(app, &admin, "tok-mc-5555", Some(json!(role))).await;
        }
        Needs::Usage => {
            let events = json!({"events": [event("u1", "lb_requests", "lb-1", 5000, START)]});
            app.post(&events_path("system"), &admin, events).await.ok();
            let details = app
                .post(
                    &report("system", "usage_details"),
                    &admin,
                    json!({"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}),
                )
                .await;
            made.query = details.ok()["usage_items"][0]["hourly_breakdown_query"]
                .as_str()
                .expect("a usage line")
                .to_owned();
        }
        Needs::PaidInvoice => {
            add_card(app, &admin, "tok-visa-4242", None).await;
            app.clock
                .set(ts(START) + jiff::SignedDuration::from_hours(24 * 33));
            app.close_periods().await;
            app.charge().await;
            app.clock.set(back);
            let tenant = app.store.tenant_by_name(name).await.unwrap().unwrap();
            let paid = app.store.invoices(&tenant.id).await.unwrap();
            let first = paid.last().expect("a finalized invoice");
            assert_eq!(
                first.invoice.status,
                tollgate_domain::invoice::InvoiceStatus::Paid
            );
            made.invoice = first.invoice.name.to_string();
        }
        Needs::Credits => {
            let resp = app
                .operator(
                    Method::POST,
                    &format!("/api/operator/tenants/{name}/credits"),
                    Some(json!({"amount": "5.00", "reason": "promo"})),
                )
                .await;
            made.grant = resp.ok()["id"].as_str().unwrap().to_owned();
        }
        Needs::WaitingTransition => {
            let resp = app.post(TRANSITION, &admin, to_organization()).await;
            assert_eq!(resp.ok()["requires_manual_approval"], true);
            made.transition = resp.ok()["id"].as_str().unwrap().to_owned();
        }
    }
    (admin, made)
}

async fn send(app: &TestApp, case: &Case, token: &str, path: &str, body: &Value) -> Resp {
    if case.op.starts_with("tollgate.operator.") {
        let auth = format!("Bearer {OPERATOR_TOKEN}");
        app.request(
            case.method.clone(),
            path,
            None,
            body.to_string(),
            &[("authorization", auth.as_str())],
        )
        .await
    } else {
        app.request(case.method.clone(), path, Some(token), body.to_string(), &[])
            .await
    }
}

#[tokio::test]
async fn every_body_with_unknown_fields_gets_the_answer_it_gets_without_them() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        for (i, case) in cases().iter().enumerate() {
            let (plain_token, plain_made) = prepare(&app, &format!("plain{i}"), case.needs).await;
            let (extra_token, extra_made) = prepare(&app, &format!("extra{i}"), case.needs).await;
            let plain_body = (case.body)(&plain_made);
            let extra_body = with_unknown_fields(&(case.body)(&extra_made), case.messages);
            let plain = send(&app, case, &plain_token, &(case.path)(&plain_made), &plain_body).await;
            assert_eq!(
                plain.status, 200,
                "{}: the plain body must succeed: {}",
                case.op, plain.body
            );
            let extra = send(&app, case, &extra_token, &(case.path)(&extra_made), &extra_body).await;
            assert_eq!(
                redacted(&extra),
                redacted(&plain),
                "{}: {extra_body} answered differently from {plain_body}",
                case.op
            );
            if let Some(read) = case.then {
                let plain_state = app.get(read, &plain_token).await;
                let extra_state = app.get(read, &extra_token).await;
                assert_eq!(plain_state.status, 200, "{}: {}", case.op, plain_state.body);
                assert_eq!(
                    redacted(&extra_state),
                    redacted(&plain_state),
                    "{}: GET {read} differs after the call",
                    case.op
                );
            }
        }
    })
    .await;
}

/// Every operation of the served document that reads a body has a case above.
#[tokio::test]
async fn every_operation_with_a_body_has_a_case() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let doc = app
            .request(Method::GET, "/openapi.json", None, Body::empty(), &[])
            .await;
        let mut with_body = BTreeSet::new();
        for item in doc.ok()["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                // A provider's webhook carries the provider's event, signed:
                // every field it has beyond those read is expected, and the
                // webhook tests send real ones (tollgate's tests/cli/stripe.rs).
                let id = op["operationId"].as_str().unwrap();
                if op.get("requestBody").is_some() && id != "tollgate.webhooks.Stripe" {
                    with_body.insert(id.to_owned());
                }
            }
        }
        let covered: BTreeSet<String> = cases().iter().map(|c| c.op.to_owned()).collect();
        assert_eq!(covered, with_body);
    })
    .await;
}

/// The add-on one-of still needs exactly one add-on: unknown fields do not
/// count, at the top level or inside the chosen add-on.
#[tokio::test]
async fn unknown_fields_do_not_count_towards_the_addon_one_of() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let team = app.tenant_on("acme", "team").await;
        let admin = app.token(&team, Role::Admin).await;
        for path in [SUBSCRIBE, UNSUBSCRIBE] {
            let ok = app
                .post(path, &admin, json!({"f5xc_waap_advanced": {}, "future_field": 1}))
                .await;
            assert_eq!(ok.ok(), &json!({}), "{path}");
            let ok = app
                .post(path, &admin, json!({"f5xc_waap_advanced": {"future_field": 1}}))
                .await;
            assert_eq!(ok.ok(), &json!({}), "{path}");
            let msg = app
                .post(path, &admin, json!({"future_field": 1}))
                .await
                .error(400, 3)
                .to_owned();
            assert!(msg.starts_with("addon_choice: exactly one of"), "{path}: {msg}");
            let msg = app
                .post(
                    path,
                    &admin,
                    json!({"f5xc_waap_advanced": {}, "f5xc_appstack_standard": {}, "future_field": {}}),
                )
                .await
                .error(400, 3)
                .to_owned();
            assert!(
                msg.starts_with("addon_choice: exactly one add-on field is allowed")
                    && !msg.contains("future_field"),
                "{path}: {msg}"
            );
        }
    })
    .await;
}
