//! The Delta Lake output format (`[lake] format = "delta"`, LAKE_FORMAT §9): each linked table
//! is a Delta table at `deltalake/<table>/`, partitioned by `PartitionId`, written by lakelink
//! itself, so that Spark, Fabric, Databricks, DuckDB, Polars and pandas read the lake with real
//! types and no job in between. The live files stay the change log everything rests on; Delta
//! tables take the place of the CSV snapshot files, and no model.json is published.
//!
//! A generation, in the order of [`crate::snapshot::publish`]:
//! 1. [`SnapshotFormat::write_partition`] writes the partition's new Parquet files
//!    (`PartitionId=<p>/T<n>-<k>.parquet`, create-only, named by no commit yet) and stages the
//!    `add` and `remove` actions that will publish them. An `in_place` partition is written
//!    whole at the cut (each Id's latest image, folded from the live file) and its previous
//!    files removed; an `append_only` one gains a file of the changes past what its table
//!    already holds, which each `add` records (tag `lakelink.liveLength`, the live-file length
//!    the file's rows reach).
//! 2. [`SnapshotFormat::publish`] commits each changed table: the create-only
//!    `_delta_log/<version>.json` with `txn` (appId `lakelink`, version = the generation),
//!    `commitInfo` (generation and position), a `metaData` action when columns were added, and
//!    the staged actions. Then the generation's record (`generations.rs`), its commit point
//!    for lakelink.
//!
//! What each write starts from is the table's own log, never the checkpoint store, so a
//! generation a crash cut short between two tables' commits is taken again as a higher one
//! without writing any change twice: an in-place partition is rewritten whole from the live
//! file, an append-only one from the length its files already reach. So lakelink must be the
//! only writer of its Delta tables: a commit of another writer that changes files or schema
//! is refused with one line (readers may `VACUUM`, which commits no such action).

mod checkpoint;
mod column_builder;
mod columns;
mod data_file;
mod generations;
mod log;
mod read;
mod retention;
mod table_commit;

use crate::error::EngineError;
use crate::format::cdm_csv::{fill_fields, visit_live_file_state};
use crate::format::{Removed, Retention, SnapshotFiles, SnapshotFormat};
use crate::linked_table::LinkedTable;
use data_file::DataFiles;
use lakelink_model::change::Position;
use lakelink_model::csv_row::{CsvReader, Record};
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::{DELTA_DIR, LakePath, TableName};
use lakelink_model::table_mode::Mode;
use log::TableLog;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use table_commit::{LIVE_LENGTH_TAG, Staged, commit_table, is_fresh, layout};

/// Delta tables, one per linked table, under `deltalake/`.
#[derive(Default)]
pub struct DeltaLake {
    /// The partitions written for the generation being published, by table and partition.
    staged: Mutex<BTreeMap<(String, String), Staged>>,
    /// Each table's log as last replayed, and the generation whose partitions it was replayed
    /// for, if any: a replay reads only the commits since.
    logs: Mutex<HashMap<String, (Option<u64>, TableLog)>>,
}

/// One line naming each table's Delta version in the newest generation, for `lakelink
/// status`, or `None` when none was published.
pub fn published_versions(lake: &dyn Lake) -> Result<Option<String>, EngineError> {
    let Some(newest) = generations::recorded(lake)?.first().copied() else {
        return Ok(None);
    };
    let Some(record) = generations::read(lake, newest)? else {
        return Ok(None);
    };
    let tables: Vec<String> = record
        .tables
        .iter()
        .map(|(t, v)| format!("{t} version {v}"))
        .collect();
    Ok(Some(format!(
        "Delta tables of generation T{newest} (deltalake/<table>): {}",
        tables.join(", ")
    )))
}

/// Milliseconds since the epoch, as the log's timestamps are.
fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl DeltaLake {
    /// `table`'s log replayed to its newest commit, reading only the commits since the last
    /// replay.
    fn table_log(&self, lake: &dyn Lake, table: &TableName) -> Result<TableLog, EngineError> {
        self.replayed(lake, table, None)
    }

    /// `table`'s log for writing the partitions of `generation`: replayed once for all of
    /// them (a listing of the log per partition would cost a lake round trip each), and again
    /// by [`SnapshotFormat::publish`] before anything is committed.
    fn table_log_for(
        &self,
        lake: &dyn Lake,
        table: &TableName,
        generation: u64,
    ) -> Result<TableLog, EngineError> {
        let cached = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((Some(g), state)) = cached.get(table.as_str())
            && *g == generation
        {
            return Ok(state.clone());
        }
        drop(cached);
        self.replayed(lake, table, Some(generation))
    }

    /// Replays `table`'s log onto its last replay, and keeps the result as replayed for
    /// `generation`.
    fn replayed(
        &self,
        lake: &dyn Lake,
        table: &TableName,
        generation: Option<u64>,
    ) -> Result<TableLog, EngineError> {
        let cached = self
            .logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(table.as_str())
            .map(|(_, state)| state.clone())
            .unwrap_or_default();
        let state = log::replay_onto(lake, table, cached, None)?;
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(table.as_str().to_string(), (generation, state.clone()));
        Ok(state)
    }

    /// Takes the partitions staged for `table`'s `link` in `generation`.
    fn take_staged(&self, table: &str, link: i64, generation: u64) -> Vec<Staged> {
        let mut all = self.staged.lock().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<(String, String)> = all.keys().filter(|(t, _)| t == table).cloned().collect();
        keys.into_iter()
            .filter_map(|k| all.remove(&k))
            .filter(|s| s.generation == generation && s.link == link)
            .collect()
    }
}

impl SnapshotFormat for DeltaLake {
    fn folders(&self, lake: &dyn Lake) -> Result<Vec<LakePath>, EngineError> {
        let mut dirs = vec![
            LakePath::delta_generations_dir(),
            LakePath::from_raw(DELTA_DIR),
        ];
        for table in generations::tables(lake)? {
            let dir = LakePath::delta_table_dir(&table);
            for entry in lake.list(&dir)? {
                if entry.is_dir {
                    dirs.push(entry.path);
                }
            }
            dirs.push(dir);
        }
        Ok(dirs)
    }

    fn write_partition(
        &self,
        lake: &dyn Lake,
        table: &LinkedTable,
        partition: &str,
        cut: u64,
        generation: u64,
        memory: usize,
    ) -> Result<(), EngineError> {
        let name = table.name();
        let state = self.table_log_for(lake, name, generation)?;
        // The files and columns of an earlier link of the table are not this link's (its
        // commit removes them).
        let fresh = is_fresh(&state, table);
        if !fresh && let Some(version) = state.foreign {
            return Err(log::foreign_commit(name, version));
        }
        let existing = if fresh { &[][..] } else { &state.schema[..] };
        let mut files = DataFiles::new(
            lake,
            name,
            table.attributes(),
            partition,
            generation,
            layout(table, existing),
            memory,
        );
        let current: Vec<&Json> = match fresh {
            true => Vec::new(),
            false => state.files_of(partition).map(|(_, add)| add).collect(),
        };
        let removes = match table.record.mode {
            Mode::InPlace => {
                // A row written before a column was added holds the column's value for
                // existing rows.
                let fills = fill_fields(table);
                let fill = |at: usize| {
                    fills
                        .iter()
                        .find(|f| f.at == at)
                        .map(|f| (f.text.clone(), f.quoted))
                };
                visit_live_file_state(lake, table, partition, cut, memory, &mut |row, created| {
                    files.push(row, created, &fill)
                })?;
                current.iter().map(|add| (*add).clone()).collect()
            }
            Mode::AppendOnly => {
                // Every change as the live file holds it, from where the table's files reach.
                let reached = current
                    .iter()
                    .filter_map(|add| log::tag(add, LIVE_LENGTH_TAG)?.parse::<u64>().ok())
                    .max()
                    .unwrap_or(0);
                let live = table.live_path(partition);
                if reached < cut {
                    let mut reader = CsvReader::new(lake.read(&live, reached, Some(cut))?, reached);
                    let mut record = Record::default();
                    while reader
                        .read_record(&mut record)
                        .map_err(|source| EngineError::Csv {
                            path: live.to_string(),
                            source,
                        })?
                    {
                        files.push(&record, None, &|_| None)?;
                    }
                }
                Vec::new()
            }
        };
        let (written, layout) = files.finish()?;
        let mut staged = self.staged.lock().unwrap_or_else(|p| p.into_inner());
        // What an earlier attempt that never reached its commit staged is not this one's.
        staged.retain(|_, s| s.generation == generation);
        staged.insert(
            (name.as_str().to_string(), partition.to_string()),
            Staged {
                generation,
                link: table.record.link,
                partition: partition.to_string(),
                files: written,
                removes,
                live_length: cut,
                layout,
            },
        );
        Ok(())
    }

    fn visit_live_rows(
        &self,
        lake: &dyn Lake,
        table: &LinkedTable,
        partition: &str,
        upto: u64,
        memory: usize,
        visit: &mut dyn FnMut(&Record) -> Result<(), EngineError>,
    ) -> Result<u64, EngineError> {
        visit_live_file_state(lake, table, partition, upto, memory, &mut |row, _| {
            visit(row)
        })
    }

    fn publish(
        &self,
        lake: &dyn Lake,
        tables: &[&LinkedTable],
        _files: &SnapshotFiles,
        generation: u64,
        position: Position,
    ) -> Result<(), EngineError> {
        let mut versions = BTreeMap::new();
        let mut due = Vec::new();
        let now = now_millis();
        for table in tables {
            let name = table.name();
            let state = self.table_log(lake, name)?;
            let version = if table.is_flowing() {
                let staged = self.take_staged(name.as_str(), table.record.link, generation);
                let version =
                    commit_table(lake, table, &state, &staged, generation, position, now)?;
                if let Some(v) = version
                    && version != state.version
                    && checkpoint::is_due(v)
                {
                    due.push((name.clone(), v));
                }
                version
            } else if is_fresh(&state, table) {
                // Still copying after a relink: its Delta table holds an earlier link's rows.
                None
            } else {
                // A stopped table keeps what it last published.
                state.version
            };
            if let Some(v) = version {
                versions.insert(name.as_str().to_string(), v);
            }
        }
        generations::write(lake, generation, position, versions)?;
        // After the commit point: a checkpoint that fails costs readers a longer replay, not
        // the generation.
        for (name, version) in due {
            let state = self.table_log(lake, &name)?;
            if state.version != Some(version) {
                // Another writer committed after it; its state is not this version's.
                continue;
            }
            if let Err(e) = checkpoint::write(lake, &name, &state, now) {
                tracing::warn!(table = %name.as_str(), version, error = %e, "could not write the Delta table's checkpoint; readers replay its commits instead, and the next tenth version writes one");
            }
        }
        Ok(())
    }

    fn published_generation(
        &self,
        lake: &dyn Lake,
        _recorded: Option<u64>,
    ) -> Result<Option<u64>, EngineError> {
        Ok(generations::recorded(lake)?.first().copied())
    }

    fn disagreement(
        &self,
        _lake: &dyn Lake,
        found: Option<u64>,
        recorded: Option<u64>,
        state: &Path,
    ) -> Result<EngineError, EngineError> {
        Ok(generations::disagreement(found, recorded, state))
    }

    fn highest_generation(&self, lake: &dyn Lake) -> Result<u64, EngineError> {
        generations::highest(lake)
    }

    fn apply_retention(
        &self,
        lake: &dyn Lake,
        retention: Retention,
        current: u64,
    ) -> Result<Removed, EngineError> {
        retention::apply(
            lake,
            retention.keep,
            retention.reader_grace,
            current,
            now_millis(),
        )
    }

    fn read_table(
        &self,
        lake: &dyn Lake,
        table: &str,
        generation: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<u64, EngineError> {
        read::read_table(lake, table, generation, out)
    }
}
