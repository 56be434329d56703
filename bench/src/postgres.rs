//! PostgreSQL benchmarks on a throwaway server (run the bench under
//! `scripts/postgres-test-cluster.sh`, which starts one and names it in
//! `LAKELINK_TEST_POSTGRES`): the whole first `lakelink sync` of a fresh table next to
//! `psql -c "COPY t TO STDOUT (FORMAT csv)"` of the same table, and the peak memory of the
//! first sync of a table of wide rows.

use crate::child::{self, Measured};
use crate::mb;
use anyhow::{Context as _, Result, bail};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

pub const DATABASE: &str = "lakelink_bench";

/// The throwaway server's connection settings (`key=value ...`).
pub fn server() -> Result<String> {
    std::env::var("LAKELINK_TEST_POSTGRES").context(
        "no PostgreSQL server: run the bench under scripts/postgres-test-cluster.sh, which starts a throwaway one",
    )
}

pub fn setting(server: &str, key: &str) -> Result<String> {
    server
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
        .with_context(|| format!("LAKELINK_TEST_POSTGRES has no {key}="))
}

/// Runs `sql` with psql against `database`.
pub fn psql(server: &str, database: &str, sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .arg(format!("{server} dbname={database}"))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!("psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A fresh bench database holding `setup`.
pub fn fresh_database(server: &str, setup: &str) -> Result<()> {
    psql(
        server,
        "postgres",
        &format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{DATABASE}'"
        ),
    )?;
    psql(
        server,
        "postgres",
        &format!("DROP DATABASE IF EXISTS {DATABASE}"),
    )?;
    psql(server, "postgres", &format!("CREATE DATABASE {DATABASE}"))?;
    psql(server, DATABASE, setup)
}

/// A config that syncs `table` of the bench database into `dir/lake`.
fn write_config(server: &str, dir: &Path, table: &str) -> Result<std::path::PathBuf> {
    write_config_with(server, dir, table, "")
}

/// [`write_config`] with `[engine]` settings added.
pub fn write_config_with(
    server: &str,
    dir: &Path,
    table: &str,
    engine_extra: &str,
) -> Result<std::path::PathBuf> {
    let path = dir.join("lakelink.toml");
    std::fs::write(
        &path,
        format!(
            "[source]\nkind = \"postgres\"\nhost = \"{}\"\nport = {}\ndatabase = \"{DATABASE}\"\nuser = \"{}\"\nslot = \"{DATABASE}\"\n\n[lake]\nkind = \"local\"\npath = \"lake\"\n\n[engine]\nsnapshot_interval = \"1h\"\nstate = \"state.db\"\nlisten = \"off\"\n{engine_extra}\n\n[[table]]\nname = \"{table}\"\n",
            setting(server, "host")?,
            setting(server, "port")?,
            setting(server, "user")?,
        ),
    )?;
    Ok(path)
}

/// The whole first sync of a 9-column table with a uuid key, against `COPY ... TO STDOUT`.
pub fn first_sync(bin: &Path, rows: u64, report: &mut String) -> Result<()> {
    let server = server()?;
    eprintln!("PostgreSQL: generating {rows} rows...");
    fresh_database(
        &server,
        &format!(
            "CREATE TABLE account (
                accountid uuid PRIMARY KEY, name text NOT NULL, email text, revenue numeric(18,2),
                employees integer, createdon timestamptz NOT NULL, modifiedon timestamptz,
                active boolean, description text);
             INSERT INTO account
             SELECT md5(g::text)::uuid, 'Account ' || g, 'contact' || g || '@example.com',
                    (g % 100000) * 1.25, g % 5000,
                    timestamptz '2017-01-01' + (g % 2900) * interval '1 day' + (g % 86400) * interval '1 second',
                    timestamptz '2025-01-01' + (g % 86400) * interval '1 second',
                    g % 2 = 0, repeat('a \"quoted\", text; ', 1 + g % 4)
             FROM generate_series(1, {rows}) g;"
        ),
    )?;
    // Outside the setup's transaction, which VACUUM refuses.
    psql(&server, DATABASE, "VACUUM ANALYZE account")?;
    let dir = tempfile::tempdir()?;
    eprintln!("psql COPY TO STDOUT...");
    let csv = dir.path().join("export.csv");
    let export = child::measure(
        Command::new("psql")
            .arg(format!("{server} dbname={DATABASE}"))
            .args(["-c", "COPY account TO STDOUT (FORMAT csv)"]),
        Some(&csv),
    )?;
    let csv_size = std::fs::metadata(&csv)?.len();
    std::fs::remove_file(&csv)?;
    eprintln!("lakelink sync of the PostgreSQL table...");
    let config = write_config(&server, dir.path(), "account")?;
    let sync = crate::run_sync(bin, &config)?;
    let copy_seconds = child::logged_number(&sync.stderr, "initial copy completed", "seconds")
        .context("the copy's duration in the log")?;
    let snapshot = child::logged_number(&sync.stderr, "snapshot published", "seconds")
        .context("the snapshot's duration in the log")?;
    let export_s = export.elapsed.as_secs_f64();
    let _ = writeln!(
        report,
        "## PostgreSQL first sync ({rows} rows, uuid key, 9 columns)\n"
    );
    let _ = writeln!(report, "| measure | value | target |\n|---|---:|---|");
    let _ = writeln!(
        report,
        "| `psql -c \"COPY account TO STDOUT (FORMAT csv)\"` | {export_s:.2} s ({:.0} MB of CSV) | |",
        mb(csv_size)
    );
    let _ = writeln!(
        report,
        "| lakelink initial copy | {copy_seconds:.2} s | |\n| copy / `COPY` | {:.2} | <= 1.0 |",
        copy_seconds / export_s
    );
    let _ = writeln!(
        report,
        "| first snapshot and publish | {snapshot:.2} s | |\n| whole first `lakelink sync` | {:.2} s | |\n| whole first sync / `COPY` | {:.2} | <= 1.0 |",
        sync.elapsed.as_secs_f64(),
        sync.elapsed.as_secs_f64() / export_s
    );
    let _ = writeln!(
        report,
        "| peak RSS of `lakelink sync` | {:.0} MB | |\n",
        mb(sync.max_rss)
    );
    drop_slot(&server)
}

/// Drops the slot the bench's sync created, so that the database can go.
pub fn drop_slot(server: &str) -> Result<()> {
    psql(
        server,
        "postgres",
        &format!("SELECT pg_drop_replication_slot('{DATABASE}')"),
    )
}

/// Peak memory of the first sync of `rows` rows of 1 MiB each.
pub fn wide_rows(bin: &Path, rows: u64, report: &mut String) -> Result<Measured> {
    let server = server()?;
    eprintln!("PostgreSQL: generating {rows} rows of 1 MiB...");
    // Stored uncompressed, as random text would be: what the copy moves is the row's size.
    fresh_database(
        &server,
        &format!(
            "CREATE TABLE wide (id bigint PRIMARY KEY, body text);
             ALTER TABLE wide ALTER body SET STORAGE EXTERNAL;
             INSERT INTO wide SELECT g, repeat('w', 1048576) FROM generate_series(1, {rows}) g;"
        ),
    )?;
    let dir = tempfile::tempdir()?;
    let config = write_config(&server, dir.path(), "wide")?;
    let sync = crate::run_sync(bin, &config)?;
    crate::wide_rows::report_line(report, "PostgreSQL", rows, &sync);
    drop_slot(&server)?;
    Ok(sync)
}

/// Peak memory of the sync that writes one transaction of `rows` inserted rows, which the
/// server streams whole at its commit and the agent writes in batches bounded in bytes.
pub fn big_transaction(bin: &Path, rows: u64, report: &mut String) -> Result<()> {
    let server = server()?;
    fresh_database(
        &server,
        "CREATE TABLE reading (id bigint PRIMARY KEY, sensor text, value double precision, note text);",
    )?;
    let dir = tempfile::tempdir()?;
    let config = write_config(&server, dir.path(), "reading")?;
    crate::run_sync(bin, &config)?;
    eprintln!("PostgreSQL: one transaction of {rows} rows...");
    psql(
        &server,
        DATABASE,
        &format!(
            "INSERT INTO reading SELECT g, 'sensor ' || (g % 97), g / 7.0, repeat('n', 40) FROM generate_series(1, {rows}) g"
        ),
    )?;
    let sync = crate::run_sync(bin, &config)?;
    let _ = writeln!(
        report,
        "## PostgreSQL: one transaction of {rows} rows\n\n| measure | value | target |\n|---|---:|---|\n| the sync that writes it | {:.2} s | |\n| its peak RSS | {:.0} MB | < 250 MB |\n",
        sync.elapsed.as_secs_f64(),
        mb(sync.max_rss)
    );
    drop_slot(&server)
}
