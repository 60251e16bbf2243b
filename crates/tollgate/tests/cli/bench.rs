//! `tollgate bench` runs end to end on a fresh scratch database (a smoke
//! test with tiny sizes: the figures are not looked at, only that every
//! suite gets through and prints its table).

use tokio::process::Command;

use crate::support::BIN;

async fn bench(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["--data-dir", "unused-bench-scratch"])
        .arg("bench")
        .args(args)
        .env_remove("TOLLGATE_DATABASE_URL")
        .env_remove("TOLLGATE_DATA_DIR")
        .output()
        .await
        .expect("run tollgate bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bench {args:?} failed\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn every_bench_suite_runs_on_a_fresh_database() {
    let quota = bench(&["--duration", "1s", "--warmup", "0s", "--connections", "4"]).await;
    assert!(
        quota.contains("quota/usage") && quota.contains("healthz") && quota.contains("RSS idle"),
        "{quota}"
    );
    let ingest = bench(&[
        "ingest",
        "--events",
        "4000",
        "--raw-rows",
        "2000",
        "--queries",
        "1",
        "--alerts",
        "2",
        "--properties",
        "50",
    ])
    .await;
    assert!(
        ingest.contains("POST usage/events")
            && ingest.contains("usage alerts")
            && ingest.contains("with properties (50 user ids)")
            && ingest.contains("a unique count of user_id")
            && ingest.contains("/console/usage (all events)")
            && ingest.contains("/console/operator/health")
            && ingest.contains("started again on this database: start to listening"),
        "{ingest}"
    );
    // Three months: the first month's raw events go once the second is
    // finalized, and the run checks the count it keeps against the store.
    let year = bench(&[
        "year",
        "--tenants",
        "3",
        "--events-per-month",
        "40",
        "--months",
        "3",
    ])
    .await;
    assert!(
        year.contains("raw events kept 120")
            && year.contains("deleted 120 in 3 batches")
            && year.contains("last / first")
            && year.contains("deletion batches")
            && year.contains("360 events ingested, 120 raw events kept")
            && year.contains("usage_details p50"),
        "{year}"
    );
}
