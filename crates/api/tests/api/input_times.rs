//! Times outside the supported range are a per-event rejection or a 400
//! naming the field, never a 500: ingestion and every usage report.

use serde_json::{Value, json};
use tollgate_domain::access::Role;
use tollgate_testkit::each_backend;

use crate::support::{TestApp, ts};
use crate::usage_support::{SUMMARY, event, events_path, report};

const NOW: &str = "2026-11-20T13:00:00Z";

/// Times no report or event can use: beyond what a timestamp can hold, at
/// its very edges, or not numbers at all.
fn unusable() -> Vec<Value> {
    vec![
        json!(1e23),
        json!(-1e23),
        json!("1e23"),
        json!("-1e23"),
        json!("9999-12-31T23:59:59Z"),
        json!("-009999-01-01T00:00:00Z"),
        json!(253402300800_i64),
        json!("253402300800"),
        json!("-377705116800"),
        json!("NaN"),
        json!("inf"),
        json!(1.7976931348623157e308),
        json!("1e-30"),
        json!("79228162514264337593543950335"),
        json!("9999-12-30T22:00:00.999999999Z"),
        json!("-009999-01-02T01:59:59Z"),
    ]
}

#[tokio::test]
async fn an_event_with_an_unusable_timestamp_is_rejected_and_the_rest_accepted() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (acme, _) = app.admin("acme").await;
        let platform = app.token(&acme, Role::Platform).await;
        app.clock.set(ts(NOW));
        let bad = unusable();
        let mut batch: Vec<Value> = bad
            .iter()
            .enumerate()
            .map(|(i, at)| event(&format!("bad-{i}"), "lb_requests", "lb", 1, at.clone()))
            .collect();
        batch.push(event("good", "lb_requests", "lb", 1, "2026-11-20T12:00:00Z"));
        // More fractional digits than a decimal holds: truncated, accepted.
        batch.push(event(
            "fraction",
            "lb_requests",
            "lb",
            1,
            "1795172400.99999999999999999999999999999999",
        ));
        let resp = app
            .post(&events_path("system"), &platform, json!({ "events": batch }))
            .await;
        let body = resp.ok();
        assert_eq!(body["accepted"], 2, "{body:#}");
        assert_eq!(body["rejected"], bad.len(), "{body:#}");
        for r in body["results"].as_array().unwrap() {
            if r["status"] == "REJECTED" {
                let reason = r["reason"].as_str().unwrap();
                assert!(reason.starts_with("timestamp: "), "{reason}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn reports_over_unusable_ranges_are_400_naming_the_field() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        app.clock.set(ts(NOW));
        for at in unusable() {
            let text = match &at {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            for name in ["usage_details", "current_usage"] {
                for (field, body) in [
                    ("from", json!({"from": text})),
                    ("to", json!({"to": text})),
                    ("from", json!({"from": text, "to": "2026-11-20T12:00:00Z"})),
                ] {
                    let resp = app.post(&report("system", name), &admin, body.clone()).await;
                    let msg = resp.error(400, 3);
                    assert!(msg.starts_with(field), "{name} {body}: {msg}");
                }
            }
            for (field, body) in [
                ("start_time", json!({"start_time": at})),
                ("end_time", json!({"end_time": at})),
                (
                    "start_time",
                    json!({"start_time": at, "end_time": "2026-11-20T12:00:00Z"}),
                ),
            ] {
                let resp = app.post(SUMMARY, &admin, body.clone()).await;
                let msg = resp.error(400, 3);
                assert!(msg.starts_with(field), "summary {body}: {msg}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn reports_at_the_edges_of_the_supported_range_answer() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        app.clock.set(ts(NOW));
        // The supported range: 0001-01-01 to 9999-01-01.
        let (first, last) = ("0001-01-01T00:00:00Z", "9999-01-01T00:00:00Z");
        let near = |a: &str, days: i64| (ts(a) + jiff::SignedDuration::from_hours(24 * days)).to_string();
        for (from, to) in [
            (first.to_owned(), near(first, 30)),
            (near(last, -30), last.to_owned()),
            (near(last, -400), last.to_owned()),
        ] {
            for name in ["usage_details", "current_usage"] {
                let body = json!({"from": from, "to": to});
                app.post(&report("system", name), &admin, body).await.ok();
            }
            app.post(SUMMARY, &admin, json!({"start_time": from, "end_time": to}))
                .await
                .ok();
        }
        // One-sided defaults stay within the range too.
        app.post(SUMMARY, &admin, json!({"start_time": last})).await.ok();
        app.post(SUMMARY, &admin, json!({"end_time": first})).await.ok();
        app.post(&report("system", "monthly_usage"), &admin, json!({}))
            .await
            .ok();
    })
    .await;
}

/// Random ranges of every kind (near the edges, anywhere in a timestamp's
/// reach, numbers, text) give an answer or a 400, never a 5xx. Seeded, so a
/// failure reproduces.
#[tokio::test]
async fn no_range_makes_a_report_fail() {
    use crate::usage_support::Lcg;
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        app.clock.set(ts(NOW));
        let mut rng = Lcg::new(0x5eed_0001);
        let edges = [
            -62_135_596_800_i64,
            253_370_764_800,
            -377_705_116_800,
            253_402_207_200,
            0,
            1_795_165_200,
        ];
        let time = |rng: &mut Lcg| -> Value {
            let secs = match rng.below(4) {
                0 => *rng.pick(&edges) + rng.below(7 * 86_400) as i64 - 3 * 86_400,
                1 => rng.next_u64() as i64,
                2 => (rng.next_u64() % 800_000_000_000) as i64 - 400_000_000_000,
                _ => 1_795_165_200 + rng.below(800 * 86_400) as i64 - 400 * 86_400,
            };
            match rng.below(3) {
                0 => json!(secs),
                1 => json!(format!("{secs}.{}", rng.next_u64())),
                _ => match jiff::Timestamp::from_second(secs) {
                    Ok(t) => json!(t.to_string()),
                    Err(_) => json!(format!("{secs}e3")),
                },
            }
        };
        let mut answered = 0;
        for _ in 0..150 {
            let (from, to) = (time(&mut rng), time(&mut rng));
            let text = |v: &Value| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            for (path, body) in [
                (
                    report("system", "usage_details"),
                    json!({"from": text(&from), "to": text(&to)}),
                ),
                (
                    report("system", "current_usage"),
                    json!({"from": text(&from), "to": text(&to)}),
                ),
                (report("system", "current_usage"), json!({"from": text(&from)})),
                (SUMMARY.to_owned(), json!({"start_time": from, "end_time": to})),
                (SUMMARY.to_owned(), json!({"end_time": to})),
            ] {
                let resp = app.post(&path, &admin, body.clone()).await;
                assert!(
                    resp.status == 200 || resp.status == 400,
                    "{path} {body}: {} {}",
                    resp.status,
                    resp.body
                );
                answered += usize::from(resp.status == 200);
            }
        }
        // Not only refusals: many of the ranges are reports.
        assert!(answered > 100, "{answered} answered");
    })
    .await;
}
