//! Web console sessions ([`ConsoleStore`](crate::ConsoleStore)). Part of the
//! shared SQL implementation (compiled per engine).

use jiff::Timestamp;
use sqlx::Row;

use super::{SqlStore, micros, timestamp};
use crate::{ConsoleKind, ConsoleSession, Result, StoreError};

#[async_trait::async_trait]
impl crate::ConsoleStore for SqlStore {
    async fn create_console_session(&self, session: &ConsoleSession) -> Result<()> {
        let s = session.clone();
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO console_sessions (id_digest, kind, credential, csrf, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&s.id_digest)
                .bind(s.kind.as_str())
                .bind(&s.credential)
                .bind(&s.csrf)
                .bind(micros(s.created_at))
                .bind(micros(s.expires_at))
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn console_session(&self, id_digest: &str, now: Timestamp) -> Result<Option<ConsoleSession>> {
        let row = sqlx::query(
            "SELECT id_digest, kind, credential, csrf, created_at, expires_at FROM console_sessions \
             WHERE id_digest = $1 AND expires_at > $2",
        )
        .bind(id_digest)
        .bind(micros(now))
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let kind: String = row.try_get("kind")?;
        Ok(Some(ConsoleSession {
            id_digest: row.try_get("id_digest")?,
            kind: match kind.as_str() {
                "tenant" => ConsoleKind::Tenant,
                "operator" => ConsoleKind::Operator,
                other => return Err(StoreError::Corrupt(format!("console_sessions.kind {other:?}"))),
            },
            credential: row.try_get("credential")?,
            csrf: row.try_get("csrf")?,
            created_at: timestamp("console_sessions.created_at", row.try_get("created_at")?)?,
            expires_at: timestamp("console_sessions.expires_at", row.try_get("expires_at")?)?,
        }))
    }

    async fn delete_console_session(&self, id_digest: &str) -> Result<bool> {
        let id = id_digest.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let n = sqlx::query("DELETE FROM console_sessions WHERE id_digest = $1")
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                Ok(n > 0)
            })
        })
        .await
    }

    async fn prune_console_sessions(&self, now: Timestamp, limit: u32) -> Result<u64> {
        self.write(move |tx| {
            Box::pin(async move {
                Ok(sqlx::query(
                    "DELETE FROM console_sessions WHERE id_digest IN \
                     (SELECT id_digest FROM console_sessions WHERE expires_at <= $1 LIMIT $2)",
                )
                .bind(micros(now))
                .bind(i64::from(limit))
                .execute(&mut **tx)
                .await?
                .rows_affected())
            })
        })
        .await
    }
}
