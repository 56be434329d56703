//! The rows a partition holds live at a point of its live file, read back for a `TRUNCATE`'s
//! delete records: for an `in_place` table, its state at an earlier point (the last snapshot,
//! or the prefix the initial copy wrote in Id order) merged with the live rows past it; for an
//! `append_only` table, whose snapshot files hold every change, the live file folded from its
//! start.

use super::in_place::{VisitStateRow, visit_in_place, visit_state_rows};
use super::snapshot_file::{BaseState, MergeSources};
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
    // Past the snapshot's cut over the snapshot (or past the copy's prefix in Id order over
    // that prefix); otherwise, and for an append-only table, the live file from its start.
    let (base, from) = match table.record.mode {
        Mode::InPlace => BaseState::below(file, upto),
        Mode::AppendOnly => (BaseState::Empty, 0),
    };
    let sources = MergeSources::of(table, partition, base);
    visit_in_place(lake, &sources.input(from, upto, memory), visit)
}

/// Calls `visit` with each row `table`'s `partition` holds live at live-file length `upto`, in
/// Id order, folded from the live file alone (over the prefix the initial copy wrote in Id
/// order, when it has one), with the `SinkCreatedOn` to write in place of the row's own
/// (`None`: its own); returns how many. For a format that keeps no CSV snapshot to merge over.
pub fn visit_live_file_state(
    lake: &dyn Lake,
    table: &LinkedTable,
    partition: &str,
    upto: u64,
    memory: usize,
    visit: &mut VisitStateRow<'_>,
) -> Result<u64, EngineError> {
    let Some(file) = table.file(partition) else {
        return Ok(0);
    };
    let (base, from) = match table.record.mode {
        Mode::InPlace if file.id_ordered_len > 0 && file.id_ordered_len <= upto => (
            BaseState::LivePrefix(file.id_ordered_len),
            file.id_ordered_len,
        ),
        _ => (BaseState::Empty, 0),
    };
    let sources = MergeSources::of(table, partition, base);
    visit_state_rows(lake, &sources.input(from, upto, memory), visit)
}
