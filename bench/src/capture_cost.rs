//! Capture cost: how much capture slows the application down. The same inserts and updates
//! run against copies of a table: one plain, one with lakelink's real capture triggers
//! installed, and two references that bound what any trigger-based capture can reach: a
//! trigger that does nothing, and one that logs a single row of two integers.
//!
//! Two tables: the initial-sync benchmark's CRM account table (UUID key, the benchmark's row
//! count already in it), which the target is stated for, and a table that makes capture look
//! as expensive as it can: an integer key and no other index, empty at the start, so that
//! the plain writer only appends to one B-tree and the log's row is half of all the work.
//!
//! Each workload is generated before the clock starts, so that making up values is not
//! counted as the writer's work, and every variant replays the same operations.

use crate::dataset;
use anyhow::Result;
use lakelink_connectors::source::sqlite::{SqliteSource, SqliteSourceConfig};
use lakelink_model::schema::TableSchema;
use lakelink_model::source::{CaptureSpec, Source};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Transaction sizes measured: an application committing each change, a batching one, a bulk
/// loader.
const CHANGES_PER_TRANSACTION: [u64; 3] = [1, 100, 10_000];

/// One measured workload: changes per second under each kind of capture.
pub struct Measure {
    /// Which table.
    pub table: String,
    /// How the writer prepares its statements.
    pub statements: Statements,
    /// Changes per transaction.
    pub per_tx: u64,
    /// Changes replayed (half inserts, half updates).
    pub changes: usize,
    /// Changes per second on the plain table.
    pub plain: f64,
    /// Changes per second with lakelink's capture installed.
    pub captured: f64,
    /// Changes per second with an insert and an update trigger that do nothing: what SQLite
    /// charges for running a trigger at all.
    pub empty_trigger: f64,
    /// Changes per second with triggers that log only the link and the operation: the floor
    /// of any capture that writes one log row per change.
    pub minimal_log: f64,
}

/// How the writer prepares its statements.
#[derive(Clone, Copy)]
pub enum Statements {
    /// Anew for every change, as `rusqlite::Connection::execute` does. SQLite compiles the
    /// table's triggers into every statement it prepares, so this is where triggers cost most.
    PerChange,
    /// Once, then reused (rusqlite's `prepare_cached`, Python's `sqlite3` statement cache,
    /// most drivers and ORMs).
    Cached,
}

impl Statements {
    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Statements::PerChange => "prepared per change",
            Statements::Cached => "prepared once",
        }
    }
}

/// What is installed on the table before the workload runs.
#[derive(Clone, Copy)]
enum Capture {
    None,
    Lakelink,
    EmptyTrigger,
    MinimalLog,
}

/// One change of a workload: the statement and its parameters.
struct Change {
    sql: &'static str,
    params: Vec<Value>,
}

/// Where each measured copy of a table comes from.
enum Base {
    /// A new database with an empty integer-key table.
    EmptyIntegerKey,
    /// A copy of this database file.
    Copy(PathBuf),
}

impl Base {
    /// Creates a fresh copy of the table at `path`.
    fn create(&self, path: &Path) -> Result<()> {
        match self {
            Base::EmptyIntegerKey => {
                let conn = Connection::open(path)?;
                conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
                conn.execute_batch(
                    "CREATE TABLE account (accountid INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT,
                     revenue REAL, employees INTEGER, notes TEXT, createdon DATETIME, modifiedon DATETIME);",
                )?;
            }
            Base::Copy(from) => {
                std::fs::copy(from, path)?;
            }
        }
        Ok(())
    }
}

/// A table and the changes replayed on it.
struct Workload {
    /// How the report names the table.
    table: String,
    /// Where each measured copy of the table comes from.
    base: Base,
    /// The column lakelink partitions by.
    partition_column: usize,
    /// The changes, in the order they are replayed.
    changes: Vec<Change>,
}

const INSERT_APPEND: &str = "INSERT INTO account VALUES (?1, 'Contoso', 'Lisboa', 1234.5, 42, 'a note, with \"quotes\"', '2024-05-25 16:21:09', '2024-05-25 16:21:09')";
const UPDATE_APPEND: &str = "UPDATE account SET revenue = revenue + 1 WHERE accountid = ?1";
const UPDATE_CRM: &str =
    "UPDATE account SET revenue = revenue + 1, modifiedon = ?2 WHERE accountid = ?1";

/// The worst case: an integer-key table with no other index, empty at the start; half the
/// changes insert a new row at the end, half update a row inserted earlier.
fn appends(changes: usize) -> Workload {
    let changes = (0..changes)
        .map(|done| {
            if done % 2 == 0 || done < 2 {
                Change {
                    sql: INSERT_APPEND,
                    params: vec![Value::Integer(done as i64)],
                }
            } else {
                Change {
                    sql: UPDATE_APPEND,
                    params: vec![Value::Integer((done / 2) as i64)],
                }
            }
        })
        .collect();
    Workload {
        table: "integer key, no other index, empty at the start".into(),
        base: Base::EmptyIntegerKey,
        partition_column: 6,
        changes,
    }
}

/// The CRM account table of the initial-sync benchmark, `rows` accounts in it: half the
/// changes insert a new account, half update the revenue and modification time of an
/// existing one picked at random.
fn crm(dir: &Path, rows: u64, changes: usize) -> Result<Workload> {
    let base: PathBuf = dir.join(format!("crm-{rows}.db"));
    if !base.exists() {
        eprintln!("generating {rows} accounts for the capture cost...");
        dataset::create(&base, rows, 44)?;
    }
    let keys: Vec<String> = {
        let conn = Connection::open(&base)?;
        let mut stmt = conn.prepare("SELECT accountid FROM account")?;
        stmt.query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut rng = StdRng::seed_from_u64(45);
    let changes = (0..changes as u64)
        .map(|done| {
            if done % 2 == 0 {
                Change {
                    sql: dataset::INSERT,
                    params: dataset::account(&mut rng, rows + done).to_vec(),
                }
            } else {
                let key = &keys[rng.random_range(0..keys.len())];
                Change {
                    sql: UPDATE_CRM,
                    params: vec![
                        Value::Text(key.clone()),
                        Value::Text("2026-11-24 10:00:00".into()),
                    ],
                }
            }
        })
        .collect();
    Ok(Workload {
        table: format!("CRM account table ({rows} rows, UUID key)"),
        base: Base::Copy(base),
        partition_column: 6,
        changes,
    })
}

/// A fresh copy of the workload's table with `capture` installed.
fn prepare(workload: &Workload, path: &Path, capture: Capture) -> Result<Connection> {
    workload.base.create(path)?;
    let conn = Connection::open(path)?;
    match capture {
        Capture::None => {}
        Capture::Lakelink => {
            let mut source = SqliteSource::open(
                &SqliteSourceConfig {
                    path: path.to_path_buf(),
                },
                "bench",
            )?;
            let described = source.describe_table(&"account".into())?;
            source.install_capture(&CaptureSpec {
                link: 1,
                table: "account".into(),
                schema: TableSchema {
                    linked_width: described.columns.len(),
                    key: described.primary_key,
                    partition_column: Some(workload.partition_column),
                    columns: described.columns,
                    fills: Vec::new(),
                    table_id: None,
                },
                added_from: None,
            })?;
        }
        Capture::EmptyTrigger => conn.execute_batch(
            "CREATE TRIGGER ref_insert AFTER INSERT ON account BEGIN SELECT 1 WHERE 0; END;
             CREATE TRIGGER ref_update AFTER UPDATE ON account BEGIN SELECT 1 WHERE 0; END;",
        )?,
        Capture::MinimalLog => conn.execute_batch(
            "CREATE TABLE ref_log (pos INTEGER PRIMARY KEY, link INTEGER NOT NULL, op INTEGER NOT NULL);
             CREATE TRIGGER ref_insert AFTER INSERT ON account BEGIN
               INSERT INTO ref_log (link, op) VALUES (1, 1); END;
             CREATE TRIGGER ref_update AFTER UPDATE ON account BEGIN
               INSERT INTO ref_log (link, op) VALUES (1, 2); END;",
        )?,
    }
    Ok(conn)
}

/// Replays `changes`, `per_tx` to a transaction; changes per second.
fn replay(
    conn: &Connection,
    changes: &[Change],
    per_tx: u64,
    statements: Statements,
) -> Result<f64> {
    let started = Instant::now();
    for chunk in changes.chunks(per_tx as usize) {
        let tx = conn.unchecked_transaction()?;
        for change in chunk {
            let params = params_from_iter(change.params.iter());
            match statements {
                Statements::PerChange => tx.execute(change.sql, params)?,
                Statements::Cached => tx.prepare_cached(change.sql)?.execute(params)?,
            };
        }
        tx.commit()?;
    }
    Ok(changes.len() as f64 / started.elapsed().as_secs_f64())
}

/// Runs every workload, `changes` changes each (a twentieth of that when every change
/// commits on its own, which waits for the disk), and returns the measures. `rows` is the
/// CRM table's size.
pub fn measure(changes: usize, rows: u64) -> Result<Vec<Measure>> {
    let dir = tempfile::tempdir()?;
    let mut out = Vec::new();
    for workload in [appends(changes), crm(dir.path(), rows, changes)?] {
        for statements in [Statements::PerChange, Statements::Cached] {
            for per_tx in CHANGES_PER_TRANSACTION {
                let count = if per_tx == 1 { changes / 20 } else { changes };
                let replayed = &workload.changes[..count];
                let rate = |capture: Capture| -> Result<f64> {
                    let path = dir.path().join("measured.db");
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                    }
                    let conn = prepare(&workload, &path, capture)?;
                    replay(&conn, replayed, per_tx, statements)
                };
                eprintln!(
                    "  {}, {}, {per_tx} per transaction",
                    workload.table,
                    statements.label()
                );
                out.push(Measure {
                    table: workload.table.clone(),
                    statements,
                    per_tx,
                    changes: count,
                    plain: rate(Capture::None)?,
                    captured: rate(Capture::Lakelink)?,
                    empty_trigger: rate(Capture::EmptyTrigger)?,
                    minimal_log: rate(Capture::MinimalLog)?,
                });
            }
        }
    }
    Ok(out)
}
