//! Repair on start: what a crash may have left half done is finished or undone before the
//! agent writes anything.
//!
//! - A snapshot recorded as pending is rolled forward if model.json already names its
//!   generation (the crash came after the commit point), else forgotten.
//! - model.json and the checkpoint store must agree on the published generation.
//! - Each live file may hold rows appended after the last checkpoint (the crash came between
//!   the append and the checkpoint): they are counted in, so they are not written twice. A row
//!   cut short by the crash is removed; it was never part of a committed batch.

use crate::error::EngineError;
use crate::snapshot::retention::read_current_model;
use crate::state::{LinkRecord, LiveFile, StateStore};
use lakelink_model::change::Position;
use lakelink_model::csv_row::{CsvError, CsvReader, Record};
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::{LakePath, TableName};
use lakelink_model::schema::AttributeRole;

/// Removes the temporary files that writes interrupted by a crash left anywhere lakelink
/// writes: the lake's root, its own folders, and each table's folder and snapshot folder.
pub fn remove_abandoned_files(lake: &dyn Lake) -> Result<usize, EngineError> {
    let root = LakePath::from_raw("");
    let mut dirs = vec![
        root.clone(),
        LakePath::published_models_dir(),
        LakePath::from_raw(lakelink_model::lake_path::TRICKLE_DIR),
    ];
    for entry in lake.list(&root)? {
        let name = entry.path.file_name();
        if entry.is_dir
            && name != lakelink_model::lake_path::LAKELINK_DIR
            && name != lakelink_model::lake_path::TRICKLE_DIR
        {
            dirs.push(LakePath::from_raw(format!("{}/Snapshot", entry.path)));
            dirs.push(entry.path);
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

/// Settles the publish state. `now` is the lake time text to record a roll-forward with.
pub fn settle_publish(
    lake: &dyn Lake,
    state: &mut StateStore,
    now: &str,
) -> Result<(), EngineError> {
    let model_path = LakePath::model();
    let published = state.published()?.map(|p| p.generation);
    let model_generation = match lake.size(&model_path)? {
        Some(_) => Some(read_current_model(lake, published)?.generation),
        None => None,
    };
    if let Some(pending) = state.pending()? {
        if model_generation == Some(pending.generation) {
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
    let published = state.published()?.map(|p| p.generation);
    match (model_generation, published) {
        (a, b) if a == b => Ok(()),
        (Some(m), None) => Err(EngineError::Manifest {
            path: model_path.to_string(),
            reason: format!(
                "names generation {m} but the checkpoint store has never published; point [engine] state at this lake's checkpoint store"
            ),
        }),
        (None, Some(p)) => {
            let kept = LakePath::published_model(p);
            let advice = if lake.size(&kept)?.is_some() {
                format!("restore it by copying {kept} to model.json")
            } else {
                format!(
                    "no manifest is kept in _lakelink/models either, so the lake's files are gone (the lake folder deleted or emptied, or [lake] pointing at another place or at storage that is not mounted). If the lake is elsewhere, fix [lake] or mount its storage, and start again. If it is gone for good, start over: move the checkpoint store {} aside and sync, which copies every table afresh (on SQLite the next start names the old capture triggers to drop)",
                    state.path().display()
                )
            };
            Err(EngineError::Manifest {
                path: model_path.to_string(),
                reason: format!("is missing but generation {p} was published; {advice}"),
            })
        }
        (m, p) => {
            let (m, p) = (m.unwrap_or(0), p.unwrap_or(0));
            let kept = LakePath::published_model(p);
            // Advice names only a file that is there. Following it is safe: the next publish
            // takes a generation above every one the lake holds, so nothing published is
            // written again.
            let advice = if lake.size(&kept)?.is_some() {
                format!(
                    "if this is the lake's own checkpoint store, restore model.json by copying {kept} to model.json (readers see generation {p} until the next publish); otherwise point [engine] state at the store this lake was written with"
                )
            } else {
                format!(
                    "{kept} is gone too, so point [engine] state at the store this lake was written with"
                )
            };
            Err(EngineError::Manifest {
                path: model_path.to_string(),
                reason: format!(
                    "names generation {m} but the checkpoint store published {p}; {advice}"
                ),
            })
        }
    }
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
        let file_name = entry.path.file_name();
        let Some(partition) = file_name.strip_suffix(".csv") else {
            continue;
        };
        if entry.is_dir || files.iter().any(|f| f.partition == partition) {
            continue;
        }
        files.push(LiveFile::empty(name.as_str(), partition));
    }
    let version_field = link
        .schema
        .attributes()
        .iter()
        .position(|a| a.role == AttributeRole::VersionNumber)
        .unwrap_or(usize::MAX);
    let mut repaired = Vec::with_capacity(files.len());
    for mut f in files {
        let path = LakePath::live_file(name, &f.partition, 0);
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
