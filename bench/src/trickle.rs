//! Trickle: a writer commits changes at a fixed rate (or flat out) while the agent runs; the
//! sustained rate and the latency from the writer's commit to the row's write in the lake
//! are read back from the live file itself.
//!
//! Each row carries the time its transaction was committed (`committed_at`, taken just before
//! COMMIT), and lakelink stamps it with `SinkModifiedOn`, the time its batch was written. The
//! latency is the difference; it leaves out the batch's own append and fsync (a few ms).

use crate::write_config;
use anyhow::{Context as _, Result, bail};
use lakelink_model::csv_row::{CsvReader, Record};
use lakelink_model::datetime::parse_datetime;
use rusqlite::{Connection, params};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, as the writers stamp their commits.
pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

struct Outcome {
    written: u64,
    sustained: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn start_agent(bin: &Path, config: &Path) -> Result<Child> {
    Ok(Command::new(bin)
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

fn live_rows(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .unwrap_or(0)
}

/// One run at `rate` changes per second (`None`: as fast as the writer can).
fn run_at(bin: &Path, rate: Option<u64>, seconds: u64) -> Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let conn = Connection::open(dir.path().join("source.db"))?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE reading (id INTEGER PRIMARY KEY, sensor TEXT, value REAL, committed_at REAL);",
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let config = write_config(
        dir.path(),
        "reading",
        "poll_interval = \"5ms\"\nbatch_size = 20000",
    )?;
    let mut agent = start_agent(bin, &config)?;
    let manifest = dir
        .path()
        .join("lake/Microsoft.Athena.TrickleFeedService/reading-model.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !manifest.exists() {
        if Instant::now() > deadline {
            bail!("the agent did not link the table");
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    // The writer commits every 10 ms what the rate asks for by then; flat out, 1,000 rows a
    // transaction back to back.
    let started = Instant::now();
    let run_for = Duration::from_secs(seconds);
    let mut written: u64 = 0;
    while started.elapsed() < run_for {
        let due = match rate {
            Some(r) => (started.elapsed().as_secs_f64() * r as f64) as u64,
            None => written + 1000,
        };
        if due > written {
            let tx = conn.unchecked_transaction()?;
            {
                let mut insert =
                    tx.prepare_cached("INSERT INTO reading VALUES (?1, ?2, ?3, ?4)")?;
                let at = now_unix();
                for id in written..due {
                    insert.execute(params![
                        id as i64,
                        format!("s{}", id % 50),
                        id as f64 * 0.5,
                        at
                    ])?;
                }
            }
            tx.commit()?;
            written = due;
        }
        if rate.is_some() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let live = dir.path().join("lake/reading/1.csv");
    let deadline = Instant::now() + Duration::from_secs(120);
    while live_rows(&live) < written {
        if Instant::now() > deadline {
            bail!(
                "the agent trickled {} of {written} rows in 120 s",
                live_rows(&live)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status();
    agent.wait()?;

    let timed = Latencies::read(&live, 6, false)?;
    Ok(Outcome {
        written,
        sustained: timed.sustained(written),
        p50_ms: timed.at(0.50),
        p99_ms: timed.at(0.99),
        max_ms: timed.at(1.0),
    })
}

/// The latency of each row of a live file from its writer's commit (the time in column
/// `committed_at`) to its write in the lake (`SinkModifiedOn`), sorted.
pub struct Latencies {
    sorted_ms: Vec<f64>,
    first_commit: f64,
    last_write: f64,
}

impl Latencies {
    /// Reads `live`; rows without a commit time are skipped when `untimed_rows` (rows the
    /// initial copy wrote), and an error otherwise.
    pub fn read(live: &Path, committed_at: usize, untimed_rows: bool) -> Result<Latencies> {
        let mut reader = CsvReader::new(std::io::BufReader::new(std::fs::File::open(live)?), 0);
        let mut record = Record::default();
        let mut sorted_ms = Vec::new();
        let (mut first_commit, mut last_write) = (f64::MAX, 0f64);
        while reader.read_record(&mut record)? {
            let committed = record
                .get(committed_at)
                .and_then(|(t, _)| t.parse::<f64>().ok());
            let committed = match committed {
                Some(c) => c,
                None if untimed_rows => continue,
                None => bail!("a row without committed_at"),
            };
            let sink = record
                .get(2)
                .and_then(|(t, _)| parse_datetime(t))
                .context("SinkModifiedOn")?;
            let sink = sink.unix_nanos() as f64 / 1e9;
            first_commit = first_commit.min(committed);
            last_write = last_write.max(sink);
            sorted_ms.push((sink - committed).max(0.0) * 1000.0);
        }
        if sorted_ms.is_empty() {
            bail!("no timed change in the lake");
        }
        sorted_ms.sort_by(f64::total_cmp);
        Ok(Latencies {
            sorted_ms,
            first_commit,
            last_write,
        })
    }

    /// The latency at quantile `q` (1.0: the largest), in ms.
    pub fn at(&self, q: f64) -> f64 {
        self.sorted_ms[((self.sorted_ms.len() - 1) as f64 * q) as usize]
    }

    /// `written` changes over the time from the first commit to the last write.
    pub fn sustained(&self, written: u64) -> f64 {
        written as f64 / (self.last_write - self.first_commit).max(1e-9)
    }
}

/// Every rate, as a report section.
pub fn run_all(bin: &Path, seconds: u64, report: &mut String) -> Result<()> {
    let _ = writeln!(report, "## Trickle ({seconds} s per rate)\n");
    let _ = writeln!(
        report,
        "| writer rate | changes | sustained changes/s | latency p50 | p99 | max |\n|---|---:|---:|---:|---:|---:|"
    );
    for rate in [Some(1_000), Some(10_000), Some(100_000), None] {
        eprintln!("trickle at {rate:?} changes/s...");
        let o = run_at(bin, rate, seconds)?;
        let label = rate.map_or_else(|| "flat out".to_string(), |r| format!("{r}/s"));
        let _ = writeln!(
            report,
            "| {label} | {} | {:.0} | {:.0} ms | {:.0} ms | {:.0} ms |",
            o.written, o.sustained, o.p50_ms, o.p99_ms, o.max_ms
        );
    }
    let _ = writeln!(
        report,
        "\nTargets: at least 100,000 changes/s sustained; at 10,000 changes/s, p99 under 200 ms.\n"
    );
    Ok(())
}
