//! The first publish of a fresh table in a lake of format `delta` (copy to first Delta
//! version) against `sqlite3 -csv` of the same table, then the publish after 1% of its rows
//! changed, and the peak memory of both: issue targets for the Delta Lake format.

use crate::{change_one_percent, child, dataset, mb, run_sync};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// Writes a config of one table into a local lake of format `delta` in `dir`.
fn write_delta_config(dir: &Path, table: &str) -> Result<std::path::PathBuf> {
    let path = dir.join("lakelink.toml");
    std::fs::write(
        &path,
        format!(
            "[source]\nkind = \"sqlite\"\npath = \"source.db\"\n\n[lake]\nkind = \"local\"\npath = \"lake\"\nformat = \"delta\"\n\n[engine]\nsnapshot_interval = \"1h\"\nstate = \"state.db\"\nlisten = \"off\"\n\n[[table]]\nname = \"{table}\"\npartition_by = \"createdon\"\n"
        ),
    )?;
    Ok(path)
}

/// The bytes of the Parquet data files under `dir`.
fn parquet_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => parquet_bytes(&e.path()),
            _ if e.path().extension().is_some_and(|x| x == "parquet") => {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
            _ => 0,
        })
        .sum()
}

/// Runs the Delta benchmark on a `rows`-row CRM table.
pub fn first_publish(bin: &Path, rows: u64, report: &mut String) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("source.db");
    eprintln!("generating {rows} rows for the Delta benchmark...");
    dataset::create(&db, rows, 42)?;
    eprintln!("sqlite3 -csv...");
    let export = child::measure(
        Command::new("sqlite3")
            .arg("-csv")
            .arg(&db)
            .arg("SELECT * FROM account"),
        None,
    )?;
    eprintln!("lakelink sync into a delta lake...");
    let config = write_delta_config(dir.path(), "account")?;
    let first = run_sync(bin, &config)?;
    let copy = child::logged_number(&first.stderr, "initial copy completed", "seconds")
        .context("the copy's duration in the log")?;
    let publish = child::logged_number(&first.stderr, "snapshot published", "seconds")
        .context("the publish's duration in the log")?;
    let data = parquet_bytes(&dir.path().join("lake/deltalake/account"));

    let changed = change_one_percent(&db, rows)?;
    let before = parquet_bytes(&dir.path().join("lake/deltalake/account"));
    let next = run_sync(bin, &config)?;
    let next_publish = child::logged_number(&next.stderr, "snapshot published", "seconds")
        .context("the publish's duration in the log")?;
    let written = parquet_bytes(&dir.path().join("lake/deltalake/account")) - before;

    let export_s = export.elapsed.as_secs_f64();
    let _ = writeln!(
        report,
        "## Delta Lake: first publish of {rows} rows, then 1% changed\n\n| measure | value | target |\n|---|---:|---|"
    );
    let _ = writeln!(report, "| `sqlite3 -csv` export | {export_s:.2} s | |");
    let _ = writeln!(
        report,
        "| whole first `lakelink sync` (copy {copy:.2} s, Parquet files and first commit {publish:.2} s) | {:.2} s | |",
        first.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        report,
        "| first publish / `sqlite3 -csv` | {:.2} | <= 1.5 |",
        first.elapsed.as_secs_f64() / export_s
    );
    let _ = writeln!(
        report,
        "| Parquet data of the first version | {:.0} MB | |",
        mb(data)
    );
    let _ = writeln!(
        report,
        "| publish after {changed} rows changed in 2 of 8 partitions | {next_publish:.2} s, {:.0} MB of Parquet written | |",
        mb(written)
    );
    let _ = writeln!(
        report,
        "| 1%-changed publish / first publish | {:.2} | < 0.2 |",
        next_publish / publish
    );
    let _ = writeln!(
        report,
        "| peak RSS, first sync / next sync | {:.0} MB / {:.0} MB | < 200 MB (10M rows) |\n",
        mb(first.max_rss),
        mb(next.max_rss)
    );
    Ok(())
}
