//! The contract-fuzzing gate: schemathesis against a live `tollgate serve`,
//! once with the contract and once with the server's own `/openapi.json`.
//!
//! It runs when [`SCHEMATHESIS_VAR`] names a schemathesis executable (`.ci/run`
//! installs the pinned version and sets it); without it each test says it is
//! skipped and why, so that `cargo test` passes on a machine with only the Rust
//! toolchain. Each run gets its own server on a fresh SQLite database with real
//! objects to find (namespaces, a quota object, payment methods, invoices,
//! plan transitions, usage), and fails with schemathesis's report on any 5xx,
//! undocumented status, other content type or body outside its schema.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{BufReader, Lines};
use tokio::process::{ChildStderr, Command};
use tollgate_testkit::{Backend, TestDatabase};

use crate::support::{Http, Server, expect_ok, tenant_with_admin, tollgate};

/// Names the schemathesis executable; the gate is skipped without it.
pub const SCHEMATHESIS_VAR: &str = "TOLLGATE_TEST_SCHEMATHESIS";

/// Extra `schemathesis run` arguments, whitespace-separated, for longer local
/// runs (e.g. `--max-examples 500 --seed 7`); CI sets none.
pub const EXTRA_ARGS_VAR: &str = "TOLLGATE_TEST_SCHEMATHESIS_ARGS";

/// schemathesis's settings: seed, cases per operation, checks, dictionaries, auth.
const CONFIG: &str = include_str!("contract_fuzz/schemathesis.toml");

const CONTRACT: &str = include_str!("../../../../contract/billing_and_usage.openapi.json");

/// Wall-clock bound of one schemathesis run (each takes about a minute on an
/// idle two-core machine with the debug build).
const BUDGET: Duration = Duration::from_secs(6 * 60);

/// The bound when [`EXTRA_ARGS_VAR`] asks for a longer run.
const LONG_BUDGET: Duration = Duration::from_secs(60 * 60);

/// The environment variables the configuration reads the tokens from.
const ADMIN_TOKEN_VAR: &str = "TOLLGATE_FUZZ_ADMIN_TOKEN";
const OPERATOR_TOKEN_VAR: &str = "TOLLGATE_FUZZ_OPERATOR_TOKEN";

#[tokio::test]
async fn the_server_keeps_to_its_own_openapi_document_under_fuzzing() {
    let Some(schemathesis) = schemathesis("the server's /openapi.json") else {
        return;
    };
    let target = Target::start().await;
    let (_, mut served) = Http::new()
        .call("GET", &format!("{}/openapi.json", target.base), None, None)
        .await;
    assert!(served.is_object(), "GET /openapi.json: {served}");
    undot_path_parameters(&mut served);
    target.add_examples(&mut served);
    target.fuzz(&schemathesis, "served", &served).await;
}

#[tokio::test]
async fn the_server_keeps_to_the_contract_under_fuzzing() {
    let Some(schemathesis) = schemathesis("the contract") else {
        return;
    };
    let target = Target::start().await;
    let mut contract: Value = serde_json::from_str(CONTRACT).expect("the contract is JSON");
    undot_path_parameters(&mut contract);
    contract_quirks(&mut contract);
    target.add_examples(&mut contract);
    target.fuzz(&schemathesis, "contract", &contract).await;
}

/// The allowlist touches what it says and nothing else: error bodies, the
/// 400s, and length bounds the validation rules do not state. Runs without
/// schemathesis.
#[test]
fn the_contract_allowlist_changes_only_error_bodies_400s_and_unstated_lengths() {
    let original: Value = serde_json::from_str(CONTRACT).unwrap();
    let mut allowed = original.clone();
    contract_quirks(&mut allowed);

    let mut operations = 0;
    for item in allowed["paths"].as_object().unwrap().values() {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "put", "post", "delete"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.contains_key("400"), "{method}: {responses:?}");
            for (status, response) in responses.iter().filter(|(s, _)| !s.starts_with('2')) {
                let schema = &response["content"]["application/json"]["schema"];
                assert_eq!(
                    schema["required"],
                    json!(["code", "details", "message"]),
                    "{method} {status}"
                );
            }
        }
    }
    assert_eq!(operations, 26, "every contract operation");

    // Apart from those, the contract is as published.
    let without_errors_and_lengths = |doc: &Value| {
        let mut doc = doc.clone();
        for item in doc["paths"].as_object_mut().unwrap().values_mut() {
            for operation in item.as_object_mut().unwrap().values_mut() {
                if let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) {
                    responses.retain(|status, _| status.starts_with('2'));
                }
            }
        }
        drop_unstated_length_bounds(&mut doc);
        doc
    };
    assert!(
        without_errors_and_lengths(&original) == without_errors_and_lengths(&allowed),
        "the allowlist changed more than error bodies, 400s and length bounds"
    );
    // A bound the validation rules state stays (`max_bytes` of descriptions).
    let description =
        &allowed["components"]["schemas"]["schemaObjectCreateMetaType"]["properties"]["description"];
    assert_eq!(description["maxLength"], 1200, "{description}");
    assert!(description.get("minLength").is_none(), "{description}");
}

#[test]
fn dotted_path_parameters_are_renamed_in_paths_and_parameter_lists() {
    let mut contract: Value = serde_json::from_str(CONTRACT).unwrap();
    undot_path_parameters(&mut contract);
    let replace =
        &contract["paths"]["/api/web/namespaces/{metadata_namespace}/quotas/{metadata_name}"]["put"];
    let names: Vec<&str> = replace["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "path")
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["metadata_namespace", "metadata_name"]);
    assert!(!contract["paths"].to_string().contains("{metadata."));
}

/// The schemathesis executable, or `None` (after saying so) when the gate is
/// not enabled. Set but missing is a failure, never a skip.
fn schemathesis(document: &str) -> Option<PathBuf> {
    let Some(path) = std::env::var_os(SCHEMATHESIS_VAR).filter(|p| !p.is_empty()) else {
        eprintln!(
            "SKIPPED: contract fuzzing against {document}: {SCHEMATHESIS_VAR} is not set. It names a \
             schemathesis executable; .ci/run installs the pinned version and sets it (see README, \
             \"Contract fuzzing\")."
        );
        return None;
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{SCHEMATHESIS_VAR}={} does not exist; run .ci/run (which installs it) or unset the variable",
        path.display()
    );
    Some(path)
}

/// Renames the path parameters `metadata.namespace` and `metadata.name` of
/// the quota create/replace routes to `metadata_namespace`, `metadata_name`
/// (in paths and parameter lists). A dot is valid in an OpenAPI template
/// name, but schemathesis 4.32 fills templates with Python's `str.format`,
/// which reads it as attribute access and errors on both operations. The
/// server never sees these names; only the generated values.
fn undot_path_parameters(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let renamed: serde_json::Map<String, Value> = std::mem::take(paths)
        .into_iter()
        .map(|(path, mut item)| {
            if let Some(item) = item.as_object_mut() {
                for operation in item.values_mut() {
                    let Some(params) = operation.get_mut("parameters").and_then(Value::as_array_mut) else {
                        continue;
                    };
                    for param in params {
                        if param["in"] == "path"
                            && let Some(name) = param["name"].as_str()
                        {
                            param["name"] = Value::from(name.replace("metadata.", "metadata_"));
                        }
                    }
                }
            }
            (path.replace("{metadata.", "{metadata_"), item)
        })
        .collect();
    *paths = renamed;
}

/// The allowlist: what the contract says that is a quirk of the contract, not
/// a promise Tollgate breaks. Each entry rewrites the harness's copy of the
/// contract so that the check still runs everywhere else.
fn contract_quirks(contract: &mut Value) {
    // 1. The contract types every error body as a JSON string (`{"type": "string"}`
    //    for 401, 403, 404, 409, 429, 500, 503, 504); the real API, and PRODUCT.md's
    //    wire conventions, answer `{"code", "details", "message"}`. Error bodies are
    //    checked against that shape instead.
    // 2. The contract documents no 400: every operation refuses an invalid namespace,
    //    body or parameter with 400, as the real API does. It is added with the error
    //    shape.
    let error_body = json!({
        "type": "object",
        "required": ["code", "details", "message"],
        "properties": {
            "code": {"type": "integer"},
            "details": {"type": "array"},
            "message": {"type": "string"}
        }
    });
    for item in contract["paths"].as_object_mut().expect("paths").values_mut() {
        for (method, operation) in item.as_object_mut().expect("path item") {
            if !["get", "put", "post", "delete"].contains(&method.as_str()) {
                continue;
            }
            let responses = operation["responses"].as_object_mut().expect("responses");
            for (status, response) in responses.iter_mut() {
                if !status.starts_with('2') {
                    response["content"] = json!({"application/json": {"schema": error_body.clone()}});
                }
            }
            responses.insert(
                "400".into(),
                json!({
                    "description": "Invalid argument (allowlisted: the contract documents no 400).",
                    "content": {"application/json": {"schema": error_body.clone()}}
                }),
            );
        }
    }
    // 3. String lengths: the enrichment put `minLength`/`maxLength` on fields from values
    //    it saw or guessed (`x-reconciled-from-discovery`, `x-f5xc-constraints` "inferred"),
    //    not from the API's validation rules, and they refuse real values: the plan name
    //    `free` and title `Free` (minLength 6), the namespace `shop` (6), `STATUS_PENDING`
    //    (17), a usage value `8` (3), a base64 invoice PDF (maxLength 1024). A bound is kept
    //    only where `x-ves-validation-rules` (the ground truth, PRODUCT.md) states one.
    drop_unstated_length_bounds(&mut contract["components"]);
    drop_unstated_length_bounds(&mut contract["paths"]);
}

fn drop_unstated_length_bounds(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let rules = map
                .get("x-ves-validation-rules")
                .map(Value::to_string)
                .unwrap_or_default();
            if !rules.contains("min_len") && !rules.contains("min_bytes") {
                map.remove("minLength");
            }
            if !rules.contains("max_len") && !rules.contains("max_bytes") {
                map.remove("maxLength");
            }
            map.values_mut().for_each(drop_unstated_length_bounds);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_unstated_length_bounds),
        _ => {}
    }
}

/// A server on a fresh SQLite database, with real objects for schemathesis to find.
struct Target {
    _db: TestDatabase,
    server: tokio::process::Child,
    base: String,
    log: tokio::task::JoinHandle<Vec<String>>,
    admin: String,
    operator: String,
    /// `name = values` of the dictionaries the configuration names.
    dictionaries: Vec<(&'static str, Vec<String>)>,
    // Real ids for the examples (`add_examples`).
    secondary_method: String,
    /// A payment method without a role, for deletes (as the quota object `doomed`).
    doomed_method: String,
    invoice: String,
    finished_transition: String,
    waiting_transition: String,
    hourly_query: String,
}

const API: &str = "/api/web/namespaces";

impl Target {
    async fn start() -> Self {
        let db = TestDatabase::create(&Backend::Sqlite).await;
        let admin = tenant_with_admin(&db, "acme").await;
        for namespace in ["shop", "default"] {
            expect_ok(tollgate(&db, &["namespace", "create", "--tenant", "acme", namespace]).await);
        }
        let globex = tenant_with_admin(&db, "globex").await;
        let operator = format!("op-{}", uuid::Uuid::new_v4().simple());
        // Warnings and errors only: every 5xx is logged, and the pipe is drained below.
        let Server {
            child: server,
            base,
            stderr,
            ..
        } = Server::start_with(&db, "warn", &["--operator-token", &operator]).await;
        let log = tokio::spawn(keep_log_tail(stderr));

        let http = Http::new();
        let call = |method: &'static str, path: String, token: &str, body: Option<Value>| {
            let (http, url, token) = (http.clone(), format!("{base}{path}"), token.to_owned());
            async move {
                let (status, body) = http.call(method, &url, Some(&token), body).await;
                assert_eq!(status, 200, "{method} {url}: {body}");
                body
            }
        };
        // The contract's examples name a quota object `example`.
        call(
            "POST",
            format!("{API}/system/quotas"),
            &admin,
            Some(
                json!({"metadata": {"name": "example"}, "spec": {"object_limits": {"site": {"maximum": 5}}}}),
            ),
        )
        .await;
        // Examples delete these, not the objects other examples use.
        call(
            "POST",
            format!("{API}/system/quotas"),
            &admin,
            Some(json!({"metadata": {"name": "doomed"}, "spec": {}})),
        )
        .await;
        // acme moves to the team plan (a finished transition, a primary payment method, a
        // trial period and its invoice) and adds a secondary payment method.
        let to_team = call(
            "POST",
            format!("{API}/system/billing/plan_transition"),
            &admin,
            Some(json!({"new_plan": "team", "payload": {"payment_provider_token": "tok-visa-4242"}})),
        )
        .await;
        let to_team = to_team["id"].as_str().expect("transition id").to_owned();
        wait_for_transition(&http, &base, &to_team, "STATE_FINISHED").await;
        call(
            "POST",
            format!("{API}/system/billing/payment_methods"),
            &admin,
            Some(json!({"token": "tok-mastercard-4444", "role": "PAYMENT_METHOD_ROLE_SECONDARY"})),
        )
        .await;
        let doomed_method = call(
            "POST",
            format!("{API}/system/billing/payment_methods"),
            &admin,
            Some(json!({"token": "tok-discover-0003"})),
        )
        .await;
        let doomed_method = doomed_method["name"].as_str().expect("name").to_owned();
        // globex asks for the organization plan, which waits for the operator.
        let to_organization = call(
            "POST",
            format!("{API}/system/billing/plan_transition"),
            &globex,
            Some(json!({"new_plan": "organization", "payload": {
                "domain": "globex.com",
                "billing_address": {"address1": "1 Main St", "city": "Seattle", "country": "US"}
            }})),
        )
        .await;
        let to_organization = to_organization["id"].as_str().expect("transition id").to_owned();
        // Usage in two namespaces, so that every report has lines.
        let now = jiff::Timestamp::now().to_string();
        for (namespace, metric, object, quantity) in [
            ("shop", "lb_requests", "lb-web", json!(7_300_000)),
            ("shop", "lb_data_transfer", "lb-web", json!("2.5e9")),
            ("system", "site_vcpus", "site-1", json!(8)),
        ] {
            call(
                "POST",
                format!("/api/data/namespaces/{namespace}/usage/events"),
                &admin,
                Some(json!({"events": [{
                    "id": format!("{namespace}-{metric}"), "metric_label": metric,
                    "object_name": object, "quantity": quantity, "timestamp": now
                }]})),
            )
            .await;
        }

        let strings = |v: &Value, list: &str, field: &str| -> Vec<String> {
            v[list]
                .as_array()
                .unwrap_or_else(|| panic!("{list}: {v}"))
                .iter()
                .map(|item| item[field].as_str().expect(field).to_owned())
                .collect()
        };
        let methods = call(
            "GET",
            format!("{API}/system/billing/payment_methods"),
            &admin,
            None,
        )
        .await;
        let invoices = call(
            "GET",
            format!("{API}/system/usage/invoices/custom_list"),
            &admin,
            None,
        )
        .await;
        let details = call(
            "POST",
            format!("{API}/system/usage_details"),
            &admin,
            Some(json!({})),
        )
        .await;
        let secondary_method = methods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["role"] == "PAYMENT_METHOD_ROLE_SECONDARY")
            .and_then(|m| m["name"].as_str())
            .unwrap_or_else(|| panic!("a secondary payment method: {methods}"))
            .to_owned();
        let methods = strings(&methods, "items", "name");
        let invoices = strings(&invoices, "invoices", "name");
        let queries = strings(&details, "usage_items", "hourly_breakdown_query");
        assert_eq!(
            methods.len(),
            3,
            "primary, secondary and role-less payment methods"
        );
        assert!(!invoices.is_empty() && !queries.is_empty(), "{details}");
        let mut names = vec!["example".to_owned(), "doomed".to_owned()];
        names.extend(methods.iter().cloned());
        names.extend(invoices.iter().cloned());
        Self {
            _db: db,
            server,
            base,
            log,
            admin,
            operator,
            secondary_method,
            doomed_method: doomed_method.clone(),
            invoice: invoices[0].clone(),
            finished_transition: to_team.clone(),
            waiting_transition: to_organization.clone(),
            hourly_query: queries[0].clone(),
            dictionaries: vec![
                (
                    "namespaces",
                    ["system", "shop", "default"].map(String::from).to_vec(),
                ),
                ("names", names),
                ("transition-ids", vec![to_team, to_organization]),
                ("hourly-queries", queries),
                ("doomed", vec!["doomed".to_owned(), doomed_method]),
            ],
        }
    }

    /// Gives every operation of `doc` an example request that succeeds on this
    /// server (real ids, valid bodies), which schemathesis's examples phase
    /// sends first: so each operation's success answer is checked against its
    /// schema at least once, however rarely generated data gets that far.
    /// Examples constrain nothing; the generated cases that follow are as
    /// before.
    fn add_examples(&self, doc: &mut Value) {
        let now = jiff::Timestamp::now().to_string();
        let paths = doc["paths"].as_object_mut().expect("paths");
        for (path, item) in paths.iter_mut() {
            for (method, operation) in item.as_object_mut().expect("path item") {
                let Some(operation) = operation.as_object_mut() else {
                    continue;
                };
                for param in operation
                    .get_mut("parameters")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    let name = param["name"].as_str().unwrap_or_default();
                    let example = match (param["in"].as_str().unwrap_or_default(), name) {
                        ("path", "namespace" | "metadata_namespace") => "system",
                        ("path", "metadata_name") => "example",
                        ("path", "name") if method == "delete" && path.contains("/payment_method") => {
                            &self.doomed_method
                        }
                        ("path", "name") if method == "delete" => "doomed",
                        ("path", "name") if path.contains("/payment_method") => &self.secondary_method,
                        ("path", "name") => "example",
                        ("path", "id") => &self.waiting_transition,
                        ("query", "id") => &self.finished_transition,
                        ("query", "name") => &self.invoice,
                        _ => continue,
                    };
                    param["example"] = Value::from(example);
                }
                let body = match (method.as_str(), path.rsplit('/').next().unwrap_or_default()) {
                    ("post", "quotas") => json!({
                        "metadata": {"name": "fuzz-example", "namespace": "system", "labels": {"team": "a"}},
                        "spec": {
                            "object_limits": {"virtual_host": {"maximum": 10}},
                            "resource_limits": {"vcpu": {"maximum": 2.5}},
                            "api_limits": {"ves.io.schema.quota.API.Get": {"rate": 100, "burst": 0, "unit": "SECOND"}}
                        }
                    }),
                    ("put", "{metadata_name}") => json!({
                        // No name: schemathesis may use this body with the name of an
                        // object it created, and a body's name must match the path's.
                        "metadata": {"namespace": "system", "description": "replaced"},
                        "spec": {"object_limits": {"site": {"maximum": 7}}}
                    }),
                    ("post", "reserve") => {
                        json!({"kind": "virtual_host", "amount": 2, "request_id": "fuzz-reserve"})
                    }
                    ("post", "release") => {
                        json!({"kind": "virtual_host", "amount": 1, "request_id": "fuzz-release"})
                    }
                    ("put", "usage") => json!({"resource": "vcpu", "current": 1.5}),
                    ("post", "payment_methods") => json!({
                        "token": "tok-amex-0005", "role": "PAYMENT_METHOD_ROLE_SECONDARY",
                        "contact": {"address1": "1 Main St", "city": "Boston", "country": "US"}
                    }),
                    ("post", "primary" | "secondary" | "swap-primary") => json!({}),
                    ("post", "plan_transition") => json!({
                        "new_plan": "individual",
                        "payload": {"payment_provider_token": "tok-visa-4242"}
                    }),
                    // Allowed on the team plan, not included in it.
                    ("post", "subscribe" | "unsubscribe") => json!({"f5xc_waap_advanced": {}}),
                    ("post", "events") => json!({"events": [{
                        "id": "fuzz-example", "metric_label": "lb_requests", "object_name": "lb-web",
                        "quantity": 5, "timestamp": now
                    }]}),
                    ("post", "usage_details" | "current_usage" | "monthly_usage" | "usage_summary") => {
                        json!({})
                    }
                    ("post", "hourly_usage_details") => json!({"query": self.hourly_query}),
                    ("post", "reject" | "cancel") => json!({"reason": "fuzzing"}),
                    _ => continue,
                };
                if let Some(media) = operation
                    .get_mut("requestBody")
                    .and_then(|b| b.pointer_mut("/content/application~1json"))
                {
                    media["example"] = body;
                }
            }
        }
    }

    /// Runs schemathesis on `document` against the server; fails with its
    /// report (and the server's log) on any failure. Reports the server's
    /// resident memory over the run.
    async fn fuzz(mut self, schemathesis: &Path, label: &str, document: &Value) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("schemathesis.toml");
        std::fs::write(&config, CONFIG).unwrap();
        for (name, values) in &self.dictionaries {
            // libFuzzer dictionary format: one quoted entry per line.
            let text: String = values
                .iter()
                .map(|v| format!("{}\n", serde_json::to_string(v).unwrap()))
                .collect();
            std::fs::write(dir.path().join(format!("{name}.dict")), text).unwrap();
        }
        let document_path = dir.path().join(format!("{label}.json"));
        std::fs::write(&document_path, serde_json::to_vec_pretty(document).unwrap()).unwrap();

        let pid = self.server.id().expect("server is running");
        let (stop_sampling, stopped) = tokio::sync::oneshot::channel();
        let memory = tokio::spawn(sample_rss(pid, stopped));
        let started = Instant::now();
        let run = Command::new(schemathesis)
            .arg("--config-file")
            .arg(&config)
            .arg("run")
            .arg(&document_path)
            .args(["--url", &self.base])
            .args(extra_args())
            .env(ADMIN_TOKEN_VAR, &self.admin)
            .env(OPERATOR_TOKEN_VAR, &self.operator)
            .env("NO_COLOR", "1")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", schemathesis.display()));
        let budget = if extra_args().is_empty() {
            BUDGET
        } else {
            LONG_BUDGET
        };
        let outcome = tokio::time::timeout(budget, run.wait_with_output()).await;
        let elapsed = started.elapsed();
        let _ = stop_sampling.send(());
        let memory = memory.await.expect("RSS sampling");
        let _ = self.server.start_kill();
        let log = self.log.await.unwrap_or_default().join("\n");

        let output = outcome.unwrap_or_else(|_| {
            panic!("schemathesis ({label}) ran longer than {budget:?}; server log tail:\n{log}")
        });
        let output = output.unwrap_or_else(|e| panic!("schemathesis ({label}): {e}"));
        let report = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        eprintln!(
            "schemathesis ({label}) took {elapsed:.0?}\n{}\n{}",
            describe_rss(&memory),
            summary(&report)
        );
        assert!(
            output.status.success(),
            "schemathesis ({label}) found failures ({}):\n{report}\n{stderr}\nserver log tail:\n{log}",
            output.status
        );
    }
}

fn extra_args() -> Vec<String> {
    std::env::var(EXTRA_ARGS_VAR)
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// The summary section of schemathesis's report.
fn summary(report: &str) -> String {
    let mut out = String::new();
    for line in report.lines().skip_while(|l| !l.contains(" SUMMARY ")) {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// Reads the server's log to the end, keeping the last lines.
async fn keep_log_tail(mut stderr: Lines<BufReader<ChildStderr>>) -> Vec<String> {
    const KEEP: usize = 200;
    let mut tail = std::collections::VecDeque::with_capacity(KEEP);
    while let Ok(Some(line)) = stderr.next_line().await {
        if tail.len() == KEEP {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    tail.into()
}

/// VmRSS of a process, in kB (Linux).
fn read_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Samples the server's VmRSS every half second until told to stop.
async fn sample_rss(pid: u32, mut stop: tokio::sync::oneshot::Receiver<()>) -> Vec<(Duration, u64)> {
    let started = Instant::now();
    let mut samples = Vec::new();
    loop {
        if let Some(kb) = read_rss_kb(pid) {
            samples.push((started.elapsed(), kb));
        }
        tokio::select! {
            _ = &mut stop => return samples,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// The server's RSS over the run: at the start, the peak, at the end, and
/// about ten samples in between.
fn describe_rss(samples: &[(Duration, u64)]) -> String {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return "server RSS: no samples".into();
    };
    let peak = samples.iter().map(|s| s.1).max().unwrap_or_default();
    let step = (samples.len() / 10).max(1);
    let series: Vec<String> = samples
        .iter()
        .step_by(step)
        .map(|(at, kb)| format!("{:.0}s {:.1}", at.as_secs_f64(), *kb as f64 / 1024.0))
        .collect();
    format!(
        "server RSS (MiB): start {:.1}, peak {:.1}, end {:.1}; {} samples: {}",
        first.1 as f64 / 1024.0,
        peak as f64 / 1024.0,
        last.1 as f64 / 1024.0,
        samples.len(),
        series.join(", ")
    )
}

async fn wait_for_transition(http: &Http, base: &str, id: &str, state: &str) {
    let url = format!("{base}/no_auth/namespaces/system/billing/plan_transition?id={id}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http.call("GET", &url, None, None).await;
        assert_eq!(status, 200, "{body}");
        if body["state"] == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "transition {id} never reached {state}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
