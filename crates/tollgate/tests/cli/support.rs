//! Running the binary: CLI commands and server processes.

use std::process::Stdio;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jiff::Timestamp;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};
use tollgate_domain::names::Name;
use tollgate_domain::object::ObjectMeta;
use tollgate_domain::quota::{QuotaObject, QuotaSpec};
use tollgate_store::{Location, Store};
use tollgate_testkit::TestDatabase;

pub const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

/// The output of a finished CLI command.
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `tollgate <storage flags> <args>` to completion. A test's fresh
/// SQLite directory is first made a database with `tollgate init`, as an
/// operator would (other commands refuse to create one; `cli::init_*` tests
/// that refusal with [`tollgate_raw`]).
pub async fn tollgate(db: &TestDatabase, args: &[&str]) -> Output {
    if let TestDatabase::Sqlite { dir } = db
        && !dir.path().join("tollgate.db").exists()
        && args.first() != Some(&"init")
    {
        expect_ok(tollgate_raw(db, &["init"]).await);
    }
    tollgate_raw(db, args).await
}

/// Runs `tollgate <storage flags> <args>` to completion, as is.
pub async fn tollgate_raw(db: &TestDatabase, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(db.cli_args())
        .args(args)
        .env_remove("TOLLGATE_DATABASE_URL")
        .env_remove("TOLLGATE_DATA_DIR")
        .output()
        .await
        .expect("run tollgate");
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a CLI command that must succeed; returns its stdout.
#[track_caller]
pub fn expect_ok(out: Output) -> String {
    assert!(
        out.ok,
        "command failed\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    out.stdout
}

/// Creates a tenant and an admin token with the CLI; returns the secret.
pub async fn tenant_with_admin(db: &TestDatabase, tenant: &str) -> String {
    expect_ok(tollgate(db, &["tenant", "create", tenant]).await);
    let secret = expect_ok(tollgate(db, &["token", "create", "--tenant", tenant, "--role", "admin"]).await);
    secret.trim().to_owned()
}

/// The test's database, opened as the binary opens it.
pub async fn open_store(db: &TestDatabase) -> Arc<dyn Store> {
    let location = match (db.sqlite_dir(), db.postgres_url()) {
        (Some(dir), _) => Location::SqliteDir(dir.to_path_buf()),
        (None, Some(url)) => Location::Postgres(url.to_owned()),
        (None, None) => unreachable!("a test database is SQLite or PostgreSQL"),
    };
    tollgate_store::open(&location).await.expect("open store")
}

/// Stores quota object `name` with `spec` in `tenant`'s system namespace
/// directly, as the API stores one (or as an earlier Tollgate could have).
pub async fn store_quota(db: &TestDatabase, tenant: &str, name: &str, spec: QuotaSpec) {
    let store = open_store(db).await;
    let tenant = store
        .tenant_by_name(tenant)
        .await
        .unwrap()
        .expect("tenant exists");
    let now = Timestamp::now();
    let object = QuotaObject {
        meta: ObjectMeta {
            namespace: Name::system(),
            name: Name::parse("n", name).unwrap(),
            uid: uuid::Uuid::new_v4().to_string(),
            labels: Default::default(),
            annotations: Default::default(),
            description: String::new(),
            disable: false,
            creator_class: "test".into(),
            creator_id: "test".into(),
            created_at: now,
            modified_at: now,
        },
        spec,
    };
    store
        .insert_quota(&tenant.id, &object, "test")
        .await
        .expect("insert quota");
}

/// A running `tollgate serve` process.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// `http://HOST:PORT/metrics` when started with `--metrics-listen`.
    pub metrics: Option<String>,
    pub stderr: Lines<BufReader<ChildStderr>>,
}

impl Server {
    pub async fn start(db: &TestDatabase) -> Self {
        Self::start_with_log(db, "info").await
    }

    /// Starts a server with the given `TOLLGATE_LOG` filter.
    pub async fn start_with_log(db: &TestDatabase, filter: &str) -> Self {
        Self::start_with(db, filter, &[]).await
    }

    /// Starts a server with the given log filter and extra `serve` flags.
    pub async fn start_with(db: &TestDatabase, filter: &str, flags: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(db.cli_args())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(flags)
            .env("TOLLGATE_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tollgate serve");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut metrics = None;
        let base = loop {
            let line = lines
                .next_line()
                .await
                .expect("read server stdout")
                .expect("server exited before listening");
            if let Some(url) = line.strip_prefix("tollgate metrics on ") {
                metrics = Some(url.trim().to_owned());
            }
            if let Some(addr) = line.strip_prefix("tollgate listening on ") {
                break addr.trim().to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let stderr = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
        Self {
            child,
            base,
            metrics,
            stderr,
        }
    }

    pub fn pid(&self) -> String {
        self.child.id().expect("server is running").to_string()
    }

    /// Sends a signal (`TERM`, `INT`) to the server.
    pub async fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid()])
            .status()
            .await
            .expect("run kill");
        assert!(status.success());
    }

    /// Reads the server's log until a line contains `needle`.
    pub async fn wait_for_log(&mut self, needle: &str) {
        while let Some(line) = self.stderr.next_line().await.expect("read server stderr") {
            if line.contains(needle) {
                return;
            }
        }
        panic!("server log ended without {needle:?}");
    }

    /// Reads the server's log until a line holds one of `needles`.
    pub async fn wait_for_log_any(&mut self, needles: &[&str]) {
        while let Some(line) = self.stderr.next_line().await.expect("read server stderr") {
            if needles.iter().any(|n| line.contains(n)) {
                return;
            }
        }
        panic!("server log ended without any of {needles:?}");
    }
}

/// A small HTTP client for the tests.
#[derive(Clone)]
pub struct Http(Client<HttpConnector, Full<Bytes>>);

impl Http {
    pub fn new() -> Self {
        Self(Client::builder(TokioExecutor::new()).build_http())
    }

    pub async fn call(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.try_call(method, url, token, body)
            .await
            .expect("send request")
    }

    /// A call with an operator credential (`Authorization: Bearer <secret>`).
    pub async fn call_operator(
        &self,
        method: &str,
        url: &str,
        secret: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.send(method, url, Some(format!("Bearer {secret}")), body)
            .await
            .expect("send request")
    }

    /// Like [`Http::call`], but a connection failure is an error, not a panic.
    pub async fn try_call(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        self.send(method, url, token.map(|t| format!("APIToken {t}")), body)
            .await
    }

    /// GETs `url` with an optional `Authorization` header; the status and
    /// the body as text (`/metrics`).
    pub async fn get_text(&self, url: &str, authorization: Option<&str>) -> (u16, String) {
        let mut req = hyper::Request::builder().method("GET").uri(url);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = self
            .0
            .request(req.body(Full::new(Bytes::new())).expect("request"))
            .await
            .expect("send request");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("read body").to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// POSTs `body` as it is, with `headers` (a webhook as its sender sends it).
    pub async fn post_raw(&self, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
        let mut req = hyper::Request::builder().method("POST").uri(url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = self
            .0
            .request(
                req.body(Full::new(Bytes::from(body.to_owned())))
                    .expect("request"),
            )
            .await
            .expect("send request");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("read body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn send(
        &self,
        method: &str,
        url: &str,
        authorization: Option<String>,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let mut req = hyper::Request::builder().method(method).uri(url);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let resp = self
            .0
            .request(req.body(Full::new(Bytes::from(body))).expect("request"))
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }
}
