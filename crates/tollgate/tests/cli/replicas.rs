//! Several `tollgate serve` processes on one database never let usage pass a
//! limit.

use serde_json::json;
use tollgate_testkit::each_backend;

use crate::support::{Http, Server, tenant_with_admin};

const LIMIT: usize = 40;
const REQUESTS: usize = 240;
const TASKS: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_hammered_concurrently_grant_exactly_the_limit() {
    each_backend(|db| async move {
        let admin = tenant_with_admin(&db, "acme").await;
        let servers = [Server::start(&db).await, Server::start(&db).await];
        let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
        let http = Http::new();
        let (status, body) = http
            .call(
                "POST",
                &format!("{}/api/web/namespaces/system/quotas", bases[0]),
                Some(&admin),
                Some(json!({"metadata": {"name": "limit"}, "spec": {"object_limits": {"virtual_host": {"maximum": LIMIT}}}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");

        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let (http, admin, bases) = (http.clone(), admin.clone(), bases.clone());
            tasks.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in (t..REQUESTS).step_by(TASKS) {
                    let base = &bases[i % bases.len()];
                    let body = json!({"kind": "virtual_host", "amount": 1, "request_id": format!("req-{i}")});
                    let url = format!("{base}/api/web/namespaces/system/quota/reserve");
                    let (status, reply) = http.call("POST", &url, Some(&admin), Some(body)).await;
                    if status == 200 {
                        assert!(reply["current"].as_u64().unwrap() <= LIMIT as u64, "{reply}");
                    }
                    answers.push((i, status, reply));
                }
                answers
            }));
        }
        let mut granted = Vec::new();
        let mut refused = 0;
        for task in tasks {
            for (i, status, reply) in task.await.unwrap() {
                match status {
                    200 => granted.push((i, reply)),
                    429 => refused += 1,
                    other => panic!("unexpected status {other}: {reply}"),
                }
            }
        }
        let granted_count = granted.len();
        assert_eq!(granted_count, LIMIT);
        assert_eq!(refused, REQUESTS - LIMIT);
        for base in &bases {
            let (_, usage) =
                http.call("GET", &format!("{base}/api/web/namespaces/system/quota/usage"), Some(&admin), None).await;
            assert_eq!(usage["objects"]["virtual_host"]["usage"]["current"], LIMIT, "{base}");
        }
        // Replaying a granted request id on either replica returns its first
        // answer and changes nothing.
        let (i, first) = &granted[granted_count / 2];
        for base in &bases {
            let (status, reply) = http
                .call(
                    "POST",
                    &format!("{base}/api/web/namespaces/system/quota/reserve"),
                    Some(&admin),
                    Some(json!({"kind": "virtual_host", "amount": 1, "request_id": format!("req-{i}")})),
                )
                .await;
            assert_eq!(status, 200, "{reply}");
            assert_eq!(reply["replayed"], true);
            assert_eq!(reply["current"], first["current"]);
        }
        let (_, usage) =
            http.call("GET", &format!("{}/api/web/namespaces/system/quota/usage", bases[0]), Some(&admin), None).await;
        assert_eq!(usage["objects"]["virtual_host"]["usage"]["current"], LIMIT);
    })
    .await;
}
