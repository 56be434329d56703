//! A row of the lake's CSV as it stands in its file, with the little an in-place merge needs to
//! know of it. Most rows of a snapshot pass from a live file or the previous snapshot to the new
//! snapshot unchanged, so they are carried as their bytes and written out as they are, never
//! encoded again; only a row whose `SinkCreatedOn` changes, or that predates an added column,
//! is parsed again and rewritten.

use super::id_key::IdKey;
use lakelink_model::csv_row::{CsvError, CsvReader, Record};
use std::io::BufRead;

/// Field positions every row shares.
pub const SINK_CREATED_ON: usize = 1;

/// A row's bytes and what the merge reads of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRow {
    /// The row as written, its newline included.
    pub bytes: Vec<u8>,
    /// How many fields it has (a row written before a column was added has fewer).
    pub fields: usize,
    /// Whether it is a delete record (`IsDelete` is `True`).
    pub is_delete: bool,
}

impl RawRow {
    /// The row's fields, parsed again into `into`.
    pub fn parse(&self, into: &mut Record) -> Result<(), CsvError> {
        let mut reader = CsvReader::new(self.bytes.as_slice(), 0);
        match reader.read_record(into)? {
            true => Ok(()),
            false => Err(CsvError::Torn { offset: 0 }),
        }
    }

    /// The row's `SinkCreatedOn` text (empty when it has none).
    pub fn sink_created_on(&self, scratch: &mut Record) -> Result<String, CsvError> {
        self.parse(scratch)?;
        Ok(scratch
            .get(SINK_CREATED_ON)
            .map(|(t, _)| t.to_string())
            .unwrap_or_default())
    }
}

/// Reads rows and their Ids from the lake's CSV.
pub struct RowReader<R> {
    reader: CsvReader<R>,
    record: Record,
    is_delete: usize,
    integer_ids: bool,
}

impl<R: BufRead> RowReader<R> {
    /// Rows of `reader`; `is_delete` is the index of the `IsDelete` field, `integer_ids`
    /// whether Ids are integers (see [`IdKey::parse`]).
    pub fn new(reader: CsvReader<R>, is_delete: usize, integer_ids: bool) -> RowReader<R> {
        RowReader {
            reader,
            record: Record::default(),
            is_delete,
            integer_ids,
        }
    }

    /// The next row and its Id, or `None` at the end.
    pub fn next_row(&mut self) -> Result<Option<(IdKey, RawRow)>, CsvError> {
        let mut bytes = Vec::new();
        if !self
            .reader
            .read_record_and_bytes(&mut self.record, &mut bytes)?
        {
            return Ok(None);
        }
        let (key, fields, is_delete) = self.shape();
        let row = RawRow {
            bytes,
            fields,
            is_delete,
        };
        Ok(Some((key, row)))
    }

    /// The next row's Id, field count and whether it is a delete record, without its bytes;
    /// `None` at the end.
    pub fn next_shape(&mut self) -> Result<Option<(IdKey, usize, bool)>, CsvError> {
        if !self.reader.read_record(&mut self.record)? {
            return Ok(None);
        }
        Ok(Some(self.shape()))
    }

    /// The Id, field count and delete flag of the row just read.
    fn shape(&self) -> (IdKey, usize, bool) {
        let key = IdKey::of_record(&self.record, self.integer_ids);
        let is_delete = self
            .record
            .get(self.is_delete)
            .is_some_and(|(t, _)| t == "True");
        (key, self.record.len(), is_delete)
    }
}
