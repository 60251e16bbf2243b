//! The embedded SQLite engine: one file in the data directory, WAL mode, so
//! that the server and the operator CLI can use it at the same time.
//!
//! Writes go through one writer task per process that commits concurrent
//! writers together (group commit): it takes every write job waiting, runs
//! each inside a savepoint of one `BEGIN IMMEDIATE` transaction (a job that
//! fails is rolled back to its savepoint, alone), commits once (one fsync
//! with `synchronous = FULL`) and only then answers each job. A storage fault
//! (disk full, I/O error, lock timeout) rolls the group back, answers every
//! job of it with `Unavailable`, and replaces the connection, so the next
//! write starts clean and succeeds as soon as the cause is gone.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{mpsc, oneshot};

use crate::faults::{Fault, FaultPlan};
use crate::health::Health;
use crate::{BoxFuture, Result, StoreError, StoreOptions, Synchronous};

pub(crate) type Db = sqlx::Sqlite;
pub(crate) const BACKEND: &str = "sqlite";

/// Opens and closes a subquery over a bound JSON array of strings, one row
/// per string: `IN (SELECT value FROM json_each($n))`.
pub(crate) const TEXT_LIST: (&str, &str) = ("(SELECT value FROM json_each(", "))");

/// Serializes a tenant's billing changes; the writer already serializes
/// every write, so this only checks that the tenant exists.
pub(crate) const LOCK_TENANT: &str = "SELECT id FROM tenants WHERE id = $1";
/// [`LOCK_TENANT`] that also reads how far the tenant's raw events were
/// deleted (ingestion and replay need it).
pub(crate) const LOCK_TENANT_READ_MARK: &str = "SELECT events_purged_before FROM tenants WHERE id = $1";

#[path = "sql.rs"]
#[allow(
    clippy::duplicate_mod,
    reason = "compiled once per engine with that engine's concrete types"
)]
mod sql;
pub use sql::SqlStore;

/// Hot point reads (a token with its tenant, a tenant's quota usage) run
/// inline, on the calling thread, through connections of their own.
///
/// sqlx runs each SQLite connection on a thread of its own and hands every
/// statement to it and back: two thread wake-ups per statement, which cost
/// far more than the microseconds these indexed reads take. An inline read
/// blocks the calling task for that long, as taking a mutex does; in WAL
/// mode a reader waits for no writer (only, rarely, for the busy timeout
/// while another connection recovers the WAL index).
#[derive(Debug)]
pub(crate) struct Inline {
    file: PathBuf,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

/// Idle inline connections kept open; more are opened while needed.
const INLINE_IDLE: usize = 8;

impl Inline {
    fn new(dir: &Path) -> Self {
        Self {
            file: dir.join(FILE_NAME),
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn take(&self) -> Result<rusqlite::Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        if let Some(conn) = idle {
            return Ok(conn);
        }
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            &self.file,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    }

    /// Runs `f` on an idle connection; keeps the connection unless it failed.
    fn with<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        let conn = self.take()?;
        let result = f(&conn);
        if result.is_ok() {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < INLINE_IDLE {
                idle.push(conn);
            }
        }
        result
    }

    /// The first row of `sql` with `params` bound to `$1`, `$2`…, read by `f`.
    pub(crate) fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&str],
        f: impl FnOnce(&InlineRow<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        self.with(|conn| {
            let mut statement = conn.prepare_cached(sql)?;
            let mut rows = statement.query(rusqlite::params_from_iter(params))?;
            rows.next()?.map(|row| f(&InlineRow::new(row))).transpose()
        })
    }

    /// Every row of `sql` with `params` bound to `$1`, `$2`…, each read by `f`.
    pub(crate) fn query_all<T>(
        &self,
        sql: &str,
        params: &[&str],
        f: impl FnMut(&InlineRow<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.with(|conn| read_all(conn, sql, rusqlite::params_from_iter(params), f))
    }

    /// Every row of `sql` with `params` bound to `$1`, `$2`…, each read by
    /// `f`, on a blocking thread: for reads of thousands of rows (reports),
    /// too long to hold a runtime worker, yet far cheaper in one thread hop
    /// than sqlx's hand-over of every row.
    pub(crate) async fn query_all_blocking<T: Send + 'static>(
        self: &Arc<Self>,
        sql: &'static str,
        params: Vec<rusqlite::types::Value>,
        f: impl FnMut(&InlineRow<'_>) -> Result<T> + Send + 'static,
    ) -> Result<Vec<T>> {
        let inline = self.clone();
        let read = tokio::task::spawn_blocking(move || {
            inline.with(|conn| read_all(conn, sql, rusqlite::params_from_iter(params), f))
        });
        match read.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(crate::StoreError::Unavailable(format!(
                "an inline read was cancelled: {e}"
            ))),
        }
    }
}

/// Every row of `sql` with `params` on `conn`, each read by `f`.
fn read_all<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    mut f: impl FnMut(&InlineRow<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(f(&InlineRow::new(row))?);
    }
    Ok(out)
}

/// Runs `f` on the write transaction's own connection through rusqlite, on
/// this thread: statements a job runs many times over (an event per row)
/// then cost a step each instead of a hand-over to sqlx's worker thread and
/// back. sqlx's worker is locked out of the connection meanwhile; the
/// statements join the job's savepoint and transaction like any other, and
/// meet the same injected faults. Always `Some` (PostgreSQL's is `None`).
pub(crate) async fn with_raw_conn<T>(
    tx: &mut Tx,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
) -> Result<Option<T>> {
    let (handle, raw) = tx.raw().await?;
    let result = f(raw);
    drop(handle);
    result.map(Some)
}

/// `$1`, `$2`… as SQLite names them. sqlx's placeholders are named
/// parameters to SQLite, indexed in order of first appearance rather than
/// by their digits, so rusqlite binds them by name.
const DOLLARS: [&str; 16] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15", "$16",
];

/// `values[i]` named `$i+1`: rusqlite parameters for a statement written
/// with sqlx's placeholders (at most 16).
pub(crate) fn dollars<'v>(
    values: &[&'v dyn rusqlite::ToSql],
) -> Vec<(&'static str, &'v dyn rusqlite::ToSql)> {
    debug_assert!(values.len() <= DOLLARS.len());
    DOLLARS.iter().copied().zip(values.iter().copied()).collect()
}

/// A row of an inline read, its columns found by name.
///
/// rusqlite finds a column by name by asking SQLite for every column's name
/// up to it, on each get: for a record of twenty columns read whole, some
/// two hundred calls. The names are taken once per row instead.
pub(crate) struct InlineRow<'r> {
    row: &'r rusqlite::Row<'r>,
    names: Vec<&'r [u8]>,
}

impl<'r> InlineRow<'r> {
    fn new(row: &'r rusqlite::Row<'r>) -> Self {
        let statement = row.as_ref();
        let names = (0..statement.column_count())
            .map(|i| statement.column_name(i).map(str::as_bytes).unwrap_or_default())
            .collect();
        Self { row, names }
    }

    fn get<T: rusqlite::types::FromSql>(&self, column: &str) -> Result<T> {
        let wanted = column.as_bytes();
        Ok(
            match self
                .names
                .iter()
                .position(|name| name.eq_ignore_ascii_case(wanted))
            {
                Some(i) => self.row.get(i)?,
                // rusqlite's own error for a column that is not there.
                None => self.row.get(column)?,
            },
        )
    }
}

impl crate::cols::Cols for InlineRow<'_> {
    fn text(&self, column: &str) -> Result<String> {
        self.get(column)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        self.get(column)
    }
    fn int(&self, column: &str) -> Result<i64> {
        self.get(column)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        self.get(column)
    }
}

/// File name of the database inside the data directory.
pub const FILE_NAME: &str = "tollgate.db";

/// How long a writer waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Most write jobs committed together.
const MAX_GROUP: usize = 256;
/// Write jobs waiting for the writer before callers wait to enqueue.
const QUEUE: usize = 4096;
/// Free space below which the database is reported unready.
const MIN_FREE_BYTES: u64 = 1 << 20;

fn migrator() -> sqlx::migrate::Migrator {
    crate::migrations::Engine::Sqlite.migrator()
}

/// How every connection to `dir/tollgate.db` is made: WAL, the given
/// `synchronous` mode (FULL by default: a commit is on disk before it is
/// acknowledged), a busy timeout so that processes sharing the file wait
/// for each other, foreign keys on.
pub fn connect_options(dir: &Path, synchronous: Synchronous) -> Result<SqliteConnectOptions> {
    let url = format!("sqlite://{}", dir.join(FILE_NAME).display());
    let synchronous = match synchronous {
        Synchronous::Full => SqliteSynchronous::Full,
        Synchronous::Normal => SqliteSynchronous::Normal,
    };
    Ok(SqliteConnectOptions::from_str(&url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true))
}

impl SqlStore {
    /// Opens (creating if needed, unless `must_exist`) `dir/tollgate.db` and
    /// migrates it.
    pub async fn open(dir: &Path, store_options: &StoreOptions) -> Result<Self> {
        let file = dir.join(FILE_NAME);
        if store_options.must_exist && !file.exists() {
            let file = std::path::absolute(&file).unwrap_or(file);
            return Err(StoreError::NotFound(format!(
                "there is no Tollgate database at {}",
                file.display()
            )));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let options = connect_options(dir, store_options.sqlite_synchronous)?;
        let mut first = options.connect().await?;
        migrator().run(&mut first).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone().read_only(true))
            .await?;
        let faults = store_options.faults.clone().unwrap_or_default();
        let writer = Writer::start(first, options, dir.to_path_buf(), faults)?;
        let store = Self {
            read,
            writer,
            quota_specs: Default::default(),
            inline: Some(Arc::new(Inline::new(dir))),
        };
        store.after_migrations().await?;
        Ok(store)
    }
}

/// A write job's view of the database: the writer's connection, inside the
/// group's transaction and the job's own savepoint.
pub(crate) struct Tx {
    /// `conn` through rusqlite, for fast paths, made on first use: its
    /// prepared statements live as long as the connection. Used only while
    /// `conn`'s handle is locked. Declared before `conn`, so that it drops
    /// first: sqlx closes its connection on drop, and a close with
    /// statements left unfinalized would fail.
    raw: Option<rusqlite::Connection>,
    conn: SqliteConnection,
    discard: bool,
    /// The fault this connection was set up for.
    fault: Option<Fault>,
}

impl Tx {
    fn new(conn: SqliteConnection, fault: Option<Fault>) -> Self {
        Self {
            raw: None,
            conn,
            discard: false,
            fault,
        }
    }

    /// Rolls this job's changes back although it returns `Ok` (e.g. a
    /// refused reservation that claimed its request id first).
    pub(crate) fn discard(&mut self) {
        self.discard = true;
    }

    /// The connection through rusqlite (see `raw`), with the lock on its
    /// handle that must be held while it is used.
    async fn raw(&mut self) -> Result<(sqlx::sqlite::LockedSqliteHandle<'_>, &rusqlite::Connection)> {
        let mut handle = self.conn.lock_handle().await?;
        let raw = match &mut self.raw {
            Some(raw) => raw,
            empty => {
                // SAFETY: sqlx's open connection, locked while the wrapper is
                // used (the caller holds `handle` meanwhile). The wrapper never
                // closes it; it finalizes its own statements when it drops,
                // before sqlx closes the connection (see `raw`).
                let raw = unsafe { rusqlite::Connection::from_handle(handle.as_raw_handle().as_ptr()) }?;
                empty.insert(raw)
            }
        };
        Ok((handle, raw))
    }

    /// Closes the connection, its rusqlite statements finalized first.
    async fn close(self) {
        let Tx { raw, conn, .. } = self;
        drop(raw);
        let _ = conn.close().await;
    }
}

impl Deref for Tx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

/// The handle to this process's writer task.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    pub(crate) health: Arc<Health>,
    dir: PathBuf,
    /// Whether the writer task is running a group now (its connection in use).
    busy: Arc<AtomicBool>,
}

impl Writer {
    fn start(
        conn: SqliteConnection,
        options: SqliteConnectOptions,
        dir: PathBuf,
        faults: Arc<FaultPlan>,
    ) -> Result<Self> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let health = Arc::new(Health::default());
        let busy = Arc::new(AtomicBool::new(false));
        // A thread of its own: fast paths run SQLite inline on it, which
        // must not hold a runtime worker; the sqlx statements it awaits are
        // driven by the runtime as before.
        let runtime = tokio::runtime::Handle::current();
        let task = group_commit(queue, conn, options, health.clone(), faults, busy.clone());
        std::thread::Builder::new()
            .name("tollgate-writer".into())
            .spawn(move || runtime.block_on(task))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the database writer: {e}")))?;
        Ok(Self {
            jobs,
            health,
            dir,
            busy,
        })
    }

    /// The read pool, and the writer's one connection (`write`: in use while
    /// it runs a group).
    pub(crate) fn pools(&self, read: &sqlx::SqlitePool) -> Vec<crate::PoolStats> {
        let busy = u32::from(self.busy.load(Ordering::Relaxed));
        vec![
            crate::pool_stats("read", read),
            crate::PoolStats {
                pool: "write",
                in_use: busy,
                idle: 1 - busy,
                max: 1,
            },
        ]
    }

    /// Runs `f` in a write transaction and answers once it is committed.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<T>> + Send + 'static,
    {
        self.run_fast(None, f).await
    }

    /// [`run`](Self::run) with a fast path tried first (see [`Fast`]).
    pub(crate) async fn run_fast<T, F>(&self, fast: Option<Fast<T>>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<T>> + Send + 'static,
    {
        let stopped = || StoreError::Unavailable("the database writer stopped before answering".into());
        let (reply, answer) = oneshot::channel();
        let queued = Some(Instant::now());
        self.jobs
            .send(Box::new(TypedJob {
                f,
                fast,
                reply,
                queued,
            }))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Why the database could not take writes for long, if it could not: the
    /// file at its size limit or the disk nearly full.
    pub(crate) async fn capacity_problem(&self, tx: &mut Tx) -> Result<Option<String>> {
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&mut **tx)
            .await?;
        let max: i64 = sqlx::query_scalar("PRAGMA max_page_count")
            .fetch_one(&mut **tx)
            .await?;
        if pages >= max {
            return Ok(Some(format!(
                "the database is full ({pages} pages, max_page_count {max})"
            )));
        }
        Ok(free_bytes(&self.dir)
            .filter(|free| *free < MIN_FREE_BYTES)
            .map(|free| format!("only {free} bytes free on the disk of {}", self.dir.display())))
    }
}

/// Free bytes for unprivileged writers on the filesystem of `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `stat` a writable statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    #[allow(
        clippy::useless_conversion,
        reason = "the field types differ between platforms"
    )]
    Some(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

/// A write job's fast path: the common case of a hot write, run on the
/// writer's connection through rusqlite, in the job's savepoint, with no
/// hand-over to sqlx's worker thread per statement (the writer takes the
/// connection's handle once for a run of such jobs). `Ok(Some(_))` is the
/// job's answer, its changes kept; `Ok(None)` declines: the writer rolls
/// back to the job's savepoint and runs the job's sqlx path, which must
/// decide the same as the fast path would have wherever it answers; an
/// error is the job's error, as from its sqlx path.
pub(crate) type Fast<T> = Box<dyn FnOnce(&rusqlite::Connection) -> Result<Option<T>> + Send>;

/// A write waiting for the writer.
trait Job: Send {
    fn run<'t>(self: Box<Self>, tx: &'t mut Tx) -> BoxFuture<'t, Box<dyn Ran>>;
    /// Whether it has a fast path not tried yet.
    fn has_fast(&self) -> bool;
    /// Runs its fast path on `conn`; gives the job back if the path declined.
    fn run_fast(
        self: Box<Self>,
        conn: &rusqlite::Connection,
    ) -> std::result::Result<Box<dyn Ran>, Box<dyn Job>>;
    /// Answers without running (the group could not start).
    fn fail(self: Box<Self>, e: StoreError);
}

/// What became of a job inside the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Keep its changes (release its savepoint).
    Keep,
    /// Roll back to its savepoint; the group goes on.
    Undo,
    /// A storage fault: SQLite may have rolled back the whole transaction.
    Fault,
}

/// A job that ran, waiting for the group's commit to be answered.
trait Ran: Send {
    fn step(&self) -> Step;
    fn error(&self) -> Option<String>;
    fn deliver(self: Box<Self>, committed: std::result::Result<(), &str>);
}

struct TypedJob<T, F> {
    f: F,
    fast: Option<Fast<T>>,
    reply: oneshot::Sender<Result<T>>,
    /// When its caller handed it over (waiting for room in the queue
    /// included); taken when the wait is recorded.
    queued: Option<Instant>,
}

impl<T, F> TypedJob<T, F> {
    fn started(&mut self) {
        if let Some(queued) = self.queued.take() {
            crate::record_write_wait(queued.elapsed());
        }
    }
}

/// What an error does to the group: a storage fault ends it, any other
/// error only rolls its job back.
fn step_of_error(e: &StoreError) -> Step {
    if e.is_unavailable() {
        Step::Fault
    } else {
        Step::Undo
    }
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send + 'static,
    F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<T>> + Send + 'static,
{
    fn run<'t>(mut self: Box<Self>, tx: &'t mut Tx) -> BoxFuture<'t, Box<dyn Ran>> {
        self.started();
        let TypedJob { f, reply, .. } = *self;
        Box::pin(async move {
            tx.discard = false;
            let result = f(&mut *tx).await;
            let step = match &result {
                Ok(_) if tx.discard => Step::Undo,
                Ok(_) => Step::Keep,
                Err(e) => step_of_error(e),
            };
            Box::new(TypedRan { result, reply, step }) as Box<dyn Ran>
        })
    }

    fn has_fast(&self) -> bool {
        self.fast.is_some()
    }

    fn run_fast(
        mut self: Box<Self>,
        conn: &rusqlite::Connection,
    ) -> std::result::Result<Box<dyn Ran>, Box<dyn Job>> {
        self.started();
        let Some(fast) = self.fast.take() else {
            return Err(self);
        };
        let (result, step) = match fast(conn) {
            Ok(None) => return Err(self),
            Ok(Some(value)) => (Ok(value), Step::Keep),
            Err(e) => {
                let step = step_of_error(&e);
                (Err(e), step)
            }
        };
        let TypedJob { reply, .. } = *self;
        Ok(Box::new(TypedRan { result, reply, step }))
    }

    fn fail(self: Box<Self>, e: StoreError) {
        let _ = self.reply.send(Err(e));
    }
}

struct TypedRan<T> {
    result: Result<T>,
    reply: oneshot::Sender<Result<T>>,
    step: Step,
}

impl<T: Send> Ran for TypedRan<T> {
    fn step(&self) -> Step {
        self.step
    }

    fn error(&self) -> Option<String> {
        self.result.as_ref().err().map(ToString::to_string)
    }

    fn deliver(self: Box<Self>, committed: std::result::Result<(), &str>) {
        let answer = match (self.result, committed) {
            // A job's own error stands: its changes were rolled back either way.
            (Err(e), _) => Err(e),
            (Ok(v), Ok(())) => Ok(v),
            (Ok(_), Err(why)) => Err(StoreError::Unavailable(why.to_owned())),
        };
        let _ = self.reply.send(answer);
    }
}

async fn exec(tx: &mut Tx, sql: &'static str) -> Result<()> {
    sqlx::query(sql).execute(&mut **tx).await?;
    Ok(())
}

/// The writer task: runs until every [`Writer`] handle is dropped.
async fn group_commit(
    mut queue: mpsc::Receiver<Box<dyn Job>>,
    first: SqliteConnection,
    options: SqliteConnectOptions,
    health: Arc<Health>,
    faults: Arc<FaultPlan>,
    busy: Arc<AtomicBool>,
) {
    let mut conn = Some(Tx::new(first, None));
    let mut pending: VecDeque<Box<dyn Job>> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match queue.recv().await {
                Some(job) => pending.push_back(job),
                None => break,
            }
        }
        while pending.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => break,
            }
        }
        let fault = faults.current();
        // A connection set up for another fault (or none) is replaced.
        let reusable = conn.take().filter(|tx| tx.fault == fault);
        let mut tx = match reusable {
            Some(tx) => tx,
            None => match connect(&options, fault).await {
                Ok(tx) => tx,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the database for writing");
                    health.fault(&e.to_string());
                    for job in pending.drain(..) {
                        job.fail(StoreError::Unavailable(e.to_string()));
                    }
                    continue;
                }
            },
        };
        busy.store(true, Ordering::Relaxed);
        let group = run_group(&mut tx, &mut pending, &health).await;
        busy.store(false, Ordering::Relaxed);
        match group {
            Ok(ran) => {
                health.committed();
                for job in ran {
                    job.deliver(Ok(()));
                }
                conn = Some(tx);
            }
            Err((ran, failure)) => {
                // Whatever the state of the transaction, end it; then start
                // over on a fresh connection, so that nothing of this group
                // can leak into the next one.
                let _ = exec(&mut tx, "ROLLBACK").await;
                tx.close().await;
                tracing::warn!(error = %failure, jobs = ran.len(), "write group rolled back");
                health.fault(&failure);
                for job in ran {
                    job.deliver(Err(&failure));
                }
            }
        }
    }
    if let Some(tx) = conn {
        tx.close().await;
    }
}

/// A writer connection, set up for `fault` (tests only).
async fn connect(options: &SqliteConnectOptions, fault: Option<Fault>) -> Result<Tx> {
    let mut conn = options.connect().await?;
    if let Some(Fault::ConnectionLost { after_steps }) = fault {
        // Interrupted every `after_steps` engine steps, counted over all the
        // statements of the connection (sqlx's and the fast paths' alike),
        // as a connection that is lost mid-way would be.
        let period = u64::from(after_steps.max(1));
        let mut steps: u64 = 0;
        conn.lock_handle().await?.set_progress_handler(1, move || {
            steps += 1;
            !steps.is_multiple_of(period)
        });
    }
    if fault == Some(Fault::DiskFull) {
        // The file may not grow past its current size.
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&mut conn)
            .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PRAGMA max_page_count = {pages}")))
            .execute(&mut conn)
            .await?;
    }
    Ok(Tx::new(conn, fault))
}

type GroupFailure = (Vec<Box<dyn Ran>>, String);

/// Runs up to [`MAX_GROUP`] jobs from the front of `pending` in one
/// transaction and commits it. Jobs not run (after a fault) stay in
/// `pending` for the next group.
///
/// A group that starts with fast jobs begins its transaction through
/// rusqlite, and one that ends with them commits through it (see
/// [`run_fast_jobs`]): a group of fast jobs alone never hands a statement
/// to sqlx's worker.
async fn run_group(
    tx: &mut Tx,
    pending: &mut VecDeque<Box<dyn Job>>,
    health: &Health,
) -> std::result::Result<Vec<Box<dyn Ran>>, GroupFailure> {
    let mut ran: Vec<Box<dyn Ran>> = Vec::new();
    let mut begun = false;
    let mut taken = 0;
    while taken < MAX_GROUP {
        let Some(job) = pending.pop_front() else { break };
        taken += 1;
        let job = if job.has_fast() {
            // This job and the fast ones after it, inline; one that
            // declines comes back with its savepoint open.
            match run_fast_jobs(tx, job, pending, &mut ran, &mut taken, begun).await {
                FastRun::Committed => return Ok(ran),
                FastRun::Open => {
                    begun = true;
                    continue;
                }
                FastRun::Declined(job) => {
                    begun = true;
                    job
                }
                FastRun::NotBegun(why) => return Err(not_begun(pending, health, why)),
                FastRun::Failed(why) => return Err((ran, why)),
            }
        } else {
            if !begun {
                if let Err(e) = exec(tx, "BEGIN IMMEDIATE").await {
                    pending.push_front(job);
                    return Err(not_begun(pending, health, e.to_string()));
                }
                begun = true;
            }
            if let Err(e) = exec(tx, "SAVEPOINT job").await {
                pending.push_front(job);
                return Err((ran, e.to_string()));
            }
            job
        };
        let done = match AssertUnwindSafe(job.run(tx)).catch_unwind().await {
            Ok(done) => done,
            Err(_) => {
                // The job's reply went with it; its caller sees the writer
                // stop answering. The others are rolled back and answered.
                tracing::error!("a write job panicked; its group is rolled back");
                return Err((ran, "a write in the same group failed".into()));
            }
        };
        let step = done.step();
        let fault = done.error();
        ran.push(done);
        let settled = match step {
            Step::Keep => exec(tx, "RELEASE job").await,
            Step::Undo => match exec(tx, "ROLLBACK TO job").await {
                Ok(()) => exec(tx, "RELEASE job").await,
                Err(e) => Err(e),
            },
            Step::Fault => return Err((ran, fault.unwrap_or_default())),
        };
        if let Err(e) = settled {
            return Err((ran, e.to_string()));
        }
    }
    if !begun {
        return Ok(ran);
    }
    match exec(tx, "COMMIT").await {
        Ok(()) => Ok(ran),
        Err(e) => Err((ran, e.to_string())),
    }
}

/// The group could not begin: nothing ran, and every waiting job gets the
/// reason, once readiness knows it (a caller told 503 may ask at once).
fn not_begun(pending: &mut VecDeque<Box<dyn Job>>, health: &Health, why: String) -> GroupFailure {
    health.fault(&why);
    for job in pending.drain(..) {
        job.fail(StoreError::Unavailable(why.clone()));
    }
    (Vec::new(), why)
}

/// How a run of fast jobs ended.
enum FastRun {
    /// Every job ran and the group had no more: its transaction is committed.
    Committed,
    /// Every job ran; the group goes on, its transaction open.
    Open,
    /// This job's fast path declined: its savepoint is rolled back to and
    /// still open, for its sqlx path.
    Declined(Box<dyn Job>),
    /// The group's transaction could not begin; every job is back in
    /// `pending`.
    NotBegun(String),
    /// The group's failure (a job not run is back in `pending`).
    Failed(String),
}

/// Runs `first` (which has a fast path) and each job after it at the front
/// of `pending` that has one, while the group has room, through rusqlite
/// on the writer's connection: its handle is taken once for the run. Each
/// job runs in a savepoint of its own, as in [`run_group`]. The run begins
/// the group's transaction unless it is `begun`, and commits it when no job
/// of the group is left.
async fn run_fast_jobs(
    tx: &mut Tx,
    first: Box<dyn Job>,
    pending: &mut VecDeque<Box<dyn Job>>,
    ran: &mut Vec<Box<dyn Ran>>,
    taken: &mut usize,
    begun: bool,
) -> FastRun {
    let (handle, raw) = match tx.raw().await {
        Ok(locked) => locked,
        Err(e) => {
            pending.push_front(first);
            return if begun {
                FastRun::Failed(e.to_string())
            } else {
                FastRun::NotBegun(e.to_string())
            };
        }
    };
    let statement = |sql: &str| -> std::result::Result<(), String> {
        raw.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(drop)
            .map_err(|e| e.to_string())
    };
    if !begun && let Err(why) = statement("BEGIN IMMEDIATE") {
        drop(handle);
        pending.push_front(first);
        return FastRun::NotBegun(why);
    }
    let mut next = Some(first);
    let outcome = loop {
        let Some(job) = next.take() else {
            // Nothing left for this group: commit here, unless a job without
            // a fast path is next.
            if *taken < MAX_GROUP && !pending.is_empty() {
                break FastRun::Open;
            }
            break match statement("COMMIT") {
                Ok(()) => FastRun::Committed,
                Err(why) => FastRun::Failed(why),
            };
        };
        if let Err(why) = statement("SAVEPOINT job") {
            pending.push_front(job);
            break FastRun::Failed(why);
        }
        let done = match std::panic::catch_unwind(AssertUnwindSafe(|| job.run_fast(raw))) {
            Ok(Ok(done)) => done,
            Ok(Err(declined)) => match statement("ROLLBACK TO job") {
                Ok(()) => break FastRun::Declined(declined),
                Err(why) => {
                    pending.push_front(declined);
                    break FastRun::Failed(why);
                }
            },
            Err(_) => {
                tracing::error!("a write job panicked; its group is rolled back");
                break FastRun::Failed("a write in the same group failed".into());
            }
        };
        let step = done.step();
        let fault = done.error();
        ran.push(done);
        let settled = match step {
            Step::Keep => statement("RELEASE job"),
            Step::Undo => statement("ROLLBACK TO job").and_then(|()| statement("RELEASE job")),
            Step::Fault => break FastRun::Failed(fault.unwrap_or_default()),
        };
        if let Err(why) = settled {
            break FastRun::Failed(why);
        }
        if *taken < MAX_GROUP && pending.front().is_some_and(|job| job.has_fast()) {
            next = pending.pop_front();
            *taken += 1;
        }
    };
    drop(handle);
    outcome
}

#[cfg(test)]
mod tests {
    use sqlx::ConnectOptions;

    use super::*;

    /// A 200 means the change is on disk: every connection of the store is
    /// FULL unless the operator opted out.
    #[tokio::test]
    async fn commits_are_flushed_by_default_and_normal_is_an_opt_out() {
        assert_eq!(StoreOptions::default().sqlite_synchronous, Synchronous::Full);
        let dir = tempfile::tempdir().unwrap();
        for (mode, expected) in [(Synchronous::Full, 2), (Synchronous::Normal, 1)] {
            let mut conn = connect_options(dir.path(), mode)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!((synchronous, journal.as_str()), (expected, "wal"), "{mode:?}");
        }
    }
}

#[cfg(test)]
mod fast_paths {
    use super::*;

    async fn store() -> (tempfile::TempDir, SqlStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::open(dir.path(), &StoreOptions::default())
            .await
            .unwrap();
        store
            .writer
            .run(|tx| {
                Box::pin(async move {
                    exec(
                        tx,
                        "CREATE TABLE scratch (k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
                    )
                    .await
                })
            })
            .await
            .unwrap();
        (dir, store)
    }

    /// A job whose fast path inserts (`k`, 1) and then answers, declines or
    /// fails on a duplicate key; its sqlx path inserts (`k`, 2).
    async fn job(store: &SqlStore, k: String, fast: &'static str) -> Result<&'static str> {
        let slow_k = k.clone();
        let fast: Fast<&'static str> = Box::new(move |conn| {
            conn.execute("INSERT INTO scratch VALUES (?1, 1)", [&k])?;
            match fast {
                "answer" => Ok(Some("fast")),
                "decline" => Ok(None),
                _ => {
                    conn.execute("INSERT INTO scratch VALUES (?1, 1)", [&k])?;
                    Ok(Some("unreachable"))
                }
            }
        });
        store.writer.run_fast(Some(fast), slow(slow_k)).await
    }

    /// A job's sqlx path: inserts (`k`, 2).
    pub(super) fn slow(
        k: String,
    ) -> impl for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<&'static str>> + Send {
        move |tx| {
            Box::pin(async move {
                sqlx::query("INSERT INTO scratch VALUES ($1, 2)")
                    .bind(k)
                    .execute(&mut **tx)
                    .await?;
                Ok("slow")
            })
        }
    }

    async fn rows(store: &SqlStore) -> Vec<(String, i64)> {
        sqlx::query_as("SELECT k, v FROM scratch ORDER BY k")
            .fetch_all(&store.read)
            .await
            .unwrap()
    }

    /// A fast path's answer keeps its changes; one that declines leaves none
    /// and its sqlx path decides; one that fails is rolled back alone.
    #[tokio::test]
    async fn a_declined_or_failed_fast_path_leaves_nothing_of_its_own() {
        let (_dir, store) = store().await;
        assert_eq!(job(&store, "a".into(), "answer").await.unwrap(), "fast");
        assert_eq!(job(&store, "b".into(), "decline").await.unwrap(), "slow");
        let failed = job(&store, "c".into(), "fail").await.unwrap_err();
        assert!(!failed.is_unavailable(), "{failed}");
        assert_eq!(rows(&store).await, [("a".into(), 1), ("b".into(), 2)]);
    }

    /// Fast and sqlx jobs, answering, declining and failing, committed
    /// together in groups: each ends as if it had run alone.
    #[tokio::test]
    async fn fast_and_sqlx_jobs_share_groups_and_each_ends_as_alone() {
        let (_dir, store) = store().await;
        let kinds = ["answer", "decline", "fail", "answer", "answer", "decline"];
        let jobs = (0..300).map(|i| {
            let store = store.clone();
            async move {
                let kind = kinds[i % kinds.len()];
                if i % 7 == 0 {
                    // A job with no fast path.
                    let k = format!("k{i:03}");
                    let answer = store
                        .writer
                        .run(move |tx| {
                            Box::pin(async move {
                                sqlx::query("INSERT INTO scratch VALUES ($1, 3)")
                                    .bind(k)
                                    .execute(&mut **tx)
                                    .await?;
                                Ok("sqlx")
                            })
                        })
                        .await;
                    return (i, answer.map_err(|e| e.to_string()));
                }
                (
                    i,
                    job(&store, format!("k{i:03}"), kind)
                        .await
                        .map_err(|e| e.to_string()),
                )
            }
        });
        let answers = futures::future::join_all(jobs).await;
        let mut expected = Vec::new();
        for (i, answer) in answers {
            let kind = kinds[i % kinds.len()];
            let (want, v) = match (i % 7 == 0, kind) {
                (true, _) => (Some("sqlx"), Some(3)),
                (false, "answer") => (Some("fast"), Some(1)),
                (false, "decline") => (Some("slow"), Some(2)),
                _ => (None, None),
            };
            assert_eq!(answer.as_ref().ok().copied(), want, "job {i}: {answer:?}");
            if let Some(v) = v {
                expected.push((format!("k{i:03}"), v));
            }
        }
        assert_eq!(rows(&store).await, expected);
    }
}

#[cfg(test)]
mod groups {
    use super::fast_paths::slow;
    use super::*;

    /// A job of `kind` writing `k`: `F` a fast path that answers, `D` one that
    /// declines (its sqlx path answers), `S` a job with no fast path.
    fn job(kind: char, k: String) -> (Box<dyn Job>, oneshot::Receiver<Result<&'static str>>) {
        let (reply, answer) = oneshot::channel();
        let slow_k = k.clone();
        let fast: Option<Fast<&'static str>> = match kind {
            'S' => None,
            _ => Some(Box::new(move |conn| {
                conn.execute("INSERT INTO scratch VALUES (?1, 1)", [&k])?;
                Ok((kind == 'F').then_some("fast"))
            })),
        };
        let job = TypedJob {
            f: slow(slow_k),
            fast,
            reply,
            queued: None,
        };
        (Box::new(job), answer)
    }

    /// Every order of fast, declining and sqlx jobs in a group is committed
    /// whole, whichever driver begins and ends the transaction, and leaves
    /// the connection out of any transaction.
    #[tokio::test]
    async fn a_group_commits_whichever_driver_begins_and_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let _store = SqlStore::open(dir.path(), &StoreOptions::default())
            .await
            .unwrap();
        let options = connect_options(dir.path(), Synchronous::Full).unwrap();
        let mut tx = connect(&options, None).await.unwrap();
        exec(
            &mut tx,
            "CREATE TABLE scratch (k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
        )
        .await
        .unwrap();
        let health = Health::default();
        for (n, group) in [
            "F", "FF", "S", "SF", "FS", "FSF", "SFS", "D", "FD", "DF", "FDF", "SDS",
        ]
        .into_iter()
        .enumerate()
        {
            let mut pending = VecDeque::new();
            let mut answers = Vec::new();
            for (i, kind) in group.chars().enumerate() {
                let (job, answer) = job(kind, format!("g{n}j{i}"));
                pending.push_back(job);
                answers.push((kind, answer));
            }
            let ran = match run_group(&mut tx, &mut pending, &health).await {
                Ok(ran) => ran,
                Err((_, why)) => panic!("group {group}: {why}"),
            };
            assert!(pending.is_empty(), "group {group}");
            for job in ran {
                job.deliver(Ok(()));
            }
            for (i, (kind, answer)) in answers.into_iter().enumerate() {
                let want = if kind == 'F' { "fast" } else { "slow" };
                assert_eq!(answer.await.unwrap().unwrap(), want, "group {group}, job {i}");
            }
            let (handle, raw) = tx.raw().await.unwrap();
            assert!(raw.is_autocommit(), "group {group} left its transaction open");
            drop(handle);
            // Committed: another connection sees every job's row.
            let mut other = options.connect().await.unwrap();
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT k, v FROM scratch WHERE k LIKE $1 ORDER BY k")
                    .bind(format!("g{n}j%"))
                    .fetch_all(&mut other)
                    .await
                    .unwrap();
            let want: Vec<(String, i64)> = group
                .chars()
                .enumerate()
                .map(|(i, kind)| (format!("g{n}j{i}"), if kind == 'F' { 1 } else { 2 }))
                .collect();
            assert_eq!(rows, want, "group {group}");
        }
        tx.close().await;
    }
}
