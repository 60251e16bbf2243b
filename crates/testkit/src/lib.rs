//! Fresh databases for tests.
//!
//! Every storage test runs on SQLite, and also on PostgreSQL when
//! [`POSTGRES_URL_VAR`] names a server (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`). Each test gets a database of
//! its own, dropped afterwards. If the variable is set and the server is
//! unreachable, the test fails: it never silently falls back to SQLite only.

use std::future::Future;
use std::path::{Path, PathBuf};

use sqlx::Connection;

/// Names the PostgreSQL server storage tests also run on.
pub const POSTGRES_URL_VAR: &str = "TOLLGATE_TEST_POSTGRES_URL";

/// A database engine tests run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// Admin URL of a PostgreSQL server; each test creates a database there.
    Postgres(String),
}

/// The engines configured for this run: SQLite, plus PostgreSQL when
/// [`POSTGRES_URL_VAR`] is set.
pub fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    if let Ok(url) = std::env::var(POSTGRES_URL_VAR)
        && !url.trim().is_empty()
    {
        out.push(Backend::Postgres(url));
    }
    out
}

/// Runs `test` once on a fresh database of every configured engine.
pub async fn each_backend<F, Fut>(test: F)
where
    F: Fn(TestDatabase) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in backends() {
        let db = TestDatabase::create(&backend).await;
        eprintln!("--- running on {}", db.label());
        test(db).await;
    }
}

/// A database that exists for one test.
#[derive(Debug)]
pub enum TestDatabase {
    Sqlite {
        dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        url: String,
        name: String,
    },
}

impl TestDatabase {
    pub async fn create(backend: &Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::Sqlite {
                dir: tempfile::tempdir().expect("create a temporary directory"),
            },
            Backend::Postgres(admin_url) => {
                let name = format!("tollgate_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap_or_else(|e| {
                    panic!("{POSTGRES_URL_VAR}={admin_url} is set but PostgreSQL is unreachable: {e}")
                });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("create test database {name}: {e}"));
                let _ = conn.close().await;
                Self::Postgres {
                    url: with_database(admin_url, &name),
                    admin_url: admin_url.clone(),
                    name,
                }
            }
        }
    }

    /// "sqlite" or "postgres".
    pub fn label(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgres",
        }
    }

    /// The SQLite data directory, if this is SQLite.
    pub fn sqlite_dir(&self) -> Option<&Path> {
        match self {
            Self::Sqlite { dir } => Some(dir.path()),
            Self::Postgres { .. } => None,
        }
    }

    /// The PostgreSQL URL of this test's database, if this is PostgreSQL.
    pub fn postgres_url(&self) -> Option<&str> {
        match self {
            Self::Sqlite { .. } => None,
            Self::Postgres { url, .. } => Some(url),
        }
    }

    /// The admin URL of the server and the name of this test's database,
    /// if this is PostgreSQL (for tests that take the database offline).
    pub fn postgres_admin(&self) -> Option<(&str, &str)> {
        match self {
            Self::Sqlite { .. } => None,
            Self::Postgres { admin_url, name, .. } => Some((admin_url, name)),
        }
    }

    /// The `tollgate` command-line flags that select this database.
    pub fn cli_args(&self) -> Vec<String> {
        match self {
            Self::Sqlite { dir } => vec!["--data-dir".into(), path_string(dir.path())],
            Self::Postgres { url, .. } => vec!["--database-url".into(), url.clone()],
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Self::Postgres { admin_url, name, .. } = self else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs inside the test's runtime; use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop test database {}", self.label());
        }
    }
}

fn path_string(p: &Path) -> String {
    PathBuf::from(p).display().to_string()
}

/// Replaces the database name (the path) of a PostgreSQL URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_replaces_the_path() {
        use super::with_database as w;
        assert_eq!(w("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(w("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            w("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
