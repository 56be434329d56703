//! SQLite values to lakelink values, without loss.

use lakelink_model::value::Value;
use rusqlite::types::ValueRef;

/// Converts one SQLite value; `None` for text that is not valid UTF-8, which the caller
/// reports with the table and column it came from.
pub(super) fn from_sql(v: ValueRef<'_>) -> Option<Value> {
    Some(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(bytes) => Value::Text(std::str::from_utf8(bytes).ok()?.to_string()),
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
    })
}
