//! SQLite values to lakelink values, without loss.

use lakelink_model::change::Position;
use lakelink_model::value::Value;
use rusqlite::types::ValueRef;

/// Converts one SQLite value. SQLite stores whatever bytes an application hands it as TEXT;
/// text that is not valid UTF-8 cannot be written as CSV text, so it is kept as its bytes
/// (written base64, like a BLOB) rather than altered or dropped, and reported with the table,
/// column and position it came from.
pub(super) fn from_sql(v: ValueRef<'_>, table: &str, column: &str, position: Position) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::Text(text.to_string()),
            Err(_) => {
                tracing::warn!(
                    table, column, position = %position,
                    "text that is not valid UTF-8 is written as base64 of its bytes; fix the value in the source"
                );
                Value::Blob(bytes.to_vec())
            }
        },
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
    }
}
