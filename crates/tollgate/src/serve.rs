//! `tollgate serve`: the HTTP server with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use clap::{Args, ValueEnum};
use tollgate_api::AppState;
use tollgate_api::server::HttpLimits;
use tollgate_api::state::Options;
use tollgate_domain::clock::{Clock, SystemClock};
use tracing_subscriber::EnvFilter;

use crate::cli::StorageArgs;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on: HOST:PORT, or :PORT for 127.0.0.1:PORT (port 0
    /// picks a free port; 0.0.0.0:PORT listens on every interface).
    #[arg(long, env = "TOLLGATE_LISTEN", default_value = "127.0.0.1:8080", value_parser = listen_arg)]
    pub listen: SocketAddr,
    /// Log format: text for people, json for log pipelines.
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Credential of the operator API (/api/operator, `Authorization: Bearer <it>`);
    /// the operator API is off without it.
    #[arg(long, env = "TOLLGATE_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    /// How far in the future a usage event's timestamp may be (reporters' clock skew).
    #[arg(long, env = "TOLLGATE_MAX_EVENT_SKEW", default_value = "5m")]
    pub max_event_skew: humantime::Duration,
    /// How often background jobs (plan transitions, charges) look for work.
    #[arg(long, env = "TOLLGATE_JOB_INTERVAL", default_value = "1s")]
    pub job_interval: humantime::Duration,
    /// Serve the API without running background jobs in this process (run
    /// them in another replica, or with `tollgate jobs run` from a scheduler).
    /// Operator "run job" calls, "charge now" and payment webhooks still work.
    #[arg(long, env = "TOLLGATE_NO_JOBS")]
    pub no_jobs: bool,
    /// A bearer token `GET /metrics` requires (`Authorization: Bearer <it>`);
    /// the metrics are open without one.
    #[arg(long, env = "TOLLGATE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Serve `GET /metrics` on this address instead of the API's (HOST:PORT
    /// or :PORT, as --listen), e.g. a port only Prometheus reaches; the
    /// API's address then answers 404 there. Same --metrics-token rule.
    #[arg(long, env = "TOLLGATE_METRICS_LISTEN", value_parser = listen_arg)]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub invoicing: crate::cli::InvoicingArgs,
    #[command(flatten)]
    pub retention: crate::cli::RetentionArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub payments: crate::provider::PaymentArgs,
    #[command(flatten)]
    pub webhooks: crate::cli::WebhookArgs,
}

/// How long connections may take and how many there may be (ARCHITECTURE.md,
/// "Connections and timeouts").
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Longest a client may take to send a request's headers, from connecting or
    /// from the first byte of a following request; then the connection is closed.
    #[arg(long, env = "TOLLGATE_HEADER_READ_TIMEOUT", default_value = "10s")]
    pub header_read_timeout: humantime::Duration,
    /// Longest a keep-alive connection may stay idle between requests.
    #[arg(long, env = "TOLLGATE_KEEP_ALIVE_TIMEOUT", default_value = "75s")]
    pub keep_alive_timeout: humantime::Duration,
    /// On SIGTERM/SIGINT, longest to wait for requests in flight before closing
    /// every connection.
    #[arg(long, env = "TOLLGATE_SHUTDOWN_TIMEOUT", default_value = "20s")]
    pub shutdown_timeout: humantime::Duration,
    /// Most connections open at once; more are answered 503 and closed. Keep it
    /// well below the process's file descriptor limit (`ulimit -n`).
    #[arg(long, env = "TOLLGATE_MAX_CONNECTIONS", default_value = "1024")]
    pub max_connections: usize,
}

/// Longest accepted value of a connection timeout.
const MAX_CONNECTION_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

impl ConnectionArgs {
    pub fn limits(&self) -> Result<HttpLimits> {
        let timeout = |d: &humantime::Duration, flag: &str, zero_ok: bool| -> Result<Duration> {
            let d: Duration = **d;
            ensure!(zero_ok || !d.is_zero(), "{flag} must be longer than 0s");
            ensure!(d <= MAX_CONNECTION_TIMEOUT, "{flag} must be at most 24h");
            Ok(d)
        };
        ensure!(self.max_connections >= 1, "--max-connections must be at least 1");
        // tokio's semaphore holds at most usize::MAX >> 3 permits.
        ensure!(
            self.max_connections <= 1 << 30,
            "--max-connections must be at most {}",
            1u64 << 30
        );
        Ok(HttpLimits {
            header_read_timeout: timeout(&self.header_read_timeout, "--header-read-timeout", false)?,
            keep_alive_timeout: timeout(&self.keep_alive_timeout, "--keep-alive-timeout", false)?,
            shutdown_timeout: timeout(&self.shutdown_timeout, "--shutdown-timeout", true)?,
            max_connections: self.max_connections,
        })
    }
}

/// Parses `--listen`: a socket address, or `:PORT` on the default host
/// (loopback: listening on every interface is a choice to spell out).
pub fn listen_arg(s: &str) -> Result<SocketAddr, String> {
    let full;
    let addr = match s.strip_prefix(':') {
        Some(port) => {
            full = format!("127.0.0.1:{port}");
            &full
        }
        None => s,
    };
    addr.parse().map_err(|_| {
        format!(
            "{s:?} is not an address to listen on: expected HOST:PORT (127.0.0.1:8080, [::1]:8080) or :PORT"
        )
    })
}

/// Whether text logs carry ANSI colours: only on a terminal, and never when
/// `NO_COLOR` is set (<https://no-color.org>), so that logs redirected to a
/// file or a collector stay plain text.
fn log_colours() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("TOLLGATE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(log_colours())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}

pub async fn run(storage: &StorageArgs, args: ServeArgs) -> Result<()> {
    init_logging(args.log_format);
    // Installed before anything announces the server, so that a signal sent
    // as soon as it is up is never lost to the default (fatal) handler.
    let shutdown = ShutdownSignals::install().context("cannot install signal handlers")?;
    let store = storage.open_or_create().await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let providers = args.payments.providers()?;
    args.payments.announce(&providers);
    let invoicing = args.invoicing.settings()?;
    let retention = args.retention.retention()?;
    let options = Options {
        providers: Some(providers.clone()),
        operator_token: args.operator_token.clone(),
        max_event_skew: Some(
            jiff::SignedDuration::try_from(*args.max_event_skew).context("--max-event-skew is too long")?,
        ),
        invoicing: Some(invoicing),
        retention: Some(retention),
        worker_id: Some(crate::cli::worker_id()),
        stripe_webhook_secret: args.payments.stripe_webhook_secret.clone(),
        metrics_token: args.metrics_token.clone(),
        webhooks: Some(args.webhooks.settings()?),
    };
    // The recorder, before anything records (build info from the start).
    tollgate_api::metrics::handle();
    let limits = args.connections.limits()?;
    let state = AppState::with_options(store.clone(), clock, options);
    // The job loop runs with exactly what the operator API's job runs use.
    let jobs = state.job_context();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let metrics_listener = match args.metrics_listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at} for the metrics"))?,
        ),
        None => None,
    };
    match store.backend() {
        "sqlite" => tracing::info!(
            %addr,
            database = "sqlite",
            synchronous = storage.options().sqlite_synchronous.as_str(),
            "tollgate listening"
        ),
        backend => tracing::info!(%addr, database = backend, "tollgate listening"),
    }
    if storage.options().sqlite_synchronous == tollgate_store::Synchronous::Normal
        && store.backend() == "sqlite"
    {
        tracing::warn!(
            "--sqlite-synchronous normal: a power loss or OS crash can lose the latest acknowledged writes"
        );
    }
    // Tests and scripts read these lines to learn the ports (the metrics'
    // first: readers may stop at "listening").
    if let Some(l) = &metrics_listener {
        let at = l.local_addr()?;
        tracing::info!(addr = %at, "metrics served on their own address");
        println!("tollgate metrics on http://{at}/metrics");
    }
    println!("tollgate listening on http://{addr}");
    if store.tenants().await?.is_empty() {
        println!(
            "no tenants yet; create one and a token with:\n  \
             tollgate tenant create acme\n  \
             tollgate token create --tenant acme --role admin"
        );
    }
    // One signal stops both the HTTP server and the job loop.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.received().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let job_loop = if args.no_jobs {
        tracing::info!("background jobs are off in this process (--no-jobs)");
        tokio::spawn(async {})
    } else {
        tokio::spawn(tollgate_app::run_forever(
            jobs,
            *args.job_interval,
            stopped(stop_rx.clone()),
        ))
    };
    // The API and the web console, behind the same middleware.
    let (router, metrics_server) = match metrics_listener {
        Some(l) => (
            tollgate_api::router_with(state.clone(), tollgate_console::routes(), false),
            tokio::spawn(tollgate_api::server::serve(
                l,
                tollgate_api::metrics::router(state),
                limits,
                stopped(stop_rx.clone()),
            )),
        ),
        None => (
            tollgate_api::router_with(state, tollgate_console::routes(), true),
            tokio::spawn(async {}),
        ),
    };
    // Building the router builds the API description once (for the
    // metrics' operation ids): megabytes freed at once, returned now.
    trim().await;
    tokio::spawn(return_free_memory(stopped(stop_rx.clone())));
    tollgate_api::server::serve(listener, router, limits, stopped(stop_rx)).await;
    let _ = metrics_server.await;
    let _ = job_loop.await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT and SIGTERM; after either, the server stops accepting and waits
/// for in-flight requests to finish (at most `--shutdown-timeout`).
struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    #[cfg(unix)]
    async fn received(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => tracing::info!("SIGINT received, finishing in-flight requests"),
            _ = self.terminate.recv() => tracing::info!("SIGTERM received, finishing in-flight requests"),
        }
    }

    #[cfg(not(unix))]
    async fn received(self) {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C received, finishing in-flight requests");
        }
    }
}

/// How often freed memory is handed back to the operating system.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Hands memory that is free but kept by the allocator back to the operating
/// system, every [`TRIM_EVERY`], until `stop`. glibc keeps what each thread's
/// arena once held: after a large answer or read, freed by one of the
/// server's many threads (tokio workers, one per SQLite connection), RSS
/// stayed at its high-water mark for good. A fuzzing run that reached 213 MB
/// went back to 52 MB when trimmed (ARCHITECTURE.md, "Memory").
async fn return_free_memory(stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => {}
        }
        trim().await;
    }
}

/// Returns the allocator's free memory to the system (glibc only).
async fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe.
    let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        connections: ConnectionArgs,
    }

    fn limits(args: &[&str]) -> Result<HttpLimits> {
        Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))?
            .connections
            .limits()
    }

    #[test]
    fn connection_flags_default_to_the_api_defaults() {
        assert_eq!(limits(&[]).unwrap(), HttpLimits::default());
    }

    #[test]
    fn connection_flags_are_validated() {
        let set = limits(&[
            "--header-read-timeout=2s",
            "--keep-alive-timeout=500ms",
            "--shutdown-timeout=0s",
            "--max-connections=7",
        ])
        .unwrap();
        assert_eq!(
            set,
            HttpLimits {
                header_read_timeout: Duration::from_secs(2),
                keep_alive_timeout: Duration::from_millis(500),
                shutdown_timeout: Duration::ZERO,
                max_connections: 7,
            }
        );
        for bad in [
            "--header-read-timeout=0s",
            "--keep-alive-timeout=0s",
            "--shutdown-timeout=2days",
            "--max-connections=0",
            "--max-connections=-1",
        ] {
            assert!(limits(&[bad]).is_err(), "{bad} was accepted");
        }
    }
}
