//! `lakelink status`: per table, its sync state, position, lag, rows, last snapshot and last
//! error. When an agent holds the lake's lock, it is asked (its address is in the lock file);
//! when it cannot be asked (stopped, hung, or serving no endpoint) the report says which
//! process holds the lake, then reads the checkpoint store, as it does when no agent runs
//! (read-only: SQLite lets readers in beside a writer).

use crate::config::Config;
use crate::error::EngineError;
use crate::format::FormatKind;
use crate::http_status::fetch_status;
use crate::metrics::AgentStatus;
use crate::state::StateStore;
use lakelink_model::writer_holder::WriterHolder;
use std::fmt::Write as _;
use std::net::SocketAddr;

/// Who holds the lake's writer lock now (as the holder recorded itself), without taking it.
/// `Err` says why that cannot be told (an unreachable lake).
fn lock_holder(config: &Config) -> Result<Option<String>, EngineError> {
    if config
        .lake
        .local_folder()
        .is_some_and(|folder| !folder.is_dir())
    {
        // Opening would create the folder; status only looks.
        return Ok(None);
    }
    let lake = crate::pipeline::open_lake(&config.lake)?;
    Ok(lake.writer_holder()?)
}

/// The first line when the agent holding the lake cannot be asked: who it is and why it
/// does not answer, so that a person looks at that process instead of starting another.
fn silent_holder_line(holder: &str, parsed: Option<&WriterHolder>) -> String {
    let process = parsed.map_or_else(
        || "that process".to_string(),
        |h| format!("process {}", h.pid),
    );
    match parsed.and_then(|h| h.status) {
        Some(address) => format!(
            "an agent holds the lake but does not answer at http://{address}: {holder}. It may be stopped (SIGSTOP; `kill -CONT` resumes it), hung, or overloaded; look at {process} before starting another agent. From the checkpoint store:"
        ),
        None => format!(
            "an agent holds the lake and serves no status endpoint ([engine] listen is \"off\", or its address was taken): {holder}. From the checkpoint store:"
        ),
    }
}

fn agent_report(status: &AgentStatus, address: SocketAddr) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "agent running (http://{address}); source position {}, published generation {}",
        status.source_position, status.generation
    );
    if let Some(e) = &status.last_error {
        let _ = writeln!(out, "last error: {e}");
    }
    let _ = writeln!(
        out,
        "{:<24} {:<11} {:>12} {:>10} {:>9} {:>10} {:>10} {:>9}  LAST ERROR",
        "TABLE", "STATE", "POSITION", "LAG", "LAG (s)", "ROWS", "PARTITIONS", "SNAPSHOT"
    );
    for (name, t) in &status.tables {
        let _ = writeln!(
            out,
            "{:<24} {:<11} {:>12} {:>10} {:>9.1} {:>10} {:>10} {:>9}  {}",
            name,
            t.state,
            t.position,
            t.lag_changes,
            t.lag_seconds,
            t.live_rows,
            t.partitions,
            t.last_snapshot
                .map_or_else(|| "-".to_string(), |g| format!("T{g}")),
            t.last_error.as_deref().unwrap_or("-")
        );
    }
    out
}

/// For a lake of format `delta`, the line naming each table's Delta version (read from the
/// lake, which status only looks at).
fn delta_versions(config: &Config) -> Option<String> {
    if config.format != FormatKind::Delta
        || config
            .lake
            .local_folder()
            .is_some_and(|folder| !folder.is_dir())
    {
        return None;
    }
    let line = crate::pipeline::open_lake(&config.lake)
        .and_then(|lake| crate::format::delta::published_versions(lake.as_ref()));
    match line {
        Ok(Some(line)) => Some(line + "\n"),
        Ok(None) => Some("no Delta table published yet\n".into()),
        Err(e) => Some(format!("cannot read the Delta tables' versions: {e}\n")),
    }
}

/// The status report as text.
pub fn report(config: &Config) -> Result<String, EngineError> {
    let mut report = report_tables(config)?;
    if let Some(line) = delta_versions(config) {
        report.push_str(&line);
    }
    Ok(report)
}

/// The report of every table, from the agent or the checkpoint store.
fn report_tables(config: &Config) -> Result<String, EngineError> {
    let mut out = match lock_holder(config) {
        Ok(Some(holder)) => {
            let parsed = WriterHolder::parse(&holder);
            if let Some(address) = parsed.as_ref().and_then(|h| h.status)
                && let Some(status) = fetch_status(address)
            {
                return Ok(agent_report(&status, address));
            }
            silent_holder_line(&holder, parsed.as_ref()) + "\n"
        }
        Ok(None) => String::from("no agent is running; from the checkpoint store:\n"),
        Err(e) => format!(
            "cannot tell whether an agent holds the lake ({e}); from the checkpoint store:\n"
        ),
    };
    let Some(state) = StateStore::open_existing(&config.engine.state)? else {
        let _ = writeln!(
            out,
            "no checkpoint store at {}: nothing has been synced yet",
            config.engine.state.display()
        );
        for t in &config.tables {
            let _ = writeln!(out, "{}\tNotStarted", t.name);
        }
        return Ok(out);
    };
    match state.published()? {
        Some(p) => {
            let _ = writeln!(
                out,
                "published generation {} at position {} ({})",
                p.generation, p.position, p.published_at
            );
        }
        None => {
            let _ = writeln!(out, "no snapshot published yet");
        }
    }
    let links = state.links()?;
    let _ = writeln!(
        out,
        "{:<24} {:<11} {:>12} {:>10} {:>10} {:>9}",
        "TABLE", "STATE", "POSITION", "ROWS", "PARTITIONS", "SNAPSHOT"
    );
    for t in &config.tables {
        let Some(link) = links.iter().find(|l| l.table == t.name.as_str()) else {
            let _ = writeln!(out, "{:<24} {:<11}", t.name, "NotStarted");
            continue;
        };
        let files = state.live_files(&link.table)?;
        let rows: u64 = files.iter().map(|f| f.rows).sum();
        let snapshot = files
            .iter()
            .filter_map(|f| f.snapshot_generation)
            .max()
            .map_or_else(|| "-".to_string(), |g| format!("T{g}"));
        let state = if link.stopped.is_some() {
            "Stopped"
        } else {
            link.state.as_str()
        };
        let _ = writeln!(
            out,
            "{:<24} {:<11} {:>12} {:>10} {:>10} {:>9}",
            link.table,
            state,
            link.position,
            rows,
            files.len(),
            snapshot
        );
        if let Some(reason) = &link.stopped {
            let _ = writeln!(out, "  stopped: {reason}");
        }
    }
    for l in links
        .iter()
        .filter(|l| !config.tables.iter().any(|t| t.name.as_str() == l.table))
    {
        let _ = writeln!(
            out,
            "{:<24} {:<11} (no longer in the config; unlinked at the agent's next start)",
            l.table,
            l.state.as_str()
        );
    }
    Ok(out)
}
