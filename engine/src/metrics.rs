//! What the agent knows about itself while it runs: per-table progress and lag, snapshots,
//! retries and errors. Rendered as Prometheus text (`/metrics`) and as the JSON status that
//! `lakelink status` shows (`/status`).

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

/// One table's status.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct TableStatus {
    /// `NotStarted`, `InProgress` or `Completed`.
    pub state: String,
    /// Every change at or before this source position is durable in the lake.
    pub position: i64,
    /// Changes captured in the source and not yet durable in the lake.
    pub lag_changes: i64,
    /// Seconds since the table was last caught up with the source (0 when it is).
    pub lag_seconds: f64,
    /// Changes this agent read for the table since it started.
    pub changes_captured: u64,
    /// Rows this agent appended to the table's live files since it started.
    pub rows_written: u64,
    /// Bytes this agent appended to the table's live files since it started.
    pub bytes_written: u64,
    /// Rows in the live files.
    pub live_rows: u64,
    /// Partitions (live files).
    pub partitions: usize,
    /// Generation of the newest snapshot file of the table.
    pub last_snapshot: Option<u64>,
    /// The last error that concerned the table, if any since it last made progress.
    pub last_error: Option<String>,
}

/// The agent's status as a whole.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct AgentStatus {
    /// The source's newest position.
    pub source_position: i64,
    /// The published generation.
    pub generation: u64,
    /// How long the last publish took.
    pub last_snapshot_seconds: f64,
    /// Per table, by name.
    pub tables: BTreeMap<String, TableStatus>,
    /// Retries, by kind of error.
    pub retries: BTreeMap<String, u64>,
    /// Errors that stopped an operation, by kind.
    pub errors: BTreeMap<String, u64>,
    /// The last error, if the agent has not made progress since.
    pub last_error: Option<String>,
    /// Bytes of its log the source keeps because lakelink has not confirmed them (PostgreSQL:
    /// the slot's retained WAL); `None` for a source that keeps none.
    pub source_retained_bytes: Option<u64>,
}

/// Shows `table` in `state`, with `why` as its last error.
fn set_table_state(inner: &mut Inner, table: &str, state: &str, why: &str) {
    let t = inner.status.tables.entry(table.to_string()).or_default();
    t.state = state.to_string();
    t.last_error = Some(why.to_string());
}

struct Inner {
    status: AgentStatus,
    caught_up_at: BTreeMap<String, Instant>,
    snapshots_published: u64,
}

/// The registry, shared by the pipeline, the agent loop and the HTTP endpoint.
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            inner: Mutex::new(Inner {
                status: AgentStatus::default(),
                caught_up_at: BTreeMap::new(),
                snapshots_published: 0,
            }),
        }
    }
}

/// Progress of one table in one batch.
#[derive(Debug, Clone, Default)]
pub struct TableProgress {
    /// The table.
    pub table: String,
    /// Its state.
    pub state: String,
    /// Its position after the batch.
    pub position: i64,
    /// Changes read for it in the batch.
    pub changes: u64,
    /// Rows appended.
    pub rows: u64,
    /// Bytes appended.
    pub bytes: u64,
    /// Rows in its live files.
    pub live_rows: u64,
    /// Its live files.
    pub partitions: usize,
    /// Its newest snapshot generation.
    pub last_snapshot: Option<u64>,
    /// Why it was stopped, if it was.
    pub stopped: Option<String>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut inner)
    }

    /// Records how many bytes of its log the source keeps for lakelink.
    pub fn record_retained(&self, bytes: Option<u64>) {
        self.with(|inner| inner.status.source_retained_bytes = bytes);
    }

    /// Records a batch (or a link, or a snapshot): each table's progress, and the source's
    /// newest position.
    pub fn record_progress(&self, source_position: i64, tables: &[TableProgress]) {
        self.with(|inner| {
            inner.status.source_position = source_position;
            inner.status.last_error = None;
            let now = Instant::now();
            for p in tables {
                let t = inner.status.tables.entry(p.table.clone()).or_default();
                t.state = p.state.clone();
                t.position = p.position;
                t.changes_captured += p.changes;
                t.rows_written += p.rows;
                t.bytes_written += p.bytes;
                t.live_rows = p.live_rows;
                t.partitions = p.partitions;
                t.last_snapshot = p.last_snapshot;
                t.lag_changes = (source_position - p.position).max(0);
                if t.lag_changes == 0 {
                    inner.caught_up_at.insert(p.table.clone(), now);
                    t.last_error = None;
                }
                let since = inner.caught_up_at.entry(p.table.clone()).or_insert(now);
                t.lag_seconds = if t.lag_changes == 0 {
                    0.0
                } else {
                    since.elapsed().as_secs_f64()
                };
                if let Some(reason) = &p.stopped {
                    t.state = "Stopped".to_string();
                    t.last_error = Some(reason.clone());
                }
            }
        });
    }

    /// Records that a table stopped, and why (before the line that says so is logged, so that
    /// whoever reads the line and asks for the status sees it stopped).
    pub fn record_stopped(&self, table: &str, line: &str) {
        self.with(|inner| {
            *inner
                .status
                .errors
                .entry("table_stopped".into())
                .or_default() += 1;
            inner.status.last_error = Some(line.to_string());
            set_table_state(inner, table, "Stopped", line);
        });
    }

    /// Records that a configured table could not be linked, and why.
    pub fn record_refused(&self, table: &str, line: &str) {
        self.with(|inner| {
            inner.status.last_error = Some(line.to_string());
            set_table_state(inner, table, "Refused", line);
        });
    }

    /// Records that a configured table waits to be linked, and for what.
    pub fn record_waiting(&self, table: &str, error: &str) {
        self.with(|inner| set_table_state(inner, table, "WaitingToLink", error));
    }

    /// Forgets a table that was unlinked.
    pub fn forget_table(&self, table: &str) {
        self.with(|inner| {
            inner.status.tables.remove(table);
            inner.caught_up_at.remove(table);
        });
    }

    /// Records a published snapshot.
    pub fn record_snapshot(&self, generation: u64, seconds: f64) {
        self.with(|inner| {
            inner.status.generation = generation;
            inner.status.last_snapshot_seconds = seconds;
            inner.snapshots_published += 1;
        });
    }

    /// Records a retry after an error of `kind`.
    pub fn record_retry(&self, kind: &str, error: &str) {
        self.with(|inner| {
            *inner.status.retries.entry(kind.to_string()).or_default() += 1;
            inner.status.last_error = Some(error.to_string());
        });
    }

    /// Records an error that stopped an operation, for `table` if it concerned one.
    pub fn record_error(&self, kind: &str, error: &str, table: Option<&str>) {
        self.with(|inner| {
            *inner.status.errors.entry(kind.to_string()).or_default() += 1;
            inner.status.last_error = Some(error.to_string());
            if let Some(t) = table.and_then(|t| inner.status.tables.get_mut(t)) {
                t.last_error = Some(error.to_string());
            }
        });
    }

    /// The status as `lakelink status` shows it.
    pub fn status(&self) -> AgentStatus {
        self.with(|inner| inner.status.clone())
    }

    /// Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        self.with(|inner| {
            let s = &inner.status;
            let mut out = String::new();
            let mut family =
                |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
                    let _ = writeln!(out, "# HELP lakelink_{name} {help}");
                    let _ = writeln!(out, "# TYPE lakelink_{name} {kind}");
                    for (labels, value) in samples {
                        let _ = writeln!(out, "lakelink_{name}{labels} {value}");
                    }
                };
            let per_table = |f: &dyn Fn(&TableStatus) -> String| -> Vec<(String, String)> {
                s.tables
                    .iter()
                    .map(|(name, t)| (format!("{{table=\"{}\"}}", escape(name)), f(t)))
                    .collect()
            };
            family(
                "changes_captured_total",
                "counter",
                "Changes read from the source.",
                per_table(&|t| t.changes_captured.to_string()),
            );
            family(
                "rows_written_total",
                "counter",
                "Rows appended to live files.",
                per_table(&|t| t.rows_written.to_string()),
            );
            family(
                "bytes_written_total",
                "counter",
                "Bytes appended to live files.",
                per_table(&|t| t.bytes_written.to_string()),
            );
            family(
                "lag_changes",
                "gauge",
                "Changes captured but not yet durable in the lake.",
                per_table(&|t| t.lag_changes.to_string()),
            );
            family(
                "lag_seconds",
                "gauge",
                "Seconds since the table was last caught up.",
                per_table(&|t| format!("{:.3}", t.lag_seconds)),
            );
            family(
                "table_position",
                "gauge",
                "Source position the table is durable through.",
                per_table(&|t| t.position.to_string()),
            );
            family(
                "source_position",
                "gauge",
                "The source's newest position.",
                vec![(String::new(), s.source_position.to_string())],
            );
            if let Some(bytes) = s.source_retained_bytes {
                family(
                    "source_retained_wal_bytes",
                    "gauge",
                    "WAL the PostgreSQL slot keeps on the server for lakelink (restart position to current).",
                    vec![(String::new(), bytes.to_string())],
                );
            }
            family(
                "snapshot_generation",
                "gauge",
                "The published generation.",
                vec![(String::new(), s.generation.to_string())],
            );
            family(
                "snapshots_published_total",
                "counter",
                "Snapshots published by this agent.",
                vec![(String::new(), inner.snapshots_published.to_string())],
            );
            family(
                "snapshot_duration_seconds",
                "gauge",
                "How long the last publish took.",
                vec![(String::new(), format!("{:.3}", s.last_snapshot_seconds))],
            );
            let by_kind = |m: &BTreeMap<String, u64>| -> Vec<(String, String)> {
                m.iter()
                    .map(|(k, v)| (format!("{{kind=\"{}\"}}", escape(k)), v.to_string()))
                    .collect()
            };
            family(
                "retries_total",
                "counter",
                "Operations retried, by kind of error.",
                by_kind(&s.retries),
            );
            family(
                "errors_total",
                "counter",
                "Errors that stopped an operation, by kind.",
                by_kind(&s.errors),
            );
            out
        })
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lag_and_text_format() {
        let m = Metrics::default();
        m.record_progress(
            10,
            &[TableProgress {
                table: "a\"b".into(),
                state: "Completed".into(),
                position: 7,
                changes: 5,
                rows: 6,
                bytes: 100,
                live_rows: 6,
                partitions: 1,
                last_snapshot: None,
                stopped: None,
            }],
        );
        m.record_retry("source_busy", "busy");
        let text = m.prometheus();
        assert!(
            text.contains("lakelink_changes_captured_total{table=\"a\\\"b\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("lakelink_lag_changes{table=\"a\\\"b\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("lakelink_retries_total{kind=\"source_busy\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE lakelink_rows_written_total counter"),
            "{text}"
        );
        assert_eq!(m.status().last_error.as_deref(), Some("busy"));
    }
}
