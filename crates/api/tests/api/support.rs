//! The test harness: a router over a fresh database, typed request helpers.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request};
use http_body_util::BodyExt;
use jiff::Timestamp;
use serde_json::Value;
use tollgate_api::AppState;
use tollgate_api::error::check_error_body;
use tollgate_api::state::Options;
use tollgate_domain::Reason;
use tollgate_domain::access::{NamespaceScope, Role};
use tollgate_domain::catalog::Catalog;
use tollgate_domain::clock::ManualClock;
use tollgate_domain::names::Name;
use tollgate_domain::subscription::Subscription;
use tollgate_domain::tenant::Tenant;
use tollgate_domain::token;
use tollgate_payments::TestProvider;
use tollgate_store::faults::FaultPlan;
use tollgate_store::{Location, NewTenant, NewToken, Store, StoreOptions};
use tollgate_testkit::TestDatabase;
use tower::ServiceExt;

pub const START: &str = "2026-11-20T10:00:00Z";

pub struct TestApp {
    pub router: Router,
    /// The router's state (e.g. to wait for the charges a request started).
    pub state: AppState,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub provider: Arc<TestProvider>,
    _db: TestDatabase,
}

/// Makes the app's payment provider from its test provider.
type ProviderWrap = Box<dyn FnOnce(Arc<TestProvider>) -> Arc<dyn tollgate_payments::PaymentProvider>>;

/// The operator credential of every test app.
pub const OPERATOR_TOKEN: &str = "operator-secret-for-tests";

/// A response, its body parsed as JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    /// Asserts an error in the contract's format (one ErrorInfo whose reason
    /// fits the status) and returns its message.
    #[track_caller]
    pub fn error(&self, status: u16, code: u64) -> &str {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        assert_eq!(self.body["code"], code, "unexpected code; body: {}", self.body);
        if let Err(e) = check_error_body(self.status, &self.body) {
            panic!("{e}");
        }
        self.body["message"].as_str().expect("message is a string")
    }

    /// Asserts that this is an error with `reason` (`error` checks the rest).
    #[track_caller]
    pub fn reason(&self, reason: &str) -> &Self {
        assert!(Reason::parse(reason).is_some(), "{reason} is not a reason");
        assert_eq!(
            self.body["details"][0]["reason"], reason,
            "unexpected reason; status {}, body: {}",
            self.status, self.body
        );
        self
    }

    /// One fact of an error's metadata.
    #[track_caller]
    pub fn metadata(&self, key: &str) -> &str {
        self.body["details"][0]["metadata"][key]
            .as_str()
            .unwrap_or_else(|| panic!("no metadata {key:?}: {}", self.body))
    }

    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "expected 200; body: {}", self.body);
        &self.body
    }
}

pub fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp literal")
}

impl TestApp {
    pub async fn new(db: TestDatabase) -> Self {
        Self::with_routes(db, |r| r).await
    }

    /// The app over a store whose writer meets the faults the returned plan arms.
    pub async fn with_faults(db: TestDatabase) -> (Self, Arc<FaultPlan>) {
        let plan = Arc::new(FaultPlan::default());
        let options = StoreOptions {
            faults: Some(plan.clone()),
            ..StoreOptions::default()
        };
        (
            Self::build(db, |r| r, options, Some(OPERATOR_TOKEN), None).await,
            plan,
        )
    }

    /// The app charging through `provider`, made from the app's test
    /// provider (`TestApp::provider`, e.g. to hold a charge up).
    pub async fn with_provider(
        db: TestDatabase,
        provider: impl FnOnce(Arc<TestProvider>) -> Arc<dyn tollgate_payments::PaymentProvider> + 'static,
    ) -> Self {
        Self::build(
            db,
            |r| r,
            StoreOptions::default(),
            Some(OPERATOR_TOKEN),
            Some(Box::new(provider)),
        )
        .await
    }

    /// The app of a server started without TOLLGATE_OPERATOR_TOKEN.
    pub async fn without_operator_credential(db: TestDatabase) -> Self {
        Self::build(db, |r| r, StoreOptions::default(), None, None).await
    }

    /// Builds the app with extra routes added before the middleware.
    pub async fn with_routes(
        db: TestDatabase,
        extra: impl FnOnce(Router<AppState>) -> Router<AppState>,
    ) -> Self {
        Self::build(db, extra, StoreOptions::default(), Some(OPERATOR_TOKEN), None).await
    }

    async fn build(
        db: TestDatabase,
        extra: impl FnOnce(Router<AppState>) -> Router<AppState>,
        store_options: StoreOptions,
        operator_token: Option<&str>,
        wrap: Option<ProviderWrap>,
    ) -> Self {
        let location = match (db.sqlite_dir(), db.postgres_url()) {
            (Some(dir), _) => Location::SqliteDir(dir.to_path_buf()),
            (None, Some(url)) => Location::Postgres(url.to_owned()),
            (None, None) => unreachable!(),
        };
        let store = tollgate_store::open_with(&location, store_options)
            .await
            .expect("open store");
        let clock = Arc::new(ManualClock::new(ts(START)));
        let provider = Arc::new(TestProvider::default());
        let providers = match wrap {
            Some(wrap) => tollgate_payments::Providers::new(wrap(provider.clone())),
            None => tollgate_payments::Providers::new(provider.clone()),
        };
        let options = Options {
            providers: Some(providers),
            operator_token: operator_token.map(Into::into),
            // The tests' receivers listen on loopback.
            webhooks: Some(tollgate_app::webhooks::WebhookSettings {
                allow_private: true,
                ..Default::default()
            }),
            ..Options::default()
        };
        let state = AppState::with_options(store.clone(), clock.clone(), options);
        let router = tollgate_api::with_middleware(extra(tollgate_api::routes()).with_state(state.clone()));
        Self {
            router,
            state,
            store,
            clock,
            provider,
            _db: db,
        }
    }

    /// A tenant on the individual plan of the built-in catalog (version 1).
    pub async fn tenant(&self, name: &str) -> Tenant {
        self.tenant_on(name, "individual").await
    }

    pub async fn tenant_on(&self, name: &str, plan: &str) -> Tenant {
        self.tenant_on_version(name, plan, &Catalog::builtin(), 1).await
    }

    /// Publishes catalog `text` (as `file`) and creates tenant `name` on
    /// `plan` of it, at the test clock's time.
    pub async fn tenant_on_catalog(&self, name: &str, plan: &str, text: &str, file: &str) -> Tenant {
        let version = self
            .store
            .publish_catalog(text, file, "operator", self.clock_now())
            .await
            .expect("publish the catalog");
        let catalog = tollgate_domain::catalog::parse(file, text).expect("a valid catalog");
        self.tenant_on_version(name, plan, &catalog, version).await
    }

    /// A tenant on `plan` of `catalog`, published as `version`, in the
    /// catalog's first currency.
    pub async fn tenant_on_version(&self, name: &str, plan: &str, catalog: &Catalog, version: i64) -> Tenant {
        self.tenant_in(name, plan, catalog, version, catalog.currency_of(None))
            .await
    }

    /// A tenant on `plan` of `catalog`, published as `version`, priced and
    /// invoiced in `currency`.
    pub async fn tenant_in(
        &self,
        name: &str,
        plan: &str,
        catalog: &Catalog,
        version: i64,
        currency: &str,
    ) -> Tenant {
        let plan = catalog.plan(plan).expect("a plan of the catalog");
        let now = self.clock_now();
        self.store
            .create_tenant(&NewTenant {
                actor: "operator".into(),
                name: Name::parse("name", name).unwrap(),
                tenant_type: plan.tenant_type,
                currency: currency.to_owned(),
                subscription: Subscription::new(
                    uuid::Uuid::new_v4().to_string(),
                    tollgate_domain::ids::TenantId::new(String::new()),
                    plan,
                    version,
                    now,
                ),
                now,
                recorded_at: now,
            })
            .await
            .expect("create tenant")
    }

    pub async fn namespace(&self, tenant: &Tenant, name: &str) {
        self.store
            .create_namespace(
                &tenant.id,
                &Name::parse("name", name).unwrap(),
                "operator",
                self.clock_now(),
            )
            .await
            .expect("create namespace");
    }

    /// The test's database (for states the API cannot make).
    pub fn db(&self) -> &TestDatabase {
        &self._db
    }

    fn clock_now(&self) -> Timestamp {
        use tollgate_domain::clock::Clock;
        self.clock.now()
    }

    /// Creates a token and returns its secret.
    pub async fn token_with(
        &self,
        tenant: &Tenant,
        role: Role,
        namespaces: &[&str],
        expires_at: Option<Timestamp>,
    ) -> String {
        let secret = token::format_secret(rand_bytes());
        let scope = if namespaces.is_empty() {
            NamespaceScope::All
        } else {
            NamespaceScope::Only(namespaces.iter().map(|n| Name::parse("ns", n).unwrap()).collect())
        };
        self.store
            .create_token(&NewToken {
                actor: "operator".into(),
                tenant_id: tenant.id.clone(),
                name: format!("{role}-test"),
                role,
                scope,
                digest: token::digest(&secret),
                expires_at,
                now: self.clock_now(),
            })
            .await
            .expect("create token");
        secret
    }

    pub async fn token(&self, tenant: &Tenant, role: Role) -> String {
        self.token_with(tenant, role, &[], None).await
    }

    /// A tenant with an admin token, the common starting point.
    pub async fn admin(&self, name: &str) -> (Tenant, String) {
        let t = self.tenant(name).await;
        let tok = self.token(&t, Role::Admin).await;
        (t, tok)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: impl Into<Body>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = Request::builder().method(method.clone()).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("APIToken {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = self
            .router
            .clone()
            .oneshot(req.body(body.into()).unwrap())
            .await
            .expect("router is infallible");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("read body")
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        assert!(
            status == 200 || body.get("code").is_some(),
            "error responses must use the error format: {status} {body}"
        );
        // proto3 JSON omits unset fields; the contract types none as nullable.
        if let Some(at) = null_at(&body, String::new())
            && !bytes.is_empty()
        {
            panic!("{method} {path} answered {status} with null at {at:?}: {body}");
        }
        // Every status the suite sees an operation answer is in /openapi.json.
        if let Some((template, documented)) = documented_statuses(&method, path) {
            assert!(
                documented.contains(&status.to_string()),
                "{method} {path} answered {status}, which /openapi.json does not document for \
                 {method} {template} (it documents {documented:?}): {body}"
            );
        }
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.request(Method::GET, path, Some(token), Body::empty(), &[])
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.request(Method::POST, path, Some(token), body.to_string(), &[])
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.request(Method::PUT, path, Some(token), body.to_string(), &[])
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.request(Method::DELETE, path, Some(token), Body::empty(), &[])
            .await
    }

    /// Runs the background jobs (plan transitions) until they are idle, as
    /// the server's job loop would, at the test clock's time.
    pub async fn run_jobs(&self) -> usize {
        let ctx = tollgate_app::JobContext {
            store: self.store.clone(),
            clock: self.clock.clone(),
            providers: tollgate_payments::Providers::new(self.provider.clone()),
            worker_id: "test-worker".into(),
            catalogs: Default::default(),
            invoicing: Default::default(),
            retention: Default::default(),
            webhooks: self.state.webhooks().clone(),
        };
        tollgate_app::transitions::run_until_idle(&ctx)
            .await
            .expect("jobs run")
    }

    /// A job context at the test clock's time, with the test app's provider
    /// and the default invoicing settings (1 day grace; retries after 1, 3
    /// and 7 days), or `invoicing` when given.
    pub fn job_context(
        &self,
        worker: &str,
        invoicing: Option<tollgate_app::invoices::InvoiceSettings>,
    ) -> tollgate_app::JobContext {
        tollgate_app::JobContext {
            store: self.store.clone(),
            clock: self.clock.clone(),
            providers: tollgate_payments::Providers::new(self.provider.clone()),
            worker_id: worker.into(),
            catalogs: Default::default(),
            invoicing: invoicing.unwrap_or_default(),
            retention: Default::default(),
            webhooks: self.state.webhooks().clone(),
        }
    }

    /// Finalizes every period whose grace is over at the test clock's time
    /// (as `tollgate jobs run period-close` would); returns how many.
    pub async fn close_periods(&self) -> usize {
        let ctx = self.job_context("test-worker", None);
        let now = tollgate_domain::clock::Clock::now(self.clock.as_ref());
        tollgate_app::invoices::close_periods(&ctx, now)
            .await
            .expect("period close")
    }

    /// Charges due invoices at the test clock's time; returns the rounds run.
    pub async fn charge(&self) -> usize {
        let ctx = self.job_context("test-worker", None);
        tollgate_app::invoices::charge_until_idle(&ctx)
            .await
            .expect("charge")
    }

    /// A request with an operator credential of the caller's choice.
    pub async fn operator_as(&self, secret: &str, method: Method, path: &str, body: Option<Value>) -> Resp {
        let auth = format!("Bearer {secret}");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.request(method, path, None, body, &[("authorization", auth.as_str())])
            .await
    }

    /// A request with the operator credential.
    pub async fn operator(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let auth = format!("Bearer {OPERATOR_TOKEN}");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.request(method, path, None, body, &[("authorization", auth.as_str())])
            .await
    }

    /// The state of a plan transition through the unauthenticated endpoint.
    pub async fn transition_state(&self, id: &str) -> String {
        let resp = self
            .request(
                Method::GET,
                &format!("/no_auth/namespaces/system/billing/plan_transition?id={id}"),
                None,
                Body::empty(),
                &[],
            )
            .await;
        resp.ok()["state"].as_str().expect("state is a string").to_owned()
    }

    /// Creates a quota object in `system` and asserts success.
    pub async fn create_quota(&self, token: &str, body: Value) -> Value {
        self.post("/api/web/namespaces/system/quotas", token, body)
            .await
            .ok()
            .clone()
    }
}

/// The served OpenAPI document, parsed once.
fn openapi() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(tollgate_api::openapi::document()).expect("the document is JSON"))
}

/// The path template of the document that routes `method path` and the
/// statuses it documents; `None` for what the document does not have
/// (unknown routes, 405s, routes tests add). The router prefers the route
/// with the most literal segments; templates that differ only in their
/// parameters' names (`{namespace}`, `{metadata.namespace}`) are one route.
fn documented_statuses(method: &Method, path: &str) -> Option<(String, Vec<String>)> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    let method = method.as_str().to_ascii_lowercase();
    let mut candidates: Vec<(usize, &String, &Value)> = Vec::new();
    for (template, item) in openapi()["paths"].as_object()? {
        let parts: Vec<&str> = template.split('/').collect();
        let matches = parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(t, s)| t == s || (t.starts_with('{') && t.ends_with('}') && !s.is_empty()));
        if matches {
            let literals = parts.iter().filter(|t| !t.starts_with('{')).count();
            candidates.push((literals, template, item));
        }
    }
    let most = candidates.iter().map(|(n, _, _)| *n).max()?;
    let (_, template, op) = candidates
        .into_iter()
        .filter(|(n, _, _)| *n == most)
        .find_map(|(n, template, item)| item.get(&method).map(|op| (n, template, op)))?;
    let responses = op["responses"].as_object()?;
    Some((template.clone(), responses.keys().cloned().collect()))
}

/// The JSON pointer of the first `null` in `v`, if there is one.
fn null_at(v: &Value, at: String) -> Option<String> {
    match v {
        Value::Null => Some(at),
        Value::Object(map) => map.iter().find_map(|(k, v)| null_at(v, format!("{at}/{k}"))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| null_at(v, format!("{at}/{i}"))),
        _ => None,
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    let u1 = uuid::Uuid::new_v4();
    let u2 = uuid::Uuid::new_v4();
    b[..16].copy_from_slice(u1.as_bytes());
    b[16..].copy_from_slice(u2.as_bytes());
    b
}

/// A typical quota object body.
pub fn quota_body(name: &str, vhosts: i64) -> Value {
    serde_json::json!({
        "metadata": {
            "name": name,
            "namespace": "system",
            "labels": {"env": "prod", "team": "web"},
            "annotations": {"owner": "ops"},
            "description": "production limits"
        },
        "spec": {
            "object_limits": {"virtual_host": {"maximum": vhosts}},
            "resource_limits": {"vcpu": {"maximum": 2.5}},
            "api_limits": {"ves.io.schema.quota.API.Get": {"rate": 50, "burst": 100, "unit": "SECOND"}}
        }
    })
}

/// Redacts the values that differ between runs.
#[macro_export]
macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({ snapshot_path => "snapshots", prepend_module_to_snapshot => false }, {
            insta::assert_json_snapshot!($name, $value, {
                ".**.uid" => "[uid]",
                ".**.creator_id" => "[token-id]",
            });
        })
    };
}
