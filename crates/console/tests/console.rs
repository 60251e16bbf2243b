//! The console without a browser, on both databases: sign-in and sessions
//! (cookie attributes, revocation, sign-out, CSRF, other origins), the
//! tenant's pages with what the API says, tenant isolation by every URL,
//! and the operator's approvals by role. The browser suite drives the same
//! pages in Chromium.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use jiff::Timestamp;
use tollgate_api::state::{AppState, Options};
use tollgate_app::tenancy::{TenantRequest, TokenRequest};
use tollgate_domain::clock::ManualClock;
use tollgate_domain::tenant::Tenant;
use tollgate_store::{Location, Store};
use tollgate_testkit::{TestDatabase, each_backend};
use tower::ServiceExt;

const OPERATOR: &str = "console-test-operator-secret";

struct Console {
    router: Router,
    state: AppState,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    _db: TestDatabase,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The session cookie this answer set.
    fn cookie(&self) -> String {
        let set = self.headers[header::SET_COOKIE].to_str().unwrap();
        set.split(';').next().unwrap().to_owned()
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

impl Console {
    async fn new(db: TestDatabase) -> Self {
        let location = match (db.sqlite_dir(), db.postgres_url()) {
            (Some(dir), _) => Location::SqliteDir(dir.to_path_buf()),
            (None, Some(url)) => Location::Postgres(url.to_owned()),
            (None, None) => unreachable!(),
        };
        let store = tollgate_store::open_with(&location, Default::default())
            .await
            .unwrap();
        let clock = Arc::new(ManualClock::new(ts("2027-01-01T00:00:00Z")));
        let options = Options {
            operator_token: Some(OPERATOR.into()),
            ..Options::default()
        };
        let state = AppState::with_options(store.clone(), clock.clone(), options);
        Self {
            router: tollgate_api::router_with(state.clone(), tollgate_console::routes(), true),
            state,
            store,
            clock,
            _db: db,
        }
    }

    async fn tenant(&self, name: &str, plan: &str) -> Tenant {
        let versions = tollgate_app::catalogs::Versions::default();
        let req = TenantRequest {
            name: name.into(),
            plan: Some(plan.into()),
            tenant_type: None,
            since: None,
            currency: None,
        };
        tollgate_app::tenancy::create_tenant(self.store.as_ref(), &versions, &req, "test", self.clock_now())
            .await
            .unwrap()
    }

    fn clock_now(&self) -> Timestamp {
        tollgate_domain::clock::Clock::now(self.clock.as_ref())
    }

    async fn token(&self, tenant: &Tenant, role: &str) -> (String, String) {
        let req = TokenRequest {
            role: role.into(),
            namespaces: Vec::new(),
            expires_in: None,
            name: format!("{role} token"),
        };
        let issued =
            tollgate_app::tenancy::create_token(self.store.as_ref(), tenant, &req, "test", self.clock_now())
                .await
                .unwrap();
        (issued.secret, issued.token.id.to_string())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        cookie: Option<&str>,
        form: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "console.test");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let body = match form {
            Some(f) => {
                req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(f.to_owned())
            }
            None => Body::empty(),
        };
        let resp = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, cookie: &str) -> Answer {
        self.send(Method::GET, path, Some(cookie), None, &[]).await
    }

    async fn post(&self, path: &str, cookie: &str, form: &str) -> Answer {
        self.send(Method::POST, path, Some(cookie), Some(form), &[]).await
    }

    /// Signs in at `path` with `secret`; the session cookie.
    async fn sign_in(&self, path: &str, secret: &str) -> String {
        let a = self
            .send(
                Method::POST,
                path,
                None,
                Some(&format!("token={}", urlencode(secret))),
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text());
        a.cookie()
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The part of a page from `start` to the end of its element's table.
fn section<'a>(page: &'a str, start: &str) -> &'a str {
    let at = page.find(start).unwrap_or_else(|| panic!("{start} in {page}"));
    let rest = &page[at..];
    &rest[..rest.find("</table>").map_or(rest.len(), |e| e + 8)]
}

/// A multipart form body with `fields` and one file; its content type.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &str)>) -> (String, String) {
    let boundary = "----tollgate-console-test";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    if let Some((filename, content)) = file {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/toml\r\n\r\n{content}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (body, format!("multipart/form-data; boundary={boundary}"))
}

/// The CSRF token in a page's forms.
fn csrf(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_tenant_signs_in_sees_its_pages_and_signs_out() {
    each_backend(|db| async move {
        let c = Console::new(db).await;
        let acme = c.tenant("acme", "individual").await;
        let (admin, _) = c.token(&acme, "admin").await;

        // Not signed in: every page sends to the sign-in page.
        for path in ["/console/", "/console/quotas", "/console/invoices"] {
            let a = c.send(Method::GET, path, None, None, &[]).await;
            assert_eq!(
                (a.status, a.location()),
                (StatusCode::SEE_OTHER, "/console/sign-in"),
                "{path}"
            );
        }
        let form = c.send(Method::GET, "/console/sign-in", None, None, &[]).await;
        assert_eq!(form.status, StatusCode::OK);
        assert!(form.text().contains("<label for=\"token\">API token</label>"));
        let csp = form.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );

        // A wrong token: refused, no cookie.
        let bad = c
            .send(Method::POST, "/console/sign-in", None, Some("token=tg_nope"), &[])
            .await;
        assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
        assert!(bad.headers.get(header::SET_COOKIE).is_none());
        // From another site: refused.
        let cross = c
            .send(
                Method::POST,
                "/console/sign-in",
                None,
                Some(&format!("token={}", urlencode(&admin))),
                &[("origin", "https://evil.example")],
            )
            .await;
        assert_eq!(cross.status, StatusCode::FORBIDDEN);

        // Signed in: an HttpOnly, SameSite=Strict cookie (Secure behind TLS).
        let a = c
            .send(
                Method::POST,
                "/console/sign-in",
                None,
                Some(&format!("token={}", urlencode(&admin))),
                &[],
            )
            .await;
        let set = a.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/console"),
            "{set}"
        );
        assert!(!set.contains("Secure"));
        let tls = c
            .send(
                Method::POST,
                "/console/sign-in",
                None,
                Some(&format!("token={}", urlencode(&admin))),
                &[("x-forwarded-proto", "https")],
            )
            .await;
        assert!(
            tls.headers[header::SET_COOKIE]
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
        let cookie = a.cookie();
        let home = c.get("/console/", &cookie).await;
        assert_eq!(home.status, StatusCode::OK, "{}", home.text());
        let text = home.text();
        for words in [
            "Individual",
            "Spend so far",
            "25.00 USD",
            "Prepaid credits",
            "Unpaid invoices",
        ] {
            assert!(text.contains(words), "{words} in {text}");
        }
        assert_eq!(home.headers[header::CACHE_CONTROL], "no-store");
        let quotas = c.get("/console/quotas", &cookie).await;
        assert!(quotas.text().contains("<meter "), "{}", quotas.text());
        let invoices = c.get("/console/invoices", &cookie).await;
        assert!(
            invoices.text().contains("inv-2027-01-0001"),
            "{}",
            invoices.text()
        );
        let one = c.get("/console/invoices/inv-2027-01-0001", &cookie).await;
        assert!(
            one.text().contains("Individual plan") && one.text().contains("25.00 USD"),
            "{}",
            one.text()
        );
        let pdf = c.get("/console/invoices/inv-2027-01-0001/pdf", &cookie).await;
        assert_eq!(pdf.status, StatusCode::OK);
        assert_eq!(pdf.headers[header::CONTENT_TYPE], "application/pdf");
        assert!(pdf.body.starts_with(b"%PDF"));
        assert_eq!(
            c.get("/console/invoices/inv-1999-01-0001", &cookie).await.status,
            StatusCode::NOT_FOUND
        );

        // Sign-out needs the session's CSRF token; then the session is dead.
        assert_eq!(
            c.post("/console/sign-out", &cookie, "csrf=wrong").await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(c.get("/console/", &cookie).await.status, StatusCode::OK);
        let out = c
            .post("/console/sign-out", &cookie, &format!("csrf={}", csrf(&text)))
            .await;
        assert_eq!(
            (out.status, out.location()),
            (StatusCode::SEE_OTHER, "/console/sign-in")
        );
        assert!(
            out.headers[header::SET_COOKIE]
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
        assert_eq!(c.get("/console/", &cookie).await.location(), "/console/sign-in");
    })
    .await;
}

#[tokio::test]
async fn a_revoked_token_or_an_expired_session_ends_the_session() {
    each_backend(|db| async move {
        let c = Console::new(db).await;
        let acme = c.tenant("acme", "individual").await;
        let (admin, id) = c.token(&acme, "admin").await;
        let cookie = c.sign_in("/console/sign-in", &admin).await;
        assert_eq!(c.get("/console/", &cookie).await.status, StatusCode::OK);
        tollgate_app::tenancy::revoke_token(c.store.as_ref(), &acme, &id, "test", c.clock_now())
            .await
            .unwrap();
        assert_eq!(c.get("/console/", &cookie).await.location(), "/console/sign-in");

        let (other, _) = c.token(&acme, "monitor").await;
        let cookie = c.sign_in("/console/sign-in", &other).await;
        assert_eq!(c.get("/console/", &cookie).await.status, StatusCode::OK);
        c.clock.set(ts("2027-01-01T08:00:01Z"));
        assert_eq!(c.get("/console/", &cookie).await.location(), "/console/sign-in");
        // The prune job forgets the two ended sessions: none is left to prune.
        c.clock.set(ts("2027-01-02T00:00:00Z"));
        tollgate_app::Job::Prune
            .run(&c.state.job_context())
            .await
            .unwrap();
        assert_eq!(
            c.store
                .prune_console_sessions(ts("2027-01-02T00:00:00Z"), 100)
                .await
                .unwrap(),
            0
        );
    })
    .await;
}

#[tokio::test]
async fn a_tenant_reaches_nothing_of_another_tenant() {
    each_backend(|db| async move {
        let c = Console::new(db).await;
        let acme = c.tenant("acme", "individual").await;
        let globex = c.tenant("globex", "team").await;
        let (acme_admin, _) = c.token(&acme, "admin").await;
        let (globex_admin, _) = c.token(&globex, "admin").await;
        let acme_cookie = c.sign_in("/console/sign-in", &acme_admin).await;
        let globex_cookie = c.sign_in("/console/sign-in", &globex_admin).await;
        // Both have an invoice of that name: each sees its own.
        let mine = c.get("/console/invoices/inv-2027-01-0001", &globex_cookie).await;
        assert!(
            mine.text().contains("Teams") && !mine.text().contains("Individual"),
            "{}",
            mine.text()
        );
        let theirs = c.get("/console/invoices/inv-2027-01-0001", &acme_cookie).await;
        assert!(!theirs.text().contains("Teams") && theirs.text().contains("Individual"));
        let home = c.get("/console/", &acme_cookie).await.text();
        assert!(!home.contains("globex"), "{home}");
        // A tenant session is no operator session, and the reverse.
        assert_eq!(
            c.get("/console/operator/", &acme_cookie).await.location(),
            "/console/operator/sign-in"
        );
        let op = c.sign_in("/console/operator/sign-in", OPERATOR).await;
        assert_eq!(c.get("/console/", &op).await.location(), "/console/sign-in");
    })
    .await;
}

#[tokio::test]
async fn the_operator_approves_with_a_click_and_a_reader_cannot() {
    each_backend(|db| async move {
        let c = Console::new(db).await;
        let globex = c.tenant("globex", "free").await;
        let (admin, _) = c.token(&globex, "admin").await;
        // A transition that waits for approval, through the API.
        let body = r#"{"namespace":"system","new_plan":"organization","payload":{"domain":"globex.com","billing_address":{"address1":"1 Main St","city":"Seattle","country":"US"}}}"#;
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/web/namespaces/system/billing/plan_transition")
            .header(header::AUTHORIZATION, format!("APIToken {admin}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let resp = c.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);

        // A reader sees it without the buttons, and is refused a decision.
        let reader = tollgate_app::tenancy::create_operator_token(c.store.as_ref(), "reader", "operator-read", "test", c.clock_now())
            .await
            .unwrap();
        let read_cookie = c.sign_in("/console/operator/sign-in", &reader.secret).await;
        let page = c.get("/console/operator/approvals", &read_cookie).await.text();
        assert!(page.contains("globex") && !page.contains(">Approve<"), "{page}");
        let waiting = c
            .store
            .transitions(&tollgate_store::TransitionFilter::default())
            .await
            .unwrap();
        let id = waiting[0].id.clone();
        let refused = c
            .post(&format!("/console/operator/approvals/{id}/approve"), &read_cookie, &format!("csrf={}", csrf(&page)))
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);

        // The admin approves; without the CSRF token, nothing happens.
        let cookie = c.sign_in("/console/operator/sign-in", OPERATOR).await;
        let page = c.get("/console/operator/approvals", &cookie).await.text();
        assert!(page.contains(">Approve<"), "{page}");
        let forged = c
            .post(&format!("/console/operator/approvals/{id}/approve"), &cookie, "csrf=forged")
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        let done = c
            .post(&format!("/console/operator/approvals/{id}/approve"), &cookie, &format!("csrf={}", csrf(&page)))
            .await;
        assert_eq!((done.status, done.location()), (StatusCode::SEE_OTHER, "/console/operator/approvals"));
        let after = c.store.transitions(&tollgate_store::TransitionFilter::default()).await.unwrap();
        assert_eq!(after[0].state, tollgate_domain::transition::TransitionState::Creating);
        assert!(c.get("/console/operator/approvals", &cookie).await.text().contains("Nothing waits"));
        // Another waiting transition is cancelled with a reason.
        let hooli = c.tenant("hooli", "free").await;
        let (hooli_admin, _) = c.token(&hooli, "admin").await;
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/web/namespaces/system/billing/plan_transition")
            .header(header::AUTHORIZATION, format!("APIToken {hooli_admin}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.replace("globex.com", "hooli.com")))
            .unwrap();
        assert_eq!(c.router.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
        let page = c.get("/console/operator/approvals", &cookie).await.text();
        assert!(page.contains("hooli") && page.contains(">Cancel<"), "{page}");
        let filter = tollgate_store::TransitionFilter {
            tenant_id: Some(hooli.id.clone()),
            state: None,
        };
        let hid = c.store.transitions(&filter).await.unwrap()[0].id.clone();
        let cancelled = c
            .post(&format!("/console/operator/approvals/{hid}/cancel"), &cookie, &format!("csrf={}&reason=asked+twice", csrf(&page)))
            .await;
        assert_eq!(cancelled.status, StatusCode::SEE_OTHER, "{}", cancelled.text());
        let t = &c.store.transitions(&filter).await.unwrap()[0];
        assert_ne!(t.state, tollgate_domain::transition::TransitionState::WaitingForApproval);
        assert_eq!(t.reason.as_deref(), Some("asked twice"));
        let tenants = c.get("/console/operator/", &cookie).await.text();
        assert!(tenants.contains("globex"), "{tenants}");
        let found = c.get("/console/operator/?q=glob", &cookie).await.text();
        assert!(found.contains("href=\"/console/operator/tenants/globex\""), "{found}");
        assert!(c.get("/console/operator/?q=zzz", &cookie).await.text().contains("No tenant matches"));
        let one = c.get("/console/operator/tenants/globex", &cookie).await.text();
        for words in ["Subscriptions", "free → organization", "plan_transition.approve", "Prepaid credits"] {
            assert!(one.contains(words), "{words} in {one}");
        }
        assert_eq!(
            c.get("/console/operator/tenants/nobody", &cookie).await.status,
            StatusCode::NOT_FOUND
        );
        // The operator creates a tenant and an API token for it (shown once),
        // which then signs in to the tenant's console.
        let token = csrf(&one);
        let made = c
            .post("/console/operator/tenants", &cookie, &format!("csrf={token}&name=initech&plan=individual&currency="))
            .await;
        assert_eq!((made.status, made.location()), (StatusCode::SEE_OTHER, "/console/operator/tenants/initech"), "{}", made.text());
        let dup = c
            .post("/console/operator/tenants", &cookie, &format!("csrf={token}&name=initech&plan=&currency="))
            .await;
        assert_eq!(dup.status, StatusCode::CONFLICT, "{}", dup.text());
        let issued = c
            .post("/console/operator/tenants/initech/tokens", &cookie, &format!("csrf={token}&role=admin&name=first"))
            .await;
        assert_eq!(issued.status, StatusCode::OK, "{}", issued.text());
        let text = issued.text();
        let at = text.find("<code>").unwrap() + 6;
        let secret = text[at..].split('<').next().unwrap().to_owned();
        let tenant_cookie = c.sign_in("/console/sign-in", &secret).await;
        assert!(c.get("/console/", &tenant_cookie).await.text().contains("initech"));
        assert!(!c.get("/console/operator/tenants/initech", &cookie).await.text().contains(&secret), "shown once");
        // A reader cannot create either.
        let page = c.get("/console/operator/", &read_cookie).await.text();
        assert!(!page.contains("Create a tenant"), "{page}");
        assert_eq!(
            c.post("/console/operator/tenants", &read_cookie, &format!("csrf={}&name=nope", csrf(&page))).await.status,
            StatusCode::FORBIDDEN
        );
        assert!(c.store.tenant_by_name("nope").await.unwrap().is_none());
        // A wrong operator token.
        let bad = c
            .send(Method::POST, "/console/operator/sign-in", None, Some("token=nope"), &[])
            .await;
        assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
async fn the_usage_page_charts_the_events_and_rates_them_as_current_usage() {
    each_backend(|db| async move {
        let c = Console::new(db).await;
        let acme = c.tenant("acme", "individual").await;
        let (admin, _) = c.token(&acme, "admin").await;
        tollgate_app::tenancy::create_namespace(c.store.as_ref(), &acme, "shop", "test", c.clock_now())
            .await
            .unwrap();
        c.clock.set(ts("2027-01-05T12:00:00Z"));
        // 3 M requests in system on Jan 2, 2 M in shop on Jan 2 and 4 M on Jan 3.
        let api = |ns: &str, events: &str| {
            Request::builder()
                .method(Method::POST)
                .uri(format!("/api/data/namespaces/{ns}/usage/events"))
                .header(header::AUTHORIZATION, format!("APIToken {admin}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(events.to_owned()))
                .unwrap()
        };
        for (ns, body) in [
            ("system", r#"{"events":[{"id":"a","metric_label":"lb_requests","object_name":"lb-1","quantity":"3000000","timestamp":"2027-01-02T10:00:00Z"}]}"#),
            ("shop", r#"{"events":[{"id":"b","metric_label":"lb_requests","object_name":"lb-2","quantity":"2000000","timestamp":"2027-01-02T11:00:00Z"},{"id":"c","metric_label":"lb_requests","object_name":"lb-2","quantity":"4000000","timestamp":"2027-01-03T09:00:00Z"}]}"#),
        ] {
            let resp = c.router.clone().oneshot(api(ns, body)).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
        }
        let resp = c
            .router
            .clone()
            .oneshot(
                Request::builder()
                    .method(Method::POST)
                    .uri("/api/web/namespaces/system/current_usage")
                    .header(header::AUTHORIZATION, format!("APIToken {admin}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from("{}"))
                    .unwrap(),
            )
            .await
            .unwrap();
        let usage: serde_json::Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        let total: i64 = usage["total_cost"].as_str().unwrap().parse().unwrap();

        let cookie = c.sign_in("/console/sign-in", &admin).await;
        let page = c.get("/console/usage?metric=lb_requests", &cookie).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let text = page.text();
        // Days, stacked by namespace: three data points, in million requests.
        assert_eq!(text.matches("<rect class=\"point\"").count(), 3, "{text}");
        for row in [
            "<td>2027-01-02T00:00:00Z</td><td>shop</td><td class=\"num\">2</td>",
            "<td>2027-01-02T00:00:00Z</td><td>system</td><td class=\"num\">3</td>",
            "<td>2027-01-03T00:00:00Z</td><td>shop</td><td class=\"num\">4</td>",
        ] {
            assert!(text.contains(row), "{row} in {text}");
        }
        assert!(
            text.contains(&format!(
                "<td class=\"num\" id=\"rated-total\"><strong>{}</strong>",
                tollgate_domain::currency::money(total, "USD")
            )),
            "{text}"
        );
        // By object, and as CSV.
        let by_object = c.get("/console/usage?metric=lb_requests&by=object", &cookie).await.text();
        assert!(by_object.contains("<td>lb-2</td>"), "{by_object}");
        let csv = c.get("/console/usage.csv?metric=lb_requests", &cookie).await;
        assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
        assert_eq!(
            csv.text(),
            "from,metric,group,quantity\n\
             2027-01-02T00:00:00Z,lb_requests,\"shop\",2\n\
             2027-01-02T00:00:00Z,lb_requests,\"system\",3\n\
             2027-01-03T00:00:00Z,lb_requests,\"shop\",4\n"
        );
        // The range form: dates (both days included) and bars by the hour.
        assert!(text.contains("<input id=\"from\" type=\"date\" name=\"from\" value=\"2027-01-01\""), "{text}");
        let hourly = c
            .get("/console/usage?metric=lb_requests&from=2027-01-02&to=2027-01-03&step=hour", &cookie)
            .await;
        assert_eq!(hourly.status, StatusCode::OK, "{}", hourly.text());
        let hourly = hourly.text();
        for row in [
            "<td>2027-01-02T10:00:00Z</td><td>system</td><td class=\"num\">3</td>",
            "<td>2027-01-02T11:00:00Z</td><td>shop</td><td class=\"num\">2</td>",
            "<td>2027-01-03T09:00:00Z</td><td>shop</td><td class=\"num\">4</td>",
        ] {
            assert!(hourly.contains(row), "{row} in {hourly}");
        }
        assert!(hourly.contains("<option value=\"hour\" selected>"), "{hourly}");
        // Days are UTC days, from the daily summaries and the edge hours of
        // a range that starts or ends inside one.
        let edges = c
            .get("/console/usage?metric=lb_requests&from=2027-01-02T11:00:00Z&to=2027-01-05T00:00:00Z&step=day", &cookie)
            .await
            .text();
        assert_eq!(edges.matches("<rect class=\"point\"").count(), 2, "{edges}");
        assert!(edges.contains("<td>2027-01-02T00:00:00Z</td><td>shop</td><td class=\"num\">2</td>"), "{edges}");
        assert!(edges.contains("<td>2027-01-03T00:00:00Z</td><td>shop</td><td class=\"num\">4</td>"), "{edges}");
        // Hours over more than 7 days, or another step: refused, clearly.
        let long = c.get("/console/usage?from=2027-01-01&to=2027-01-20&step=hour", &cookie).await;
        assert_eq!(long.status, StatusCode::BAD_REQUEST);
        assert!(long.text().contains("at most 7 days"), "{}", long.text());
        assert_eq!(c.get("/console/usage?step=week", &cookie).await.status, StatusCode::BAD_REQUEST);
        // Bad input: a clear error, nothing else.
        let bad = c.get("/console/usage?metric=nope", &cookie).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.text().contains("no meter"), "{}", bad.text());
        assert_eq!(c.get("/console/usage?from=yesterday", &cookie).await.status, StatusCode::BAD_REQUEST);
    })
    .await;
}

#[tokio::test]
async fn payment_methods_are_added_and_made_primary_with_the_apis_rules() {
    each_backend(|db| async move {
        let c = Console::new(db).await;
        let acme = c.tenant("acme", "individual").await;
        let (admin, _) = c.token(&acme, "admin").await;
        let (monitor, _) = c.token(&acme, "monitor").await;
        let cookie = c.sign_in("/console/sign-in", &admin).await;
        let page = c.get("/console/payment-methods", &cookie).await.text();
        assert!(
            page.contains("No payment method yet") && page.contains("Add a payment method"),
            "{page}"
        );
        let token = csrf(&page);
        let add =
            |tok: &str| format!("csrf={token}&token={tok}&address1=1+Main+St&city=Paris&country=fr&role=");
        // A token the provider refuses: its message, nothing stored.
        let bad = c.post("/console/payment-methods", &cookie, &add("nope")).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
        assert!(bad.text().contains("token"), "{}", bad.text());
        assert!(c.store.payment_methods(&acme.id).await.unwrap().is_empty());
        // Without the CSRF token: refused.
        let forged = c
            .post(
                "/console/payment-methods",
                &cookie,
                "token=tok-visa-4242&address1=x&city=y&country=FR",
            )
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        for tok in ["tok-visa-4242", "tok-mc-5555"] {
            let a = c.post("/console/payment-methods", &cookie, &add(tok)).await;
            assert_eq!(
                (a.status, a.location()),
                (StatusCode::SEE_OTHER, "/console/payment-methods"),
                "{}",
                a.text()
            );
        }
        let methods = c.store.payment_methods(&acme.id).await.unwrap();
        let visa = methods.iter().find(|m| m.display.ends_with("4242")).unwrap();
        let mc = methods.iter().find(|m| m.display.ends_with("5555")).unwrap();
        assert_eq!((visa.role.as_str(), mc.role.as_str()), ("PRIMARY", "NORMAL"));
        assert_eq!(visa.contact.country, "FR");
        // The second becomes primary; the first is then a normal method.
        let (first, second) = (visa.name.clone(), mc.name.clone());
        let done = c
            .post(
                &format!("/console/payment-methods/{second}/primary"),
                &cookie,
                &format!("csrf={token}"),
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
        let roles: Vec<(String, &str)> = c
            .store
            .payment_methods(&acme.id)
            .await
            .unwrap()
            .iter()
            .map(|m| (m.name.clone(), m.role.as_str()))
            .collect();
        assert!(roles.contains(&(second.clone(), "PRIMARY")), "{roles:?}");
        // The only method of a tenant on a paid plan cannot go: the API's rule and message.
        c.post(
            &format!("/console/payment-methods/{first}/delete"),
            &cookie,
            &format!("csrf={token}"),
        )
        .await;
        let last = c
            .post(
                &format!("/console/payment-methods/{second}/delete"),
                &cookie,
                &format!("csrf={token}"),
            )
            .await;
        assert_eq!(last.status, StatusCode::CONFLICT, "{}", last.text());
        assert_eq!(c.store.payment_methods(&acme.id).await.unwrap().len(), 1);

        // A monitor sees the list without any control and is refused a change.
        let mcookie = c.sign_in("/console/sign-in", &monitor).await;
        let page = c.get("/console/payment-methods", &mcookie).await.text();
        assert!(
            page.contains("ending")
                && !page.contains("Add a payment method")
                && !page.contains("Make primary"),
            "{page}"
        );
        let refused = c
            .post(
                &format!("/console/payment-methods/{second}/delete"),
                &mcookie,
                &format!("csrf={}", csrf(&page)),
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(c.store.payment_methods(&acme.id).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn plans_are_shown_in_the_browsers_language_and_changed_with_the_apis_rules() {
    each_backend(|db| async move {
        let c = Console::new(db).await;
        let acme = c.tenant("acme", "free").await;
        let (admin, _) = c.token(&acme, "admin").await;
        let (monitor, _) = c.token(&acme, "monitor").await;
        let cookie = c.sign_in("/console/sign-in", &admin).await;
        let de = c
            .send(Method::GET, "/console/plans", Some(&cookie), None, &[("accept-language", "de-DE,de;q=0.9")])
            .await
            .text();
        assert!(de.contains("Einzelperson") && de.contains("Organisation"), "{de}");
        let page = c.get("/console/plans", &cookie).await.text();
        assert!(page.contains("Individual") && page.contains("Your plan"), "{page}");
        let token = csrf(&page);
        // The organization plan needs a domain and a billing address: one 400 naming them.
        let missing = c
            .post("/console/plans/transition", &cookie, &format!("csrf={token}&plan=organization"))
            .await;
        assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.text());
        assert!(missing.text().contains("domain"), "{}", missing.text());
        assert!(c.store.transitions(&Default::default()).await.unwrap().is_empty());
        let asked = c
            .post(
                "/console/plans/transition",
                &cookie,
                &format!("csrf={token}&plan=organization&domain=acme.com&address1=1+Main+St&city=Seattle&country=us"),
            )
            .await;
        assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.text());
        let after = c.get("/console/plans", &cookie).await.text();
        assert!(after.contains("STATE_WAITING_FOR_APPROVAL"), "{after}");
        // One open transition at a time, as the API says.
        let again = c
            .post(
                "/console/plans/transition",
                &cookie,
                &format!("csrf={token}&plan=organization&domain=acme.com&address1=1+Main+St&city=Seattle&country=us"),
            )
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());

        // Add-ons of the free plan: subscribe, then unsubscribe.
        let sub = c
            .post(
                "/console/addons/f5xc_synthetic_monitoring_standard/subscribe",
                &cookie,
                &format!("csrf={token}"),
            )
            .await;
        assert_eq!(sub.status, StatusCode::SEE_OTHER, "{}", sub.text());
        assert_eq!(c.store.addons(&acme.id).await.unwrap(), ["f5xc_synthetic_monitoring_standard"]);
        assert!(c.get("/console/plans", &cookie).await.text().contains("<td class=\"status\">subscribed</td>"));
        // One the plan does not allow: the API's refusal.
        let not_allowed = c
            .post("/console/addons/f5xc_waap_advanced/subscribe", &cookie, &format!("csrf={token}"))
            .await;
        assert_eq!(not_allowed.status, StatusCode::FORBIDDEN, "{}", not_allowed.text());
        c.post(
            "/console/addons/f5xc_synthetic_monitoring_standard/unsubscribe",
            &cookie,
            &format!("csrf={token}"),
        )
        .await;
        assert!(c.store.addons(&acme.id).await.unwrap().is_empty());

        // A monitor: the plans, no form, and a change refused.
        let mcookie = c.sign_in("/console/sign-in", &monitor).await;
        let mpage = c.get("/console/plans", &mcookie).await.text();
        assert!(!mpage.contains("Switch to") && !mpage.contains("<main><h1>Plans and add-ons</h1><form"), "{mpage}");
        let refused = c
            .post(
                "/console/plans/transition",
                &mcookie,
                &format!("csrf={}&plan=individual&payment_token=tok-visa-4242", csrf(&mpage)),
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(c.store.transitions(&Default::default()).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn the_operator_refunds_part_of_an_invoice_and_cancels_another() {
    each_backend(|db| async move {
        let c = Console::new(db).await;
        let acme = c.tenant("acme", "individual").await;
        let globex = c.tenant("globex", "individual").await;
        let (admin, _) = c.token(&acme, "admin").await;
        // acme pays by card; globex has none, so its invoice stays unpaid.
        let cookie = c.sign_in("/console/sign-in", &admin).await;
        let token = csrf(&c.get("/console/payment-methods", &cookie).await.text());
        c.post(
            "/console/payment-methods",
            &cookie,
            &format!("csrf={token}&token=tok-visa-4242&address1=1+Main+St&city=Paris&country=FR&role="),
        )
        .await;
        c.clock.set(ts("2027-02-03T00:00:00Z"));
        let ctx = c.state.job_context();
        tollgate_app::invoices::close_periods(&ctx, c.clock_now())
            .await
            .unwrap();
        tollgate_app::invoices::charge_until_idle(&ctx).await.unwrap();
        let name = tollgate_domain::ids::InvoiceName::new("inv-2027-01-0001");
        assert_eq!(
            c.store
                .invoice(&acme.id, &name)
                .await
                .unwrap()
                .unwrap()
                .invoice
                .status,
            tollgate_domain::invoice::InvoiceStatus::Paid
        );

        let op = c.sign_in("/console/operator/sign-in", OPERATOR).await;
        let page = c.get("/console/operator/invoices", &op).await.text();
        assert!(
            page.contains("acme") && page.contains("globex") && page.contains(">Refund<"),
            "{page}"
        );
        let token = csrf(&page);
        let paid = c.get("/console/operator/invoices?status=PAID", &op).await.text();
        assert!(
            paid.contains("acme") && !paid.contains("<td>globex</td>"),
            "{paid}"
        );
        assert_eq!(
            c.get("/console/operator/invoices?status=LOST", &op).await.status,
            StatusCode::BAD_REQUEST
        );
        // Part of acme's 25.00, then more than remains (refused), then a reason missing.
        let refund = "/console/operator/invoices/acme/inv-2027-01-0001/refund";
        let part = c
            .post(refund, &op, &format!("csrf={token}&amount=10.00&reason=goodwill"))
            .await;
        assert_eq!(part.status, StatusCode::SEE_OTHER, "{}", part.text());
        let notes = c.store.credit_notes(&acme.id).await.unwrap();
        assert_eq!(
            (notes.len(), notes[0].amount_cents, notes[0].reason.as_str()),
            (1, 1000, "goodwill")
        );
        let too_much = c
            .post(refund, &op, &format!("csrf={token}&amount=20.00&reason=again"))
            .await;
        assert_eq!(too_much.status, StatusCode::CONFLICT, "{}", too_much.text());
        assert!(too_much.text().contains("15.00 USD left"), "{}", too_much.text());
        assert_eq!(
            c.post(refund, &op, &format!("csrf={token}&amount=1.00&reason="))
                .await
                .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(c.store.credit_notes(&acme.id).await.unwrap().len(), 1);
        // acme sees the credit note on its invoice and downloads it; globex cannot.
        let cookie = c.sign_in("/console/sign-in", &admin).await;
        let inv = c.get("/console/invoices/inv-2027-01-0001", &cookie).await.text();
        let cn = notes[0].credit_note.clone();
        assert!(inv.contains(&cn) && inv.contains("goodwill"), "{inv}");
        let pdf = c.get(&format!("/console/credit-notes/{cn}/pdf"), &cookie).await;
        assert_eq!(pdf.headers[header::CONTENT_TYPE], "application/pdf");
        assert!(pdf.body.starts_with(b"%PDF"));
        let (globex_admin, _) = c.token(&globex, "admin").await;
        let gcookie = c.sign_in("/console/sign-in", &globex_admin).await;
        assert_eq!(
            c.get(&format!("/console/credit-notes/{cn}/pdf"), &gcookie)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        // globex's unpaid invoice is cancelled.
        let cancel = c
            .post(
                "/console/operator/invoices/globex/inv-2027-01-0001/cancel",
                &op,
                &format!("csrf={token}"),
            )
            .await;
        assert_eq!(cancel.status, StatusCode::SEE_OTHER, "{}", cancel.text());
        assert_eq!(
            c.store
                .invoice(&globex.id, &name)
                .await
                .unwrap()
                .unwrap()
                .invoice
                .status,
            tollgate_domain::invoice::InvoiceStatus::Cancelled
        );
        // A reader sees the list without actions and is refused one.
        let reader = tollgate_app::tenancy::create_operator_token(
            c.store.as_ref(),
            "reader",
            "operator-read",
            "test",
            c.clock_now(),
        )
        .await
        .unwrap();
        let rcookie = c.sign_in("/console/operator/sign-in", &reader.secret).await;
        let rpage = c.get("/console/operator/invoices", &rcookie).await.text();
        assert!(!rpage.contains(">Refund<"), "{rpage}");
        let refused = c
            .post(
                refund,
                &rcookie,
                &format!("csrf={}&amount=1.00&reason=x", csrf(&rpage)),
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(c.store.credit_notes(&acme.id).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn the_health_page_shows_the_jobs_lag_as_the_metrics_do() {
    each_backend(|db| async move {
        let c = Console::new(db).await;
        c.tenant("acme", "individual").await;
        let op = c.sign_in("/console/operator/sign-in", OPERATOR).await;
        let page = c.get("/console/operator/health", &op).await.text();
        assert!(page.contains("<div class=\"big\">ready</div>"), "{page}");
        assert!(page.contains("<div class=\"card\" id=\"period-lag\"><h2>Oldest period due for closing</h2><div class=\"big\">0 s</div>"), "{page}");
        // Once the job knows the tenant's next close (February 1st, due a
        // grace of 1 day later), a close not run by the 3rd at noon is a
        // day and a half late.
        c.clock.set(ts("2027-01-15T00:00:00Z"));
        tollgate_app::invoices::close_periods(&c.state.job_context(), c.clock_now())
            .await
            .unwrap();
        c.clock.set(ts("2027-02-03T12:00:00Z"));
        let op = c.sign_in("/console/operator/sign-in", OPERATOR).await;
        let page = c.get("/console/operator/health", &op).await.text();
        assert!(page.contains("<div class=\"big\">129600 s</div>"), "{page}");
        // Job runs are counted as /metrics counts them; failures are listed
        // (jobs and webhook attempts alike), newest first.
        tollgate_app::Job::Alerts.run(&c.state.job_context()).await.unwrap();
        tollgate_app::telemetry::record_failure(
            c.clock_now(),
            "webhook delivery to endpoint console-health-test".into(),
            "HTTP 503 (server error): down for maintenance".into(),
        );
        let page = c.get("/console/operator/health", &op).await.text();
        let jobs = section(&page, "<table id=\"jobs\">");
        assert!(jobs.contains("<td>alerts</td>"), "{jobs}");
        let failures = section(&page, "<table id=\"failures\">");
        assert!(
            failures.contains("<td>2027-02-03 12:00:00</td><td>webhook delivery to endpoint console-health-test</td><td>HTTP 503 (server error): down for maintenance</td>"),
            "{failures}"
        );
        // A tenant's session does not open it.
        let acme = c.store.tenant_by_name("acme").await.unwrap().unwrap();
        let (admin, _) = c.token(&acme, "admin").await;
        let cookie = c.sign_in("/console/sign-in", &admin).await;
        assert_eq!(c.get("/console/operator/health", &cookie).await.location(), "/console/operator/sign-in");
    })
    .await;
}

#[tokio::test]
async fn webhook_endpoints_show_their_secret_once_and_their_deliveries() {
    each_backend(|db| async move {
        let c = Console::new(db).await;
        let acme = c.tenant("acme", "individual").await;
        let (admin, _) = c.token(&acme, "admin").await;
        let (monitor, _) = c.token(&acme, "monitor").await;
        let cookie = c.sign_in("/console/sign-in", &admin).await;
        let page = c.get("/console/webhooks", &cookie).await.text();
        let token = csrf(&page);
        let bad = c
            .post("/console/webhooks", &cookie, &format!("csrf={token}&url=not+a+url&events=&description="))
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
        assert!(bad.text().contains("url"), "{}", bad.text());
        let made = c
            .post(
                "/console/webhooks",
                &cookie,
                &format!("csrf={token}&url=https%3A%2F%2Fhooks.example.com%2Ftollgate&events=invoice.paid%2C+payment_method.changed&description=ours"),
            )
            .await;
        assert_eq!(made.status, StatusCode::OK, "{}", made.text());
        let eps = c
            .store
            .webhook_endpoints(&tollgate_store::EndpointScope::Tenant(acme.id.clone()), None)
            .await
            .unwrap();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].events, ["invoice.paid", "payment_method.changed"]);
        assert!(made.text().contains(&eps[0].secret), "the secret is shown once");
        let again = c.get("/console/webhooks", &cookie).await.text();
        assert!(!again.contains(&eps[0].secret), "and only once");
        // An event for it: a payment method added, dispatched by the job.
        c.post(
            "/console/payment-methods",
            &cookie,
            &format!("csrf={token}&token=tok-visa-4242&address1=1+Main+St&city=Paris&country=FR&role="),
        )
        .await;
        tollgate_app::webhooks::dispatch(&c.state.job_context()).await.unwrap();
        let id = eps[0].id.clone();
        let deliveries = c.get(&format!("/console/webhooks?endpoint={id}"), &cookie).await.text();
        assert!(deliveries.contains("payment_method.changed") && deliveries.contains("PENDING"), "{deliveries}");
        let scope = tollgate_store::EndpointScope::Tenant(acme.id.clone());
        let first = c.store.webhook_deliveries(&scope, &id, 10).await.unwrap()[0].id.clone();
        let redo = c
            .post(&format!("/console/webhooks/{id}/deliveries/{first}/redeliver"), &cookie, &format!("csrf={token}"))
            .await;
        assert_eq!(redo.status, StatusCode::SEE_OTHER, "{}", redo.text());
        assert_eq!(c.store.webhook_deliveries(&scope, &id, 10).await.unwrap().len(), 2);
        // Rotating shows the new secret, once.
        let rotated = c.post(&format!("/console/webhooks/{id}/rotate"), &cookie, &format!("csrf={token}")).await;
        let new_secret = c.store.webhook_endpoints(&scope, None).await.unwrap()[0].secret.clone();
        assert_ne!(new_secret, eps[0].secret);
        assert!(rotated.text().contains(&new_secret));
        // A monitor sees the endpoint, no control, and is refused a change.
        let mcookie = c.sign_in("/console/sign-in", &monitor).await;
        let mpage = c.get("/console/webhooks", &mcookie).await.text();
        assert!(mpage.contains("hooks.example.com") && !mpage.contains("Add an endpoint") && !mpage.contains(">Delete<"), "{mpage}");
        let refused = c.post(&format!("/console/webhooks/{id}/delete"), &mcookie, &format!("csrf={}", csrf(&mpage))).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        // Another tenant's endpoint is not found by id.
        let globex = c.tenant("globex", "individual").await;
        let (gadmin, _) = c.token(&globex, "admin").await;
        let gcookie = c.sign_in("/console/sign-in", &gadmin).await;
        assert_eq!(c.get(&format!("/console/webhooks?endpoint={id}"), &gcookie).await.status, StatusCode::NOT_FOUND);
        let gpage = c.get("/console/webhooks", &gcookie).await.text();
        let gdel = c.post(&format!("/console/webhooks/{id}/delete"), &gcookie, &format!("csrf={}", csrf(&gpage))).await;
        assert_eq!(gdel.status, StatusCode::NOT_FOUND, "{}", gdel.text());
        // The admin deletes it.
        let del = c.post(&format!("/console/webhooks/{id}/delete"), &cookie, &format!("csrf={token}")).await;
        assert_eq!(del.status, StatusCode::SEE_OTHER);
        assert!(c.store.webhook_endpoints(&scope, None).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn alerts_are_created_listed_when_fired_and_deleted() {
    each_backend(|db| async move {
        let c = Console::new(db).await;
        let acme = c.tenant("acme", "individual").await;
        let (admin, _) = c.token(&acme, "admin").await;
        let (monitor, _) = c.token(&acme, "monitor").await;
        let cookie = c.sign_in("/console/sign-in", &admin).await;
        let token = csrf(&c.get("/console/alerts", &cookie).await.text());
        let bad = c
            .post(
                "/console/alerts",
                &cookie,
                &format!("csrf={token}&name=big&metric=nothing&threshold=5"),
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
        assert!(bad.text().contains("metric"), "{}", bad.text());
        let made = c
            .post(
                "/console/alerts",
                &cookie,
                &format!("csrf={token}&name=big&metric=spend&threshold=1000&namespace="),
            )
            .await;
        assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.text());
        let page = c.get("/console/alerts", &cookie).await.text();
        assert!(
            page.contains("<td>big</td><td>spend</td><td class=\"num\">1000 (minor units)</td><td class=\"fired\">not fired</td>"),
            "{page}"
        );
        // Usage arrives; the job evaluates: 25.00 of fee and more is past 10.00.
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/data/namespaces/system/usage/events")
            .header(header::AUTHORIZATION, format!("APIToken {admin}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                r#"{"events":[{"id":"a","metric_label":"lb_requests","object_name":"lb-1","quantity":"1000000","timestamp":"2027-01-01T00:00:00Z"}]}"#,
            ))
            .unwrap();
        assert_eq!(c.router.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
        assert_eq!(tollgate_app::alerts::evaluate(&c.state.job_context()).await.unwrap(), 1);
        let page = c.get("/console/alerts", &cookie).await.text();
        assert!(page.contains("<td class=\"fired\"><span class=\"badge OVERDUE\">fired</span>"), "{page}");
        let home = c.get("/console/", &cookie).await.text();
        assert!(home.contains("<h2>Alerts fired this period</h2><div class=\"big\">1</div>"), "{home}");
        // A monitor sees it and cannot delete it.
        let mcookie = c.sign_in("/console/sign-in", &monitor).await;
        let mpage = c.get("/console/alerts", &mcookie).await.text();
        assert!(
            mpage.contains("<td>big</td>") && !mpage.contains(">Delete<") && !mpage.contains("Add an alert"),
            "{mpage}"
        );
        assert_eq!(
            c.post(
                "/console/alerts/big/delete",
                &mcookie,
                &format!("csrf={}", csrf(&mpage))
            )
            .await
            .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(c.store.alerts(&acme.id).await.unwrap().len(), 1);
        let del = c
            .post("/console/alerts/big/delete", &cookie, &format!("csrf={token}"))
            .await;
        assert_eq!(del.status, StatusCode::SEE_OTHER);
        assert!(c.store.alerts(&acme.id).await.unwrap().is_empty());
        assert_eq!(
            c.post("/console/alerts/big/delete", &cookie, &format!("csrf={token}"))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    })
    .await;
}

impl Console {
    async fn upload(&self, cookie: &str, fields: &[(&str, &str)], file: Option<(&str, &str)>) -> Answer {
        let (body, content_type) = multipart(fields, file);
        let req = Request::builder()
            .method(Method::POST)
            .uri("/console/operator/catalog/upload")
            .header(header::HOST, "console.test")
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }
}

#[tokio::test]
async fn the_operator_compares_catalog_versions_and_validates_then_publishes_a_file() {
    each_backend(|db| async move {
        let c = Console::new(db).await;
        let op = c.sign_in("/console/operator/sign-in", OPERATOR).await;
        let page = c.get("/console/operator/catalog", &op).await;
        assert_eq!(page.status, StatusCode::OK);
        let page = page.text();
        assert!(
            page.contains("data-version=\"1\"") && page.contains(">published<"),
            "{page}"
        );
        let v1 = c.store.catalog(Some(1)).await.unwrap().unwrap();
        let shown = c.get("/console/operator/catalog/versions/1", &op).await.text();
        assert!(shown.contains("<code>individual</code>"), "{shown}");
        let source = c.get("/console/operator/catalog/versions/1/source", &op).await;
        assert_eq!(String::from_utf8(source.body).unwrap(), v1.source);
        assert_eq!(
            c.get("/console/operator/catalog/versions/9", &op).await.status,
            StatusCode::NOT_FOUND
        );

        // A file that breaks a rule is refused naming the line and field,
        // and nothing is published.
        let token = csrf(&page);
        let broken = v1
            .source
            .replacen("default_plan = \"free\"", "default_plan = \"nope\"", 1);
        assert_ne!(broken, v1.source);
        let refused = c
            .upload(
                &op,
                &[("csrf", &token), ("action", "validate")],
                Some(("broken.toml", &broken)),
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text());
        assert!(refused.text().contains("default_plan"), "{}", refused.text());
        // Validated: what it holds and what publishing it would change.
        let dearer = v1.source.clone() + "\n# dearer\n";
        let dearer = dearer.replacen("title = \"Individual\"", "title = \"Individual Plus\"", 1);
        assert!(dearer.contains("Individual Plus"));
        let valid = c
            .upload(
                &op,
                &[("csrf", &token), ("action", "validate")],
                Some(("dearer.toml", &dearer)),
            )
            .await;
        assert_eq!(valid.status, StatusCode::OK, "{}", valid.text());
        let text = valid.text();
        assert!(text.contains("dearer.toml is valid"), "{text}");
        assert!(text.contains("title: Individual → Individual Plus"), "{text}");
        assert!(text.contains("<code>+ # dearer</code>"), "{text}");
        assert_eq!(
            c.store.catalogs().await.unwrap().len(),
            1,
            "validating publishes nothing"
        );
        // Without the CSRF token, or by a reader, it is not published.
        let forged = c
            .upload(&op, &[("action", "publish")], Some(("dearer.toml", &dearer)))
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        let reader = tollgate_app::tenancy::create_operator_token(
            c.store.as_ref(),
            "reader",
            "operator-read",
            "test",
            c.clock_now(),
        )
        .await
        .unwrap();
        let read = c.sign_in("/console/operator/sign-in", &reader.secret).await;
        let read_page = c.get("/console/operator/catalog", &read).await.text();
        assert!(!read_page.contains("value=\"publish\""), "{read_page}");
        let refused = c
            .upload(
                &read,
                &[("csrf", &csrf(&read_page)), ("action", "publish")],
                Some(("dearer.toml", &dearer)),
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(c.store.catalogs().await.unwrap().len(), 1);
        // Published by the admin: version 2, audited, and comparable.
        let published = c
            .upload(
                &op,
                &[("csrf", &token), ("action", "publish")],
                Some(("dearer.toml", &dearer)),
            )
            .await;
        assert_eq!(published.status, StatusCode::SEE_OTHER, "{}", published.text());
        assert_eq!(published.location(), "/console/operator/catalog/versions/2");
        let v2 = c.store.catalog(None).await.unwrap().unwrap();
        assert_eq!(
            (v2.version, v2.source_name.as_str(), v2.published_by.as_str()),
            (2, "dearer.toml", "operator")
        );
        let diff = c
            .get("/console/operator/catalog/diff?from=1&to=2", &op)
            .await
            .text();
        assert!(diff.contains("title: Individual → Individual Plus"), "{diff}");
        assert!(diff.contains("<tr class=\"add\">"), "{diff}");
        let none = c
            .get("/console/operator/catalog/diff?from=2&to=2", &op)
            .await
            .text();
        assert!(none.contains("No difference."), "{none}");
        assert_eq!(
            c.get("/console/operator/catalog/diff?from=1&to=7", &op)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            c.get("/console/operator/catalog/diff?from=x", &op).await.status,
            StatusCode::BAD_REQUEST
        );
        // A tenant's session reaches none of it.
        let acme = c.tenant("acme", "free").await;
        let (admin, _) = c.token(&acme, "admin").await;
        let cookie = c.sign_in("/console/sign-in", &admin).await;
        for path in [
            "/console/operator/catalog",
            "/console/operator/catalog/versions/1/source",
            "/console/operator/catalog/diff?from=1&to=2",
        ] {
            assert_eq!(
                c.get(path, &cookie).await.location(),
                "/console/operator/sign-in",
                "{path}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn the_operators_lists_come_a_page_at_a_time_with_spend_and_unpaid() {
    each_backend(|db| async move {
        let c = Console::new(db).await;
        for n in 0..30 {
            c.tenant(&format!("tenant-{n:02}"), "individual").await;
        }
        let op = c.sign_in("/console/operator/sign-in", OPERATOR).await;
        let first = c.get("/console/operator/", &op).await.text();
        assert!(first.contains("30 tenants"), "{first}");
        assert_eq!(first.matches("data-tenant=").count(), 25);
        assert!(first.contains("href=\"/console/operator/?page=2\""), "{first}");
        let second = c.get("/console/operator/?page=2", &op).await.text();
        assert_eq!(second.matches("data-tenant=").count(), 5);
        assert!(
            second.contains("data-tenant=\"tenant-29\"") && !second.contains("data-tenant=\"tenant-00\"")
        );
        let found = c.get("/console/operator/?q=tenant-1", &op).await.text();
        assert_eq!(found.matches("data-tenant=").count(), 10, "{found}");
        assert!(!found.contains("page=2"));
        // Each row shows the period's spend as current_usage rates it.
        let row = &first[first.find("data-tenant=\"tenant-00\"").unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(
            row.contains("<td class=\"num spend\">") && row.contains(" USD</td>"),
            "{row}"
        );
        // Once their periods close, every tenant owes its invoice.
        c.clock.set(ts("2027-02-03T00:00:00Z"));
        tollgate_app::invoices::close_periods(&c.state.job_context(), c.clock_now())
            .await
            .unwrap();
        // (The session of a month ago has expired.)
        let op = c.sign_in("/console/operator/sign-in", OPERATOR).await;
        let first = c.get("/console/operator/", &op).await.text();
        let row = &first[first.find("data-tenant=\"tenant-00\"").unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        let t = c.store.tenant_by_name("tenant-00").await.unwrap().unwrap();
        let invoices = c.store.invoices(&t.id).await.unwrap();
        assert_eq!(invoices.len(), 1);
        let owed =
            tollgate_domain::currency::money(invoices[0].invoice.totals.total, &invoices[0].invoice.currency);
        assert!(
            row.contains(&format!("<td class=\"num unpaid\">{owed}</td>")),
            "{row}"
        );
        // Invoices across tenants, 50 a page, newest first.
        let list = c
            .get("/console/operator/invoices?status=ISSUED", &op)
            .await
            .text();
        assert_eq!(list.matches("<tr data-invoice=").count(), 30, "{list}");
        assert!(!list.contains("page=2"));
        let none = c
            .get("/console/operator/invoices?status=PAID&page=2", &op)
            .await
            .text();
        assert_eq!(none.matches("<tr data-invoice=").count(), 0);
        // Any page number answers (past the end: nothing; not a number: the first).
        for path in [
            "/console/operator/?page=18446744073709551615",
            "/console/operator/invoices?page=18446744073709551615",
            "/console/operator/?page=-3",
        ] {
            assert_eq!(c.get(path, &op).await.status, StatusCode::OK, "{path}");
        }
        let far = c
            .get("/console/operator/invoices?page=18446744073709551615", &op)
            .await
            .text();
        assert_eq!(far.matches("<tr data-invoice=").count(), 0);
    })
    .await;
}
