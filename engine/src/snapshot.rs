//! The snapshotter: cuts every table at one source position and publishes a generation
//! through the output format ([`crate::format`]), unless nothing changed since the last one.
//!
//! Order of a publish (each step durable before the next):
//! 1. the pending snapshot (generation, cut, partitions) is recorded in the checkpoint store;
//! 2. the format writes create-only snapshot files for the partitions that changed;
//! 3. the format publishes the generation, its commit point last (for CDM CSV: the kept
//!    `_lakelink/models/model-T<n>.json`, then `model.json` replaced atomically);
//! 4. the checkpoint store records generation n as published;
//! 5. retention deletes what no kept generation names.
//!
//! A crash before step 3's commit point leaves files nothing names, rewritten or deleted
//! later; a crash after it and before step 4 is rolled forward on start, because the format
//! publishes the pending generation ([`crate::recovery::settle_publish`]).

use crate::error::EngineError;
use crate::format::{Removed, Retention, SnapshotFiles, SnapshotFormat};
use crate::linked_table::LinkedTable;
use crate::state::{PartitionCut, PendingSnapshot, StateStore};
use lakelink_model::change::Position;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The new generation.
    pub generation: u64,
    /// The position every table is cut at.
    pub position: Position,
    /// The partitions whose snapshot files were written, and where they were cut.
    pub cuts: Vec<PartitionCut>,
    /// What retention removed.
    pub removed: Removed,
    /// How long it took.
    pub elapsed: Duration,
}

/// What the published generation says about the set of tables: a new publish is due when this
/// changes, even if no row did (a table linked, unlinked, completed or widened).
pub fn signature(tables: &[&LinkedTable]) -> String {
    let items: Vec<serde_json::Value> = tables
        .iter()
        .map(|t| {
            let mut item = serde_json::json!([
                t.name().as_str(),
                t.record.link,
                t.record.state.as_str(),
                t.attributes().len()
            ]);
            // A table that stopped is a change for readers (model.json says so); one that
            // flows keeps the signature it always had.
            if t.record.stopped.is_some()
                && let Some(items) = item.as_array_mut()
            {
                items.push("Stopped".into());
            }
            item
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

/// The generation each partition's snapshot is published in, after `cuts` are written in
/// `generation`.
fn snapshot_files(
    tables: &[&LinkedTable],
    cuts: &[PartitionCut],
    generation: u64,
) -> SnapshotFiles {
    let mut files = SnapshotFiles::new();
    for f in tables.iter().flat_map(|t| t.files()) {
        if let Some(g) = f.snapshot_generation {
            files.insert((f.table.clone(), f.partition.clone()), g);
        }
    }
    for cut in cuts {
        files.insert((cut.table.clone(), cut.partition.clone()), generation);
    }
    files
}

/// Memory the snapshot files being written may hold together (their sorts' budgets), in
/// bytes; each writing thread has its share.
pub const SNAPSHOT_MEMORY: usize = 64 << 20;

/// Threads that write snapshot files at most: partitions are independent files, and a first
/// snapshot of a big table is bound by the CPU of its sorts.
const MAX_PARTITION_WRITERS: usize = 4;

/// Step 2: writes the snapshot file of every cut, on up to one thread per core (at most
/// [`MAX_PARTITION_WRITERS`]). The first failure stops the others from taking more cuts and
/// is returned once every thread is done; what the threads wrote is never published.
fn write_partitions(
    format: &dyn SnapshotFormat,
    lake: &dyn lakelink_model::lake::Lake,
    tables: &[&LinkedTable],
    cuts: &[PartitionCut],
    generation: u64,
) -> Result<(), EngineError> {
    let writers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_PARTITION_WRITERS)
        .min(cuts.len().max(1));
    let memory = SNAPSHOT_MEMORY / writers;
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(None);
    let write = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(cut) = cuts.get(i) else {
            return;
        };
        if failed.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return;
        }
        let Some(table) = tables.iter().find(|t| t.name().as_str() == cut.table) else {
            continue;
        };
        if let Err(e) =
            format.write_partition(lake, table, &cut.partition, cut.length, generation, memory)
        {
            failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
            return;
        }
    };
    if writers == 1 {
        write();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..writers {
                scope.spawn(write);
            }
        });
    }
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Takes a snapshot of every table at `position` and publishes it through `format`, unless
/// nothing changed since the last publish. Every table must be durable through `position`.
/// Once published, each table records its cuts ([`LinkedTable::mark_snapshot`]) before
/// retention runs, so a retention that fails leaves the tables as the checkpoint store has
/// them.
pub fn publish(
    format: &dyn SnapshotFormat,
    lake: &dyn lakelink_model::lake::Lake,
    state: &mut StateStore,
    tables: &mut [&mut LinkedTable],
    position: Position,
    retention: Retention,
    now: &str,
) -> Result<Option<Published>, EngineError> {
    let started = Instant::now();
    let Some((generation, cuts)) = cut_and_publish(format, lake, state, tables, position, now)?
    else {
        return Ok(None);
    };
    for cut in &cuts {
        if let Some(table) = tables.iter_mut().find(|t| t.name().as_str() == cut.table) {
            table.mark_snapshot(&cut.partition, cut.length, generation);
        }
    }
    let removed = format.apply_retention(lake, retention, generation)?;
    Ok(Some(Published {
        generation,
        position,
        cuts,
        removed,
        elapsed: started.elapsed(),
    }))
}

/// Steps 1-4 of a publish; returns the generation and its cuts, or `None` when nothing
/// changed.
fn cut_and_publish(
    format: &dyn SnapshotFormat,
    lake: &dyn lakelink_model::lake::Lake,
    state: &mut StateStore,
    tables: &[&mut LinkedTable],
    position: Position,
    now: &str,
) -> Result<Option<(u64, Vec<PartitionCut>)>, EngineError> {
    let tables: Vec<&LinkedTable> = tables.iter().map(|t| &**t).collect();
    let tables = tables.as_slice();
    let signature = signature(tables);
    let last = state.published()?;
    let cuts: Vec<PartitionCut> = tables
        .iter()
        .filter(|t| t.is_flowing())
        .flat_map(|t| t.files())
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
    let generation = recorded.max(format.highest_generation(lake)?) + 1;
    state.begin_pending(&PendingSnapshot {
        generation,
        position,
        signature,
        cuts: cuts.clone(),
    })?;
    write_partitions(format, lake, tables, &cuts, generation)?;
    let files = snapshot_files(tables, &cuts, generation);
    format.publish(lake, tables, &files, generation, position)?;
    state.commit_pending(now)?;
    Ok(Some((generation, cuts)))
}
