//! Background jobs. Each job takes its work from the database under a lease,
//! so that several replicas never do the same work twice and work a crashed
//! worker held is taken over once its lease expires.

pub mod bills;
pub mod transitions;

use std::sync::Arc;
use std::time::Duration;

use tollgate_domain::clock::Clock;
use tollgate_payments::PaymentProvider;
use tollgate_store::Store;

/// What the jobs need.
#[derive(Clone)]
pub struct JobContext {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub provider: Arc<dyn PaymentProvider>,
    /// Names this process in leases, e.g. `hostname/pid`.
    pub worker_id: String,
}

/// Runs every job until `shutdown` resolves, polling every `interval`.
pub async fn run_forever(
    ctx: JobContext,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = transitions::run_until_idle(&ctx).await {
            tracing::warn!(error = %e, "plan transition job failed; retrying on the next tick");
        }
    }
}
