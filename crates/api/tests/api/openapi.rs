//! The generated OpenAPI document against the contract.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::Method;
use serde_json::Value;
use tollgate_api::operations::Operation;
use tollgate_testkit::each_backend;

use crate::support::TestApp;

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
