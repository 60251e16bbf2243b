//! The generated OpenAPI document: against the contract, and against what
//! the server answers (the harness also checks that every status the suite
//! sees an operation answer is documented for it).

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::Method;
use serde_json::{Value, json};
use tollgate_api::operations::Operation;
use tollgate_domain::Reason;
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::support::{OPERATOR_TOKEN, Resp, TestApp};

const CONTRACT: &str = include_str!("../../../../contract/billing_and_usage.openapi.json");

/// Contract operations not served yet; each later issue shrinks this list.
const NOT_YET: &[&str] = &[];

/// (method, path) → operation of an OpenAPI document.
fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("operationId").is_some() {
                out.insert((method.clone(), path.clone()), op.clone());
            }
        }
    }
    out
}

/// Top-level property names of the 200 response (or request body) schema.
fn properties(doc: &Value, op: &Value, pointer: &str) -> Option<BTreeSet<String>> {
    let mut schema = op.pointer(pointer)?.clone();
    for _ in 0..4 {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let name = reference.rsplit('/').next()?;
        schema = doc["components"]["schemas"][name].clone();
    }
    Some(schema.get("properties")?.as_object()?.keys().cloned().collect())
}

#[tokio::test]
async fn the_served_document_matches_the_contract_for_every_served_operation() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let served = app
            .request(Method::GET, "/openapi.json", None, Body::empty(), &[])
            .await;
        let ours = served.ok();
        let contract: Value = serde_json::from_str(CONTRACT).unwrap();
        let our_ops = operations(ours);
        let mut missing = Vec::new();
        for (key, op) in operations(&contract) {
            let id = op["operationId"].as_str().unwrap();
            let Some(mine) = our_ops.get(&key) else {
                missing.push(id.to_owned());
                continue;
            };
            assert_eq!(mine["operationId"], op["operationId"], "{key:?}");
            for pointer in [
                "/responses/200/content/application~1json/schema",
                "/requestBody/content/application~1json/schema",
            ] {
                let theirs = properties(&contract, &op, pointer);
                let ours_props = properties(ours, mine, pointer);
                if let Some(theirs) = theirs {
                    assert_eq!(ours_props, Some(theirs), "{id}: properties of {pointer}");
                }
            }
        }
        missing.sort();
        let mut expected: Vec<String> = NOT_YET.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(missing, expected, "contract operations served vs. not yet served");
        // Every served contract operation is in the operation table, and vice versa.
        let served_ids: BTreeSet<&str> = our_ops
            .values()
            .filter_map(|o| o["operationId"].as_str())
            .collect();
        for op in Operation::ALL {
            assert!(served_ids.contains(op.id()), "{} is not documented", op.id());
        }
    })
    .await;
}

/// Where a schema (following `$ref`s) allows `null`: the places found, as
/// paths from `at`.
fn nullable_places(
    doc: &Value,
    schema: &Value,
    at: String,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<String>,
) {
    match schema {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                if seen.insert(reference.to_owned()) {
                    let name = reference.rsplit('/').next().unwrap();
                    let target = &doc["components"]["schemas"][name];
                    nullable_places(doc, target, format!("{at} -> {name}"), seen, out);
                }
                return;
            }
            let null_type = match map.get("type") {
                Some(Value::String(t)) => t == "null",
                Some(Value::Array(types)) => types.iter().any(|t| t == "null"),
                _ => false,
            };
            if null_type || map.get("nullable") == Some(&Value::Bool(true)) {
                out.push(at.clone());
            }
            for (key, value) in map {
                nullable_places(doc, value, format!("{at}/{key}"), seen, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                nullable_places(doc, item, format!("{at}/{i}"), seen, out);
            }
        }
        _ => {}
    }
}

/// No response Tollgate sends carries `null` (the test harness checks every
/// response of the suite), so its document does not promise one either.
#[tokio::test]
async fn no_response_schema_allows_null() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let served = app
            .request(Method::GET, "/openapi.json", None, Body::empty(), &[])
            .await;
        let doc = served.ok();
        let mut places = Vec::new();
        for ((method, path), op) in operations(doc) {
            for (status, response) in op["responses"].as_object().unwrap() {
                let mut seen = BTreeSet::new();
                nullable_places(
                    doc,
                    &response["content"],
                    format!("{method} {path} {status}"),
                    &mut seen,
                    &mut places,
                );
            }
        }
        assert_eq!(places, Vec::<String>::new(), "response schemas that allow null");
    })
    .await;
}

async fn served(app: &TestApp) -> Value {
    app.request(Method::GET, "/openapi.json", None, Body::empty(), &[])
        .await
        .ok()
        .clone()
}

/// Who calls an operation, from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tenant,
    Operator,
    Public,
    Probe,
}

fn kind(path: &str) -> Kind {
    if path.starts_with("/api/web/") || path.starts_with("/api/data/") {
        Kind::Tenant
    } else if path.starts_with("/api/operator/") {
        Kind::Operator
    } else if path.starts_with("/no_auth/") {
        Kind::Public
    } else {
        Kind::Probe
    }
}

/// The namespace of a path is a parameter (not the fixed `system`).
fn namespaced(path: &str) -> bool {
    path.split('/')
        .any(|s| s.starts_with('{') && s.ends_with("namespace}"))
}

/// What every operation of its kind must document, restated from the
/// error model: the middleware answers 500 (panic) and 504 (timeout)
/// anywhere; 503 wherever the database is read; tokens give 401/403 and
/// the tenant's API limits 429; a namespace in the path can be invalid
/// (400) or unknown (404); a body can be invalid (400) or too large (413).
fn required_statuses(path: &str, has_body: bool) -> BTreeSet<u16> {
    let mut out = BTreeSet::from([500, 504]);
    match kind(path) {
        Kind::Tenant => out.extend([401, 403, 429, 503]),
        Kind::Operator => out.extend([401, 403, 503]),
        Kind::Public => out.extend([503]),
        Kind::Probe => {}
    }
    if path == "/readyz" {
        out.insert(503);
    }
    if kind(path) == Kind::Tenant && namespaced(path) {
        out.extend([400, 404]);
    }
    if has_body {
        out.extend([400, 413]);
    }
    out
}

#[tokio::test]
async fn every_response_has_a_description_and_every_error_the_error_body() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let doc = served(&app).await;
        for ((method, path), op) in operations(&doc) {
            for (status, response) in op["responses"].as_object().unwrap() {
                let description = response["description"].as_str().unwrap_or("");
                assert!(
                    !description.trim().is_empty(),
                    "{method} {path} {status}: no description"
                );
                if status != "200" {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
        let error_body = &doc["components"]["schemas"]["ErrorBody"];
        let fields: BTreeSet<&str> = error_body["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, BTreeSet::from(["code", "details", "message"]));
        // `details` is exactly one google.rpc.ErrorInfo, its reasons listed.
        let details = &error_body["properties"]["details"];
        assert_eq!(details["type"], "array", "{details}");
        assert_eq!(
            (&details["minItems"], &details["maxItems"]),
            (&json!(1), &json!(1))
        );
        assert_eq!(
            details["items"]["$ref"], "#/components/schemas/ErrorInfo",
            "{details}"
        );
        let info = &doc["components"]["schemas"]["ErrorInfo"];
        let fields: BTreeSet<&str> = info["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, BTreeSet::from(["@type", "reason", "domain", "metadata"]));
        assert_eq!(info["required"], json!(["@type", "reason", "domain", "metadata"]));
        assert_eq!(
            info["properties"]["@type"]["enum"],
            json!(["type.googleapis.com/google.rpc.ErrorInfo"])
        );
        assert_eq!(info["properties"]["domain"]["enum"], json!(["tollgate"]));
        let reasons: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(info["properties"]["reason"]["enum"], json!(reasons));
        assert_eq!(
            info["properties"]["metadata"]["additionalProperties"]["type"], "string",
            "{info}"
        );
    })
    .await;
}

#[tokio::test]
async fn every_operation_documents_the_statuses_of_its_kind() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let doc = served(&app).await;
        let ops = operations(&doc);
        assert!(ops.len() >= 38, "{} operations", ops.len());
        for ((method, path), op) in ops {
            let documented: BTreeSet<u16> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|s| s.parse().unwrap())
                .collect();
            let required = required_statuses(&path, op.get("requestBody").is_some());
            let missing: Vec<_> = required.difference(&documented).collect();
            assert!(
                missing.is_empty(),
                "{method} {path} does not document {missing:?}"
            );
            assert!(documented.contains(&200), "{method} {path}");
            // Throttled and unavailable answers say when to come back.
            for status in ["429", "503"] {
                if kind(&path) != Kind::Probe && documented.contains(&status.parse().unwrap()) {
                    let header = &op["responses"][status]["headers"]["Retry-After"];
                    assert_eq!(header["schema"]["type"], "integer", "{method} {path} {status}");
                }
            }
        }
    })
    .await;
}

/// A concrete path for a template: `ns` for the namespace, placeholders
/// for other parameters.
fn concrete(template: &str, ns: &str) -> String {
    template
        .split('/')
        .map(|s| match s {
            s if s.starts_with('{') && s.ends_with("namespace}") => ns.to_owned(),
            "{id}" => uuid::Uuid::new_v4().to_string(),
            s if s.starts_with('{') => "x".to_owned(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn call(app: &TestApp, method: &str, path: &str, auth: Option<&str>, body: Option<String>) -> Resp {
    let method: Method = method.to_ascii_uppercase().parse().unwrap();
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    let body = body.map_or_else(Body::empty, Body::from);
    app.request(method, path, None, body, &headers).await
}

/// Each operation answers the common errors of its kind that a request can
/// cause (500, 503 and 504 need faults; errors.rs covers the middleware's),
/// and the harness checks each answer is documented for the operation.
#[tokio::test]
async fn every_operation_answers_the_common_errors_of_its_kind() {
    each_backend(|db| async move {
        let mut app = TestApp::new(db).await;
        let doc = served(&app).await;
        let ops = operations(&doc);
        // Tenant A: what an admin token and a token scoped to another
        // namespace get.
        let (acme, admin) = app.admin("acme").await;
        app.namespace(&acme, "shop").await;
        let scoped = app.token_with(&acme, Role::Admin, &["shop"], None).await;
        // Tenant B: one call per minute of every operation.
        let (bravo, bravo_admin) = app.admin("bravo").await;
        app.namespace(&bravo, "shop").await;
        let bravo_scoped = app.token_with(&bravo, Role::Admin, &["shop"], None).await;
        let once_a_minute: serde_json::Map<String, Value> = ops
            .iter()
            .filter(|((_, path), _)| kind(path) == Kind::Tenant)
            .map(|(_, op)| {
                let id = op["operationId"].as_str().unwrap().to_owned();
                (id, json!({"rate": 1, "burst": 1, "unit": "MINUTE"}))
            })
            .collect();
        app.create_quota(
            &bravo_admin,
            json!({"metadata": {"name": "slow"}, "spec": {"api_limits": once_a_minute}}),
        )
        .await;
        let api_token = |t: &str| format!("APIToken {t}");
        let huge = format!(
            "{{\"pad\": \"{}\"}}",
            "x".repeat(tollgate_api::extract::MAX_BODY_BYTES)
        );
        for ((method, path), op) in &ops {
            let has_body = op.get("requestBody").is_some();
            let body = has_body.then(|| "{}".to_owned());
            let what = format!("{method} {path}");
            match kind(path) {
                Kind::Tenant => {
                    let here = concrete(path, "system");
                    call(&app, method, &here, None, body.clone()).await.error(401, 16);
                    let forbidden = call(&app, method, &here, Some(&api_token(&scoped)), body.clone()).await;
                    forbidden.error(403, 7);
                    if namespaced(path) {
                        let unknown = concrete(path, "nowhere");
                        call(&app, method, &unknown, Some(&api_token(&admin)), body.clone())
                            .await
                            .error(404, 5);
                        let invalid = concrete(path, "Not_A_Name");
                        call(&app, method, &invalid, Some(&api_token(&admin)), body.clone())
                            .await
                            .error(400, 3);
                    }
                    if has_body {
                        let big =
                            call(&app, method, &here, Some(&api_token(&admin)), Some(huge.clone())).await;
                        assert!(
                            matches!(big.status, 400 | 413),
                            "{what}: {} {}",
                            big.status,
                            big.body
                        );
                    }
                    // Refused callers spend nothing; an authorized caller's
                    // second call in the minute is throttled (the create of
                    // `slow` itself spent Create's).
                    for _ in 0..3 {
                        call(&app, method, &here, Some(&api_token(&bravo_scoped)), body.clone())
                            .await
                            .error(403, 7);
                    }
                    let mut throttled =
                        call(&app, method, &here, Some(&api_token(&bravo_admin)), body.clone()).await;
                    if throttled.status != 429 {
                        throttled =
                            call(&app, method, &here, Some(&api_token(&bravo_admin)), body.clone()).await;
                    }
                    throttled.error(429, 8);
                    assert!(throttled.headers.contains_key("retry-after"), "{what}");
                }
                Kind::Operator => {
                    let here = concrete(path, "system");
                    call(&app, method, &here, None, body.clone()).await.error(401, 16);
                    let wrong = call(&app, method, &here, Some("Bearer not-the-token"), body.clone()).await;
                    wrong.error(401, 16);
                    if has_body {
                        let operator = format!("Bearer {OPERATOR_TOKEN}");
                        let big = call(&app, method, &here, Some(&operator), Some(huge.clone())).await;
                        assert!(
                            matches!(big.status, 400 | 413),
                            "{what}: {} {}",
                            big.status,
                            big.body
                        );
                    }
                }
                Kind::Public | Kind::Probe => {}
            }
        }
        // Without an operator credential the operator API is off: 403.
        let state = tollgate_api::AppState::new(app.store.clone(), app.clock.clone());
        app.router = tollgate_api::with_middleware(tollgate_api::routes().with_state(state));
        for (method, path) in ops.keys().filter(|(_, path)| kind(path) == Kind::Operator) {
            let operator = format!("Bearer {OPERATOR_TOKEN}");
            let body = Some("{}".to_owned());
            call(&app, method, &concrete(path, "system"), Some(&operator), body)
                .await
                .error(403, 7);
        }
    })
    .await;
}
