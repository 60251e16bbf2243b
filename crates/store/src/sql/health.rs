//! Which engine, whether it answers and whether it takes writes
//! ([`HealthStore`](crate::HealthStore)); `crate::health` remembers the
//! write faults `ready` reports. Also what the metrics read: the pools and
//! the jobs' backlog. Part of the shared SQL implementation (compiled per
//! engine).

use jiff::Timestamp;
use sqlx::Row;

use super::{BACKEND, SqlStore, micros, opt_timestamp};
use crate::{PoolStats, Result, StoreError};

#[async_trait::async_trait]
impl crate::HealthStore for SqlStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn ready(&self, now: Timestamp) -> Result<()> {
        // First: the probe's own commit would clear the memory of a fault
        // that real writes just met.
        if let Some(fault) = self.writer.health.recent_fault() {
            return Err(StoreError::Unavailable(fault));
        }
        let writer = self.writer.clone();
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO heartbeat (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                )
                .bind(micros(now))
                .execute(&mut **tx)
                .await?;
                match writer.capacity_problem(tx).await? {
                    Some(problem) => Err(StoreError::Unavailable(problem)),
                    None => Ok(()),
                }
            })
        })
        .await
    }

    fn pools(&self) -> Vec<PoolStats> {
        self.writer.pools(&self.read)
    }

    async fn oldest_due_period(&self, before: Timestamp) -> Result<Option<Timestamp>> {
        // 0 is "not known yet" (a new tenant): the next close works it out.
        let row = sqlx::query("SELECT MIN(due_at) AS due FROM billing_due WHERE due_at > 0 AND due_at <= $1")
            .bind(micros(before))
            .fetch_one(&self.read)
            .await?;
        opt_timestamp("billing_due.due_at", row.try_get("due")?)
    }

    async fn oldest_due_charge(&self, now: Timestamp) -> Result<Option<Timestamp>> {
        let row = sqlx::query(
            "SELECT MIN(next_charge_at) AS due FROM invoices \
             WHERE next_charge_at IS NOT NULL AND next_charge_at <= $1 AND status = 'ISSUED'",
        )
        .bind(micros(now))
        .fetch_one(&self.read)
        .await?;
        opt_timestamp("invoices.next_charge_at", row.try_get("due")?)
    }
}
