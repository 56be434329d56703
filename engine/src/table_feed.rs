//! One linked table's side of the trickle feed: routes each change to the live file of its
//! partition, encodes it, skips what a file already holds, and appends each file's rows as one
//! batch.
//!
//! Skipping is what makes delivery exactly once across crashes. Rows reach a live file in
//! position order, and the checkpoint records each file's last position and how many rows
//! at its end carry that position. After a crash the source delivers again from the
//! checkpointed table position; a row whose position is before the file's last, or one of
//! the first `rows_at_last` rows at exactly that position, is already in the file.

mod id_ordered_prefix;
mod truncate;

use id_ordered_prefix::IdOrderedPrefix;

use crate::error::EngineError;
use crate::linked_table::LinkedTable;
use crate::row_layout::RowLayout;
use crate::state::{LinkRecord, LiveFile};
use crate::table_schema;
use lakelink_model::FieldKind;
use lakelink_model::change::{Change, ChangeKind, Position};
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::{DEFAULT_PARTITION, TableName};
use lakelink_model::table_mode::Mode;
use lakelink_model::value::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// What a table's feed did since it was last asked: for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchProgress {
    /// Changes applied.
    pub changes: u64,
    /// Rows appended to the lake.
    pub rows: u64,
    /// Bytes appended to the lake.
    pub bytes: u64,
}

/// The writer's side of a live file being appended to (its durable side is the table's
/// [`LiveFile`]).
struct FileCursor {
    /// Rows at the durable `last_position` that a re-delivery will bring again and that must
    /// be skipped; only non-zero right after a restart.
    skip_at_last: u64,
    buffer: Vec<u8>,
    buffered_rows: u64,
    last: Position,
    rows_at_last: u64,
    /// The position of the last row this delivery pushed (written or skipped), and how many
    /// it pushed at that position: the first that many rows at it in the file, once flushed.
    /// A `TRUNCATE` reads the file back to there and no further.
    delivered: Option<(Position, u64)>,
    /// During an `in_place` table's initial copy: how much of the file stands in `Id` order.
    id_ordered: IdOrderedPrefix,
}

impl FileCursor {
    /// A cursor at a live file's durable end.
    fn at(durable: &LiveFile) -> FileCursor {
        FileCursor {
            skip_at_last: durable.rows_at_last,
            last: durable.last_position,
            rows_at_last: durable.rows_at_last,
            buffer: Vec::new(),
            buffered_rows: 0,
            delivered: None,
            id_ordered: IdOrderedPrefix::default(),
        }
    }
}

/// The writer of a linked table's live files.
pub struct TableFeed {
    table: LinkedTable,
    layout: RowLayout,
    cursors: BTreeMap<String, FileCursor>,
    new_partitions: bool,
    /// Reused for each row's partition name.
    partition: String,
    /// Changes applied, and rows and bytes appended, since the last [`TableFeed::take_progress`].
    progress: BatchProgress,
    /// During an `in_place` table's initial copy, whether its Ids are integers: each file's
    /// rows are noted in its [`IdOrderedPrefix`].
    copy_ids: Option<bool>,
}

impl TableFeed {
    /// A feed over the table's durable live files.
    pub fn new(record: LinkRecord, name: TableName, files: Vec<LiveFile>) -> TableFeed {
        let table = LinkedTable::new(record, name, files);
        TableFeed {
            layout: RowLayout::new(&table.record.schema),
            cursors: table
                .files()
                .map(|f| (f.partition.clone(), FileCursor::at(f)))
                .collect(),
            table,
            new_partitions: false,
            partition: String::new(),
            progress: BatchProgress::default(),
            copy_ids: None,
        }
    }

    /// A feed for a table's initial copy, into empty live files; for an `in_place` table it
    /// notes how much of each file the copy writes in `Id` order ([`IdOrderedPrefix`]).
    pub fn for_copy(record: LinkRecord, name: TableName) -> TableFeed {
        let mut feed = TableFeed::new(record, name, Vec::new());
        if feed.table.record.mode == Mode::InPlace {
            feed.copy_ids = Some(feed.table.record.schema.id_kind() == FieldKind::Integer);
        }
        feed
    }

    /// The table this feed writes, as the lake holds it durably.
    pub fn table(&self) -> &LinkedTable {
        &self.table
    }

    /// The table, for the snapshotter to record what a publish covers
    /// ([`LinkedTable::mark_snapshot`]).
    pub fn table_mut(&mut self) -> &mut LinkedTable {
        &mut self.table
    }

    /// The table's link.
    pub fn record(&self) -> &LinkRecord {
        &self.table.record
    }

    /// The table's link, to change what the feed does not write (its position, its state).
    pub fn record_mut(&mut self) -> &mut LinkRecord {
        &mut self.table.record
    }

    /// The table's name.
    pub fn name(&self) -> &TableName {
        self.table.name()
    }

    /// The durable state of each live file.
    pub fn files(&self) -> impl Iterator<Item = &LiveFile> {
        self.table.files()
    }

    /// Whether a partition appeared since the last call (the trickle manifest must list it).
    pub fn take_new_partitions(&mut self) -> bool {
        std::mem::take(&mut self.new_partitions)
    }

    /// Bytes waiting to be appended.
    pub fn buffered_bytes(&self) -> usize {
        self.cursors.values().map(|c| c.buffer.len()).sum()
    }

    fn partition_of(&self, value: &Value) -> String {
        let mut out = String::new();
        self.write_partition(value, &mut out);
        out
    }

    fn write_partition(&self, value: &Value, out: &mut String) {
        match self.table.record.schema.partition_column {
            None => {
                out.clear();
                out.push_str(DEFAULT_PARTITION);
            }
            Some(_) => self.table.record.granularity.write_partition(value, out),
        }
    }

    /// The Id of a full row: borrowed from the row for a single plain key (no copy per row),
    /// built for a composite or BLOB key.
    fn id_of_row<'r>(&self, row: &'r [Value]) -> Cow<'r, Value> {
        let schema = &self.table.record.schema;
        match schema.key.as_slice() {
            [k] if !matches!(row.get(*k), Some(Value::Blob(_)) | None) => Cow::Borrowed(&row[*k]),
            _ => Cow::Owned(schema.id_of_key(&schema.key_of_row(row))),
        }
    }

    /// Adds one row of the initial copy, taken at `position`; refuses (writing nothing) a row
    /// whose key cannot be an `Id` of its own ([`EngineError::Link`]).
    pub fn copy_row(
        &mut self,
        row: &[Value],
        position: Position,
        written_at: &str,
    ) -> Result<(), EngineError> {
        if let Some(reason) = table_schema::key_problem(&self.table.record.schema, row) {
            return Err(EngineError::Link {
                table: self.table.record.table.clone(),
                reason,
            });
        }
        let id = self.id_of_row(row);
        let mut partition = std::mem::take(&mut self.partition);
        self.write_partition(
            self.table.record.schema.partition_value(row),
            &mut partition,
        );
        self.push(&partition, position, |layout, out| {
            layout.image_row(out, &id, row, position, written_at)
        });
        self.partition = partition;
        Ok(())
    }

    /// Ends an initial copy: appends what is buffered, and records in each live file how
    /// much of it stands in `Id` order ([`LiveFile::id_ordered_len`]).
    pub fn finish_copy(&mut self, lake: &dyn Lake) -> Result<(), EngineError> {
        self.flush(lake)?;
        if self.copy_ids.take().is_some() {
            for (partition, cursor) in &self.cursors {
                self.table.file_mut(partition).id_ordered_len = cursor.id_ordered.ordered_len();
            }
        }
        Ok(())
    }

    /// Changes applied, and rows and bytes appended to the lake, since the last call.
    pub fn take_progress(&mut self) -> BatchProgress {
        std::mem::take(&mut self.progress)
    }

    /// Adds the rows of one captured change; refuses (writing nothing) a change whose new key
    /// cannot be an `Id` of its own.
    /// A truncate is not one: see [`TableFeed::truncate`].
    pub fn apply(&mut self, change: &Change, written_at: &str) -> Result<(), String> {
        if matches!(change.kind, ChangeKind::Insert | ChangeKind::Update)
            && let Some(problem) = table_schema::key_problem(&self.table.record.schema, &change.row)
        {
            return Err(problem);
        }
        self.progress.changes += 1;
        let schema = &self.table.record.schema;
        let position = change.position;
        let old = || {
            let id = schema.id_of_key(&change.old_key);
            (id, self.partition_of(&change.old_partition))
        };
        match change.kind {
            ChangeKind::Insert | ChangeKind::Update => {
                let id = self.id_of_row(&change.row);
                let partition = self.partition_of(schema.partition_value(&change.row));
                if change.kind == ChangeKind::Update {
                    // A row that changes key or partition leaves a delete record where it was.
                    let (old_id, old_partition) = old();
                    if old_id != *id || old_partition != partition {
                        self.push(&old_partition, position, |layout, out| {
                            layout.delete_row(
                                out,
                                &old_id,
                                &change.old_partition,
                                position,
                                written_at,
                            )
                        });
                    }
                }
                self.push(&partition, position, |layout, out| {
                    layout.image_row(out, &id, &change.row, position, written_at)
                });
            }
            ChangeKind::Truncate => {
                // Routed to `TableFeed::truncate`, which reads the lake; never reached.
                return Err("a TRUNCATE reached the row writer instead of the lake's listing of its rows; relink the table".into());
            }
            ChangeKind::Delete => {
                let (old_id, old_partition) = old();
                self.push(&old_partition, position, |layout, out| {
                    layout.delete_row(out, &old_id, &change.old_partition, position, written_at)
                });
            }
        }
        Ok(())
    }

    fn push(
        &mut self,
        partition: &str,
        position: Position,
        encode: impl FnOnce(&mut RowLayout, &mut Vec<u8>),
    ) {
        let durable = self.table.file_mut(partition);
        let cursor = self
            .cursors
            .entry(partition.to_string())
            .or_insert_with(|| FileCursor::at(durable));
        if durable.len == 0 && cursor.buffer.is_empty() {
            self.new_partitions = true;
        }
        cursor.delivered = match cursor.delivered {
            Some((at, rows)) if at == position => Some((at, rows + 1)),
            _ => Some((position, 1)),
        };
        if position < durable.last_position {
            return;
        }
        if position == durable.last_position && cursor.skip_at_last > 0 {
            cursor.skip_at_last -= 1;
            return;
        }
        let start = cursor.buffer.len();
        encode(&mut self.layout, &mut cursor.buffer);
        if let Some(integer_ids) = self.copy_ids {
            cursor.id_ordered.note(&cursor.buffer[start..], integer_ids);
        }
        cursor.buffered_rows += 1;
        if position == cursor.last {
            cursor.rows_at_last += 1;
        } else {
            cursor.last = position;
            cursor.rows_at_last = 1;
        }
    }

    /// Replaces the schema after columns were added; buffers must be empty (between batches).
    pub fn widen(&mut self, schema: lakelink_model::schema::TableSchema) {
        debug_assert_eq!(self.buffered_bytes(), 0);
        self.table.widen(schema);
        self.layout = RowLayout::new(&self.table.record.schema);
    }

    /// Drops every buffered row and returns each file's cursor to its durable state: after a
    /// failed batch the source delivers the same changes again. They are re-encoded, and the
    /// rows that did reach a file before the failure are skipped like after a restart.
    pub fn discard_buffers(&mut self) {
        for (partition, c) in self.cursors.iter_mut() {
            // Every cursor's file is in the table: a push adds both.
            if let Some(durable) = self.table.file(partition) {
                *c = FileCursor::at(durable);
            }
        }
        // The changes are applied again; what reached the lake stays counted.
        self.progress.changes = 0;
    }

    /// Appends every file's buffered rows (each file's rows as one durable append) and returns
    /// the files' new durable state, to be checkpointed.
    pub fn flush(&mut self, lake: &dyn Lake) -> Result<Vec<LiveFile>, EngineError> {
        let mut flushed = Vec::new();
        for (partition, cursor) in self.cursors.iter_mut() {
            if cursor.buffer.is_empty() {
                continue;
            }
            let path = self.table.live_path(partition);
            let d = self.table.file_mut(partition);
            let splits = lake.parts(&path).len();
            let len = lake.append(&path, d.len, &cursor.buffer)?;
            // A lake that split the file: the trickle manifest must name the new split.
            if lake.parts(&path).len() != splits {
                self.new_partitions = true;
            }
            cursor.buffer.clear();
            self.progress.rows += cursor.buffered_rows;
            self.progress.bytes += len - d.len;
            d.len = len;
            d.rows += cursor.buffered_rows;
            d.last_position = cursor.last;
            d.rows_at_last = cursor.rows_at_last;
            cursor.buffered_rows = 0;
            // Everything at the last position is now ours: nothing more to skip there.
            cursor.skip_at_last = 0;
            flushed.push(d.clone());
        }
        Ok(flushed)
    }
}
