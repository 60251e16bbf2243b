//! Which database errors are faults of the database (it cannot take the
//! request now; 503 and retry) rather than refusals or bugs (500).
//!
//! The classification is by the engine's own error codes, so that a full
//! disk, an I/O error, a lock held past the busy timeout, a terminated or
//! refused PostgreSQL connection and a pool timeout all heal by themselves
//! and are never reported as internal errors.

use sqlx::error::DatabaseError;

/// Whether `e` means the database could not take the request now.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => database_error_is_transient(db.as_ref()),
        _ => false,
    }
}

fn database_error_is_transient(db: &dyn DatabaseError) -> bool {
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        return db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(sqlite_code_is_transient);
    }
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return pg_code_is_transient(pg.code());
    }
    false
}

/// SQLite result codes (primary code = low byte of the extended code) that
/// mean the database cannot take writes or reads right now. SQLite may roll
/// back the whole transaction on FULL, IOERR, BUSY and NOMEM.
pub fn sqlite_code_is_transient(extended: i32) -> bool {
    const BUSY: i32 = 5;
    const LOCKED: i32 = 6;
    const NOMEM: i32 = 7;
    const READONLY: i32 = 8;
    const INTERRUPT: i32 = 9;
    const IOERR: i32 = 10;
    const FULL: i32 = 13;
    const CANTOPEN: i32 = 14;
    const PROTOCOL: i32 = 15;
    matches!(
        extended & 0xff,
        BUSY | LOCKED | NOMEM | READONLY | INTERRUPT | IOERR | FULL | CANTOPEN | PROTOCOL
    )
}

/// PostgreSQL SQLSTATEs of an unreachable, overloaded, shutting-down or full
/// server, refused logins, and transient conflicts that a retry resolves.
pub fn pg_code_is_transient(sqlstate: &str) -> bool {
    let class = sqlstate.get(..2).unwrap_or("");
    matches!(
        class,
        "08" // connection exception
        | "53" // insufficient resources: disk full, out of memory, too many connections
        | "57" // operator intervention: admin/crash shutdown, cannot connect now
        | "58" // system error: I/O error
        | "28" // invalid authorization: a refused login
    ) || matches!(
        sqlstate,
        "40001" // serialization failure
        | "40P01" // deadlock detected
        | "55000" // database is not accepting connections (ALLOW_CONNECTIONS false)
        | "55P03" // lock not available
        | "25006" // read-only transaction: a standby after a failover
        | "3D000" // the database does not exist (yet, or any more)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_faults_are_transient_and_refusals_are_not() {
        for code in [5, 6, 7, 8, 10, 13, 14, 266, 522, 3850, 517, 261] {
            assert!(sqlite_code_is_transient(code), "{code}");
        }
        // constraint (19, 2067 unique), error (1), corrupt (11), notadb (26)
        for code in [1, 19, 2067, 787, 11, 26] {
            assert!(!sqlite_code_is_transient(code), "{code}");
        }
    }

    #[test]
    fn postgres_outages_are_transient_and_refusals_are_not() {
        for code in [
            "57P01", "57P03", "08006", "08001", "53100", "53300", "28000", "28P01", "55000", "3D000",
        ] {
            assert!(pg_code_is_transient(code), "{code}");
        }
        for code in ["23505", "23503", "22021", "42P01", "22P05", "XX000"] {
            assert!(!pg_code_is_transient(code), "{code}");
        }
    }

    #[test]
    fn pool_and_io_errors_are_transient() {
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(is_transient(&sqlx::Error::Io(std::io::Error::other("reset"))));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
    }
}
