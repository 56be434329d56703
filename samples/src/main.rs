//! `lakelink-sample`: creates the sample CRM database the README's first command syncs, and
//! keeps changing it the way an application would.

use lakelink_samples::crm;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use rand::RngExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Sample data for lakelink.
#[derive(Parser)]
#[command(name = "lakelink-sample", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the sample database (left as it is if it already has the tables).
    Init {
        /// The database file.
        #[arg(long)]
        db: PathBuf,
        /// Accounts to create (about twice as many contacts are made).
        #[arg(long, default_value_t = 2000)]
        accounts: u32,
        /// Seed of the random data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Keep inserting, updating and deleting rows until stopped.
    Write {
        /// The database file.
        #[arg(long)]
        db: PathBuf,
        /// Changes per second.
        #[arg(long, default_value_t = 20)]
        rate: u32,
        /// Seed of the random changes (default: a fresh one each run, so a second run on the
        /// same database doesn't make the account ids the first one made).
        #[arg(long)]
        seed: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long = "for")]
        duration: Option<u64>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Init { db, accounts, seed } => {
            let created = crm::init(&db, accounts, seed)
                .with_context(|| format!("creating the sample database {}", db.display()))?;
            if created {
                println!("created {} with {accounts} accounts", db.display());
            } else {
                println!(
                    "{} already has the sample tables; left as it is",
                    db.display()
                );
            }
        }
        Command::Write {
            db,
            rate,
            seed,
            duration,
        } => {
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(signal, Arc::clone(&stop))?;
            }
            let seed = seed.unwrap_or_else(|| rand::rng().random());
            let mut writer = crm::Writer::open(&db, seed).with_context(|| {
                format!(
                    "opening {} (create it with `lakelink-sample init --db {}`)",
                    db.display(),
                    db.display()
                )
            })?;
            println!(
                "changing {} about {rate} times a second (seed {seed})",
                db.display()
            );
            let started = Instant::now();
            let deadline = duration.map(|s| started + Duration::from_secs(s));
            let pause = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
            let (mut made, mut reported) = (0u64, Instant::now());
            while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
                writer
                    .change()
                    .with_context(|| format!("changing {}", db.display()))?;
                made += 1;
                if reported.elapsed() >= Duration::from_secs(10) {
                    println!("{made} changes so far");
                    reported = Instant::now();
                }
                // Pace by the schedule, not by sleeping a fixed time after each change.
                let due = started + pause.mul_f64(made as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            println!("stopped after {made} changes");
        }
    }
    Ok(())
}
