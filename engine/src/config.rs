//! The agent's TOML config: parsing with unknown keys refused, defaults, and a validation that
//! reports every problem with the key it concerns. Relative paths are relative to the file.

use crate::format::FormatKind;
use lakelink_connectors::registry::relative_to;
pub use lakelink_connectors::registry::{LakeConfig, SourceConfig};
use lakelink_model::lake_path::{DELTA_DIR, TableName};
use lakelink_model::partition::Granularity;
use lakelink_model::table_mode::Mode;
use lakelink_model::table_ref::TableRef;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Snapshots are hourly unless configured: the cadence Synapse Link uses, and frequent enough
/// for reporting while keeping the number of snapshot files small.
pub const DEFAULT_SNAPSHOT_INTERVAL: &str = "1h";
/// Five published manifests stay readable: enough for a reader that started on one to finish
/// while several newer ones are published.
pub const DEFAULT_KEEP_GENERATIONS: u32 = 5;
/// A file removed from a Delta table stays an hour past its removal even once no kept
/// generation names it: a query that began on an older version finishes reading it (readers
/// see a new version at most every snapshot interval, an hour by default).
pub const DEFAULT_READER_GRACE: &str = "1h";
/// The longest `reader_grace`: the 7 days a checkpoint keeps a removed file's tombstone for
/// (Delta's default `deletedFileRetentionDuration`), past which lakelink's own replay may no
/// longer know when a file was removed.
pub const MAX_READER_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often the agent looks for new changes when the last look found none: short enough for
/// sub-second lag, long enough to cost nothing measurable on an idle database.
pub const DEFAULT_POLL_INTERVAL: &str = "200ms";
/// Changes read per batch: large enough to amortise one fsync per touched file, small enough
/// to keep a batch's memory and latency low.
pub const DEFAULT_BATCH_SIZE: usize = 5000;
/// Where the agent serves `/metrics` and `/status`: loopback only, so nothing is exposed
/// beyond the machine unless the operator says so; 9464 is the port commonly used by
/// Prometheus exporters of this kind.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
/// The checkpoint store's default name, beside the config file.
pub const DEFAULT_STATE_FILE: &str = "lakelink-state.db";

/// What can be wrong with a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("config {path}: cannot read it: {source}; check the --config path")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config.
    #[error("config {path}{line}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// ` line N`, when known.
        line: String,
        /// What is wrong.
        message: String,
    },
    /// Values are out of range or inconsistent.
    #[error("config {path}: {}", problems.join("; "))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Every problem found, each naming its key.
        problems: Vec<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    source: SourceConfig,
    lake: RawLake,
    #[serde(default)]
    engine: RawEngine,
    #[serde(default, rename = "table")]
    tables: Vec<RawTable>,
}

/// `[lake]`: the output format, and the lake's own settings (its `kind` and the rest, which
/// refuse unknown keys).
#[derive(Debug, Deserialize)]
struct RawLake {
    #[serde(default)]
    format: FormatKind,
    #[serde(flatten)]
    lake: LakeConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    snapshot_interval: Option<String>,
    keep_generations: Option<u32>,
    reader_grace: Option<String>,
    state: Option<PathBuf>,
    poll_interval: Option<String>,
    batch_size: Option<usize>,
    listen: Option<String>,
    #[serde(default)]
    on_unlink: OnUnlink,
}

/// What happens to an unlinked table's folder in the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnlink {
    /// The folder stays as it is (the default: nothing a reader may still use disappears).
    #[default]
    Keep,
    /// The live files and trickle manifest go at once; snapshot files go with retention,
    /// once no kept manifest names them.
    Delete,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    name: String,
    partition_by: Option<String>,
    #[serde(default)]
    granularity: Granularity,
    #[serde(default)]
    mode: Mode,
    key: Option<Vec<String>>,
    schema: Option<String>,
}

/// `[engine]`, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// Time between snapshots, aligned to the clock.
    pub snapshot_interval: Duration,
    /// Published manifests kept readable.
    pub keep_generations: u32,
    /// How long a removed Delta data file (and log) stays past its removal.
    pub reader_grace: Duration,
    /// The checkpoint store.
    pub state: PathBuf,
    /// Wait between looks for changes when idle.
    pub poll_interval: Duration,
    /// Changes per batch.
    pub batch_size: usize,
    /// Address of the metrics and status endpoint; `None` when turned off.
    pub listen: Option<std::net::SocketAddr>,
    /// What happens to an unlinked table's folder.
    pub on_unlink: OnUnlink,
}

/// One `[[table]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSettings {
    /// The table, also its folder and entity name.
    pub name: TableName,
    /// The timestamp column that picks the partition (`None`: `createdon` if the table has
    /// it, else unpartitioned).
    pub partition_by: Option<String>,
    /// Year or month partitions.
    pub granularity: Granularity,
    /// In-place or append-only snapshots.
    pub mode: Mode,
    /// Key columns for a table without a primary key.
    pub key: Option<Vec<String>>,
    /// The schema the table is in (PostgreSQL; `None`: `public`).
    pub schema: Option<String>,
}

impl TableSettings {
    /// The table in the source: its name, in its configured schema (if any).
    pub fn source_table(&self) -> TableRef {
        TableRef::in_schema(self.schema.clone(), self.name.as_str())
    }
}

/// A loaded, validated config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// `[source]`, paths resolved.
    pub source: SourceConfig,
    /// `[lake]`, paths resolved.
    pub lake: LakeConfig,
    /// `[lake] format`: how snapshots are published.
    pub format: FormatKind,
    /// `[engine]`.
    pub engine: EngineSettings,
    /// The linked tables, in config order.
    pub tables: Vec<TableSettings>,
}

impl Config {
    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Validates config `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| format!(" line {}", text[..span.start].matches('\n').count() + 1))
                .unwrap_or_default();
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                message: e.message().trim().replace('\n', " "),
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| relative_to(base, p);
        let mut problems = Vec::new();

        let source = raw.source.resolve_paths(base);
        problems.extend(source.problems());
        let format = raw.lake.format;
        let lake = raw.lake.lake.resolve_paths(base);
        problems.extend(lake.problems());

        let duration = |key: &str,
                        value: Option<&str>,
                        default: &str,
                        problems: &mut Vec<String>| {
            let text = value.unwrap_or(default);
            match humantime::parse_duration(text) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    problems.push(format!("engine.{key} must be longer than zero"));
                    humantime::parse_duration(default).unwrap_or(Duration::from_secs(1))
                }
                Err(e) => {
                    problems.push(format!(
                        "engine.{key} {text:?} is not a duration ({e}); write e.g. \"2s\", \"15m\", \"1h\""
                    ));
                    humantime::parse_duration(default).unwrap_or(Duration::from_secs(1))
                }
            }
        };
        let e = raw.engine;
        let engine = EngineSettings {
            snapshot_interval: duration(
                "snapshot_interval",
                e.snapshot_interval.as_deref(),
                DEFAULT_SNAPSHOT_INTERVAL,
                &mut problems,
            ),
            keep_generations: e.keep_generations.unwrap_or(DEFAULT_KEEP_GENERATIONS),
            reader_grace: {
                let text = e.reader_grace.as_deref().unwrap_or(DEFAULT_READER_GRACE);
                match humantime::parse_duration(text) {
                    Ok(d) if d <= MAX_READER_GRACE => d,
                    Ok(_) => {
                        problems.push(format!(
                            "engine.reader_grace {text:?} is longer than 7 days, the longest a Delta checkpoint keeps a removed file's tombstone; write at most \"7days\""
                        ));
                        MAX_READER_GRACE
                    }
                    Err(e) => {
                        problems.push(format!(
                            "engine.reader_grace {text:?} is not a duration ({e}); write e.g. \"0s\", \"15m\", \"1h\""
                        ));
                        MAX_READER_GRACE
                    }
                }
            },
            state: resolve(e.state.as_deref().unwrap_or(Path::new(DEFAULT_STATE_FILE))),
            poll_interval: duration(
                "poll_interval",
                e.poll_interval.as_deref(),
                DEFAULT_POLL_INTERVAL,
                &mut problems,
            ),
            batch_size: e.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
            on_unlink: e.on_unlink,
            listen: match e.listen.as_deref().unwrap_or(DEFAULT_LISTEN) {
                "off" => None,
                text => match text.parse() {
                    Ok(addr) => Some(addr),
                    Err(_) => {
                        problems.push(format!(
                            "engine.listen {text:?} is not an address; write e.g. \"127.0.0.1:9464\", or \"off\""
                        ));
                        None
                    }
                },
            },
        };
        if engine.keep_generations == 0 {
            problems.push("engine.keep_generations must be at least 1".into());
        }
        if engine.batch_size == 0 {
            problems.push("engine.batch_size must be at least 1".into());
        }

        let mut seen = HashSet::new();
        let mut tables = Vec::new();
        for (i, t) in raw.tables.into_iter().enumerate() {
            let at = format!("table[{i}]");
            let name = match TableName::new(&t.name) {
                Ok(name) => name,
                Err(e) => {
                    problems.push(format!("{at}.name: {e}"));
                    continue;
                }
            };
            // SQLite table names are case-insensitive, and so are some lakes' folders.
            if !seen.insert(t.name.to_lowercase()) {
                problems.push(format!("{at}.name: table {:?} is listed twice", t.name));
            }
            if format == FormatKind::Delta && t.name.eq_ignore_ascii_case(DELTA_DIR) {
                problems.push(format!(
                    "{at}.name: a table named {:?} cannot be linked into a lake of format \"delta\", whose Delta tables live in the folder of that name; link it into a lake of format \"csv\"",
                    t.name
                ));
            }
            if let Some(key) = &t.key
                && (key.is_empty() || key.iter().any(String::is_empty))
            {
                problems.push(format!("{at}.key: list one or more column names"));
            }
            if t.partition_by.as_deref() == Some("") {
                problems.push(format!(
                    "{at}.partition_by: name a timestamp column, or leave it out"
                ));
            }
            if let Some(schema) = &t.schema {
                if source.has_schemas() {
                    if schema.is_empty() || schema.contains('.') {
                        problems.push(format!(
                            "{at}.schema: name one schema (no \".\"), or leave it out for public"
                        ));
                    }
                } else {
                    problems.push(format!(
                        "{at}.schema: SQLite tables have no schema; leave it out"
                    ));
                }
            }
            tables.push(TableSettings {
                name,
                partition_by: t.partition_by,
                granularity: t.granularity,
                mode: t.mode,
                key: t.key,
                schema: t.schema,
            });
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(Config {
            path: path.to_path_buf(),
            source,
            lake,
            format,
            engine,
            tables,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [source]
        kind = "sqlite"
        path = "crm.db"
        [lake]
        kind = "local"
        path = "/lake"
        [engine]
        snapshot_interval = "2s"
        [[table]]
        name = "account"
        partition_by = "createdon"
        granularity = "month"
        [[table]]
        name = "notes"
        mode = "append_only"
        key = ["a", "b"]
    "#;

    #[test]
    fn a_good_config_resolves_paths_and_defaults() {
        let c = Config::parse(Path::new("/etc/lakelink/agent.toml"), GOOD).unwrap();
        assert_eq!(
            c.source,
            SourceConfig::Sqlite(lakelink_connectors::source::sqlite::SqliteSourceConfig {
                path: "/etc/lakelink/crm.db".into()
            })
        );
        assert_eq!(c.engine.snapshot_interval, Duration::from_secs(2));
        assert_eq!(c.engine.keep_generations, 5);
        assert_eq!(c.engine.state, Path::new("/etc/lakelink/lakelink-state.db"));
        assert_eq!(c.tables.len(), 2);
        assert_eq!(c.tables[0].granularity, Granularity::Month);
        assert_eq!(c.tables[1].mode, Mode::AppendOnly);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let text = GOOD.replace("granularity = \"month\"", "granularty = \"month\"");
        let err = Config::parse(Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `granularty`"), "{err}");
        assert!(err.contains("line 13"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn a_schema_is_refused_for_sqlite_tables() {
        let text = GOOD.replace("name = \"notes\"", "name = \"notes\"\nschema = \"sales\"");
        let err = Config::parse(Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("table[1].schema: SQLite tables have no schema"),
            "{err}"
        );
    }

    #[test]
    fn a_reader_grace_is_an_hour_unless_set_and_at_most_a_week() {
        let c = Config::parse(Path::new("a.toml"), GOOD).unwrap();
        assert_eq!(c.engine.reader_grace, Duration::from_secs(3600));
        let grace = |text: &str| {
            let text = GOOD.replace(
                "snapshot_interval = \"2s\"",
                &format!("snapshot_interval = \"2s\"\nreader_grace = {text:?}"),
            );
            Config::parse(Path::new("a.toml"), &text).map(|c| c.engine.reader_grace)
        };
        assert_eq!(grace("0s").unwrap(), Duration::ZERO, "none at all");
        assert_eq!(grace("7days").unwrap(), MAX_READER_GRACE);
        let err = grace("8days").unwrap_err().to_string();
        assert!(
            err.contains("engine.reader_grace \"8days\" is longer than 7 days"),
            "{err}"
        );
        let err = grace("a while").unwrap_err().to_string();
        assert!(
            err.contains("engine.reader_grace \"a while\" is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let text = GOOD
            .replace("\"2s\"", "\"soon\"")
            .replace("name = \"notes\"", "name = \"../x\"")
            + "\n[[table]]\nname = \"Account\"\n";
        let err = Config::parse(Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("engine.snapshot_interval \"soon\""), "{err}");
        assert!(err.contains("table[1].name"), "{err}");
        assert!(err.contains("listed twice"), "{err}");
    }

    #[cfg(feature = "adls")]
    fn adls(lake: &str) -> Result<Config, ConfigError> {
        let text = GOOD.replace("kind = \"local\"\n        path = \"/lake\"", lake);
        Config::parse(Path::new("/etc/lakelink/agent.toml"), &text)
    }

    #[test]
    #[cfg(feature = "adls")]
    fn an_adls_lake_resolves_its_secret_file_and_checks_its_auth() {
        let c = adls(
            "kind = \"adls\"\naccount = \"crmlake\"\nfilesystem = \"lake\"\npath = \"lakes/crm\"\nauth = \"account_key\"\naccount_key_file = \"key\"",
        )
        .unwrap();
        let LakeConfig::Adls(lake) = &c.lake else {
            panic!("not an ADLS lake: {:?}", c.lake);
        };
        assert_eq!(
            lake.account_key_file.as_deref(),
            Some(Path::new("/etc/lakelink/key"))
        );
        assert_eq!(lake.split_after(), 10_000, "the default split");
        let err = adls(
            "kind = \"adls\"\naccount = \"crmlake\"\nfilesystem = \"lake\"\nauth = \"managed_identity\"\nsplit_after_batches = 50000",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("lake.split_after_batches must be between 1 and 49000"),
            "{err}"
        );
        assert_eq!(lake.prefix(), "lakes/crm");
        let err = adls(
            "kind = \"adls\"\naccount = \"Crm_Lake\"\nfilesystem = \"x\"\nauth = \"service_principal\"\nsas_token_env = \"S\"",
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "lake.account \"Crm_Lake\"",
            "lake.filesystem \"x\"",
            "needs lake.client_secret_env",
            "needs lake.tenant_id",
            "needs lake.client_id",
            "lake.sas_token_env does not apply",
        ] {
            assert!(err.contains(expected), "{expected}: {err}");
        }
        let err = adls("kind = \"adls\"\naccount = \"crmlake\"\nfilesystem = \"lake\"\nauth = \"sas\"\nsas_token = \"sv=secret\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown field `sas_token`"),
            "secrets never in the text: {err}"
        );
        assert!(!err.contains("sv=secret"), "{err}");
    }
}
