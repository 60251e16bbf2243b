//! The operator CLI.

use tollgate_testkit::each_backend;

use crate::support::{Http, Server, expect_ok, tenant_with_admin, tollgate};

#[tokio::test]
async fn tenants_namespaces_and_tokens_are_managed_from_the_cli() {
    each_backend(|db| async move {
        let out = expect_ok(tollgate(&db, &["tenant", "create", "acme", "--type", "ENTERPRISE"]).await);
        assert_eq!(
            out.trim(),
            "created tenant acme (ENTERPRISE) on plan free with namespace system"
        );
        // The plan decides the tenant type unless --type says otherwise.
        let out = expect_ok(tollgate(&db, &["tenant", "create", "bravo", "--plan", "team"]).await);
        assert_eq!(
            out.trim(),
            "created tenant bravo (ENTERPRISE) on plan team with namespace system"
        );
        let list = expect_ok(tollgate(&db, &["tenant", "list"]).await);
        let rows: Vec<&str> = list.lines().skip(1).collect();
        assert_eq!(rows.len(), 2);
        assert!(
            rows[0].starts_with("acme ") && rows[0].contains("ENTERPRISE"),
            "{list}"
        );
        assert!(
            rows[1].starts_with("bravo ") && rows[1].contains("team"),
            "{list}"
        );

        expect_ok(tollgate(&db, &["namespace", "create", "--tenant", "acme", "shop"]).await);
        let namespaces = expect_ok(tollgate(&db, &["namespace", "list", "--tenant", "acme"]).await);
        let names: Vec<&str> = namespaces
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(names, ["shop", "system"]);

        // `token create` prints the secret and nothing else on stdout.
        let out = tollgate(
            &db,
            &[
                "token",
                "create",
                "--tenant",
                "acme",
                "--role",
                "platform",
                "--namespace",
                "shop",
                "--expires-in",
                "30d",
                "--name",
                "ci",
            ],
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        let secret = out.stdout.trim_end_matches('\n');
        assert!(
            !secret.contains('\n') && secret.starts_with("tg_") && secret.len() == 46,
            "{:?}",
            out.stdout
        );
        assert!(out.stderr.contains("created platform token"), "{}", out.stderr);

        let tokens = expect_ok(tollgate(&db, &["token", "list", "--tenant", "acme"]).await);
        let row = tokens.lines().nth(1).expect("one token");
        assert!(
            row.contains("ci") && row.contains("platform") && row.contains("shop") && row.contains("active"),
            "{tokens}"
        );
        assert!(!tokens.contains(secret), "token list must never show secrets");
        let id = row.split_whitespace().next().unwrap();
        expect_ok(tollgate(&db, &["token", "revoke", "--tenant", "acme", id]).await);
        let tokens = expect_ok(tollgate(&db, &["token", "list", "--tenant", "acme"]).await);
        assert!(tokens.contains("revoked"), "{tokens}");
    })
    .await;
}

#[tokio::test]
async fn cli_errors_are_clear_and_change_nothing() {
    each_backend(|db| async move {
        let cases: &[(&[&str], &str)] = &[
            (&["tenant", "create", "Bad_Name"], "is not a valid name"),
            (
                &["tenant", "create", "ok", "--type", "GOLD"],
                "unknown tenant type",
            ),
            (
                &["namespace", "create", "--tenant", "ghost", "shop"],
                "tenant \"ghost\" does not exist",
            ),
            (
                &["token", "create", "--tenant", "ghost", "--role", "admin"],
                "tenant \"ghost\" does not exist",
            ),
        ];
        for (args, expected) in cases {
            let out = tollgate(&db, args).await;
            assert!(!out.ok, "{args:?} should fail");
            assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
        }
        expect_ok(tollgate(&db, &["tenant", "create", "acme"]).await);
        let more: &[(&[&str], &str)] = &[
            (&["tenant", "create", "acme"], "already exists"),
            (
                &["token", "create", "--tenant", "acme", "--role", "root"],
                "unknown role",
            ),
            (
                &[
                    "token",
                    "create",
                    "--tenant",
                    "acme",
                    "--role",
                    "admin",
                    "--namespace",
                    "nope",
                ],
                "namespace \"nope\" does not exist",
            ),
            (
                &[
                    "token",
                    "create",
                    "--tenant",
                    "acme",
                    "--role",
                    "admin",
                    "--expires-in",
                    "soon",
                ],
                "soon",
            ),
            (
                &["token", "revoke", "--tenant", "acme", "no-such-id"],
                "does not exist",
            ),
        ];
        for (args, expected) in more {
            let out = tollgate(&db, args).await;
            assert!(!out.ok, "{args:?} should fail");
            assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
            assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
        }
        let list = expect_ok(tollgate(&db, &["tenant", "list"]).await);
        assert_eq!(list.lines().count(), 2, "only acme exists: {list}");
        let mysql = tokio::process::Command::new(crate::support::BIN)
            .args(["--database-url", "mysql://x", "tenant", "list"])
            .output()
            .await
            .unwrap();
        assert!(!mysql.status.success());
        assert!(String::from_utf8_lossy(&mysql.stderr).contains("must be a postgres:// URL"));
        let tokens = expect_ok(tollgate(&db, &["token", "list", "--tenant", "acme"]).await);
        assert_eq!(tokens.lines().count(), 1, "no token was created: {tokens}");
    })
    .await;
}

/// The CLI works while a server runs on the same database, and the server
/// sees its changes at once.
#[tokio::test]
async fn the_cli_and_a_running_server_share_the_database() {
    each_backend(|db| async move {
        let server = Server::start(&db).await;
        let http = Http::new();
        let usage = format!("{}/api/web/namespaces/system/quota/usage", server.base);
        let admin = tenant_with_admin(&db, "acme").await;
        let (status, body) = http.call("GET", &usage, Some(&admin), None).await;
        assert_eq!(status, 200, "{body}");
        expect_ok(tollgate(&db, &["namespace", "create", "--tenant", "acme", "shop"]).await);
        let shop = format!("{}/api/web/namespaces/shop/quota/usage", server.base);
        assert_eq!(http.call("GET", &shop, Some(&admin), None).await.0, 200);

        let tokens = expect_ok(tollgate(&db, &["token", "list", "--tenant", "acme"]).await);
        let id = tokens
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        expect_ok(tollgate(&db, &["token", "revoke", "--tenant", "acme", &id]).await);
        let (status, body) = http.call("GET", &usage, Some(&admin), None).await;
        assert_eq!(status, 401, "a revoked token is refused at once: {body}");

        let (status, body) = http
            .call("GET", &format!("{}/readyz", server.base), None, None)
            .await;
        assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
        let (status, doc) = http
            .call("GET", &format!("{}/openapi.json", server.base), None, None)
            .await;
        assert_eq!(status, 200);
        assert!(doc["paths"]["/api/web/namespaces/{namespace}/quota/usage"].is_object());
    })
    .await;
}
