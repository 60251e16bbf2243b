//! `tollgate webhook` and the webhooks job through the binary: an operator
//! endpoint for one tenant, refused on loopback without
//! `--webhook-allow-private`, receiving a real event from `jobs run
//! webhooks`, listed, its deliveries shown and one sent again.

use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_testkit::each_backend;

use crate::support::{Http, Server, expect_ok, tenant_with_admin, tollgate};

/// A receiver on loopback answering 200 to every request; collects the
/// raw requests.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then the body by its Content-Length.
                loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            seen.lock().unwrap().push(text);
                            break;
                        }
                    }
                }
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (url, got)
}

#[tokio::test]
async fn the_operator_manages_endpoints_and_the_job_delivers_to_them() {
    each_backend(|db| async move {
        let admin = tenant_with_admin(&db, "acme").await;
        let (url, got) = receiver().await;
        let refused = tollgate(&db, &["webhook", "create", "--url", &url, "--tenant", "acme"]).await;
        assert!(!refused.ok && refused.stderr.contains("--webhook-allow-private"), "{}", refused.stderr);
        let created = expect_ok(
            tollgate(
                &db,
                &["webhook", "create", "--url", &url, "--tenant", "acme", "--events", "payment_method.changed", "--webhook-allow-private"],
            )
            .await,
        );
        assert!(created.contains("whsec_"), "{created}");
        let id = created.split_whitespace().find(|w| w.starts_with("ep_")).unwrap().to_owned();
        let listed = expect_ok(tollgate(&db, &["webhook", "list", "--tenant", "acme"]).await);
        assert!(listed.contains(&id) && listed.contains("acme") && listed.contains("payment_method.changed"), "{listed}");

        // A card added through the API (the server delivers nothing: no jobs).
        let server = Server::start_with(&db, "info", &["--no-jobs"]).await;
        let (status, body) = Http::new()
            .call(
                "POST",
                &format!("{}/api/web/namespaces/system/billing/payment_methods", server.base),
                Some(&admin),
                Some(json!({"token": "tok-ok-0001", "contact": {"address1": "1 Main St", "city": "Paris", "country": "FR"}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let ran = expect_ok(tollgate(&db, &["jobs", "run", "webhooks", "--webhook-allow-private"]).await);
        assert_eq!(ran.trim(), "webhooks: 1 webhook delivery attempt made");
        {
            let got = got.lock().unwrap();
            assert_eq!(got.len(), 1);
            assert!(got[0].contains("webhook-signature: v1,") && got[0].contains("\"type\":\"payment_method.changed\""), "{}", got[0]);
        }
        let deliveries = expect_ok(tollgate(&db, &["webhook", "deliveries", &id]).await);
        assert!(deliveries.contains("DELIVERED") && deliveries.contains("payment_method.changed"), "{deliveries}");
        let dlv = deliveries.split_whitespace().find(|w| w.starts_with("dlv_")).unwrap().to_owned();
        expect_ok(tollgate(&db, &["webhook", "redeliver", &id, &dlv]).await);
        expect_ok(tollgate(&db, &["jobs", "run", "webhooks", "--webhook-allow-private"]).await);
        assert_eq!(got.lock().unwrap().len(), 2, "sent again");
        let rotated = expect_ok(tollgate(&db, &["webhook", "rotate-secret", &id]).await);
        assert!(rotated.contains("whsec_"), "{rotated}");
        expect_ok(tollgate(&db, &["webhook", "delete", &id]).await);
        let listed = expect_ok(tollgate(&db, &["webhook", "list"]).await);
        assert!(!listed.contains(&id), "{listed}");
        drop(server);
    })
    .await;
}
