//! `tollgate bench ingest`: usage ingestion throughput, side by side with the
//! raw insert rate of the same database in the same run, then the latency of
//! usage_details and current_usage over a month of those events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use jiff::{SignedDuration, Timestamp};
use sqlx::{Connection, QueryBuilder};
use tollgate_store::Location;

use crate::bench::{Harness, Latency, connect, send, stop_server};

/// Options of `tollgate bench ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Events to ingest, spread evenly over 27 days (ending an hour ago) in time order
    /// (default: 10 million for `bench ingest`, 200,000 per mode for
    /// `bench durability`).
    #[arg(long)]
    pub events: Option<usize>,
    /// Concurrent connections posting batches.
    #[arg(long, default_value_t = 4)]
    pub ingest_connections: usize,
    /// Distinct objects the events are about (each reports 4 meters).
    #[arg(long, default_value_t = 20)]
    pub objects: usize,
    /// Rows inserted to measure the database's raw insert rate.
    #[arg(long, default_value_t = 500_000)]
    pub raw_rows: usize,
    /// Times each report and console page is requested (p99 is the
    /// nearest-rank percentile of these).
    #[arg(long, default_value_t = 50)]
    pub queries: usize,
    /// Also ingest the same events for a second tenant with this many usage
    /// alerts (never reached), and report its rate beside the first's: what
    /// evaluating alerts as usage arrives costs ingestion.
    #[arg(long, default_value_t = 0)]
    pub alerts: usize,
    /// Also ingest the same events carrying properties (a `user_id` of
    /// this many distinct values, and a `region`) twice: for a tenant whose
    /// meters ignore them, then for one on a catalog version where
    /// `lb_requests` (a quarter of the events) is a unique count of
    /// `user_id`; report both rates beside the first: what storing
    /// properties, and counting distinct values, cost ingestion.
    #[arg(long, default_value_t = 0)]
    pub properties: usize,
}

/// Events per request and per raw transaction, as the issue fixes it.
pub(crate) const BATCH: usize = 1000;
/// Rows per INSERT statement (both engines' parameter limits allow it).
const ROWS_PER_STATEMENT: usize = 500;
pub(crate) const METERS: [(&str, i64); 4] = [
    ("lb_requests", 1_000),
    ("lb_data_transfer", 250_000),
    ("waap_requests", 10),
    ("site_vcpus", 8),
];
/// The days the events span: fewer than the shortest month, so that one
/// monthly billing period holds them all.
pub(crate) const DAYS: i64 = 27;

/// Event `i` of `n`, spread over [start, start + DAYS days), with properties
/// (`users` distinct `user_id`s) unless `users` is 0.
fn event(i: usize, n: usize, start: Timestamp, objects: usize, users: usize) -> serde_json::Value {
    // In 128 bits, so that no --events makes it overflow; i < n keeps the
    // offset below the span.
    let span = SignedDuration::from_hours(24 * DAYS).as_micros();
    let offset = i64::try_from(span * i as i128 / n.max(1) as i128).unwrap_or(0);
    let at = start + SignedDuration::from_micros(offset);
    let (metric, scale) = METERS[i % METERS.len()];
    let mut e = serde_json::json!({
        "id": format!("e{i}"),
        "metric_label": metric,
        "object_name": format!("obj-{}", (i / METERS.len()) % objects),
        "quantity": (i as i64 % 7 + 1) * scale,
        "timestamp": at.to_string(),
    });
    if users > 0 {
        e["properties"] = serde_json::json!({"user_id": format!("u{}", (i * 7919) % users), "region": "eu"});
    }
    e
}

/// Creates tenant `name` (on the latest catalog version) since `start`, and
/// its platform token.
async fn other_tenant(h: &Harness, name: &str, start: Timestamp) -> Result<Arc<str>> {
    h.cli(
        &[
            "tenant",
            "create",
            name,
            "--plan",
            "individual",
            "--since",
            &start.to_string(),
        ],
        "tenant create",
    )
    .await?;
    let secret = h
        .cli(
            &["token", "create", "--tenant", name, "--role", "platform"],
            "token create",
        )
        .await?;
    Ok(format!("APIToken {}", secret.trim()).into())
}

/// Publishes the built-in catalog as format 2 with `lb_requests` a unique
/// count of `user_id`.
async fn publish_unique_catalog(h: &Harness) -> Result<()> {
    let text = tollgate_domain::catalog::BUILTIN_TOML;
    let sum = "metric_label = \"lb_requests\"";
    let at = text
        .find(sum)
        .context("the built-in catalog has no lb_requests meter")?;
    let aggregation = text[at..]
        .find("aggregation = \"sum\"")
        .map(|i| at + i)
        .context("lb_requests has no aggregation")?;
    let mut unique = text.to_owned();
    unique.replace_range(
        aggregation..aggregation + "aggregation = \"sum\"".len(),
        "aggregation = \"unique_count\"\nproperty = \"user_id\"",
    );
    let unique = unique.replacen("format = 1", "format = 2", 1);
    let file = std::env::temp_dir().join(format!("tollgate-bench-unique-{}.toml", std::process::id()));
    std::fs::write(&file, unique).context("cannot write the bench catalog")?;
    let published = h
        .cli(
            &["catalog", "publish", &file.display().to_string()],
            "catalog publish",
        )
        .await;
    let _ = std::fs::remove_file(&file);
    published.map(|_| ())
}

/// What the ingest suite measured, for the goals table.
pub(crate) struct IngestFigures {
    pub events: usize,
    pub raw_rate: f64,
    pub ingest_rate: f64,
    pub details: Latency,
    pub current: Latency,
    /// Every console page's latency, by name.
    pub pages: Vec<(String, Latency)>,
    pub rss_peak: Option<u64>,
    /// Started again on the database the events are in.
    pub restart_ready_ms: f64,
    pub restart_rss_idle: Option<u64>,
}

pub async fn run(h: &Harness, args: &IngestArgs) -> Result<IngestFigures> {
    let events = args.events.unwrap_or(10_000_000);
    if events == 0 || args.ingest_connections == 0 || args.objects == 0 || args.queries == 0 {
        bail!("--events, --ingest-connections, --objects and --queries must be more than zero");
    }
    let now = Timestamp::now();
    // The tenant starts with the events, which end an hour ago: its current
    // (monthly, so at least 28-day) period holds every one of them.
    let start = now - SignedDuration::from_hours(24 * DAYS + 1);
    h.cli(
        &[
            "tenant",
            "create",
            &h.tenant,
            "--plan",
            "individual",
            "--since",
            &start.to_string(),
        ],
        "tenant create",
    )
    .await?;
    let platform = h.token("platform").await?;
    let admin = h.token("admin").await?;
    let alerted = format!("{}-alerts", h.tenant);
    let alerted_tokens = if args.alerts > 0 {
        h.cli(
            &[
                "tenant",
                "create",
                &alerted,
                "--plan",
                "individual",
                "--since",
                &start.to_string(),
            ],
            "tenant create",
        )
        .await?;
        let token = |role: &'static str| {
            let alerted = alerted.clone();
            async move {
                let secret = h
                    .cli(
                        &["token", "create", "--tenant", &alerted, "--role", role],
                        "token create",
                    )
                    .await?;
                Ok::<Arc<str>, anyhow::Error>(format!("APIToken {}", secret.trim()).into())
            }
        };
        Some((token("platform").await?, token("admin").await?))
    } else {
        None
    };

    // The raw rate first, while nothing else writes.
    let raw_rows = args.raw_rows.min(events).max(BATCH);
    let raw_rate = raw_insert_rate(&h.location, raw_rows).await?;

    let (with_properties, unique) = if args.properties > 0 {
        let props = other_tenant(h, &format!("{}-props", h.tenant), start).await?;
        publish_unique_catalog(h).await?;
        let unique = other_tenant(h, &format!("{}-unique", h.tenant), start).await?;
        (Some(props), Some(unique))
    } else {
        (None, None)
    };

    let operator = h
        .cli(
            &[
                "operator-token",
                "create",
                &format!("{}-ops", h.tenant),
                "--role",
                "operator-read",
            ],
            "operator-token create",
        )
        .await?;
    let operator = operator.trim().to_owned();

    let (mut server, addr) = h.serve().await?;
    let measured = async {
        let ingest_rate = ingest(addr, &platform, events, args, start, 0).await?;
        let mut property_rates = Vec::new();
        if let (Some(props), Some(unique)) = (&with_properties, &unique) {
            property_rates.push(ingest(addr, props, events, args, start, args.properties).await?);
            property_rates.push(ingest(addr, unique, events, args, start, args.properties).await?);
        }
        let alerted_rate = match &alerted_tokens {
            Some((platform, admin)) => {
                create_alerts(addr, admin, args.alerts).await?;
                Some(ingest(addr, platform, events, args, start, 0).await?)
            }
            None => None,
        };
        let range = serde_json::json!({"from": start.to_string(), "to": now.to_string()});
        let details = latencies(
            addr,
            &admin,
            "/api/web/namespaces/system/usage_details",
            &range,
            args.queries,
        )
        .await?;
        let current = latencies(
            addr,
            &admin,
            "/api/web/namespaces/system/current_usage",
            &range,
            args.queries,
        )
        .await?;
        let pages = console_latencies(addr, h, &admin, &operator, start, now, args.queries).await?;
        Ok::<_, anyhow::Error>((ingest_rate, alerted_rate, property_rates, details, current, pages))
    }
    .await;
    let peak = server.id().and_then(|p| crate::bench::proc_kib(p, "VmHWM"));
    let stopped = stop_server(&mut server).await;
    let (ingest_rate, alerted_rate, property_rates, details, current, pages) = measured?;
    stopped?;
    // Started again on the database the events are now in.
    let (mut again, _, startup) = h.serve_ready().await?;
    let idle = again.id().and_then(|p| crate::bench::proc_kib(p, "VmRSS"));
    stop_server(&mut again).await?;

    println!(
        "tollgate bench ingest: {}, {} events over {DAYS} days ({} objects x {} meters), batches of {BATCH} over {} connections",
        h.backend(),
        events,
        args.objects,
        METERS.len(),
        args.ingest_connections
    );
    println!("{:<48}{:>14}{:>10}", "", "per second", "ratio");
    println!(
        "{:<48}{:>14.0}{:>10.3}",
        format!("raw INSERT, same database and rows ({raw_rows})"),
        raw_rate,
        1.0
    );
    println!(
        "{:<48}{:>14.0}{:>10.3}",
        "POST usage/events (exactly-once + rollups)",
        ingest_rate,
        ingest_rate / raw_rate
    );
    if let Some(rate) = alerted_rate {
        println!(
            "{:<48}{:>14.0}{:>10.3}",
            format!("same, tenant with {} usage alerts", args.alerts),
            rate,
            rate / raw_rate
        );
        println!("{:<48}{:>24.3}", "  alerts / no alerts", rate / ingest_rate);
    }
    if let [props, unique] = property_rates[..] {
        let users = args.properties;
        for (name, rate) in [
            (format!("same, with properties ({users} user ids)"), props),
            ("same, lb_requests a unique count of user_id".to_owned(), unique),
        ] {
            println!("{name:<48}{rate:>14.0}{:>10.3}", rate / raw_rate);
            println!("{:<48}{:>24.3}", "  / without properties", rate / ingest_rate);
        }
    }
    println!("reports over the period's events, {} times each:", args.queries);
    for (name, l) in [("usage_details", details), ("current_usage", current)] {
        println!("  {name:<46}  {l}");
    }
    println!(
        "console pages (GET, signed in; the tenant's above, the operator's), {} times each:",
        args.queries
    );
    for (name, l) in &pages {
        println!("  {name:<46}  {l}");
    }
    println!(
        "server: RSS peak while ingesting and answering {}; started again on this database: \
         start to ready (/readyz answers 200) {:.0} ms, RSS idle {}",
        crate::bench::mib(peak),
        crate::bench::ms(startup),
        crate::bench::mib(idle)
    );
    println!("note: client, server and database share this machine's cores; compare the ratios.");
    Ok(IngestFigures {
        events,
        raw_rate,
        ingest_rate,
        details,
        current,
        pages,
        rss_peak: peak,
        restart_ready_ms: crate::bench::ms(startup),
        restart_rss_idle: idle,
    })
}

/// Creates `n` usage alerts that are never reached (spend and each meter,
/// in turn), so that every batch marks them and every job-loop tick
/// evaluates them.
async fn create_alerts(addr: SocketAddr, admin: &Arc<str>, n: usize) -> Result<()> {
    let mut sender = crate::bench::connect(addr).await?;
    for i in 0..n {
        let metric = if i % (METERS.len() + 1) == 0 {
            "spend"
        } else {
            METERS[i % (METERS.len() + 1) - 1].0
        };
        let body =
            serde_json::json!({"name": format!("a{i}"), "metric": metric, "threshold": "1000000000000000"});
        let request = Request::post("/api/web/namespaces/system/alerts")
            .header("host", addr.to_string())
            .header("authorization", &**admin)
            .header("content-type", "application/json")
            .body(Full::from(Bytes::from(serde_json::to_vec(&body)?)))
            .context("cannot build the request")?;
        let (status, reply) = crate::bench::send(&mut sender, request).await?;
        if status != StatusCode::OK {
            bail!("alert {i}: {status} {}", String::from_utf8_lossy(&reply));
        }
    }
    Ok(())
}

/// Inserts `rows` rows shaped like usage events into a scratch table, in
/// transactions of 1000 rows with multi-row INSERTs, as ingestion does.
async fn raw_insert_rate(location: &Location, rows: usize) -> Result<f64> {
    const CREATE: &str = "CREATE TABLE bench_raw (tenant_id TEXT NOT NULL, event_id TEXT NOT NULL, namespace TEXT NOT NULL, \
        metric_label TEXT NOT NULL, object_name TEXT NOT NULL, deployment TEXT NOT NULL, container TEXT NOT NULL, \
        quantity TEXT NOT NULL, at BIGINT NOT NULL, received_at BIGINT NOT NULL, PRIMARY KEY (tenant_id, event_id))";
    macro_rules! measure {
        ($conn:expr, $db:ty, $begin:expr) => {{
            let conn = &mut $conn;
            sqlx::query("DROP TABLE IF EXISTS bench_raw").execute(&mut *conn).await?;
            sqlx::query(CREATE).execute(&mut *conn).await?;
            let started = Instant::now();
            for tx_start in (0..rows).step_by(BATCH) {
                let mut tx = conn.begin_with($begin).await?;
                let ids: Vec<usize> = (tx_start..(tx_start + BATCH).min(rows)).collect();
                for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                    let mut q = QueryBuilder::<$db>::new(
                        "INSERT INTO bench_raw (tenant_id, event_id, namespace, metric_label, object_name, deployment, \
                         container, quantity, at, received_at) ",
                    );
                    q.push_values(chunk, |mut b, i| {
                        b.push_bind("bench")
                            .push_bind(format!("e{i}"))
                            .push_bind("system")
                            .push_bind("lb_requests")
                            .push_bind("obj-1")
                            .push_bind("")
                            .push_bind("")
                            .push_bind("1000")
                            .push_bind(*i as i64)
                            .push_bind(0i64);
                    });
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            let elapsed = started.elapsed();
            sqlx::query("DROP TABLE bench_raw").execute(&mut *conn).await?;
            rows as f64 / elapsed.as_secs_f64()
        }};
    }
    Ok(match location {
        Location::SqliteDir(dir) => {
            // The store's own settings, so the raw rate is comparable.
            let options = tollgate_store::sqlite::connect_options(dir, tollgate_store::Synchronous::Full)?;
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .context("cannot open the database")?;
            measure!(conn, sqlx::Sqlite, "BEGIN IMMEDIATE")
        }
        Location::Postgres(url) => {
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .context("cannot connect to PostgreSQL")?;
            measure!(conn, sqlx::Postgres, "BEGIN")
        }
    })
}

/// Posts every event in batches over several connections; events per second.
pub(crate) async fn ingest(
    addr: SocketAddr,
    token: &Arc<str>,
    events: usize,
    args: &IngestArgs,
    start: Timestamp,
    users: usize,
) -> Result<f64> {
    let batches = events.div_ceil(BATCH);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.ingest_connections {
        let (next, token) = (next.clone(), token.clone());
        let (n, objects) = (events, args.objects);
        tasks.spawn(async move {
            let mut sender = connect(addr).await?;
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return Ok::<_, anyhow::Error>(());
                }
                let events: Vec<serde_json::Value> = (b * BATCH..((b + 1) * BATCH).min(n))
                    .map(|i| event(i, n, start, objects, users))
                    .collect();
                let body = serde_json::to_vec(&serde_json::json!({ "events": events }))?;
                let request = Request::post("/api/data/namespaces/system/usage/events")
                    .header("host", addr.to_string())
                    .header("authorization", &*token)
                    .header("content-type", "application/json")
                    .body(Full::from(Bytes::from(body)))
                    .context("cannot build the request")?;
                let (status, reply) = send(&mut sender, request).await?;
                let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap_or_default();
                if status != StatusCode::OK || reply["rejected"] != 0 {
                    bail!("batch {b}: {status} {reply}");
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("an ingestion task panicked")??;
    }
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

/// Latency of `queries` sequential POSTs of `body` to `path`.
async fn latencies(
    addr: SocketAddr,
    token: &Arc<str>,
    path: &str,
    body: &serde_json::Value,
    queries: usize,
) -> Result<Latency> {
    let mut sender = connect(addr).await?;
    let mut times = Vec::with_capacity(queries);
    for _ in 0..queries {
        let request = Request::post(path)
            .header("host", addr.to_string())
            .header("authorization", &**token)
            .header("content-type", "application/json")
            .body(Full::from(Bytes::from(body.to_string())))
            .context("cannot build the request")?;
        let started = Instant::now();
        let (status, reply) = send(&mut sender, request).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if status != StatusCode::OK {
            bail!("{path}: {status} {}", String::from_utf8_lossy(&reply));
        }
    }
    Ok(Latency::of(times))
}

/// Signs in to the console at `path` with `secret`; the session cookie.
async fn console_session(addr: SocketAddr, path: &str, secret: &str) -> Result<String> {
    let mut sender = connect(addr).await?;
    let form = serde_urlencoded::to_string([("token", secret)]).context("cannot encode the sign-in form")?;
    let request = Request::post(path)
        .header("host", addr.to_string())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::from(Bytes::from(form)))
        .context("cannot build the request")?;
    sender.ready().await.context("connection closed")?;
    let response = sender
        .send_request(request)
        .await
        .context("console sign-in failed")?;
    if response.status() != StatusCode::SEE_OTHER {
        bail!("console sign-in at {path}: {}", response.status());
    }
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("console sign-in set no cookie")?;
    Ok(cookie.to_owned())
}

/// Latency of every console page, each requested
/// `queries` times in a row on one connection: the tenant's (the usage page
/// over all the events by day, and the last 7 days by hour) and the
/// operator's.
async fn console_latencies(
    addr: SocketAddr,
    h: &Harness,
    admin: &Arc<str>,
    operator: &str,
    start: Timestamp,
    now: Timestamp,
    queries: usize,
) -> Result<Vec<(String, Latency)>> {
    let tenant_secret = admin.trim_start_matches("APIToken ").to_owned();
    let tenant = console_session(addr, "/console/sign-in", &tenant_secret).await?;
    let ops = console_session(addr, "/console/operator/sign-in", operator).await?;
    let range = format!("from={start}&to={now}");
    let pages: Vec<(String, &String)> = vec![
        ("/console/".to_owned(), &tenant),
        ("/console/usage".to_owned(), &tenant),
        (format!("/console/usage?{range}"), &tenant),
        (
            format!(
                "/console/usage?from={}&to={now}&step=hour",
                now - SignedDuration::from_hours(24 * 7)
            ),
            &tenant,
        ),
        (format!("/console/usage?{range}&by=object"), &tenant),
        (format!("/console/usage.csv?{range}"), &tenant),
        ("/console/quotas".to_owned(), &tenant),
        ("/console/plans".to_owned(), &tenant),
        ("/console/invoices".to_owned(), &tenant),
        ("/console/payment-methods".to_owned(), &tenant),
        ("/console/webhooks".to_owned(), &tenant),
        ("/console/alerts".to_owned(), &tenant),
        ("/console/operator/".to_owned(), &ops),
        (format!("/console/operator/tenants/{}", h.tenant), &ops),
        ("/console/operator/approvals".to_owned(), &ops),
        ("/console/operator/invoices".to_owned(), &ops),
        ("/console/operator/catalog".to_owned(), &ops),
        ("/console/operator/health".to_owned(), &ops),
    ];
    let mut sender = connect(addr).await?;
    let mut out = Vec::with_capacity(pages.len());
    for (path, cookie) in pages {
        let mut times = Vec::with_capacity(queries);
        for _ in 0..queries {
            let request = Request::get(path.as_str())
                .header("host", addr.to_string())
                .header("cookie", cookie.as_str())
                .body(Full::new(Bytes::new()))
                .context("cannot build the request")?;
            let started = Instant::now();
            let (status, reply) = send(&mut sender, request).await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            if status != StatusCode::OK {
                bail!("{path}: {status} {}", String::from_utf8_lossy(&reply));
            }
        }
        let name = path.split('?').next().unwrap_or(&path).to_owned()
            + match (
                path.contains("step=hour"),
                path.contains("by=object"),
                path.contains('?'),
            ) {
                (true, _, _) => " (7 days by hour)",
                (_, true, _) => " (all events by object)",
                (_, _, true) => " (all events)",
                _ if path == "/console/usage" => " (the current period)",
                _ => "",
            };
        out.push((name, Latency::of(times)));
    }
    Ok(out)
}
