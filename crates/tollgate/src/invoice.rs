//! `tollgate invoice`: list, show, PDF, refund and cancel invoices; list
//! credit notes and write their PDFs.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use jiff::Timestamp;
use tollgate_app::JobContext;
use tollgate_app::catalogs::Versions;
use tollgate_app::refunds::RefundAsk;
use tollgate_app::{credit_notes, invoices, refunds};
use tollgate_domain::clock::SystemClock;
use tollgate_domain::currency::{format_minor, format_price, money};
use tollgate_domain::ids::InvoiceName;
use tollgate_domain::invoice::describe_step;
use tollgate_domain::tenant::Tenant;
use tollgate_store::{RefundRecord, Store};

use crate::cli::{ACTOR, find_tenant};
use crate::table::Table;

#[derive(Debug, Subcommand)]
pub enum InvoiceCommand {
    /// List a tenant's invoices, newest first (pending ones computed now).
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Show an invoice's lines and charge attempts.
    Show {
        name: String,
        /// Needed only when several tenants have an invoice of that name.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Write an invoice as a PDF file.
    Pdf {
        name: String,
        #[arg(long)]
        tenant: Option<String>,
        /// Where to write it (default: NAME.pdf).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Refund all or part of a PAID invoice through the payment provider
    /// that took the money, as a new credit note (→ REFUNDED once refunded
    /// in full; PAID until then).
    Refund {
        name: String,
        #[arg(long)]
        tenant: Option<String>,
        /// How much, in the invoice's currency, e.g. 12.34 (default:
        /// everything that remains).
        #[arg(long)]
        amount: Option<String>,
        /// Why the money is given back; printed on the credit note.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        payments: crate::provider::PaymentArgs,
    },
    /// List credit notes (one per refund), newest first: a tenant's, an
    /// invoice's, or every tenant's.
    CreditNotes {
        /// Only this invoice's.
        invoice: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Write a credit note as a PDF file.
    CreditNotePdf {
        name: String,
        /// Needed only when several tenants have a credit note of that name.
        #[arg(long)]
        tenant: Option<String>,
        /// Where to write it (default: NAME.pdf).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Cancel an ISSUED or OVERDUE invoice: it will not be charged (→ CANCELLED).
    Cancel {
        name: String,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Charge an ISSUED or OVERDUE invoice now: one more charge round,
    /// primary then secondary (e.g. once the customer fixed their card).
    Charge {
        name: String,
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        invoicing: crate::cli::InvoicingArgs,
        #[command(flatten)]
        payments: crate::provider::PaymentArgs,
    },
}

/// The tenant owning invoice `name`: the one given, or the only one that has it.
async fn owner(store: &dyn Store, tenant: Option<&str>, name: &str) -> Result<Tenant> {
    if let Some(t) = tenant {
        return find_tenant(store, t).await;
    }
    let mut found = Vec::new();
    for t in store.tenants().await? {
        if store.invoice(&t.id, &InvoiceName::new(name)).await?.is_some() {
            found.push(t);
        }
    }
    match found.len() {
        0 => bail!("no finalized invoice is named {name:?}; pending invoices need --tenant"),
        1 => Ok(found.remove(0)),
        _ => bail!(
            "several tenants have an invoice named {name:?} ({}); say which with --tenant",
            found
                .iter()
                .map(|t| t.name.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The tenant owning credit note `name`: the one given, or the only one that has it.
async fn credit_note_owner(store: &dyn Store, tenant: Option<&str>, name: &str) -> Result<Tenant> {
    if let Some(t) = tenant {
        return find_tenant(store, t).await;
    }
    let mut found = Vec::new();
    for t in store.tenants().await? {
        if store.credit_note(&t.id, name).await?.is_some() {
            found.push(t);
        }
    }
    match found.len() {
        0 => bail!("no credit note is named {name:?}"),
        1 => Ok(found.remove(0)),
        _ => bail!(
            "several tenants have a credit note named {name:?} ({}); say which with --tenant",
            found
                .iter()
                .map(|t| t.name.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Credit notes as a table.
fn credit_note_table(notes: &[(String, RefundRecord)]) -> Table {
    let mut table = Table::new(&[
        "NAME", "TENANT", "INVOICE", "CREATED", "STATE", ">AMOUNT", "CURRENCY", "REASON",
    ]);
    for (tenant, n) in notes {
        let state = match &n.failure {
            Some(why) => format!("{} ({why})", n.state.as_str()),
            None => n.state.as_str().to_owned(),
        };
        table.row([
            n.credit_note.clone(),
            tenant.clone(),
            n.invoice.to_string(),
            n.started_at.strftime("%Y-%m-%d %H:%M").to_string(),
            state,
            format_minor(n.amount_cents, &n.currency),
            n.currency.clone(),
            n.reason.split_whitespace().collect::<Vec<_>>().join(" "),
        ]);
    }
    table
}

pub async fn invoice(shared: Arc<dyn Store>, cmd: InvoiceCommand) -> Result<()> {
    let store = shared.as_ref();
    let versions = Versions::default();
    let now = Timestamp::now();
    match cmd {
        InvoiceCommand::List { tenant } => {
            let t = find_tenant(store, &tenant).await?;
            let all = invoices::tenant_invoices(store, &versions, &t.id, now).await?;
            let notes = store.credit_notes(&t.id).await?;
            let mut table = Table::new(&[
                "NAME",
                "STATUS",
                "PERIOD START",
                "PERIOD END",
                ">TOTAL",
                ">REFUNDED",
                "CURRENCY",
            ]);
            let at = |t: Timestamp| t.strftime("%Y-%m-%d %H:%M").to_string();
            for i in all {
                let theirs: Vec<RefundRecord> =
                    notes.iter().filter(|n| n.invoice == i.name).cloned().collect();
                table.row([
                    i.name.into_string(),
                    i.status.as_str().to_owned(),
                    at(i.period_start),
                    at(i.period_end),
                    format_minor(i.totals.total, &i.currency),
                    format_minor(refunds::refunded_cents(&theirs), &i.currency),
                    i.currency.to_string(),
                ]);
            }
            table.print();
        }
        InvoiceCommand::Show { name, tenant } => {
            let t = owner(store, tenant.as_deref(), &name).await?;
            let i = invoices::tenant_invoice(store, &versions, &t.id, &InvoiceName::new(name.as_str()), now)
                .await?
                .with_context(|| format!("tenant {} has no invoice {name:?}", t.name))?;
            println!(
                "{} ({}) of tenant {}: {} to {}, plan {}",
                i.name, i.status, t.name, i.period_start, i.period_end, i.plan_title
            );
            let unit_price = format!(">UNIT PRICE ({})", i.currency);
            let amount = format!(">AMOUNT ({})", i.currency);
            let mut lines = Table::new(&["LINE", ">QUANTITY", "UNIT", &unit_price, &amount]);
            for l in &i.lines {
                lines.row([
                    l.description.clone(),
                    l.quantity.to_string(),
                    l.unit.clone(),
                    match &l.pricing {
                        Some(p) => p.model.as_str().to_owned(),
                        None => format_price(l.unit_price_cents, &i.currency),
                    },
                    format_minor(l.amount_cents, &i.currency),
                ]);
                for step in l.pricing.iter().flat_map(|p| &p.steps) {
                    lines.row([
                        format!("  {}", describe_step(step, &i.currency)),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ]);
                }
            }
            for c in &i.coupons {
                lines.row([
                    format!("coupon {}: {}", c.title, c.terms),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
            }
            let mut sums = vec![
                ("subtotal".to_owned(), i.totals.subtotal),
                ("discount".to_owned(), i.totals.discount),
            ];
            for c in &i.credits {
                sums.push((format!("prepaid credits: {}", c.description), -c.amount_cents));
            }
            for tax in &i.taxes {
                sums.push((
                    format!("{} {} %", tax.name, tax.percent.normalize()),
                    tax.amount_cents,
                ));
            }
            sums.push(("total".to_owned(), i.totals.total));
            for (label, cents) in sums {
                lines.row([
                    label,
                    String::new(),
                    String::new(),
                    String::new(),
                    format_minor(cents, &i.currency),
                ]);
            }
            lines.print();
            if let Some(note) = &i.tax_note {
                println!("{note}");
            }
            let charges = store
                .invoice_charges(&t.id, &InvoiceName::new(name.as_str()))
                .await?;
            if !charges.is_empty() {
                println!();
                let mut attempts = Table::new(&[
                    ">ATTEMPT",
                    "AT",
                    "PAYMENT METHOD",
                    ">AMOUNT",
                    "OUTCOME",
                    "REFERENCE",
                    "REASON",
                ]);
                for c in charges {
                    attempts.row([
                        c.attempt.to_string(),
                        c.started_at.to_string(),
                        c.method.map_or_else(|| "-".to_owned(), |m| m.display),
                        format_minor(c.amount_cents, &c.currency),
                        c.outcome.as_str().to_owned(),
                        c.reference.unwrap_or_else(|| "-".to_owned()),
                        c.reason.unwrap_or_default(),
                    ]);
                }
                attempts.print();
            }
            let disputes = store
                .invoice_disputes(&t.id, &InvoiceName::new(name.as_str()))
                .await?;
            if !disputes.is_empty() {
                println!();
                let mut table = Table::new(&["DISPUTE", "AT", "PAYMENT", ">AMOUNT", "REASON"]);
                for d in disputes {
                    table.row([
                        d.dispute_id,
                        d.created_at.to_string(),
                        d.reference,
                        money(d.amount_cents, &d.currency),
                        d.reason,
                    ]);
                }
                table.print();
            }
            let notes = store
                .invoice_refunds(&t.id, &InvoiceName::new(name.as_str()))
                .await?;
            if !notes.is_empty() {
                println!();
                println!(
                    "refunded: {} {} of {}",
                    format_minor(refunds::refunded_cents(&notes), &i.currency),
                    i.currency,
                    format_minor(i.totals.total, &i.currency)
                );
                let rows: Vec<(String, RefundRecord)> =
                    notes.into_iter().map(|n| (t.name.to_string(), n)).collect();
                credit_note_table(&rows).print();
            }
        }
        InvoiceCommand::Pdf { name, tenant, output } => {
            let t = owner(store, tenant.as_deref(), &name).await?;
            let bytes = invoices::render_pdf(store, &versions, &t, &InvoiceName::new(name.as_str()), now)
                .await?
                .with_context(|| format!("tenant {} has no invoice {name:?}", t.name))?;
            let path = output.unwrap_or_else(|| PathBuf::from(format!("{name}.pdf")));
            std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
            println!("{}", path.display());
        }
        InvoiceCommand::Refund {
            name,
            tenant,
            amount,
            reason,
            payments,
        } => {
            let t = owner(store, tenant.as_deref(), &name).await?;
            let currency = RefundAsk::currency_of(store, &t.id, &InvoiceName::new(name.as_str())).await?;
            let ask = RefundAsk::parse(amount.as_deref(), &reason, &currency)?;
            // The provider and job context `jobs run charge` uses: a refund
            // goes where the charge went, under the charge's lease.
            let ctx = JobContext {
                store: shared.clone(),
                clock: Arc::new(SystemClock),
                providers: payments.providers()?,
                worker_id: crate::cli::worker_id(),
                catalogs: Default::default(),
                invoicing: Default::default(),
                retention: Default::default(),
                // Events these changes emit are delivered by the job loop.
                webhooks: tollgate_api::events::standalone(
                    shared.clone(),
                    Arc::new(SystemClock),
                    Default::default(),
                ),
            };
            let done = refunds::refund_invoice(
                &ctx,
                &t.id,
                &InvoiceName::new(name.as_str()),
                &ask,
                ACTOR,
                Timestamp::now(),
            )
            .await?;
            let currency = &done.refund.currency;
            let remaining = match done.remaining_cents() {
                0 => "nothing remains".to_owned(),
                cents => format!("{} remains", money(cents, currency)),
            };
            println!(
                "{name}: {} (credit note {}: {} {currency} refunded, {remaining})",
                done.invoice.invoice.status,
                done.refund.credit_note,
                format_minor(done.refund.amount_cents, currency),
            );
            if done.resumed {
                println!(
                    "this finished a refund that was interrupted before ({}); refund again for what you asked",
                    done.refund.credit_note
                );
            }
        }
        InvoiceCommand::CreditNotes { invoice, tenant } => {
            let tenants = match (&tenant, &invoice) {
                (None, None) => store.tenants().await?,
                (_, Some(i)) => vec![owner(store, tenant.as_deref(), i).await?],
                (Some(t), None) => vec![find_tenant(store, t).await?],
            };
            let mut rows = Vec::new();
            for t in tenants {
                for n in store.credit_notes(&t.id).await? {
                    if invoice.as_deref().is_none_or(|i| n.invoice == i) {
                        rows.push((t.name.to_string(), n));
                    }
                }
            }
            credit_note_table(&rows).print();
        }
        InvoiceCommand::CreditNotePdf { name, tenant, output } => {
            let t = credit_note_owner(store, tenant.as_deref(), &name).await?;
            let bytes = credit_notes::render_pdf(store, &versions, &t, &name)
                .await?
                .with_context(|| format!("tenant {} has no credit note {name:?}", t.name))?;
            let path = output.unwrap_or_else(|| PathBuf::from(format!("{name}.pdf")));
            std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
            println!("{}", path.display());
        }
        InvoiceCommand::Charge {
            name,
            tenant,
            invoicing,
            payments,
        } => {
            let t = owner(store, tenant.as_deref(), &name).await?;
            let ctx = JobContext {
                store: shared.clone(),
                clock: Arc::new(SystemClock),
                providers: payments.providers()?,
                worker_id: crate::cli::worker_id(),
                catalogs: Default::default(),
                invoicing: invoicing.settings()?,
                retention: Default::default(),
                // Events these changes emit are delivered by the job loop.
                webhooks: tollgate_api::events::standalone(
                    shared.clone(),
                    Arc::new(SystemClock),
                    Default::default(),
                ),
            };
            let invoice = InvoiceName::new(name.as_str());
            let after = invoices::charge_now(&ctx, &t.id, &invoice, ACTOR, Timestamp::now()).await?;
            let last = store
                .invoice_charges(&t.id, &invoice)
                .await?
                .into_iter()
                .max_by_key(|c| (c.attempt, c.started_at));
            match last {
                Some(c) => println!(
                    "{name}: {} (attempt {}: {}{})",
                    after.invoice.status,
                    c.attempt,
                    c.outcome.as_str(),
                    c.reason.map(|r| format!(", {r}")).unwrap_or_default()
                ),
                None => println!("{name}: {}", after.invoice.status),
            }
        }
        InvoiceCommand::Cancel { name, tenant } => {
            let t = owner(store, tenant.as_deref(), &name).await?;
            let after = invoices::cancel(
                store,
                &t.id,
                &InvoiceName::new(name.as_str()),
                ACTOR,
                Timestamp::now(),
            )
            .await?;
            println!("{name}: {}", after.invoice.status);
        }
    }
    Ok(())
}
