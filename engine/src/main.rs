//! The `lakelink` binary: parses the command line and wires the engine's parts together.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use lakelink_connectors::lake::local::LocalLakeConfig;
use lakelink_engine::agent::{self, Signals};
use lakelink_engine::config::{Config, LakeConfig};
use lakelink_engine::format::FormatKind;
use lakelink_engine::pending_links::Pending;
use lakelink_engine::pipeline::{self, open_lake};
use lakelink_engine::{config_edit, status};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

// The initial copy allocates each row's values on the reading thread and frees them on the
// writing thread; mimalloc handles that cross-thread pattern without the contention the
// system allocator shows in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps a data lake in sync with your database: every insert, update and delete of the
/// tables you link reaches partitioned CSV files, with hourly snapshots and a CDM model.json
/// (the layout Azure Synapse Link for Dataverse writes).
#[derive(Parser)]
#[command(
    name = "lakelink",
    version,
    after_help = "Start with `lakelink sync --config lakelink.toml` for one pass, or `lakelink run --config lakelink.toml` to keep the lake in sync. The config names the source ([source]), the lake ([lake]) and the tables ([[table]]); see the README."
)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until SIGINT or SIGTERM: trickle changes, snapshot on the clock.
    #[command(
        after_help = "Example:\n  lakelink run --config /etc/lakelink/lakelink.toml\n\nSIGUSR1 takes a snapshot now; SIGINT or SIGTERM stops after the batch in flight."
    )]
    Run {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// One pass: link new tables, trickle everything pending, snapshot now, exit.
    #[command(
        after_help = "Example (from cron):\n  lakelink sync --config lakelink.toml\n\nExits non-zero if a table is stopped, after syncing the others."
    )]
    Sync {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show each table's sync state, position, rows and last snapshot.
    #[command(after_help = "Example:\n  lakelink status --config lakelink.toml")]
    Status {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Link a table: add it to the config (a running agent picks it up by itself).
    #[command(
        after_help = "Examples:\n  lakelink link --config lakelink.toml account\n  lakelink link --config lakelink.toml orders --partition-by createdon --granularity month\n  lakelink link --config lakelink.toml audit_log --key id --mode append_only"
    )]
    Link {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// The table.
        table: String,
        /// The timestamp column that picks the partition.
        #[arg(long)]
        partition_by: Option<String>,
        /// `year` or `month`.
        #[arg(long)]
        granularity: Option<String>,
        /// `in_place` or `append_only`.
        #[arg(long)]
        mode: Option<String>,
        /// Key columns, comma-separated, for a table without a primary key.
        #[arg(long, value_delimiter = ',')]
        key: Option<Vec<String>>,
    },
    /// Unlink a table: remove it from the config (a running agent picks it up by itself).
    #[command(
        after_help = "Examples:\n  lakelink unlink --config lakelink.toml account\n  lakelink unlink --config lakelink.toml --all"
    )]
    Unlink {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// The table.
        #[arg(required_unless_present = "all")]
        table: Option<String>,
        /// Unlink every table.
        #[arg(long, conflicts_with = "table")]
        all: bool,
    },
    /// Print a table as readers see it (through model.json), as CSV with a header.
    #[command(
        after_help = "Examples:\n  lakelink read --lake ./lake account | head\n  lakelink read --config lakelink.toml account --generation 12 > account-T12.csv"
    )]
    Read {
        /// The lake folder (a local lake).
        #[arg(long, required_unless_present = "config", conflicts_with = "config")]
        lake: Option<PathBuf>,
        /// The config whose `[lake]` to read (any kind of lake).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The table.
        table: String,
        /// Read an older published generation instead of model.json.
        #[arg(long)]
        generation: Option<u64>,
    },
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in files or journald (or with NO_COLOR).
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, outermost first, each cause only once (an
            // error that already shows its cause in its own text is not followed by it again).
            let mut line = String::new();
            for cause in e.chain() {
                let text = cause.to_string();
                if line.contains(&text) {
                    continue;
                }
                if !line.is_empty() {
                    line.push_str(": ");
                }
                line.push_str(&text);
            }
            eprintln!("lakelink: {}", line.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run { config } => {
            let config = Config::load(&config)?;
            let signals = Signals::install().context("installing signal handlers")?;
            agent::run(config, &signals)?;
        }
        Command::Sync { config } => {
            let config = Config::load(&config)?;
            let outcome = agent::sync_once(config, Arc::new(AtomicBool::new(false)))?;
            match outcome.published {
                Some(p) => println!(
                    "published generation {} at position {} ({} snapshot files)",
                    p.generation,
                    p.position,
                    p.cuts.len()
                ),
                None => println!("nothing changed; model.json stays as it is"),
            }
            // The other tables were synced; a stopped or refused one needs a person, so the
            // pass fails (a cron job then reports it) with each table's line.
            let lines: Vec<String> = outcome
                .stopped
                .iter()
                .map(|(table, reason)| pipeline::stop_line(table, reason))
                .chain(outcome.refused.into_iter().map(|(_, line)| line))
                .chain(outcome.waiting.iter().map(|(table, pending)| {
                    let what = match pending {
                        Pending::Link => "linked",
                        Pending::Unlink => "unlinked (its capture is still in the source)",
                    };
                    format!(
                        "table {table:?} is not {what} yet: an application's lock on it in the source outlasted this pass (the log names who holds it); the next sync or a running agent tries again"
                    )
                }))
                .collect();
            if !lines.is_empty() {
                anyhow::bail!("{}", lines.join(" | "));
            }
        }
        Command::Status { config } => {
            let config = Config::load(&config)?;
            print!("{}", status::report(&config)?);
        }
        Command::Link {
            config,
            table,
            partition_by,
            granularity,
            mode,
            key,
        } => {
            let options = config_edit::LinkOptions {
                partition_by,
                granularity,
                mode,
                key,
            };
            // The table is checked against the source before the config changes: a config
            // naming a table that cannot be linked would only fail at the agent's next start.
            let edited = config_edit::plan_link(&config, &table, &options)?;
            pipeline::check_linkable(&edited.config, &table)
                .with_context(|| format!("config {} is unchanged", config.display()))?;
            edited.save()?;
            println!(
                "linked {table} in {}; a running agent links it now, otherwise the next start or sync does",
                config.display()
            );
        }
        Command::Unlink { config, table, all } => {
            let removed = config_edit::unlink(&config, table.as_deref(), all)?;
            println!(
                "unlinked {removed} table(s) in {}; a running agent unlinks now, otherwise the next start or sync does",
                config.display()
            );
        }
        Command::Read {
            lake,
            config,
            table,
            generation,
        } => {
            let (lake, format) = match (lake, config) {
                (Some(lake), _) => {
                    if !lake.is_dir() {
                        anyhow::bail!("lake folder {} does not exist", lake.display());
                    }
                    let lake = open_lake(&LakeConfig::Local(LocalLakeConfig {
                        path: lake,
                        base_url: None,
                    }))?;
                    let format = FormatKind::of_lake(lake.as_ref())?.unwrap_or_default();
                    (lake, format)
                }
                (None, Some(config)) => {
                    let config = Config::load(&config)?;
                    (open_lake(&config.lake)?, config.format)
                }
                (None, None) => anyhow::bail!("give --lake or --config"),
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let format = format.open();
            match format.read_table(lake.as_ref(), &table, generation, &mut out) {
                Ok(_) => {}
                // `lakelink read ... | head` closes the pipe early; that is not a failure.
                Err(lakelink_engine::error::EngineError::Lake(
                    lakelink_model::lake::LakeError::Io { source, .. },
                )) if source.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
