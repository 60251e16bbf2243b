//! `tollgate bench`: throughput and latency of key endpoints, measured in one
//! run against one fresh server process so that the numbers are comparable.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tollgate_store::Location;

use crate::cli::StorageArgs;

/// What `tollgate bench` measures.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum Suite {
    /// quota/usage and quota/reserve against /healthz at 64 connections.
    #[default]
    Quota,
    /// Usage ingestion against the database's raw insert rate, then report
    /// latency over a month of events.
    Ingest,
    /// SQLite only: quota/reserve and usage ingestion with durable commits
    /// (the default) and with `--sqlite-synchronous normal`, side by side.
    Durability,
    /// A year of usage for many tenants, month by month, with periods
    /// finalized and raw events past retention deleted: database size, the
    /// ingestion rate at the end against the start, deletion batches, and
    /// report latency at the end.
    Year,
    /// Every figure of the performance goals in one run: `quota`, then
    /// `ingest`, then `year`, each on a fresh database, then one table of
    /// every figure beside its target.
    All,
}

/// Options of `tollgate bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark to run.
    #[arg(value_enum, default_value_t = Suite::Quota)]
    pub suite: Suite,
    #[command(flatten)]
    pub ingest: crate::bench_ingest::IngestArgs,
    #[command(flatten)]
    pub year: crate::bench_year::YearArgs,
    /// How long to measure each scenario, e.g. 10s.
    #[arg(long, default_value = "10s")]
    pub duration: humantime::Duration,
    /// How long to load each scenario before measuring (not recorded).
    #[arg(long, default_value = "2s")]
    pub warmup: humantime::Duration,
    /// Concurrent keep-alive connections per scenario.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,
}

/// Quota object that makes `bench_object` unlimited and lifts the per-tenant
/// rate limits of the benchmarked operations; otherwise we would measure 429s.
pub(crate) const UNLIMITED_QUOTA: &str = r#"{"metadata":{"name":"bench"},"spec":{"object_limits":{"bench_object":{"maximum":-1}},"api_limits":{"ves.io.schema.quota.CustomAPI.GetQuotaUsage":{"rate":-1},"tollgate.quota.Reserve":{"rate":-1}}}}"#;

/// A scratch database (fresh SQLite, or a unique tenant on the given
/// PostgreSQL), the binary to run, and a tenant with an admin token.
pub(crate) struct Harness {
    /// Holds the SQLite database (if any) and the server log; removed on drop.
    pub scratch: tempfile::TempDir,
    pub location: Location,
    exe: std::path::PathBuf,
    pub tenant: String,
}

impl Harness {
    /// Prepares storage; never the user's data dir, since benchmarks write a lot.
    pub fn new(storage: &StorageArgs) -> Result<Self> {
        let scratch = tempfile::TempDir::new().context("cannot create a temporary directory")?;
        let location = match storage.location()? {
            Location::SqliteDir(_) => Location::SqliteDir(scratch.path().join("data")),
            postgres @ Location::Postgres(_) => postgres,
        };
        Ok(Self {
            scratch,
            location,
            exe: std::env::current_exe().context("cannot find the tollgate executable")?,
            // Unique, so repeated runs on one PostgreSQL database don't collide.
            tenant: format!("bench-{:08x}", rand::random::<u32>()),
        })
    }

    /// Which database engine the benchmark runs on.
    pub fn backend(&self) -> &'static str {
        match self.location {
            Location::SqliteDir(_) => "sqlite",
            Location::Postgres(_) => "postgres",
        }
    }

    /// `tollgate <storage flags> <args>`.
    pub fn command(&self, args: &[&str]) -> Command {
        let storage: [OsString; 2] = match &self.location {
            Location::SqliteDir(dir) => ["--data-dir".into(), dir.clone().into_os_string()],
            Location::Postgres(url) => ["--database-url".into(), url.into()],
        };
        let mut cmd = Command::new(&self.exe);
        // Explicit flags only, so the environment cannot redirect the children.
        cmd.env_remove("TOLLGATE_DATABASE_URL")
            .env_remove("TOLLGATE_DATA_DIR")
            .env("TOLLGATE_LOG", "warn")
            .args(storage)
            .args(args)
            .kill_on_drop(true);
        cmd
    }

    /// Creates the scratch database (every command but `serve` and `init`
    /// refuses to create one).
    pub async fn init(&self) -> Result<()> {
        self.cli(&["init"], "init").await.map(drop)
    }

    /// Runs a CLI command; returns its stdout.
    pub async fn cli(&self, args: &[&str], what: &str) -> Result<String> {
        cli_output(self.command(args), what).await
    }

    /// An `Authorization` header value for a new token of the tenant.
    pub async fn token(&self, role: &str) -> Result<Arc<str>> {
        let secret = self
            .cli(
                &["token", "create", "--tenant", &self.tenant, "--role", role],
                "token create",
            )
            .await?;
        Ok(format!("APIToken {}", secret.trim()).into())
    }

    /// Starts `tollgate serve` on a free port.
    pub async fn serve(&self) -> Result<(Child, SocketAddr)> {
        self.serve_with(&[]).await
    }

    /// Starts `tollgate serve` on a free port and waits until `/readyz`
    /// answers 200; also returns how long that took from the spawn.
    pub async fn serve_ready(&self) -> Result<(Child, SocketAddr, Duration)> {
        let started = Instant::now();
        let (mut child, addr) = self.serve().await?;
        match wait_ready(addr).await {
            Ok(()) => Ok((child, addr, started.elapsed())),
            Err(e) => {
                let _ = stop_server(&mut child).await;
                Err(e)
            }
        }
    }

    /// Starts `tollgate serve` on a free port with extra flags.
    pub async fn serve_with(&self, flags: &[&str]) -> Result<(Child, SocketAddr)> {
        let log_path = self.scratch.path().join("server.log");
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(flags);
        start_server(self.command(&args), &log_path).await
    }
}

/// The longest warm-up plus measurement a bench run may take.
const MAX_BENCH_TIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Runs the chosen benchmark against servers started for it; each server is
/// stopped whether or not the benchmark succeeds.
pub async fn run(storage: &StorageArgs, args: BenchArgs) -> Result<()> {
    if args.duration.is_zero() {
        bail!("--duration must be more than zero");
    }
    if args
        .warmup
        .checked_add(*args.duration)
        .is_none_or(|t| t > MAX_BENCH_TIME)
    {
        bail!("--warmup plus --duration must be at most 24h");
    }
    // A fresh database per suite, so that no suite measures another's data.
    let fresh = || async {
        let harness = Harness::new(storage)?;
        harness.init().await?;
        Ok::<_, anyhow::Error>(harness)
    };
    match args.suite {
        Suite::Quota => quota(&fresh().await?, &args).await.map(drop),
        Suite::Ingest => crate::bench_ingest::run(&fresh().await?, &args.ingest)
            .await
            .map(drop),
        Suite::Year => crate::bench_year::run(&fresh().await?, &args.year)
            .await
            .map(drop),
        // Two fresh databases of its own, one per SQLite mode.
        Suite::Durability => crate::bench_durability::run(storage, &args).await,
        Suite::All => {
            let started = Instant::now();
            let harness = fresh().await?;
            let backend = harness.backend();
            let quota = quota(&harness, &args).await?;
            println!();
            // Each scratch database goes when its suite is done.
            drop(harness);
            let ingest = crate::bench_ingest::run(&fresh().await?, &args.ingest).await?;
            println!();
            let year = crate::bench_year::run(&fresh().await?, &args.year).await?;
            println!();
            crate::bench_all::print(backend, &quota, &ingest, &year, started.elapsed());
            Ok(())
        }
    }
}

/// What the quota suite measured, for the goals table.
pub(crate) struct QuotaFigures {
    pub healthz: f64,
    pub usage: Measured,
    pub reserve: Measured,
    pub ready_ms: f64,
    pub rss_idle: Option<u64>,
    pub rss_peak: Option<u64>,
}

/// One scenario's throughput and latency.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `tollgate bench` (the quota suite): quota/usage and quota/reserve beside
/// /healthz, then the server's start-up time and memory.
async fn quota(harness: &Harness, args: &BenchArgs) -> Result<QuotaFigures> {
    harness
        .cli(&["tenant", "create", &harness.tenant], "tenant create")
        .await?;
    let token = harness.token("admin").await?;
    let (mut server, addr, ready) = harness.serve_ready().await?;
    let pid = server.id();
    let idle = pid.and_then(|p| proc_kib(p, "VmRSS"));
    let result = benchmark(addr, &token, harness.backend(), args).await;
    let peak = pid.and_then(|p| proc_kib(p, "VmHWM"));
    let stopped = stop_server(&mut server).await;
    // The benchmark's own error explains more than a failure to stop.
    let [healthz, usage, reserve] = result?;
    stopped?;
    println!(
        "server: start to ready (/readyz answers 200) {:.0} ms; RSS idle {}, peak under the benchmark {}",
        ms(ready),
        mib(idle),
        mib(peak)
    );
    Ok(QuotaFigures {
        healthz: healthz.rate,
        usage,
        reserve,
        ready_ms: ms(ready),
        rss_idle: idle,
        rss_peak: peak,
    })
}

/// Latencies (ms) of repeated sequential requests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    /// From unsorted samples in ms (at least one).
    pub(crate) fn of(mut times: Vec<f64>) -> Self {
        times.sort_by(f64::total_cmp);
        // Nearest rank: the smallest sample at or above the fraction.
        let rank = |q: f64| times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
        Self {
            p50: rank(0.5),
            p99: rank(0.99),
            max: times[times.len() - 1],
        }
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms",
            self.p50, self.p99, self.max
        )
    }
}

impl Latency {
    /// From unsorted durations (at least one).
    pub(crate) fn of_durations(times: &[Duration]) -> Self {
        Self::of(times.iter().copied().map(ms).collect())
    }
}

/// A duration in milliseconds, for printing.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A memory figure of process `pid` from `/proc/<pid>/status` (`VmRSS`: now,
/// `VmHWM`: its peak), in KiB; `None` where there is no such file.
pub(crate) fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// KiB as MiB for people ("n/a" when unknown).
pub(crate) fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// Runs a CLI command to completion; returns its stdout. Errors name the
/// command by `what`, not its arguments, which may hold a database password.
async fn cli_output(mut cmd: Command, what: &str) -> Result<String> {
    let out = cmd
        .output()
        .await
        .with_context(|| format!("cannot run tollgate {what}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("tollgate {what} failed: {}", stderr.trim());
    }
    String::from_utf8(out.stdout).context("tollgate printed non-UTF-8 output")
}

/// Spawns `tollgate serve` and waits until it reports its address.
async fn start_server(mut cmd: Command, log_path: &Path) -> Result<(Child, SocketAddr)> {
    let log = std::fs::File::create(log_path).context("cannot create the server log")?;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("cannot start tollgate serve")?;
    let stdout = child.stdout.take().context("server stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let wait_for_address = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix("tollgate listening on http://") {
                return Ok(Some(url.trim().to_owned()));
            }
        }
        Ok::<_, std::io::Error>(None)
    };
    let found = tokio::time::timeout(Duration::from_secs(60), wait_for_address).await;
    let addr = match found {
        Ok(Ok(Some(addr))) => addr,
        _ => {
            let _ = child.kill().await;
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            bail!("tollgate serve did not start listening; its log:\n{}", log.trim());
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let addr = addr
        .parse()
        .with_context(|| format!("server reported a bad address {addr:?}"))?;
    Ok((child, addr))
}

/// Polls `/readyz` until it answers 200 (for at most a minute).
async fn wait_ready(addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sender = connect(addr).await?;
    loop {
        let request = Request::get("/readyz")
            .header("host", addr.to_string())
            .body(Full::default())
            .context("cannot build the request")?;
        let (status, body) = send(&mut sender, request).await?;
        if status == StatusCode::OK {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the server was not ready within a minute: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Asks the server to shut down gracefully, then kills it if it lingers.
pub(crate) async fn stop_server(child: &mut Child) -> Result<()> {
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        let term = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if term.is_ok_and(|status| status.success())
            && let Ok(exited) = tokio::time::timeout(Duration::from_secs(10), child.wait()).await
        {
            let status = exited.context("cannot wait for the server")?;
            if !status.success() {
                bail!("the server exited with {status} after SIGTERM");
            }
            return Ok(());
        }
    }
    child.kill().await.context("cannot stop the server")
}

/// The endpoints under test, in reporting order; the first is the baseline.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scenario {
    Healthz,
    Usage,
    Reserve,
}

impl Scenario {
    const ALL: [Scenario; 3] = [Scenario::Healthz, Scenario::Usage, Scenario::Reserve];

    fn label(self) -> &'static str {
        match self {
            Scenario::Healthz => "GET /healthz",
            Scenario::Usage => "GET quota/usage",
            Scenario::Reserve => "POST quota/reserve",
        }
    }

    /// Request number `n` of connection `conn`.
    fn request(self, host: &str, token: &str, conn: u32, n: u64) -> Result<Request<Full<Bytes>>> {
        let builder = Request::builder().header("host", host);
        let request = match self {
            Scenario::Healthz => builder.uri("/healthz").body(Full::default()),
            Scenario::Usage => builder
                .uri("/api/web/namespaces/system/quota/usage")
                .header("authorization", token)
                .body(Full::default()),
            // A reused request_id is a replay, which would skip the real work.
            Scenario::Reserve => builder
                .method("POST")
                .uri("/api/web/namespaces/system/quota/reserve")
                .header("authorization", token)
                .header("content-type", "application/json")
                .body(Full::from(format!(
                    r#"{{"kind":"bench_object","amount":1,"request_id":"c{conn}-{n}"}}"#
                ))),
        };
        request.context("cannot build the request")
    }
}

/// What one scenario measured.
pub(crate) struct Stats {
    /// Latency of each recorded response, in microseconds.
    pub latency: Histogram<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Stats {
    fn new() -> Result<Self> {
        Ok(Self {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).context("cannot create a histogram")?,
            errors: 0,
            first_error: None,
        })
    }

    fn merge(&mut self, other: Stats) -> Result<()> {
        self.latency
            .add(&other.latency)
            .context("cannot merge histograms")?;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        Ok(())
    }
}

/// Creates the quota object that lifts the benchmarked limits.
pub(crate) async fn create_bench_quota(addr: SocketAddr, token: &Arc<str>) -> Result<()> {
    let mut setup = connect(addr).await?;
    let request = Request::post("/api/web/namespaces/system/quotas")
        .header("host", addr.to_string())
        .header("authorization", &**token)
        .header("content-type", "application/json")
        .body(Full::from(UNLIMITED_QUOTA))
        .context("cannot build the request")?;
    let (status, body) = send(&mut setup, request).await?;
    if status != StatusCode::OK {
        bail!(
            "cannot create the bench quota: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// Sets up the quota, runs every scenario and prints the table; returns
/// each scenario's figures in [`Scenario::ALL`]'s order.
async fn benchmark(
    addr: SocketAddr,
    token: &Arc<str>,
    backend: &str,
    args: &BenchArgs,
) -> Result<[Measured; 3]> {
    create_bench_quota(addr, token).await?;
    println!(
        "tollgate bench: {backend}, {} connections, {} per scenario (after {} warm-up)",
        args.connections, args.duration, args.warmup
    );
    println!(
        "{:<18}{:>10}{:>13}{:>11}{:>11}{:>9}",
        "scenario", "req/s", "vs healthz", "p50 ms", "p99 ms", "errors"
    );
    let seconds = args.duration.as_secs_f64();
    let mut baseline = None;
    let mut failed = 0;
    let mut measured = Vec::with_capacity(Scenario::ALL.len());
    for scenario in Scenario::ALL {
        let stats = load(addr, token, scenario, args).await?;
        let rate = stats.latency.len() as f64 / seconds;
        let baseline = *baseline.get_or_insert(rate);
        if let Some(error) = &stats.first_error {
            failed += 1;
            eprintln!("{}: first error: {error}", scenario.label());
        }
        let ms = |q| stats.latency.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{:<18}{rate:>10.1}{:>13.3}{:>11.3}{:>11.3}{:>9}",
            scenario.label(),
            if baseline > 0.0 { rate / baseline } else { 0.0 },
            ms(0.5),
            ms(0.99),
            stats.errors
        );
        measured.push(Measured {
            rate,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
        });
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "note: the load generator and the server share this machine's {cores} cores; compare the ratios."
    );
    if failed > 0 {
        bail!("{failed} scenario(s) had non-200 responses");
    }
    measured
        .try_into()
        .map_err(|_| anyhow::anyhow!("a scenario was not measured"))
}

/// Loads one scenario over `args.connections` connections; records only
/// responses that complete after the warm-up and before the end.
pub(crate) async fn load(
    addr: SocketAddr,
    token: &Arc<str>,
    scenario: Scenario,
    args: &BenchArgs,
) -> Result<Stats> {
    let recording = Instant::now()
        .checked_add(*args.warmup)
        .context("--warmup is too long")?;
    let end = recording
        .checked_add(*args.duration)
        .context("--duration is too long")?;
    // A JoinSet aborts the other connections as soon as one fails and we return.
    let mut tasks = JoinSet::new();
    for conn in 0..args.connections {
        let token = token.clone();
        tasks.spawn(async move {
            connection(addr, &token, scenario, conn, recording, end)
                .await
                .with_context(|| format!("{}: connection {conn} failed", scenario.label()))
        });
    }
    let mut total = Stats::new()?;
    while let Some(joined) = tasks.join_next().await {
        total.merge(joined.context("a load task panicked")??)?;
    }
    Ok(total)
}

/// One connection sending requests back to back until `end`.
async fn connection(
    addr: SocketAddr,
    token: &str,
    scenario: Scenario,
    conn: u32,
    recording: Instant,
    end: Instant,
) -> Result<Stats> {
    let mut sender = connect(addr).await?;
    let host = addr.to_string();
    let mut stats = Stats::new()?;
    let mut n = 0;
    while Instant::now() < end {
        n += 1;
        let request = scenario.request(&host, token, conn, n)?;
        let start = Instant::now();
        let (status, body) = send(&mut sender, request).await?;
        let done = Instant::now();
        if done < recording || done >= end {
            continue;
        }
        let micros = u64::try_from(done.duration_since(start).as_micros()).unwrap_or(u64::MAX);
        stats.latency.saturating_record(micros);
        if status != StatusCode::OK {
            stats.errors += 1;
            stats
                .first_error
                .get_or_insert_with(|| format!("{status} {}", String::from_utf8_lossy(&body)));
        }
    }
    Ok(stats)
}

/// Opens one keep-alive HTTP/1.1 connection.
pub(crate) async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    // Requests are small and sent one at a time; Nagle would only add delay.
    stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake failed")?;
    // Connection errors also fail the next request, which reports them.
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends a request and reads the whole response body.
pub(crate) async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes)> {
    sender.ready().await.context("connection closed")?;
    let response = sender.send_request(request).await.context("request failed")?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("cannot read the response")?;
    Ok((status, body.to_bytes()))
}
