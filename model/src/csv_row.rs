//! The CSV dialect of the lake (LAKE_FORMAT §4): no header, `,` between fields, `\n` after
//! every row, quoted fields with `""` for an embedded quote and raw newlines inside quotes.
//!
//! Written by hand rather than with the `csv` crate because the format gives meaning to
//! quoting itself: an empty unquoted field is NULL and `""` is the empty string, and a
//! number written unquoted differs from the same digits quoted as text. The `csv` crate
//! neither reports nor lets a caller choose quoting per field.

use std::borrow::Cow;
use std::io::{self, BufRead};

/// Builds one CSV row at the end of a byte buffer.
pub struct RowWriter<'a> {
    out: &'a mut Vec<u8>,
    fields: usize,
}

impl<'a> RowWriter<'a> {
    /// Starts a row at the end of `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        RowWriter { out, fields: 0 }
    }

    fn separator(&mut self) {
        if self.fields > 0 {
            self.out.push(b',');
        }
        self.fields += 1;
    }

    /// An empty unquoted field: NULL.
    pub fn null(&mut self) {
        self.separator();
    }

    /// A field written as is. The caller guarantees `text` needs no quoting (numbers,
    /// `True`/`False`).
    pub fn raw(&mut self, text: &str) {
        self.separator();
        self.out.extend_from_slice(text.as_bytes());
    }

    /// A quoted field; embedded quotes are doubled, newlines kept raw.
    pub fn quoted(&mut self, text: &str) {
        self.separator();
        self.out.push(b'"');
        let bytes = text.as_bytes();
        let mut start = 0;
        // Most text has no quote at all: find them with memchr's vectorised search.
        for i in memchr::memchr_iter(b'"', bytes) {
            self.out.extend_from_slice(&bytes[start..=i]);
            self.out.push(b'"');
            start = i + 1;
        }
        self.out.extend_from_slice(&bytes[start..]);
        self.out.push(b'"');
    }

    /// Copies a parsed field with its quoting.
    pub fn field(&mut self, text: &str, quoted: bool) {
        if quoted {
            self.quoted(text);
        } else {
            self.raw(text);
        }
    }

    /// Ends the row with `\n`.
    pub fn finish(self) {
        self.out.push(b'\n');
    }
}

/// One parsed row: its fields' texts and whether each was quoted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Record {
    text: String,
    bounds: Vec<(usize, usize, bool)>,
}

impl Record {
    /// Number of fields.
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    /// Whether the record has no field.
    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// Field `i`: its text and whether it was quoted; `None` past the end (a ragged row).
    pub fn get(&self, i: usize) -> Option<(&str, bool)> {
        self.bounds.get(i).map(|&(s, e, q)| (&self.text[s..e], q))
    }

    /// Whether field `i` is NULL: absent (ragged) or empty and unquoted.
    pub fn is_null(&self, i: usize) -> bool {
        self.get(i).is_none_or(|(t, q)| t.is_empty() && !q)
    }

    /// Iterates over fields.
    pub fn iter(&self) -> impl Iterator<Item = (&str, bool)> {
        self.bounds.iter().map(|&(s, e, q)| (&self.text[s..e], q))
    }

    /// Builds a record from fields (tests and in-memory rows).
    pub fn from_fields<'f>(fields: impl IntoIterator<Item = (&'f str, bool)>) -> Record {
        let mut record = Record::default();
        for (text, quoted) in fields {
            let start = record.text.len();
            record.text.push_str(text);
            record.bounds.push((start, record.text.len(), quoted));
        }
        record
    }

    /// Writes the record as one CSV row.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut row = RowWriter::new(out);
        for (text, quoted) in self.iter() {
            row.field(text, quoted);
        }
        row.finish();
    }
}

/// What can go wrong reading the lake's CSV.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The underlying reader failed.
    #[error("reading CSV: {0}")]
    Io(#[from] io::Error),
    /// The data ends inside a row: a torn write, never data.
    #[error("CSV ends inside a row that starts at byte {offset}")]
    Torn {
        /// Where the incomplete row starts.
        offset: u64,
    },
    /// The bytes are not CSV of this dialect.
    #[error("malformed CSV in the row that starts at byte {offset}: {reason}")]
    Malformed {
        /// Where the bad row starts.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The first field of one complete row (`row` holds at least that field and what ends it):
/// its text, as [`CsvReader`] would give it back, and whether it is quoted. Reads no further
/// than the field, so a caller that needs only a row's `Id` pays for the `Id` alone, however
/// wide the row.
pub fn first_field(row: &[u8]) -> Result<(Cow<'_, str>, bool), CsvError> {
    let malformed = |reason| CsvError::Malformed { offset: 0, reason };
    let utf8 =
        |bytes| std::str::from_utf8(bytes).map_err(|_| malformed("a field that is not UTF-8"));
    if row.first() != Some(&b'"') {
        let end = memchr::memchr3(b',', b'\n', b'"', row).ok_or(CsvError::Torn { offset: 0 })?;
        if row[end] == b'"' {
            return Err(malformed("a quote inside an unquoted field"));
        }
        return Ok((Cow::Borrowed(utf8(&row[..end])?), false));
    }
    // Quoted: the text runs to the quote not followed by another; `""` is one quote.
    let mut text: Option<Vec<u8>> = None;
    let mut start = 1;
    loop {
        let quote =
            start + memchr::memchr(b'"', &row[start..]).ok_or(CsvError::Torn { offset: 0 })?;
        match row.get(quote + 1) {
            Some(b'"') => {
                text.get_or_insert_with(Vec::new)
                    .extend_from_slice(&row[start..=quote]);
                start = quote + 2;
            }
            Some(b',' | b'\n') => {
                let field = match text {
                    None => Cow::Borrowed(utf8(&row[1..quote])?),
                    Some(mut text) => {
                        text.extend_from_slice(&row[start..quote]);
                        Cow::Owned(
                            String::from_utf8(text)
                                .map_err(|_| malformed("a field that is not UTF-8"))?,
                        )
                    }
                };
                return Ok((field, true));
            }
            Some(_) => return Err(malformed("text after a closing quote")),
            None => return Err(CsvError::Torn { offset: 0 }),
        }
    }
}

/// Streams records out of a reader, tracking byte offsets so that a caller can tell where
/// the last complete row ended.
pub struct CsvReader<R> {
    inner: R,
    offset: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

impl<R: BufRead> CsvReader<R> {
    /// Reads from `inner`, whose first byte is at `offset` in the file (for messages and
    /// [`CsvReader::offset`]).
    pub fn new(inner: R, offset: u64) -> Self {
        CsvReader { inner, offset }
    }

    /// Byte offset just past the last complete record read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the next record into `record`. Returns `Ok(false)` at a clean end of data and
    /// [`CsvError::Torn`] when the data ends inside a row.
    pub fn read_record(&mut self, record: &mut Record) -> Result<bool, CsvError> {
        self.read(record, None)
    }

    /// [`CsvReader::read_record`], and the row's bytes as they stand in the data (its newline
    /// included) appended to `raw`: for a caller that passes rows on unchanged, without
    /// encoding them again.
    pub fn read_record_and_bytes(
        &mut self,
        record: &mut Record,
        raw: &mut Vec<u8>,
    ) -> Result<bool, CsvError> {
        self.read(record, Some(raw))
    }

    fn read(
        &mut self,
        record: &mut Record,
        mut raw: Option<&mut Vec<u8>>,
    ) -> Result<bool, CsvError> {
        // Fields are read straight into the record's text buffer and checked as UTF-8 once the
        // row is complete; the separators are ASCII, so every field boundary is a character
        // boundary of valid text.
        let mut bytes = std::mem::take(&mut record.text).into_bytes();
        bytes.clear();
        record.bounds.clear();
        let mut field_start = 0;
        let start = self.offset;
        let mut consumed_total: u64 = 0;
        let mut state = State::FieldStart;
        let mut quoted = false;
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                if consumed_total == 0 {
                    return Ok(false);
                }
                return Err(CsvError::Torn { offset: start });
            }
            let mut used = 0;
            let mut done = false;
            while used < buf.len() {
                // Runs of plain bytes are found with memchr's vectorised search and copied
                // whole: byte-at-a-time handling made reading the lake's CSV cost several
                // times more than writing it.
                match state {
                    State::Quoted => match memchr::memchr(b'"', &buf[used..]) {
                        Some(n) => {
                            bytes.extend_from_slice(&buf[used..used + n]);
                            used += n + 1;
                            state = State::QuoteInQuoted;
                        }
                        None => {
                            bytes.extend_from_slice(&buf[used..]);
                            used = buf.len();
                        }
                    },
                    State::FieldStart | State::Unquoted => {
                        let rest = &buf[used..];
                        let plain = memchr::memchr3(b',', b'\n', b'"', rest).unwrap_or(rest.len());
                        if plain > 0 {
                            bytes.extend_from_slice(&rest[..plain]);
                            used += plain;
                            state = State::Unquoted;
                            continue;
                        }
                        used += 1;
                        match rest[0] {
                            b'"' if state == State::FieldStart => {
                                state = State::Quoted;
                                quoted = true;
                            }
                            b'"' => {
                                return Err(CsvError::Malformed {
                                    offset: start,
                                    reason: "a quote inside an unquoted field",
                                });
                            }
                            b',' => {
                                end_field(
                                    &mut record.bounds,
                                    &mut field_start,
                                    bytes.len(),
                                    quoted,
                                );
                                quoted = false;
                                state = State::FieldStart;
                            }
                            _ => {
                                // A newline: memchr3 stops only at one of the three.
                                end_field(
                                    &mut record.bounds,
                                    &mut field_start,
                                    bytes.len(),
                                    quoted,
                                );
                                done = true;
                                break;
                            }
                        }
                    }
                    State::QuoteInQuoted => {
                        let b = buf[used];
                        used += 1;
                        match b {
                            b'"' => {
                                bytes.push(b'"');
                                state = State::Quoted;
                            }
                            b',' => {
                                end_field(
                                    &mut record.bounds,
                                    &mut field_start,
                                    bytes.len(),
                                    quoted,
                                );
                                quoted = false;
                                state = State::FieldStart;
                            }
                            b'\n' => {
                                end_field(
                                    &mut record.bounds,
                                    &mut field_start,
                                    bytes.len(),
                                    quoted,
                                );
                                done = true;
                                break;
                            }
                            _ => {
                                return Err(CsvError::Malformed {
                                    offset: start,
                                    reason: "text after a closing quote",
                                });
                            }
                        }
                    }
                }
            }
            if let Some(raw) = raw.as_deref_mut() {
                raw.extend_from_slice(&buf[..used]);
            }
            self.inner.consume(used);
            consumed_total += used as u64;
            if done {
                record.text = String::from_utf8(bytes).map_err(|_| CsvError::Malformed {
                    offset: start,
                    reason: "a field that is not UTF-8",
                })?;
                self.offset = start + consumed_total;
                return Ok(true);
            }
        }
    }
}

/// Records the field that ends at `end` and starts the next one there.
fn end_field(bounds: &mut Vec<(usize, usize, bool)>, start: &mut usize, end: usize, quoted: bool) {
    bounds.push((*start, end, quoted));
    *start = end;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(bytes: &[u8]) -> Result<Vec<Record>, CsvError> {
        let mut reader = CsvReader::new(bytes, 0);
        let mut out = Vec::new();
        let mut record = Record::default();
        while reader.read_record(&mut record)? {
            out.push(record.clone());
        }
        Ok(out)
    }

    #[test]
    fn null_and_empty_string_stay_apart() {
        let mut out = Vec::new();
        let mut row = RowWriter::new(&mut out);
        row.null();
        row.quoted("");
        row.raw("42");
        row.quoted("a \"b\",\nc");
        row.finish();
        assert_eq!(out, b",\"\",42,\"a \"\"b\"\",\nc\"\n");
        let records = parse_all(&out).unwrap();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert!(r.is_null(0));
        assert_eq!(r.get(1), Some(("", true)));
        assert!(!r.is_null(1));
        assert_eq!(r.get(2), Some(("42", false)));
        assert_eq!(r.get(3), Some(("a \"b\",\nc", true)));
        assert!(
            r.is_null(4),
            "a missing trailing field reads as NULL (ragged right)"
        );
    }

    #[test]
    fn a_torn_row_is_reported_with_its_offset() {
        let err = parse_all(b"1,\"a\"\n2,\"unfinished").unwrap_err();
        assert!(matches!(err, CsvError::Torn { offset: 6 }), "{err}");
        let err = parse_all(b"1,2").unwrap_err();
        assert!(matches!(err, CsvError::Torn { offset: 0 }), "{err}");
    }

    #[test]
    fn a_row_that_is_not_utf8_is_malformed_at_its_offset() {
        let err = parse_all(b"1,\"caf\xc3\xa9\"\n2,\"\xff\"\n").unwrap_err();
        assert!(
            matches!(
                err,
                CsvError::Malformed {
                    offset: 10,
                    reason: "a field that is not UTF-8"
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn offsets_advance_per_record() {
        let data = b"a,\"x\ny\"\nb\n";
        let mut reader = CsvReader::new(&data[..], 100);
        let mut r = Record::default();
        assert!(reader.read_record(&mut r).unwrap());
        assert_eq!(reader.offset(), 108);
        assert!(reader.read_record(&mut r).unwrap());
        assert_eq!(reader.offset(), 110);
        assert!(!reader.read_record(&mut r).unwrap());
    }

    #[test]
    fn malformed_rows_are_refused() {
        assert!(matches!(
            parse_all(b"\"a\"b\n"),
            Err(CsvError::Malformed { .. })
        ));
        assert!(matches!(
            parse_all(b"a\"b\n"),
            Err(CsvError::Malformed { .. })
        ));
    }

    #[test]
    fn the_first_field_reads_as_the_reader_reads_it() {
        let cases: [(&[u8], &str, bool); 6] = [
            (b"42,x\n", "42", false),
            (b",x\n", "", false),
            (b"7\n", "7", false),
            (b"\"ab\",x\n", "ab", true),
            (b"\"a\"\"b,\nc\"\"\",x\n", "a\"b,\nc\"", true),
            (b"\"\"\n", "", true),
        ];
        for (row, text, quoted) in cases {
            let (field, q) = first_field(row).unwrap();
            assert_eq!(
                (field.as_ref(), q),
                (text, quoted),
                "{:?}",
                String::from_utf8_lossy(row)
            );
        }
        for bad in [&b"4\"2,x\n"[..], b"\"a\"b,\n", b"\"open", b"12"] {
            assert!(
                first_field(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest! {
        #[test]
        fn any_fields_round_trip(rows in proptest::collection::vec(
            proptest::collection::vec((any::<String>(), any::<bool>()), 1..6), 0..5)) {
            let mut out = Vec::new();
            for fields in &rows {
                let mut row = RowWriter::new(&mut out);
                for (text, quoted) in fields {
                    // An unquoted field can only carry text without separators or quotes.
                    let plain = !text.contains([',', '"', '\n']);
                    if *quoted || !plain { row.quoted(text) } else { row.raw(text) }
                }
                row.finish();
            }
            let parsed = parse_all(&out).unwrap();
            prop_assert_eq!(parsed.len(), rows.len());
            for (record, fields) in parsed.iter().zip(&rows) {
                prop_assert_eq!(record.len(), fields.len());
                for (i, (text, _)) in fields.iter().enumerate() {
                    prop_assert_eq!(record.get(i).unwrap().0, text.as_str());
                }
            }
        }

        #[test]
        fn the_first_field_of_any_row_is_the_one_the_reader_reads(
            fields in proptest::collection::vec((any::<String>(), any::<bool>()), 1..4)) {
            let mut out = Vec::new();
            let mut row = RowWriter::new(&mut out);
            for (text, quoted) in &fields {
                let plain = !text.contains([',', '"', '\n']);
                if *quoted || !plain { row.quoted(text) } else { row.raw(text) }
            }
            row.finish();
            let parsed = parse_all(&out).unwrap();
            let (text, quoted) = first_field(&out).unwrap();
            prop_assert_eq!(Some((text.as_ref(), quoted)), parsed[0].get(0));
        }

        #[test]
        fn reading_in_small_pieces_reads_the_same(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b'b', b',', b'"', b'\n', 0xc3, 0xa9]), 0..64),
            capacity in 1usize..9,
        ) {
            // Runs found by memchr may end at a buffer boundary in any state.
            let whole = parse_all(&bytes).map_err(|e| e.to_string());
            let mut reader = CsvReader::new(std::io::BufReader::with_capacity(capacity, &bytes[..]), 0);
            let mut pieces = Vec::new();
            let mut record = Record::default();
            let pieced = loop {
                match reader.read_record(&mut record) {
                    Ok(true) => pieces.push(record.clone()),
                    Ok(false) => break Ok(pieces),
                    Err(e) => break Err(e.to_string()),
                }
            };
            prop_assert_eq!(whole, pieced);
        }

        #[test]
        fn each_rows_bytes_are_the_bytes_it_was_read_from(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b',', b'"', b'\n', 0xc3, 0xa9]), 0..64),
            capacity in 1usize..9,
        ) {
            let mut reader = CsvReader::new(std::io::BufReader::with_capacity(capacity, &bytes[..]), 0);
            let mut record = Record::default();
            let mut start = 0;
            loop {
                let mut raw = Vec::new();
                match reader.read_record_and_bytes(&mut record, &mut raw) {
                    Ok(true) => {
                        let end = reader.offset() as usize;
                        prop_assert_eq!(&raw[..], &bytes[start..end]);
                        // The bytes read alone give the same record back.
                        let again = parse_all(&raw).unwrap();
                        prop_assert_eq!(&again[..], std::slice::from_ref(&record));
                        start = end;
                    }
                    Ok(false) | Err(_) => break,
                }
            }
        }
    }
}
