//! A CSV snapshot file of one partition (LAKE_FORMAT §4): for an `append_only` table the live
//! file up to the cut, for an `in_place` table each Id's latest image at the cut
//! ([`super::in_place`]).

use super::in_place::{FilledField, InPlaceInput, MergeBase, write_in_place};
use crate::error::EngineError;
use crate::linked_table::LinkedTable;
use crate::state::LiveFile;
use lakelink_model::csv_row::{CsvReader, Record, RowWriter};
use lakelink_model::lake::{Lake, LakeError, NewFile};
use lakelink_model::lake_path::LakePath;
use lakelink_model::schema::AttributeRole;
use lakelink_model::table_mode::Mode;
use lakelink_model::value_codec::write_value;
use std::io::BufWriter;

/// Starts a file of a generation that is not published yet. A file already there is left from
/// an attempt that crashed before publishing; no manifest names it, so it is replaced.
pub fn create_unpublished(
    lake: &dyn Lake,
    path: &LakePath,
) -> Result<Box<dyn NewFile>, EngineError> {
    match lake.create(path) {
        Err(LakeError::AlreadyExists { .. }) => {
            lake.delete(path)?;
            Ok(lake.create(path)?)
        }
        other => Ok(other?),
    }
}

/// Each filled column's field index and encoded value (see [`InPlaceInput::fills`]).
pub(crate) fn fill_fields(table: &LinkedTable) -> Vec<FilledField> {
    let attributes = table.attributes();
    let mut out: Vec<FilledField> = table
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
            Some(FilledField {
                at,
                text: text.to_string(),
                quoted,
            })
        })
        .collect();
    out.sort_by_key(|f| f.at);
    out
}

/// The state an in-place merge of a partition up to live-file length `upto` starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BaseState {
    /// Nothing: the live file from its start.
    Empty,
    /// The partition's snapshot file of this generation.
    Snapshot(u64),
    /// The live file's first bytes, this many, written by the initial copy in Id order.
    LivePrefix(u64),
}

impl BaseState {
    /// The closest state below `upto` that `file` records, and where its changes start: its
    /// last snapshot when that cut is within reach, else the copy's prefix in Id order.
    pub(super) fn below(file: &LiveFile, upto: u64) -> (BaseState, u64) {
        match file.snapshot_generation {
            Some(g) if file.snapshot_len <= upto => (BaseState::Snapshot(g), file.snapshot_len),
            _ if file.id_ordered_len > 0 && file.id_ordered_len <= upto => (
                BaseState::LivePrefix(file.id_ordered_len),
                file.id_ordered_len,
            ),
            _ => (BaseState::Empty, 0),
        }
    }
}

/// The files an in-place merge of one partition reads, and how the table lays out its rows.
pub(super) struct MergeSources {
    base: MergeBase,
    live: LakePath,
    is_delete: usize,
    integer_ids: bool,
    fills: Vec<FilledField>,
}

impl MergeSources {
    /// `table`'s `partition`, over `base`.
    pub(super) fn of(table: &LinkedTable, partition: &str, base: BaseState) -> MergeSources {
        let partitioned = table.is_partitioned();
        MergeSources {
            base: match base {
                BaseState::Empty => MergeBase::Empty,
                BaseState::Snapshot(g) => MergeBase::Snapshot(LakePath::snapshot_file(
                    table.name(),
                    partitioned.then_some(partition),
                    g,
                )),
                BaseState::LivePrefix(len) => MergeBase::LivePrefix(len),
            },
            live: table.live_path(partition),
            is_delete: table.field_index(AttributeRole::IsDelete),
            integer_ids: table.record.schema.id_kind() == lakelink_model::FieldKind::Integer,
            fills: fill_fields(table),
        }
    }

    /// The merge of the live file's bytes `from..to` over the base, sorting in `sort_budget`
    /// bytes.
    pub(super) fn input(&self, from: u64, to: u64, sort_budget: usize) -> InPlaceInput<'_> {
        InPlaceInput {
            base: &self.base,
            live: &self.live,
            from,
            to,
            is_delete: self.is_delete,
            integer_ids: self.integer_ids,
            sort_budget,
            fills: &self.fills,
        }
    }
}

/// Writes the snapshot file of `table`'s `partition` at live-file length `cut`, for
/// `generation`; nothing names it until the generation is published. An in-place merge sorts
/// in `memory` bytes before it spills to disk.
pub fn write_partition(
    lake: &dyn Lake,
    table: &LinkedTable,
    partition: &str,
    cut: u64,
    generation: u64,
    memory: usize,
) -> Result<(), EngineError> {
    let name = table.name();
    let partitioned = table.is_partitioned();
    let path = LakePath::snapshot_file(name, partitioned.then_some(partition), generation);
    let live = table.live_path(partition);
    let file = table
        .file(partition)
        .cloned()
        .ok_or_else(|| EngineError::Manifest {
            path: live.to_string(),
            reason: "a snapshot cut names a live file the table does not have".into(),
        })?;
    let io_err = |e| LakeError::io("write", &path, e);
    let mut out = BufWriter::with_capacity(1 << 20, create_unpublished(lake, &path)?);
    match table.record.mode {
        Mode::AppendOnly => {
            let mut from = lake.read(&live, 0, Some(cut))?;
            std::io::copy(&mut from, &mut out).map_err(io_err)?;
        }
        Mode::InPlace => {
            let (base, from) = BaseState::below(&file, cut);
            let sources = MergeSources::of(table, partition, base);
            write_in_place(lake, &sources.input(from, cut, memory), &mut out)?;
        }
    }
    let file = out.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_below_a_cut_is_the_last_snapshot_within_reach_else_the_copys_prefix() {
        let mut file = LiveFile::empty("t", "2024");
        file.len = 500;
        assert_eq!(BaseState::below(&file, 500), (BaseState::Empty, 0));
        file.id_ordered_len = 300;
        assert_eq!(
            BaseState::below(&file, 500),
            (BaseState::LivePrefix(300), 300)
        );
        assert_eq!(
            BaseState::below(&file, 300),
            (BaseState::LivePrefix(300), 300)
        );
        // A read-back that stops inside the prefix reads the file from its start.
        assert_eq!(BaseState::below(&file, 200), (BaseState::Empty, 0));
        file.snapshot_generation = Some(3);
        file.snapshot_len = 400;
        assert_eq!(BaseState::below(&file, 500), (BaseState::Snapshot(3), 400));
        // A cut below the snapshot's: the prefix is still the file's start.
        assert_eq!(
            BaseState::below(&file, 350),
            (BaseState::LivePrefix(300), 300)
        );
    }
}
