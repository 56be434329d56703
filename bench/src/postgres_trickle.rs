//! PostgreSQL trickle, pgbench-style: a writer commits one `UPDATE` per change in
//! transactions of 10, at a fixed rate or flat out, while the agent runs, with and without
//! another session holding a transaction open (which pins the slot's restart position).
//! Reported: the sustained rate and the latency from the writer's commit to the row's write
//! in the lake (read back from the live file, as the SQLite trickle does), how long the agent
//! takes to catch up once the writer stops, and the server CPU the agent costs next to
//! `pg_recvlogical` streaming the same publication through its own slot in the same run (the
//! walsender's own decoding: the floor for any `pgoutput` consumer), read from
//! `/proc/<pid>/stat` of each backend.

use crate::postgres::{DATABASE, drop_slot, fresh_database, psql, server, write_config_with};
use crate::trickle::{Latencies, now_unix};
use anyhow::{Context as _, Result, bail};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Rows of the table the writer updates.
const ROWS: u64 = 100_000;

/// The slot `pg_recvlogical` streams through.
const RECVLOGICAL_SLOT: &str = "lakelink_bench_recvlogical";

/// Changes per writer transaction.
const PER_TRANSACTION: u64 = 10;

/// What one run measured.
struct Outcome {
    written: u64,
    sustained: f64,
    p50_ms: f64,
    p99_ms: f64,
    catch_up: Duration,
    /// Server CPU seconds: lakelink's walsender, its SQL session, pg_recvlogical's walsender.
    lakelink_walsender: f64,
    lakelink_sql: f64,
    recvlogical: f64,
}

/// CPU seconds a server process has used (user and system), from `/proc/<pid>/stat`.
fn cpu_seconds(pid: i32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (is the server on this machine?)"))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("an unreadable /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = fields
        .get(11..13)
        .context("a short /proc stat")?
        .iter()
        .map(|f| f.parse::<f64>().unwrap_or(0.0))
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ticks / per_second)
}

/// The pids of the server processes matching `condition` in `pg_stat_activity`.
fn backends(client: &mut postgres::Client, condition: &str) -> Result<Vec<i32>> {
    Ok(client
        .query(
            &format!(
                "SELECT pid FROM pg_stat_activity WHERE datname = '{DATABASE}' AND {condition}"
            ),
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

fn total_cpu(pids: &[i32]) -> f64 {
    pids.iter().map(|&p| cpu_seconds(p).unwrap_or(0.0)).sum()
}

fn live_rows(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .unwrap_or(0)
}

fn wait_until(what: &str, seconds: u64, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done()? {
        if Instant::now() > deadline {
            bail!("timed out after {seconds} s waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn stop(mut child: Child) -> Result<()> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait()?;
    Ok(())
}

/// One run at `rate` changes per second (`None`: flat out) for `seconds`.
fn run_at(bin: &Path, rate: Option<u64>, held_open: bool, seconds: u64) -> Result<Outcome> {
    let server = server()?;
    fresh_database(
        &server,
        &format!(
            "CREATE TABLE account (id int PRIMARY KEY, balance bigint NOT NULL, committed_at double precision);
             INSERT INTO account SELECT g, 0, NULL FROM generate_series(1, {ROWS}) g;
             CREATE TABLE filler (x text);"
        ),
    )?;
    let connect =
        || postgres::Client::connect(&format!("{server} dbname={DATABASE}"), postgres::NoTls);
    let mut client = connect()?;
    let dir = tempfile::tempdir()?;
    let config = write_config_with(&server, dir.path(), "account", "batch_size = 20000")?;
    let agent = start_agent(bin, &config, dir.path())?;
    let recvlogical = start_recvlogical(&server)?;
    // One change, so that the agent streams too.
    client.batch_execute("UPDATE account SET balance = balance + 1 WHERE id = 1")?;
    let live = dir.path().join("lake/account/1.csv");
    wait_until("the first change in the lake", 60, || {
        Ok(live_rows(&live) > ROWS)
    })?;
    let mut walsender = |name: &str| -> Result<i32> {
        let condition = format!("backend_type = 'walsender' AND application_name = '{name}'");
        let mut found = Vec::new();
        wait_until("the walsenders", 30, || {
            found = backends(&mut client, &condition)?;
            Ok(found.len() == 1)
        })?;
        Ok(found[0])
    };
    let lakelink_walsender = walsender("lakelink")?;
    let recvlogical_walsender = walsender("pg_recvlogical")?;
    let lakelink_sql = backends(
        &mut client,
        "backend_type = 'client backend' AND application_name = 'lakelink'",
    )?;
    let mut holder = connect()?;
    if held_open {
        holder.batch_execute("BEGIN; INSERT INTO filler VALUES ('held open')")?;
    }
    let cpu_before = (
        cpu_seconds(lakelink_walsender)?,
        total_cpu(&lakelink_sql),
        cpu_seconds(recvlogical_walsender)?,
    );

    let started = Instant::now();
    let run_for = Duration::from_secs(seconds);
    let mut written: u64 = 0;
    let mut next_id: u64 = 7;
    let mut batch = String::new();
    while started.elapsed() < run_for {
        let due = match rate {
            Some(r) => (started.elapsed().as_secs_f64() * r as f64) as u64,
            None => written + PER_TRANSACTION,
        };
        if due < written + PER_TRANSACTION {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        batch.clear();
        batch.push_str("BEGIN;");
        let at = now_unix();
        for _ in 0..PER_TRANSACTION {
            // A cheap spread over the table's ids.
            next_id = (next_id * 7919 + 13) % ROWS + 1;
            let _ = write!(
                batch,
                "UPDATE account SET balance = balance + 1, committed_at = {at} WHERE id = {next_id};"
            );
        }
        batch.push_str("COMMIT;");
        client.batch_execute(&batch)?;
        written += PER_TRANSACTION;
    }
    let writer_stopped = Instant::now();
    let end_lsn: i64 = client
        .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8", &[])?
        .get(0);
    wait_until("the agent to catch up", 600, || {
        Ok(live_rows(&live) >= ROWS + 1 + written)
    })?;
    let catch_up = writer_stopped.elapsed();
    wait_until("pg_recvlogical to catch up", 600, || {
        let sent: Option<i64> = client
            .query_one(
                "SELECT (sent_lsn - '0/0'::pg_lsn)::int8 FROM pg_stat_replication WHERE application_name = 'pg_recvlogical'",
                &[],
            )?
            .get(0);
        Ok(sent.is_some_and(|s| s >= end_lsn))
    })?;
    let cpu_after = (
        cpu_seconds(lakelink_walsender)?,
        total_cpu(&lakelink_sql),
        cpu_seconds(recvlogical_walsender)?,
    );
    if held_open {
        holder.batch_execute("ROLLBACK")?;
    }
    stop(agent)?;
    stop(recvlogical)?;
    drop(holder);
    drop(client);
    psql(
        &server,
        "postgres",
        &format!("SELECT pg_drop_replication_slot('{RECVLOGICAL_SLOT}')"),
    )?;
    drop_slot(&server)?;

    // Id, SinkCreatedOn, SinkModifiedOn, id, balance, committed_at, ...; the copied rows
    // have no commit time.
    let timed = Latencies::read(&live, 5, true)?;
    Ok(Outcome {
        written,
        sustained: timed.sustained(written),
        p50_ms: timed.at(0.50),
        p99_ms: timed.at(0.99),
        catch_up,
        lakelink_walsender: cpu_after.0 - cpu_before.0,
        lakelink_sql: cpu_after.1 - cpu_before.1,
        recvlogical: cpu_after.2 - cpu_before.2,
    })
}

/// Every rate, without and with a transaction held open (for `held_seconds`), as a report
/// section.
pub fn run_all(bin: &Path, seconds: u64, held_seconds: u64, report: &mut String) -> Result<()> {
    let _ = writeln!(
        report,
        "## PostgreSQL trickle (one UPDATE per change, {PER_TRANSACTION} per transaction; the default poll_interval, 200ms)\n"
    );
    let _ = writeln!(
        report,
        "| writer rate | transaction held open | seconds | changes | sustained changes/s | latency p50 | p99 | catch-up after the writer stops | server CPU: lakelink's walsender | lakelink's SQL session | pg_recvlogical's walsender | lakelink (both) / pg_recvlogical |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for held_open in [false, true] {
        let run_seconds = if held_open { held_seconds } else { seconds };
        for rate in [Some(1_000), Some(10_000), None] {
            eprintln!("PostgreSQL trickle at {rate:?} changes/s, held open: {held_open}...");
            let o = run_at(bin, rate, held_open, run_seconds)?;
            let label = rate.map_or_else(|| "flat out".to_string(), |r| format!("{r}/s"));
            let _ = writeln!(
                report,
                "| {label} | {} | {run_seconds} | {} | {:.0} | {:.0} ms | {:.0} ms | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} |",
                if held_open { "yes" } else { "no" },
                o.written,
                o.sustained,
                o.p50_ms,
                o.p99_ms,
                o.catch_up.as_secs_f64(),
                o.lakelink_walsender,
                o.lakelink_sql,
                o.recvlogical,
                (o.lakelink_walsender + o.lakelink_sql) / o.recvlogical.max(0.01)
            );
        }
    }
    let _ = writeln!(
        report,
        "\nTargets: server decoding CPU for lakelink <= 1.5x pg_recvlogical's, with and without a transaction held open; catch-up within 5 s; at 10,000 changes/s, p99 under 250 ms.\n"
    );
    Ok(())
}

/// The WAL the slot keeps while the linked table is idle and another table writes `mb` MB:
/// the most seen after each 64 MB written, and what is left 20 s after the writes.
pub fn idle_slot(bin: &Path, mb: u64, report: &mut String) -> Result<()> {
    let server = server()?;
    fresh_database(
        &server,
        "CREATE TABLE account (id int PRIMARY KEY, balance bigint NOT NULL, committed_at double precision);
         CREATE TABLE filler (x text);",
    )?;
    let mut client =
        postgres::Client::connect(&format!("{server} dbname={DATABASE}"), postgres::NoTls)?;
    let dir = tempfile::tempdir()?;
    let config = write_config_with(&server, dir.path(), "account", "")?;
    let agent = start_agent(bin, &config, dir.path())?;
    let recvlogical = start_recvlogical(&server)?;
    client.batch_execute("INSERT INTO account VALUES (1, 0, NULL)")?;
    let live = dir.path().join("lake/account/1.csv");
    wait_until("the change in the lake", 60, || Ok(live_rows(&live) >= 1))?;
    // What lakelink's slot keeps, and pg_recvlogical's beside it.
    let retained = |client: &mut postgres::Client| -> Result<(i64, i64)> {
        let row = client.query_one(
            &format!(
                "SELECT (SELECT (pg_current_wal_lsn() - restart_lsn)::int8 FROM pg_replication_slots WHERE slot_name = '{DATABASE}'), \
                        (SELECT (pg_current_wal_lsn() - restart_lsn)::int8 FROM pg_replication_slots WHERE slot_name = '{RECVLOGICAL_SLOT}')"
            ),
            &[],
        )?;
        Ok((row.get(0), row.get(1)))
    };
    let lsn = |client: &mut postgres::Client| -> Result<i64> {
        Ok(client
            .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8", &[])?
            .get(0))
    };
    eprintln!("PostgreSQL: another table writes {mb} MB of WAL...");
    let start = lsn(&mut client)?;
    let mut peak = (0i64, 0i64);
    let sample = |client: &mut postgres::Client, peak: &mut (i64, i64)| -> Result<()> {
        let (ours, theirs) = retained(client)?;
        *peak = (peak.0.max(ours), peak.1.max(theirs));
        Ok(())
    };
    while lsn(&mut client)? - start < (mb as i64) << 20 {
        // About 64 MB of WAL.
        client.batch_execute(
            "INSERT INTO filler SELECT repeat('f', 1000) FROM generate_series(1, 50000)",
        )?;
        sample(&mut client, &mut peak)?;
    }
    let written = lsn(&mut client)? - start;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_secs(1));
        sample(&mut client, &mut peak)?;
    }
    let after = retained(&mut client)?;
    stop(agent)?;
    stop(recvlogical)?;
    drop(client);
    psql(
        &server,
        "postgres",
        &format!("SELECT pg_drop_replication_slot('{RECVLOGICAL_SLOT}')"),
    )?;
    drop_slot(&server)?;
    let mb = |bytes: i64| bytes as f64 / 1048576.0;
    let _ = writeln!(
        report,
        "## PostgreSQL: WAL kept while the linked table is idle\n\n| measure | lakelink's slot | pg_recvlogical's slot | target |\n|---|---:|---:|---|\n| WAL another table wrote | {:.0} MB | | |\n| most kept, seen after each 64 MB and each second of the 20 after | {:.0} MB | {:.0} MB | < 64 MB |\n| kept 20 s after the writes | {:.0} MB | {:.0} MB | |\n",
        mb(written),
        mb(peak.0),
        mb(peak.1),
        mb(after.0),
        mb(after.1)
    );
    Ok(())
}

/// The agent on `config`, once it has linked the bench's `account` table.
fn start_agent(bin: &Path, config: &Path, dir: &Path) -> Result<Child> {
    let agent = Command::new(bin)
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let manifest = dir.join("lake/Microsoft.Athena.TrickleFeedService/account-model.json");
    wait_until("the agent to link the table", 120, || Ok(manifest.exists()))?;
    Ok(agent)
}

/// `pg_recvlogical` streaming the bench's publication through a slot of its own.
fn start_recvlogical(server: &str) -> Result<Child> {
    let connection = format!("{server} dbname={DATABASE}");
    let created = Command::new("pg_recvlogical")
        .args([
            "-d",
            &connection,
            "--slot",
            RECVLOGICAL_SLOT,
            "--create-slot",
            "-P",
            "pgoutput",
        ])
        .status()
        .context("running pg_recvlogical (install PostgreSQL's client programs)")?;
    if !created.success() {
        bail!("pg_recvlogical could not create its slot");
    }
    Ok(Command::new("pg_recvlogical")
        .args([
            "-d",
            &connection,
            "--slot",
            RECVLOGICAL_SLOT,
            "--start",
            "--no-loop",
        ])
        .args(["-o", "proto_version=1", "-o"])
        .arg(format!("publication_names={DATABASE}"))
        .args(["-f", "/dev/null"])
        .stderr(Stdio::null())
        .spawn()?)
}
