//! lakelink's record of each generation a lake of format `delta` published:
//! `_lakelink/delta/generation-T<n>.json`, naming the source position and each table's Delta
//! version. Delta has no commit across tables, so a generation is one commit per changed table,
//! then this record, create-only: the record is the generation's commit point for lakelink
//! (recovery, `lakelink read --generation`, retention). A crash before it leaves some tables
//! committed at the generation; the next publish takes a higher generation and works from each
//! table's own log, so nothing is written twice ([`super::DeltaLake`]).

use super::log;
use crate::error::EngineError;
use lakelink_model::change::Position;
use lakelink_model::lake::{Lake, LakeError};
use lakelink_model::lake_path::{DELTA_DIR, LakePath, TableName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// One published generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationRecord {
    /// The generation.
    pub generation: u64,
    /// The source position every table is cut at.
    pub position: i64,
    /// Each table's Delta version in the generation.
    pub tables: BTreeMap<String, u64>,
}

/// The generations recorded in the lake, newest first.
pub fn recorded(lake: &dyn Lake) -> Result<Vec<u64>, EngineError> {
    let mut generations: Vec<u64> = lake
        .list(&LakePath::delta_generations_dir())?
        .into_iter()
        .filter(|e| !e.is_dir)
        .filter_map(|e| e.path.generation())
        .collect();
    generations.sort_unstable_by(|a, b| b.cmp(a));
    Ok(generations)
}

/// Reads the record of `generation`, or `None` when it is not kept.
pub fn read(lake: &dyn Lake, generation: u64) -> Result<Option<GenerationRecord>, EngineError> {
    let path = LakePath::delta_generation(generation);
    if lake.size(&path)?.is_none() {
        return Ok(None);
    }
    let bytes = lake.read_all(&path)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| EngineError::Manifest {
            path: path.to_string(),
            reason: format!("not a generation record ({e}); restore it from a backup of the lake"),
        })
}

/// Writes the record of a generation, create-only.
pub fn write(
    lake: &dyn Lake,
    generation: u64,
    position: Position,
    tables: BTreeMap<String, u64>,
) -> Result<(), EngineError> {
    let path = LakePath::delta_generation(generation);
    let record = GenerationRecord {
        generation,
        position: position.0,
        tables,
    };
    let bytes = serde_json::to_vec_pretty(&record).map_err(|e| EngineError::Manifest {
        path: path.to_string(),
        reason: format!("could not write the record: {e}"),
    })?;
    let mut file = lake.create(&path)?;
    file.write_all(&bytes)
        .map_err(|e| LakeError::io("write", &path, e))?;
    file.commit()?;
    Ok(())
}

/// The Delta tables of the lake, by name.
pub fn tables(lake: &dyn Lake) -> Result<Vec<TableName>, EngineError> {
    let mut names = Vec::new();
    for entry in lake.list(&LakePath::from_raw(DELTA_DIR))? {
        if entry.is_dir
            && let Ok(name) = TableName::new(entry.path.file_name())
        {
            names.push(name);
        }
    }
    Ok(names)
}

/// The highest generation the lake ever published or began to: the newest record, or a
/// table's commit of a generation whose record a crash prevented.
pub fn highest(lake: &dyn Lake) -> Result<u64, EngineError> {
    let mut highest = recorded(lake)?.first().copied().unwrap_or(0);
    for table in tables(lake)? {
        highest = highest.max(log::last_generation(lake, &table)?.unwrap_or(0));
    }
    Ok(highest)
}

/// The error for a lake whose newest record (`found`) is not the generation the checkpoint
/// store at `state` published (`recorded`).
pub fn disagreement(found: Option<u64>, recorded: Option<u64>, state: &Path) -> EngineError {
    let dir = LakePath::delta_generations_dir();
    let reason = match (found, recorded) {
        (Some(g), None) => format!(
            "records generation {g} but the checkpoint store {} has never published; point [engine] state at this lake's checkpoint store",
            state.display()
        ),
        (None, Some(p)) => format!(
            "holds no generation record but the checkpoint store {} published generation {p}: the lake's files are gone or [lake] points elsewhere; fix [lake], or move the checkpoint store aside and sync to copy every table afresh",
            state.display()
        ),
        (g, p) => format!(
            "records generation {} but the checkpoint store {} published {}; point [engine] state at the store this lake was written with",
            g.unwrap_or(0),
            state.display(),
            p.unwrap_or(0)
        ),
    };
    EngineError::Manifest {
        path: dir.to_string(),
        reason,
    }
}
