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

    /// Heap bytes held.
    pub fn heap_size(&self) -> usize {
        match self {
            IdKey::Text(t) => t.len(),
            _ => 0,
        }
    }
}
