//! `lakelink status`: per table, its sync state, position, lag, rows, last snapshot and last
//! error. When an agent runs, it is asked (its address is in the lake's lock file); otherwise
//! the checkpoint store is read (read-only: SQLite lets readers in beside a writer).

use crate::config::{Config, LakeConfig};
use crate::error::EngineError;
use crate::http_status::fetch_status;
use crate::metrics::AgentStatus;
use crate::state::StateStore;
use lakelink_model::lake_path::LakePath;
use std::fmt::Write as _;
use std::net::SocketAddr;

/// The status endpoint of the agent that holds (or last held) the lake's lock.
fn agent_address(config: &Config) -> Option<SocketAddr> {
    let holder = match &config.lake {
        LakeConfig::Local(lake) => {
            std::fs::read_to_string(lake.path.join(LakePath::writer_lock().as_str())).ok()?
        }
        // The lock blob is read without its lease, which only guards writes.
        #[cfg(feature = "adls")]
        LakeConfig::Adls(_) => {
            use std::io::Read as _;
            let lake = crate::pipeline::open_lake(&config.lake).ok()?;
            let mut text = String::new();
            lake.read(&LakePath::writer_lock(), 0, None)
                .ok()?
                .read_to_string(&mut text)
                .ok()?;
            text
        }
    };
    let at = holder.find("status http://")? + "status http://".len();
    let rest = &holder[at..];
    let end = rest.find([')', ',', ' ', '\n']).unwrap_or(rest.len());
    rest[..end].parse().ok()
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

/// The status report as text.
pub fn report(config: &Config) -> Result<String, EngineError> {
    if let Some(address) = agent_address(config)
        && let Some(status) = fetch_status(address)
    {
        return Ok(agent_report(&status, address));
    }
    let mut out = String::from("no agent is running; from the checkpoint store:\n");
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
