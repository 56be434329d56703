//! The order of rows in an in-place snapshot: by Id, numerically for integer Ids and by text
//! otherwise.

/// A row's Id as a sort key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum IdKey {
    /// A row without an Id field (never written by lakelink; sorted first so it is seen).
    Missing,
    /// An integer Id.
    Int(i64),
    /// Any other Id, by its text.
    Text(String),
}

impl IdKey {
    /// The key of an Id field. `integer_ids`: whether the table's Id attribute is `int64`.
    pub fn parse(text: &str, quoted: bool, integer_ids: bool) -> IdKey {
        if integer_ids
            && !quoted
            && let Ok(i) = text.parse()
        {
            return IdKey::Int(i);
        }
        IdKey::Text(text.to_string())
    }

    /// The key of a row, whose first field is its Id.
    pub fn of_record(record: &lakelink_model::csv_row::Record, integer_ids: bool) -> IdKey {
        match record.get(0) {
            Some((text, quoted)) => IdKey::parse(text, quoted, integer_ids),
            None => IdKey::Missing,
        }
    }

    /// The key of one encoded row (its bytes as they go to the lake), the same
    /// [`IdKey::of_record`] gives when the row is read back from its file.
    pub fn of_row_bytes(
        row: &[u8],
        integer_ids: bool,
    ) -> Result<IdKey, lakelink_model::csv_row::CsvError> {
        let (text, quoted) = lakelink_model::csv_row::first_field(row)?;
        Ok(IdKey::parse(&text, quoted, integer_ids))
    }

    /// Heap bytes held.
    pub fn heap_size(&self) -> usize {
        match self {
            IdKey::Text(t) => t.len(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakelink_model::csv_row::{CsvReader, Record};

    #[test]
    fn a_rows_key_from_its_bytes_is_the_key_read_back_from_the_file() {
        for (row, integer_ids) in [
            (&b"12,\"c\",x,\n"[..], true),
            (b"12,\"c\",x,\n", false),
            (b"\"12\",\"c\",x,\n", true),
            (b"\"a\"\"b\",\"c\",x,\n", false),
            (b"99999999999999999999,x\n", true),
        ] {
            let mut record = Record::default();
            CsvReader::new(row, 0).read_record(&mut record).unwrap();
            assert_eq!(
                IdKey::of_row_bytes(row, integer_ids).unwrap(),
                IdKey::of_record(&record, integer_ids)
            );
        }
    }
}
