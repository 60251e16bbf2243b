//! Fault injection for tests: faults the store's writer meets at will, so
//! that tests can show every write is all or nothing, is answered as
//! `Unavailable`, and succeeds again by itself once the fault is gone.
//!
//! A [`FaultPlan`] is handed to the store when it is opened
//! ([`StoreOptions::faults`](crate::StoreOptions)); production never sets
//! one, and an unarmed plan costs one lock per write group.

use std::sync::Mutex;

/// A fault the writer meets while it is armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The database cannot grow. SQLite: every writer connection has its
    /// `max_page_count` held at the database's current size, so any write
    /// that needs a new page fails with SQLITE_FULL, as on a full disk.
    /// PostgreSQL: each write fails before its commit with SQLSTATE 53100
    /// (`disk_full`), as the server reports a full disk.
    DiskFull,
    /// The connection is lost in the middle of writes. SQLite: the writer's
    /// connection is interrupted every `after_steps` engine steps, counted
    /// over all its statements (so a sweep over `after_steps` hits every
    /// point of a write; SQLite rolls the transaction back). PostgreSQL: the
    /// server terminates the connection's backend after the write's
    /// statements, before its commit (`after_steps` is not used).
    ConnectionLost { after_steps: u32 },
}

/// The armed fault, shared between a test and the store it opened.
#[derive(Debug, Default)]
pub struct FaultPlan {
    armed: Mutex<Option<Fault>>,
}

impl FaultPlan {
    /// Arms `fault` (or clears it with `None`); the next write group meets it.
    pub fn set(&self, fault: Option<Fault>) {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// The armed fault.
    pub fn current(&self) -> Option<Fault> {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner())
    }
}
