//! Which engine, whether it answers and whether it takes writes
//! ([`HealthStore`](crate::HealthStore)); `crate::health` remembers the
//! write faults `ready` reports. Part of the shared SQL implementation
//! (compiled per engine).

use jiff::Timestamp;

use super::{BACKEND, SqlStore, micros};
use crate::{Result, StoreError};

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
}
