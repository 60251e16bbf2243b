//! Server lifecycle: graceful shutdown.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate_testkit::each_backend;

use crate::support::{Http, Server, tenant_with_admin};

/// A request that is in flight when SIGTERM arrives is finished and answered;
/// then the process exits cleanly.
#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits() {
    each_backend(|db| async move {
        let admin = tenant_with_admin(&db, "acme").await;
        // Request-start logs (debug) tell when the request is in flight.
        let mut server = Server::start_with_log(&db, "info,tower_http=debug").await;
        let addr = server.base.trim_start_matches("http://").to_owned();

        let body = r#"{"metadata":{"name":"late"},"spec":{"object_limits":{"site":{"maximum":1}}}}"#;
        let (first, rest) = body.split_at(20);
        let mut conn = TcpStream::connect(&addr).await.expect("connect");
        let head = format!(
            "POST /api/web/namespaces/system/quotas HTTP/1.1\r\nHost: {addr}\r\nAuthorization: APIToken {admin}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
            body.len()
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.flush().await.unwrap();
        server.wait_for_log("started processing request").await;

        server.signal("TERM").await;
        server.wait_for_log("SIGTERM received").await;
        // The server is shutting down; the request it already had completes.
        conn.write_all(rest.as_bytes()).await.unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("\"name\":\"late\""), "{response}");

        let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
            .await
            .expect("server exits after draining")
            .unwrap();
        assert!(status.success(), "{status:?}");
        assert!(TcpStream::connect(&addr).await.is_err(), "no longer accepting connections");
    })
    .await;
}

#[tokio::test]
async fn sigint_stops_an_idle_server_cleanly() {
    each_backend(|db| async move {
        let mut server = Server::start(&db).await;
        server.signal("INT").await;
        let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
            .await
            .expect("server exits")
            .unwrap();
        assert!(status.success(), "{status:?}");
    })
    .await;
}

/// Upper bound on waiting for something that should happen much sooner.
const PATIENCE: Duration = Duration::from_secs(15);

/// Reads until the server closes the connection; returns what it sent.
async fn read_until_closed(conn: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut chunk = [0u8; 4096];
        loop {
            match conn.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("read: {e}"),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "connection still open after {PATIENCE:?}");
    String::from_utf8_lossy(&seen).into_owned()
}

async fn wait_for_exit(server: &mut Server) {
    let status = tokio::time::timeout(PATIENCE, server.child.wait())
        .await
        .expect("server exits")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

const PARTIAL_HEAD: &str = "GET /healthz HTTP/1.1\r\nHost: tollgate\r\n";

/// The connection flags reach the server: a connection over
/// `--max-connections` gets the 503 error body; one that never finishes its
/// head is closed after `--header-read-timeout`, freeing its slot.
#[tokio::test]
async fn serve_limits_connections_and_header_time_as_configured() {
    each_backend(|db| async move {
        let server = Server::start_with(
            &db,
            "info",
            &["--max-connections", "1", "--header-read-timeout", "300ms"],
        )
        .await;
        let addr = server.base.trim_start_matches("http://").to_owned();
        let mut partial = TcpStream::connect(&addr).await.expect("connect");
        partial.write_all(PARTIAL_HEAD.as_bytes()).await.unwrap();

        let mut extra = TcpStream::connect(&addr).await.expect("connect");
        let refused = read_until_closed(&mut extra).await;
        assert!(refused.starts_with("HTTP/1.1 503 "), "{refused}");
        assert!(refused.contains("\r\nretry-after: 1\r\n"), "{refused}");
        let body: serde_json::Value =
            serde_json::from_str(refused.split_once("\r\n\r\n").expect("a body").1).expect("JSON");
        assert_eq!(body["code"], 14, "{body}");
        assert_eq!(
            tollgate_api::error::check_error_body(503, &body).map(|r| r.as_str()),
            Ok("OVERLOADED"),
            "{body}"
        );

        assert_eq!(
            read_until_closed(&mut partial).await,
            "",
            "closed without an answer"
        );
        // The slot is free again (once the server has noticed the close).
        let http = Http::new();
        let answered = tokio::time::timeout(PATIENCE, async {
            loop {
                if let Ok((200, _)) = http
                    .try_call("GET", &format!("{}/healthz", server.base), None, None)
                    .await
                {
                    break;
                }
            }
        })
        .await;
        assert!(answered.is_ok(), "/healthz never answered 200 again");
    })
    .await;
}

/// Idle and partial-header connections do not hold up shutdown (they used to
/// until the client left).
#[tokio::test]
async fn sigterm_does_not_wait_for_idle_or_partial_header_connections() {
    each_backend(|db| async move {
        // Timeouts far beyond PATIENCE: only shutdown can close these.
        let mut server = Server::start_with(
            &db,
            "info",
            &[
                "--header-read-timeout",
                "10m",
                "--keep-alive-timeout",
                "10m",
                "--shutdown-timeout",
                "10m",
            ],
        )
        .await;
        let addr = server.base.trim_start_matches("http://").to_owned();
        let mut partial = TcpStream::connect(&addr).await.expect("connect");
        partial.write_all(PARTIAL_HEAD.as_bytes()).await.unwrap();
        let mut idle = TcpStream::connect(&addr).await.expect("connect");
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: tollgate\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 12];
        idle.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");

        server.signal("TERM").await;
        wait_for_exit(&mut server).await;
        assert_eq!(read_until_closed(&mut partial).await, "");
    })
    .await;
}

/// A request still running after `--shutdown-timeout` is cut off and the
/// process exits anyway.
#[tokio::test]
async fn sigterm_gives_up_on_requests_still_running_after_the_shutdown_timeout() {
    each_backend(|db| async move {
        let admin = tenant_with_admin(&db, "acme").await;
        let mut server =
            Server::start_with(&db, "info,tower_http=debug", &["--shutdown-timeout", "500ms"]).await;
        let addr = server.base.trim_start_matches("http://").to_owned();
        // A request whose body never completes stays in flight (until the
        // 30 s request timeout, far beyond PATIENCE).
        let mut conn = TcpStream::connect(&addr).await.expect("connect");
        let head = format!(
            "POST /api/web/namespaces/system/quotas HTTP/1.1\r\nHost: {addr}\r\nAuthorization: APIToken {admin}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"metadata\""
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        server.wait_for_log("started processing request").await;

        server.signal("TERM").await;
        wait_for_exit(&mut server).await;
        assert_eq!(read_until_closed(&mut conn).await, "", "cut off without an answer");
    })
    .await;
}
