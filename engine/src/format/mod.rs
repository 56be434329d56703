//! Output formats: how a snapshot of the linked tables is written and published for readers.
//!
//! The live files are the same whatever the format: they are the change log that exactly-once
//! delivery and recovery rest on (`table_feed.rs` writes them, `recovery.rs` reads them back,
//! `trickle_manifest.rs` describes them). What a format decides is everything past the cut:
//! the snapshot files it writes from the live files, the document that makes a generation
//! visible to readers (model.json for CDM CSV), how it tells which generation readers see,
//! what retention may delete, and how `lakelink read` reads a table back.
//!
//! [`crate::snapshot::publish`] drives a format through the steps of a publish, in this order,
//! each durable before the next (ARCHITECTURE.md, "Commit protocol"):
//! 1. the pending snapshot is recorded in the checkpoint store;
//! 2. [`SnapshotFormat::write_partition`] for each partition that changed: create-only files
//!    that no reader sees yet;
//! 3. [`SnapshotFormat::publish`]: the generation's commit point, last;
//! 4. the checkpoint store records the generation as published;
//! 5. [`SnapshotFormat::apply_retention`].
//!
//! A format is a folder here with one type implementing [`SnapshotFormat`], plus one variant
//! of [`FormatKind`].

pub mod cdm_csv;
pub mod delta;

use crate::error::EngineError;
use crate::linked_table::LinkedTable;
use lakelink_model::change::Position;
use lakelink_model::csv_row::Record;
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::LakePath;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Which generation's snapshot file each (table, partition) is published in.
pub type SnapshotFiles = BTreeMap<(String, String), u64>;

/// What retention keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The generations kept readable (`[engine] keep_generations`).
    pub keep: u32,
    /// How long a file removed from what readers see stays in the lake after its removal, even
    /// once no kept generation names it, for readers still reading an older version
    /// (`[engine] reader_grace`; Delta tables' data files and log).
    pub reader_grace: std::time::Duration,
}

/// What retention removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Published manifests (or log entries) deleted.
    pub manifests: usize,
    /// Snapshot files deleted.
    pub files: usize,
}

/// One way of publishing snapshots of the linked tables.
///
/// # Contract
/// - Nothing [`SnapshotFormat::write_partition`] writes is visible to readers until
///   [`SnapshotFormat::publish`] of its generation returns, and a published file is never
///   written again: a generation that failed before its publish is retried under the same
///   number, and may replace what that attempt left.
/// - [`SnapshotFormat::publish`] makes a generation published whole, or not at all, at one
///   atomic step (its commit point); a crash on either side of it is told apart by
///   [`SnapshotFormat::published_generation`]. A format whose readers see each table apart
///   (Delta: one commit per table) makes every table's part of a generation that failed
///   before its commit point safe to take again under a higher generation, and says what
///   readers may see meanwhile.
/// - [`SnapshotFormat::highest_generation`] is at least every generation the lake ever
///   published, whatever the checkpoint store says, so a new generation never reuses one.
/// - Retention deletes only what no kept generation names.
/// - Errors name the file at fault and what to do; advice names only files that are there.
pub trait SnapshotFormat: Send + Sync {
    /// The folders the format writes in (for the sweep on start of what interrupted writes
    /// left behind).
    fn folders(&self, lake: &dyn Lake) -> Result<Vec<LakePath>, EngineError>;

    /// Writes the snapshot of `table`'s `partition` at its live file's length `cut`, for
    /// `generation`, from the partition's previous snapshot and the live file, holding at
    /// most about `memory` bytes (a sort's budget). Partitions are written on several threads
    /// at once, each with its share of the snapshot's memory.
    fn write_partition(
        &self,
        lake: &dyn Lake,
        table: &LinkedTable,
        partition: &str,
        cut: u64,
        generation: u64,
        memory: usize,
    ) -> Result<(), EngineError>;

    /// Calls `visit` with each row `table`'s `partition` holds live at its live file's length
    /// `upto` (each Id's latest image, deleted Ids left out), in Id order, as its fields in
    /// attribute order (a row written before a column was added has fewer); returns how many.
    /// `upto` is at or past the partition's last snapshot cut. Sorts in about `memory` bytes.
    /// For a `TRUNCATE`, whose delete records name every row the lake holds.
    fn visit_live_rows(
        &self,
        lake: &dyn Lake,
        table: &LinkedTable,
        partition: &str,
        upto: u64,
        memory: usize,
        visit: &mut dyn FnMut(&Record) -> Result<(), EngineError>,
    ) -> Result<u64, EngineError>;

    /// Publishes `generation`: every table, cut at `position`, each partition in the
    /// generation `files` names.
    fn publish(
        &self,
        lake: &dyn Lake,
        tables: &[&LinkedTable],
        files: &SnapshotFiles,
        generation: u64,
        position: Position,
    ) -> Result<(), EngineError>;

    /// The generation readers see now, or `None` when none was published. `recorded` is the
    /// one the checkpoint store published, for advice when the format's own record is damaged.
    fn published_generation(
        &self,
        lake: &dyn Lake,
        recorded: Option<u64>,
    ) -> Result<Option<u64>, EngineError>;

    /// The error for a lake whose published generation (`found`) is not the one the checkpoint
    /// store at `state` recorded, with what to do.
    fn disagreement(
        &self,
        lake: &dyn Lake,
        found: Option<u64>,
        recorded: Option<u64>,
        state: &Path,
    ) -> Result<EngineError, EngineError>;

    /// The highest generation the lake ever published.
    fn highest_generation(&self, lake: &dyn Lake) -> Result<u64, EngineError>;

    /// Keeps the newest `retention.keep` generations up to `current`, and deletes the files no
    /// kept generation names.
    fn apply_retention(
        &self,
        lake: &dyn Lake,
        retention: Retention,
        current: u64,
    ) -> Result<Removed, EngineError>;

    /// Writes `table` as published in `generation` (default: what readers see now) to `out`,
    /// as CSV with a header row; returns the number of rows.
    fn read_table(
        &self,
        lake: &dyn Lake,
        table: &str,
        generation: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<u64, EngineError>;
}

/// The output formats lakelink writes: the one registration each format needs. `[lake] format`
/// names one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub enum FormatKind {
    /// CDM folders of CSV snapshot files and model.json (LAKE_FORMAT §2-§5): `"csv"`.
    #[default]
    #[serde(rename = "csv")]
    CdmCsv,
    /// A Delta Lake table per linked table under `deltalake/` (LAKE_FORMAT §9): `"delta"`.
    #[serde(rename = "delta")]
    Delta,
}

impl FormatKind {
    /// The format's implementation.
    pub fn open(self) -> Box<dyn SnapshotFormat> {
        match self {
            FormatKind::CdmCsv => Box::new(cdm_csv::CdmCsv),
            FormatKind::Delta => Box::new(delta::DeltaLake::default()),
        }
    }

    /// The format's name in `[lake] format`.
    pub fn name(self) -> &'static str {
        match self {
            FormatKind::CdmCsv => "csv",
            FormatKind::Delta => "delta",
        }
    }

    /// The format the lake was written in, or `None` for a lake that has published nothing
    /// in either: `delta` when it has Delta generation records (or Delta tables whose first
    /// record a crash prevented), `csv` when it has model.json or kept manifests.
    pub fn of_lake(lake: &dyn Lake) -> Result<Option<FormatKind>, EngineError> {
        if !lake.list(&LakePath::delta_generations_dir())?.is_empty() {
            return Ok(Some(FormatKind::Delta));
        }
        if lake.size(&LakePath::model())?.is_some()
            || !lake.list(&LakePath::published_models_dir())?.is_empty()
        {
            return Ok(Some(FormatKind::CdmCsv));
        }
        let root = lake.list(&LakePath::from_raw(""))?;
        let delta_tables = root
            .iter()
            .any(|e| e.is_dir && e.path.file_name() == lakelink_model::lake_path::DELTA_DIR);
        Ok(delta_tables.then_some(FormatKind::Delta))
    }

    /// Refuses to write `lake` in this format when it was written in another (a checkpoint
    /// store that records the format is checked apart).
    pub fn check_lake(self, lake: &dyn Lake) -> Result<(), EngineError> {
        match FormatKind::of_lake(lake)? {
            Some(found) if found != self => Err(EngineError::Manifest {
                path: match found {
                    FormatKind::Delta => LakePath::delta_generations_dir().to_string(),
                    FormatKind::CdmCsv => LakePath::model().to_string(),
                },
                reason: format!(
                    "is there, so the lake was written in format {:?}, but [lake] format is {:?}; a lake keeps the format it started with: set format = {:?}, or point [lake] at a new folder",
                    found.name(),
                    self.name(),
                    found.name()
                ),
            }),
            _ => Ok(()),
        }
    }
}
