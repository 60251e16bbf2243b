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
        quota.contains("quota/usage")
            && quota.contains("healthz")
            && quota.contains("start to ready (/readyz answers 200)")
            && quota.contains("RSS idle"),
        "{quota}"
    );
    // `all` runs the quota, ingest and year suites in turn, then the goals
    // table; three months of year: the first month's raw events go once the
    // second is finalized, and the run checks the count it keeps against
    // the store.
    let all = bench(&[
        "all",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--connections",
        "4",
        "--events",
        "4000",
        "--raw-rows",
        "2000",
        "--queries",
        "2",
        "--alerts",
        "2",
        "--properties",
        "50",
        "--tenants",
        "3",
        "--events-per-month",
        "40",
        "--months",
        "3",
    ])
    .await;
    assert!(
        all.contains("POST quota/reserve")
            && all.contains("POST usage/events")
            && all.contains("usage alerts")
            && all.contains("with properties (50 user ids)")
            && all.contains("a unique count of user_id")
            && all.contains("/console/usage (all events)")
            && all.contains("/console/operator/health")
            && all.contains("started again on this database: start to ready"),
        "{all}"
    );
    assert!(
        all.contains("raw events kept 120")
            && all.contains("deleted 120 in 3 batches")
            && all.contains("last / first")
            && all.contains("deletion batches")
            && all.contains("360 events ingested, 120 raw events kept")
            && all.contains("usage_details p50"),
        "{all}"
    );
    // The goals table: every goal of the issue, each with a verdict.
    let table = all
        .split_once("tollgate bench all: sqlite")
        .map(|(_, table)| table)
        .unwrap_or_else(|| panic!("no goals table\n{all}"));
    for goal in [
        "GET quota/usage / GET /healthz",
        "POST quota/reserve / GET /healthz",
        "POST quota/reserve p99",
        "ingestion, events/s in batches of 1000",
        "ingestion / raw INSERT of the same rows",
        "usage_details p99",
        "current_usage p50",
        "slowest console page p50",
        "RSS idle",
        "RSS peak under the benchmark",
        "start to ready on the events' database",
        "year: deletion batch p99",
    ] {
        assert!(table.contains(goal), "{goal} is missing from\n{table}");
    }
    assert!(table.contains("of 13 goals met"), "{table}");
    assert!(
        table.contains("the report and start-up goals are stated at 10000000 events; this run had 4000"),
        "{table}"
    );
}
