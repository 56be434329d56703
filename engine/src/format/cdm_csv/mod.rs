//! The CDM CSV output format (LAKE_FORMAT §2-§5), the layout Synapse Link for Dataverse
//! writes: per table, CSV snapshot files under `<table>/Snapshot/`, and one model.json that
//! names every table's files of the newest generation. Each publish keeps a copy of its
//! model.json in `_lakelink/models/`, for `lakelink read --generation`, retention and repair.

mod in_place;
mod live_rows;
mod manifests;
mod model_json;
mod read;
mod retention;
mod snapshot_file;

// The live files' state, folded and merged by Id, is the same for every format; the Delta
// format reads it through these.
pub(crate) use live_rows::visit_live_file_state;
pub(crate) use snapshot_file::{create_unpublished, fill_fields};

use crate::error::EngineError;
use crate::format::{Removed, Retention, SnapshotFiles, SnapshotFormat};
use crate::linked_table::LinkedTable;
use lakelink_model::change::Position;
use lakelink_model::csv_row::Record;
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::{LAKELINK_DIR, LakePath, TRICKLE_DIR};
use std::io::Write;
use std::path::Path;

/// CDM folders of CSV snapshot files and model.json.
pub struct CdmCsv;

impl SnapshotFormat for CdmCsv {
    fn folders(&self, lake: &dyn Lake) -> Result<Vec<LakePath>, EngineError> {
        let mut dirs = vec![LakePath::from_raw(""), LakePath::published_models_dir()];
        for entry in lake.list(&LakePath::from_raw(""))? {
            let name = entry.path.file_name();
            if entry.is_dir && name != LAKELINK_DIR && name != TRICKLE_DIR {
                dirs.push(LakePath::from_raw(format!("{}/Snapshot", entry.path)));
            }
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
        snapshot_file::write_partition(lake, table, partition, cut, generation, memory)
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
        live_rows::visit_live_rows(lake, table, partition, upto, memory, visit)
    }

    fn publish(
        &self,
        lake: &dyn Lake,
        tables: &[&LinkedTable],
        files: &SnapshotFiles,
        generation: u64,
        position: Position,
    ) -> Result<(), EngineError> {
        model_json::publish(lake, tables, files, generation, position)
    }

    fn published_generation(
        &self,
        lake: &dyn Lake,
        recorded: Option<u64>,
    ) -> Result<Option<u64>, EngineError> {
        manifests::published_generation(lake, recorded)
    }

    fn disagreement(
        &self,
        lake: &dyn Lake,
        found: Option<u64>,
        recorded: Option<u64>,
        state: &Path,
    ) -> Result<EngineError, EngineError> {
        manifests::disagreement(lake, found, recorded, state)
    }

    fn highest_generation(&self, lake: &dyn Lake) -> Result<u64, EngineError> {
        manifests::highest_generation(lake)
    }

    fn apply_retention(
        &self,
        lake: &dyn Lake,
        retention: Retention,
        current: u64,
    ) -> Result<Removed, EngineError> {
        // Snapshot files are named by the manifests alone; a reader reads the one it started
        // on, which keep_generations keeps.
        retention::apply(lake, retention.keep, current)
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
