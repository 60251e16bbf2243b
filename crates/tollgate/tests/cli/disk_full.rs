//! A real full disk under the embedded database: `tollgate serve` on a small
//! tmpfs that a filler file fills up. Writes get 503 and the server says it
//! is not ready; once the filler is deleted, the next write succeeds without
//! a restart. Mounting needs root: the test runs when
//! `TOLLGATE_TEST_DISK_FULL=1` (`.ci/run` sets it) and fails loudly if the
//! mount is then impossible; without the variable it says it is skipped.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tollgate_testkit::TestDatabase;

use crate::support::{Http, Server, tenant_with_admin};

/// Names the variable that enables this test.
const VAR: &str = "TOLLGATE_TEST_DISK_FULL";

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mounted(PathBuf);

impl Mounted {
    fn tmpfs(at: &Path, size: &str) -> Self {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status();
        match status {
            Ok(s) if s.success() => Self(at.to_path_buf()),
            other => panic!(
                "{VAR} is set but a tmpfs cannot be mounted at {} ({other:?}); run as root",
                at.display()
            ),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes zeros to `path` until the disk refuses.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).and_then(|()| file.sync_data()).is_ok() {}
}

fn batch(prefix: &str, n: usize) -> Value {
    let now = jiff::Timestamp::now().to_string();
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"id": format!("{prefix}-{i}"), "metric_label": "lb_requests", "object_name": format!("lb-{}", i % 7),
                   "quantity": 1000, "timestamp": now})
        })
        .collect();
    json!({ "events": events })
}

#[tokio::test]
async fn a_full_disk_answers_503_and_writes_resume_once_space_is_freed() {
    if std::env::var(VAR).is_err() {
        eprintln!(
            "skipped: set {VAR}=1 to fill a real (tmpfs) disk under the server; it needs root (.ci/run sets it)"
        );
        return;
    }
    let mount_point = tempfile::tempdir().unwrap();
    let mounted = Mounted::tmpfs(mount_point.path(), "16m");
    let db = TestDatabase::Sqlite {
        dir: tempfile::tempdir_in(&mounted.0).unwrap(),
    };
    let admin = tenant_with_admin(&db, "acme").await;
    let server = Server::start(&db).await;
    let http = Http::new();
    let events = format!("{}/api/data/namespaces/system/usage/events", server.base);
    let readyz = format!("{}/readyz", server.base);
    let (status, body) = http
        .call("POST", &events, Some(&admin), Some(batch("first", 100)))
        .await;
    assert_eq!((status, body["accepted"].clone()), (200, json!(100)), "{body}");

    let filler = mounted.0.join("filler");
    fill(&filler);
    // Batches until one finds no room (the log may still have some).
    let mut refused = None;
    for b in 0..200 {
        let body = batch(&format!("b{b}"), 500);
        let (status, answer) = http.call("POST", &events, Some(&admin), Some(body.clone())).await;
        if status == 200 {
            continue;
        }
        assert_eq!((status, answer["code"].clone()), (503, json!(14)), "{answer}");
        assert_eq!(
            tollgate_api::error::check_error_body(status, &answer).map(|r| r.as_str()),
            Ok("UNAVAILABLE")
        );
        refused = Some(body);
        break;
    }
    let refused = refused.expect("the full disk refused a batch");
    let (status, answer) = http.call("GET", &readyz, None, None).await;
    assert_eq!((status, answer["code"].clone()), (503, json!(14)), "{answer}");
    assert_eq!(
        tollgate_api::error::check_error_body(status, &answer).map(|r| r.as_str()),
        Ok("NOT_READY")
    );
    // Reads still work.
    let (status, _) = http
        .call(
            "GET",
            &format!("{}/api/web/namespaces/system/quota/usage", server.base),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200);

    std::fs::remove_file(&filler).unwrap();
    // Nothing of the refused batch was kept: resent, every event is new.
    let (status, body) = http.call("POST", &events, Some(&admin), Some(refused)).await;
    assert_eq!(
        (status, body["accepted"].clone(), body["duplicates"].clone()),
        (200, json!(500), json!(0)),
        "{body}"
    );
    let (status, answer) = http.call("GET", &readyz, None, None).await;
    assert_eq!(
        (status, answer["status"].clone()),
        (200, json!("ready")),
        "{answer}"
    );
    drop(server);
    drop(db);
}
