//! Invoicing through the binary: a month run with `jobs run --now`, the
//! invoice list, a PDF file, refunds (partial and whole, as credit notes),
//! cancellations and the OVERDUE path.

use jiff::Timestamp;
use tollgate_domain::contact::Contact;
use tollgate_domain::payment::{PaymentMethod, PaymentRole};
use tollgate_store::PaymentChange;
use tollgate_testkit::{TestDatabase, each_backend};

use crate::support::{expect_ok, open_store, tollgate};

/// Gives the tenant a primary card, as `POST billing/payment_methods` would.
pub async fn card(db: &TestDatabase, tenant: &str, token: &str) {
    let store = open_store(db).await;
    let t = store.tenant_by_name(tenant).await.unwrap().unwrap();
    let method = PaymentMethod {
        name: format!("pm-{tenant}"),
        role: PaymentRole::Primary,
        provider: "test".into(),
        token: token.into(),
        display: "test card ending 4242".into(),
        contact: Contact {
            address1: "1 Main St".into(),
            city: "Boston".into(),
            country: "US".into(),
            ..Contact::default()
        },
        created_at: "2026-09-01T00:00:00Z".parse().unwrap(),
    };
    store
        .change_payment_methods(
            &t.id,
            &PaymentChange::Create {
                method: Box::new(method),
                requested: Some(PaymentRole::Primary),
            },
            "test",
            Timestamp::now(),
        )
        .await
        .unwrap();
}

fn write_events(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("september.jsonl");
    // 7 million requests: 5 free, 2 × 60 ¢ = 120 ¢, plus the 2500 ¢ fee.
    std::fs::write(
        &path,
        concat!(
            r#"{"id":"s1","metric_label":"lb_requests","object_name":"lb-a","quantity":4000000,"timestamp":"2026-09-10T10:00:00Z"}"#,
            "\n",
            r#"{"id":"s2","metric_label":"lb_requests","object_name":"lb-a","quantity":3000000,"timestamp":"2026-09-20T10:00:00Z"}"#,
            "\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn a_month_is_closed_charged_listed_printed_and_refunded_with_the_cli() {
    each_backend(|db| async move {
        let scratch = tempfile::TempDir::new().unwrap();
        expect_ok(
            tollgate(
                &db,
                &[
                    "tenant",
                    "create",
                    "acme",
                    "--plan",
                    "individual",
                    "--since",
                    "2026-09-01T00:00:00Z",
                ],
            )
            .await,
        );
        card(&db, "acme", "tok-visa-4242").await;
        let events = write_events(scratch.path());
        expect_ok(
            tollgate(
                &db,
                &["usage", "import", "--tenant", "acme", events.to_str().unwrap()],
            )
            .await,
        );

        // Before the grace is over nothing is finalized.
        let early = expect_ok(tollgate(&db, &["jobs", "run", "all", "--now", "2026-10-01T12:00:00Z"]).await);
        assert!(early.contains("period-close: 0 invoices finalized"), "{early}");
        let list = expect_ok(tollgate(&db, &["invoice", "list", "--tenant", "acme"]).await);
        assert!(list.contains("inv-2026-09-0001  PENDING"), "{list}");

        let run = expect_ok(tollgate(&db, &["jobs", "run", "all", "--now", "2026-10-02T00:00:00Z"]).await);
        assert!(run.contains("period-close: 1 invoice finalized"), "{run}");
        assert!(run.contains("charge: 1 charge round"), "{run}");
        let again = expect_ok(tollgate(&db, &["jobs", "run", "all", "--now", "2026-10-02T00:00:00Z"]).await);
        assert!(again.contains("period-close: 0 invoices finalized"), "{again}");
        assert!(again.contains("charge: 0 charge rounds"), "{again}");

        let list = expect_ok(tollgate(&db, &["invoice", "list", "--tenant", "acme"]).await);
        let line = list
            .lines()
            .find(|l| l.starts_with("inv-2026-09-0001"))
            .unwrap_or_else(|| panic!("{list}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1], "PAID", "{line}");
        assert_eq!(cells[cells.len() - 3..], ["26.20", "0.00", "USD"], "{line}");

        let show = expect_ok(tollgate(&db, &["invoice", "show", "inv-2026-09-0001"]).await);
        assert!(
            show.contains("HTTP Load Balancer Requests") || show.contains("lb"),
            "{show}"
        );
        assert!(show.contains("SUCCEEDED"), "{show}");
        // The lines are one table, amounts right-aligned under their header
        // however long a description or unit ("million requests") is.
        let lines: Vec<&str> = show
            .lines()
            .skip_while(|l| !l.starts_with("LINE "))
            .take_while(|l| !l.is_empty())
            .collect();
        assert!(lines[0].ends_with("AMOUNT (USD)"), "{show}");
        assert!(lines.iter().any(|l| l.contains("million requests")), "{show}");
        assert!(lines.last().unwrap().starts_with("total "), "{show}");
        assert!(lines.last().unwrap().ends_with(" 26.20"), "{show}");
        for l in &lines {
            assert_eq!(l.chars().count(), lines[0].chars().count(), "{show}");
        }

        let pdf = scratch.path().join("september.pdf");
        expect_ok(
            tollgate(
                &db,
                &[
                    "invoice",
                    "pdf",
                    "inv-2026-09-0001",
                    "--tenant",
                    "acme",
                    "-o",
                    pdf.to_str().unwrap(),
                ],
            )
            .await,
        );
        assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-"));

        let cancel = tollgate(&db, &["invoice", "cancel", "inv-2026-09-0001"]).await;
        assert!(!cancel.ok && cancel.stderr.contains("PAID"), "{}", cancel.stderr);
        // A reason is required; amounts are exact, positive, at most two
        // decimals. Nothing is written on any refusal.
        let refund = |args: &'static [&'static str]| {
            let db = &db;
            async move {
                let mut all = vec!["invoice", "refund", "inv-2026-09-0001"];
                all.extend_from_slice(args);
                tollgate(db, &all).await
            }
        };
        let no_reason = refund(&["--amount", "6.20"]).await;
        assert!(
            !no_reason.ok && no_reason.stderr.contains("--reason"),
            "{}",
            no_reason.stderr
        );
        for (amount, says) in [
            ("0", "more than zero"),
            ("-1", "such as"),
            ("6.205", "more than two decimals"),
            ("six", "such as"),
        ] {
            let flag = format!("--amount={amount}");
            let bad = tollgate(
                &db,
                &["invoice", "refund", "inv-2026-09-0001", &flag, "--reason", "x"],
            )
            .await;
            assert!(
                !bad.ok && bad.stderr.contains("amount: ") && bad.stderr.contains(says),
                "{amount}: {}",
                bad.stderr
            );
        }
        let blank = refund(&["--reason", "  "]).await;
        assert!(
            !blank.ok && blank.stderr.contains("reason: is required"),
            "{}",
            blank.stderr
        );
        let too_much = refund(&["--amount", "26.21", "--reason", "goodwill"]).await;
        assert!(
            !too_much.ok && too_much.stderr.contains("has 26.20 USD left to refund"),
            "{}",
            too_much.stderr
        );
        {
            let store = open_store(&db).await;
            let t = store.tenant_by_name("acme").await.unwrap().unwrap();
            assert!(store.credit_notes(&t.id).await.unwrap().is_empty());
        }

        // Part of it: a credit note; the invoice stays PAID.
        let month = Timestamp::now().strftime("%Y-%m").to_string();
        let first = format!("cn-{month}-0001");
        let partial = expect_ok(refund(&["--amount", "6.20", "--reason", "outage on the 3rd"]).await);
        assert_eq!(
            partial.trim(),
            format!("inv-2026-09-0001: PAID (credit note {first}: 6.20 USD refunded, 20.00 USD remains)")
        );
        let show = expect_ok(tollgate(&db, &["invoice", "show", "inv-2026-09-0001"]).await);
        assert!(show.contains("refunded: 6.20 USD of 26.20"), "{show}");
        assert!(
            show.contains(&first) && show.contains("outage on the 3rd"),
            "{show}"
        );
        // The rest (the default): REFUNDED.
        let rest = expect_ok(refund(&["--reason", "the customer left"]).await);
        let second = format!("cn-{month}-0002");
        assert_eq!(
            rest.trim(),
            format!("inv-2026-09-0001: REFUNDED (credit note {second}: 20.00 USD refunded, nothing remains)")
        );
        let notes = expect_ok(tollgate(&db, &["invoice", "credit-notes", "--tenant", "acme"]).await);
        let rows: Vec<Vec<&str>> = notes.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(rows[0][..4], ["NAME", "TENANT", "INVOICE", "CREATED"], "{notes}");
        assert_eq!(rows.len(), 3, "{notes}");
        assert_eq!(
            rows[1][..3],
            [second.as_str(), "acme", "inv-2026-09-0001"],
            "{notes}"
        );
        assert!(
            rows[1].contains(&"SUCCEEDED") && rows[1].contains(&"20.00"),
            "{notes}"
        );
        assert_eq!(rows[2][0], first, "{notes}");
        assert!(notes.contains("outage on the 3rd"), "{notes}");
        let by_invoice = expect_ok(tollgate(&db, &["invoice", "credit-notes", "inv-2026-09-0001"]).await);
        assert_eq!(by_invoice, notes);
        let none = expect_ok(
            tollgate(
                &db,
                &["invoice", "credit-notes", "--tenant", "acme", "inv-1999-01-0001"],
            )
            .await,
        );
        assert_eq!(none.lines().count(), 1, "only the header: {none}");
        let list = expect_ok(tollgate(&db, &["invoice", "list", "--tenant", "acme"]).await);
        let line = list.lines().find(|l| l.starts_with("inv-2026-09-0001")).unwrap();
        assert_eq!(
            line.split_whitespace().collect::<Vec<_>>()[..2],
            ["inv-2026-09-0001", "REFUNDED"]
        );
        assert!(line.ends_with("26.20     26.20  USD"), "{line}");

        // Each credit note has its PDF.
        let cn_pdf = scratch.path().join("credit.pdf");
        let written = expect_ok(
            tollgate(
                &db,
                &[
                    "invoice",
                    "credit-note-pdf",
                    &first,
                    "-o",
                    cn_pdf.to_str().unwrap(),
                ],
            )
            .await,
        );
        assert_eq!(written.trim(), cn_pdf.to_str().unwrap());
        assert!(std::fs::read(&cn_pdf).unwrap().starts_with(b"%PDF-"));
        let missing = tollgate(&db, &["invoice", "credit-note-pdf", "cn-1999-01-0001"]).await;
        assert!(
            !missing.ok && missing.stderr.contains("no credit note"),
            "{}",
            missing.stderr
        );

        // Recorded, under keys derived from the charge's and the credit
        // note's, by the operator.
        {
            let store = open_store(&db).await;
            let t = store.tenant_by_name("acme").await.unwrap().unwrap();
            let refunds = store
                .invoice_refunds(&t.id, &"inv-2026-09-0001".into())
                .await
                .unwrap();
            let charges = store
                .invoice_charges(&t.id, &"inv-2026-09-0001".into())
                .await
                .unwrap();
            assert_eq!(refunds.len(), 2, "{refunds:?}");
            let summary: Vec<_> = refunds
                .iter()
                .map(|r| (r.state, r.amount_cents, r.actor.as_str(), r.reason.as_str()))
                .collect();
            assert_eq!(
                summary,
                [
                    (
                        tollgate_store::RefundState::Succeeded,
                        620,
                        "operator",
                        "outage on the 3rd"
                    ),
                    (
                        tollgate_store::RefundState::Succeeded,
                        2000,
                        "operator",
                        "the customer left"
                    ),
                ]
            );
            assert_eq!(
                refunds[0].idempotency_key,
                format!("refund/{}/{first}", charges[0].idempotency_key)
            );
            assert!(
                refunds.iter().all(|r| r.refund_reference.is_some()),
                "{refunds:?}"
            );
        }
        let twice = refund(&["--reason", "again"]).await;
        assert!(
            !twice.ok && twice.stderr.contains("already refunded") && twice.stderr.contains("REFUNDED"),
            "{}",
            twice.stderr
        );
        let unknown = tollgate(&db, &["invoice", "refund", "inv-1999-01-0001", "--reason", "x"]).await;
        assert!(
            !unknown.ok && unknown.stderr.contains("inv-1999-01-0001"),
            "{}",
            unknown.stderr
        );
    })
    .await;
}

#[tokio::test]
async fn without_a_payment_method_an_invoice_becomes_overdue_and_can_be_cancelled() {
    each_backend(|db| async move {
        expect_ok(
            tollgate(
                &db,
                &[
                    "tenant",
                    "create",
                    "initech",
                    "--plan",
                    "individual",
                    "--since",
                    "2026-09-01T00:00:00Z",
                ],
            )
            .await,
        );
        let retries = ["--charge-retries", "1d,3d"];
        let run = |now: &'static str| {
            let db = &db;
            async move {
                let mut args = vec!["jobs", "run", "all", "--now", now];
                args.extend(retries);
                expect_ok(tollgate(db, &args).await)
            }
        };
        run("2026-10-02T00:00:00Z").await;
        let show = expect_ok(tollgate(&db, &["invoice", "show", "inv-2026-09-0001"]).await);
        assert!(
            show.contains("(ISSUED)") && show.contains("no primary or secondary payment method"),
            "{show}"
        );
        // Not due before the first retry.
        let quiet = run("2026-10-02T12:00:00Z").await;
        assert!(quiet.contains("charge: 0 charge rounds"), "{quiet}");
        run("2026-10-05T00:00:00Z").await;
        let show = expect_ok(tollgate(&db, &["invoice", "show", "inv-2026-09-0001"]).await);
        assert!(show.contains("(OVERDUE)"), "{show}");
        assert_eq!(show.matches("FAILED").count(), 3, "three rounds: {show}");
        // "Charge now": one more round, which fails the same way.
        let charged = expect_ok(tollgate(&db, &["invoice", "charge", "inv-2026-09-0001"]).await);
        assert!(
            charged.contains("inv-2026-09-0001: OVERDUE (attempt 4: FAILED, the tenant has no primary or secondary payment method)"),
            "{charged}"
        );
        let cancelled = expect_ok(tollgate(&db, &["invoice", "cancel", "inv-2026-09-0001"]).await);
        assert!(cancelled.contains("CANCELLED"), "{cancelled}");
    })
    .await;
}

/// Two processes running the jobs at once, over many tenants and months,
/// finalize each period once and charge each invoice once.
#[tokio::test]
async fn two_job_runners_at_once_invoice_and_charge_each_period_once() {
    each_backend(|db| async move {
        let tenants: Vec<String> = (0..6).map(|i| format!("t{i}")).collect();
        for t in &tenants {
            expect_ok(
                tollgate(
                    &db,
                    &[
                        "tenant",
                        "create",
                        t,
                        "--plan",
                        "individual",
                        "--since",
                        "2026-06-01T00:00:00Z",
                    ],
                )
                .await,
            );
            card(&db, t, "tok-visa-4242").await;
        }
        for now in [
            "2026-08-02T00:00:00Z",
            "2026-10-02T00:00:00Z",
            "2026-11-02T00:00:00Z",
        ] {
            let args = ["jobs", "run", "all", "--now", now];
            let (a, b) = tokio::join!(tollgate(&db, &args), tollgate(&db, &args));
            expect_ok(a);
            expect_ok(b);
        }
        let store = open_store(&db).await;
        for t in &tenants {
            let tenant = store.tenant_by_name(t).await.unwrap().unwrap();
            let invoices = store.invoices(&tenant.id).await.unwrap();
            let names: Vec<&str> = invoices.iter().map(|i| i.invoice.name.as_str()).collect();
            assert_eq!(
                names,
                [
                    "inv-2026-10-0005",
                    "inv-2026-09-0004",
                    "inv-2026-08-0003",
                    "inv-2026-07-0002",
                    "inv-2026-06-0001"
                ],
                "{t}"
            );
            for i in &invoices {
                assert_eq!(
                    i.invoice.status,
                    tollgate_domain::invoice::InvoiceStatus::Paid,
                    "{t} {}",
                    i.invoice.name
                );
                let charges = store.invoice_charges(&tenant.id, &i.invoice.name).await.unwrap();
                let paid = charges
                    .iter()
                    .filter(|c| c.outcome == tollgate_store::ChargeOutcome::Succeeded)
                    .count();
                assert_eq!(
                    (charges.len(), paid),
                    (1, 1),
                    "{t} {}: {charges:?}",
                    i.invoice.name
                );
            }
        }
    })
    .await;
}

/// Dunning from the command line: `jobs run suspend` suspends a tenant whose
/// invoice stays OVERDUE past `--suspend-after` (14 days; `off` never),
/// `tenant list` and `tenant show` say so, `tenant reinstate` lifts it.
#[tokio::test]
async fn jobs_run_suspend_suspends_past_the_delay_and_tenant_reinstate_lifts_it() {
    each_backend(|db| async move {
        expect_ok(
            tollgate(
                &db,
                &[
                    "tenant",
                    "create",
                    "initech",
                    "--plan",
                    "individual",
                    "--since",
                    "2026-09-01T00:00:00Z",
                ],
            )
            .await,
        );
        card(&db, "initech", "tok-declined-0002").await;
        expect_ok(tollgate(&db, &["jobs", "run", "all", "--now", "2026-10-02T00:00:00Z"]).await);
        // The retries at +1, +3 and +7 days decline too: OVERDUE from 10-09.
        let run = expect_ok(tollgate(&db, &["jobs", "run", "all", "--now", "2026-10-09T00:00:00Z"]).await);
        assert!(
            run.contains("charge: 3 charge rounds") && run.contains("suspend: 0 tenants suspended"),
            "{run}"
        );
        let suspend = |now: &'static str, extra: &'static [&'static str]| {
            let db = &db;
            async move {
                let mut args = vec!["jobs", "run", "suspend", "--now", now];
                args.extend(extra);
                expect_ok(tollgate(db, &args).await)
            }
        };
        let early = suspend("2026-10-22T23:59:59Z", &[]).await;
        assert_eq!(early.trim(), "suspend: 0 tenants suspended");
        for longer in [&["--suspend-after", "off"][..], &["--suspend-after", "30d"]] {
            let none = suspend("2026-10-23T00:00:00Z", longer).await;
            assert_eq!(none.trim(), "suspend: 0 tenants suspended", "{longer:?}");
        }
        let bad = tollgate(&db, &["jobs", "run", "suspend", "--suspend-after", "soon"]).await;
        assert!(
            !bad.ok && bad.stderr.contains("--suspend-after"),
            "{}",
            bad.stderr
        );
        let done = suspend("2026-10-23T00:00:00Z", &[]).await;
        assert_eq!(done.trim(), "suspend: 1 tenant suspended");
        let again = suspend("2026-10-24T00:00:00Z", &[]).await;
        assert_eq!(again.trim(), "suspend: 0 tenants suspended");

        let list = expect_ok(tollgate(&db, &["tenant", "list"]).await);
        let row = list
            .lines()
            .find(|l| l.starts_with("initech "))
            .unwrap_or_else(|| panic!("{list}"));
        assert!(row.contains(" suspended "), "{list}");
        let show = expect_ok(tollgate(&db, &["tenant", "show", "initech"]).await);
        assert!(
            show.contains(
                "status:  suspended since 2026-10-23T00:00:00Z by tollgate/dunning for unpaid invoices \
                 inv-2026-09-0001"
            ),
            "{show}"
        );

        let lifted = expect_ok(tollgate(&db, &["tenant", "reinstate", "initech"]).await);
        assert_eq!(lifted.trim(), "reinstated tenant initech: active");
        let twice = tollgate(&db, &["tenant", "reinstate", "initech"]).await;
        assert!(
            !twice.ok && twice.stderr.contains("tenant initech is not suspended"),
            "{}",
            twice.stderr
        );
        let show = expect_ok(tollgate(&db, &["tenant", "show", "initech"]).await);
        assert!(show.contains("status:  active"), "{show}");
        // Forgiven: the same invoice suspends no more.
        let later = suspend("2026-12-01T00:00:00Z", &[]).await;
        assert_eq!(later.trim(), "suspend: 0 tenants suspended");
        let audit = expect_ok(tollgate(&db, &["audit", "list", "--tenant", "initech", "--limit", "2"]).await);
        let actions: Vec<&str> = audit
            .lines()
            .skip(1)
            .filter(|l| !l.starts_with(' '))
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect();
        assert_eq!(actions, ["tenant.reinstated", "tenant.suspended"], "{audit}");
    })
    .await;
}
