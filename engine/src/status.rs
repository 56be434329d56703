//! `lakelink status`: per table, its sync state, position, rows and last snapshot, read from
//! the checkpoint store. Works whether or not an agent is running (the store is read-only
//! here and SQLite lets readers in beside the agent).

use crate::config::Config;
use crate::error::EngineError;
use crate::state::StateStore;
use std::fmt::Write as _;

/// The status report as text.
pub fn report(config: &Config) -> Result<String, EngineError> {
    let mut out = String::new();
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
        let _ = writeln!(
            out,
            "{:<24} {:<11} {:>12} {:>10} {:>10} {:>9}",
            link.table,
            link.state.as_str(),
            link.position,
            rows,
            files.len(),
            snapshot
        );
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
