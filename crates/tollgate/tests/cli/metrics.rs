//! Metrics as an operator deploys them: `serve --metrics-listen` serves
//! `GET /metrics` on its own address (same token rule) and not on the
//! API's; and the example Prometheus alerting rules and Grafana dashboard
//! under `deploy/` name only metrics that a real scrape has, after a
//! workload that exercises them (ingestion, reservations, a report, the job
//! loop's runs and gauges).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_testkit::each_backend;

use crate::support::{Http, Server, tenant_with_admin};

/// Upper bound on waiting for the job loop's first ticks (they come at once).
const PATIENCE: Duration = Duration::from_secs(15);

const TOKEN: &str = "scrape-secret";

fn deploy_file(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Every `tollgate_…` identifier in a PromQL expression, with a histogram's
/// `_bucket`, `_sum` and `_count` series named by the histogram.
fn metric_names(expr: &str, into: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while let Some(at) = expr[i..].find("tollgate_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        // Inside a longer identifier (`my_tollgate_x`) it is not a name of ours.
        if start == 0 || !ident(bytes[start - 1]) {
            into.insert(expr[start..end].to_owned());
        }
        i = end;
    }
}

/// The PromQL of the alerting rules: every rule's `expr`.
fn alert_names() -> BTreeSet<String> {
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&deploy_file("deploy/prometheus/tollgate-alerts.yml")).expect("YAML");
    let mut names = BTreeSet::new();
    let groups = rules["groups"].as_sequence().expect("groups");
    assert!(!groups.is_empty());
    for group in groups {
        for rule in group["rules"].as_sequence().expect("rules") {
            let expr = rule["expr"].as_str().expect("every rule has an expr");
            assert!(rule["alert"].as_str().is_some(), "alerting rules only: {rule:?}");
            metric_names(expr, &mut names);
        }
    }
    names
}

/// The PromQL of the dashboard: every `expr` (panel targets) and every
/// variable's `query`/`definition`, however deep.
fn dashboard_names() -> BTreeSet<String> {
    fn walk(v: &Value, names: &mut BTreeSet<String>, exprs: &mut usize) {
        match v {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr" | "query" | "definition", Value::String(s)) => {
                            *exprs += usize::from(key == "expr");
                            metric_names(s, names);
                        }
                        _ => walk(value, names, exprs),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, names, exprs)),
            _ => {}
        }
    }
    let dashboard: Value =
        serde_json::from_str(&deploy_file("deploy/grafana/tollgate-dashboard.json")).expect("JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| !p.is_empty()));
    let (mut names, mut exprs) = (BTreeSet::new(), 0);
    walk(&dashboard, &mut names, &mut exprs);
    assert!(exprs >= 10, "the panels' queries were found ({exprs})");
    names
}

/// The metrics of a scrape by name, with their `# TYPE`.
fn scraped(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.trim().to_owned()))
        .collect()
}

/// Whether `name` (as PromQL uses it) is in the scrape: a histogram's
/// series by the histogram.
fn in_scrape(name: &str, types: &BTreeMap<String, String>) -> bool {
    if types.contains_key(name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .and_then(|base| types.get(base))
            .is_some_and(|kind| kind == "histogram")
    })
}

#[tokio::test]
async fn metrics_listen_serves_every_metric_the_deploy_files_name() {
    let mut wanted = alert_names();
    wanted.extend(dashboard_names());
    for expected in [
        "tollgate_http_requests_total",
        "tollgate_job_oldest_due_charge_seconds",
        "tollgate_db_write_wait_seconds_bucket",
        "tollgate_quota_reservations_total",
    ] {
        assert!(
            wanted.contains(expected),
            "{expected} not found in the deploy files: {wanted:?}"
        );
    }
    each_backend(|db| {
        let wanted = wanted.clone();
        async move {
            let admin = tenant_with_admin(&db, "acme").await;
            let server = Server::start_with(
                &db,
                "info",
                &[
                    "--metrics-listen",
                    "127.0.0.1:0",
                    "--metrics-token",
                    TOKEN,
                    "--job-interval",
                    "100ms",
                ],
            )
            .await;
            let metrics = server.metrics.clone().expect("serve prints the metrics address");
            let http = Http::new();
            let bearer = format!("Bearer {TOKEN}");

            // Not on the API's address; only /metrics, with the token, on its own.
            let (status, body) = http.get_text(&format!("{}/metrics", server.base), Some(&bearer)).await;
            assert_eq!(status, 404, "{body}");
            assert_eq!(http.get_text(&metrics, None).await.0, 401);
            let healthz = metrics.replace("/metrics", "/healthz");
            assert_eq!(http.get_text(&healthz, Some(&bearer)).await.0, 404);

            // A workload: a quota and reservations (granted, refused), usage, a report.
            let api = |path: &str| format!("{}{path}", server.base);
            let (status, body) = http
                .call(
                    "POST",
                    &api("/api/web/namespaces/system/quotas"),
                    Some(&admin),
                    Some(json!({"metadata": {"name": "q"}, "spec": {"object_limits": {"virtual_host": {"maximum": 1}}}})),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            for (id, expected) in [("r-1", 200), ("r-2", 429)] {
                let (status, body) = http
                    .call(
                        "POST",
                        &api("/api/web/namespaces/system/quota/reserve"),
                        Some(&admin),
                        Some(json!({"kind": "virtual_host", "amount": 1, "request_id": id})),
                    )
                    .await;
                assert_eq!(status, expected, "{id}: {body}");
            }
            let now = jiff::Timestamp::now().to_string();
            let (status, body) = http
                .call(
                    "POST",
                    &api("/api/data/namespaces/system/usage/events"),
                    Some(&admin),
                    Some(json!({"events": [{"id": "e-1", "metric_label": "lb_requests",
                        "object_name": "lb", "quantity": 5, "timestamp": now}]})),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["accepted"], 1, "{body}");
            let (status, body) = http
                .call(
                    "POST",
                    &api("/api/web/namespaces/system/current_usage"),
                    Some(&admin),
                    Some(json!({})),
                )
                .await;
            assert_eq!(status, 200, "{body}");

            // The job loop runs at once and every 100 ms; its gauges follow each tick.
            let deadline = Instant::now() + PATIENCE;
            let text = loop {
                let (status, text) = http.get_text(&metrics, Some(&bearer)).await;
                assert_eq!(status, 200, "{text}");
                let types = scraped(&text);
                let missing: Vec<&String> = wanted.iter().filter(|n| !in_scrape(n, &types)).collect();
                if missing.is_empty() {
                    break text;
                }
                assert!(
                    Instant::now() < deadline,
                    "the deploy files name {missing:?}, not in the scrape:\n{text}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            // The workload is in it.
            for series in [
                "tollgate_quota_reservations_total{outcome=\"granted\"} 1",
                "tollgate_quota_reservations_total{outcome=\"refused\"} 1",
                "tollgate_usage_events_total{outcome=\"accepted\"} 1",
                "tollgate_ingest_duration_seconds_count 1",
                "tollgate_report_duration_seconds_count{report=\"current_usage\"} 1",
            ] {
                assert!(text.lines().any(|l| l == series), "{series}:\n{text}");
            }
            assert!(
                text.contains("tollgate_job_runs_total{job=\"charge\"} "),
                "{text}"
            );
        }
    })
    .await;
}
