//! The HTTP layer: connection deadlines, shutdown drain and the connection
//! limit of `server::serve` over real sockets; every rejection of extractors,
//! layers and fallbacks in the error format; request ids.
//!
//! The connection tests run the real middleware and `/healthz` without
//! storage. They never sleep: each waits for an event (an answer, the server
//! closing the connection) with a generous upper bound ([`PATIENCE`]), and
//! timeouts that must *not* fire in a test are set far above that bound.

use std::io::ErrorKind as IoErrorKind;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tollgate_api::error::check_error_body;
use tollgate_api::extract::JsonBody;
use tollgate_api::server::{HttpLimits, serve};
use tollgate_testkit::each_backend;
use tower::ServiceExt;

use crate::support::{OPERATOR_TOKEN, Resp, TestApp};

/// Upper bound on waiting for something that should happen much sooner.
const PATIENCE: Duration = Duration::from_secs(10);
/// A timeout that must not fire during a test.
const NEVER: Duration = Duration::from_secs(120);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {PATIENCE:?}"))
}

/// A route that holds its request until the test releases it.
struct Slow {
    started: mpsc::UnboundedReceiver<()>,
    release: Arc<Semaphore>,
}

impl Slow {
    async fn started(&mut self) {
        within("slow request starts", self.started.recv())
            .await
            .expect("slow route is alive");
    }

    fn release_one(&self) {
        self.release.add_permits(1);
    }
}

/// `/healthz`, `/slow` and `/echo` (a JSON body) behind the real middleware.
fn router() -> (Router, Slow) {
    let (started_tx, started) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let gate = release.clone();
    let router = Router::new()
        .route("/healthz", get(tollgate_api::health::healthz))
        .route(
            "/slow",
            get(move || {
                let started = started_tx.clone();
                let gate = gate.clone();
                async move {
                    let _ = started.send(());
                    let permit = gate.acquire().await.expect("gate stays open");
                    permit.forget();
                    axum::Json(json!({"slow": "done"}))
                }
            }),
        )
        .route(
            "/echo",
            post(|JsonBody(body): JsonBody<Value>| async move { axum::Json(body) }),
        );
    (tollgate_api::with_middleware(router), Slow { started, release })
}

/// `serve` on 127.0.0.1, stopped by `stop` (or by dropping it).
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

async fn start(router: Router, limits: HttpLimits) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, router, limits, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

impl Running {
    fn shut_down(&mut self) {
        let _ = self.stop.take().expect("not stopped yet").send(());
    }

    async fn connect(&self) -> Client {
        Client {
            stream: within("connect", TcpStream::connect(self.addr))
                .await
                .expect("connect"),
            buf: Vec::new(),
        }
    }
}

fn limits(header_read_timeout: Duration, keep_alive_timeout: Duration) -> HttpLimits {
    HttpLimits {
        header_read_timeout,
        keep_alive_timeout,
        shutdown_timeout: NEVER,
        max_connections: 1024,
    }
}

/// A raw HTTP/1.1 client, one request at a time.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the error format and returns the message.
    #[track_caller]
    fn error(&self, status: u16, code: u64) -> &str {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        assert_eq!(self.body["code"], code, "{self:?}");
        if let Err(e) = check_error_body(self.status, &self.body) {
            panic!("{e}");
        }
        self.body["message"].as_str().expect("message")
    }

    /// The reason of an error answer.
    fn reason(&self) -> &str {
        self.body["details"][0]["reason"].as_str().unwrap_or("")
    }
}

impl Client {
    async fn send(&mut self, bytes: &str) {
        self.stream.write_all(bytes.as_bytes()).await.expect("send");
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send(&format!("GET {path} HTTP/1.1\r\nHost: tollgate\r\n\r\n"))
            .await;
        self.answer().await
    }

    /// Reads one response (its head and a `Content-Length` body).
    async fn answer(&mut self) -> Answer {
        within("an answer", async {
            let head_end = loop {
                if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                self.fill().await;
            };
            let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("ASCII head");
            let mut lines = head.split("\r\n");
            let status = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|s| s.parse().ok())
                .expect("status line");
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map(|(_, v)| v.parse().expect("content-length"))
                .expect("responses here have a content-length");
            while self.buf.len() < head_end + length {
                self.fill().await;
            }
            let body: Vec<u8> = self.buf.drain(..head_end + length).skip(head_end).collect();
            let body = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
            Answer {
                status,
                headers,
                body,
            }
        })
        .await
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await.expect("read");
        assert!(
            n > 0,
            "connection closed mid-answer: {}",
            String::from_utf8_lossy(&self.buf)
        );
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Waits for the server to close the connection; returns what it sent.
    async fn closed(&mut self) -> String {
        within("the server closes the connection", async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) => break,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == IoErrorKind::ConnectionReset => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
        })
        .await;
        String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned()
    }
}

/// A request head cut off before its end.
const PARTIAL_HEAD: &str = "GET /healthz HTTP/1.1\r\nHost: tollgate\r\n";

#[tokio::test]
async fn a_connection_that_does_not_finish_its_request_head_is_closed_after_the_header_timeout() {
    let header_timeout = Duration::from_millis(300);
    let (router, _slow) = router();
    let server = start(router, limits(header_timeout, NEVER)).await;

    let mut partial = server.connect().await;
    let mut silent = server.connect().await;
    let opened = Instant::now();
    partial.send(PARTIAL_HEAD).await;
    assert_eq!(partial.closed().await, "", "closed without an answer");
    // The deadline counts from connection open, bytes or not.
    assert_eq!(silent.closed().await, "");
    assert!(opened.elapsed() >= header_timeout);

    // The server itself is fine.
    server.connect().await.get("/healthz").await;
}

#[tokio::test]
async fn the_header_timeout_counts_from_the_first_byte_of_a_following_request() {
    let (router, _slow) = router();
    let server = start(router, limits(Duration::from_millis(400), NEVER)).await;

    let mut keep_alive = server.connect().await;
    assert_eq!(keep_alive.get("/healthz").await.status, 200);
    // Let `keep_alive` idle for longer than the header timeout: another
    // connection's header timeout serves as the clock.
    let mut clock = server.connect().await;
    clock.send(PARTIAL_HEAD).await;
    assert_eq!(clock.closed().await, "");
    // Idle time is not head time: the connection still serves a request.
    assert_eq!(keep_alive.get("/healthz").await.status, 200);
    // But once a following request has started, its head must arrive in time.
    keep_alive.send(PARTIAL_HEAD).await;
    assert_eq!(keep_alive.closed().await, "");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout_but_a_busy_one_is_not() {
    let keep_alive_timeout = Duration::from_millis(300);
    let (router, mut slow) = router();
    let server = start(router, limits(NEVER, keep_alive_timeout)).await;

    // A request in flight for longer than the keep-alive timeout...
    let mut busy = server.connect().await;
    busy.send("GET /slow HTTP/1.1\r\nHost: tollgate\r\n\r\n").await;
    slow.started().await;
    // ...and a request head in progress, under the (long) header timeout.
    let mut heading = server.connect().await;
    heading.send(PARTIAL_HEAD).await;

    let mut idle = server.connect().await;
    let asked = Instant::now();
    assert_eq!(idle.get("/healthz").await.status, 200);
    assert_eq!(idle.closed().await, "", "idle connection closed without a word");
    assert!(asked.elapsed() >= keep_alive_timeout);

    slow.release_one();
    let answer = busy.answer().await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, json!({"slow": "done"}));
    heading.send("\r\n").await;
    assert_eq!(heading.answer().await.status, 200);
}

#[tokio::test]
async fn shutdown_closes_idle_and_partial_connections_at_once_and_finishes_the_request_in_flight() {
    let (router, mut slow) = router();
    let mut server = start(router, limits(NEVER, NEVER)).await;

    let mut in_flight = server.connect().await;
    in_flight
        .send("GET /slow HTTP/1.1\r\nHost: tollgate\r\n\r\n")
        .await;
    slow.started().await;
    let mut partial = Vec::new();
    for _ in 0..3 {
        let mut c = server.connect().await;
        c.send(PARTIAL_HEAD).await;
        partial.push(c);
    }
    let mut silent = server.connect().await;
    let mut idle = server.connect().await;
    assert_eq!(idle.get("/healthz").await.status, 200);

    server.shut_down();
    // Header and keep-alive timeouts are far away, and the slow request still
    // runs: only shutdown closes these.
    for c in partial.iter_mut().chain([&mut silent, &mut idle]) {
        assert_eq!(c.closed().await, "");
    }
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "no longer accepting"
    );
    assert!(!server.task.is_finished(), "waits for the request in flight");

    slow.release_one();
    let answer = in_flight.answer().await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(in_flight.closed().await, "");
    within("serve returns", &mut server.task).await.expect("serve");
}

#[tokio::test]
async fn shutdown_gives_up_on_a_request_still_running_after_the_shutdown_timeout() {
    let shutdown_timeout = Duration::from_millis(300);
    let (router, mut slow) = router();
    let mut server = start(
        router,
        HttpLimits {
            shutdown_timeout,
            ..limits(NEVER, NEVER)
        },
    )
    .await;
    let mut stuck = server.connect().await;
    stuck.send("GET /slow HTTP/1.1\r\nHost: tollgate\r\n\r\n").await;
    slow.started().await;

    let stopping = Instant::now();
    server.shut_down();
    within("serve returns", &mut server.task).await.expect("serve");
    assert!(stopping.elapsed() >= shutdown_timeout);
    assert_eq!(stuck.closed().await, "", "cut off without an answer");
}

#[tokio::test]
async fn connections_over_the_limit_get_a_503_at_once_while_the_others_keep_working() {
    let (router, _slow) = router();
    let server = start(
        router,
        HttpLimits {
            max_connections: 2,
            ..limits(NEVER, NEVER)
        },
    )
    .await;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    assert_eq!(first.get("/healthz").await.status, 200);
    assert_eq!(second.get("/healthz").await.status, 200);

    // Refused before sending anything (the header timeout is far away)...
    let mut extra = server.connect().await;
    let refused = extra.answer().await;
    let message = refused.error(503, 14);
    assert!(message.contains("too many open connections"), "{message}");
    assert_eq!(refused.reason(), "OVERLOADED");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("connection"), Some("close"));
    assert!(refused.header("x-request-id").is_some());
    assert_eq!(extra.closed().await, "");
    // ...or after sending a request.
    let mut another = server.connect().await;
    let refused = another.get("/healthz").await;
    refused.error(503, 14);
    assert_eq!(refused.reason(), "OVERLOADED");
    assert_eq!(another.closed().await, "");

    assert_eq!(first.get("/healthz").await.status, 200);
    assert_eq!(second.get("/healthz").await.status, 200);

    // A closed connection frees its slot (once the server has noticed).
    drop(first);
    within("a slot frees up", async {
        loop {
            if server.connect().await.get("/healthz").await.status == 200 {
                break;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn healthz_answers_while_many_partial_header_connections_are_open() {
    let (router, _slow) = router();
    let server = start(router, limits(NEVER, NEVER)).await;
    let mut partial = Vec::new();
    for _ in 0..200 {
        let mut c = server.connect().await;
        c.send(PARTIAL_HEAD).await;
        partial.push(c);
    }
    let mut probe = server.connect().await;
    let answer = probe.get("/healthz").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, json!({"status": "ok"}));
    // They were held open, not dropped: each still completes its request.
    for c in partial.iter_mut().take(3) {
        c.send("\r\n").await;
        assert_eq!(c.answer().await.status, 200);
    }
}

#[tokio::test]
async fn oversized_bodies_get_413_over_the_wire_before_the_body_is_sent() {
    let (router, _slow) = router();
    let server = start(router, limits(NEVER, NEVER)).await;
    let mut client = server.connect().await;
    client
        .send("POST /echo HTTP/1.1\r\nHost: tollgate\r\nContent-Length: 2000000\r\n\r\n")
        .await;
    let answer = client.answer().await;
    assert_eq!(answer.error(413, 3), "request body is larger than 1048576 bytes");
    assert_eq!(answer.reason(), "PAYLOAD_TOO_LARGE");

    let mut small = server.connect().await;
    small
        .send("POST /echo HTTP/1.1\r\nHost: tollgate\r\nContent-Length: 8\r\n\r\n{\"a\":1}\n")
        .await;
    assert_eq!(small.answer().await.body, json!({"a": 1}));
}

/// Asserts the error format on a response of the in-process router.
#[track_caller]
fn assert_error_format(resp: &Resp, status: u16, code: u64) -> String {
    assert_eq!(resp.headers["content-type"], "application/json", "{resp:?}");
    resp.error(status, code).to_owned()
}

#[tokio::test]
async fn path_parameters_that_are_not_utf8_or_hold_control_characters_are_400_naming_the_parameter() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let resp = app.get("/api/web/namespaces/system/quotas/%ff", &admin).await;
        assert_eq!(
            assert_error_format(&resp, 400, 3),
            "name: path parameter is not valid UTF-8 once percent-decoded"
        );
        assert_eq!(resp.reason("INVALID_ARGUMENT").metadata("field"), "name");
        let resp = app.get("/api/web/namespaces/system/quotas/a%00b", &admin).await;
        assert_eq!(
            assert_error_format(&resp, 400, 3),
            "name: path parameter must not contain control characters"
        );
        let resp = app.get("/api/web/namespaces/sys%0Atem/quotas", &admin).await;
        assert_eq!(
            assert_error_format(&resp, 400, 3),
            "namespace: path parameter must not contain control characters"
        );
        assert_eq!(resp.metadata("field"), "namespace");
        let resp = app
            .request(
                Method::POST,
                "/api/operator/transitions/%c3%28/approve",
                None,
                Body::empty(),
                &[("authorization", &format!("Bearer {OPERATOR_TOKEN}"))],
            )
            .await;
        assert_eq!(
            assert_error_format(&resp, 400, 3),
            "id: path parameter is not valid UTF-8 once percent-decoded"
        );
        // Valid percent-encoded text is decoded as before (and judged as a name).
        let resp = app
            .get("/api/web/namespaces/system/quotas/caf%C3%A9", &admin)
            .await;
        let message = assert_error_format(&resp, 400, 3);
        assert!(
            message.starts_with("name: \"café\" is not a valid name"),
            "{message}"
        );
    })
    .await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_in_the_error_format() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        let auth = format!("APIToken {admin}");
        // A declared length over the limit, nothing read.
        let resp = app
            .request(
                Method::POST,
                "/api/web/namespaces/system/quotas",
                None,
                Body::empty(),
                &[("authorization", &auth), ("content-length", "1048577")],
            )
            .await;
        assert_eq!(
            assert_error_format(resp.reason("PAYLOAD_TOO_LARGE"), 413, 3),
            "request body is larger than 1048576 bytes"
        );
        // DELETE reads its options from the raw body: the same limit, the same answer.
        let resp = app
            .request(
                Method::DELETE,
                "/api/web/namespaces/system/quotas/q",
                Some(&admin),
                "x".repeat(2 * 1024 * 1024),
                &[],
            )
            .await;
        assert_eq!(
            assert_error_format(resp.reason("PAYLOAD_TOO_LARGE"), 413, 3),
            "request body is larger than 1048576 bytes"
        );
        // A body of exactly the limit is read (and then judged on its content).
        let exact = format!("{{\"x\":\"{}\"}}", "a".repeat(1024 * 1024 - 8));
        assert_eq!(exact.len(), 1024 * 1024);
        let resp = app
            .request(
                Method::POST,
                "/api/web/namespaces/system/quotas",
                Some(&admin),
                exact,
                &[],
            )
            .await;
        assert_eq!(resp.status, 400, "{resp:?}");
    })
    .await;
}

/// The router alone (no storage), for layers that need no database.
fn bare(routes: Router) -> Router {
    tollgate_api::with_middleware(routes)
}

async fn call(router: Router, request: Request<Body>) -> (u16, axum::http::HeaderMap, Value) {
    let response = router.oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, headers, body)
}

#[tokio::test(start_paused = true)]
async fn a_request_over_the_request_timeout_is_504_in_the_error_format() {
    // Paused time: the 30 s pass at once, as soon as nothing else can run.
    let router = bare(Router::new().route("/hang", get(std::future::pending::<()>)));
    let request = Request::get("/hang").body(Body::empty()).expect("request");
    let (status, headers, body) = call(router, request).await;
    assert_eq!(status, 504);
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers.contains_key("x-request-id"));
    assert_eq!(
        body,
        json!({
            "code": 4,
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "DEADLINE_EXCEEDED",
                "domain": "tollgate",
                "metadata": {},
            }],
            "message": "request timed out",
        })
    );
}

#[tokio::test]
async fn malformed_headers_queries_and_bodies_answer_in_the_error_format() {
    each_backend(|db| async move {
        let app = TestApp::new(db).await;
        let (_, admin) = app.admin("acme").await;
        // An Authorization header that is not text.
        let bad = HeaderValue::from_bytes(b"APIToken \xff\xfe").expect("opaque header");
        let request = Request::get("/api/web/namespaces/system/quotas")
            .header("authorization", bad.clone())
            .body(Body::empty())
            .expect("request");
        let (status, headers, body) = call(app.router.clone(), request).await;
        assert_eq!((status, &body["code"]), (401, &json!(16)), "{body}");
        assert_eq!(
            check_error_body(status, &body).map(|r| r.as_str()),
            Ok("UNAUTHENTICATED")
        );
        assert_eq!(headers["content-type"], "application/json");
        let request = Request::get("/api/operator/audit")
            .header("authorization", bad)
            .body(Body::empty())
            .expect("request");
        let (status, _, body) = call(app.router.clone(), request).await;
        assert_eq!((status, &body["code"]), (401, &json!(16)), "{body}");
        assert_eq!(
            check_error_body(status, &body).map(|r| r.as_str()),
            Ok("UNAUTHENTICATED")
        );
        // A query that is not UTF-8 once decoded.
        let resp = app
            .get("/api/web/namespaces/system/quotas?label_filter=%ff%00", &admin)
            .await;
        assert_error_format(&resp, 400, 3);
        // Bodies that are not JSON objects.
        for body in ["{", "[1]", "\u{0}", "{\"metadata\":{\"name\":\"a\u{0}\"}} x"] {
            let resp = app
                .request(
                    Method::POST,
                    "/api/web/namespaces/system/quotas",
                    Some(&admin),
                    body,
                    &[],
                )
                .await;
            assert_error_format(&resp, 400, 3);
        }
        // Unknown routes and methods.
        let resp = app
            .request(
                Method::OPTIONS,
                "/api/web/namespaces/system/quotas",
                None,
                Body::empty(),
                &[],
            )
            .await;
        assert_error_format(resp.reason("METHOD_NOT_ALLOWED"), 405, 12);
        let resp = app
            .request(Method::GET, "/%ff/%00", None, Body::empty(), &[])
            .await;
        assert_error_format(resp.reason("ROUTE_NOT_FOUND"), 404, 5);
    })
    .await;
}

/// Log lines written during a test, on this thread only.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

#[tokio::test]
async fn a_short_safe_request_id_is_kept_and_anything_else_replaced() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let router = bare(Router::new().route("/healthz", get(tollgate_api::health::healthz)));

    let id_of = |ids: Vec<HeaderValue>| {
        let mut request = Request::get("/healthz");
        for id in ids {
            request = request.header("x-request-id", id);
        }
        let request = request.body(Body::empty()).expect("request");
        let router = router.clone();
        async move {
            let (status, headers, _) = call(router, request).await;
            assert_eq!(status, 200);
            let ids: Vec<_> = headers.get_all("x-request-id").iter().collect();
            assert_eq!(ids.len(), 1, "{ids:?}");
            ids[0].to_str().expect("ASCII id").to_owned()
        }
    };
    let value = |bytes: &[u8]| HeaderValue::from_bytes(bytes).expect("a header value");

    let longest = "a".repeat(128);
    for kept in [
        "trace-42",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "svc:a.b_c-1",
        &longest,
    ] {
        assert_eq!(id_of(vec![value(kept.as_bytes())]).await, kept);
        assert!(
            log.text().contains(&format!("request_id={kept}}}")),
            "{kept} is logged"
        );
    }
    let too_long = "a".repeat(129);
    let ten_kb = "x".repeat(10 * 1024);
    for replaced in [
        "",
        "}{",
        "\"}{\"",
        "a b",
        "a/b",
        "caf\u{e9}",
        too_long.as_str(),
        ten_kb.as_str(),
    ] {
        let used = id_of(vec![value(replaced.as_bytes())]).await;
        assert_ne!(used, replaced);
        assert!(uuid::Uuid::parse_str(&used).is_ok(), "{used} is generated");
        assert!(
            log.text().contains(&format!("request_id={used}}}")),
            "{used} is logged"
        );
    }
    // Bytes that are not text at all.
    let used = id_of(vec![value(b"\xff\xfe")]).await;
    assert!(uuid::Uuid::parse_str(&used).is_ok(), "{used}");
    // Two ids: neither is trusted.
    let used = id_of(vec![value(b"one"), value(b"two")]).await;
    assert!(uuid::Uuid::parse_str(&used).is_ok(), "{used}");
    let text = log.text();
    assert!(!text.contains("}{"), "unsafe ids never reach the log");
    assert!(!text.contains(&too_long), "long ids never reach the log");
}
