//! Operator commands beyond tenants and tokens: the catalog, plan-transition
//! approvals, the audit trail, and running background jobs by hand.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use jiff::Timestamp;
use tollgate_app::{Job, JobContext};
use tollgate_domain::catalog;
use tollgate_domain::clock::{Clock, ManualClock, SystemClock};
use tollgate_domain::transition::TransitionState;
use tollgate_store::{Store, TransitionFilter};

use crate::cli::StorageArgs;
use crate::table::Table;

/// How the audit trail names the operator CLI.
use crate::cli::ACTOR;

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Check a catalog file without publishing it.
    Validate { file: PathBuf },
    /// Publish a catalog file as the next version; it takes effect at once on
    /// every server. Tenants keep their plan's version until they change plan.
    Publish { file: PathBuf },
    /// Print a published catalog (the latest unless --version).
    Show {
        #[arg(long)]
        version: Option<i64>,
    },
    /// What changed from one published version to another: plans, add-ons,
    /// meters and tax rates by name, then the sources' line diff.
    Diff { from: i64, to: i64 },
    /// Move tenants to a newer catalog version of the plan each is on, from
    /// the start of each one's next billing period (audited). Name tenants
    /// with --tenant (repeatable) or every tenant on a plan with --plan.
    Move {
        /// The version to move to (default: the latest).
        #[arg(long)]
        version: Option<i64>,
        #[arg(long = "tenant", required_unless_present = "plan", conflicts_with = "plan")]
        tenants: Vec<String>,
        #[arg(long)]
        plan: Option<String>,
    },
    /// List pending moves to newer catalog versions.
    Moves,
    /// Cancel a tenant's pending move.
    CancelMove { tenant: String },
}

#[derive(Debug, Subcommand)]
pub enum TransitionCommand {
    /// List plan transitions, newest first.
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// CREATING, WAITING_FOR_APPROVAL, FINISHED or FAILED.
        #[arg(long)]
        state: Option<String>,
    },
    /// Approve a transition waiting for approval; the job then executes it.
    Approve { id: String },
    /// Reject a transition waiting for approval.
    Reject {
        id: String,
        /// Why (shown to the tenant; default "rejected by the operator").
        #[arg(long)]
        reason: Option<String>,
    },
    /// Cancel an open transition (CREATING or WAITING_FOR_APPROVAL), e.g.
    /// one that keeps failing: it ends FAILED and nothing of it is applied.
    Cancel {
        id: String,
        /// Why (shown to the tenant; default "cancelled by the operator").
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show the audit trail, newest first.
    List {
        /// Only this tenant's entries.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Run a job until it has nothing left to do, then exit.
    Run {
        /// Which job (`all` runs each, in this order).
        #[arg(value_enum)]
        job: JobArg,
        /// Run as if the clock read this time (RFC 3339), e.g. to close a period.
        #[arg(long, value_parser = crate::cli::time_arg)]
        now: Option<Timestamp>,
        #[command(flatten)]
        invoicing: crate::cli::InvoicingArgs,
        #[command(flatten)]
        retention: crate::cli::RetentionArgs,
        #[command(flatten)]
        payments: crate::provider::PaymentArgs,
        #[command(flatten)]
        webhooks: crate::cli::WebhookArgs,
    },
}

/// The jobs `jobs run` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JobArg {
    /// Execute approved plan transitions.
    Transitions,
    /// Finalize the invoices of ended periods.
    PeriodClose,
    /// Charge due invoices.
    Charge,
    /// Suspend tenants with an invoice OVERDUE for longer than --suspend-after.
    Suspend,
    /// Forget quota request ids older than the idempotency window.
    Prune,
    /// Delete raw usage events past --keep-raw-events.
    PurgeEvents,
    /// Write off what is left of expired credit grants.
    CreditExpiry,
    /// Evaluate the usage alerts of tenants whose usage arrived since.
    Alerts,
    /// Dispatch webhook events and make the delivery attempts that are due.
    Webhooks,
    /// Every job above.
    All,
}

impl JobArg {
    fn jobs(self) -> Vec<Job> {
        match self {
            Self::Transitions => vec![Job::Transitions],
            Self::PeriodClose => vec![Job::PeriodClose],
            Self::Charge => vec![Job::Charge],
            Self::Suspend => vec![Job::Suspend],
            Self::Prune => vec![Job::Prune],
            Self::PurgeEvents => vec![Job::PurgeEvents],
            Self::CreditExpiry => vec![Job::CreditExpiry],
            Self::Alerts => vec![Job::Alerts],
            Self::Webhooks => vec![Job::Webhooks],
            Self::All => Job::ALL.to_vec(),
        }
    }
}

/// How `catalog show` starts: a comment naming the version it prints.
const SHOW_HEADER: &str = "# catalog version";

/// A catalog's source without the header `catalog show` put on it, when it
/// was published from a file saved from `catalog show` (else the header
/// would be shown twice, the old one stale).
fn without_show_header(source: &str) -> &str {
    match source.strip_prefix(SHOW_HEADER) {
        Some(rest) if rest.starts_with(' ') => rest.split_once('\n').map_or("", |(_, after)| after),
        _ => source,
    }
}

fn read(file: &PathBuf) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

pub async fn catalog(storage: &StorageArgs, cmd: CatalogCommand) -> Result<()> {
    match cmd {
        CatalogCommand::Validate { file } => {
            let c = catalog::parse_for_publish(&file.display().to_string(), &read(&file)?)?;
            println!(
                "{}: valid: {} plans, {} add-ons, {} meters, default plan {}",
                file.display(),
                c.plans.len(),
                c.addons.len(),
                c.meters.len(),
                c.default_plan
            );
        }
        CatalogCommand::Publish { file } => {
            let text = read(&file)?;
            let name = file.display().to_string();
            let store = storage.open().await?;
            let version =
                tollgate_app::catalogs::publish(&*store, &name, &text, ACTOR, Timestamp::now()).await?;
            println!("published {name} as catalog version {version}");
        }
        CatalogCommand::Show { version } => {
            let store = storage.open().await?;
            let c = store.catalog(version).await?.with_context(|| match version {
                Some(v) => format!("no catalog version {v}"),
                None => "no catalog is published yet".to_owned(),
            })?;
            println!(
                "{SHOW_HEADER} {}, from {}, published {} by {}",
                c.version, c.source_name, c.published_at, c.published_by
            );
            print!("{}", without_show_header(&c.source));
        }
        CatalogCommand::Diff { from, to } => {
            let store = storage.open().await?;
            let versions = tollgate_app::catalogs::Versions::default();
            let d = tollgate_app::catalogs::diff_versions(&*store, &versions, from, to)
                .await
                .map_err(crate::cli::flags(&[]))?;
            if d.changes.is_empty() && d.lines.is_empty() {
                println!("catalog versions {from} and {to} are the same");
                return Ok(());
            }
            for c in &d.changes {
                let name = if c.name.is_empty() {
                    String::new()
                } else {
                    format!(" {}", c.name)
                };
                println!("{} {}{name}", c.kind.as_str(), c.what);
                for line in &c.details {
                    println!("  {line}");
                }
            }
            println!("--- v{from}\n+++ v{to}");
            for line in &d.lines {
                match line {
                    Some(l) => println!("{}{}", l.tag, l.text),
                    None => println!("@@"),
                }
            }
        }
        CatalogCommand::Move {
            version,
            tenants,
            plan,
        } => {
            use tollgate_app::catalogs::{MoveSelection, Versions, schedule_moves};
            let store = storage.open().await?;
            let selection = match plan {
                Some(p) => MoveSelection::Plan(p),
                None => MoveSelection::Tenants(tenants),
            };
            let plan = schedule_moves(
                &*store,
                &Versions::default(),
                &selection,
                version,
                ACTOR,
                Timestamp::now(),
            )
            .await?;
            let mut table = Table::new(&["TENANT", ">FROM", ">TO", "EFFECTIVE"]);
            for (name, m) in &plan.scheduled {
                table.row([
                    name.clone(),
                    m.from_version.to_string(),
                    m.catalog_version.to_string(),
                    m.effective_at.to_string(),
                ]);
            }
            table.print();
            for s in &plan.skipped {
                println!("skipped {}: {}", s.tenant, s.reason);
            }
        }
        CatalogCommand::Moves => {
            let store = storage.open().await?;
            let mut table = Table::new(&["TENANT", ">FROM", ">TO", "EFFECTIVE", "BY"]);
            for m in store.catalog_moves(None).await? {
                let name = store
                    .tenant(&m.tenant_id)
                    .await?
                    .map_or_else(|| m.tenant_id.to_string(), |t| t.name.to_string());
                table.row([
                    name,
                    m.from_version.to_string(),
                    m.catalog_version.to_string(),
                    m.effective_at.to_string(),
                    m.created_by,
                ]);
            }
            table.print();
        }
        CatalogCommand::CancelMove { tenant } => {
            let store = storage.open().await?;
            let t = crate::cli::find_tenant(&*store, &tenant).await?;
            if !store.cancel_catalog_move(&t.id, ACTOR, Timestamp::now()).await? {
                anyhow::bail!("tenant {tenant} has no pending catalog move");
            }
            println!("cancelled the catalog move of tenant {tenant}");
        }
    }
    Ok(())
}

async fn tenant_id(store: &dyn Store, name: Option<&str>) -> Result<Option<tollgate_domain::ids::TenantId>> {
    match name {
        None => Ok(None),
        Some(n) => Ok(Some(crate::cli::find_tenant(store, n).await?.id)),
    }
}

pub async fn transition(store: &dyn Store, cmd: TransitionCommand) -> Result<()> {
    match cmd {
        TransitionCommand::List { tenant, state } => {
            let state = match state.as_deref() {
                None => None,
                Some(s) => Some(TransitionState::parse(&s.to_ascii_uppercase()).with_context(|| {
                    format!("unknown state {s:?}; use CREATING, WAITING_FOR_APPROVAL, FINISHED or FAILED")
                })?),
            };
            let filter = TransitionFilter {
                tenant_id: tenant_id(store, tenant.as_deref()).await?,
                state,
            };
            let mut table = Table::new(&["ID", "TENANT", "FROM", "TO", "STATE", "REASON"]);
            let transitions = store.transitions(&filter).await?;
            let names = tollgate_store::tenant_names(
                store,
                &transitions.iter().map(|t| &t.tenant_id).collect::<Vec<_>>(),
            )
            .await?;
            for t in transitions {
                let tenant = names
                    .get(t.tenant_id.as_str())
                    .cloned()
                    .unwrap_or_else(|| t.tenant_id.to_string());
                table.row([
                    t.id,
                    tenant,
                    t.from_plan,
                    t.to_plan,
                    t.state.as_str().to_owned(),
                    t.reason.unwrap_or_default(),
                ]);
            }
            table.print();
        }
        TransitionCommand::Approve { id } => {
            let t = tollgate_app::transitions::approve(store, &id, ACTOR, Timestamp::now()).await?;
            println!("approved {}: now {}", t.id, t.state.as_str());
        }
        TransitionCommand::Reject { id, reason } => {
            let t = tollgate_app::transitions::reject(store, &id, reason.as_deref(), ACTOR, Timestamp::now())
                .await
                .map_err(crate::cli::flags(&["reason"]))?;
            println!("rejected {}: now {}", t.id, t.state.as_str());
        }
        TransitionCommand::Cancel { id, reason } => {
            let t = tollgate_app::transitions::cancel(store, &id, reason.as_deref(), ACTOR, Timestamp::now())
                .await
                .map_err(crate::cli::flags(&["reason"]))?;
            println!("cancelled {}: now {}", t.id, t.state.as_str());
        }
    }
    Ok(())
}

pub async fn audit(store: &dyn Store, cmd: AuditCommand) -> Result<()> {
    let AuditCommand::List { tenant, limit } = cmd;
    let id = tenant_id(store, tenant.as_deref()).await?;
    let mut table = Table::new(&["AT", "ACTOR", "ACTION", "TARGET"]);
    for e in store.audit(id.as_ref(), limit).await? {
        let notes = [("before: ", e.before), ("after:  ", e.after)]
            .into_iter()
            .filter_map(|(label, change)| change.map(|c| format!("{label}{c}")))
            .collect();
        table.row_with_notes([e.at.to_string(), e.actor, e.action, e.target], notes);
    }
    table.print();
    Ok(())
}

pub async fn jobs(storage: &StorageArgs, cmd: JobsCommand) -> Result<()> {
    let JobsCommand::Run {
        job,
        now,
        invoicing,
        retention,
        payments,
        webhooks,
    } = cmd;
    let invoicing = invoicing.settings()?;
    let retention = retention.retention()?;
    let clock: Arc<dyn Clock> = match now {
        Some(at) => Arc::new(ManualClock::new(at)),
        None => Arc::new(SystemClock),
    };
    let store = storage.open().await?;
    let webhooks = tollgate_api::events::standalone(store.clone(), clock.clone(), webhooks.settings()?);
    let ctx = JobContext {
        store,
        clock,
        providers: payments.providers()?,
        worker_id: crate::cli::worker_id(),
        catalogs: Default::default(),
        invoicing,
        retention,
        webhooks,
    };
    for job in job.jobs() {
        let n = job.run(&ctx).await?;
        println!("{}: {}", job.as_str(), job.summary(n));
    }
    Ok(())
}
