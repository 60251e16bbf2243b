//! `tollgate serve`: the HTTP server with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use tollgate_api::AppState;
use tollgate_api::state::Options;
use tollgate_domain::clock::{Clock, SystemClock};
use tollgate_jobs::JobContext;
use tollgate_payments::{PaymentProvider, TestProvider};
use tracing_subscriber::EnvFilter;

use crate::cli::StorageArgs;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "TOLLGATE_LISTEN", default_value = "127.0.0.1:8080")]
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
    #[command(flatten)]
    pub invoicing: crate::cli::InvoicingArgs,
    #[command(flatten)]
    pub retention: crate::cli::RetentionArgs,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("TOLLGATE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
    let store = storage.open().await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let provider: Arc<dyn PaymentProvider> = Arc::new(TestProvider::default());
    tracing::warn!(
        provider = provider.name(),
        "payments go to the built-in test provider (tok-… tokens, no real money); it is the only provider so far"
    );
    let options = Options {
        provider: Some(provider.clone()),
        operator_token: args.operator_token.clone(),
        max_event_skew: Some(
            jiff::SignedDuration::try_from(*args.max_event_skew).context("--max-event-skew is too long")?,
        ),
    };
    let invoicing = args.invoicing.settings()?;
    let retention = args.retention.retention()?;
    let state = AppState::with_options(store.clone(), clock.clone(), options);
    let jobs = JobContext {
        store: store.clone(),
        clock,
        provider,
        worker_id: crate::cli::worker_id(),
        catalogs: state.catalogs().versions(),
        invoicing,
        retention,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
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
    // Tests and scripts read this line to learn the port.
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
    let job_loop = tokio::spawn(tollgate_jobs::run_forever(
        jobs,
        *args.job_interval,
        stopped(stop_rx.clone()),
    ));
    axum::serve(listener, tollgate_api::router(state))
        .with_graceful_shutdown(stopped(stop_rx))
        .await
        .context("server failed")?;
    let _ = job_loop.await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT and SIGTERM; after either, the server stops accepting and waits
/// for in-flight requests to finish.
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
