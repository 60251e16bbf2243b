//! Bad input to the operator CLI is refused with a message naming the flag
//! or line, never stored: out-of-range times, control characters, and the
//! way out of a quota object that locks its tenant out.

use jiff::Timestamp;
use serde_json::json;
use tollgate_domain::quota::{Limit, QuotaKey, QuotaSpec};
use tollgate_domain::rate_limit::{RateLimit, RateUnit};
use tollgate_testkit::{TestDatabase, each_backend};

use crate::support::{expect_ok, store_quota, tenant_with_admin, tollgate};

/// Stores a quota object as an earlier Tollgate could: with an API limit of
/// rate 0, which the API refuses since.
async fn store_locking_quota(db: &TestDatabase, tenant: &str) {
    let key = |k: &str| QuotaKey::parse("k", k).unwrap();
    let mut spec = QuotaSpec::default();
    spec.object_limits.insert(key("virtual_host"), Limit::Max(5));
    spec.api_limits.insert(
        key("ves.io.schema.quota.API.Create"),
        RateLimit {
            rate: 0,
            burst: 0,
            unit: RateUnit::Second,
        },
    );
    spec.api_limits.insert(
        key("ves.io.schema.quota.API.Get"),
        RateLimit::new("k", 5, 0, RateUnit::Minute).unwrap(),
    );
    store_quota(db, tenant, "lock", spec).await;
}

#[tokio::test]
async fn an_operator_lists_and_deletes_a_quota_object_that_locks_a_tenant_out() {
    each_backend(|db| async move {
        tenant_with_admin(&db, "acme").await;
        let empty = expect_ok(tollgate(&db, &["quota", "list", "--tenant", "acme"]).await);
        assert_eq!(empty.trim(), "tenant acme has no quota objects");
        store_locking_quota(&db, "acme").await;

        let list = expect_ok(tollgate(&db, &["quota", "list", "--tenant", "acme"]).await);
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 4, "{list}");
        let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            words(lines[0]),
            ["QUOTA", "STATE", "MODIFIED", "LIMIT", "MAXIMUM", "NOTE"]
        );
        // One table: every row's limit starts under LIMIT, its note under NOTE.
        let limit_at = lines[0].find("LIMIT").unwrap();
        let note_at = lines[0].find("NOTE").unwrap();
        for (line, key) in lines[1..].iter().zip([
            "object_limits.virtual_host",
            "api_limits.ves.io.schema.quota.API.Create",
            "api_limits.ves.io.schema.quota.API.Get",
        ]) {
            assert!(line.starts_with("lock   enabled  "), "{list}");
            assert_eq!(line.find(key), Some(limit_at), "{list}");
        }
        assert!(lines[1].ends_with(" 5"), "{list}");
        assert_eq!(
            &lines[2][lines[2].find("rate 0").unwrap()..],
            format!(
                "rate 0 burst 0 per SECOND  IGNORED: \
                 api_limits.ves.io.schema.quota.API.Create.rate: must be -1 (unlimited) or between 1 \
                 and 2147483647, got 0; a rate of 0 would refuse every call"
            ),
            "{list}"
        );
        assert_eq!(lines[2].find("IGNORED"), Some(note_at), "{list}");
        assert!(lines[3].ends_with("rate 5 burst 0 per MINUTE"), "{list}");

        let deleted = expect_ok(tollgate(&db, &["quota", "delete", "--tenant", "acme", "lock"]).await);
        assert_eq!(deleted.trim(), "deleted quota object lock of tenant acme");
        let empty = expect_ok(tollgate(&db, &["quota", "list", "--tenant", "acme"]).await);
        assert_eq!(empty.trim(), "tenant acme has no quota objects");
        let audit = expect_ok(tollgate(&db, &["audit", "list", "--tenant", "acme"]).await);
        assert!(
            audit
                .lines()
                .any(|l| l.contains("operator") && l.contains("quota.delete") && l.contains("quota/lock")),
            "{audit}"
        );

        let again = tollgate(&db, &["quota", "delete", "--tenant", "acme", "lock"]).await;
        assert!(!again.ok && again.stderr.contains("lock"), "{}", again.stderr);
        let bad_name = tollgate(&db, &["quota", "delete", "--tenant", "acme", "Lock Me"]).await;
        assert!(
            !bad_name.ok && bad_name.stderr.contains("name: "),
            "{}",
            bad_name.stderr
        );
        let no_tenant = tollgate(&db, &["quota", "list", "--tenant", "nobody"]).await;
        assert!(
            !no_tenant.ok && no_tenant.stderr.contains("\"nobody\" does not exist"),
            "{}",
            no_tenant.stderr
        );
    })
    .await;
}

#[tokio::test]
async fn time_flags_outside_the_supported_range_are_refused() {
    each_backend(|db| async move {
        tenant_with_admin(&db, "acme").await;
        expect_ok(
            tollgate(
                &db,
                &[
                    "coupon",
                    "create",
                    "welcome",
                    "--title",
                    "Welcome",
                    "--percent",
                    "10",
                ],
            )
            .await,
        );
        for (args, expected) in [
            (
                vec!["tenant", "create", "old", "--since", "1e23"],
                "is outside the supported range",
            ),
            (
                vec!["tenant", "create", "old", "--since=-009999-01-02T01:59:59Z"],
                "is outside the supported range",
            ),
            (
                vec!["tenant", "create", "old", "--since", "1969-12-31T23:59:59Z"],
                "--since: must not be before 1970-01-01T00:00:00Z",
            ),
            (
                vec!["jobs", "run", "all", "--now", "9999-12-30T00:00:00Z"],
                "is outside the supported range",
            ),
            (
                vec![
                    "coupon",
                    "apply",
                    "--tenant",
                    "acme",
                    "welcome",
                    "--until",
                    "253402300800",
                ],
                "is outside the supported range",
            ),
            (
                vec!["jobs", "run", "all", "--invoice-grace", "100000years"],
                "--invoice-grace must be at most 3660d",
            ),
            (
                vec!["jobs", "run", "all", "--charge-retries", "1d,3d,1000000y"],
                "--charge-retries must be at most 3660d",
            ),
        ] {
            let out = tollgate(&db, &args).await;
            assert!(!out.ok, "{args:?} succeeded: {}", out.stdout);
            assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
        }
        let tenants = expect_ok(tollgate(&db, &["tenant", "list"]).await);
        assert!(!tenants.contains("old"), "{tenants}");
        // Unix seconds are accepted as the API accepts them.
        expect_ok(tollgate(&db, &["tenant", "create", "older", "--since", "1788220800"]).await);
    })
    .await;
}

#[tokio::test]
async fn titles_names_reasons_and_imported_events_refuse_control_characters() {
    each_backend(|db| async move {
        tenant_with_admin(&db, "acme").await;
        for (args, expected) in [
            (
                vec!["coupon", "create", "bell", "--title", "ding\u{7}", "--percent", "5"],
                "--title: must not contain control characters, found U+0007 at character 5",
            ),
            (
                vec!["coupon", "create", "lines", "--title", "two\nlines", "--percent", "5"],
                "--title: must not contain control characters, found U+000A",
            ),
            (
                vec!["token", "create", "--tenant", "acme", "--role", "admin", "--name", "ci\u{1b}[2J"],
                "--name: must not contain control characters, found U+001B",
            ),
            (
                vec!["transition", "reject", "00000000-0000-0000-0000-000000000000", "--reason", "no\u{7}"],
                "reason: must not contain control characters, found U+0007",
            ),
        ] {
            let out = tollgate(&db, &args).await;
            assert!(!out.ok, "{args:?} succeeded: {}", out.stdout);
            assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
        }
        let coupons = expect_ok(tollgate(&db, &["coupon", "list"]).await);
        assert_eq!(coupons.lines().count(), 1, "{coupons}");

        // NUL and other control characters in an imported file are per-event
        // rejections on both engines; the rest is imported.
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("usage.jsonl");
        let at = Timestamp::now().to_string();
        let lines = [
            json!({"id": "ok", "metric_label": "lb_requests", "quantity": 1, "timestamp": at}),
            json!({"id": "nul\u{0}", "metric_label": "lb_requests", "quantity": 1, "timestamp": at}),
            json!({"id": "o", "object_name": "lb\u{0}", "metric_label": "lb_requests", "quantity": 1, "timestamp": at}),
            json!({"id": "d", "deployment": "d\u{1}", "metric_label": "lb_requests", "quantity": 1, "timestamp": at}),
            json!({"id": "t", "metric_label": "lb_requests", "quantity": 1, "timestamp": "1e23"}),
        ];
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&jsonl, text).unwrap();
        let out = tollgate(&db, &["usage", "import", "--tenant", "acme", jsonl.to_str().unwrap()]).await;
        assert!(out.ok, "{}", out.stderr);
        assert!(
            out.stdout.contains("1 accepted, 0 duplicates, 4 rejected"),
            "{}",
            out.stdout
        );
        assert!(out.stderr.contains(":2: rejected: id: "), "{}", out.stderr);
        assert!(out.stderr.contains(":3: rejected: object_name: "), "{}", out.stderr);
        assert!(out.stderr.contains(":4: rejected: deployment: "), "{}", out.stderr);
        assert!(
            out.stderr.contains(":5: rejected: timestamp: \"1e23\" is outside the supported range"),
            "{}",
            out.stderr
        );
        let csv = dir.path().join("usage.csv");
        std::fs::write(
            &csv,
            format!("id,metric_label,quantity,timestamp,container\nc1,lb_requests,1,{at},web\u{0}\nc2,lb_requests,1,{at},web\n"),
        )
        .unwrap();
        let out = tollgate(&db, &["usage", "import", "--tenant", "acme", csv.to_str().unwrap()]).await;
        assert!(out.ok, "{}", out.stderr);
        assert!(out.stdout.contains("1 accepted, 0 duplicates, 1 rejected"), "{}", out.stdout);
        assert!(out.stderr.contains(":2: rejected: container: "), "{}", out.stderr);

        // Properties: a JSON object (a CSV column holds its text); values must
        // be strings (a per-event rejection); not an object: nothing imported.
        let lines = [
            json!({"id": "p1", "metric_label": "lb_requests", "quantity": 1, "timestamp": at, "properties": {"user_id": "u-1"}}),
            json!({"id": "p2", "metric_label": "lb_requests", "quantity": 1, "timestamp": at, "properties": {"user_id": 7}}),
        ];
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&jsonl, text).unwrap();
        let out = tollgate(&db, &["usage", "import", "--tenant", "acme", jsonl.to_str().unwrap()]).await;
        assert!(out.stdout.contains("1 accepted, 0 duplicates, 1 rejected"), "{}", out.stdout);
        assert!(out.stderr.contains(":2: rejected: properties.user_id: must be a string"), "{}", out.stderr);
        std::fs::write(
            &csv,
            format!("id,metric_label,quantity,timestamp,properties\np3,lb_requests,1,{at},\"{{\"\"user_id\"\": \"\"u-2\"\"}}\"\np4,lb_requests,1,{at},nope\n"),
        )
        .unwrap();
        let out = tollgate(&db, &["usage", "import", "--tenant", "acme", csv.to_str().unwrap()]).await;
        assert!(!out.ok, "{}", out.stdout);
        assert!(out.stderr.contains(":3: properties must be a JSON object"), "{}", out.stderr);
        std::fs::write(
            &csv,
            format!("id,metric_label,quantity,timestamp,properties\np3,lb_requests,1,{at},\"{{\"\"user_id\"\": \"\"u-2\"\"}}\"\n"),
        )
        .unwrap();
        let out = tollgate(&db, &["usage", "import", "--tenant", "acme", csv.to_str().unwrap()]).await;
        assert!(out.stdout.contains("1 accepted, 0 duplicates, 0 rejected"), "{}: {}", out.stdout, out.stderr);
    })
    .await;
}
