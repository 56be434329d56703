//! The rows a partition holds live at a point of its live file, read back for a `TRUNCATE`'s
//! delete records: the partition's last snapshot (an `in_place` table's state at its cut)
//! merged with the live rows past the cut, or, for an `append_only` table, whose snapshot files
//! hold every change, the live file folded from its start.

use super::in_place::visit_in_place;
use super::snapshot_file::MergeSources;
use crate::error::EngineError;
use crate::linked_table::LinkedTable;
use lakelink_model::csv_row::Record;
use lakelink_model::lake::Lake;
use lakelink_model::table_mode::Mode;

/// Calls `visit` with each row `table`'s `partition` holds live at live-file length `upto`,
/// in Id order; returns how many.
pub fn visit_live_rows(
    lake: &dyn Lake,
    table: &LinkedTable,
    partition: &str,
    upto: u64,
    memory: usize,
    visit: &mut dyn FnMut(&Record) -> Result<(), EngineError>,
) -> Result<u64, EngineError> {
    let Some(file) = table.file(partition) else {
        return Ok(0);
    };
    // Past the snapshot's cut over the snapshot; otherwise the live file from its start.
    let previous = match (table.record.mode, file.snapshot_generation) {
        (Mode::InPlace, Some(g)) if file.snapshot_len <= upto => Some(g),
        _ => None,
    };
    let from = previous.map_or(0, |_| file.snapshot_len);
    let sources = MergeSources::of(table, partition, previous);
    visit_in_place(lake, &sources.input(from, upto, memory), visit)
}
