//! What the writers have seen lately, for readiness: a write that failed with
//! a storage fault makes the store unready until a write commits again, or
//! for [`FAULT_MEMORY`] at most, after which a fresh probe decides.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a write fault keeps the store unready when nothing commits
/// after it (a load balancer that stopped sending traffic must be able to
/// see the store ready again once a probe write succeeds).
pub const FAULT_MEMORY: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub(crate) struct Health {
    last_fault: Mutex<Option<(Instant, String)>>,
}

impl Health {
    pub(crate) fn fault(&self, what: &str) {
        *self.lock() = Some((Instant::now(), what.to_owned()));
    }

    pub(crate) fn committed(&self) {
        let mut guard = self.lock();
        if guard.is_some() {
            *guard = None;
        }
    }

    /// The latest fault if it is recent and nothing committed since.
    pub(crate) fn recent_fault(&self) -> Option<String> {
        self.lock()
            .as_ref()
            .filter(|(at, _)| at.elapsed() < FAULT_MEMORY)
            .map(|(at, what)| format!("a write failed {} ms ago: {what}", at.elapsed().as_millis()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, String)>> {
        self.last_fault.lock().unwrap_or_else(|e| e.into_inner())
    }
}
