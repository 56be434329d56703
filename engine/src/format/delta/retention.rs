//! Retention of a lake of format `delta` (LAKE_FORMAT §9, "Retention"): the newest
//! `keep_generations` generation records stay, and so does every version of each table that a
//! kept record names, with every data file those versions name. What no kept version needs
//! goes, in an order a crash at any point leaves safe to take again:
//! 1. the records of older generations;
//! 2. each table's data files that no kept version names, once the commit that removed them is
//!    older than `reader_grace` (a reader that began on an older version may still be reading
//!    them), and lakelink's own files that no commit ever named (what an attempt cut short
//!    wrote);
//! 3. the JSON commits and checkpoints before lakelink's newest checkpoint at or before the
//!    oldest kept version, once that checkpoint's commit is older than `reader_grace`: readers
//!    and lakelink's own replay start from that checkpoint (`_last_checkpoint` is pointed at
//!    a checkpoint that stays first, then the checkpoints go, then the commits, oldest first).
//!
//! A table's oldest kept version is the oldest a kept record names, or older, so that it keeps
//! at least its last `keep_generations` versions (a table that sat idle through the kept
//! generations, or whose relink is still copying, keeps what readers saw before), but never
//! older than the first version its log can still be read at.
//!
//! Step 3 deletes no commit whose removed files step 2 has not deleted yet: every file a commit
//! at or before the checkpoint removed was removed before the checkpoint's commit, so past the
//! grace, and at or before the oldest kept version, so named by no kept version. A file another
//! writer put in the table and no commit names is not lakelink's to delete.

use super::{checkpoint, generations, log};
use crate::error::EngineError;
use crate::format::Removed;
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::{LakePath, TableName};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Applies retention after generation `current` was published, at `now` (milliseconds since
/// the epoch).
pub fn apply(
    lake: &dyn Lake,
    keep: u32,
    reader_grace: Duration,
    current: u64,
    now: i64,
) -> Result<Removed, EngineError> {
    let mut removed = Removed::default();
    let keep = (keep as usize).max(1);
    let records: Vec<u64> = generations::recorded(lake)?
        .into_iter()
        .filter(|g| *g <= current)
        .collect();
    for g in records.iter().skip(keep) {
        lake.delete(&LakePath::delta_generation(*g))?;
        removed.manifests += 1;
    }
    // Each table's oldest kept version: the oldest a kept record names, and at least its last
    // `keep` versions (a table that sat idle, or whose relink is still copying, keeps what
    // readers saw before).
    let mut oldest: BTreeMap<String, u64> = BTreeMap::new();
    for g in records.iter().take(keep) {
        let record = match generations::read(lake, *g) {
            Ok(record) => record,
            Err(e) => {
                // Which versions it names is unknown: nothing is deleted until it is mended.
                tracing::warn!(generation = *g, error = %e, "could not read a kept generation's record; no Delta table's older versions or files are deleted until it is mended");
                return Ok(removed);
            }
        };
        for (table, version) in record.map_or_else(Default::default, |r| r.tables) {
            oldest
                .entry(table)
                .and_modify(|o| *o = (*o).min(version))
                .or_insert(version);
        }
    }
    let before = now.saturating_sub(i64::try_from(reader_grace.as_millis()).unwrap_or(i64::MAX));
    for (table, version) in oldest {
        let Ok(name) = TableName::new(&table) else {
            continue;
        };
        let cleaned = log::versions(lake, &name).and_then(|commits| {
            let newest = commits.last().copied().unwrap_or(0);
            let oldest = version
                .min(newest.saturating_sub(keep as u64 - 1))
                .max(first_readable(lake, &name, &commits)?);
            let files = delete_unnamed_files(lake, &name, oldest, current, before)?;
            Ok((
                files,
                delete_old_log(lake, &name, &commits, oldest, before)?,
            ))
        });
        match cleaned {
            Ok((files, log)) => {
                removed.files += files;
                removed.manifests += log;
            }
            // The generation is published; what could not be deleted stays until the next
            // generation's retention, and no other table's retention waits on it.
            Err(e) => tracing::warn!(
                table = %table, error = %e,
                "could not apply retention to the Delta table; its older versions and files stay until the next snapshot"
            ),
        }
    }
    Ok(removed)
}

/// Deletes `table`'s data files that no version from `oldest` on names and that were removed
/// before `before`, and lakelink's files of generations up to `current` that no commit the log
/// holds names; returns how many.
fn delete_unnamed_files(
    lake: &dyn Lake,
    table: &TableName,
    oldest: u64,
    current: u64,
    before: i64,
) -> Result<usize, EngineError> {
    let at_oldest = log::replay(lake, table, Some(oldest))?;
    let newest = log::replay_onto(lake, table, at_oldest.clone(), None)?;
    // Named by a kept version: a file of the oldest, one still in the table, or one a later
    // commit removed (its tombstone is not the one the oldest already had), which that commit
    // or an earlier kept one added.
    let named: HashSet<&String> = at_oldest
        .files
        .keys()
        .chain(newest.files.keys())
        .chain(
            newest
                .tombstones
                .iter()
                .filter(|(path, remove)| at_oldest.tombstones.get(*path) != Some(*remove))
                .map(|(path, _)| path),
        )
        .collect();
    let mut deleted = 0;
    for dir in lake.list(&LakePath::delta_table_dir(table))? {
        if !dir.is_dir || !dir.path.file_name().starts_with(log::PARTITION_COLUMN) {
            continue;
        }
        for file in lake.list(&dir.path)? {
            if file.is_dir {
                continue;
            }
            let path = format!("{}/{}", dir.path.file_name(), file.path.file_name());
            if named.contains(&path) {
                continue;
            }
            let due = match newest.tombstones.get(&path) {
                Some(remove) => remove
                    .get("deletionTimestamp")
                    .and_then(Json::as_i64)
                    .is_some_and(|t| t <= before),
                // Never named by the commits the log holds: lakelink's own file of an attempt
                // cut short (or of a removal older than the log), or another writer's.
                None => generation_of(file.path.file_name()).is_some_and(|g| g <= current),
            };
            if due {
                lake.delete(&file.path)?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

/// The first version of `table` its log (commits `versions`) can be read at: version 0, or the
/// oldest checkpoint the commits go on from.
fn first_readable(
    lake: &dyn Lake,
    table: &TableName,
    versions: &[u64],
) -> Result<u64, EngineError> {
    let first = versions.first().copied().unwrap_or(0);
    if first == 0 {
        return Ok(0);
    }
    Ok(checkpoint::versions(lake, table)?
        .into_iter()
        .find(|c| c + 1 >= first)
        .unwrap_or(first))
}

/// The generation of a data file lakelink named `T<n>-<k>.parquet`.
fn generation_of(name: &str) -> Option<u64> {
    let (generation, rest) = name.strip_prefix('T')?.split_once('-')?;
    let k = rest.strip_suffix(".parquet")?;
    (!k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
        .then(|| generation.parse().ok())
        .flatten()
}

/// Deletes `table`'s JSON commits (`commits`, their versions) and checkpoints before
/// lakelink's newest checkpoint at or before `oldest` whose commit was written before
/// `before`; returns how many.
fn delete_old_log(
    lake: &dyn Lake,
    table: &TableName,
    commits: &[u64],
    oldest: u64,
    before: i64,
) -> Result<usize, EngineError> {
    let Some(&first) = commits.first() else {
        return Ok(0);
    };
    let mut checkpoints = checkpoint::versions(lake, table)?;
    let mut deleted = 0;
    // A checkpoint the commits no longer go on from serves no version (what a crash in an
    // earlier retention may leave).
    for version in checkpoints.iter().filter(|v| **v + 1 < first) {
        lake.delete(&checkpoint::checkpoint_path(table, *version))?;
        deleted += 1;
    }
    checkpoints.retain(|v| *v + 1 >= first);
    let mut start = None;
    for &version in checkpoints.iter().rev() {
        if version > oldest || version <= first {
            continue;
        }
        if commit_time(lake, table, version)?.is_none_or(|t| t > before) {
            continue;
        }
        if let Some(actions) = checkpoint::read_actions(lake, table, version)? {
            start = Some((version, actions.len()));
            break;
        }
    }
    let Some((start, size)) = start else {
        return Ok(deleted);
    };
    // Readers that go by `_last_checkpoint` must never be sent to a checkpoint deleted below
    // (it lags when a crash came between a checkpoint and it).
    if checkpoint::last_checkpoint(lake, table)?.is_none_or(|v| v < start) {
        checkpoint::write_last_checkpoint(lake, table, start, size)?;
    }
    // Checkpoints first, then commits oldest first: a crash part way leaves a log that still
    // goes on from `start`, with no checkpoint below it that lacks its commits, and the next
    // run deletes the rest.
    for version in checkpoints.into_iter().filter(|v| *v < start) {
        lake.delete(&checkpoint::checkpoint_path(table, version))?;
        deleted += 1;
    }
    for &version in commits.iter().filter(|v| **v < start) {
        lake.delete(&LakePath::delta_commit(table, version))?;
        deleted += 1;
    }
    Ok(deleted)
}

/// The `commitInfo` timestamp of `table`'s commit `version`, if it has one.
fn commit_time(
    lake: &dyn Lake,
    table: &TableName,
    version: u64,
) -> Result<Option<i64>, EngineError> {
    let path = LakePath::delta_commit(table, version);
    if lake.size(&path)?.is_none() {
        return Ok(None);
    }
    Ok(log::read_commit(lake, &path)?.iter().find_map(|a| {
        a.get("commitInfo")
            .and_then(|c| c.get("timestamp"))
            .and_then(Json::as_i64)
    }))
}

#[cfg(test)]
mod tests {
    use super::generation_of;

    #[test]
    fn only_lakelinks_own_data_file_names_have_a_generation() {
        assert_eq!(generation_of("T12-3.parquet"), Some(12));
        assert_eq!(generation_of("T1-0.parquet"), Some(1));
        assert_eq!(generation_of("part-00000-1b2c.snappy.parquet"), None);
        assert_eq!(generation_of("T12-.parquet"), None);
        assert_eq!(generation_of("T12-3.parquet.tmp"), None);
        assert_eq!(generation_of("Tx-3.parquet"), None);
    }
}
