//! Rows that left a table without a change the source reported. SQLite's REPLACE conflict
//! resolution deletes the rows it replaces without firing delete triggers (unless the
//! application's connection enables `recursive_triggers`): a row replaced for another
//! UNIQUE constraint leaves no trace in the change log, and one replaced by a row of the same
//! key in another partition leaves its old image in the old partition.
//!
//! While an in-place snapshot of such a table's partition is written, each row written is
//! looked up in the source as of the cut ([`Source::rows_at`]), in chunks; a row the table
//! no longer holds, or holds in another partition, has vanished. The snapshot file is then
//! abandoned (it was never committed), a delete record for each vanished row is appended to
//! the live file at the cut's position, and the partition is written again: the lake then
//! says, in its live files and its snapshot, what the source did.

use crate::error::EngineError;
use crate::table_feed::TableFeed;
use lakelink_model::FieldKind;
use lakelink_model::change::{Change, ChangeKind, Position};
use lakelink_model::csv_row::Record;
use lakelink_model::schema::{AttributeRole, TableSchema};
use lakelink_model::source::{RowAt, Source};
use lakelink_model::value::Value;
use lakelink_model::value_codec::read_value;

/// Rows looked up in the source at once.
const CHUNK: usize = 4096;

/// Whether a table's rows are checked: in-place, and keys whose written form reads back as
/// the source's exact value (a date-time key is written normalised, so it is not).
pub fn checkable(schema: &TableSchema) -> bool {
    schema
        .key
        .iter()
        .all(|&k| schema.columns[k].column_type.kind != FieldKind::DateTime)
}

/// A row written to a snapshot that the source no longer holds in its partition.
#[derive(Debug, Clone)]
pub struct Vanished {
    key: Vec<Value>,
    partition_value: Value,
}

/// Looks up the rows of one partition as they are written.
pub struct VanishedCheck<'a> {
    source: &'a mut dyn Source,
    feed: &'a TableFeed,
    partition: &'a str,
    position: Position,
    key_fields: Vec<(usize, FieldKind)>,
    partition_field: Option<(usize, FieldKind)>,
    pending: Vec<Vanished>,
    /// The rows found vanished.
    pub found: Vec<Vanished>,
}

impl<'a> VanishedCheck<'a> {
    /// A check of `feed`'s partition `partition`, cut at `position`.
    pub fn new(
        source: &'a mut dyn Source,
        feed: &'a TableFeed,
        partition: &'a str,
        position: Position,
    ) -> VanishedCheck<'a> {
        let attributes = feed.layout().attributes();
        let field_of = |column: usize| {
            attributes
                .iter()
                .position(|a| a.role == AttributeRole::Column(column))
                .map(|at| (at, attributes[at].kind))
        };
        let schema = &feed.record.schema;
        VanishedCheck {
            key_fields: schema.key.iter().filter_map(|&k| field_of(k)).collect(),
            partition_field: schema.partition_column.and_then(field_of),
            source,
            feed,
            partition,
            position,
            pending: Vec::new(),
            found: Vec::new(),
        }
    }

    /// Takes one row written to the snapshot.
    pub fn observe(&mut self, record: &Record) -> Result<(), EngineError> {
        let decode = |(at, kind): (usize, FieldKind)| match record.get(at) {
            Some((text, quoted)) => read_value(text, quoted, kind),
            None => Value::Null,
        };
        self.pending.push(Vanished {
            key: self.key_fields.iter().map(|&f| decode(f)).collect(),
            partition_value: self.partition_field.map_or(Value::Null, decode),
        });
        if self.pending.len() >= CHUNK {
            self.look_up()?;
        }
        Ok(())
    }

    /// Looks up what is pending; call once more after the last row.
    pub fn look_up(&mut self) -> Result<(), EngineError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.pending);
        let keys: Vec<Vec<Value>> = rows.iter().map(|r| r.key.clone()).collect();
        let record = &self.feed.record;
        let now = self
            .source
            .rows_at(&record.table, &record.schema, self.position, &keys)?;
        for (row, at) in rows.into_iter().zip(now) {
            let gone = match at {
                RowAt::Missing => true,
                RowAt::Present(value) => {
                    record.schema.partition_column.is_some()
                        && record.granularity.partition_of(&value) != self.partition
                }
                RowAt::Unknown => false,
            };
            if gone {
                self.found.push(row);
            }
        }
        Ok(())
    }
}

/// Appends a delete record for each vanished row to `feed`'s live files at `position`, and
/// returns the files to checkpoint.
pub fn write_deletes(
    feed: &mut TableFeed,
    lake: &dyn lakelink_model::lake::Lake,
    vanished: &[Vanished],
    position: Position,
    now: &str,
) -> Result<Vec<crate::state::LiveFile>, EngineError> {
    for v in vanished {
        let change = Change {
            position,
            link: feed.record.link,
            kind: ChangeKind::Delete,
            row: Vec::new(),
            old_key: v.key.clone(),
            old_partition: v.partition_value.clone(),
        };
        // A delete has no new key to refuse.
        let _ = feed.apply(&change, now);
    }
    feed.flush(lake)
}
