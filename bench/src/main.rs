//! `lakelink-bench`: runs every benchmark and writes one report (docs/BENCHMARKS.md has the
//! figures and the targets). Benchmarks report numbers; they never fail because a machine was
//! slow.
//!
//! `cargo build --release -p lakelink-engine -p lakelink-bench && target/release/lakelink-bench`

mod capture_cost;
mod child;
mod dataset;
mod delta;
mod postgres;
mod postgres_trickle;
mod trickle;
mod wide_rows;

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// lakelink's benchmarks.
#[derive(Parser)]
#[command(name = "lakelink-bench", about)]
struct Args {
    /// Rows of the initial-sync and snapshot table, and of the CRM table the capture cost is
    /// measured on.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Also measure peak memory of an initial sync of this many rows (e.g. 10000000).
    #[arg(long)]
    big_rows: Option<u64>,
    /// Rows of 1 MiB of the wide-row memory run.
    #[arg(long, default_value_t = 1500)]
    wide_rows: u64,
    /// Seconds each trickle rate runs.
    #[arg(long, default_value_t = 5)]
    trickle_seconds: u64,
    /// Rows of the one large PostgreSQL transaction.
    #[arg(long, default_value_t = 2_000_000)]
    big_transaction: u64,
    /// Seconds each PostgreSQL trickle rate runs.
    #[arg(long, default_value_t = 20)]
    pg_trickle_seconds: u64,
    /// Seconds each PostgreSQL trickle rate runs with a transaction held open.
    #[arg(long, default_value_t = 60)]
    pg_held_open_seconds: u64,
    /// Where to write the report (Markdown); it is printed too.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Run only these benchmarks (default: all of them).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Benchmark>,
}

/// One benchmark of the report.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Benchmark {
    /// Initial sync against `sqlite3 -csv`, then the incremental snapshot; the first sync of
    /// a table keyed by its rowid.
    Sync,
    /// Peak memory of the `--big-rows` initial sync.
    Memory,
    /// Trickle rates and latencies.
    Trickle,
    /// The writer's throughput with capture installed.
    Capture,
    /// The whole first sync of a PostgreSQL table against `COPY`, on the throwaway server
    /// `scripts/postgres-test-cluster.sh` starts.
    Postgres,
    /// Peak memory of the first sync of 1 MiB rows, on SQLite (and PostgreSQL when a server
    /// is there).
    WideRows,
    /// PostgreSQL trickle rates, latencies and the server CPU they cost next to
    /// `pg_recvlogical`, with and without a transaction held open.
    PostgresTrickle,
    /// Peak memory of the sync that writes one PostgreSQL transaction of `--big-transaction`
    /// rows.
    PostgresBigTransaction,
    /// The WAL the slot keeps while the linked table is idle and another table writes 1 GB.
    PostgresIdleSlot,
    /// The first publish of a table into a lake of format `delta` against `sqlite3 -csv`, and
    /// the publish after 1% of its rows changed.
    Delta,
}

/// The `lakelink` binary built beside this one.
fn lakelink_bin() -> Result<PathBuf> {
    let bin = std::env::current_exe()?
        .parent()
        .map(|d| d.join("lakelink"))
        .context("locating lakelink")?;
    if !bin.exists() {
        bail!(
            "{} is missing; build it with cargo build --release -p lakelink-engine",
            bin.display()
        );
    }
    Ok(bin)
}

/// Writes a config for one table into `dir`.
pub fn write_config(dir: &Path, table: &str, extra: &str) -> Result<PathBuf> {
    let path = dir.join("lakelink.toml");
    std::fs::write(
        &path,
        format!(
            "[source]\nkind = \"sqlite\"\npath = \"source.db\"\n\n[lake]\nkind = \"local\"\npath = \"lake\"\n\n[engine]\nsnapshot_interval = \"1h\"\nstate = \"state.db\"\nlisten = \"off\"\n{extra}\n\n[[table]]\nname = \"{table}\"\n"
        ),
    )?;
    Ok(path)
}

pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// Runs `lakelink sync` with its log at info level, measured.
pub fn run_sync(bin: &Path, config: &Path) -> Result<child::Measured> {
    child::measure(
        Command::new(bin)
            .args(["sync", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1"),
        None,
    )
}

/// Changes 1% of the `rows` rows of the bench's `account` table in `db`, all in 2 of its 8
/// partitions (the years 2020 and 2021); returns how many.
pub fn change_one_percent(db: &Path, rows: u64) -> Result<u64> {
    eprintln!("changing 1% of rows in 2 of 8 partitions...");
    let changed = rows / 100;
    let conn = rusqlite::Connection::open(db)?;
    conn.execute(
        "UPDATE account SET revenue = revenue + 1, modifiedon = datetime('now')
         WHERE rowid IN (SELECT rowid FROM account
                         WHERE createdon LIKE '2020%' OR createdon LIKE '2021%' LIMIT ?1)",
        [changed as i64],
    )?;
    Ok(changed)
}

/// Initial sync against `sqlite3 -csv`, then the incremental snapshot, on one table.
fn initial_sync_and_snapshot(bin: &Path, rows: u64, report: &mut String) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("source.db");
    eprintln!("generating {rows} rows...");
    dataset::create(&db, rows, 42)?;
    let db_size = std::fs::metadata(&db)?.len();

    eprintln!("sqlite3 -csv...");
    let csv = dir.path().join("export.csv");
    let export = child::measure(
        Command::new("sqlite3")
            .arg("-csv")
            .arg(&db)
            .arg("SELECT * FROM account"),
        Some(&csv),
    )?;
    let csv_size = std::fs::metadata(&csv)?.len();
    std::fs::remove_file(&csv)?;

    eprintln!("lakelink sync (initial copy and first snapshot)...");
    let config = write_config(dir.path(), "account", "")?;
    let sync = run_sync(bin, &config)?;
    let copy_seconds = child::logged_number(&sync.stderr, "initial copy completed", "seconds")
        .context("the copy's duration in the log")?;
    let full_snapshot = child::logged_number(&sync.stderr, "snapshot published", "seconds")
        .context("the snapshot's duration in the log")?;
    let live_size: u64 = std::fs::read_dir(dir.path().join("lake/account"))?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "csv"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();

    let _ = writeln!(
        report,
        "## Initial sync ({rows} rows, database {:.0} MB)\n",
        mb(db_size)
    );
    let _ = writeln!(report, "| measure | value | target |\n|---|---:|---|");
    let _ = writeln!(
        report,
        "| `sqlite3 -csv` export | {:.2} s ({:.0} rows/s, {:.0} MB/s of CSV) | |",
        export.elapsed.as_secs_f64(),
        rows as f64 / export.elapsed.as_secs_f64(),
        mb(csv_size) / export.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        report,
        "| lakelink initial copy | {copy_seconds:.2} s ({:.0} rows/s, {:.0} MB/s of CSV) | |",
        rows as f64 / copy_seconds,
        mb(live_size) / copy_seconds
    );
    let _ = writeln!(
        report,
        "| copy / `sqlite3 -csv` | {:.2} | <= 1.0 |",
        copy_seconds / export.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        report,
        "| whole `lakelink sync` (copy, snapshot of 8 partitions, publish) | {:.2} s | |",
        sync.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        report,
        "| whole first sync / `sqlite3 -csv` | {:.2} | <= 1.0 |",
        sync.elapsed.as_secs_f64() / export.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        report,
        "| peak RSS of `lakelink sync` | {:.0} MB | < 150 MB |\n",
        mb(sync.max_rss)
    );

    let changed = change_one_percent(&db, rows)?;
    let lake_before = dir_size(&dir.path().join("lake"));
    let next = run_sync(bin, &config)?;
    let incremental = child::logged_number(&next.stderr, "snapshot published", "seconds")
        .context("the snapshot's duration in the log")?;
    let files =
        child::logged_number(&next.stderr, "snapshot published", "files").unwrap_or(f64::NAN);
    let written = dir_size(&dir.path().join("lake")) - lake_before;
    let _ = writeln!(
        report,
        "## Snapshot after 1% of rows changed in 2 of 8 partitions\n"
    );
    let _ = writeln!(report, "| measure | value | target |\n|---|---:|---|");
    let _ = writeln!(
        report,
        "| full snapshot (8 partitions, first publish) | {full_snapshot:.2} s | |"
    );
    let _ = writeln!(
        report,
        "| next snapshot ({changed} rows changed) | {incremental:.2} s, {files} files written | |"
    );
    let _ = writeln!(
        report,
        "| next / full | {:.2} | < 0.33 |",
        incremental / full_snapshot
    );
    let _ = writeln!(
        report,
        "| bytes added to the lake by the next sync (live rows and the 2 new snapshot files) | {:.1} MB | unchanged partitions: none |\n",
        mb(written)
    );
    Ok(())
}

/// The whole first sync of a table keyed by its rowid (the copy reads it in `Id` order, so its
/// first snapshot is a copy of the live files), against `sqlite3 -csv`.
fn integer_key_first_sync(bin: &Path, rows: u64, report: &mut String) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("source.db");
    eprintln!("generating {rows} rows keyed by their rowid...");
    let conn = rusqlite::Connection::open(&db)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, email TEXT, price REAL,
                            createdon TEXT, note TEXT);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {rows})
         INSERT INTO item SELECT i, 'Item ' || i, 'c' || i || '@example.com', i * 1.25,
                datetime('2017-01-01', '+' || (i % 2900) || ' days'), 'a \"quoted\", note'
         FROM g;"
    ))?;
    drop(conn);
    let export = child::measure(
        Command::new("sqlite3")
            .arg("-csv")
            .arg(&db)
            .arg("SELECT * FROM item"),
        None,
    )?;
    let config = write_config(dir.path(), "item", "")?;
    let sync = run_sync(bin, &config)?;
    let snapshot = child::logged_number(&sync.stderr, "snapshot published", "seconds")
        .context("the snapshot's duration in the log")?;
    let _ = writeln!(
        report,
        "## First sync of a table keyed by its rowid ({rows} rows)\n\n| measure | value | target |\n|---|---:|---|"
    );
    let _ = writeln!(
        report,
        "| `sqlite3 -csv` export | {:.2} s | |\n| first snapshot (a copy of the live files) | {snapshot:.2} s | |\n| whole first `lakelink sync` | {:.2} s | |\n| whole first sync / `sqlite3 -csv` | {:.2} | <= 1.0 |\n",
        export.elapsed.as_secs_f64(),
        sync.elapsed.as_secs_f64(),
        sync.elapsed.as_secs_f64() / export.elapsed.as_secs_f64()
    );
    Ok(())
}

/// Peak memory of an initial sync of a larger table.
fn big_sync_memory(bin: &Path, rows: u64, report: &mut String) -> Result<()> {
    let dir = tempfile::tempdir()?;
    eprintln!("generating {rows} rows for the memory run...");
    dataset::create(&dir.path().join("source.db"), rows, 43)?;
    let config = write_config(dir.path(), "account", "")?;
    let sync = run_sync(bin, &config)?;
    let _ = writeln!(report, "## Memory of a {rows}-row initial sync\n");
    let _ = writeln!(report, "| measure | value | target |\n|---|---:|---|");
    let _ = writeln!(
        report,
        "| whole `lakelink sync` | {:.1} s | |",
        sync.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        report,
        "| peak RSS | {:.0} MB | < 150 MB |\n",
        mb(sync.max_rss)
    );
    Ok(())
}

/// The writer's throughput with capture against without, and against the two references
/// that bound trigger-based capture.
fn capture_cost(rows: u64, report: &mut String) -> Result<()> {
    eprintln!("capture cost...");
    let _ = writeln!(
        report,
        "## Capture cost (the writer's throughput, linked / unlinked)\n"
    );
    let _ = writeln!(
        report,
        "| table | statements | changes per transaction (changes) | unlinked changes/s | linked changes/s | linked / unlinked | target | empty trigger / unlinked | one-integer log row / unlinked |\n|---|---|---|---:|---:|---:|---|---:|---:|"
    );
    for m in capture_cost::measure(200_000, rows)? {
        let _ = writeln!(
            report,
            "| {} | {} | {} ({}) | {:.0} | {:.0} | {:.2} | >= 0.5 | {:.2} | {:.2} |",
            m.table,
            m.statements.label(),
            m.per_tx,
            m.changes,
            m.plain,
            m.captured,
            m.captured / m.plain,
            m.empty_trigger / m.plain,
            m.minimal_log / m.plain
        );
    }
    let _ = writeln!(report);
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runs = |b: Benchmark| args.only.is_empty() || args.only.contains(&b);
    let bin = lakelink_bin()?;
    let mut report = String::from("# lakelink benchmark report\n\n");
    if runs(Benchmark::Sync) {
        initial_sync_and_snapshot(&bin, args.rows, &mut report)?;
        integer_key_first_sync(&bin, args.rows, &mut report)?;
    }
    if runs(Benchmark::Delta) {
        delta::first_publish(&bin, args.rows, &mut report)?;
    }
    if let (true, Some(big)) = (runs(Benchmark::Memory), args.big_rows) {
        big_sync_memory(&bin, big, &mut report)?;
    }
    if runs(Benchmark::Trickle) {
        trickle::run_all(&bin, args.trickle_seconds, &mut report)?;
    }
    if runs(Benchmark::Capture) {
        capture_cost(args.rows, &mut report)?;
    }
    let postgres = std::env::var_os("LAKELINK_TEST_POSTGRES").is_some();
    if runs(Benchmark::Postgres) {
        if postgres {
            postgres::first_sync(&bin, args.rows, &mut report)?;
        } else if args.only.contains(&Benchmark::Postgres) {
            bail!(
                "the postgres benchmark needs a server: run it under scripts/postgres-test-cluster.sh"
            );
        } else {
            eprintln!(
                "no PostgreSQL server (run under scripts/postgres-test-cluster.sh): skipping the PostgreSQL benchmarks"
            );
        }
    }
    if runs(Benchmark::WideRows) {
        wide_rows::run(&bin, args.wide_rows, postgres, &mut report)?;
    }
    if runs(Benchmark::PostgresTrickle) {
        if postgres {
            postgres_trickle::run_all(
                &bin,
                args.pg_trickle_seconds,
                args.pg_held_open_seconds,
                &mut report,
            )?;
        } else if args.only.contains(&Benchmark::PostgresTrickle) {
            bail!(
                "the postgres-trickle benchmark needs a server: run it under scripts/postgres-test-cluster.sh"
            );
        }
    }
    if runs(Benchmark::PostgresIdleSlot) && postgres {
        postgres_trickle::idle_slot(&bin, 1024, &mut report)?;
    }
    if runs(Benchmark::PostgresBigTransaction) && postgres {
        postgres::big_transaction(&bin, args.big_transaction, &mut report)?;
    }
    println!("{report}");
    if let Some(path) = args.report {
        std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
