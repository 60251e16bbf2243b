//! The HTTP/1.1 server: our own accept loop over hyper, so that every
//! connection is bounded in time and the connections are bounded in number.
//!
//! `axum::serve` sets no timer: a client that sends half a request head holds
//! its connection (a file descriptor, a task) forever and holds up graceful
//! shutdown until it leaves. [`serve`] bounds each phase of a connection's
//! life ([`HttpLimits`]):
//!
//! - **Reading a request head** (from accept, or from the first byte of a
//!   following request on a keep-alive connection): at most
//!   `header_read_timeout`, then the connection is closed without an answer
//!   (there is no request to answer yet).
//! - **Idle between requests**: at most `keep_alive_timeout` without a byte
//!   moving, then the connection is closed.
//! - **Serving a request** (head received, until the response body is handed to
//!   hyper): no connection deadline; the router's request timeout (504) applies.
//! - **Shutdown**: accepting stops; idle and partial-head connections close at
//!   once; connections serving a request finish it (with `Connection: close`),
//!   for at most `shutdown_timeout`, after which every connection is closed.
//! - **Too many connections**: beyond `max_connections`, a new connection is
//!   answered 503 (`{"code":14,…}`, `Retry-After`, `Connection: close`) and
//!   closed at once, so the connections already open keep working.
//!
//! hyper's own `header_read_timeout` cannot give the first two separately: it
//! runs whenever the connection waits for a head, idle keep-alive time
//! included. So the deadlines live in [`TimedIo`], a wrapper around the socket
//! with one tokio `Sleep`, told by the service whether a request is being
//! served: while idle the deadline is the keep-alive one (pushed back by every
//! byte written, so a slow reader of the last response is not "idle"); the
//! first byte read while idle switches it to the head deadline; a request's
//! arrival clears it. An expired deadline makes the next read fail, and hyper
//! closes the connection. (Bytes of a pipelined request that arrive while the
//! previous one is served are not "a first byte": the rest of that head is
//! then bounded by the keep-alive deadline.)

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::Request;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::{Instant, Sleep};
use tollgate_domain::{Error, ErrorKind, Reason};
use tower::ServiceExt;

use crate::error::{ERROR_DOMAIN, ERROR_INFO_TYPE, ErrorBody, status_and_code};

/// How long connections may take, and how many there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Longest a client may take to send a complete request head, from
    /// connection open or from the first byte of a following request.
    pub header_read_timeout: Duration,
    /// Longest a connection may stay idle between requests.
    pub keep_alive_timeout: Duration,
    /// Longest shutdown waits for requests in flight before closing everything.
    pub shutdown_timeout: Duration,
    /// Most connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    /// The defaults of `tollgate serve` (README, ARCHITECTURE "Connections and timeouts").
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            shutdown_timeout: Duration::from_secs(20),
            max_connections: 1024,
        }
    }
}

/// Refusals (503 answers to connections over the limit) in progress at once;
/// beyond this, under a flood, extra connections are closed without an answer.
const MAX_REFUSALS_IN_FLIGHT: usize = 128;

/// Longest a refused connection is kept to deliver its 503 and read what the
/// client sent (closing with unread bytes would reset the connection, and the
/// client could lose the answer).
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Pause after an accept error that is not the client's (e.g. out of file
/// descriptors), so the loop does not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// How often, at most, the log says connections are being refused.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` completes, then drains
/// connections for at most [`HttpLimits::shutdown_timeout`] and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusal_slots = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut refusals = RefusalLog::default();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                report(done);
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            // The client gave up before we got to it.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "accepting a connection failed; retrying in 1s");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                tasks.spawn(connection(stream, router.clone(), limits, drain_rx.clone(), slot));
            }
            Err(_) => {
                refusals.refused(limits.max_connections);
                if let Ok(slot) = refusal_slots.clone().try_acquire_owned() {
                    tasks.spawn(refuse(stream, slot));
                }
            }
        }
    }
    drop(listener);
    tracing::info!(
        connections = tasks.len(),
        "stopped accepting; draining connections"
    );
    drain_tx.send_replace(true);
    let drain = async {
        while let Some(done) = tasks.join_next().await {
            report(done);
        }
    };
    if tokio::time::timeout(limits.shutdown_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tasks.len(),
            timeout = ?limits.shutdown_timeout,
            "shutdown timeout reached; closing connections with requests still in flight"
        );
        tasks.shutdown().await;
    }
}

/// Errors of one incoming connection, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

fn report(done: Result<(), JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        tracing::error!(error = %e, "a connection task panicked");
    }
}

/// Logs refusals at most every [`REFUSAL_LOG_INTERVAL`], with their count.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    since_last: u64,
}

impl RefusalLog {
    fn refused(&mut self, limit: usize) {
        self.since_last += 1;
        if self.last.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL) {
            tracing::warn!(
                limit,
                refused = self.since_last,
                "connection limit reached; refusing new connections with 503"
            );
            self.last = Some(Instant::now());
            self.since_last = 0;
        }
    }
}

/// What the socket wrapper needs to know from the rest of the connection.
#[derive(Default)]
struct ConnState {
    /// A request head has arrived and its response body is not finished.
    serving: AtomicBool,
    /// Shutdown: close the connection when nothing is being served.
    draining: AtomicBool,
}

// The connection, its service and its socket wrapper run in one task, so
// relaxed atomics suffice (they only need to be `Sync` for the service).
impl ConnState {
    fn serving(&self) -> bool {
        self.serving.load(Ordering::Relaxed)
    }

    fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Marks a connection as serving a request for as long as it lives: created
/// when hyper hands us a request head, dropped with the response body.
struct Serving(Arc<ConnState>);

impl Serving {
    fn start(state: &Arc<ConnState>) -> Self {
        state.serving.store(true, Ordering::Relaxed);
        Self(state.clone())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.serving.store(false, Ordering::Relaxed);
    }
}

/// A response body that keeps its connection marked as serving until hyper
/// has taken its last frame.
struct ServedBody {
    inner: Body,
    _serving: Serving,
}

impl http_body::Body for ServedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One accepted connection, served until it closes, times out or is drained.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: HttpLimits,
    mut drain: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let state = Arc::new(ConnState::default());
    let io = TimedIo::new(stream, limits, state.clone());
    let service_state = state.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let serving = Serving::start(&service_state);
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await?;
            Ok::<_, std::convert::Infallible>(response.map(|inner| ServedBody {
                inner,
                _serving: serving,
            }))
        }
    });
    let mut builder = http1::Builder::new();
    // Our own deadlines (TimedIo) replace hyper's, which has no idle timeout.
    builder.header_read_timeout(None);
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));
    let draining = async move {
        // An error means serve() is gone, which also means stop.
        let _ = drain.wait_for(|drain| *drain).await;
    };
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = draining => {
            state.draining.store(true, Ordering::Relaxed);
            // Finish the request in flight, if any, with `Connection: close`;
            // TimedIo ends the connection when nothing is being served.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection closed with an error");
    }
}

/// The answer to a connection over the limit: written at once, without
/// waiting for the request, then the connection is closed.
async fn refuse(mut stream: TcpStream, _slot: OwnedSemaphorePermit) {
    let answer = over_capacity_answer();
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut discard = [0u8; 4096];
        while stream.read(&mut discard).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

/// Retry-After of the 503 to a connection over the limit.
const OVER_CAPACITY_RETRY_AFTER_SECS: u64 = 1;

fn over_capacity_answer() -> String {
    static BODY: LazyLock<String> = LazyLock::new(|| {
        let error = Error::new(
            ErrorKind::Unavailable,
            "the server has too many open connections; retry later",
        )
        .with_reason(Reason::Overloaded);
        serde_json::to_string(&ErrorBody::of(&error)).unwrap_or_else(|_| {
            let (_, code) = status_and_code(ErrorKind::Unavailable);
            let reason = Reason::Overloaded.as_str();
            format!(
                r#"{{"code":{code},"details":[{{"@type":"{ERROR_INFO_TYPE}","reason":"{reason}","domain":"{ERROR_DOMAIN}","metadata":{{}}}}],"message":"unavailable"}}"#
            )
        })
    });
    let (status, _) = status_and_code(ErrorKind::Unavailable);
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: {OVER_CAPACITY_RETRY_AFTER_SECS}\r\nconnection: close\r\nx-request-id: {}\r\n\r\n{}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        BODY.len(),
        uuid::Uuid::new_v4(),
        *BODY,
    )
}

/// Where a connection is in its life, as far as deadlines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head: the header-read deadline.
    Head,
    /// Serving a request: no deadline here.
    Serving,
    /// Between requests: the keep-alive deadline.
    Idle,
}

/// A socket with the header-read and keep-alive deadlines (see the module
/// documentation). Reads past a deadline fail with `TimedOut`; while draining,
/// reads outside a request end the connection.
struct TimedIo {
    stream: TcpStream,
    state: Arc<ConnState>,
    limits: HttpLimits,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
}

impl TimedIo {
    fn new(stream: TcpStream, limits: HttpLimits, state: Arc<ConnState>) -> Self {
        Self {
            stream,
            state,
            limits,
            phase: Phase::Head,
            deadline: Box::pin(tokio::time::sleep_until(after(limits.header_read_timeout))),
        }
    }

    /// Follows the service: a request being served clears the deadline, the
    /// end of its response starts the keep-alive one.
    fn sync_phase(&mut self) {
        if self.state.serving() {
            self.phase = Phase::Serving;
        } else if self.phase == Phase::Serving {
            self.idle_from_now();
        }
    }

    fn idle_from_now(&mut self) {
        self.phase = Phase::Idle;
        let deadline = after(self.limits.keep_alive_timeout);
        self.deadline.as_mut().reset(deadline);
    }

    fn wrote(&mut self, n: usize) {
        // A response still being delivered to a slow reader is not idleness.
        if n > 0 && !self.state.serving() && self.phase != Phase::Head {
            self.idle_from_now();
        }
    }
}

/// `timeout` from now; a timeout too long to represent is "never" in practice.
fn after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 24 * 3600))
}

impl AsyncRead for TimedIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.sync_phase();
        if this.phase == Phase::Serving {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        if this.state.draining() {
            // Nothing in flight: end of stream, so shutdown need not wait.
            return Poll::Ready(Ok(()));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            let what = match this.phase {
                Phase::Head => "no complete request head within the header read timeout",
                _ => "idle for the keep-alive timeout",
            };
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if this.phase == Phase::Idle && buf.filled().len() > before {
            // The first byte of the next request: its head has its own deadline.
            this.phase = Phase::Head;
            let deadline = after(this.limits.header_read_timeout);
            this.deadline.as_mut().reset(deadline);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.stream).poll_write(cx, buf))?;
        this.wrote(n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.stream).poll_write_vectored(cx, bufs))?;
        this.wrote(n);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_over_capacity_answer_is_a_complete_503_in_the_error_format() {
        let answer = over_capacity_answer();
        let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{head}");
        assert!(head.contains("\r\ncontent-length: "), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.parse().ok())
            .expect("content-length");
        assert_eq!(length, body.len());
        assert!(head.contains("\r\nretry-after: 1\r\n"), "{head}");
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).expect("JSON body");
        assert_eq!(
            crate::error::check_error_body(503, &body),
            Ok(Reason::Overloaded),
            "{body}"
        );
        assert!(body["message"].as_str().is_some_and(|m| m.contains("too many")));
    }
}
