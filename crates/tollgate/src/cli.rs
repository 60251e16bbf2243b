//! Command-line interface: `serve` and the operator commands.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use jiff::Timestamp;
use tollgate_domain::access::NamespaceScope;
use tollgate_domain::names::Name;
use tollgate_domain::tenant::Tenant;
use tollgate_store::{Location, Store};

use crate::table::Table;

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Self-hosted billing, usage metering and quotas"
)]
pub struct Cli {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the data lives; shared by every command.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Directory of the embedded SQLite database (used unless --database-url is given).
    #[arg(
        long,
        env = "TOLLGATE_DATA_DIR",
        global = true,
        default_value = "tollgate-data"
    )]
    pub data_dir: PathBuf,
    /// PostgreSQL URL (postgres://user@host:port/db); replaces the SQLite default.
    #[arg(long, env = "TOLLGATE_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// When SQLite acknowledges a commit: `full` (default) after it is flushed
    /// to disk, so it survives power loss; `normal` skips that flush and can
    /// lose the latest acknowledged writes on a power loss or OS crash (not on
    /// a crash of Tollgate itself). PostgreSQL ignores this.
    #[arg(
        long,
        env = "TOLLGATE_SQLITE_SYNCHRONOUS",
        global = true,
        value_enum,
        default_value = "full"
    )]
    pub sqlite_synchronous: SqliteSynchronous,
}

/// `--sqlite-synchronous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqliteSynchronous {
    Full,
    Normal,
}

impl From<SqliteSynchronous> for tollgate_store::Synchronous {
    fn from(s: SqliteSynchronous) -> Self {
        match s {
            SqliteSynchronous::Full => Self::Full,
            SqliteSynchronous::Normal => Self::Normal,
        }
    }
}

impl StorageArgs {
    pub fn location(&self) -> Result<Location> {
        match self.database_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Location::Postgres(url.to_owned()))
            }
            Some(other) => bail!(
                "--database-url must be a postgres:// URL, got {:?}",
                other.split('@').next_back().unwrap_or("")
            ),
            None => Ok(Location::SqliteDir(self.data_dir.clone())),
        }
    }

    pub fn options(&self) -> tollgate_store::StoreOptions {
        tollgate_store::StoreOptions {
            sqlite_synchronous: self.sqlite_synchronous.into(),
            ..Default::default()
        }
    }

    /// Opens the existing database: an operator command run from the wrong
    /// directory must not create a new, empty one and answer from it.
    pub async fn open(&self) -> Result<Arc<dyn Store>> {
        self.open_as(Create::No).await
    }

    /// Opens the database, creating it if it does not exist (`serve`, `init`).
    pub async fn open_or_create(&self) -> Result<Arc<dyn Store>> {
        self.open_as(Create::Yes).await
    }

    async fn open_as(&self, create: Create) -> Result<Arc<dyn Store>> {
        let location = self.location()?;
        let options = tollgate_store::StoreOptions {
            must_exist: create == Create::No,
            ..self.options()
        };
        match tollgate_store::open_with(&location, options).await {
            Ok(store) => {
                // Tenants from a Tollgate before plans get the default plan.
                let versions = tollgate_app::catalogs::Versions::default();
                tollgate_app::catalogs::adopt_planless_tenants(&*store, &versions, Timestamp::now()).await?;
                // And tenants from before currencies keep the one they were invoiced in.
                tollgate_app::catalogs::pin_tenant_currencies(&*store, &versions).await?;
                Ok(store)
            }
            Err(tollgate_store::StoreError::NotFound(what)) if create == Create::No => bail!(
                "{what}. Run this command in the directory where `tollgate serve` runs, or point \
                 --data-dir (TOLLGATE_DATA_DIR) or --database-url (TOLLGATE_DATABASE_URL) at the \
                 server's database; `tollgate init` creates a new one"
            ),
            Err(e) => Err(anyhow::Error::new(e)).with_context(|| match &location {
                Location::SqliteDir(dir) => format!("cannot open the database in {}", dir.display()),
                Location::Postgres(_) => "cannot open the PostgreSQL database".to_owned(),
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Create {
    Yes,
    No,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (creates the database if it does not exist).
    Serve(crate::serve::ServeArgs),
    /// Create the database (and publish the built-in catalog) without
    /// serving; other operator commands refuse to create one.
    Init,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage namespaces of a tenant.
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage operator tokens (credentials of the operator API).
    #[command(subcommand)]
    OperatorToken(OperatorTokenCommand),
    /// List and delete a tenant's quota objects (e.g. one whose API limit
    /// locks the tenant out).
    #[command(subcommand)]
    Quota(crate::quota::QuotaCommand),
    /// Publish and inspect plan catalogs.
    #[command(subcommand)]
    Catalog(crate::operator::CatalogCommand),
    /// Approve, reject and list plan transitions.
    #[command(subcommand)]
    Transition(crate::operator::TransitionCommand),
    /// Read the audit trail.
    #[command(subcommand)]
    Audit(crate::operator::AuditCommand),
    /// Run background jobs by hand.
    #[command(subcommand)]
    Jobs(crate::operator::JobsCommand),
    /// Import usage history and rebuild rollups.
    #[command(subcommand)]
    Usage(crate::usage::UsageCommand),
    /// Define coupons and apply them to tenants.
    #[command(subcommand)]
    Coupon(crate::usage::CouponCommand),
    /// List, show, download, refund and cancel invoices.
    #[command(subcommand)]
    Invoice(crate::invoice::InvoiceCommand),
    /// Grant, show and reverse a tenant's prepaid credits.
    #[command(subcommand)]
    Credits(crate::credits::CreditsCommand),
    /// Manage webhook endpoints (every tenant's events, or one tenant's) and their deliveries.
    #[command(subcommand)]
    Webhook(crate::webhook::WebhookCommand),
    /// Measure throughput and latency of key endpoints against a fresh server.
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (and its `system` namespace).
    Create {
        name: String,
        /// Plan of the first subscription; default: the catalog's default plan.
        #[arg(long)]
        plan: Option<String>,
        /// FREEMIUM or ENTERPRISE; default: the plan's tenant type.
        #[arg(long = "type")]
        tenant_type: Option<String>,
        /// Backdate the tenant and its first subscription (RFC 3339, not
        /// before 1970), to import usage history.
        #[arg(long, value_parser = time_arg)]
        since: Option<Timestamp>,
        /// ISO 4217 currency it is priced and invoiced in, one the catalog
        /// prices; default: the catalog's first.
        #[arg(long)]
        currency: Option<String>,
    },
    /// List tenants (STATUS: active, or suspended for unpaid invoices).
    List,
    /// Show a tenant: plan, type, and its suspension if it is suspended.
    Show { name: String },
    /// Lift a tenant's suspension for unpaid invoices by hand: reservations
    /// work again, until another invoice stays OVERDUE past the delay.
    Reinstate { name: String },
    /// Show or set how a tenant is taxed: by the rates of its billing
    /// address (--standard), --exempt, or --reverse-charge TAX_ID (a
    /// business that accounts for the tax itself). Audited.
    Tax {
        name: String,
        #[arg(long, conflicts_with_all = ["exempt", "reverse_charge"])]
        standard: bool,
        #[arg(long, conflicts_with = "reverse_charge")]
        exempt: bool,
        #[arg(long, value_name = "TAX_ID")]
        reverse_charge: Option<String>,
    },
    /// Show or change the currency a tenant is priced and invoiced in (one
    /// its catalog version prices), from its current period on; refused
    /// while any of its invoices is unpaid. Audited.
    Currency {
        name: String,
        /// The new currency (ISO 4217); without it, show the current one.
        currency: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NamespaceCommand {
    /// Create a namespace in a tenant.
    Create {
        #[arg(long)]
        tenant: String,
        name: String,
    },
    /// List a tenant's namespaces.
    List {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; prints only its secret on stdout.
    Create {
        #[arg(long)]
        tenant: String,
        /// admin, billing, monitor (read-only) or platform (quota usage and metering only).
        #[arg(long)]
        role: String,
        /// Restrict the token to these namespaces (repeatable); default: all.
        #[arg(long = "namespace")]
        namespaces: Vec<String>,
        /// Lifetime, e.g. 30d, 12h; default: no expiry.
        #[arg(long)]
        expires_in: Option<humantime::Duration>,
        /// A label shown by `token list`.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List a tenant's tokens (never their secrets).
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a token by id (from `token list`).
    Revoke {
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OperatorTokenCommand {
    /// Create a named operator token; prints only its secret on stdout.
    Create {
        /// Names the holder in the audit trail (`operator-token/NAME`).
        name: String,
        /// operator-admin (everything) or operator-read (reads only).
        #[arg(long)]
        role: String,
    },
    /// List operator tokens (never their secrets).
    List,
    /// Revoke the live operator token with this name.
    Revoke { name: String },
}

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => crate::serve::run(&cli.storage, args).await,
        Command::Init => init(&cli.storage).await,
        Command::Tenant(cmd) => tenant(&*cli.storage.open().await?, cmd).await,
        Command::Namespace(cmd) => namespace(&*cli.storage.open().await?, cmd).await,
        Command::Token(cmd) => token_cmd(&*cli.storage.open().await?, cmd).await,
        Command::OperatorToken(cmd) => operator_token_cmd(&*cli.storage.open().await?, cmd).await,
        Command::Quota(cmd) => crate::quota::quota(&*cli.storage.open().await?, cmd).await,
        Command::Catalog(cmd) => crate::operator::catalog(&cli.storage, cmd).await,
        Command::Transition(cmd) => crate::operator::transition(&*cli.storage.open().await?, cmd).await,
        Command::Audit(cmd) => crate::operator::audit(&*cli.storage.open().await?, cmd).await,
        Command::Jobs(cmd) => crate::operator::jobs(&cli.storage, cmd).await,
        Command::Usage(cmd) => crate::usage::usage(&*cli.storage.open().await?, cmd).await,
        Command::Coupon(cmd) => crate::usage::coupon(&*cli.storage.open().await?, cmd).await,
        Command::Invoice(cmd) => crate::invoice::invoice(cli.storage.open().await?, cmd).await,
        Command::Credits(cmd) => crate::credits::credits_cmd(&*cli.storage.open().await?, cmd).await,
        Command::Webhook(cmd) => crate::webhook::webhook(cli.storage.open().await?, cmd).await,
        Command::Bench(args) => crate::bench::run(&cli.storage, args).await,
    }
}

async fn init(storage: &StorageArgs) -> Result<()> {
    let (what, existed) = match storage.location()? {
        Location::SqliteDir(dir) => {
            let file = dir.join(tollgate_store::sqlite::FILE_NAME);
            let file = std::path::absolute(&file).unwrap_or(file);
            (file.display().to_string(), file.exists())
        }
        Location::Postgres(_) => ("the PostgreSQL database".to_owned(), true),
    };
    let store = storage.open_or_create().await?;
    let version = store
        .catalog(None)
        .await?
        .context("no catalog is published")?
        .version;
    if existed {
        println!("{what} is ready (catalog version {version})");
    } else {
        println!("created {what} (catalog version {version})");
    }
    Ok(())
}

/// When invoices are finalized, how charges are retried and when unpaid
/// ones suspend their tenant (`serve` and `jobs run`).
#[derive(Debug, Clone, Args)]
pub struct InvoicingArgs {
    /// How long after a billing period ends its invoice stays open for late usage.
    #[arg(long, env = "TOLLGATE_INVOICE_GRACE", default_value = "1d")]
    pub invoice_grace: humantime::Duration,
    /// When to retry a declined charge, counted from finalization
    /// (comma-separated); after the last failure the invoice is OVERDUE.
    #[arg(
        long,
        env = "TOLLGATE_CHARGE_RETRIES",
        default_value = "1d,3d,7d",
        value_delimiter = ','
    )]
    pub charge_retries: Vec<humantime::Duration>,
    /// How long an invoice may stay OVERDUE before its tenant is suspended
    /// (quota reservations refused until it is paid); `off` (or 0): never.
    #[arg(
        long,
        env = "TOLLGATE_SUSPEND_AFTER",
        default_value = "14d",
        value_parser = suspend_after_arg
    )]
    pub suspend_after: SuspendAfter,
}

/// `--suspend-after`: a delay, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuspendAfter(Option<jiff::SignedDuration>);

fn suspend_after_arg(s: &str) -> std::result::Result<SuspendAfter, String> {
    if s.trim().eq_ignore_ascii_case("off") || s.trim() == "0" {
        return Ok(SuspendAfter(None));
    }
    let d = humantime::parse_duration(s.trim()).map_err(|e| format!("{e}; e.g. 14d, or off"))?;
    let d = jiff::SignedDuration::try_from(d)
        .ok()
        .filter(|d| *d <= MAX_INVOICING_DELAY)
        .ok_or("must be at most 3660d")?;
    Ok(SuspendAfter((!d.is_zero()).then_some(d)))
}

/// The longest invoice grace or charge retry delay: added to period ends
/// and finalization times, a longer one could pass the end of time.
const MAX_INVOICING_DELAY: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 3660);

impl InvoicingArgs {
    pub fn settings(&self) -> Result<tollgate_app::invoices::InvoiceSettings> {
        let d = |h: &humantime::Duration, what: &str| {
            jiff::SignedDuration::try_from(**h)
                .ok()
                .filter(|d| *d <= MAX_INVOICING_DELAY)
                .with_context(|| format!("{what} must be at most 3660d"))
        };
        let retry_delays = self
            .charge_retries
            .iter()
            .map(|r| d(r, "--charge-retries"))
            .collect::<Result<Vec<_>>>()?;
        if retry_delays.windows(2).any(|w| w[0] >= w[1]) {
            bail!("--charge-retries must be increasing, e.g. 1d,3d,7d");
        }
        Ok(tollgate_app::invoices::InvoiceSettings {
            grace: d(&self.invoice_grace, "--invoice-grace")?,
            retry_delays,
            suspend_after: self.suspend_after.0,
        })
    }
}

/// What housekeeping keeps; `serve` and `jobs run`.
#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// How long a quota request's `request_id` is remembered (at least 24h):
    /// a retry within it replays the first answer, after it the same id is a
    /// new request.
    #[arg(long, env = "TOLLGATE_IDEMPOTENCY_WINDOW", default_value = "24h")]
    pub idempotency_window: humantime::Duration,
    /// How long raw usage events are kept: `finalized` deletes an event
    /// once it is before the start of its tenant's latest finalized period
    /// (no event that old is admitted any more, so none is counted twice);
    /// a duration (e.g. `400d`) keeps each at least that long too; `forever`
    /// deletes none. Rollups, invoices and the audit log are always kept.
    #[arg(long, env = "TOLLGATE_KEEP_RAW_EVENTS", default_value = "finalized")]
    pub keep_raw_events: String,
}

impl RetentionArgs {
    pub fn retention(&self) -> Result<tollgate_app::maintenance::Retention> {
        let window = jiff::SignedDuration::try_from(*self.idempotency_window)
            .context("--idempotency-window is too long")?;
        if window < tollgate_app::maintenance::DEFAULT_IDEMPOTENCY_WINDOW {
            bail!(
                "--idempotency-window must be at least 24h, so that a client's retry is never counted twice"
            );
        }
        use tollgate_app::maintenance::RawEvents;
        let raw_events = match self.keep_raw_events.as_str() {
            "finalized" => RawEvents::UntilFinalized,
            "forever" => RawEvents::Forever,
            other => {
                let keep = humantime::parse_duration(other).map_err(|e| {
                    anyhow::anyhow!(
                        "--keep-raw-events must be `finalized`, `forever` or a duration such as `400d` ({other:?}: {e})"
                    )
                })?;
                RawEvents::AtLeast(
                    jiff::SignedDuration::try_from(keep).context("--keep-raw-events is too long")?,
                )
            }
        };
        Ok(tollgate_app::maintenance::Retention {
            idempotency_window: window,
            raw_events,
        })
    }
}

/// How webhooks are delivered; `serve` and `jobs run`.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Deliver webhooks to loopback, link-local and private addresses (and
    /// `localhost`): receivers on the same host or network, on-premises and
    /// in tests. Off, such endpoints are refused when created, and a host
    /// name resolving only to such addresses is not called.
    #[arg(long, env = "TOLLGATE_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// How long one delivery attempt may take, connecting included.
    #[arg(long, env = "TOLLGATE_WEBHOOK_TIMEOUT", default_value = "10s")]
    pub webhook_timeout: humantime::Duration,
    /// Disable an endpoint whose every attempt failed for this long (the
    /// operator is told: audit entry, metric, log).
    #[arg(long, env = "TOLLGATE_WEBHOOK_DISABLE_AFTER", default_value = "5days")]
    pub webhook_disable_after: humantime::Duration,
}

impl WebhookArgs {
    pub fn settings(&self) -> Result<tollgate_app::webhooks::WebhookSettings> {
        let timeout = *self.webhook_timeout;
        if timeout.is_zero() || timeout > std::time::Duration::from_secs(300) {
            bail!("--webhook-timeout must be more than 0 and at most 5m");
        }
        let disable_after = jiff::SignedDuration::try_from(*self.webhook_disable_after)
            .context("--webhook-disable-after is too long")?;
        if disable_after < jiff::SignedDuration::from_hours(1) {
            bail!("--webhook-disable-after must be at least 1h");
        }
        Ok(tollgate_app::webhooks::WebhookSettings {
            allow_private: self.webhook_allow_private,
            timeout,
            disable_after,
            ..Default::default()
        })
    }
}

/// Names this process in job leases.
pub fn worker_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "tollgate".into());
    format!("{host}/{}", std::process::id())
}

/// Parses a time flag as the API parses times (RFC 3339 or unix seconds),
/// within the supported range, so that no flag can push later arithmetic
/// past the end of time.
pub fn time_arg(s: &str) -> std::result::Result<Timestamp, String> {
    tollgate_domain::metering::parse_time(s)
}

/// An application error as the CLI shows it: a field of the use case that
/// is one of the command's `flags` is named as the flag the operator typed
/// (`since: …` → `--since …`).
pub(crate) fn flags(flags: &'static [&'static str]) -> impl Fn(tollgate_app::AppError) -> anyhow::Error {
    move |e| match e {
        tollgate_app::AppError::Rule(rule) => {
            let message = match rule.message.split_once(": ") {
                Some((field, rest)) if flags.contains(&field) => {
                    format!("--{}: {rest}", field.replace('_', "-"))
                }
                _ => rule.message,
            };
            anyhow::anyhow!(message)
        }
        tollgate_app::AppError::Store(e) => e.into(),
    }
}

/// Who the operator CLI is, in the audit trail.
pub(crate) const ACTOR: &str = "operator";

pub(crate) async fn find_tenant(store: &dyn Store, name: &str) -> Result<Tenant> {
    store
        .tenant_by_name(name)
        .await?
        .with_context(|| format!("tenant {name:?} does not exist (see `tollgate tenant list`)"))
}

async fn tenant(store: &dyn Store, cmd: TenantCommand) -> Result<()> {
    match cmd {
        TenantCommand::Create {
            name,
            plan,
            tenant_type,
            since,
            currency,
        } => {
            let versions = tollgate_app::catalogs::Versions::default();
            let req = tollgate_app::tenancy::TenantRequest {
                name,
                plan,
                tenant_type,
                since,
                currency,
            };
            let tenant =
                tollgate_app::tenancy::create_tenant(store, &versions, &req, ACTOR, Timestamp::now())
                    .await
                    .map_err(flags(&["plan", "since", "currency"]))?;
            println!(
                "created tenant {} ({}) on plan {} with namespace system",
                tenant.name, tenant.tenant_type, tenant.plan
            );
        }
        TenantCommand::List => {
            let mut table = Table::new(&["NAME", "TYPE", "PLAN", "STATUS", "CREATED", "ID"]);
            for t in store.tenants().await? {
                table.row([
                    t.name.to_string(),
                    t.tenant_type.to_string(),
                    t.plan.to_string(),
                    status(&t).to_owned(),
                    t.created_at.to_string(),
                    t.id.into_string(),
                ]);
            }
            table.print();
        }
        TenantCommand::Show { name } => show_tenant(&find_tenant(store, &name).await?),
        TenantCommand::Reinstate { name } => {
            let t = find_tenant(store, &name).await?;
            let after = tollgate_app::dunning::reinstate(store, &t, ACTOR, Timestamp::now()).await?;
            println!("reinstated tenant {}: {}", after.name, status(&after));
        }
        TenantCommand::Tax {
            name,
            standard,
            exempt,
            reverse_charge,
        } => {
            use tollgate_domain::rating::TaxTreatment;
            let t = find_tenant(store, &name).await?;
            let chosen = if standard {
                Some(TaxTreatment::Standard)
            } else if exempt {
                Some(TaxTreatment::Exempt)
            } else {
                reverse_charge
                    .map(|id| TaxTreatment::parse("reverse_charge", Some(&id)))
                    .transpose()?
            };
            if let Some(treatment) = &chosen {
                store
                    .set_tax_treatment(&t.id, treatment, ACTOR, Timestamp::now())
                    .await?;
            }
            let now = store.tax_treatment(&t.id).await?;
            match now.tax_id() {
                Some(id) => println!("tenant {}: tax {} (tax id {id})", t.name, now.as_str()),
                None => println!("tenant {}: tax {}", t.name, now.as_str()),
            }
        }
        TenantCommand::Currency { name, currency } => {
            let versions = tollgate_app::catalogs::Versions::default();
            let mut t = find_tenant(store, &name).await?;
            if let Some(code) = currency {
                t = tollgate_app::tenancy::set_currency(store, &versions, &t, &code, ACTOR, Timestamp::now())
                    .await
                    .map_err(flags(&[]))?;
            }
            let catalog = versions.get(store, t.catalog_version).await?;
            println!(
                "tenant {}: currency {} (catalog v{} prices {})",
                t.name,
                catalog.currency_of(t.currency.as_deref()),
                t.catalog_version,
                catalog.currencies.join(", ")
            );
        }
    }
    Ok(())
}

fn status(t: &Tenant) -> &'static str {
    if t.suspension.is_some() {
        "suspended"
    } else {
        "active"
    }
}

fn show_tenant(t: &Tenant) {
    println!(
        "tenant {} ({}), plan {} (catalog v{})",
        t.name, t.tenant_type, t.plan, t.catalog_version
    );
    println!("id:      {}", t.id);
    println!("created: {}", t.created_at);
    if let Some(currency) = &t.currency {
        println!("currency: {currency}");
    }
    if let Some(domain) = &t.domain {
        println!("domain:  {domain}");
    }
    match &t.suspension {
        None => println!("status:  active"),
        Some(s) => {
            let invoices: Vec<&str> = s.invoices.iter().map(|i| i.as_str()).collect();
            println!(
                "status:  suspended since {} by {} for unpaid invoices {} (quota reservations are refused until \
                 they are paid; `tollgate tenant reinstate {}` lifts it)",
                s.since,
                s.by,
                invoices.join(", "),
                t.name
            );
        }
    }
}

async fn namespace(store: &dyn Store, cmd: NamespaceCommand) -> Result<()> {
    match cmd {
        NamespaceCommand::Create { tenant, name } => {
            let t = find_tenant(store, &tenant).await?;
            let ns =
                tollgate_app::tenancy::create_namespace(store, &t, &name, ACTOR, Timestamp::now()).await?;
            println!("created namespace {} in tenant {}", ns.name, t.name);
        }
        NamespaceCommand::List { tenant } => {
            let t = find_tenant(store, &tenant).await?;
            let mut table = Table::new(&["NAME", "CREATED", "UID"]);
            for ns in store.namespaces(&t.id).await? {
                table.row([ns.name.to_string(), ns.created_at.to_string(), ns.uid]);
            }
            table.print();
        }
    }
    Ok(())
}

async fn token_cmd(store: &dyn Store, cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Create {
            tenant,
            role,
            namespaces,
            expires_in,
            name,
        } => {
            let t = find_tenant(store, &tenant).await?;
            let expires_in = expires_in
                .map(|d| jiff::SignedDuration::try_from(*d).context("--expires-in is too long"))
                .transpose()?;
            let req = tollgate_app::tenancy::TokenRequest {
                role,
                namespaces,
                expires_in,
                name,
            };
            let issued = tollgate_app::tenancy::create_token(store, &t, &req, ACTOR, Timestamp::now())
                .await
                .map_err(flags(&["name", "expires_in"]))?;
            let (created, secret) = (issued.token, issued.secret);
            eprintln!(
                "created {} token {} for tenant {}{}",
                created.role,
                created.id,
                t.name,
                created
                    .expires_at
                    .map(|e| format!(", expires {e}"))
                    .unwrap_or_default()
            );
            println!("{secret}");
        }
        TokenCommand::List { tenant } => {
            let t = find_tenant(store, &tenant).await?;
            let now = Timestamp::now();
            let mut table = Table::new(&["ID", "NAME", "ROLE", "NAMESPACES", "STATUS", "EXPIRES"]);
            for tok in store.tokens(&t.id).await? {
                let scope = match &tok.scope {
                    NamespaceScope::All => "*".to_owned(),
                    NamespaceScope::Only(list) => list.iter().map(Name::as_str).collect::<Vec<_>>().join(","),
                };
                let status = if tok.revoked_at.is_some() {
                    "revoked"
                } else if tok.is_active(now) {
                    "active"
                } else {
                    "expired"
                };
                let expires = tok
                    .expires_at
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "never".into());
                table.row([
                    tok.id,
                    if tok.name.is_empty() {
                        "-".to_owned()
                    } else {
                        tok.name
                    },
                    tok.role.to_string(),
                    scope,
                    status.to_owned(),
                    expires,
                ]);
            }
            table.print();
        }
        TokenCommand::Revoke { tenant, id } => {
            let t = find_tenant(store, &tenant).await?;
            let tok = tollgate_app::tenancy::revoke_token(store, &t, &id, ACTOR, Timestamp::now()).await?;
            println!("revoked token {} of tenant {}", tok.id, t.name);
        }
    }
    Ok(())
}

async fn operator_token_cmd(store: &dyn Store, cmd: OperatorTokenCommand) -> Result<()> {
    use tollgate_app::tenancy;
    match cmd {
        OperatorTokenCommand::Create { name, role } => {
            let issued = tenancy::create_operator_token(store, &name, &role, ACTOR, Timestamp::now())
                .await
                .map_err(flags(&["role"]))?;
            eprintln!(
                "created {} token {} (send it as 'Authorization: Bearer <secret>')",
                issued.token.role, issued.token.name
            );
            println!("{}", issued.secret);
        }
        OperatorTokenCommand::List => {
            let mut table = Table::new(&["NAME", "ROLE", "STATUS", "CREATED", "CREATED BY"]);
            for t in store.operator_tokens().await? {
                table.row([
                    t.name,
                    t.role.to_string(),
                    match t.revoked_at {
                        Some(at) => format!("revoked {at}"),
                        None => "active".to_owned(),
                    },
                    t.created_at.to_string(),
                    t.created_by,
                ]);
            }
            table.print();
        }
        OperatorTokenCommand::Revoke { name } => {
            let t = tenancy::revoke_operator_token(store, &name, ACTOR, Timestamp::now()).await?;
            println!("revoked operator token {}", t.name);
        }
    }
    Ok(())
}
