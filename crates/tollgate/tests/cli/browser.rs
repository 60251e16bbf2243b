//! The web console in a real browser: headless Chromium driven through
//! ChromeDriver (Debian's `chromium` and `chromium-driver`) against a real
//! `tollgate serve` with seeded data. It signs in as a tenant admin and sees
//! its spend as `current_usage` says it, its usage chart, its quota bars and
//! its invoice (and downloads the PDF); adds payment methods and makes one
//! primary; signs out and finds the session dead; signs in as a
//! monitor and finds no change control; as another tenant, sees nothing of
//! the first and starts a plan transition; as the operator, approves it and
//! refunds part of an invoice. Any error in
//! the browser's console fails the test; every page is saved as a
//! screenshot under `target/console-screenshots/`.
//!
//! Runs when `chromedriver` is installed (`TOLLGATE_TEST_BROWSER=1`, which
//! `.ci/run` sets, makes a missing one an error); without it, says it is
//! skipped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::process::Command;
use tollgate_testkit::TestDatabase;

use crate::support::{Http, Server, expect_ok, tollgate};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Whether the browser suite runs: with ChromeDriver installed, or always
/// when `TOLLGATE_TEST_BROWSER` is set (then a missing one fails).
fn browser_available() -> bool {
    let required = std::env::var_os("TOLLGATE_TEST_BROWSER").is_some_and(|v| !v.is_empty());
    let present = std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists();
    if required {
        assert!(
            present,
            "TOLLGATE_TEST_BROWSER is set but {CHROMEDRIVER} or {CHROMIUM} is missing \
             (apt-get install chromium chromium-driver)"
        );
    } else if !present {
        eprintln!("skipped: the console's browser tests need {CHROMIUM} and {CHROMEDRIVER}");
    }
    present
}

struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let http = Http::new();
        for _ in 0..100 {
            if http
                .try_call("GET", &format!("{url}/status"), None, None)
                .await
                .is_ok()
            {
                return Self { child, url };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start");
    }

    async fn browser(&self) -> Client {
        let caps = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--lang=en-US"]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        });
        let caps = caps.as_object().unwrap().clone().into_iter().collect();
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Saves a screenshot of the page and fails on any error in the browser's
/// console since the last look.
///
/// Each page is also looked at phone-width (390 CSS pixels): it must fit
/// without scrolling sideways (wide tables scroll inside their own box), and
/// gets a second screenshot, `{name}-phone.png`.
async fn look(driver: &Driver, c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    c.set_window_size(390, 844).await.expect("a phone-width window");
    let widths = c
        .execute(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]",
            vec![],
        )
        .await
        .unwrap();
    let (scroll, client) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    assert!(
        client <= 420 && scroll <= client,
        "{name}: at phone width the page is {scroll} px wide in a {client} px window"
    );
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}-phone.png")), png).unwrap();
    c.set_window_size(1280, 900).await.unwrap();
    let session = c.session_id().await.unwrap().expect("a session id");
    let (status, logs) = Http::new()
        .post_raw(
            &format!("{}/session/{session}/se/log", driver.url),
            &[("content-type", "application/json")],
            r#"{"type":"browser"}"#,
        )
        .await;
    assert_eq!(status, 200, "{logs}");
    let severe: Vec<&Value> = logs["value"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["level"] == "SEVERE").collect())
        .unwrap_or_default();
    assert!(
        severe.is_empty(),
        "{name}: errors in the browser's console: {severe:?}"
    );
}

/// Signs in with the keyboard alone: Tab to the token field, type, Enter.
async fn sign_in_by_keyboard(c: &Client, base: &str, secret: &str) {
    const TAB: &str = "\u{E004}";
    const ENTER: &str = "\u{E007}";
    c.goto(&format!("{base}/console/sign-in")).await.unwrap();
    let mut tabs = 0;
    loop {
        let focused = c.active_element().await.unwrap();
        if focused.attr("id").await.unwrap().as_deref() == Some("token") {
            focused.send_keys(secret).await.unwrap();
            focused.send_keys(ENTER).await.unwrap();
            return;
        }
        tabs += 1;
        assert!(tabs <= 10, "the token field is not reached with Tab");
        focused.send_keys(TAB).await.unwrap();
    }
}

async fn sign_in(c: &Client, base: &str, path: &str, secret: &str) {
    c.goto(&format!("{base}{path}")).await.unwrap();
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(secret)
        .await
        .unwrap();
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Signed in once the browser has left the sign-in page.
    for _ in 0..100 {
        if !c.current_url().await.unwrap().as_str().ends_with("sign-in") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("still on the sign-in page: {}", c.source().await.unwrap());
}

/// Clicks the header's sign-out button and waits for the sign-in page.
async fn sign_out(c: &Client) {
    c.find(Locator::Css("header form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    for _ in 0..100 {
        if c.current_url().await.unwrap().as_str().ends_with("sign-in") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sign-out did not reach the sign-in page");
}

/// The text of the element `css`, once the page that has it is loaded.
async fn text(c: &Client, css: &str) -> String {
    wait_text(c, css, |_| true).await
}

/// The text of the element `css` once it satisfies `ok` (a click's page may
/// still be loading); panics after 5 s.
async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
        {
            if ok(&t) {
                return t;
            }
            last = t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{css}: never as expected, last {last:?}");
}

/// GET with the browser's session cookie; status, content type, body.
async fn fetch_with_cookie(c: &Client, url: &str) -> (u16, String, Vec<u8>) {
    let cookie = c
        .get_named_cookie("tollgate_console")
        .await
        .expect("the session cookie");
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = hyper::Request::get(url)
        .header("cookie", format!("tollgate_console={}", cookie.value()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        ctype,
        resp.into_body().collect().await.unwrap().to_bytes().to_vec(),
    )
}

#[tokio::test]
async fn the_console_works_in_chromium() {
    if !browser_available() {
        return;
    }
    let db = TestDatabase::create(&tollgate_testkit::backends()[0]).await;
    // acme: an admin and a monitor token, usage; globex: a transition waiting.
    expect_ok(tollgate(&db, &["tenant", "create", "acme", "--plan", "individual"]).await);
    let admin = expect_ok(tollgate(&db, &["token", "create", "--tenant", "acme", "--role", "admin"]).await);
    let monitor =
        expect_ok(tollgate(&db, &["token", "create", "--tenant", "acme", "--role", "monitor"]).await);
    expect_ok(tollgate(&db, &["tenant", "create", "globex"]).await);
    let globex =
        expect_ok(tollgate(&db, &["token", "create", "--tenant", "globex", "--role", "admin"]).await);
    let ops = expect_ok(
        tollgate(
            &db,
            &["operator-token", "create", "ops", "--role", "operator-admin"],
        )
        .await,
    );
    let (admin, monitor, globex, ops) = (admin.trim(), monitor.trim(), globex.trim(), ops.trim());
    let server = Server::start(&db).await;
    let base = format!("http://{}", server.base.trim_start_matches("http://"));
    let api = format!("{base}/api/web/namespaces/system");
    let http = Http::new();
    let now = jiff::Timestamp::now();
    let events: Vec<Value> = (0..3)
        .map(|i| {
            json!({"id": format!("e{i}"), "metric_label": "lb_requests", "object_name": "lb-1",
                   "quantity": "4000000", "timestamp": now.to_string()})
        })
        .collect();
    let (s, body) = http
        .call(
            "POST",
            &format!("{base}/api/data/namespaces/system/usage/events"),
            Some(admin),
            Some(json!({"events": events})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (_, usage) = http
        .call(
            "POST",
            &format!("{api}/current_usage"),
            Some(admin),
            Some(json!({})),
        )
        .await;
    let total: i64 = usage["total_cost"].as_str().unwrap().parse().unwrap();

    let driver = Driver::start().await;
    let c = driver.browser().await;

    // Not signed in: the sign-in page.
    c.goto(&format!("{base}/console/")).await.unwrap();
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/console/sign-in")
    );
    look(&driver, &c, "sign-in").await;
    sign_in(&c, &base, "/console/sign-in", admin).await;
    wait_text(&c, "h1", |t| t == "Overview").await;
    // The spend is what current_usage says.
    let spend = text(&c, "#spend .big").await;
    assert_eq!(spend, tollgate_domain::currency::money(total, "USD"));
    look(&driver, &c, "overview").await;

    // The usage chart has the seeded events' data point (three events in one
    // hour and namespace: 12 million requests) and the same total.
    c.find(Locator::LinkText("Usage"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "h1", |t| t == "Usage").await;
    let points = c.find_all(Locator::Css("rect.point")).await.unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(
        points[0].attr("data-quantity").await.unwrap().as_deref(),
        Some("12")
    );
    assert_eq!(
        text(&c, "#rated-total").await,
        tollgate_domain::currency::money(total, "USD")
    );
    look(&driver, &c, "usage").await;

    c.find(Locator::LinkText("Quotas"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "h1", |t| t == "Quotas").await;
    assert!(!c.find_all(Locator::Css("meter")).await.unwrap().is_empty());
    look(&driver, &c, "quotas").await;

    c.find(Locator::LinkText("Invoices"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "h1", |t| t == "Invoices").await;
    look(&driver, &c, "invoices").await;
    let first = c.find(Locator::Css("table tbody a")).await.unwrap();
    let name = first.text().await.unwrap();
    first.click().await.unwrap();
    wait_text(&c, "h1", |t| t == format!("Invoice {name}")).await;
    assert_eq!(
        text(&c, "#total").await,
        tollgate_domain::currency::money(total, "USD")
    );
    look(&driver, &c, "invoice").await;
    let pdf = c
        .find(Locator::LinkText("Download PDF"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let (status, ctype, bytes) = fetch_with_cookie(&c, &format!("{base}{pdf}")).await;
    assert_eq!((status, ctype.as_str()), (200, "application/pdf"));
    assert!(bytes.starts_with(b"%PDF"));

    // Payment methods: add two through the form, make the second primary.
    for card in ["tok-visa-4242", "tok-mc-5555"] {
        c.find(Locator::LinkText("Payment methods"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&c, "h1", |t| t == "Payment methods").await;
        for (id, value) in [
            ("pm-token", card),
            ("pm-address", "1 Main St"),
            ("pm-city", "Paris"),
            ("pm-country", "FR"),
        ] {
            c.find(Locator::Id(id))
                .await
                .unwrap()
                .send_keys(value)
                .await
                .unwrap();
        }
        c.find(Locator::Css("form[action='/console/payment-methods'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&c, "main", |t| t.contains(&card[card.len() - 4..])).await;
    }
    look(&driver, &c, "payment-methods").await;
    let row = "tr[data-name]:nth-child(2)";
    let (first_role, second_role) = (
        text(&c, "tr[data-name]:nth-child(1) td.role").await,
        text(&c, &format!("{row} td.role")).await,
    );
    let target = if second_role == "PRIMARY" {
        "tr[data-name]:nth-child(1)"
    } else {
        row
    };
    assert!([first_role.as_str(), second_role.as_str()].contains(&"PRIMARY"));
    let name = c
        .find(Locator::Css(target))
        .await
        .unwrap()
        .attr("data-name")
        .await
        .unwrap()
        .unwrap();
    c.find(Locator::Css(&format!(
        "form[action='/console/payment-methods/{name}/primary'] button"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_text(&c, &format!("tr[data-name='{name}'] td.role"), |t| t == "PRIMARY").await;
    look(&driver, &c, "payment-methods-primary").await;

    // Sign out: the session is dead.
    sign_out(&c).await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/console/sign-in")
    );
    let (status, _, _) = {
        // The old cookie no longer opens a page.
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        let resp = client
            .request(
                hyper::Request::get(format!("{base}/console/"))
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        (resp.status().as_u16(), (), ())
    };
    assert_eq!(status, 303);
    c.goto(&format!("{base}/console/invoices")).await.unwrap();
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/console/sign-in")
    );

    // A monitor: the pages, and no control but signing out.
    // (Signed in with the keyboard alone.)
    sign_in_by_keyboard(&c, &base, monitor).await;
    wait_text(&c, "h1", |t| t == "Overview").await;
    for path in [
        "/console/",
        "/console/usage",
        "/console/quotas",
        "/console/invoices",
    ] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        // (The usage page's range form only reads: it is a GET.)
        let forms = c
            .find_all(Locator::Css("main form[method='post']"))
            .await
            .unwrap();
        assert!(
            forms.is_empty(),
            "{path}: a monitor sees a form that changes something"
        );
    }
    look(&driver, &c, "monitor").await;
    sign_out(&c).await;

    // Another tenant: nothing of acme's.
    sign_in(&c, &base, "/console/sign-in", globex).await;
    wait_text(&c, "h1", |t| t == "Overview").await;
    let page = c.source().await.unwrap();
    assert!(!page.contains("acme") && page.contains("globex"), "{page}");
    c.goto(&format!("{base}/console/invoices")).await.unwrap();
    wait_text(&c, "h1", |t| t == "Invoices").await;
    assert!(!c.source().await.unwrap().contains("Individual"));
    look(&driver, &c, "other-tenant").await;
    // Globex asks for the organization plan: it needs a domain and a
    // billing address, and the operator's approval.
    c.find(Locator::LinkText("Plans"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "h1", |t| t == "Plans and add-ons").await;
    for (id, value) in [
        ("domain-organization", "globex.com"),
        ("address-organization", "1 Main St"),
        ("city-organization", "Seattle"),
        ("country-organization", "US"),
    ] {
        c.find(Locator::Id(id))
            .await
            .unwrap()
            .send_keys(value)
            .await
            .unwrap();
    }
    c.find(Locator::Css("div[data-plan='organization'] form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#transitions td.state", |t| t == "STATE_WAITING_FOR_APPROVAL").await;
    look(&driver, &c, "plans").await;
    sign_out(&c).await;

    // The operator approves globex's transition.
    sign_in(&c, &base, "/console/operator/sign-in", ops).await;
    wait_text(&c, "h1", |t| t == "Tenants").await;
    look(&driver, &c, "operator-tenants").await;
    c.find(Locator::LinkText("Approvals"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "h1", |t| t == "Approvals").await;
    look(&driver, &c, "operator-approvals").await;
    c.find(Locator::Css("form[action$='/approve'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "main", |t| t.contains("Nothing waits for approval")).await;
    let (_, transitions) = http
        .call_operator("GET", &format!("{base}/api/operator/transitions"), ops, None)
        .await;
    assert_ne!(
        transitions["items"][0]["state"], "WAITING_FOR_APPROVAL",
        "{transitions}"
    );

    // A month later acme's first invoice is finalized and charged to its
    // primary card; the operator refunds 5.00 of it.
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 33)).to_string();
    expect_ok(tollgate(&db, &["jobs", "run", "all", "--now", &later]).await);
    // Run as of a month later, the prune job forgot the session (by then
    // long ended): the operator is asked to sign in again.
    c.find(Locator::LinkText("Invoices"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "h1", |t| t == "Operator sign-in").await;
    sign_in(&c, &base, "/console/operator/sign-in", ops).await;
    wait_text(&c, "h1", |t| t == "Tenants").await;
    c.find(Locator::LinkText("Invoices"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "h1", |t| t == "Invoices").await;
    let row = c
        .find(Locator::Css("tr[data-invoice^='acme/'] form[action$='/refund']"))
        .await
        .unwrap();
    row.find(Locator::Css("input[name=amount]"))
        .await
        .unwrap()
        .send_keys("5.00")
        .await
        .unwrap();
    row.find(Locator::Css("input[name=reason]"))
        .await
        .unwrap()
        .send_keys("outage")
        .await
        .unwrap();
    row.find(Locator::Css("button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "h1", |t| t == "Invoices").await;
    look(&driver, &c, "operator-invoices").await;
    let (_, notes) = http
        .call_operator(
            "GET",
            &format!("{base}/api/operator/tenants/acme/credit-notes"),
            ops,
            None,
        )
        .await;
    assert_eq!(notes["items"][0]["amount_cents"], 500, "{notes}");
    c.find(Locator::LinkText("Health"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#ready .big", |t| t == "ready").await;
    look(&driver, &c, "operator-health").await;
    c.find(Locator::LinkText("Catalog"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "h1", |t| t == "Catalog").await;
    look(&driver, &c, "operator-catalog").await;
    c.find(Locator::LinkText("v1"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "h1", |t| t == "Catalog v1").await;
    look(&driver, &c, "operator-catalog-version").await;
    c.close().await.unwrap();
}
