//! Paths, bodies and readers shared by the metering tests (ingestion, the
//! usage reports, rating, the usage summary, meters).

use serde_json::{Value, json};

use crate::support::{TestApp, ts};

pub const SUMMARY: &str = "/api/data/namespaces/system/billing/usage_summary";
pub const METERS: &str = "/api/web/namespaces/system/usage/meters";

/// `POST …/usage/events` of a namespace.
pub fn events_path(ns: &str) -> String {
    format!("/api/data/namespaces/{ns}/usage/events")
}

/// One of the usage reports (`usage_details`, `hourly_usage_details`,
/// `current_usage`, `monthly_usage`) of a namespace.
pub fn report(ns: &str, name: &str) -> String {
    format!("/api/web/namespaces/{ns}/{name}")
}

/// An event without deployment and container.
pub fn event(
    id: &str,
    metric: &str,
    object: &str,
    quantity: impl Into<Value>,
    at: impl Into<Value>,
) -> Value {
    json!({"id": id, "metric_label": metric, "object_name": object, "quantity": quantity.into(), "timestamp": at.into()})
}

/// `millions` million `lb_requests` of `lb-a` at `at`.
pub fn lr(id: &str, millions: i64, at: &str) -> Value {
    event(id, "lb_requests", "lb-a", millions * 1_000_000, at)
}

/// An event of one deployment and container.
pub fn event_dc(
    id: &str,
    metric: &str,
    object: &str,
    quantity: impl Into<Value>,
    at: impl Into<Value>,
    deployment: &str,
    container: &str,
) -> Value {
    let mut e = event(id, metric, object, quantity, at);
    e["deployment"] = json!(deployment);
    e["container"] = json!(container);
    e
}

/// Sends a batch and returns the (successful) response body.
pub async fn ingest(app: &TestApp, tok: &str, ns: &str, events: Vec<Value>) -> Value {
    app.post(&events_path(ns), tok, json!({ "events": events }))
        .await
        .ok()
        .clone()
}

/// Sends a batch and asserts that every event was accepted.
pub async fn ingest_all(app: &TestApp, tok: &str, ns: &str, events: Vec<Value>) {
    let n = events.len();
    let resp = ingest(app, tok, ns, events).await;
    assert_eq!(resp["accepted"], n, "{resp}");
}

/// The `usage_items` of `usage_details` for `body`.
pub async fn details(app: &TestApp, tok: &str, ns: &str, body: Value) -> Vec<Value> {
    app.post(&report(ns, "usage_details"), tok, body).await.ok()["usage_items"]
        .as_array()
        .expect("usage_items is a list")
        .clone()
}

/// The `usage_details` line of (namespace, metric, object).
#[track_caller]
pub fn detail<'a>(items: &'a [Value], ns: &str, metric: &str, object: &str) -> &'a Value {
    items
        .iter()
        .find(|i| i["namespace"] == ns && i["metric_label"] == metric && i["object_name"] == object)
        .unwrap_or_else(|| panic!("no line {ns}/{metric}/{object} in {items:#?}"))
}

/// The `current_usage` response for `body`.
pub async fn current(app: &TestApp, tok: &str, ns: &str, body: Value) -> Value {
    app.post(&report(ns, "current_usage"), tok, body)
        .await
        .ok()
        .clone()
}

/// The usage line of `metric` in a `current_usage` response.
#[track_caller]
pub fn line<'a>(bill: &'a Value, metric: &str) -> &'a Value {
    let items = bill["usage_items"].as_array().expect("usage_items is a list");
    let found: Vec<&Value> = items
        .iter()
        .filter(|i| i["metric_labels"] == json!([metric]))
        .collect();
    assert_eq!(found.len(), 1, "one line of {metric} in {bill:#}");
    found[0]
}

/// The flat fee lines (`fixed: true`) of a `current_usage` response.
pub fn fee_lines(bill: &Value) -> Vec<&Value> {
    bill["usage_items"]
        .as_array()
        .expect("usage_items is a list")
        .iter()
        .filter(|i| i["fixed"] == true)
        .collect()
}

/// The metric labels of the usage lines (not the fee) of a `current_usage` response.
pub fn metrics_of(bill: &Value) -> Vec<String> {
    bill["usage_items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["fixed"] == false)
        .map(|i| i["metric_labels"][0].as_str().unwrap().to_owned())
        .collect()
}

/// The `monthly_usage_items` as (start, end, amount).
pub async fn monthly(app: &TestApp, tok: &str) -> Vec<(String, String, String)> {
    let resp = app.post(&report("system", "monthly_usage"), tok, json!({})).await;
    resp.ok()["monthly_usage_items"]
        .as_array()
        .expect("monthly_usage_items is a list")
        .iter()
        .map(|i| {
            assert_eq!(i["currency_code"], "USD", "{i}");
            (
                i["start_timestamp"].as_str().unwrap().to_owned(),
                i["end_timestamp"].as_str().unwrap().to_owned(),
                i["amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A (start, end, amount) triple for comparing with [`monthly`].
pub fn month(start: &str, end: &str, amount: &str) -> (String, String, String) {
    (start.to_owned(), end.to_owned(), amount.to_owned())
}

/// A JSON number as f64 (quantities are JSON numbers).
#[track_caller]
pub fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

/// Unix seconds of an RFC 3339 literal.
pub fn unix(s: &str) -> i64 {
    ts(s).as_second()
}

/// A small seeded generator (64-bit LCG, Knuth's MMIX constants), so that
/// "random" tests are reproducible.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The high 32 bits of the state (the low bits of an LCG are poor).
    fn next_u32(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 32
    }

    pub fn next_u64(&mut self) -> u64 {
        (self.next_u32() << 32) | self.next_u32()
    }

    /// Uniform-ish in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Shuffles in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The built-in catalog as format 2 with `meter` (a `[[meters]]` table)
/// before its first meter, priced on the individual plan by `price` (the
/// body of its `[plans.prices.<metric>]` table, which names the metric).
pub fn catalog_with_meter(meter: &str, price: &str) -> String {
    let text = tollgate_domain::catalog::BUILTIN_TOML;
    let anchor = "[plans.prices.lb_requests]\nunit_price_cents = \"60\"";
    assert!(
        text.contains("format = 1") && text.matches(anchor).count() == 1,
        "the built-in catalog moved"
    );
    let first_meter = text.find("[[meters]]").expect("the built-in catalog has meters");
    let mut out = text.to_owned();
    out.insert_str(first_meter, meter);
    out.replacen("format = 1", "format = 2", 1)
        .replacen(anchor, &format!("{price}\n\n{anchor}"), 1)
}

/// (usage_type, amount) of each fixed item (fee, add-ons, flat amounts,
/// minimum, taxes) of a `current_usage` response, in order.
pub fn fixed_items(bill: &Value) -> Vec<(String, String)> {
    bill["usage_items"]
        .as_array()
        .expect("usage_items is a list")
        .iter()
        .filter(|i| i["fixed"] == true)
        .map(|i| {
            (
                i["usage_type"].as_str().unwrap().to_owned(),
                i["amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A (usage_type, amount) pair, as [`fixed_items`] lists them.
pub fn item(usage_type: &str, amount: &str) -> (String, String) {
    (usage_type.to_owned(), amount.to_owned())
}

/// (id, status, reason) of each result of an ingestion response.
pub fn results(resp: &Value) -> Vec<(String, String, Option<String>)> {
    resp["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
                r["reason"].as_str().map(str::to_owned),
            )
        })
        .collect()
}
