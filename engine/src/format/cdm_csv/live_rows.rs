//! The rows a partition holds live at a point of its live file, read back for a `TRUNCATE`'s
//! delete records: the partition's last snapshot (an `in_place` table's state at its cut)
//! merged with the live rows past the cut, or, for an `append_only` table, whose snapshot files
//! hold every change, the live file folded from its start.

use super::in_place::{InPlaceInput, visit_in_place};
use super::snapshot_file::fill_fields;
use crate::error::EngineError;
use crate::linked_table::LinkedTable;
use lakelink_model::csv_row::Record;
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::LakePath;
use lakelink_model::schema::AttributeRole;
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
    let live = table.live_path(partition);
    let Some(file) = table.file(partition) else {
        return Ok(0);
    };
    let name = table.name();
    let partitioned = table.is_partitioned();
    let (previous, from) = match (table.record.mode, file.snapshot_generation) {
        (Mode::InPlace, Some(g)) if file.snapshot_len <= upto => (
            Some(LakePath::snapshot_file(
                name,
                partitioned.then_some(partition),
                g,
            )),
            file.snapshot_len,
        ),
        _ => (None, 0),
    };
    let is_delete = table
        .attributes()
        .iter()
        .position(|a| a.role == AttributeRole::IsDelete)
        .unwrap_or(usize::MAX);
    let input = InPlaceInput {
        previous: previous.as_ref(),
        live: &live,
        from,
        to: upto,
        is_delete,
        integer_ids: table.record.schema.id_kind() == lakelink_model::FieldKind::Integer,
        sort_budget: memory,
        fills: &fill_fields(table),
    };
    visit_in_place(lake, &input, visit)
}
