//! Usage events: exactly-once ingestion, hourly buckets, daily summaries, replay.

use std::sync::Arc;
use tollgate_domain::ids::TenantId;

use jiff::SignedDuration;
use rust_decimal::Decimal;
use tollgate_domain::catalog::Aggregation;
use tollgate_domain::metering::UsageEvent;
use tollgate_domain::names::Name;
use tollgate_store::{Aggregations, BucketFilter, Store};
use tollgate_testkit::each_backend;

use crate::{name, open, t, tenant};

fn aggregations() -> Aggregations {
    Aggregations::from([
        ("requests".to_string(), Aggregation::Sum),
        ("vcpus".to_string(), Aggregation::Max),
        ("version".to_string(), Aggregation::Latest),
    ])
}

fn ev(id: &str, metric: &str, q: &str, at: &str) -> UsageEvent {
    UsageEvent {
        id: id.into(),
        namespace: Name::system(),
        metric_label: metric.into(),
        object_name: "lb-1".into(),
        deployment: String::new(),
        container: String::new(),
        quantity: q.parse().unwrap(),
        at: t(at),
        properties: Default::default(),
    }
}

fn all(from: &str, to: &str) -> BucketFilter<'static> {
    BucketFilter {
        from: t(from),
        to: t(to),
        ..Default::default()
    }
}

async fn quantities(store: &dyn Store, tenant: &TenantId) -> Vec<(String, String, Decimal, i64)> {
    store
        .buckets(tenant, &all("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"))
        .await
        .unwrap()
        .into_iter()
        .map(|(k, b)| (k.hour.to_string(), k.metric_label, b.quantity, b.events))
        .collect()
}

#[tokio::test]
async fn events_count_once_whatever_is_resent() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let now = t("2026-11-20T12:00:00Z");
        let batch = [
            ev("e1", "requests", "10", "2026-11-20T09:05:00Z"),
            ev("e2", "requests", "2.5", "2026-11-20T09:55:00Z"),
            ev("e1", "requests", "999", "2026-11-20T09:05:00Z"), // repeated in the batch
            ev("e3", "requests", "1", "2026-11-20T10:00:00Z"),
        ];
        let new = store.ingest(&a.id, &batch, &aggregations(), now).await.unwrap();
        assert_eq!(new, [true, true, false, true]);
        // The same batch again, as after a crash before the reply: all duplicates.
        let again = store.ingest(&a.id, &batch, &aggregations(), now).await.unwrap();
        assert_eq!(again, [false, false, false, false]);
        // Stored and new events in one batch: only the new ones count (the
        // stored one sits after a new one, so a partial insert would show).
        let mixed = [
            ev("e4", "requests", "4", "2026-11-20T10:10:00Z"),
            ev("e2", "requests", "2.5", "2026-11-20T09:55:00Z"),
            ev("e5", "requests", "5", "2026-11-20T10:20:00Z"),
        ];
        let new = store.ingest(&a.id, &mixed, &aggregations(), now).await.unwrap();
        assert_eq!(new, [true, false, true]);
        let q = quantities(&*store, &a.id).await;
        assert_eq!(
            q,
            [
                (
                    "2026-11-20T09:00:00Z".into(),
                    "requests".into(),
                    "12.5".parse().unwrap(),
                    2
                ),
                (
                    "2026-11-20T10:00:00Z".into(),
                    "requests".into(),
                    "10".parse().unwrap(),
                    3
                ),
            ]
        );
        // The raw events stored are exactly the five counted: a replay
        // from them rebuilds the same buckets.
        let stats = store
            .replay(&a.id, &aggregations(), "operator", now)
            .await
            .unwrap();
        assert_eq!((stats.events, stats.buckets), (5, 2));
        assert_eq!(quantities(&*store, &a.id).await, q);
        // Ids are per tenant.
        let b = tenant(&*store, "bravo").await;
        assert_eq!(
            store
                .ingest(&b.id, &batch[..1], &aggregations(), now)
                .await
                .unwrap(),
            [true]
        );
    })
    .await;
}

#[tokio::test]
async fn each_meter_aggregates_its_own_way_in_any_order() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let now = t("2026-11-20T12:00:00Z");
        let events = [
            ev("v1", "vcpus", "4", "2026-11-20T09:10:00Z"),
            ev("v2", "vcpus", "8", "2026-11-20T09:20:00Z"),
            ev("v3", "vcpus", "2", "2026-11-20T09:30:00Z"),
            ev("s1", "version", "3", "2026-11-20T09:40:00Z"),
            ev("s2", "version", "7", "2026-11-20T09:50:00Z"),
            ev("s0", "version", "5", "2026-11-20T09:45:00Z"),
        ];
        // Late and out of order: newest first, one at a time.
        for e in events.iter().rev() {
            store
                .ingest(&a.id, std::slice::from_ref(e), &aggregations(), now)
                .await
                .unwrap();
        }
        let q = quantities(&*store, &a.id).await;
        assert_eq!(q[0].1, "vcpus");
        assert_eq!(q[0].2, Decimal::from(8), "max");
        assert_eq!(q[1].1, "version");
        assert_eq!(q[1].2, Decimal::from(7), "the value of the latest event");
        assert_eq!(q[1].3, 3);
    })
    .await;
}

#[tokio::test]
async fn replay_rebuilds_identical_buckets() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let now = t("2026-11-30T00:00:00Z");
        let mut events = Vec::new();
        for i in 0..300u32 {
            let at = t("2026-11-20T00:00:00Z") + SignedDuration::from_mins(i64::from(i * 7));
            let metric = ["requests", "vcpus", "version"][(i % 3) as usize];
            let mut e = ev(
                &format!("e{i}"),
                metric,
                &format!("{}.{}", i % 17, i % 10),
                &at.to_string(),
            );
            e.object_name = format!("lb-{}", i % 4);
            e.namespace = if i % 5 == 0 { name("shop") } else { Name::system() };
            events.push(e);
        }
        for chunk in events.chunks(37) {
            store.ingest(&a.id, chunk, &aggregations(), now).await.unwrap();
        }
        let before = store
            .buckets(&a.id, &all("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"))
            .await
            .unwrap();
        let stats = store
            .replay(&a.id, &aggregations(), "operator", t("2026-11-21T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!((stats.events, stats.buckets), (300, before.len() as u64));
        // The replay is audited: who, when, and what it rebuilt.
        let audit = store.audit(Some(&a.id), 1).await.unwrap();
        assert_eq!(
            (audit[0].action.as_str(), audit[0].actor.as_str(), audit[0].at),
            ("usage.replay", "operator", t("2026-11-21T00:00:00Z"))
        );
        assert_eq!(
            audit[0].after.as_deref(),
            Some(format!(r#"{{"events":300,"hourly_buckets":{}}}"#, before.len()).as_str())
        );
        let after = store
            .buckets(&a.id, &all("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(before, after);
    })
    .await;
}

#[tokio::test]
async fn buckets_are_filtered_by_time_namespace_metric_and_object() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let mut shop = ev("x1", "requests", "5", "2026-11-20T09:00:00Z");
        shop.namespace = name("shop");
        let mut other = ev("x2", "requests", "7", "2026-11-20T10:30:00Z");
        other.object_name = "lb-2".into();
        let events = [shop, other, ev("x3", "vcpus", "1", "2026-11-20T11:00:00Z")];
        store
            .ingest(&a.id, &events, &aggregations(), t("2026-11-21T00:00:00Z"))
            .await
            .unwrap();
        let count = |f: BucketFilter<'static>| {
            let store = store.clone();
            let id = a.id.clone();
            async move { store.buckets(&id, &f).await.unwrap().len() }
        };
        let window = all("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z");
        assert_eq!(count(window.clone()).await, 3);
        assert_eq!(
            count(BucketFilter {
                namespace: Some("shop"),
                ..window.clone()
            })
            .await,
            1
        );
        assert_eq!(
            count(BucketFilter {
                metric_label: Some("vcpus"),
                ..window.clone()
            })
            .await,
            1
        );
        assert_eq!(
            count(BucketFilter {
                object_name: Some("lb-2"),
                ..window.clone()
            })
            .await,
            1
        );
        // [from, to): the 11:00 hour is outside a window ending at 11:00.
        assert_eq!(
            count(all("2026-11-20T09:00:00Z", "2026-11-20T11:00:00Z")).await,
            2
        );
        let b = tenant(&*store, "bravo").await;
        assert!(store.buckets(&b.id, &window).await.unwrap().is_empty());
    })
    .await;
}

/// Concurrent batches through separate pools count every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_overlapping_batches_count_once() {
    each_backend(|db| async move {
        let stores: Vec<Arc<dyn Store>> = vec![open(&db).await, open(&db).await];
        let a = tenant(&*stores[0], "acme").await;
        let events: Vec<UsageEvent> = (0..200)
            .map(|i| ev(&format!("e{i}"), "requests", "1", "2026-11-20T09:30:00Z"))
            .collect();
        let mut tasks = Vec::new();
        for w in 0..8usize {
            let store = stores[w % 2].clone();
            let id = a.id.clone();
            // Overlapping slices: every event is sent by several workers.
            let slice: Vec<UsageEvent> = events[(w * 20)..(w * 20 + 60).min(200)].to_vec();
            tasks.push(tokio::spawn(async move {
                store
                    .ingest(&id, &slice, &aggregations(), t("2026-11-21T00:00:00Z"))
                    .await
                    .unwrap()
            }));
        }
        let mut new = 0;
        for task in tasks {
            new += task.await.unwrap().iter().filter(|n| **n).count();
        }
        assert_eq!(new, 200);
        let q = quantities(&*stores[1], &a.id).await;
        assert_eq!((q[0].2, q[0].3), (Decimal::from(200), 200));
    })
    .await;
}

/// What `object_usage` must say: computed from every hourly bucket in range.
async fn usage_from_buckets(
    store: &dyn Store,
    tenant: &TenantId,
    from: jiff::Timestamp,
    to: jiff::Timestamp,
) -> Vec<(
    tollgate_domain::metering::ObjectKey,
    tollgate_domain::metering::ObjectUsage,
)> {
    let buckets = store
        .buckets(
            tenant,
            &BucketFilter {
                from,
                to,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    tollgate_domain::metering::object_usage(buckets.iter().map(|(k, b)| (k, b)))
        .into_iter()
        .collect()
}

/// Day summaries kept by ingestion (late and out-of-order events, several
/// deployments and containers, all three aggregations), rebuilt by replay,
/// and built for old data when the store opens, always agree with the
/// hourly buckets over any range.
#[tokio::test]
async fn day_summaries_agree_with_the_hours_over_any_range() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let a = tenant(&*store, "acme").await;
        let base = t("2026-11-01T00:00:00Z");
        // A deterministic pseudo-random spread over 5 days.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let metrics = ["requests", "vcpus", "version"];
        let mut events = Vec::new();
        for i in 0..600 {
            let mut e = ev(
                &format!("e{i}"),
                metrics[next(3) as usize],
                &format!("{}", next(50)),
                "2026-11-01T00:00:00Z",
            );
            e.at = base + SignedDuration::from_secs((next(5 * 86_400)) as i64);
            e.object_name = format!("o{}", next(3));
            e.deployment = format!("d{}", next(2));
            e.container = format!("c{}", next(2));
            events.push(e);
        }
        let now = t("2026-11-10T00:00:00Z");
        for batch in events.chunks(37) {
            store.ingest(&a.id, batch, &aggregations(), now).await.unwrap();
        }
        let ranges = [
            ("2026-11-01T00:00:00Z", "2026-11-06T00:00:00Z"),
            ("2026-11-01T07:00:00Z", "2026-11-05T13:00:00Z"),
            ("2026-11-02T00:00:00Z", "2026-11-02T05:00:00Z"),
            ("2026-11-02T23:00:00Z", "2026-11-04T01:00:00Z"),
            ("2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z"),
        ];
        let check = |label: &'static str, store: Arc<dyn Store>| {
            let tenant = a.id.clone();
            async move {
                for (from, to) in ranges {
                    let filter = BucketFilter {
                        from: t(from),
                        to: t(to),
                        ..Default::default()
                    };
                    // Each object's quantity under its meter's aggregation (a
                    // day's peak is kept for sum and max meters only).
                    let quantities = |usage: Vec<(
                        tollgate_domain::metering::ObjectKey,
                        tollgate_domain::metering::ObjectUsage,
                    )>| {
                        usage
                            .into_iter()
                            .map(|(k, u)| {
                                let agg = aggregations().of(&k.metric_label);
                                (k, u.quantity(agg))
                            })
                            .collect::<Vec<_>>()
                    };
                    let want = quantities(usage_from_buckets(&*store, &tenant, t(from), t(to)).await);
                    assert!(!want.is_empty(), "{label}: {from} .. {to} has usage");
                    assert_eq!(
                        quantities(store.object_usage(&tenant, &filter).await.unwrap()),
                        want,
                        "{label}: {from} .. {to}"
                    );
                }
                let one = BucketFilter {
                    from: t(ranges[1].0),
                    to: t(ranges[1].1),
                    metric_label: Some("vcpus"),
                    object_name: Some("o1"),
                    ..Default::default()
                };
                let got = store.object_usage(&tenant, &one).await.unwrap();
                assert!(
                    got.iter()
                        .all(|(k, _)| k.metric_label == "vcpus" && k.object_name == "o1"),
                    "{label}: filters apply: {got:?}"
                );
            }
        };
        check("ingested", store.clone()).await;
        store
            .replay(&a.id, &aggregations(), "operator", t("2026-11-21T00:00:00Z"))
            .await
            .unwrap();
        check("replayed", store.clone()).await;
        // A database from before day summaries: they are built on open.
        let location = crate::location(&db);
        match &location {
            tollgate_store::Location::SqliteDir(dir) => {
                let url = format!(
                    "sqlite://{}",
                    dir.join(tollgate_store::sqlite::FILE_NAME).display()
                );
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                sqlx::query("DELETE FROM usage_daily")
                    .execute(&pool)
                    .await
                    .unwrap();
                sqlx::query("INSERT INTO maintenance (task) VALUES ('build-daily-usage')")
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
            tollgate_store::Location::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::query("DELETE FROM usage_daily")
                    .execute(&pool)
                    .await
                    .unwrap();
                sqlx::query("INSERT INTO maintenance (task) VALUES ('build-daily-usage')")
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
        }
        let reopened = open(&db).await;
        check("built on open", reopened).await;
    })
    .await;
}

#[tokio::test]
async fn purged_events_are_gone_and_a_replay_keeps_the_hours_before_the_mark() {
    each_backend(|db| async move {
        let store = open(&db).await;
        let (a, b) = (tenant(&*store, "acme").await, tenant(&*store, "globex").await);
        let aggregations = aggregations().with_unique("users", "user");
        // 400 events over four days, every sixth a unique-count event; the
        // same for globex.
        let base = t("2026-11-01T00:00:00Z");
        let events: Vec<UsageEvent> = (0..400u32)
            .map(|i| {
                let at = base + SignedDuration::from_mins(i64::from(i) * 14);
                let metric =
                    ["requests", "vcpus", "version", "requests", "requests", "users"][(i % 6) as usize];
                let mut e = ev(&format!("e{i}"), metric, &format!("{}", i % 9), &at.to_string());
                e.object_name = format!("lb-{}", i % 3);
                if metric == "users" {
                    e.properties.insert("user".into(), format!("u{}", i % 11));
                }
                e
            })
            .collect();
        let now = t("2026-11-30T00:00:00Z");
        for id in [&a.id, &b.id] {
            for chunk in events.chunks(64) {
                store.ingest(id, chunk, &aggregations, now).await.unwrap();
            }
        }
        let everything = all("2026-10-01T00:00:00Z", "2026-12-01T00:00:00Z");
        let snapshot = |store: Arc<dyn Store>, id: TenantId| async move {
            let everything = all("2026-10-01T00:00:00Z", "2026-12-01T00:00:00Z");
            (
                store.buckets(&id, &everything).await.unwrap(),
                store.daily_usage(&id, &everything).await.unwrap(),
                store
                    .distinct_counts(&id, &everything, tollgate_store::DistinctBy::Hour)
                    .await
                    .unwrap(),
            )
        };
        let before = snapshot(store.clone(), a.id.clone()).await;
        assert_eq!(store.usage_floor(&a.id).await.unwrap(), Default::default());
        let retention_of = |store: Arc<dyn Store>, id: TenantId| async move {
            store
                .event_retention()
                .await
                .unwrap()
                .into_iter()
                .find(|r| r.tenant_id == id)
                .unwrap()
        };
        assert_eq!(store.event_retention().await.unwrap().len(), 2);
        let acme = retention_of(store.clone(), a.id.clone()).await;
        assert_eq!(acme.oldest_event, Some(base));
        assert_eq!(acme.latest_invoice_start, None);

        // A cut inside an hour is taken down to the hour: a replay rebuilds
        // whole hours. Small batches until one comes back short.
        let cut = t("2026-11-03T05:30:00Z");
        let mark = t("2026-11-03T05:00:00Z");
        let gone = events.iter().filter(|e| e.at < mark).count() as u64;
        let mut purged = 0;
        loop {
            let n = store.purge_events(&a.id, cut, 50).await.unwrap();
            assert!(n <= 50);
            purged += n;
            if n < 50 {
                break;
            }
        }
        assert_eq!(purged, gone);
        assert_eq!(
            store.usage_floor(&a.id).await.unwrap().events_purged_before,
            Some(mark)
        );
        let oldest = retention_of(store.clone(), a.id.clone())
            .await
            .oldest_event
            .unwrap();
        assert!(
            oldest >= mark && oldest < mark + SignedDuration::from_mins(14),
            "{oldest}"
        );
        // The rollups are untouched, and globex is untouched.
        assert_eq!(snapshot(store.clone(), a.id.clone()).await, before);
        assert_eq!(
            retention_of(store.clone(), b.id.clone()).await.oldest_event,
            Some(base)
        );
        assert_eq!(store.usage_floor(&b.id).await.unwrap().events_purged_before, None);

        // A replay rebuilds the hours from the mark on from the events left,
        // and keeps those before (and the day the mark falls in is whole).
        let stats = store
            .replay(&a.id, &aggregations, "operator", t("2026-11-21T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(stats.events, 400 - gone);
        assert_eq!(stats.rebuilt_from, Some(mark));
        assert_eq!(snapshot(store.clone(), a.id.clone()).await, before);
        let audit = store.audit(Some(&a.id), 1).await.unwrap();
        assert!(
            audit[0]
                .after
                .as_deref()
                .unwrap()
                .contains(r#""rebuilt_from":"2026-11-03T05:00:00Z""#),
            "{:?}",
            audit[0].after
        );
        assert_eq!(
            store.object_usage(&a.id, &everything).await.unwrap(),
            store.object_usage(&b.id, &everything).await.unwrap(),
            "the same usage as the tenant whose events were all kept"
        );

        // An event before the mark (its id was stored and is gone) is not
        // stored again, even by a caller that did not check the floor; one
        // after it still counts once.
        let late = ev("e0", "requests", "5", "2026-11-01T00:00:00Z");
        let fresh = ev("e-new", "requests", "5", "2026-11-04T00:00:00Z");
        assert_eq!(
            store
                .ingest(&a.id, &[late, fresh], &aggregations, now)
                .await
                .unwrap(),
            [false, true]
        );
        assert_eq!(
            store
                .buckets(&a.id, &all("2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z"))
                .await
                .unwrap(),
            before
                .0
                .iter()
                .filter(|(k, _)| k.hour == base)
                .cloned()
                .collect::<Vec<_>>(),
            "the hour of the refused event is as it was"
        );

        // The mark never goes down, and nothing more goes below it.
        assert_eq!(
            store
                .purge_events(&a.id, t("2026-11-02T00:00:00Z"), 50)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store.usage_floor(&a.id).await.unwrap().events_purged_before,
            Some(mark)
        );
    })
    .await;
}
