//! Operator commands for metering: importing usage history, rebuilding
//! rollups, and coupons.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use tollgate_domain::catalog::Catalog;
use tollgate_domain::metering::{self, Admission, RawEvent, UsageEvent};
use tollgate_domain::names::Name;
use tollgate_domain::rating::Discount;
use tollgate_domain::tenant::Tenant;
use tollgate_jobs::catalogs::Versions;
use tollgate_store::{CouponDef, Store};

/// How the audit trail names the operator CLI.
use crate::cli::ACTOR;
/// Events per ingestion transaction during an import.
const BATCH: usize = 1000;

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Import usage events from a file: JSON lines (one event object per line)
    /// or CSV with a header row. Columns/fields: id, metric_label,
    /// object_name, quantity, timestamp, and optionally namespace,
    /// deployment, container. Re-importing a file counts nothing twice.
    Import {
        #[arg(long)]
        tenant: String,
        /// Namespace of events that do not name one.
        #[arg(long, default_value = "system")]
        namespace: String,
        file: PathBuf,
    },
    /// Rebuild a tenant's hourly rollups from its raw events.
    Replay {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CouponCommand {
    /// Define a coupon: a percentage (e.g. 12.35) or a fixed amount in cents.
    Create {
        code: String,
        #[arg(long)]
        title: String,
        #[arg(long, conflicts_with = "fixed_cents", required_unless_present = "fixed_cents")]
        percent: Option<Decimal>,
        #[arg(long)]
        fixed_cents: Option<i64>,
    },
    /// Apply a coupon to a tenant for the billing periods overlapping
    /// [--from, --until) (default: from now, forever).
    Apply {
        #[arg(long)]
        tenant: String,
        code: String,
        #[arg(long)]
        from: Option<Timestamp>,
        #[arg(long)]
        until: Option<Timestamp>,
    },
    /// List coupon definitions.
    List,
}

async fn tenant_and_catalog(store: &dyn Store, name: &str) -> Result<(Tenant, Arc<Catalog>)> {
    let tenant = crate::cli::find_tenant(store, name).await?;
    let catalog = Versions::default().get(store, tenant.catalog_version).await?;
    Ok((tenant, catalog))
}

/// One record of an import file, with its line number and namespace.
struct Record {
    line: usize,
    namespace: Option<String>,
    raw: RawEvent,
}

fn text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn read_json_lines(file: &PathBuf) -> Result<Vec<Record>> {
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
    );
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{}: cannot read line {}", file.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a JSON object", file.display(), i + 1))?;
        let field = |k: &str| v.get(k).and_then(text);
        out.push(Record {
            line: i + 1,
            namespace: field("namespace"),
            raw: RawEvent {
                id: field("id"),
                metric_label: field("metric_label"),
                object_name: field("object_name"),
                quantity: field("quantity"),
                timestamp: field("timestamp"),
                deployment: field("deployment"),
                container: field("container"),
            },
        });
    }
    Ok(out)
}

fn read_csv(file: &PathBuf) -> Result<Vec<Record>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(file)
        .with_context(|| format!("cannot open {}", file.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let known = [
        "id",
        "metric_label",
        "object_name",
        "quantity",
        "timestamp",
        "namespace",
        "deployment",
        "container",
    ];
    if let Some(unknown) = headers.iter().find(|h| !known.contains(h)) {
        bail!(
            "{}:1: unknown column {unknown:?}; columns are {}",
            file.display(),
            known.join(", ")
        );
    }
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{}:{}: not a CSV row", file.display(), i + 2))?;
        let field = |name: &str| {
            column(name)
                .and_then(|c| row.get(c))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        out.push(Record {
            line: i + 2,
            namespace: field("namespace"),
            raw: RawEvent {
                id: field("id"),
                metric_label: field("metric_label"),
                object_name: field("object_name"),
                quantity: field("quantity"),
                timestamp: field("timestamp"),
                deployment: field("deployment"),
                container: field("container"),
            },
        });
    }
    Ok(out)
}

pub async fn usage(store: &dyn Store, cmd: UsageCommand) -> Result<()> {
    match cmd {
        UsageCommand::Import {
            tenant,
            namespace,
            file,
        } => {
            let (tenant, catalog) = tenant_and_catalog(store, &tenant).await?;
            let is_csv = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            let records = if is_csv {
                read_csv(&file)?
            } else {
                read_json_lines(&file)?
            };
            let known_namespaces: Vec<String> = store
                .namespaces(&tenant.id)
                .await?
                .into_iter()
                .map(|n| n.name.to_string())
                .collect();
            let now = Timestamp::now();
            let rules = Admission {
                meters: &catalog.meters,
                now,
                max_skew: SignedDuration::from_mins(5),
                floor: tollgate_domain::metering::admission_floor(
                    tenant.created_at,
                    store.latest_invoice_start(&tenant.id).await?,
                ),
            };
            let mut valid: Vec<UsageEvent> = Vec::new();
            let mut rejected: Vec<(usize, String)> = Vec::new();
            for r in &records {
                let ns_text = r.namespace.clone().unwrap_or_else(|| namespace.clone());
                let checked = Name::parse("namespace", &ns_text)
                    .map_err(|e| e.message)
                    .and_then(|ns| {
                        if known_namespaces.iter().any(|k| k == ns.as_str()) {
                            Ok(ns)
                        } else {
                            Err(format!("namespace: {ns_text:?} does not exist"))
                        }
                    })
                    .and_then(|ns| metering::validate(&r.raw, &ns, rules));
                match checked {
                    Ok(e) => valid.push(e),
                    Err(reason) => rejected.push((r.line, reason)),
                }
            }
            let aggregation = catalog.aggregations();
            let (mut accepted, mut duplicates) = (0usize, 0usize);
            for chunk in valid.chunks(BATCH) {
                let new = store.ingest(&tenant.id, chunk, &aggregation, now).await?;
                let fresh = new.iter().filter(|n| **n).count();
                accepted += fresh;
                duplicates += new.len() - fresh;
            }
            for (line, reason) in rejected.iter().take(20) {
                eprintln!("{}:{line}: rejected: {reason}", file.display());
            }
            if rejected.len() > 20 {
                eprintln!("… and {} more rejected", rejected.len() - 20);
            }
            println!(
                "imported {} events into tenant {}: {accepted} accepted, {duplicates} duplicates, {} rejected",
                records.len(),
                tenant.name,
                rejected.len()
            );
        }
        UsageCommand::Replay { tenant } => {
            let (tenant, catalog) = tenant_and_catalog(store, &tenant).await?;
            let stats = store.replay(&tenant.id, &catalog.aggregations()).await?;
            println!(
                "rebuilt {} hourly buckets of tenant {} from {} events",
                stats.buckets, tenant.name, stats.events
            );
        }
    }
    Ok(())
}

pub async fn coupon(store: &dyn Store, cmd: CouponCommand) -> Result<()> {
    let now = Timestamp::now();
    match cmd {
        CouponCommand::Create {
            code,
            title,
            percent,
            fixed_cents,
        } => {
            Name::parse("code", &code)?;
            let discount = match (percent, fixed_cents) {
                (Some(p), None) => {
                    let bp = p
                        .checked_mul(Decimal::from(100))
                        .map(|bp| bp.normalize())
                        .filter(|bp| bp.scale() == 0 && *bp > Decimal::ZERO && *bp <= Decimal::from(10_000));
                    let Some(bp) = bp else {
                        bail!("--percent: between 0.01 and 100 with at most two decimals, got {p}");
                    };
                    Discount::Percent(i64::try_from(bp)?)
                }
                (None, Some(c)) if c > 0 => Discount::Fixed(c),
                (None, Some(c)) => bail!("--fixed-cents: must be more than zero, got {c}"),
                _ => bail!("give --percent or --fixed-cents"),
            };
            store
                .create_coupon(
                    &CouponDef {
                        code: code.clone(),
                        title,
                        discount,
                    },
                    ACTOR,
                    now,
                )
                .await?;
            println!("created coupon {code}");
        }
        CouponCommand::Apply {
            tenant,
            code,
            from,
            until,
        } => {
            let t = crate::cli::find_tenant(store, &tenant).await?;
            let from = from.unwrap_or(now);
            if until.is_some_and(|u| u <= from) {
                bail!("--until must be after --from");
            }
            store.apply_coupon(&t.id, &code, from, until, ACTOR, now).await?;
            println!("applied coupon {code} to tenant {}", t.name);
        }
        CouponCommand::List => {
            println!("{:<24} {:<16} TITLE", "CODE", "DISCOUNT");
            let mut by_code: BTreeMap<String, CouponDef> = BTreeMap::new();
            for c in store.coupons().await? {
                by_code.insert(c.code.clone(), c);
            }
            for c in by_code.values() {
                let discount = match c.discount {
                    Discount::Percent(bp) => format!("{}%", Decimal::new(bp, 2).normalize()),
                    Discount::Fixed(cents) => format!("{cents} cents"),
                };
                println!("{:<24} {:<16} {}", c.code, discount, c.title);
            }
        }
    }
    Ok(())
}
