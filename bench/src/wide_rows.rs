//! Peak memory of the first sync of a table of wide rows (1 MiB each): the copy's queue and
//! every buffer after it are bounded in bytes, so what a table's rows weigh, not how many
//! there are, must not move the agent's memory.

use crate::{child, mb, run_sync, write_config};
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;

/// The SQLite case, then (with a server) the PostgreSQL one, as rows of one table.
pub fn run(bin: &Path, rows: u64, postgres: bool, report: &mut String) -> Result<()> {
    let _ = writeln!(
        report,
        "## First sync of wide rows (1 MiB each)\n\n| source and table | whole sync | peak RSS | target |\n|---|---:|---:|---|"
    );
    let dir = tempfile::tempdir()?;
    eprintln!("SQLite: generating {rows} rows of 1 MiB...");
    let conn = rusqlite::Connection::open(dir.path().join("source.db"))?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE wide (id INTEGER PRIMARY KEY, body TEXT);",
    )?;
    let body = "w".repeat(1 << 20);
    let tx = conn.unchecked_transaction()?;
    for id in 0..rows {
        tx.execute(
            "INSERT INTO wide VALUES (?1, ?2)",
            rusqlite::params![id as i64, body],
        )?;
    }
    tx.commit()?;
    drop(conn);
    let config = write_config(dir.path(), "wide", "")?;
    let sync = run_sync(bin, &config)?;
    report_line(report, "SQLite", rows, &sync);
    drop(dir);
    if postgres {
        crate::postgres::wide_rows(bin, rows, report)?;
    }
    let _ = writeln!(report);
    Ok(())
}

/// The report's row for the first sync of `rows` rows of 1 MiB from `source`.
pub fn report_line(report: &mut String, source: &str, rows: u64, sync: &child::Measured) {
    let _ = writeln!(
        report,
        "| {source}, {rows} rows of 1 MiB ({:.0} MB) | {:.1} s | {:.0} MB | < 200 MB |",
        mb(rows << 20),
        sync.elapsed.as_secs_f64(),
        mb(sync.max_rss)
    );
}
