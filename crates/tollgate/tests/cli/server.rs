//! Server lifecycle: graceful shutdown.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate_testkit::each_backend;

use crate::support::{Server, tenant_with_admin};

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
