//! Repair on start: what a crash may have left half done is finished or undone before the
//! agent writes anything.
//!
//! - A snapshot recorded as pending is rolled forward if the output format already publishes
//!   its generation (model.json names it: the crash came after the commit point), else
//!   forgotten.
//! - The output format and the checkpoint store must agree on the published generation.
//! - Each live file may hold rows appended after the last checkpoint (the crash came between
//!   the append and the checkpoint): they are counted in, so they are not written twice. A row
//!   cut short by the crash is removed; it was never part of a committed batch.

use crate::error::EngineError;
use crate::format::SnapshotFormat;
use crate::state::{LinkRecord, LiveFile, StateStore};
use lakelink_model::change::Position;
use lakelink_model::csv_row::{CsvError, CsvReader, Record};
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::{LAKELINK_DIR, LakePath, TRICKLE_DIR, TableName};
use lakelink_model::schema::AttributeRole;

/// Removes the temporary files that writes interrupted by a crash left anywhere lakelink
/// writes: the lake's root, the trickle manifests' folder, each table's folder (its live
/// files), and the folders the output format writes in.
pub fn remove_abandoned_files(
    lake: &dyn Lake,
    format: &dyn SnapshotFormat,
) -> Result<usize, EngineError> {
    let root = LakePath::from_raw("");
    let mut dirs = vec![root.clone(), LakePath::from_raw(TRICKLE_DIR)];
    for entry in lake.list(&root)? {
        let name = entry.path.file_name();
        if entry.is_dir && name != LAKELINK_DIR && name != TRICKLE_DIR {
            dirs.push(entry.path);
        }
    }
    for dir in format.folders(lake)? {
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    let mut removed = 0;
    for dir in &dirs {
        removed += lake.remove_abandoned(dir)?;
    }
    if removed > 0 {
        tracing::info!(
            files = removed,
            "removed temporary files left by an interrupted write"
        );
    }
    Ok(removed)
}

/// Settles the publish state: a pending snapshot is rolled forward or forgotten, and the
/// generation readers see must be the one the checkpoint store published. `now` is the lake
/// time text to record a roll-forward with.
pub fn settle_publish(
    lake: &dyn Lake,
    format: &dyn SnapshotFormat,
    state: &mut StateStore,
    now: &str,
) -> Result<(), EngineError> {
    let recorded = state.published()?.map(|p| p.generation);
    let found = format.published_generation(lake, recorded)?;
    if let Some(pending) = state.pending()? {
        if found == Some(pending.generation) {
            state.commit_pending(now)?;
            tracing::info!(
                generation = pending.generation,
                "snapshot published before a crash; recorded it"
            );
        } else {
            state.discard_pending()?;
            tracing::info!(
                generation = pending.generation,
                "snapshot interrupted before publishing; it will be retaken"
            );
        }
    }
    let recorded = state.published()?.map(|p| p.generation);
    if found == recorded {
        return Ok(());
    }
    Err(format.disagreement(lake, found, recorded, state.path())?)
}

/// Brings a completed table's live files up to what the lake holds. Returns every live file,
/// repaired; the caller checkpoints them.
pub fn repair_live_files(
    lake: &dyn Lake,
    link: &LinkRecord,
    name: &TableName,
    mut files: Vec<LiveFile>,
) -> Result<Vec<LiveFile>, EngineError> {
    // A live file the checkpoint never heard of: the crash came after its first append.
    for entry in lake.list(&LakePath::table_dir(name))? {
        let Some((partition, _)) = entry.path.as_live_file(name) else {
            continue;
        };
        if entry.is_dir || files.iter().any(|f| f.partition == partition) {
            continue;
        }
        files.push(LiveFile::empty(name.as_str(), &partition));
    }
    let version_field = link
        .schema
        .attributes()
        .iter()
        .position(|a| a.role == AttributeRole::VersionNumber)
        .unwrap_or(usize::MAX);
    let mut repaired = Vec::with_capacity(files.len());
    for mut f in files {
        let path = LakePath::live_file(name, &f.partition);
        let size = lake.size(&path)?.unwrap_or(0);
        if size < f.len {
            return Err(EngineError::Manifest {
                path: path.to_string(),
                reason: format!(
                    "holds {size} bytes but {} were committed; the lake lost data: restore the file, or relink the table",
                    f.len
                ),
            });
        }
        if size > f.len {
            count_tail(lake, &path, &mut f, version_field)?;
        }
        if f.len > 0 {
            repaired.push(f);
        }
    }
    Ok(repaired)
}

/// Counts the complete rows past the checkpointed length into `f`, and cuts a torn last row.
fn count_tail(
    lake: &dyn Lake,
    path: &LakePath,
    f: &mut LiveFile,
    version_field: usize,
) -> Result<(), EngineError> {
    let mut reader = CsvReader::new(lake.read(path, f.len, None)?, f.len);
    let mut record = Record::default();
    let mut rows = 0;
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {
                let position = record
                    .get(version_field)
                    .and_then(|(t, _)| t.parse().ok())
                    .map(Position)
                    .ok_or_else(|| EngineError::Manifest {
                        path: path.to_string(),
                        reason: format!(
                            "the row at byte {} has no versionnumber; the file was not written by lakelink",
                            reader.offset()
                        ),
                    })?;
                if position == f.last_position {
                    f.rows_at_last += 1;
                } else {
                    f.last_position = position;
                    f.rows_at_last = 1;
                }
                f.rows += 1;
                rows += 1;
            }
            Ok(false) => break,
            Err(CsvError::Torn { offset }) => {
                tracing::warn!(file = %path, offset, "removing a row cut short by a crash");
                lake.discard_tail(path, offset)?;
                break;
            }
            Err(source) => {
                return Err(EngineError::Csv {
                    path: path.to_string(),
                    source,
                });
            }
        }
    }
    if rows > 0 {
        tracing::info!(file = %path, rows, "counted rows appended before a crash");
    }
    f.len = reader.offset();
    Ok(())
}
