//! Golden stored records: every form of every JSON document Tollgate has ever
//! written, committed under `tests/golden/` and read back here, forever.
//!
//! - `*.v1.json` were written by Tollgate before stored formats existed
//!   (captured from main on 2026-11-30 by serializing the domain types, as the
//!   store then did). They must always read back to the same values.
//! - `*.v2.json` are the current formats (and `credit_note_lines.v1.json`,
//!   whose document had formats from its start). The writer must produce them byte
//!   for byte: changing what is written means adding a format (and a fixture),
//!   never editing one. A missing current fixture is written when
//!   `TOLLGATE_GOLDEN_WRITE=1`, to be reviewed and committed.
//! - The catalog is stored as the operator's TOML; `catalog.v1.toml` is the
//!   built-in catalog of format 1 as published by every database so far.
//!
//! Reading goes through the store too: a row holding each v1 document reads
//! back through the `Store` API on every engine.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use rust_decimal::Decimal;
use tollgate_domain::catalog::{self, Issuer};
use tollgate_domain::contact::{Contact, ContactType};
use tollgate_domain::credit_note::CreditNoteLine;
use tollgate_domain::invoice::{AppliedDiscount, Invoice, InvoiceLine, InvoiceStatus, LineKind};
use tollgate_domain::quota::{Limit, QuotaKey, QuotaSpec};
use tollgate_domain::rate_limit::{RateLimit, RateUnit};
use tollgate_domain::rating::Totals;
use tollgate_domain::transition::{DeletionReason, TransitionPayload};
use tollgate_store::{StoreError, records};
use tollgate_testkit::each_backend;

use crate::raw_pool;
use crate::{open, t, tenant};

fn golden(file: &str) -> String {
    let path = dir().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// A current-format fixture: what the writer produces now must be exactly it.
fn assert_written_as(file: &str, written: &str) {
    let path = dir().join(file);
    if !path.exists() && std::env::var_os("TOLLGATE_GOLDEN_WRITE").is_some() {
        std::fs::write(&path, written).unwrap();
    }
    let committed = golden(file);
    assert_eq!(
        written, committed,
        "the stored form of {file} changed: add a new format (and its fixture) instead"
    );
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn contact(kind: ContactType) -> Contact {
    Contact {
        contact_type: kind,
        address1: "1 Main Street".into(),
        address2: "Suite 5".into(),
        city: "Springfield".into(),
        state: "Oregon".into(),
        state_code: "OR".into(),
        county: "Lane".into(),
        zip_code: "97477".into(),
        country: "US".into(),
        phone_number: "+1 541 555 0100".into(),
    }
}

/// The invoice `invoice.v1.json` holds.
fn invoice() -> Invoice {
    let line = |kind,
                description: &str,
                metric: Option<&str>,
                q,
                unit: &str,
                price,
                free,
                amount,
                adjusts: Option<&str>| {
        InvoiceLine {
            kind,
            description: description.into(),
            metric_label: metric.map(Into::into),
            quantity: d(q),
            unit: unit.into(),
            unit_price_cents: d(price),
            free_quantity: d(free),
            amount_cents: amount,
            adjusts: adjusts.map(Into::into),
            pricing: None,
        }
    };
    Invoice {
        name: "inv-2026-11-0002".into(),
        status: InvoiceStatus::Issued,
        subscription_id: "6f1c2d1e-8a44-4b61-9d1a-3c0e5b7a9f10".into(),
        period_index: 1,
        period_start: t("2026-10-15T09:30:00Z"),
        period_end: t("2026-11-15T09:30:00Z"),
        plan: "individual".into(),
        plan_title: "Individual".into(),
        currency: "USD".into(),
        lines: vec![
            line(
                LineKind::Fee,
                "Individual plan, 2026-10-15 – 2026-11-15",
                None,
                "1",
                "month",
                "2500",
                "0",
                2500,
                None,
            ),
            line(
                LineKind::Usage,
                "API requests",
                Some("requests"),
                "3.000001",
                "1M requests",
                "60",
                "1",
                120,
                None,
            ),
            line(
                LineKind::Usage,
                "Storage",
                Some("storage_gb"),
                "12.5",
                "GB",
                "0.5",
                "5",
                4,
                None,
            ),
            line(
                LineKind::Adjustment,
                "Late usage for inv-2026-10-0001",
                None,
                "0",
                "",
                "0",
                "0",
                300,
                Some("inv-2026-10-0001"),
            ),
        ],
        coupons: vec![
            AppliedDiscount {
                title: "Launch 10 %".into(),
                terms: "10 %".into(),
            },
            AppliedDiscount {
                title: "Goodwill".into(),
                terms: "1.00 USD".into(),
            },
        ],
        taxes: Vec::new(),
        tax_note: None,
        credits: Vec::new(),
        totals: Totals {
            subtotal: 2924,
            discount: 392,
            credits: 0,
            tax: 0,
            total: 2532,
        },
        issued_at: Some(t("2026-11-18T09:30:00.123456Z")),
        issuer: None,
    }
}

fn issuer() -> Issuer {
    Issuer {
        name: "Tollgate Billing GmbH".into(),
        address: vec![
            "Friedrichstraße 123".into(),
            "10117 Berlin".into(),
            "Germany".into(),
        ],
        tax_id: Some("DE123456789".into()),
        email: Some("billing@tollgate.example".into()),
    }
}

fn payload() -> TransitionPayload {
    TransitionPayload {
        payment_provider_token: Some("tok_visa".into()),
        billing_address: Some(contact(ContactType::Billing)),
        payment_address: Some(contact(ContactType::Payment)),
        domain: Some("globex.example.com".into()),
        subscribe_addons: vec!["f5xc-waap-advanced".into()],
        unsubscribe_addons: vec!["f5xc-bot-defense-standard".into()],
        deletion_reason: Some(DeletionReason::NotJustifyCosts),
        deletion_feedback: Some("too expensive\nfor us".into()),
        create_support_ticket: true,
        support_ticket_info: Some("please call".into()),
    }
}

fn spec() -> QuotaSpec {
    let key = |s: &str| QuotaKey::parse("k", s).unwrap();
    let rate = |rate, burst, unit| RateLimit { rate, burst, unit };
    QuotaSpec {
        object_limits: BTreeMap::from([
            (key("http_loadbalancer"), Limit::Max(25)),
            (key("namespace"), Limit::Unlimited),
        ]),
        resource_limits: BTreeMap::from([(key("vcpu"), Limit::Max(2_500_000))]),
        api_limits: BTreeMap::from([
            (
                key("ves.io.schema.quota.CustomAPI.Reserve"),
                rate(100, 200, RateUnit::Second),
            ),
            (
                key("ves.io.schema.quota.CustomAPI.QuotaUsage"),
                rate(-1, 0, RateUnit::Minute),
            ),
            // Stored before rate 0 was refused: still reads back (and is ignored).
            (key("legacy.zero.Rate"), rate(0, 0, RateUnit::Day)),
        ]),
        alert_thresholds: None,
    }
}

#[test]
fn every_format_one_record_reads_back() {
    assert_eq!(
        records::decode_invoice(&golden("invoice.v1.json")).unwrap(),
        invoice()
    );
    assert_eq!(
        records::decode_transition_payload(&golden("transition_payload.v1.json")).unwrap(),
        payload()
    );
    assert_eq!(
        records::decode_transition_payload(&golden("transition_payload.v1.empty.json")).unwrap(),
        TransitionPayload::default()
    );
    assert_eq!(
        records::decode_quota_spec(&golden("quota_spec.v1.json")).unwrap(),
        spec()
    );
    assert_eq!(
        records::decode_contact("c", &golden("contact.v1.json")).unwrap(),
        contact(ContactType::Billing)
    );
    assert_eq!(
        records::decode_contacts("c", &golden("contacts.v1.json")).unwrap(),
        vec![contact(ContactType::Billing), contact(ContactType::Payment)]
    );
}

#[test]
fn current_formats_are_written_exactly_as_committed_and_read_back() {
    let mut issued = invoice();
    issued.issuer = Some(issuer());
    let text = records::encode_invoice(&issued).unwrap();
    assert_written_as("invoice.v2.json", &text);
    assert_eq!(records::decode_invoice(&text).unwrap(), issued);

    // An invoice with a meter's flat amount, tiered and package lines and a
    // true-up is format 3; without them, still format 2 (above).
    let priced = priced_invoice();
    let text = records::encode_invoice(&priced).unwrap();
    assert_written_as("invoice.v3.json", &text);
    assert_eq!(records::decode_invoice(&text).unwrap(), priced);

    // With taxes (or a tax note): format 4.
    let mut taxed = invoice();
    taxed.issuer = Some(issuer());
    taxed.taxes = vec![tollgate_domain::rating::TaxLine {
        name: "VAT".into(),
        percent: d("19"),
        taxable_cents: 2532,
        amount_cents: 481,
    }];
    taxed.totals.tax = 481;
    taxed.totals.total += 481;
    taxed.check().unwrap();
    let text = records::encode_invoice(&taxed).unwrap();
    assert_written_as("invoice.v4.json", &text);
    assert_eq!(records::decode_invoice(&text).unwrap(), taxed);
    let mut noted = invoice();
    noted.tax_note = Some("Reverse charge: the customer (tax id DE1) accounts for the tax.".into());
    let text = records::encode_invoice(&noted).unwrap();
    assert!(text.starts_with(r#"{"format":4,"#), "{text}");
    assert_eq!(records::decode_invoice(&text).unwrap(), noted);

    // Paid in part by prepaid credits (tax on what they left): format 5.
    // 2924 − 392 discount = 2532; 1000 + 532 of credits leave 1000, taxed
    // 19 % = 190; total 1190.
    let mut credited = taxed.clone();
    credited.apply_credits(vec![
        tollgate_domain::invoice::AppliedCredit {
            grant: "cg_promo".into(),
            description: "Launch promotion".into(),
            amount_cents: 1000,
        },
        tollgate_domain::invoice::AppliedCredit {
            grant: "cg_prepaid".into(),
            description: "Prepaid balance".into(),
            amount_cents: 532,
        },
    ]);
    assert_eq!(
        (
            credited.totals.credits,
            credited.totals.tax,
            credited.totals.total
        ),
        (1532, 190, 1190)
    );
    assert_eq!(credited.taxes[0].taxable_cents, 1000);
    credited.check().unwrap();
    let text = records::encode_invoice(&credited).unwrap();
    assert_written_as("invoice.v5.json", &text);
    assert_eq!(records::decode_invoice(&text).unwrap(), credited);

    let text = records::encode_transition_payload(&payload()).unwrap();
    assert_written_as("transition_payload.v2.json", &text);
    assert_eq!(records::decode_transition_payload(&text).unwrap(), payload());

    let text = records::encode_quota_spec(&spec()).unwrap();
    assert_written_as("quota_spec.v2.json", &text);
    assert_eq!(records::decode_quota_spec(&text).unwrap(), spec());
    // A spec with alert thresholds is format 3; without, still format 2.
    let with_thresholds = QuotaSpec {
        alert_thresholds: Some(vec![50, 90, 100]),
        ..spec()
    };
    let text = records::encode_quota_spec(&with_thresholds).unwrap();
    assert_written_as("quota_spec.v3.json", &text);
    assert_eq!(records::decode_quota_spec(&text).unwrap(), with_thresholds);

    let text = records::encode_contact("c", &contact(ContactType::Billing)).unwrap();
    assert_written_as("contact.v2.json", &text);
    assert_eq!(
        records::decode_contact("c", &text).unwrap(),
        contact(ContactType::Billing)
    );

    let both = [contact(ContactType::Billing), contact(ContactType::Payment)];
    let text = records::encode_contacts("c", &both).unwrap();
    assert_written_as("contacts.v2.json", &text);
    assert_eq!(records::decode_contacts("c", &text).unwrap(), both);

    let lines = credit_note_lines();
    let text = records::encode_credit_note_lines(&lines).unwrap();
    assert_written_as("credit_note_lines.v1.json", &text);
    assert_eq!(records::decode_credit_note_lines(&text).unwrap(), lines);
}

/// An invoice with every line kind of format 3: an add-on, a meter's flat amount, a
/// graduated line (two tiers), a package line and a true-up.
fn priced_invoice() -> Invoice {
    use tollgate_domain::catalog::ModelKind;
    use tollgate_domain::invoice::Pricing;
    use tollgate_domain::rating::{Step, StepKind};
    let mut inv = invoice();
    inv.issuer = Some(issuer());
    let plain = |kind, description: &str, metric: Option<&str>, price: &str, amount| InvoiceLine {
        kind,
        description: description.into(),
        metric_label: metric.map(Into::into),
        quantity: d("1"),
        unit: "period".into(),
        unit_price_cents: d(price),
        free_quantity: d("0"),
        amount_cents: amount,
        adjusts: None,
        pricing: None,
    };
    inv.lines = vec![
        plain(
            LineKind::Addon,
            "WAAP add-on, prorated: 15.5 of 31 days",
            None,
            "2000",
            1000,
        ),
        plain(
            LineKind::MeterFee,
            "API requests: flat amount",
            Some("requests"),
            "1000",
            1000,
        ),
        InvoiceLine {
            kind: LineKind::Usage,
            description: "API requests".into(),
            metric_label: Some("requests".into()),
            quantity: d("150"),
            unit: "1M requests".into(),
            unit_price_cents: d("0"),
            free_quantity: d("0"),
            amount_cents: 6500,
            adjusts: None,
            pricing: Some(Pricing {
                model: ModelKind::Graduated,
                steps: vec![
                    Step {
                        kind: StepKind::Tier {
                            from: d("1"),
                            to: Some(d("100")),
                        },
                        quantity: d("100"),
                        unit_price_cents: d("50"),
                        flat_cents: d("0"),
                        amount_cents: d("5000"),
                    },
                    Step {
                        kind: StepKind::Tier {
                            from: d("101"),
                            to: None,
                        },
                        quantity: d("50"),
                        unit_price_cents: d("25"),
                        flat_cents: d("250"),
                        amount_cents: d("1500"),
                    },
                ],
            }),
        },
        InvoiceLine {
            kind: LineKind::Usage,
            description: "Storage".into(),
            metric_label: Some("storage_gb".into()),
            quantity: d("25"),
            unit: "GB".into(),
            unit_price_cents: d("0"),
            free_quantity: d("5"),
            amount_cents: 200,
            adjusts: None,
            pricing: Some(Pricing {
                model: ModelKind::Package,
                steps: vec![Step {
                    kind: StepKind::Package { size: d("10") },
                    quantity: d("2"),
                    unit_price_cents: d("100"),
                    flat_cents: d("0"),
                    amount_cents: d("200"),
                }],
            }),
        },
        plain(
            LineKind::Minimum,
            "Minimum commitment of 100.00 USD: usage came to 77.00",
            None,
            "2300",
            2300,
        ),
    ];
    inv.totals = Totals {
        subtotal: 11000,
        discount: 0,
        credits: 0,
        tax: 0,
        total: 11000,
    };
    inv.coupons = Vec::new();
    inv
}

/// A whole refund's lines: a fee, a usage line with a sub-cent price, and
/// the discount.
fn credit_note_lines() -> Vec<CreditNoteLine> {
    vec![
        CreditNoteLine {
            description: "Teams plan, prorated: 15.5 of 31 days".into(),
            quantity: d("1"),
            unit: "period".into(),
            unit_price_cents: d("30000"),
            amount_cents: 15000,
        },
        CreditNoteLine {
            description: "Synthetic Checks".into(),
            quantity: d("120"),
            unit: "thousand checks".into(),
            unit_price_cents: d("0.25"),
            amount_cents: 30,
        },
        CreditNoteLine {
            description: "Discount: Welcome (10 %)".into(),
            quantity: d("1"),
            unit: "discount".into(),
            unit_price_cents: d("-1503"),
            amount_cents: -1503,
        },
    ]
}

#[test]
fn an_upgraded_record_is_rewritten_in_the_current_format() {
    let old = records::decode_invoice(&golden("invoice.v1.json")).unwrap();
    let rewritten = records::encode_invoice(&old).unwrap();
    assert!(rewritten.starts_with(r#"{"format":2,"#), "{rewritten}");
    assert_eq!(records::decode_invoice(&rewritten).unwrap(), old);
}

#[test]
fn a_format_from_the_future_is_refused_not_half_read() {
    let future = golden("invoice.v2.json").replacen(r#""format":2"#, r#""format":6"#, 1);
    let e = records::decode_invoice(&future).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
    assert!(
        e.to_string().contains("format 6 was written by a newer Tollgate"),
        "{e}"
    );
    let spec = golden("quota_spec.v2.json").replacen(r#""format":2"#, r#""format":7"#, 1);
    assert!(records::decode_quota_spec(&spec).is_err());
    let lines = golden("credit_note_lines.v1.json").replacen(r#""format":1"#, r#""format":2"#, 1);
    assert!(records::decode_credit_note_lines(&lines).is_err());
}

#[test]
fn the_format_one_catalog_parses_to_the_builtin_catalog() {
    let stored = catalog::parse("catalog.v1.toml", &golden("catalog.v1.toml")).unwrap();
    let mut builtin = catalog::Catalog::builtin();
    // The built-in catalog has since gained an issuer; everything else is the same.
    builtin.issuer = None;
    assert_eq!(stored, builtin);
}

/// v1 documents put into real rows (as an older Tollgate left them) read back
/// through the store on every engine.
#[tokio::test]
async fn format_one_rows_read_back_through_the_store() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let raw = raw_pool(&db).await;
        let now = t("2026-12-02T00:00:00Z");

        // A finalized invoice.
        let sub = store.subscriptions(&a.id).await.unwrap().remove(0);
        let mut inv = invoice();
        inv.subscription_id = sub.id.clone();
        assert!(
            store
                .finalize_invoice(&a.id, &inv, Some(now), "test", now)
                .await
                .unwrap()
        );
        sqlx::query("UPDATE invoices SET document = $1 WHERE tenant_id = $2 AND name = $3")
            .bind(golden("invoice.v1.json"))
            .bind(a.id.as_str())
            .bind(inv.name.as_str())
            .execute(&raw)
            .await
            .unwrap();
        let stored = store.invoice(&a.id, &inv.name).await.unwrap().unwrap();
        assert_eq!(stored.invoice, invoice());

        // A quota object's spec.
        let q = crate::quotas::quota("prod", 10);
        store.insert_quota(&a.id, &q, "test").await.unwrap();
        sqlx::query("UPDATE quota_objects SET spec = $1 WHERE tenant_id = $2")
            .bind(golden("quota_spec.v1.json"))
            .bind(a.id.as_str())
            .execute(&raw)
            .await
            .unwrap();
        let read = store.quota(&a.id, "system", "prod").await.unwrap().unwrap();
        assert_eq!(read.spec, spec());

        // A plan transition's payload.
        let transition = tollgate_domain::transition::PlanTransition {
            id: uuid::Uuid::new_v4().to_string(),
            tenant_id: a.id.clone(),
            from_plan: "free".into(),
            to_plan: "individual".into(),
            catalog_version: 1,
            state: tollgate_domain::transition::TransitionState::WaitingForApproval,
            payload: TransitionPayload::default(),
            requested_by: "token-1".into(),
            created_at: now,
            updated_at: now,
            reason: None,
        };
        store.create_transition(&transition, "token-1").await.unwrap();
        sqlx::query("UPDATE plan_transitions SET payload = $1 WHERE id = $2")
            .bind(golden("transition_payload.v1.json"))
            .bind(&transition.id)
            .execute(&raw)
            .await
            .unwrap();
        let read = store.transition(&transition.id).await.unwrap().unwrap();
        assert_eq!(read.payload, payload());
    })
    .await;
}
