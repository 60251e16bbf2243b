//! `tollgate bench durability`: what durable commits cost. Runs, on SQLite,
//! `POST quota/reserve` at `--connections` and usage ingestion in batches of
//! 1000, once on a fresh server with the default `--sqlite-synchronous full`
//! (every acknowledged write flushed to disk) and once with `normal`, and
//! prints both side by side with their ratio.

use anyhow::{Result, bail};
use jiff::{SignedDuration, Timestamp};
use tollgate_store::Location;

use crate::bench::{BenchArgs, Harness, Scenario, create_bench_quota, load, stop_server};
use crate::bench_ingest::{BATCH, DAYS, ingest};
use crate::cli::StorageArgs;

/// Events ingested per mode unless `--events` says otherwise.
const DEFAULT_EVENTS: usize = 200_000;

/// What one mode measured.
struct Measured {
    reserve_rate: f64,
    reserve_p50_ms: f64,
    reserve_p99_ms: f64,
    reserve_errors: u64,
    ingest_rate: f64,
}

pub async fn run(storage: &StorageArgs, args: &BenchArgs) -> Result<()> {
    if let Location::Postgres(_) = storage.location()? {
        bail!("bench durability compares SQLite's synchronous modes; PostgreSQL always commits durably");
    }
    let events = args.ingest.events.unwrap_or(DEFAULT_EVENTS);
    if events == 0 || args.ingest.ingest_connections == 0 || args.ingest.objects == 0 {
        bail!("--events, --ingest-connections and --objects must be more than zero");
    }
    let mut results = Vec::new();
    for mode in ["full", "normal"] {
        // A fresh database per mode, so neither run inherits the other's data.
        let harness = Harness::new(storage)?;
        harness.init().await?;
        results.push((mode, measure(&harness, mode, events, args).await?));
    }
    println!(
        "tollgate bench durability: sqlite, POST quota/reserve at {} connections for {} (after {} warm-up); \
         {events} events in batches of {BATCH} over {} connections",
        args.connections, args.duration, args.warmup, args.ingest.ingest_connections
    );
    println!(
        "{:<22}{:>14}{:>9}{:>9}{:>9}{:>16}",
        "--sqlite-synchronous", "reserve/s", "p50 ms", "p99 ms", "errors", "events/s"
    );
    for (mode, m) in &results {
        println!(
            "{:<22}{:>14.1}{:>9.3}{:>9.3}{:>9}{:>16.0}",
            if *mode == "full" { "full (default)" } else { mode },
            m.reserve_rate,
            m.reserve_p50_ms,
            m.reserve_p99_ms,
            m.reserve_errors,
            m.ingest_rate
        );
    }
    if let [(_, full), (_, normal)] = results.as_slice() {
        println!(
            "{:<22}{:>14.3}{:>27}{:>16.3}",
            "full / normal",
            full.reserve_rate / normal.reserve_rate,
            "",
            full.ingest_rate / normal.ingest_rate
        );
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("note: the load generator and the server share this machine's {cores} cores.");
    if results.iter().any(|(_, m)| m.reserve_errors > 0) {
        bail!("some reservations were not answered with 200");
    }
    Ok(())
}

async fn measure(h: &Harness, mode: &str, events: usize, args: &BenchArgs) -> Result<Measured> {
    let start = Timestamp::now() - SignedDuration::from_hours(24 * (DAYS + 1));
    h.cli(
        &["tenant", "create", &h.tenant, "--since", &start.to_string()],
        "tenant create",
    )
    .await?;
    let admin = h.token("admin").await?;
    let platform = h.token("platform").await?;
    let (mut server, addr) = h.serve_with(&["--sqlite-synchronous", mode]).await?;
    let measured = async {
        create_bench_quota(addr, &admin).await?;
        let stats = load(addr, &admin, Scenario::Reserve, args).await?;
        if let Some(error) = &stats.first_error {
            eprintln!("{mode}: first reservation error: {error}");
        }
        let ms = |q| stats.latency.value_at_quantile(q) as f64 / 1000.0;
        let reserve = (
            stats.latency.len() as f64 / args.duration.as_secs_f64(),
            ms(0.5),
            ms(0.99),
            stats.errors,
        );
        let ingest_rate = ingest(addr, &platform, events, &args.ingest, start, 0).await?;
        Ok::<_, anyhow::Error>(Measured {
            reserve_rate: reserve.0,
            reserve_p50_ms: reserve.1,
            reserve_p99_ms: reserve.2,
            reserve_errors: reserve.3,
            ingest_rate,
        })
    }
    .await;
    let stopped = stop_server(&mut server).await;
    let measured = measured?;
    stopped?;
    Ok(measured)
}
