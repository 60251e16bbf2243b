//! Metering through the binary: imports, replay, coupons, and a crash in the
//! middle of ingestion.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tollgate_testkit::each_backend;

use crate::support::{Http, Server, expect_ok, tollgate};

const DETAILS: &str = "/api/web/namespaces/system/usage_details";
const CURRENT: &str = "/api/web/namespaces/system/current_usage";
const EVENTS: &str = "/api/data/namespaces/system/usage/events";

async fn tenant_since(db: &tollgate_testkit::TestDatabase, name: &str, since: &str) -> (String, String) {
    expect_ok(
        tollgate(
            db,
            &["tenant", "create", name, "--plan", "individual", "--since", since],
        )
        .await,
    );
    let admin = expect_ok(tollgate(db, &["token", "create", "--tenant", name, "--role", "admin"]).await);
    let platform =
        expect_ok(tollgate(db, &["token", "create", "--tenant", name, "--role", "platform"]).await);
    (admin.trim().to_owned(), platform.trim().to_owned())
}

/// Total quantity per metric in usage_details over a range.
async fn totals(http: &Http, base: &str, token: &str, from: &str, to: &str) -> Vec<(String, String, f64)> {
    let (status, body) = http
        .call(
            "POST",
            &format!("{base}{DETAILS}"),
            Some(token),
            Some(json!({"from": from, "to": to})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut out: Vec<(String, String, f64)> = body["usage_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["metric_label"].as_str().unwrap().to_owned(),
                i["object_name"].as_str().unwrap().to_owned(),
                i["quantity"].as_f64().unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

#[tokio::test]
async fn history_is_imported_once_and_replay_rebuilds_the_same_reports() {
    each_backend(|db| async move {
        let (admin, _) = tenant_since(&db, "acme", "2026-09-01T00:00:00Z").await;
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("usage.jsonl");
        let mut lines = String::new();
        for i in 0..500 {
            let at = Timestamp::from_second(1_788_220_800 + i64::from(i) * 3_000).unwrap(); // from 2026-09-01
            let event = json!({
                "id": format!("j{i}"), "metric_label": "lb_requests", "object_name": format!("lb-{}", i % 3),
                "quantity": format!("{}.5", i % 7), "timestamp": at.to_string()
            });
            lines.push_str(&format!("{event}\n"));
        }
        lines.push_str("{\"id\": \"bad\", \"metric_label\": \"beer\", \"quantity\": 1, \"timestamp\": \"2026-09-02T00:00:00Z\"}\n");
        lines.push_str("{\"id\": \"early\", \"metric_label\": \"lb_requests\", \"quantity\": 1, \"timestamp\": \"2026-08-31T23:00:00Z\"}\n");
        std::fs::write(&jsonl, lines).unwrap();
        let csv = dir.path().join("usage.csv");
        std::fs::write(
            &csv,
            "id,metric_label,object_name,quantity,timestamp,container\n\
             c1,lb_data_transfer,lb-0,1500000000,2026-09-03T10:00:00Z,web\n\
             c2,lb_data_transfer,lb-0,2500000000,2026-09-03T10:30:00Z,api\n\
             c3,site_vcpus,site-1,8,2026-09-03T11:00:00Z,\n",
        )
        .unwrap();

        let out = tollgate(&db, &["usage", "import", "--tenant", "acme", jsonl.to_str().unwrap()]).await;
        assert!(out.ok, "{}", out.stderr);
        assert!(out.stdout.contains("502 events into tenant acme: 500 accepted, 0 duplicates, 2 rejected"), "{}", out.stdout);
        assert!(out.stderr.contains("usage.jsonl:501: rejected: metric_label: unknown metric \"beer\""), "{}", out.stderr);
        assert!(out.stderr.contains("usage.jsonl:502: rejected: timestamp: 2026-08-31T23:00:00Z is before"), "{}", out.stderr);
        let out = expect_ok(tollgate(&db, &["usage", "import", "--tenant", "acme", csv.to_str().unwrap()]).await);
        assert!(out.contains("3 accepted, 0 duplicates, 0 rejected"), "{out}");
        // Importing again counts nothing twice.
        let out = expect_ok(tollgate(&db, &["usage", "import", "--tenant", "acme", jsonl.to_str().unwrap()]).await);
        assert!(out.contains("0 accepted, 500 duplicates, 2 rejected"), "{out}");

        // The job loop finalizes September at once (the tenant is
        // backdated): raw events are kept here, so that replay has them.
        let server = Server::start_with(&db, "info", &["--keep-raw-events", "forever"]).await;
        let http = Http::new();
        let range = ("2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z");
        let before = totals(&http, &server.base, &admin, range.0, range.1).await;
        // 500 events: quantities i % 7 + 0.5 over three objects; sum over all = Σ(i%7) + 250.
        let expected_sum: f64 = (0..500).map(|i| f64::from(i % 7) + 0.5).sum();
        let lb_sum: f64 = before.iter().filter(|(m, _, _)| m == "lb_requests").map(|(_, _, q)| q).sum();
        assert_eq!(lb_sum, expected_sum);
        assert!(before.contains(&("lb_data_transfer".into(), "lb-0".into(), 4_000_000_000.0)), "{before:?}");
        assert!(before.contains(&("site_vcpus".into(), "site-1".into(), 8.0)), "{before:?}");

        let out = expect_ok(tollgate(&db, &["usage", "replay", "--tenant", "acme"]).await);
        assert!(out.contains("from 503 events"), "{out}");
        assert_eq!(totals(&http, &server.base, &admin, range.0, range.1).await, before);

        // With the default retention, September's raw events go once a later
        // period is finalized (October is, by now); a replay then keeps
        // September's rollups and the reports do not move.
        let out = expect_ok(tollgate(&db, &["jobs", "run", "purge-events"]).await);
        assert!(out.contains("purge-events: 503 raw usage events past retention deleted"), "{out}");
        let out = expect_ok(tollgate(&db, &["usage", "replay", "--tenant", "acme"]).await);
        assert!(out.contains("from 0 events, from ") && out.contains("keep their rollups"), "{out}");
        assert_eq!(totals(&http, &server.base, &admin, range.0, range.1).await, before);
        let out = expect_ok(tollgate(&db, &["usage", "import", "--tenant", "acme", csv.to_str().unwrap()]).await);
        assert!(out.contains("0 accepted, 0 duplicates, 3 rejected"), "{out}");
    })
    .await;
}

#[tokio::test]
async fn an_import_names_its_first_rejections_in_line_order_whatever_rule_refused_them() {
    each_backend(|db| async move {
        tenant_since(&db, "acme", "2026-09-01T00:00:00Z").await;
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("mixed.jsonl");
        // Lines alternate: an unknown namespace (refused while reading the
        // file), an unknown metric (refused by the ingestion rules), a good event.
        let mut lines = String::new();
        for i in 0..15 {
            lines.push_str(&format!(
                "{}\n{}\n{}\n",
                json!({"id": format!("n{i}"), "namespace": "nowhere", "metric_label": "lb_requests",
                       "quantity": 1, "timestamp": "2026-09-02T00:00:00Z"}),
                json!({"id": format!("m{i}"), "metric_label": "beer", "quantity": 1,
                       "timestamp": "2026-09-02T00:00:00Z"}),
                json!({"id": format!("g{i}"), "metric_label": "lb_requests", "quantity": 1,
                       "timestamp": "2026-09-02T00:00:00Z"}),
            ));
        }
        std::fs::write(&jsonl, lines).unwrap();
        let out = tollgate(
            &db,
            &["usage", "import", "--tenant", "acme", jsonl.to_str().unwrap()],
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        assert!(
            out.stdout
                .contains("45 events into tenant acme: 15 accepted, 0 duplicates, 30 rejected"),
            "{}",
            out.stdout
        );
        let named: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.contains(": rejected: "))
            .collect();
        let expected: Vec<String> = (0..10)
            .flat_map(|i| {
                [
                    format!(
                        "mixed.jsonl:{}: rejected: namespace: \"nowhere\" does not exist",
                        3 * i + 1
                    ),
                    format!(
                        "mixed.jsonl:{}: rejected: metric_label: unknown metric \"beer\"",
                        3 * i + 2
                    ),
                ]
            })
            .collect();
        assert_eq!(named.len(), 20, "{}", out.stderr);
        for (line, want) in named.iter().zip(&expected) {
            assert!(line.ends_with(want.as_str()), "{line:?} should end with {want:?}");
        }
        assert!(out.stderr.contains("… and 10 more rejected"), "{}", out.stderr);
    })
    .await;
}

#[tokio::test]
async fn coupons_from_the_cli_discount_current_usage() {
    each_backend(|db| async move {
        let (admin, platform) = tenant_since(&db, "acme", "2026-09-01T00:00:00Z").await;
        expect_ok(
            tollgate(
                &db,
                &[
                    "coupon",
                    "create",
                    "welcome",
                    "--title",
                    "Welcome 12.35%",
                    "--percent",
                    "12.35",
                ],
            )
            .await,
        );
        expect_ok(
            tollgate(
                &db,
                &[
                    "coupon",
                    "create",
                    "five",
                    "--title",
                    "Five dollars",
                    "--fixed-cents",
                    "500",
                ],
            )
            .await,
        );
        let bad = tollgate(
            &db,
            &["coupon", "create", "silly", "--title", "x", "--percent", "150"],
        )
        .await;
        assert!(
            !bad.ok && bad.stderr.contains("between 0.01 and 100"),
            "{}",
            bad.stderr
        );
        // A percentage too large for a decimal is refused, not a panic.
        let huge = tollgate(
            &db,
            &[
                "coupon",
                "create",
                "huge",
                "--title",
                "x",
                "--percent",
                "79228162514264337593543950335",
            ],
        )
        .await;
        assert!(
            !huge.ok && huge.stderr.contains("between 0.01 and 100"),
            "{}",
            huge.stderr
        );
        let list = expect_ok(tollgate(&db, &["coupon", "list"]).await);
        assert!(
            list.contains("welcome") && list.contains("12.35%") && list.contains("500 cents"),
            "{list}"
        );
        expect_ok(
            tollgate(
                &db,
                &[
                    "coupon",
                    "apply",
                    "--tenant",
                    "acme",
                    "welcome",
                    "--from",
                    "2026-09-01T00:00:00Z",
                ],
            )
            .await,
        );
        let missing = tollgate(&db, &["coupon", "apply", "--tenant", "acme", "nope"]).await;
        assert!(
            !missing.ok && missing.stderr.contains("does not exist"),
            "{}",
            missing.stderr
        );

        let server = Server::start(&db).await;
        let http = Http::new();
        let now = Timestamp::now();
        let event = json!({"events": [{"id": "r1", "metric_label": "lb_requests", "object_name": "lb",
            "quantity": 10_000_000, "timestamp": (now - SignedDuration::from_mins(1)).to_string()}]});
        let (status, body) = http
            .call(
                "POST",
                &format!("{}{EVENTS}", server.base),
                Some(&platform),
                Some(event),
            )
            .await;
        assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)), "{body}");
        let (status, usage) = http
            .call(
                "POST",
                &format!("{}{CURRENT}", server.base),
                Some(&admin),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 200, "{usage}");
        // 10 M requests → 10 billable, 5 free, 5 × 60 = 300 ¢; fee 2500 ¢; subtotal 2800;
        // 12.35 % = 345.8 → 346; total 2454.
        assert_eq!(usage["discount"], "346", "{usage}");
        assert_eq!(usage["total_cost"], "2454", "{usage}");
        assert_eq!(usage["coupons"][0]["discount_type"], "DISCOUNT_TYPE_PERCENTAGE");
        assert_eq!(usage["coupons"][0]["discount_amount"], 1235);
        let trail = expect_ok(tollgate(&db, &["audit", "list"]).await);
        assert!(
            trail.contains("coupon.create") && trail.contains("coupon.apply"),
            "{trail}"
        );
    })
    .await;
}

fn batch(b: usize, now: Timestamp) -> Value {
    let events: Vec<Value> = (0..200)
        .map(|i| {
            json!({"id": format!("b{b}-e{i}"), "metric_label": "lb_requests", "object_name": format!("lb-{}", i % 5),
                   "quantity": 1, "timestamp": (now - SignedDuration::from_secs((i + b) as i64)).to_string()})
        })
        .collect();
    json!({ "events": events })
}

/// SIGKILL the server while batches are in flight, restart it, re-send every
/// batch: each event is counted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_during_ingestion_loses_and_doubles_nothing() {
    each_backend(|db| async move {
        let (admin, platform) = tenant_since(&db, "acme", "2026-09-01T00:00:00Z").await;
        let now = Timestamp::now();
        const BATCHES: usize = 40;
        let server = Server::start(&db).await;
        let url = format!("{}{EVENTS}", server.base);
        let http = Http::new();
        let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
        let sender = {
            let (http, url, platform) = (http.clone(), url.clone(), platform.clone());
            tokio::spawn(async move {
                let mut tasks = Vec::new();
                for b in 0..BATCHES {
                    let (http, url, platform, acked) =
                        (http.clone(), url.clone(), platform.clone(), acked_tx.clone());
                    tasks.push(tokio::spawn(async move {
                        // A killed server resets the connection; that batch is simply re-sent later.
                        if let Ok(Ok((200, _))) = tokio::time::timeout(
                            Duration::from_secs(30),
                            http.try_call("POST", &url, Some(&platform), Some(batch(b, now))),
                        )
                        .await
                        {
                            let _ = acked.send(b);
                        }
                    }));
                }
                for t in tasks {
                    let _ = t.await;
                }
            })
        };
        // Kill as soon as some batches are acknowledged, with others in flight.
        for _ in 0..5 {
            acked_rx.recv().await.expect("some batches are acknowledged");
        }
        server.signal("KILL").await;
        sender.await.unwrap();
        drop(server);

        let server = Server::start(&db).await;
        let url = format!("{}{EVENTS}", server.base);
        let mut accepted = 0;
        let mut duplicates = 0;
        for b in 0..BATCHES {
            let (status, body) = http
                .call("POST", &url, Some(&platform), Some(batch(b, now)))
                .await;
            assert_eq!(status, 200, "{body}");
            accepted += body["accepted"].as_u64().unwrap();
            duplicates += body["duplicates"].as_u64().unwrap();
        }
        assert_eq!(accepted + duplicates, (BATCHES * 200) as u64);
        assert!(
            duplicates >= 5 * 200,
            "the acknowledged batches were stored before the crash"
        );
        let from = (now - SignedDuration::from_hours(2)).to_string();
        let to = (now + SignedDuration::from_hours(1)).to_string();
        let total: f64 = totals(&http, &server.base, &admin, &from, &to)
            .await
            .iter()
            .map(|(_, _, q)| q)
            .sum();
        assert_eq!(total, (BATCHES * 200) as f64, "every event counted exactly once");
    })
    .await;
}

/// A large file is imported a batch at a time; a malformed line anywhere in
/// it imports nothing and names the line.
#[tokio::test]
async fn a_malformed_file_imports_nothing_and_a_large_one_is_imported_in_batches() {
    each_backend(|db| async move {
        tenant_since(&db, "acme", "2026-09-01T00:00:00Z").await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big.jsonl");
        let mut lines = String::new();
        for i in 0..2_500 {
            let at = Timestamp::from_second(1_788_220_800 + i64::from(i) * 600).unwrap();
            let event = json!({
                "id": format!("b{i}"), "metric_label": "lb_requests", "object_name": "lb-a",
                "quantity": 1, "timestamp": at.to_string()
            });
            lines.push_str(&format!("{event}\n"));
        }
        std::fs::write(&file, format!("{lines}this is not json\n")).unwrap();
        let bad = tollgate(
            &db,
            &["usage", "import", "--tenant", "acme", file.to_str().unwrap()],
        )
        .await;
        assert!(
            !bad.ok && bad.stderr.contains("big.jsonl:2501: not a JSON object"),
            "{}",
            bad.stderr
        );
        std::fs::write(&file, lines).unwrap();
        let out = expect_ok(
            tollgate(
                &db,
                &["usage", "import", "--tenant", "acme", file.to_str().unwrap()],
            )
            .await,
        );
        assert!(
            out.contains("2500 events into tenant acme: 2500 accepted, 0 duplicates, 0 rejected"),
            "nothing was imported by the malformed file: {out}"
        );
    })
    .await;
}
