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
//! file, an append-only one from the length its files already reach.

mod column_builder;
mod columns;
mod data_file;
mod generations;
mod log;
mod read;

use crate::error::EngineError;
use crate::format::cdm_csv::{fill_fields, visit_live_file_state};
use crate::format::{Removed, SnapshotFiles, SnapshotFormat};
use crate::linked_table::LinkedTable;
use columns::{ColumnRole, DeltaColumn, DeltaType, column_name, original_text_name};
use data_file::{DataFiles, Layout, WrittenFile};
use lakelink_model::FieldKind;
use lakelink_model::change::Position;
use lakelink_model::csv_row::{CsvReader, Record};
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::{DELTA_DIR, LakePath};
use lakelink_model::table_mode::Mode;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// The `add` tag that records how far into its partition's live file a data file's rows reach.
const LIVE_LENGTH_TAG: &str = "lakelink.liveLength";

/// A partition's files written for a generation, waiting for its commit.
struct Staged {
    generation: u64,
    files: Vec<WrittenFile>,
    /// The `remove` actions for the files the new ones replace.
    removes: Vec<Json>,
    /// The live-file length the new files reach.
    live_length: u64,
    /// The columns the files were written in.
    layout: Layout,
}

/// Delta tables, one per linked table, under `deltalake/`.
#[derive(Default)]
pub struct DeltaLake {
    staged: Mutex<BTreeMap<(String, String), Staged>>,
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

/// The columns `table`'s data files are written in: the columns its Delta table already has,
/// in their order, then its attributes the table lacks (columns added to the source).
fn layout(table: &LinkedTable, existing: &[(String, DeltaType)]) -> Layout {
    let attributes = table.attributes();
    let integer_ids = table.record.schema.id_kind() == FieldKind::Integer;
    let mut columns = Vec::new();
    for (name, ty) in existing {
        if let Some(at) = attributes.iter().position(|a| column_name(a) == *name) {
            columns.push(DeltaColumn {
                name: name.clone(),
                ty: *ty,
                role: ColumnRole::Attribute(at),
            });
        } else if let Some(at) = attributes
            .iter()
            .position(|a| original_text_name(a) == *name)
        {
            columns.push(DeltaColumn {
                name: name.clone(),
                ty: DeltaType::String,
                role: ColumnRole::OriginalText(at),
            });
        }
    }
    for (at, a) in attributes.iter().enumerate() {
        let name = column_name(a);
        if !existing.iter().any(|(n, _)| *n == name) {
            columns.push(DeltaColumn {
                name,
                ty: DeltaType::of(a, integer_ids),
                role: ColumnRole::Attribute(at),
            });
        }
    }
    Layout { columns }
}

/// The table's schema after a commit whose files were written in `layouts`: the columns it
/// had, in order, then every new one (the partition column follows the first commit's
/// attributes).
fn schema_after(
    existing: &[(String, DeltaType)],
    base: &Layout,
    layouts: &[&Layout],
) -> Vec<(String, DeltaType)> {
    let mut schema = existing.to_vec();
    let push = |name: &str, ty: DeltaType, schema: &mut Vec<(String, DeltaType)>| {
        if !schema.iter().any(|(n, _)| n == name) {
            schema.push((name.to_string(), ty));
        }
    };
    for c in &base.columns {
        push(&c.name, c.ty, &mut schema);
    }
    push(log::PARTITION_COLUMN, DeltaType::String, &mut schema);
    for layout in layouts {
        for c in &layout.columns {
            push(&c.name, c.ty, &mut schema);
        }
    }
    schema
}

impl DeltaLake {
    /// Commits `table`'s staged partitions of `generation`, or nothing when neither its rows
    /// nor its columns changed; returns its version after.
    fn commit_table(
        &self,
        lake: &dyn Lake,
        table: &LinkedTable,
        generation: u64,
        position: Position,
    ) -> Result<Option<u64>, EngineError> {
        let name = table.name();
        let state = log::replay(lake, name, None)?;
        let staged: Vec<((String, String), Staged)> = {
            let mut all = self.staged.lock().unwrap_or_else(|p| p.into_inner());
            let keys: Vec<(String, String)> = all
                .keys()
                .filter(|(t, _)| t == name.as_str())
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|k| all.remove(&k).map(|s| (k, s)))
                .filter(|(_, s)| s.generation == generation)
                .collect()
        };
        // A table relinked since its last commit starts over: every file of the old link goes,
        // and its schema is the new link's.
        let fresh = state.link != Some(table.record.link);
        let existing: &[(String, DeltaType)] = if fresh { &[] } else { &state.schema };
        let base = layout(table, existing);
        let layouts: Vec<&Layout> = staged.iter().map(|(_, s)| &s.layout).collect();
        let schema = schema_after(existing, &base, &layouts);
        let now = now_millis();
        let mut actions = vec![serde_json::json!({"commitInfo": {
            "timestamp": now,
            "operation": "WRITE",
            "operationParameters": {"mode": "Append"},
            "engineInfo": format!("lakelink/{}", env!("CARGO_PKG_VERSION")),
            "isBlindAppend": false,
            "lakelink": {"generation": generation, "position": position.0},
        }})];
        let first = state.version.is_none();
        if first {
            actions.push(log::protocol_action());
        }
        if fresh || schema != state.schema {
            let id = state
                .table_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            actions.push(log::metadata_action(
                name.as_str(),
                &id,
                &schema,
                table.record.link,
                now,
            ));
        }
        let old_link_files: Vec<&Json> = match fresh {
            true => state.files.values().collect(),
            false => Vec::new(),
        };
        let changed_rows = !old_link_files.is_empty()
            || staged
                .iter()
                .any(|(_, s)| !s.files.is_empty() || !s.removes.is_empty());
        if actions.len() == 1 && !changed_rows {
            return Ok(state.version);
        }
        actions.push(serde_json::json!({"txn": {
            "appId": log::APP_ID,
            "version": generation,
            "lastUpdated": now,
        }}));
        for add in old_link_files {
            actions.push(log::remove_action(add, now));
        }
        for ((_, partition), s) in &staged {
            for remove in &s.removes {
                actions.push(log::remove_action(remove, now));
            }
            for f in &s.files {
                let mut tags = Map::new();
                tags.insert(
                    LIVE_LENGTH_TAG.into(),
                    Json::from(s.live_length.to_string()),
                );
                actions.push(log::add_action(
                    &f.path, partition, f.size, &f.stats, tags, now,
                ));
            }
        }
        let version = state.version.map_or(0, |v| v + 1);
        log::commit(lake, name, version, &actions)?;
        Ok(Some(version))
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
        let state = log::replay(lake, name, None)?;
        // The files and columns of an earlier link of the table are not this link's
        // (`commit_table` removes them).
        let fresh = state.link != Some(table.record.link);
        let existing: &[(String, DeltaType)] = if fresh { &[] } else { &state.schema };
        let layout = layout(table, existing);
        let fills = fill_fields(table);
        let fill = |at: usize| {
            fills
                .iter()
                .find(|f| f.at == at)
                .map(|f| (f.text.clone(), f.quoted))
        };
        let mut files = DataFiles::new(
            lake,
            name,
            table.attributes(),
            partition,
            generation,
            layout,
            memory,
        );
        let current: Vec<&Json> = match fresh {
            true => Vec::new(),
            false => state.files_of(partition).map(|(_, add)| add).collect(),
        };
        let removes = match table.record.mode {
            Mode::InPlace => {
                visit_live_file_state(lake, table, partition, cut, memory, &mut |row, created| {
                    files.push(row, created, &fill)
                })?;
                current.iter().map(|add| (*add).clone()).collect()
            }
            Mode::AppendOnly => {
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
                        files.push(&record, None, &fill)?;
                    }
                }
                Vec::new()
            }
        };
        let (written, layout) = files.finish()?;
        self.staged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                (name.as_str().to_string(), partition.to_string()),
                Staged {
                    generation,
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
        for table in tables {
            let version = if table.is_flowing() {
                self.commit_table(lake, table, generation, position)?
            } else {
                // A stopped table keeps what it last published; one still copying has nothing.
                log::replay(lake, table.name(), None)?.version
            };
            if let Some(v) = version {
                versions.insert(table.name().as_str().to_string(), v);
            }
        }
        generations::write(lake, generation, position, versions)
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
        keep: u32,
        current: u64,
    ) -> Result<Removed, EngineError> {
        // The records of generations beyond `keep` go; the tables' old versions and the data
        // files they name stay until log checkpoints let readers start past them.
        let mut removed = Removed::default();
        let keep = (keep as usize).max(1);
        for g in generations::recorded(lake)?
            .into_iter()
            .filter(|g| *g <= current)
            .skip(keep)
        {
            lake.delete(&LakePath::delta_generation(g))?;
            removed.manifests += 1;
        }
        Ok(removed)
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
