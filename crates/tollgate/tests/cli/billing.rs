//! Catalogs, plan transitions and the audit trail through the binary.

use serde_json::json;
use tollgate_testkit::each_backend;

use crate::support::{Http, Server, expect_ok, tollgate};

const PLANS: &str = "/api/web/namespaces/system/usage_plans/custom_list";
const CURRENT: &str = "/api/web/namespaces/system/usage_plans/current";
const TRANSITION: &str = "/api/web/namespaces/system/billing/plan_transition";

async fn admin_on(db: &tollgate_testkit::TestDatabase, tenant: &str, plan: &str) -> String {
    expect_ok(tollgate(db, &["tenant", "create", tenant, "--plan", plan]).await);
    expect_ok(tollgate(db, &["token", "create", "--tenant", tenant, "--role", "admin"]).await)
        .trim()
        .to_owned()
}

fn titles(list: &serde_json::Value) -> Vec<String> {
    list["usage_plans"][0]["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_published_catalog_takes_effect_at_once_and_tenants_keep_their_version() {
    each_backend(|db| async move {
        let dir = tempfile::tempdir().unwrap();
        let shown = expect_ok(tollgate(&db, &["catalog", "show"]).await);
        assert!(
            shown.starts_with("# catalog version 1, from builtin"),
            "{}",
            &shown[..80]
        );
        let v2 = shown
            .split_once('\n')
            .unwrap()
            .1
            .replace("title = \"Teams\"", "title = \"Teams 2027\"");
        let good = dir.path().join("v2.toml");
        std::fs::write(&good, &v2).unwrap();
        let bad = dir.path().join("bad.toml");
        std::fs::write(
            &bad,
            v2.replace("flat_price_cents = 30000", "flat_price_cents = -1"),
        )
        .unwrap();

        let ok = expect_ok(tollgate(&db, &["catalog", "validate", good.to_str().unwrap()]).await);
        assert!(
            ok.contains("valid: 4 plans, 13 add-ons, 8 meters, default plan free"),
            "{ok}"
        );
        let refused = tollgate(&db, &["catalog", "validate", bad.to_str().unwrap()]).await;
        assert!(!refused.ok);
        let line = v2
            .lines()
            .position(|l| l.contains("flat_price_cents = 30000"))
            .unwrap()
            + 1;
        let expected = format!(
            "{}:{line}: plans[2].flat_price_cents: must be between 0",
            bad.display()
        );
        assert!(
            refused.stderr.contains(&expected),
            "{}\nexpected {expected}",
            refused.stderr
        );
        let refused = tollgate(&db, &["catalog", "publish", bad.to_str().unwrap()]).await;
        assert!(!refused.ok, "an invalid catalog is never published");

        let server = Server::start(&db).await;
        let http = Http::new();
        let admin = admin_on(&db, "acme", "team").await;
        let (_, before) = http
            .call("GET", &format!("{}{PLANS}", server.base), Some(&admin), None)
            .await;
        assert_eq!(titles(&before), ["Free", "Individual", "Teams", "Organization"]);

        let out = expect_ok(tollgate(&db, &["catalog", "publish", good.to_str().unwrap()]).await);
        assert!(out.contains("as catalog version 2"), "{out}");
        let (_, after) = http
            .call("GET", &format!("{}{PLANS}", server.base), Some(&admin), None)
            .await;
        assert_eq!(
            titles(&after),
            ["Free", "Individual", "Teams 2027", "Organization"]
        );
        // The tenant subscribed under version 1 keeps its plan as it was.
        let (_, current) = http
            .call("GET", &format!("{}{CURRENT}", server.base), Some(&admin), None)
            .await;
        assert_eq!(current["plans"][0]["title"], "Teams");
        let shown = expect_ok(tollgate(&db, &["catalog", "show"]).await);
        assert!(
            shown.starts_with("# catalog version 2, from "),
            "{}",
            &shown[..60]
        );
        let v1 = expect_ok(tollgate(&db, &["catalog", "show", "--version", "1"]).await);
        assert!(v1.contains("title = \"Teams\""));
        // What changed, by name and line by line.
        let diff = expect_ok(tollgate(&db, &["catalog", "diff", "1", "2"]).await);
        assert!(
            diff.contains("changed plan team\n  title: Teams → Teams 2027\n"),
            "{diff}"
        );
        assert!(
            diff.contains("--- v1\n+++ v2\n") && diff.contains("+title = \"Teams 2027\""),
            "{diff}"
        );
        let same = expect_ok(tollgate(&db, &["catalog", "diff", "2", "2"]).await);
        assert_eq!(same.trim(), "catalog versions 2 and 2 are the same");
        let missing = tollgate(&db, &["catalog", "diff", "1", "5"]).await;
        assert!(
            !missing.ok && missing.stderr.contains("catalog version 5 does not exist"),
            "{}",
            missing.stderr
        );
    })
    .await;
}

#[tokio::test]
async fn plan_transitions_run_with_the_cli_job_runner_and_operator_approval() {
    each_backend(|db| async move {
        let server = Server::start(&db).await;
        let http = Http::new();
        let base = server.base.clone();
        let admin = admin_on(&db, "acme", "free").await;
        let state_of = |id: String| {
            let http = http.clone();
            let url = format!("{base}/no_auth/namespaces/system/billing/plan_transition?id={id}");
            async move {
                http.call("GET", &url, None, None).await.1["state"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        };

        let (status, body) = http
            .call(
                "POST",
                &format!("{base}{TRANSITION}"),
                Some(&admin),
                Some(json!({"new_plan": "team", "payload": {"payment_provider_token": "tok-visa-4242"}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        assert_eq!(state_of(id.clone()).await, "STATE_CREATING");
        let ran = expect_ok(tollgate(&db, &["jobs", "run", "transitions"]).await);
        assert!(
            ran.contains("transitions: 1 transition finished or failed"),
            "{ran}"
        );
        assert_eq!(state_of(id.clone()).await, "STATE_FINISHED");
        let (_, current) = http
            .call("GET", &format!("{base}{CURRENT}"), Some(&admin), None)
            .await;
        assert_eq!(current["plans"][0]["name"], "team");

        let org = json!({"new_plan": "organization", "payload": {
            "domain": "acme.com",
            "billing_address": {"address1": "1 Main St", "city": "Boston", "country": "US"}
        }});
        let (status, body) = http
            .call("POST", &format!("{base}{TRANSITION}"), Some(&admin), Some(org))
            .await;
        assert_eq!(
            (status, body["requires_manual_approval"].as_bool()),
            (200, Some(true)),
            "{body}"
        );
        let id = body["id"].as_str().unwrap().to_owned();
        expect_ok(tollgate(&db, &["jobs", "run", "transitions"]).await);
        assert_eq!(state_of(id.clone()).await, "STATE_WAITING_FOR_APPROVAL");
        let waiting =
            expect_ok(tollgate(&db, &["transition", "list", "--state", "WAITING_FOR_APPROVAL"]).await);
        assert!(
            waiting.contains(&id) && waiting.contains("acme") && waiting.contains("organization"),
            "{waiting}"
        );
        expect_ok(tollgate(&db, &["transition", "approve", &id]).await);
        let again = tollgate(&db, &["transition", "approve", &id]).await;
        assert!(
            !again.ok && again.stderr.contains("not waiting for approval"),
            "{}",
            again.stderr
        );
        expect_ok(tollgate(&db, &["jobs", "run", "transitions"]).await);
        assert_eq!(state_of(id).await, "STATE_FINISHED");

        let trail = expect_ok(tollgate(&db, &["audit", "list", "--tenant", "acme"]).await);
        for action in [
            "plan_transition.create",
            "plan_transition.approve",
            "plan_transition.finish",
            "payment_method.create",
        ] {
            assert!(trail.contains(action), "{action} missing from\n{trail}");
        }
        assert!(trail.contains("operator"), "{trail}");
    })
    .await;
}

/// `serve` runs the transition job by itself.
#[tokio::test]
async fn the_server_executes_transitions_in_the_background() {
    each_backend(|db| async move {
        let admin = admin_on(&db, "acme", "free").await;
        let mut server = Server::start(&db).await;
        let http = Http::new();
        let (status, body) = http
            .call(
                "POST",
                &format!("{}{TRANSITION}", server.base),
                Some(&admin),
                Some(
                    json!({"new_plan": "individual", "payload": {"payment_provider_token": "tok-amex-0005"}}),
                ),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        server.wait_for_log("plan transition finished").await;
        let (_, current) = http
            .call("GET", &format!("{}{CURRENT}", server.base), Some(&admin), None)
            .await;
        assert_eq!(current["plans"][0]["name"], "individual");
    })
    .await;
}

/// The operator cancels an open transition; the idempotency records of quota
/// requests are pruned once their window is over.
#[tokio::test]
async fn the_operator_cancels_transitions_and_prunes_expired_request_ids() {
    each_backend(|db| async move {
        let server = Server::start(&db).await;
        let http = Http::new();
        let base = server.base.clone();
        let admin = admin_on(&db, "acme", "free").await;
        let org = json!({"new_plan": "organization", "payload": {
            "domain": "acme.com",
            "billing_address": {"address1": "1 Main St", "city": "Boston", "country": "US"}
        }});
        let (status, body) = http
            .call("POST", &format!("{base}{TRANSITION}"), Some(&admin), Some(org))
            .await;
        assert_eq!(status, 200, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        let out =
            expect_ok(tollgate(&db, &["transition", "cancel", &id, "--reason", "no contract yet"]).await);
        assert!(out.contains(&format!("cancelled {id}: now FAILED")), "{out}");
        let state = http
            .call(
                "GET",
                &format!("{base}/no_auth/namespaces/system/billing/plan_transition?id={id}"),
                None,
                None,
            )
            .await
            .1;
        assert_eq!(state["state"], "STATE_FAILED");
        let again = tollgate(&db, &["transition", "cancel", &id]).await;
        assert!(!again.ok && again.stderr.contains("not open"), "{}", again.stderr);
        let listed = expect_ok(tollgate(&db, &["transition", "list", "--tenant", "acme"]).await);
        assert!(listed.contains("no contract yet"), "{listed}");

        let (status, body) = http
            .call(
                "POST",
                &format!("{base}/api/web/namespaces/system/quota/reserve"),
                Some(&admin),
                Some(json!({"kind": "origin_pool", "amount": 1, "request_id": "pool-1"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let kept = expect_ok(tollgate(&db, &["jobs", "run", "prune"]).await);
        assert!(kept.contains("prune: 0 expired"), "{kept}");
        let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(25)).to_string();
        let pruned = expect_ok(tollgate(&db, &["jobs", "run", "prune", "--now", &later]).await);
        assert!(pruned.contains("prune: 1 expired"), "{pruned}");
        let short = tollgate(&db, &["jobs", "run", "prune", "--idempotency-window", "1h"]).await;
        assert!(
            !short.ok && short.stderr.contains("at least 24h"),
            "{}",
            short.stderr
        );
        // Raw events: nothing is finalized yet, so nothing goes; a bad
        // retention is refused before anything runs.
        let purged =
            expect_ok(tollgate(&db, &["jobs", "run", "purge-events", "--keep-raw-events", "400d"]).await);
        assert!(
            purged.contains("purge-events: 0 raw usage events past retention deleted"),
            "{purged}"
        );
        let bad = tollgate(
            &db,
            &["jobs", "run", "purge-events", "--keep-raw-events", "a while"],
        )
        .await;
        assert!(
            !bad.ok
                && bad
                    .stderr
                    .contains("--keep-raw-events must be `finalized`, `forever` or a duration"),
            "{}",
            bad.stderr
        );
    })
    .await;
}

#[tokio::test]
async fn tenants_are_moved_to_a_newer_catalog_version_from_the_cli() {
    each_backend(|db| async move {
        let dir = tempfile::tempdir().unwrap();
        expect_ok(tollgate(&db, &["tenant", "create", "acme", "--plan", "team"]).await);
        expect_ok(tollgate(&db, &["tenant", "create", "bravo", "--plan", "team"]).await);
        expect_ok(tollgate(&db, &["tenant", "create", "cargo", "--plan", "free"]).await);
        let shown = expect_ok(tollgate(&db, &["catalog", "show"]).await);
        let v2 = dir.path().join("v2.toml");
        std::fs::write(&v2, shown.split_once('\n').unwrap().1).unwrap();
        expect_ok(tollgate(&db, &["catalog", "publish", v2.to_str().unwrap()]).await);

        let out = expect_ok(tollgate(&db, &["catalog", "move", "--tenant", "acme", "--version", "2"]).await);
        assert!(out.contains("TENANT") && out.contains("acme"), "{out}");
        let out = expect_ok(tollgate(&db, &["catalog", "move", "--plan", "team"]).await);
        assert!(
            out.contains("acme") && out.contains("bravo") && !out.contains("cargo"),
            "{out}"
        );
        let moves = expect_ok(tollgate(&db, &["catalog", "moves"]).await);
        let rows: Vec<&str> = moves.lines().skip(1).collect();
        assert_eq!(rows.len(), 2, "{moves}");
        assert!(
            rows.iter().all(|r| r.contains(" 1 ") && r.contains(" 2 ")),
            "{moves}"
        );

        expect_ok(tollgate(&db, &["catalog", "cancel-move", "bravo"]).await);
        let again = tollgate(&db, &["catalog", "cancel-move", "bravo"]).await;
        assert!(
            !again.ok && again.stderr.contains("no pending catalog move"),
            "{}",
            again.stderr
        );
        let moves = expect_ok(tollgate(&db, &["catalog", "moves"]).await);
        assert!(moves.contains("acme") && !moves.contains("bravo"), "{moves}");
        // Neither tenants nor a plan, or both: refused by the parser.
        assert!(!tollgate(&db, &["catalog", "move"]).await.ok);
        assert!(
            !tollgate(&db, &["catalog", "move", "--tenant", "acme", "--plan", "team"])
                .await
                .ok
        );
        let audit = expect_ok(tollgate(&db, &["audit", "list", "--tenant", "bravo"]).await);
        assert!(
            audit.contains("catalog_move.cancel") && audit.contains("catalog_move.schedule"),
            "{audit}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_tenants_tax_treatment_is_shown_and_set_from_the_cli() {
    each_backend(|db| async move {
        expect_ok(tollgate(&db, &["tenant", "create", "acme"]).await);
        let shown = expect_ok(tollgate(&db, &["tenant", "tax", "acme"]).await);
        assert_eq!(shown.trim(), "tenant acme: tax standard");
        let set =
            expect_ok(tollgate(&db, &["tenant", "tax", "acme", "--reverse-charge", "DE999999999"]).await);
        assert_eq!(set.trim(), "tenant acme: tax reverse_charge (tax id DE999999999)");
        let set = expect_ok(tollgate(&db, &["tenant", "tax", "acme", "--exempt"]).await);
        assert_eq!(set.trim(), "tenant acme: tax exempt");
        assert!(
            !tollgate(&db, &["tenant", "tax", "acme", "--exempt", "--standard"])
                .await
                .ok
        );
        let empty = tollgate(&db, &["tenant", "tax", "acme", "--reverse-charge", " "]).await;
        assert!(
            !empty.ok && empty.stderr.contains("tax_id: is required"),
            "{}",
            empty.stderr
        );
        let audit = expect_ok(tollgate(&db, &["audit", "list", "--tenant", "acme"]).await);
        assert_eq!(audit.matches("tenant.tax").count(), 2, "{audit}");
    })
    .await;
}

/// A catalog priced in dollars and yen: the free plan charges nothing, so
/// it needs no yen table.
const DOLLARS_AND_YEN: &str = r#"format = 2
currencies = ["USD", "JPY"]
default_plan = "basic"

[[plans]]
name = "basic"
title = "Basic"
usage_plan_type = "FREE"
tenant_type = "FREEMIUM"
flat_price_cents = 0
offered = true
transition = { method = "WIZARD" }
"#;

#[tokio::test]
async fn a_tenants_currency_is_chosen_at_creation_and_changed_from_the_cli() {
    each_backend(|db| async move {
        let refused = tollgate(&db, &["tenant", "create", "kyoto", "--currency", "JPY"]).await;
        assert!(
            !refused.ok
                && refused
                    .stderr
                    .contains("--currency: catalog version 1 does not price JPY; it prices USD"),
            "{}",
            refused.stderr
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("yen.toml");
        std::fs::write(&file, DOLLARS_AND_YEN).unwrap();
        expect_ok(tollgate(&db, &["catalog", "publish", file.to_str().unwrap()]).await);
        expect_ok(tollgate(&db, &["tenant", "create", "kyoto", "--currency", "JPY"]).await);
        expect_ok(tollgate(&db, &["tenant", "create", "acme"]).await);
        let shown = expect_ok(tollgate(&db, &["tenant", "show", "kyoto"]).await);
        assert!(shown.contains("currency: JPY"), "{shown}");
        let acme = expect_ok(tollgate(&db, &["tenant", "currency", "acme"]).await);
        assert_eq!(
            acme.trim(),
            "tenant acme: currency USD (catalog v2 prices USD, JPY)"
        );
        let changed = expect_ok(tollgate(&db, &["tenant", "currency", "kyoto", "USD"]).await);
        assert_eq!(
            changed.trim(),
            "tenant kyoto: currency USD (catalog v2 prices USD, JPY)"
        );
        let bad = tollgate(&db, &["tenant", "currency", "kyoto", "EUR"]).await;
        assert!(
            !bad.ok
                && bad
                    .stderr
                    .contains("currency: catalog version 2 does not price EUR"),
            "{}",
            bad.stderr
        );
        let audit = expect_ok(tollgate(&db, &["audit", "list", "--tenant", "kyoto"]).await);
        assert_eq!(audit.matches("tenant.currency").count(), 1, "{audit}");
    })
    .await;
}
