//! Paths, readers and fixtures shared by the invoice tests: the list, the
//! PDF as text, the stored documents, and a tenant billed from a known date.

use serde_json::Value;
use tollgate_domain::access::Role;
use tollgate_domain::invoice::{InvoiceStatus, LineKind};
use tollgate_domain::tenant::Tenant;
use tollgate_store::{ChargeRecord, StoredInvoice};

use crate::billing_support::PAYMENT_METHODS;
use crate::billing_support::card;
use crate::invoices::{INVOICES, PDF};
use crate::support::{TestApp, ts};

/// One entry of the invoice list, the fields tests compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub status: String,
    pub amount: String,
    pub period_start: String,
    pub period_end: String,
    pub active: bool,
}

impl Entry {
    fn of(v: &Value) -> Self {
        let s = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("{k} is not a string in {v}"))
                .to_owned()
        };
        assert_eq!(v["currency"], "USD", "{v}");
        assert_eq!(
            v.as_object().unwrap().len(),
            7,
            "exactly the contract's fields: {v}"
        );
        Self {
            name: s("name"),
            status: s("status"),
            amount: s("amount"),
            period_start: s("period_start"),
            period_end: s("period_end"),
            active: v["active"].as_bool().unwrap_or_else(|| panic!("active in {v}")),
        }
    }
}

/// The raw `invoices` array of `custom_list` with `query` (e.g. `?limit=2`).
pub async fn list_raw(app: &TestApp, tok: &str, query: &str) -> Vec<Value> {
    let resp = app.get(&format!("{INVOICES}{query}"), tok).await;
    let body = resp.ok();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    body["invoices"]
        .as_array()
        .unwrap_or_else(|| panic!("invoices is not a list: {body}"))
        .clone()
}

/// The tenant's invoices as listed (newest first).
pub async fn list(app: &TestApp, tok: &str) -> Vec<Entry> {
    list_raw(app, tok, "").await.iter().map(Entry::of).collect()
}

/// The names of a list, in order.
pub fn names(entries: &[Entry]) -> Vec<String> {
    entries.iter().map(|e| e.name.clone()).collect()
}

/// The list entry called `name`.
#[track_caller]
pub fn entry<'a>(entries: &'a [Entry], name: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no invoice {name} in {entries:#?}"))
}

/// Whitespace collapsed to single spaces, so that wrapped text reads as one line.
pub fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The PDF bytes of invoice `name`, through the API.
pub async fn pdf_bytes(app: &TestApp, tok: &str, name: &str) -> Vec<u8> {
    let resp = app.get(&format!("{PDF}?name={name}"), tok).await;
    let body = resp.ok();
    assert_eq!(body.as_object().unwrap().len(), 1, "only the pdf field: {body}");
    let b64 = body["pdf"].as_str().expect("pdf is a string");
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
        .expect("pdf is standard base64");
    assert!(bytes.starts_with(b"%PDF-"), "not a PDF");
    bytes
}

/// The text of invoice `name`'s PDF, parsed back with a PDF reader.
pub async fn pdf_text(app: &TestApp, tok: &str, name: &str) -> String {
    let bytes = pdf_bytes(app, tok, name).await;
    let text = pdf_extract::extract_text_from_mem(&bytes)
        .unwrap_or_else(|e| panic!("the PDF of {name} cannot be parsed: {e}"));
    normalize(&text)
}

#[track_caller]
pub fn assert_has(text: &str, needle: &str) {
    let needle = normalize(needle);
    assert!(text.contains(&needle), "{needle:?} not found in:\n{text}");
}

/// An amount as the PDF prints it, e.g. `26.20 USD`.
pub fn usd(cents: i64) -> String {
    tollgate_domain::currency::money(cents, "USD")
}

/// The finalized invoice `name` as stored.
pub async fn stored(app: &TestApp, tenant: &Tenant, name: &str) -> StoredInvoice {
    app.store
        .invoice(&tenant.id, &name.into())
        .await
        .expect("read invoice")
        .unwrap_or_else(|| panic!("{name} is not finalized"))
}

/// The charge attempts of invoice `name`, oldest first.
pub async fn attempts(app: &TestApp, tenant: &Tenant, name: &str) -> Vec<ChargeRecord> {
    app.store
        .invoice_charges(&tenant.id, &name.into())
        .await
        .expect("read charges")
}

/// The sum of the lines of `kind` of a stored invoice.
pub fn lines_total(inv: &StoredInvoice, kind: LineKind) -> i64 {
    inv.invoice
        .lines
        .iter()
        .filter(|l| l.kind == kind)
        .map(|l| l.amount_cents)
        .sum()
}

/// The status of a stored invoice.
pub fn status(inv: &StoredInvoice) -> InvoiceStatus {
    inv.invoice.status
}

/// A tenant on `plan` created at `at` (so that its periods start there), with
/// an admin token and, if given, a primary card.
pub async fn billed_tenant(
    app: &TestApp,
    name: &str,
    plan: &str,
    at: &str,
    primary: Option<&str>,
) -> (Tenant, String) {
    app.clock.set(ts(at));
    let tenant = app.tenant_on(name, plan).await;
    let admin = app.token(&tenant, Role::Admin).await;
    if let Some(token) = primary {
        let created = app.post(PAYMENT_METHODS, &admin, card(token)).await;
        assert_eq!(created.status, 200, "{}", created.body);
    }
    (tenant, admin)
}
