//! Operator commands for metering: importing usage history, rebuilding
//! rollups, and coupons.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use jiff::Timestamp;
use rust_decimal::Decimal;
use tollgate_app::catalogs::Versions;
use tollgate_app::usage::{self, EventOutcome, Reported};
use tollgate_domain::catalog::Catalog;
use tollgate_domain::metering::RawEvent;
use tollgate_domain::names::Name;
use tollgate_domain::rating::Discount;
use tollgate_domain::tenant::Tenant;
use tollgate_store::{CouponDef, Store};

/// How the audit trail names the operator CLI.
use crate::cli::ACTOR;
use crate::table::Table;
/// How many rejected lines an import names; the rest are counted.
const SHOWN_REJECTIONS: usize = 20;

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Import usage events from a file: JSON lines (one event object per line)
    /// or CSV with a header row. Columns/fields: id, metric_label,
    /// object_name, quantity, timestamp, and optionally namespace,
    /// deployment, container, properties (a JSON object of strings; in CSV,
    /// its text). Re-importing a file counts nothing twice.
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
        #[arg(long, value_parser = crate::cli::time_arg)]
        from: Option<Timestamp>,
        #[arg(long, value_parser = crate::cli::time_arg)]
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

impl Record {
    /// A record from its fields, looked up by name; `properties` is a JSON
    /// object (a CSV column holds its text).
    fn new(line: usize, field: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let properties = match field("properties") {
            None => Vec::new(),
            Some(text) => tollgate_app::usage::raw_properties(
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text)
                    .map_err(|_| format!("{line}: properties must be a JSON object, got {text:?}"))?,
            ),
        };
        Ok(Self {
            line,
            namespace: field("namespace"),
            raw: RawEvent {
                id: field("id"),
                metric_label: field("metric_label"),
                object_name: field("object_name"),
                quantity: field("quantity"),
                timestamp: field("timestamp"),
                deployment: field("deployment"),
                container: field("container"),
                properties,
            },
        })
    }
}

/// The columns (CSV) or fields (JSON lines) an import file may have.
const FIELDS: [&str; 9] = [
    "id",
    "metric_label",
    "object_name",
    "quantity",
    "timestamp",
    "namespace",
    "deployment",
    "container",
    "properties",
];

fn text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The records of an import file, read one at a time (a file of millions of
/// events is never held in memory): CSV with a header row if its name ends
/// in `.csv`, else JSON lines. A line that cannot be read is an error that
/// names it.
fn records(file: &Path) -> Result<Box<dyn Iterator<Item = Result<Record>>>> {
    let name = file.display().to_string();
    if file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(file)
            .with_context(|| format!("cannot open {name}"))?;
        let headers = reader.headers()?.clone();
        if let Some(unknown) = headers.iter().find(|h| !FIELDS.contains(h)) {
            bail!(
                "{name}:1: unknown column {unknown:?}; columns are {}",
                FIELDS.join(", ")
            );
        }
        let columns: Vec<(String, usize)> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.to_owned(), i))
            .collect();
        Ok(Box::new(reader.into_records().enumerate().map(
            move |(i, row)| {
                let row = row.with_context(|| format!("{name}:{}: not a CSV row", i + 2))?;
                Record::new(i + 2, |field| {
                    let (_, c) = columns.iter().find(|(h, _)| h == field)?;
                    row.get(*c).filter(|v| !v.is_empty()).map(str::to_owned)
                })
                .map_err(|e| anyhow::anyhow!("{name}:{e}"))
            },
        )))
    } else {
        let reader = std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("cannot open {name}"))?,
        );
        Ok(Box::new(
            reader
                .lines()
                .enumerate()
                .filter(|(_, line)| line.as_ref().map_or(true, |l| !l.trim().is_empty()))
                .map(move |(i, line)| {
                    let line = line.with_context(|| format!("{name}: cannot read line {}", i + 1))?;
                    let v: serde_json::Value = serde_json::from_str(&line)
                        .with_context(|| format!("{name}:{}: not a JSON object", i + 1))?;
                    Record::new(i + 1, |k| v.get(k).and_then(text)).map_err(|e| anyhow::anyhow!("{name}:{e}"))
                }),
        ))
    }
}

pub async fn usage(store: &dyn Store, cmd: UsageCommand) -> Result<()> {
    match cmd {
        UsageCommand::Import {
            tenant,
            namespace,
            file,
        } => {
            let (tenant, catalog) = tenant_and_catalog(store, &tenant).await?;
            // First a pass that only reads, so that a malformed file
            // imports nothing; then one that imports, a batch at a time.
            let mut total = 0usize;
            for r in records(&file)? {
                r?;
                total += 1;
            }
            let known_namespaces: Vec<String> = store
                .namespaces(&tenant.id)
                .await?
                .into_iter()
                .map(|n| n.name.to_string())
                .collect();
            let now = Timestamp::now();
            let (mut accepted, mut duplicates) = (0usize, 0usize);
            // The first reasons (by line) are shown; the rest are counted.
            let (mut rejected, mut first_rejections) = (0usize, Vec::new());
            let mut reject = |line: usize, reason: String| {
                rejected += 1;
                first_rejections.push((line, reason));
                first_rejections.sort_by_key(|(line, _)| *line);
                first_rejections.truncate(SHOWN_REJECTIONS);
            };
            let mut batch: Vec<(usize, Reported)> = Vec::with_capacity(usage::MAX_BATCH);
            let mut records = records(&file)?.peekable();
            while let Some(r) = records.next() {
                let r = r?;
                // The file names namespaces (the API takes one from its path).
                let ns_text = r.namespace.clone().unwrap_or_else(|| namespace.clone());
                let resolved = Name::parse("namespace", &ns_text)
                    .map_err(|e| e.message)
                    .and_then(|ns| {
                        if known_namespaces.iter().any(|k| k == ns.as_str()) {
                            Ok(ns)
                        } else {
                            Err(format!("namespace: {ns_text:?} does not exist"))
                        }
                    });
                match resolved {
                    Ok(namespace) => batch.push((
                        r.line,
                        Reported {
                            namespace,
                            event: r.raw,
                        },
                    )),
                    Err(reason) => reject(r.line, reason),
                }
                if batch.len() == usage::MAX_BATCH || (records.peek().is_none() && !batch.is_empty()) {
                    let (lines, reported): (Vec<usize>, Vec<Reported>) = batch.drain(..).unzip();
                    let outcomes =
                        usage::ingest(store, &tenant, &catalog, usage::DEFAULT_MAX_SKEW, now, &reported)
                            .await?;
                    for (line, outcome) in lines.into_iter().zip(outcomes) {
                        match outcome {
                            EventOutcome::Accepted => accepted += 1,
                            EventOutcome::Duplicate => duplicates += 1,
                            EventOutcome::Rejected(reason) => reject(line, reason),
                        }
                    }
                }
            }
            for (line, reason) in &first_rejections {
                eprintln!("{}:{line}: rejected: {reason}", file.display());
            }
            if rejected > first_rejections.len() {
                eprintln!("… and {} more rejected", rejected - first_rejections.len());
            }
            println!(
                "imported {} events into tenant {}: {accepted} accepted, {duplicates} duplicates, {} rejected",
                total, tenant.name, rejected
            );
        }
        UsageCommand::Replay { tenant } => {
            let (tenant, catalog) = tenant_and_catalog(store, &tenant).await?;
            let stats = store
                .replay(&tenant.id, &catalog.aggregations(), ACTOR, Timestamp::now())
                .await?;
            match stats.rebuilt_from {
                None => println!(
                    "rebuilt {} hourly buckets of tenant {} from {} events",
                    stats.buckets, tenant.name, stats.events
                ),
                Some(from) => println!(
                    "rebuilt {} hourly buckets of tenant {} from {} events, from {from} on \
                     (raw events before it were deleted at retention; those hours keep their rollups)",
                    stats.buckets, tenant.name, stats.events
                ),
            }
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
            let req = tollgate_app::coupons::CouponRequest {
                code: code.clone(),
                title,
                percent,
                fixed_cents,
            };
            tollgate_app::coupons::create_coupon(store, &req, ACTOR, now)
                .await
                .map_err(crate::cli::flags(&["title", "percent", "fixed_cents"]))?;
            println!("created coupon {code}");
        }
        CouponCommand::Apply {
            tenant,
            code,
            from,
            until,
        } => {
            let t = crate::cli::find_tenant(store, &tenant).await?;
            let versions = Versions::default();
            tollgate_app::coupons::apply_coupon(store, &versions, &t, &code, from, until, ACTOR, now)
                .await
                .map_err(crate::cli::flags(&["until"]))?;
            println!("applied coupon {code} to tenant {}", t.name);
        }
        CouponCommand::List => {
            let mut table = Table::new(&["CODE", "DISCOUNT", "TITLE"]);
            let mut by_code: BTreeMap<String, CouponDef> = BTreeMap::new();
            for c in store.coupons().await? {
                by_code.insert(c.code.clone(), c);
            }
            for c in by_code.values() {
                let discount = match c.discount {
                    Discount::Percent(bp) => format!("{}%", Decimal::new(bp, 2).normalize()),
                    Discount::Fixed(cents) => format!("{cents} cents"),
                };
                table.row([c.code.clone(), discount, c.title.clone()]);
            }
            table.print();
        }
    }
    Ok(())
}
