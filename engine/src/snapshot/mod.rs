//! The snapshotter: cuts every table at one source position, writes create-only snapshot files
//! for the partitions that changed, then publishes model.json atomically.
//!
//! Order of a publish (each step durable before the next):
//! 1. the pending snapshot (generation, cut, partitions) is recorded in the checkpoint store;
//! 2. snapshot files are written create-only;
//! 3. `_lakelink/models/model-T<n>.json` is written create-only;
//! 4. `model.json` is replaced atomically: this is the commit point;
//! 5. the checkpoint store records generation n as published;
//! 6. retention deletes what no kept manifest names.
//!
//! A crash before step 4 leaves files no manifest names, rewritten or deleted later; a crash
//! between 4 and 5 is rolled forward on start because model.json names the pending generation.

pub mod id_key;
pub mod in_place;
pub mod retention;
pub mod spill_sort;

use crate::error::EngineError;
use crate::manifest::{self, SnapshotFiles};
use crate::state::{PartitionCut, PendingSnapshot, StateStore, SyncState};
use crate::table_feed::TableFeed;
use in_place::{InPlaceInput, write_in_place};
use lakelink_model::change::Position;
use lakelink_model::csv_row::{CsvReader, Record, RowWriter};
use lakelink_model::lake::{Lake, LakeError, NewFile};
use lakelink_model::lake_path::LakePath;
use lakelink_model::schema::AttributeRole;
use lakelink_model::table_mode::Mode;
use lakelink_model::value_codec::write_value;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

/// Memory the sort of one partition's changes may use before spilling to disk.
pub const SORT_BUDGET: usize = 64 << 20;

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The new generation.
    pub generation: u64,
    /// The position every table is cut at.
    pub position: Position,
    /// Snapshot files written.
    pub files_written: usize,
    /// What retention removed.
    pub removed: retention::Removed,
    /// How long it took.
    pub elapsed: Duration,
}

/// Takes a snapshot of every table at `position` and publishes it, unless nothing changed
/// since the last publish. Every feed must be durable through `position`.
pub fn publish(
    lake: &dyn Lake,
    state: &mut StateStore,
    feeds: &mut BTreeMap<String, TableFeed>,
    position: Position,
    keep_generations: u32,
    now: &str,
) -> Result<Option<Published>, EngineError> {
    let started = Instant::now();
    let signature = manifest::signature(feeds.values());
    let last = state.published()?;
    let cuts: Vec<PartitionCut> = feeds
        .values()
        .filter(|f| f.record.state == SyncState::Completed && f.record.stopped.is_none())
        .flat_map(|f| f.files())
        .filter(|f| f.len > f.snapshot_len)
        .map(|f| PartitionCut {
            table: f.table.clone(),
            partition: f.partition.clone(),
            length: f.len,
        })
        .collect();
    if cuts.is_empty() && last.as_ref().is_some_and(|p| p.signature == signature) {
        return Ok(None);
    }
    let recorded = last.as_ref().map_or(0, |p| p.generation);
    let generation = recorded.max(retention::highest_generation(lake)?) + 1;
    state.begin_pending(&PendingSnapshot {
        generation,
        position,
        signature,
        cuts: cuts.clone(),
    })?;

    let mut overrides = SnapshotFiles::new();
    for cut in &cuts {
        let feed = &feeds[&cut.table];
        write_partition(lake, feed, &cut.partition, cut.length, generation)?;
        overrides.insert((cut.table.clone(), cut.partition.clone()), generation);
    }
    let files = manifest::snapshot_files(feeds.values(), &overrides);
    let model = manifest::build_model(lake, feeds.values(), &files, generation, position);
    let bytes = manifest::to_bytes(&model);
    let mut kept = create_unpublished(lake, &LakePath::published_model(generation))?;
    kept.write_all(&bytes)
        .map_err(|e| LakeError::io("write", LakePath::published_model(generation), e))?;
    kept.commit()?;
    lake.replace(&LakePath::model(), &bytes)?;
    state.commit_pending(now)?;
    for cut in &cuts {
        if let Some(feed) = feeds.get_mut(&cut.table) {
            feed.mark_snapshot(&cut.partition, cut.length, generation);
        }
    }
    let removed = retention::apply(lake, keep_generations, generation)?;
    Ok(Some(Published {
        generation,
        position,
        files_written: cuts.len(),
        removed,
        elapsed: started.elapsed(),
    }))
}

/// Starts a file of a generation that is not published yet. A file already there is left from
/// an attempt that crashed before publishing; no manifest names it, so it is replaced.
fn create_unpublished(lake: &dyn Lake, path: &LakePath) -> Result<Box<dyn NewFile>, EngineError> {
    match lake.create(path) {
        Err(LakeError::AlreadyExists { .. }) => {
            lake.delete(path)?;
            Ok(lake.create(path)?)
        }
        other => Ok(other?),
    }
}

/// Each filled column's field index and encoded value (see [`InPlaceInput::fills`]).
fn fill_fields(feed: &TableFeed) -> Vec<(usize, String, bool)> {
    let attributes = feed.layout().attributes();
    let mut out: Vec<(usize, String, bool)> = feed
        .record
        .schema
        .fills
        .iter()
        .filter_map(|fill| {
            let at = attributes
                .iter()
                .position(|a| a.role == AttributeRole::Column(fill.column))?;
            let mut bytes = Vec::new();
            let mut row = RowWriter::new(&mut bytes);
            write_value(
                &mut row,
                &fill.value,
                attributes[at].kind,
                &mut String::new(),
            );
            row.finish();
            let mut record = Record::default();
            CsvReader::new(bytes.as_slice(), 0)
                .read_record(&mut record)
                .ok()?;
            let (text, quoted) = record.get(0)?;
            Some((at, text.to_string(), quoted))
        })
        .collect();
    out.sort_by_key(|(at, _, _)| *at);
    out
}

fn write_partition(
    lake: &dyn Lake,
    feed: &TableFeed,
    partition: &str,
    cut: u64,
    generation: u64,
) -> Result<(), EngineError> {
    let name = feed.name();
    let partitioned = feed.record.schema.partition_column.is_some();
    let path = LakePath::snapshot_file(name, partitioned.then_some(partition), generation);
    let live = LakePath::live_file(name, partition, 0);
    let file = feed
        .files()
        .find(|f| f.partition == partition)
        .cloned()
        .ok_or_else(|| EngineError::Manifest {
            path: live.to_string(),
            reason: "a snapshot cut names a live file the table does not have".into(),
        })?;
    let io_err = |e| LakeError::io("write", &path, e);
    let mut out = BufWriter::with_capacity(1 << 20, create_unpublished(lake, &path)?);
    match feed.record.mode {
        Mode::AppendOnly => {
            let mut from = lake.read(&live, 0, Some(cut))?;
            std::io::copy(&mut from, &mut out).map_err(io_err)?;
        }
        Mode::InPlace => {
            let previous = file
                .snapshot_generation
                .map(|g| LakePath::snapshot_file(name, partitioned.then_some(partition), g));
            let attributes = feed.layout().attributes();
            let is_delete = attributes
                .iter()
                .position(|a| a.role == AttributeRole::IsDelete)
                .unwrap_or(usize::MAX);
            let input = InPlaceInput {
                previous: previous.as_ref(),
                live: &live,
                from: file.snapshot_len,
                to: cut,
                is_delete,
                integer_ids: feed.record.schema.id_kind() == lakelink_model::FieldKind::Integer,
                sort_budget: SORT_BUDGET,
                fills: &fill_fields(feed),
            };
            write_in_place(lake, &input, &mut out)?;
        }
    }
    let file = out.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.commit()?;
    Ok(())
}
