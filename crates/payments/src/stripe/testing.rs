//! Helpers for tests against a Stripe-compatible server (localstripe), for
//! this crate's tests and Tollgate's end-to-end tests in other crates
//! (cargo feature `testing`).
//!
//! - [`stripe_url`]: the server named by [`URL_VAR`], or `None` (the test
//!   skips) when it is not set; a set but unreachable server fails the test.
//! - [`config`] / [`provider`]: a [`StripeProvider`] for that server.
//! - [`create_card_token`]: what Stripe.js would give a browser for a card.
//! - [`api_get`]: reads an object back, to check what the provider did.
//! - [`DroppingProxy`]: forwards requests but drops chosen answers, as a
//!   network failure after Stripe acted would.
//! - [`ScriptedServer`]: answers canned responses (429s, 5xx, hangs) and
//!   records the requests.

use std::io;
use std::net::{SocketAddr, TcpStream as StdTcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::form::Form;
use super::{StripeConfig, StripeProvider};

/// Names the Stripe-compatible server tests run against, e.g.
/// `http://127.0.0.1:8420` (localstripe, started by `.ci/run`).
pub const URL_VAR: &str = "TOLLGATE_TEST_STRIPE_URL";

/// The secret key tests use (localstripe takes any `sk_…`).
pub const SECRET_KEY: &str = "sk_test_tollgate";

/// How long a helper waits on the server or the proxy's upstream.
const WAIT: Duration = Duration::from_secs(20);

/// The server named by [`URL_VAR`] (without a trailing slash), or `None`
/// after printing why the test skips. Panics when it is set but nothing
/// listens there: a configured server is never silently skipped.
pub fn stripe_url() -> Option<String> {
    let url = match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
        _ => {
            eprintln!(
                "skipped: {URL_VAR} is not set (start localstripe --port 8420 and set it to http://127.0.0.1:8420)"
            );
            return None;
        }
    };
    let parsed = reqwest::Url::parse(&url).unwrap_or_else(|e| panic!("{URL_VAR}={url} is not a URL: {e}"));
    let host = parsed
        .host_str()
        .unwrap_or_else(|| panic!("{URL_VAR}={url} has no host"));
    let port = parsed
        .port_or_known_default()
        .unwrap_or_else(|| panic!("{URL_VAR}={url} has no port"));
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("{URL_VAR}={url}: cannot resolve {host}: {e}"))
        .collect();
    let mut last = None;
    for addr in &addrs {
        match StdTcpStream::connect_timeout(addr, Duration::from_secs(3)) {
            Ok(_) => return Some(url),
            Err(e) => last = Some(e),
        }
    }
    panic!(
        "{URL_VAR}={url} is set but nothing answers there ({}): start the server or unset the variable",
        last.map_or_else(|| "no address".to_owned(), |e| e.to_string())
    );
}

/// A configuration for the test server at `url`: the test key, localstripe's
/// parameter set, short backoffs.
pub fn config(url: &str) -> StripeConfig {
    let mut config = StripeConfig::new(SECRET_KEY);
    config.api_base = url.to_owned();
    config.localstripe_compat = true;
    config.request_timeout = Duration::from_secs(10);
    config.max_retries_on_429 = 2;
    config.backoff_base = Duration::from_millis(10);
    config
}

/// A provider for the test server at `url` (see [`config`]).
pub fn provider(url: &str) -> StripeProvider {
    StripeProvider::new(config(url)).expect("a valid test configuration")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("an HTTP client")
}

/// A card token (`tok_…`) for `number` (expires 12/2030, CVC 123) made on the
/// server, as Stripe.js makes one in the customer's browser.
pub async fn create_card_token(url: &str, number: &str) -> String {
    let form = Form::new().hash(
        "card",
        [
            ("number", number),
            ("exp_month", "12"),
            ("exp_year", "2030"),
            ("cvc", "123"),
        ],
    );
    let answer = http()
        .post(format!("{url}/v1/tokens"))
        .bearer_auth(SECRET_KEY)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.encode())
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}/v1/tokens: {e}"));
    let status = answer.status();
    let body = answer.bytes().await.expect("the token's body");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON token");
    assert!(status.is_success(), "POST /v1/tokens: {status} {body}");
    let id = body["id"].as_str().expect("the token's id").to_owned();
    assert!(id.starts_with("tok_"), "{body}");
    id
}

/// `GET {url}{path_and_query}` with the test key; panics unless it succeeds.
pub async fn api_get(url: &str, path_and_query: &str) -> serde_json::Value {
    let answer = http()
        .get(format!("{url}{path_and_query}"))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}"));
    let status = answer.status();
    let body = answer
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}"));
    let body: serde_json::Value =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {path_and_query}: not JSON: {e}"));
    assert!(status.is_success(), "GET {path_and_query}: {status} {body}");
    body
}

/// One HTTP/1.1 message as read off a connection.
#[derive(Debug, Clone)]
struct Message {
    /// The start line and headers, without the blank line.
    head: String,
    body: Vec<u8>,
}

impl Message {
    fn start_line(&self) -> &str {
        self.head.split("\r\n").next().unwrap_or_default()
    }

    fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.head.split("\r\n").skip(1).filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim(), value.trim()))
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The same message with `Connection: close` instead of its own
    /// connection headers, so that neither side keeps the connection.
    fn closing(&self) -> Vec<u8> {
        let mut out = String::from(self.start_line());
        out.push_str("\r\n");
        for (name, value) in self.headers() {
            if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive") {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Reads one message: the head, then a body of `Content-Length` bytes (to
/// the end of the stream when there is none, as for a response that closes).
async fn read_message<R: AsyncRead + Unpin>(
    stream: &mut R,
    until_eof_without_length: bool,
) -> io::Result<Message> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 1 << 20 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a head over 1 MiB"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before a whole head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut body = buf[head_end + 4..].to_vec();
    let message = Message {
        head,
        body: Vec::new(),
    };
    if message
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "chunked messages are not supported here",
        ));
    }
    match message.header("content-length") {
        Some(len) => {
            let len: usize = len
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a bad Content-Length"))?;
            while body.len() < len {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed before a whole body",
                    ));
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
        }
        None if until_eof_without_length => {
            stream.read_to_end(&mut body).await?;
        }
        None => body.clear(),
    }
    Ok(Message { body, ..message })
}

/// `(method, path without the query)` of a request's start line.
fn method_and_path(start_line: &str) -> (String, String) {
    let mut parts = start_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    (method, path)
}

type Rule = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// A proxy in front of a Stripe-compatible server that forwards every
/// request, and for the requests its rule picks, lets the server answer and
/// then closes the connection to the client without a byte of the answer:
/// the client sees a network failure although the server acted (the "lost
/// answer" of a charge). One request per connection (answers say
/// `Connection: close`). Stops when dropped.
pub struct DroppingProxy {
    addr: SocketAddr,
    dropped: Arc<AtomicUsize>,
    forwarded: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for DroppingProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DroppingProxy")
            .field("addr", &self.addr)
            .field("dropped", &self.dropped())
            .field("forwarded", &self.forwarded())
            .finish()
    }
}

/// A rule for [`DroppingProxy::start`]: drops the answer to the first
/// request of `method` whose path ends with `path_suffix` (e.g. `"POST"`,
/// `"/confirm"`), and no other.
pub fn drop_once(
    method: &'static str,
    path_suffix: &'static str,
) -> impl Fn(&str, &str) -> bool + Send + Sync {
    let done = AtomicBool::new(false);
    move |m: &str, path: &str| {
        m.eq_ignore_ascii_case(method) && path.ends_with(path_suffix) && !done.swap(true, Ordering::SeqCst)
    }
}

impl DroppingProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream` (an
    /// `http://host:port` URL). `drop_answer(method, path)` picks the
    /// requests whose answers are dropped.
    pub async fn start(
        upstream: &str,
        drop_answer: impl Fn(&str, &str) -> bool + Send + Sync + 'static,
    ) -> Self {
        let parsed = reqwest::Url::parse(upstream).unwrap_or_else(|e| panic!("{upstream}: {e}"));
        assert_eq!(parsed.scheme(), "http", "the proxy forwards plain HTTP");
        let host = parsed.host_str().expect("an upstream host").to_owned();
        let port = parsed.port_or_known_default().expect("an upstream port");
        let upstream: SocketAddr = (host.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("cannot resolve {host}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let dropped = Arc::new(AtomicUsize::new(0));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let rule: Rule = Arc::new(drop_answer);
        let task = {
            let (dropped, forwarded) = (dropped.clone(), forwarded.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (rule, dropped, forwarded) = (rule.clone(), dropped.clone(), forwarded.clone());
                    tokio::spawn(async move {
                        let served =
                            tokio::time::timeout(WAIT, relay(client, upstream, rule, dropped, forwarded))
                                .await;
                        if let Ok(Err(e)) | Err(e) = served.map_err(io::Error::other) {
                            eprintln!("dropping proxy: {e}");
                        }
                    });
                }
            })
        };
        Self {
            addr,
            dropped,
            forwarded,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`: the `api_base` to give the client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many answers were dropped so far.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    /// How many answers were passed on so far.
    pub fn forwarded(&self) -> usize {
        self.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for DroppingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    rule: Rule,
    dropped: Arc<AtomicUsize>,
    forwarded: Arc<AtomicUsize>,
) -> io::Result<()> {
    let request = match read_message(&mut client, false).await {
        Ok(r) => r,
        // A client that opened a connection and closed it unused.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
        Err(e) => return Err(e),
    };
    let (method, path) = method_and_path(request.start_line());
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(&request.closing()).await?;
    let response = read_message(&mut server, true).await?;
    drop(server);
    if rule(&method, &path) {
        dropped.fetch_add(1, Ordering::SeqCst);
        // Closed without a byte: the server acted, the client never knows.
        drop(client);
        return Ok(());
    }
    client.write_all(&response.closing()).await?;
    client.shutdown().await?;
    forwarded.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// What a [`ScriptedServer`] does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answers with this status and JSON body.
    Json(u16, String),
    /// Reads the request and never answers (until the server is dropped).
    Hang,
}

/// A request a [`ScriptedServer`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// With the query, as sent.
    pub target: String,
    /// Names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    /// A header's value (names compared in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A local HTTP server that answers the n-th request with the n-th
/// [`Reply`] (the last one again once they run out) and records every
/// request: for 429s, outages and timeouts that a real server will not
/// produce on demand. Stops when dropped.
pub struct ScriptedServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedServer {
    pub async fn start(replies: Vec<Reply>) -> Self {
        assert!(!replies.is_empty(), "a scripted server needs a reply");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the scripted server");
        let addr = listener.local_addr().expect("its address");
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let task = {
            let requests = requests.clone();
            tokio::spawn(async move {
                let replies = Arc::new(replies);
                while let Ok((mut conn, _)) = listener.accept().await {
                    let (requests, replies) = (requests.clone(), replies.clone());
                    tokio::spawn(async move {
                        let Ok(message) = read_message(&mut conn, false).await else {
                            return;
                        };
                        let (method, _) = method_and_path(message.start_line());
                        let target = message
                            .start_line()
                            .split(' ')
                            .nth(1)
                            .unwrap_or_default()
                            .to_owned();
                        let recorded = Recorded {
                            method,
                            target,
                            headers: message
                                .headers()
                                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
                                .collect(),
                            body: String::from_utf8_lossy(&message.body).into_owned(),
                        };
                        let n = {
                            let mut requests = requests.lock().unwrap_or_else(|e| e.into_inner());
                            requests.push(recorded);
                            requests.len() - 1
                        };
                        match &replies[n.min(replies.len() - 1)] {
                            Reply::Hang => std::future::pending::<()>().await,
                            Reply::Json(status, body) => {
                                let answer = format!(
                                    "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\n\
                                     Content-Length: {}\r\nRequest-Id: req_scripted_{n}\r\nConnection: close\r\n\r\n{body}",
                                    body.len()
                                );
                                let _ = conn.write_all(answer.as_bytes()).await;
                                let _ = conn.shutdown().await;
                            }
                        }
                    });
                }
            })
        };
        Self { addr, requests, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_once_picks_one_request() {
        let rule = drop_once("POST", "/confirm");
        assert!(!rule("GET", "/v1/payment_intents/pi_1"));
        assert!(!rule("GET", "/v1/payment_intents/pi_1/confirm"));
        assert!(rule("POST", "/v1/payment_intents/pi_1/confirm"));
        assert!(!rule("POST", "/v1/payment_intents/pi_1/confirm"));
        assert_eq!(
            method_and_path("POST /v1/refunds?x=1 HTTP/1.1"),
            ("POST".to_string(), "/v1/refunds".to_string())
        );
    }

    #[tokio::test]
    async fn messages_are_read_by_length_and_rewritten_to_close() {
        let raw = b"POST /v1/x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
        let mut reader = &raw[..];
        let m = read_message(&mut reader, false).await.unwrap();
        assert_eq!(m.body, b"hello");
        assert_eq!(m.header("content-length"), Some("5"));
        let closing = String::from_utf8(m.closing()).unwrap();
        assert_eq!(
            closing,
            "POST /v1/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        );
        let raw = b"HTTP/1.1 200 OK\r\n\r\nto the end";
        let mut reader = &raw[..];
        assert_eq!(read_message(&mut reader, true).await.unwrap().body, b"to the end");
        let mut reader = &b"GET / HTTP/1.1\r\nHost"[..];
        assert!(read_message(&mut reader, false).await.is_err());
    }
}
