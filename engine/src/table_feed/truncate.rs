//! A `TRUNCATE` written to the lake: a delete record, at the truncate's position, for every row
//! each of the table's live files holds live at that point of the position.
//!
//! What is live there is read back from the lake itself (the output format's last snapshot of
//! the partition and its live file past the cut, [`SnapshotFormat::visit_live_rows`]), after
//! this delivery's rows before the truncate were appended, and never past them. That keeps it
//! exactly once: a delivery after a crash, or after a dropped batch, finds the same rows live
//! (the file is read to the same row, whatever it holds after it), writes the same delete
//! records in the same order (by Id), and each file's count of rows at its last position skips
//! those already there, as for any other change.

use super::TableFeed;
use crate::error::EngineError;
use crate::format::SnapshotFormat;
use crate::state::LiveFile;
use lakelink_model::change::Position;
use lakelink_model::csv_row::{CsvReader, Record};
use lakelink_model::lake::Lake;
use lakelink_model::schema::AttributeRole;

impl TableFeed {
    /// Writes the delete records of a `TRUNCATE` at `position`, sorting in about `memory`
    /// bytes and appending whenever `flush_bytes` are buffered; returns the live files
    /// appended to, to be checkpointed.
    pub fn truncate(
        &mut self,
        lake: &dyn Lake,
        format: &dyn SnapshotFormat,
        position: Position,
        written_at: &str,
        memory: usize,
        flush_bytes: usize,
    ) -> Result<Vec<LiveFile>, EngineError> {
        self.progress.changes += 1;
        // The rows of this position before the truncate are read back from the files.
        let mut flushed = self.flush(lake)?;
        // A copy to read the partitions' snapshots through while the feed appends (what it
        // reads of them, their snapshot cuts, stays as it is).
        let table = self.table.clone();
        for partition in table.files().map(|f| &f.partition) {
            let Some(durable) = self.table.file(partition).cloned() else {
                continue;
            };
            if durable.len == 0 {
                // Nothing reached this file (an entry made by a batch that was dropped before
                // it appended): it holds no row, and may not exist.
                continue;
            }
            if position < durable.last_position {
                // The file holds rows past this position, so its delete records too.
                continue;
            }
            let delivered = match self.cursors.get(partition).and_then(|c| c.delivered) {
                Some((at, rows)) if at == position => rows,
                _ => 0,
            };
            let upto = if durable.last_position < position || durable.rows_at_last == delivered {
                durable.len
            } else {
                // A delivery again: the file holds rows of this position written after the
                // truncate (its delete records, the rows after it).
                self.length_through(lake, &durable, position, delivered)?
            };
            format.visit_live_rows(lake, &table, partition, upto, memory, &mut |row| {
                self.push(partition, position, |layout, out| {
                    layout.delete_row_as_read(out, row, position, written_at)
                });
                // Only this file's buffer grows here: the others were appended above.
                if self.cursors.get(partition).map_or(0, |c| c.buffer.len()) >= flush_bytes {
                    flushed.extend(self.flush(lake)?);
                }
                Ok(())
            })?;
        }
        Ok(flushed)
    }

    /// The length of `file` through its first `rows` rows at `position`, its last position.
    fn length_through(
        &self,
        lake: &dyn Lake,
        file: &LiveFile,
        position: Position,
        rows: u64,
    ) -> Result<u64, EngineError> {
        let path = self.table.live_path(&file.partition);
        let version = self.table.field_index(AttributeRole::VersionNumber);
        // No snapshot cuts inside a position, so its rows all lie past the last cut.
        let from = file.snapshot_len;
        let mut reader = CsvReader::new(lake.read(&path, from, Some(file.len))?, from);
        let mut record = Record::default();
        let mut seen = 0;
        loop {
            let start = reader.offset();
            let read = reader
                .read_record(&mut record)
                .map_err(|source| EngineError::Csv {
                    path: path.to_string(),
                    source,
                })?;
            if !read {
                break;
            }
            let at = record.get(version).and_then(|(t, _)| t.parse().ok());
            if at == Some(position.0) {
                if seen == rows {
                    return Ok(start);
                }
                seen += 1;
            }
        }
        Err(EngineError::Manifest {
            path: path.to_string(),
            reason: format!(
                "holds {seen} rows at position {position} past its last snapshot, but the checkpoint counts {} there; the file was changed outside lakelink",
                file.rows_at_last
            ),
        })
    }
}
