//! What an operator meets at the terminal: commands that never create a
//! database by accident, `--listen :PORT`, plain logs when not on a terminal,
//! aligned tables, human units in the audit trail, one catalog header.

use std::path::Path;
use std::process::Stdio;

use jiff::Timestamp;
use tokio::process::Command;
use tollgate_domain::quota::{Limit, QuotaKey, QuotaSpec};
use tollgate_testkit::each_backend;

use crate::support::{BIN, expect_ok, store_quota, tenant_with_admin, tollgate};

/// Runs `tollgate ARGS` in `cwd` with no storage settings from the
/// environment.
async fn tollgate_in(cwd: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("TOLLGATE_DATABASE_URL")
        .env_remove("TOLLGATE_DATA_DIR")
        .output()
        .await
        .expect("run tollgate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn operator_commands_refuse_to_create_a_database_by_accident() {
    let cwd = tempfile::tempdir().unwrap();
    let cwd = cwd.path().canonicalize().unwrap();
    let expected_file = cwd.join("tollgate-data").join("tollgate.db");
    for args in [
        &["tenant", "list"][..],
        &["tenant", "create", "acme"],
        &["catalog", "show"],
        &["jobs", "run", "all"],
        &["invoice", "list", "--tenant", "acme"],
        &["audit", "list"],
    ] {
        let (ok, stdout, stderr) = tollgate_in(&cwd, args).await;
        assert!(!ok, "{args:?} succeeded: {stdout}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        // The message names the absolute path and says how to point at the
        // right database or create one.
        assert!(
            stderr.starts_with(&format!(
                "error: there is no Tollgate database at {}.",
                expected_file.display()
            )),
            "{args:?}: {stderr}"
        );
        for hint in [
            "--data-dir",
            "TOLLGATE_DATA_DIR",
            "--database-url",
            "`tollgate init`",
        ] {
            assert!(stderr.contains(hint), "{args:?}: {stderr}");
        }
        assert!(
            !cwd.join("tollgate-data").exists(),
            "{args:?} created the data directory"
        );
    }

    // `--data-dir` (relative, too) is named the same way.
    let (ok, _, stderr) = tollgate_in(&cwd, &["--data-dir", "elsewhere", "tenant", "list"]).await;
    assert!(!ok);
    assert!(
        stderr.contains(&cwd.join("elsewhere").join("tollgate.db").display().to_string()),
        "{stderr}"
    );
    assert!(!cwd.join("elsewhere").exists());

    // `init` is the explicit way; it says what it did, and is harmless twice.
    let (ok, stdout, stderr) = tollgate_in(&cwd, &["init"]).await;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.trim(),
        format!("created {} (catalog version 1)", expected_file.display())
    );
    let (ok, stdout, _) = tollgate_in(&cwd, &["init"]).await;
    assert!(ok);
    assert_eq!(
        stdout.trim(),
        format!("{} is ready (catalog version 1)", expected_file.display())
    );
    let (ok, stdout, stderr) = tollgate_in(&cwd, &["tenant", "create", "acme"]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("created tenant acme"), "{stdout}");
}

#[tokio::test]
async fn serve_creates_its_database_and_listens_on_a_bare_port() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new");
    let dir = dir.to_str().unwrap();
    // `serve` creates what does not exist; `:0` is 127.0.0.1 on a free port.
    let mut child = Command::new(BIN)
        .args(["--data-dir", dir, "serve", "--listen", ":0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut line)
        .await
        .unwrap();
    let addr = line.trim().strip_prefix("tollgate listening on ").expect(&line);
    let port = addr.strip_prefix("http://127.0.0.1:").expect(addr);
    assert!(port.parse::<u16>().unwrap() > 0, "{addr}");
    let (status, _) = crate::support::Http::new()
        .call("GET", &format!("{addr}/healthz"), None, None)
        .await;
    assert_eq!(status, 200);
    child.kill().await.unwrap();
    assert!(Path::new(dir).join("tollgate.db").exists());

    for bad in ["nope", ":http", "127.0.0.1", ":99999"] {
        let (ok, _, stderr) = tollgate_in(Path::new(dir), &["serve", "--listen", bad]).await;
        assert!(!ok, "{bad}");
        assert!(
            stderr.contains(&format!(
                "{bad:?} is not an address to listen on: expected HOST:PORT"
            )),
            "{bad}: {stderr}"
        );
    }
}

/// The first log lines `serve` writes before it gives up on an invalid
/// `--charge-retries` (it logs the payment provider first), run under `env`.
async fn serve_log(dir: &Path, wrapper: &[&str], env: &[(&str, &str)]) -> String {
    let dir = dir.to_str().unwrap();
    let command = format!("{BIN} --data-dir {dir} serve --listen :0 --charge-retries 3d,1d");
    let mut cmd = Command::new(wrapper.first().copied().unwrap_or(BIN));
    if wrapper.is_empty() {
        cmd.args([
            "--data-dir",
            dir,
            "serve",
            "--listen",
            ":0",
            "--charge-retries",
            "3d,1d",
        ]);
    } else {
        // The typescript file goes to /dev/null, not the working directory.
        cmd.args(&wrapper[1..]).arg(command).arg("/dev/null");
    }
    let out = cmd
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    // `script` puts the terminal's output on its stdout.
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

#[tokio::test]
async fn logs_are_plain_text_unless_on_a_terminal_without_no_color() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Redirected (as to a file or a collector): no escape codes.
    let log = serve_log(dir, &[], &[]).await;
    assert!(log.contains("payments go to the built-in test provider"), "{log}");
    assert!(log.contains("--charge-retries must be increasing"), "{log}");
    assert!(!log.contains('\x1b'), "{log:?}");

    // On a terminal colours are on, and NO_COLOR turns them off. `script`
    // (util-linux) gives the server a terminal.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped the terminal half: `script` (util-linux) is not installed");
        return;
    }
    let script = ["script", "-qec"];
    let log = serve_log(dir, &script, &[]).await;
    assert!(log.contains("payments go to the built-in test provider"), "{log}");
    assert!(log.contains('\x1b'), "{log:?}");
    let log = serve_log(dir, &script, &[("NO_COLOR", "1")]).await;
    assert!(log.contains("payments go to the built-in test provider"), "{log}");
    assert!(!log.contains('\x1b'), "{log:?}");
}

/// The column at which each of `header`'s words starts.
fn columns(header: &str) -> Vec<usize> {
    let mut at = Vec::new();
    let mut previous = ' ';
    for (i, c) in header.char_indices() {
        if c != ' ' && previous == ' ' {
            at.push(i);
        }
        previous = c;
    }
    at
}

/// Checks that every row of a table has a cell starting at each column of
/// its header (cells here hold no spaces).
#[track_caller]
fn assert_aligned(table: &str) {
    let mut lines = table.lines();
    let header = lines.next().expect("a header");
    let at = columns(header);
    for row in lines {
        assert_eq!(columns(row), at[..columns(row).len()], "not aligned:\n{table}");
        assert!(!row.ends_with(' '), "trailing spaces:\n{table}");
    }
}

#[tokio::test]
async fn listings_are_aligned_tables() {
    each_backend(|db| async move {
        tenant_with_admin(&db, "acme").await;
        tenant_with_admin(&db, "a-tenant-with-a-name-longer-than-thirty-characters").await;
        expect_ok(
            tollgate(
                &db,
                &[
                    "namespace",
                    "create",
                    "--tenant",
                    "acme",
                    "a-rather-long-namespace-name-too",
                ],
            )
            .await,
        );
        expect_ok(
            tollgate(
                &db,
                &[
                    "token",
                    "create",
                    "--tenant",
                    "acme",
                    "--role",
                    "platform",
                    "--name",
                    "a-long-label-for-the-platform",
                    "--namespace",
                    "a-rather-long-namespace-name-too",
                ],
            )
            .await,
        );
        for args in [
            &["tenant", "list"][..],
            &["namespace", "list", "--tenant", "acme"],
            &["token", "list", "--tenant", "acme"],
            &["transition", "list"],
        ] {
            let out = expect_ok(tollgate(&db, args).await);
            assert_aligned(&out);
        }
        let tenants = expect_ok(tollgate(&db, &["tenant", "list"]).await);
        assert_eq!(tenants.lines().count(), 3, "{tenants}");
    })
    .await;
}

#[tokio::test]
async fn the_audit_trail_shows_resource_amounts_and_records_namespaces_and_tokens() {
    each_backend(|db| async move {
        tenant_with_admin(&db, "acme").await;
        expect_ok(tollgate(&db, &["namespace", "create", "--tenant", "acme", "shop"]).await);
        let out = tollgate(
            &db,
            &[
                "token", "create", "--tenant", "acme", "--role", "monitor", "--name", "dash",
            ],
        )
        .await;
        let secret = expect_ok(out);
        let list = expect_ok(tollgate(&db, &["token", "list", "--tenant", "acme"]).await);
        let id = list
            .lines()
            .find(|l| l.contains(" dash "))
            .and_then(|l| l.split_whitespace().next())
            .expect("the token is listed")
            .to_owned();
        expect_ok(tollgate(&db, &["token", "revoke", "--tenant", "acme", &id]).await);
        // Revoking again changes nothing and records nothing.
        expect_ok(tollgate(&db, &["token", "revoke", "--tenant", "acme", &id]).await);

        // A quota object with 2.5 vCPU, stored as the API stores it.
        let mut spec = QuotaSpec::default();
        spec.resource_limits
            .insert(QuotaKey::parse("k", "vcpu").unwrap(), Limit::Max(2_500_000));
        spec.object_limits
            .insert(QuotaKey::parse("k", "virtual_host").unwrap(), Limit::Unlimited);
        store_quota(&db, "acme", "prod", spec).await;

        let audit = expect_ok(tollgate(&db, &["audit", "list", "--tenant", "acme"]).await);
        assert!(
            audit.contains(r#""resource_limits":{"vcpu":{"maximum":2.5}}"#),
            "{audit}"
        );
        assert!(
            audit.contains(r#""object_limits":{"virtual_host":{"maximum":-1}}"#),
            "{audit}"
        );
        assert!(!audit.contains("2500000"), "{audit}");
        let actions: Vec<&str> = audit
            .lines()
            .skip(1)
            .filter(|l| !l.starts_with("    "))
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect();
        for action in [
            "tenant.create",
            "namespace.create",
            "token.create",
            "token.revoke",
            "quota.create",
        ] {
            assert!(actions.contains(&action), "{action} missing:\n{audit}");
        }
        assert_eq!(
            actions.iter().filter(|a| **a == "token.revoke").count(),
            1,
            "{audit}"
        );
        // Two tokens created (the admin one and `dash`); never a secret.
        assert_eq!(
            actions.iter().filter(|a| **a == "token.create").count(),
            2,
            "{audit}"
        );
        assert!(!audit.contains(secret.trim()), "{audit}");
        assert!(!audit.contains("digest"), "{audit}");
        assert!(audit.contains(&format!("token/{id}")), "{audit}");
        assert!(audit.contains("namespace/shop"), "{audit}");

        // Coupons in the units the CLI takes.
        expect_ok(
            tollgate(
                &db,
                &["coupon", "create", "ten", "--title", "Ten", "--percent", "10"],
            )
            .await,
        );
        expect_ok(
            tollgate(
                &db,
                &[
                    "coupon",
                    "create",
                    "five",
                    "--title",
                    "Five",
                    "--fixed-cents",
                    "500",
                ],
            )
            .await,
        );
        let all = expect_ok(tollgate(&db, &["audit", "list", "--limit", "2"]).await);
        assert!(all.contains(r#"{"fixed_cents":500,"title":"Five"}"#), "{all}");
        assert!(all.contains(r#"{"percent":"10","title":"Ten"}"#), "{all}");
    })
    .await;
}

#[tokio::test]
async fn catalog_show_after_publishing_a_shown_catalog_has_one_header() {
    each_backend(|db| async move {
        let shown = expect_ok(tollgate(&db, &["catalog", "show"]).await);
        assert!(shown.starts_with("# catalog version 1, from "), "{shown}");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &shown).unwrap();
        let path = file.path().to_str().unwrap();
        let out = expect_ok(tollgate(&db, &["catalog", "publish", path]).await);
        assert_eq!(out.trim(), format!("published {path} as catalog version 2"));
        let again = expect_ok(tollgate(&db, &["catalog", "show"]).await);
        let headers: Vec<&str> = again
            .lines()
            .filter(|l| l.starts_with("# catalog version"))
            .collect();
        assert_eq!(headers.len(), 1, "{again}");
        assert!(
            headers[0].starts_with(&format!("# catalog version 2, from {path}")),
            "{again}"
        );
        // The rest is the catalog as published the first time.
        let body = |s: &str| s.split_once('\n').unwrap().1.to_owned();
        assert_eq!(body(&again), body(&shown));
        // The stored source is what was published, header and all: version
        // 2 shows it without the stale header too.
        let v2 = expect_ok(tollgate(&db, &["catalog", "show", "--version", "2"]).await);
        assert_eq!(v2, again);
    })
    .await;
}

#[tokio::test]
async fn a_backdated_tenant_is_audited_when_it_was_created_not_when_it_starts() {
    each_backend(|db| async move {
        let before = Timestamp::now();
        expect_ok(
            tollgate(
                &db,
                &["tenant", "create", "globex", "--since", "2026-09-01T00:00:00Z"],
            )
            .await,
        );
        let audit = expect_ok(tollgate(&db, &["audit", "list", "--tenant", "globex"]).await);
        let row = audit
            .lines()
            .find(|l| l.contains("tenant.create"))
            .unwrap_or_else(|| panic!("{audit}"));
        let at: Timestamp = row.split_whitespace().next().unwrap().parse().unwrap();
        assert!(at >= before, "{audit}");
        assert!(audit.contains(r#""since":"2026-09-01T00:00:00Z""#), "{audit}");
    })
    .await;
}

/// `tollgate operator-token create` prints a secret that the operator API of
/// a server started without TOLLGATE_OPERATOR_TOKEN accepts, with its role;
/// `list` never shows it; `revoke` ends it; the audit trail names each.
#[tokio::test]
async fn operator_tokens_made_with_the_cli_open_the_operator_api() {
    each_backend(|db| async move {
        let admin = expect_ok(
            tollgate(
                &db,
                &["operator-token", "create", "ops", "--role", "operator-admin"],
            )
            .await,
        );
        let admin = admin.trim().to_owned();
        let reader = expect_ok(
            tollgate(
                &db,
                &["operator-token", "create", "grafana", "--role", "operator-read"],
            )
            .await,
        );
        let reader = reader.trim().to_owned();
        let dup = tollgate(
            &db,
            &["operator-token", "create", "ops", "--role", "operator-read"],
        )
        .await;
        assert!(!dup.ok && dup.stderr.contains("\"ops\""), "{}", dup.stderr);
        let bad = tollgate(&db, &["operator-token", "create", "x", "--role", "root"]).await;
        assert!(
            !bad.ok && bad.stderr.contains("operator-admin or operator-read"),
            "{}",
            bad.stderr
        );

        let list = expect_ok(tollgate(&db, &["operator-token", "list"]).await);
        assert!(
            list.contains("ops") && list.contains("operator-admin") && list.contains("active"),
            "{list}"
        );
        assert!(!list.contains(&admin) && !list.contains(&reader), "{list}");

        let server = crate::support::Server::start(&db).await;
        let http = crate::support::Http::new();
        let tenants = format!("{}/api/operator/tenants", server.base);
        let (status, body) = http
            .call_operator(
                "POST",
                &tenants,
                &admin,
                Some(serde_json::json!({"name": "acme"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = http
            .call_operator(
                "POST",
                &tenants,
                &reader,
                Some(serde_json::json!({"name": "globex"})),
            )
            .await;
        assert_eq!(status, 403, "{body}");
        let (status, body) = http.call_operator("GET", &tenants, &reader, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["items"][0]["name"], "acme");

        expect_ok(tollgate(&db, &["operator-token", "revoke", "grafana"]).await);
        let (status, _) = http.call_operator("GET", &tenants, &reader, None).await;
        assert_eq!(status, 401);
        let audit = expect_ok(tollgate(&db, &["audit", "list"]).await);
        for needle in [
            "operator_token.create",
            "operator_token.revoke",
            "operator-token/ops",
        ] {
            assert!(audit.contains(needle), "{needle}: {audit}");
        }
    })
    .await;
}
