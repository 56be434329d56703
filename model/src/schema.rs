//! A linked table's shape: its source columns, key and partition column, and the CDM
//! attributes that follow from them (LAKE_FORMAT §3 and §5).

use crate::column_type::{ColumnType, FieldKind};
use crate::value::Value;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// One column as the source declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceColumn {
    /// The column's name in the source.
    pub name: String,
    /// The declared type text, as the source reports it.
    pub declared_type: String,
    /// What the declared type means for the lake.
    pub column_type: ColumnType,
    /// The source's own number for the column, which a rename keeps (PostgreSQL's
    /// `attnum`); `None` where the source has no such number (SQLite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i64>,
}

/// A linked table's schema as the lake sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Source columns, in source order; change rows are indexed the same way.
    pub columns: Vec<SourceColumn>,
    /// Indexes of the key columns, in key order.
    pub key: Vec<usize>,
    /// Index of the timestamp column that picks the partition, if any.
    pub partition_column: Option<usize>,
    /// How many columns the table had when it was linked. They stand before
    /// `versionnumber`; columns added later are appended after `IsDelete`.
    pub linked_width: usize,
    /// Values that rows written before a column was added hold in the source: an
    /// `ADD COLUMN ... DEFAULT` gives every existing row the default without a logged change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fills: Vec<ColumnFill>,
    /// The source's identity of the table when it was linked (see `SourceTable::id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_id: Option<String>,
}

/// The value an added column holds in every row that existed when it was added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnFill {
    /// Index of the added column.
    pub column: usize,
    /// The value (never NULL: NULL needs no fill).
    #[serde(with = "stored_value")]
    pub value: Value,
}

/// [`Value`] in the checkpoint store: doubles by their bits, so NaN and infinities survive.
mod stored_value {
    use crate::value::Value;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Stored {
        Null,
        Integer(i64),
        RealBits(u64),
        Text(String),
        Blob(Vec<u8>),
    }

    pub fn serialize<S: Serializer>(value: &Value, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Value::Null => Stored::Null,
            Value::Integer(i) => Stored::Integer(*i),
            Value::Real(f) => Stored::RealBits(f.to_bits()),
            Value::Text(t) => Stored::Text(t.clone()),
            Value::Blob(b) => Stored::Blob(b.clone()),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        Ok(match Stored::deserialize(d)? {
            Stored::Null => Value::Null,
            Stored::Integer(i) => Value::Integer(i),
            Stored::RealBits(b) => Value::Real(f64::from_bits(b)),
            Stored::Text(t) => Value::Text(t),
            Stored::Blob(b) => Value::Blob(b),
        })
    }
}

/// The names of the system attributes, which no source column may take.
pub const SYSTEM_ATTRIBUTES: [&str; 5] = [
    "Id",
    "SinkCreatedOn",
    "SinkModifiedOn",
    "versionnumber",
    "IsDelete",
];

/// What an attribute holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeRole {
    /// The source key.
    Id,
    /// When lakelink first wrote the row.
    SinkCreatedOn,
    /// When lakelink last wrote the row.
    SinkModifiedOn,
    /// Source column `n`.
    Column(usize),
    /// The change's source position.
    VersionNumber,
    /// `True` on a delete record.
    IsDelete,
}

/// One CDM attribute of a linked table's entity, in the order rows are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The attribute's name.
    pub name: String,
    /// How its values are written.
    pub kind: FieldKind,
    /// Declared length of a string, if any.
    pub max_length: Option<u32>,
    /// Declared precision and scale of a decimal, if any.
    pub precision_scale: Option<(u8, u8)>,
    /// What it holds.
    pub role: AttributeRole,
}

impl TableSchema {
    /// The field kind of the `Id` attribute: the key column's own, or text (a JSON array)
    /// for a composite key.
    pub fn id_kind(&self) -> FieldKind {
        match self.key.as_slice() {
            [single] => match self.columns[*single].column_type.kind {
                FieldKind::Blob | FieldKind::Any => FieldKind::Text,
                kind => kind,
            },
            _ => FieldKind::Text,
        }
    }

    /// The entity's attributes in row order: `Id`, `SinkCreatedOn`, `SinkModifiedOn`, the
    /// columns present at link time, `versionnumber`, `IsDelete`, then columns added later.
    pub fn attributes(&self) -> Vec<Attribute> {
        let system = |name: &str, kind, role| Attribute {
            name: name.to_string(),
            kind,
            max_length: None,
            precision_scale: None,
            role,
        };
        let column = |index: usize| {
            let c = &self.columns[index];
            Attribute {
                name: c.name.clone(),
                kind: c.column_type.kind,
                max_length: c.column_type.max_length,
                precision_scale: c.column_type.precision_scale,
                role: AttributeRole::Column(index),
            }
        };
        let linked = self.linked_width.min(self.columns.len());
        let mut out = Vec::with_capacity(self.columns.len() + 5);
        out.push(system("Id", self.id_kind(), AttributeRole::Id));
        out.push(system(
            "SinkCreatedOn",
            FieldKind::DateTime,
            AttributeRole::SinkCreatedOn,
        ));
        out.push(system(
            "SinkModifiedOn",
            FieldKind::DateTime,
            AttributeRole::SinkModifiedOn,
        ));
        out.extend((0..linked).map(column));
        out.push(system(
            "versionnumber",
            FieldKind::Integer,
            AttributeRole::VersionNumber,
        ));
        out.push(system(
            "IsDelete",
            FieldKind::Boolean,
            AttributeRole::IsDelete,
        ));
        out.extend((linked..self.columns.len()).map(column));
        out
    }

    /// The `Id` value of a row, from its key column values in key order.
    pub fn id_of_key(&self, key: &[Value]) -> Value {
        match key {
            [single] => match single {
                Value::Blob(bytes) => Value::Text(BASE64.encode(bytes)),
                other => other.clone(),
            },
            many => Value::Text(composite_key_json(many)),
        }
    }

    /// The key column values of a full row.
    pub fn key_of_row(&self, row: &[Value]) -> Vec<Value> {
        self.key
            .iter()
            .map(|&i| row.get(i).cloned().unwrap_or(Value::Null))
            .collect()
    }

    /// The partition column's value in a full row (NULL when unpartitioned).
    pub fn partition_value<'r>(&self, row: &'r [Value]) -> &'r Value {
        const NULL: &Value = &Value::Null;
        self.partition_column
            .and_then(|i| row.get(i))
            .unwrap_or(NULL)
    }
}

/// A composite key as a JSON array: numbers as numbers, text as strings, blobs as base64
/// strings, non-finite doubles as their names.
fn composite_key_json(values: &[Value]) -> String {
    let items: Vec<serde_json::Value> = values
        .iter()
        .map(|v| match v {
            Value::Null => serde_json::Value::Null,
            Value::Integer(i) => serde_json::Value::from(*i),
            Value::Real(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| serde_json::Value::String(f.to_string())),
            Value::Text(s) => serde_json::Value::String(s.clone()),
            Value::Blob(b) => serde_json::Value::String(BASE64.encode(b)),
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, declared: &str) -> SourceColumn {
        SourceColumn {
            name: name.into(),
            declared_type: declared.into(),
            column_type: ColumnType {
                kind: match declared {
                    "INTEGER" => FieldKind::Integer,
                    "REAL" => FieldKind::Real,
                    _ => FieldKind::Text,
                },
                max_length: None,
                precision_scale: None,
            },
            number: None,
        }
    }

    #[test]
    fn added_columns_go_after_is_delete() {
        let schema = TableSchema {
            columns: vec![
                col("id", "INTEGER"),
                col("name", "TEXT"),
                col("late", "REAL"),
            ],
            key: vec![0],
            partition_column: None,
            linked_width: 2,
            fills: Vec::new(),
            table_id: None,
        };
        let names: Vec<_> = schema.attributes().into_iter().map(|a| a.name).collect();
        assert_eq!(
            names,
            [
                "Id",
                "SinkCreatedOn",
                "SinkModifiedOn",
                "id",
                "name",
                "versionnumber",
                "IsDelete",
                "late"
            ]
        );
        assert_eq!(schema.id_kind(), FieldKind::Integer);
    }

    #[test]
    fn composite_keys_are_json_arrays() {
        let schema = TableSchema {
            columns: vec![col("a", "INTEGER"), col("b", "TEXT")],
            key: vec![0, 1],
            partition_column: None,
            linked_width: 2,
            fills: Vec::new(),
            table_id: None,
        };
        let id = schema.id_of_key(&[Value::Integer(7), Value::Text("x\"y".into())]);
        assert_eq!(id, Value::Text(r#"[7,"x\"y"]"#.into()));
        assert_eq!(schema.id_kind(), FieldKind::Text);
    }
}
