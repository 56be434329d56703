//! Capture cost: how much capture slows the application down. The same inserts and updates
//! run against copies of the sample schema: one plain, one with lakelink's real capture
//! triggers installed, and two references that bound what any trigger-based capture can
//! reach: a trigger that does nothing, and one that logs a single row of two integers.

use anyhow::Result;
use lakelink_connectors::source::sqlite::{SqliteSource, SqliteSourceConfig};
use lakelink_model::schema::TableSchema;
use lakelink_model::source::{CaptureSpec, Source};
use rusqlite::{Connection, params};
use std::path::Path;
use std::time::Instant;

/// One measured workload: changes per second under each kind of capture.
pub struct Measure {
    /// What was measured.
    pub workload: String,
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

/// What is installed on the table before the workload runs.
#[derive(Clone, Copy)]
enum Capture {
    None,
    Lakelink,
    EmptyTrigger,
    MinimalLog,
}

fn prepare(dir: &Path, name: &str, capture: Capture) -> Result<Connection> {
    let path = dir.join(format!("{name}.db"));
    let conn = Connection::open(&path)?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    conn.execute_batch(
        "CREATE TABLE account (accountid INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT,
         revenue REAL, employees INTEGER, notes TEXT, createdon DATETIME, modifiedon DATETIME);",
    )?;
    match capture {
        Capture::None => {}
        Capture::Lakelink => {
            let mut source = SqliteSource::open(&SqliteSourceConfig { path: path.clone() })?;
            let described = source.describe_table("account")?;
            source.install_capture(&CaptureSpec {
                link: 1,
                table: "account".into(),
                schema: TableSchema {
                    linked_width: described.columns.len(),
                    key: described.primary_key,
                    partition_column: Some(6),
                    columns: described.columns,
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

fn workload(conn: &Connection, changes: u64, per_tx: u64) -> Result<f64> {
    let started = Instant::now();
    let mut done = 0;
    while done < changes {
        let tx = conn.unchecked_transaction()?;
        for _ in 0..per_tx.min(changes - done) {
            if done % 2 == 0 || done < 2 {
                tx.execute(
                    "INSERT INTO account VALUES (?1, 'Contoso', 'Lisboa', 1234.5, 42, 'a note, with \"quotes\"', '2024-05-25 16:21:09', '2024-05-25 16:21:09')",
                    params![done as i64],
                )?;
            } else {
                tx.execute(
                    "UPDATE account SET revenue = revenue + 1 WHERE accountid = ?1",
                    params![(done / 2) as i64],
                )?;
            }
            done += 1;
        }
        tx.commit()?;
    }
    Ok(changes as f64 / started.elapsed().as_secs_f64())
}

/// Runs every workload and returns the measures.
pub fn measure(changes: u64) -> Result<Vec<Measure>> {
    let dir = tempfile::tempdir()?;
    let mut out = Vec::new();
    for (label, per_tx, n) in [
        ("1 change per transaction", 1, changes / 20),
        ("100 changes per transaction", 100, changes),
        ("10000 changes per transaction", 10_000, changes),
    ] {
        let rate = |capture: Capture, kind: &str| -> Result<f64> {
            let conn = prepare(dir.path(), &format!("{kind}-{per_tx}"), capture)?;
            workload(&conn, n, per_tx)
        };
        out.push(Measure {
            workload: format!("{label} ({n} changes, half inserts, half updates)"),
            plain: rate(Capture::None, "plain")?,
            captured: rate(Capture::Lakelink, "captured")?,
            empty_trigger: rate(Capture::EmptyTrigger, "empty-trigger")?,
            minimal_log: rate(Capture::MinimalLog, "minimal-log")?,
        });
    }
    Ok(out)
}
