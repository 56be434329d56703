//! How a source column's declared type maps onto a CDM `dataType` and onto the way its values
//! are written. SQLite types by affinity (the rules of <https://sqlite.org/datatype3.html> §3.1),
//! refined by the names people actually declare (`UUID`, `BOOLEAN`, `DATETIME`, `JSON`).

use serde::{Deserialize, Serialize};

/// What a column holds, as far as the lake is concerned. Decides the CDM `dataType` and how
/// a value that fits the column is written; a value that does not fit is written as itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// 64-bit integers (`int64`).
    Integer,
    /// Doubles (`double`).
    Real,
    /// Exact numbers with a precision and scale (`decimal`).
    Decimal,
    /// `True` / `False` (`boolean`), stored by SQLite as 1 / 0.
    Boolean,
    /// Text (`string`).
    Text,
    /// A UUID held as text (`guid`).
    Guid,
    /// JSON held as text (`json`).
    Json,
    /// A calendar date (`date`).
    Date,
    /// A point in time (`dateTime`), written in UTC.
    DateTime,
    /// Bytes (`string`, base64).
    Blob,
    /// No declared type: any value, written as itself (`string`).
    Any,
}

impl FieldKind {
    /// The CDM `dataType` of an attribute of this kind.
    pub fn cdm_data_type(self) -> &'static str {
        match self {
            FieldKind::Integer => "int64",
            FieldKind::Real => "double",
            FieldKind::Decimal => "decimal",
            FieldKind::Boolean => "boolean",
            FieldKind::Text | FieldKind::Blob | FieldKind::Any => "string",
            FieldKind::Guid => "guid",
            FieldKind::Json => "json",
            FieldKind::Date => "date",
            FieldKind::DateTime => "dateTime",
        }
    }
}

/// A column type as declared in the source, resolved into what the lake needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnType {
    /// How values are written.
    pub kind: FieldKind,
    /// A declared maximum length (`VARCHAR(100)`), for the `is.constrained` trait.
    pub max_length: Option<u32>,
    /// A declared precision and scale (`DECIMAL(18,4)`), for the `numeric.shaped` trait.
    pub precision_scale: Option<(u8, u8)>,
}

/// Precision and scale given to a decimal column that declares none; the widest that
/// Dataverse and Spark's DecimalType agree on, with room for fractions.
pub const DEFAULT_DECIMAL_SHAPE: (u8, u8) = (38, 10);

impl ColumnType {
    /// Resolves a SQLite declared type (`""`, `INTEGER`, `VARCHAR(40)`, `DECIMAL(10,2)`, ...).
    pub fn from_sqlite_declared(declared: &str) -> ColumnType {
        let upper = declared.trim().to_ascii_uppercase();
        let args = type_arguments(&upper);
        let kind = if upper.is_empty() {
            FieldKind::Any
        } else if upper.contains("UUID") || upper.contains("GUID") {
            FieldKind::Guid
        } else if upper.contains("BOOL") {
            FieldKind::Boolean
        } else if upper.contains("DATETIME") || upper.contains("TIMESTAMP") {
            FieldKind::DateTime
        } else if upper.starts_with("DATE") {
            FieldKind::Date
        } else if upper.contains("JSON") {
            FieldKind::Json
        } else if upper.contains("INT") {
            FieldKind::Integer
        } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
            FieldKind::Text
        } else if upper.contains("BLOB") {
            FieldKind::Blob
        } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
            FieldKind::Real
        } else {
            FieldKind::Decimal
        };
        let max_length = match kind {
            FieldKind::Text => args.first().copied().and_then(|n| u32::try_from(n).ok()),
            _ => None,
        };
        let precision_scale = match kind {
            FieldKind::Decimal => Some(match args.as_slice() {
                [p] => (clamp_u8(*p), 0),
                [p, s, ..] => (clamp_u8(*p), clamp_u8(*s)),
                [] => DEFAULT_DECIMAL_SHAPE,
            }),
            _ => None,
        };
        ColumnType {
            kind,
            max_length,
            precision_scale,
        }
    }
}

fn clamp_u8(n: u64) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

/// The numbers in `NAME(a, b)`, if any.
fn type_arguments(upper: &str) -> Vec<u64> {
    let Some(open) = upper.find('(') else {
        return Vec::new();
    };
    let close = upper[open..].find(')').map_or(upper.len(), |i| open + i);
    upper[open + 1..close]
        .split(',')
        .filter_map(|part| part.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_resolve_by_affinity_and_name() {
        let k = |d: &str| ColumnType::from_sqlite_declared(d).kind;
        assert_eq!(k("INTEGER"), FieldKind::Integer);
        assert_eq!(k("bigint"), FieldKind::Integer);
        assert_eq!(k("VARCHAR(40)"), FieldKind::Text);
        assert_eq!(k("TEXT"), FieldKind::Text);
        assert_eq!(k("BLOB"), FieldKind::Blob);
        assert_eq!(k(""), FieldKind::Any);
        assert_eq!(k("REAL"), FieldKind::Real);
        assert_eq!(k("DOUBLE PRECISION"), FieldKind::Real);
        assert_eq!(k("NUMERIC"), FieldKind::Decimal);
        assert_eq!(k("DECIMAL(10,2)"), FieldKind::Decimal);
        assert_eq!(k("BOOLEAN"), FieldKind::Boolean);
        assert_eq!(k("DATETIME"), FieldKind::DateTime);
        assert_eq!(k("TIMESTAMP"), FieldKind::DateTime);
        assert_eq!(k("DATE"), FieldKind::Date);
        assert_eq!(k("UUID"), FieldKind::Guid);
        assert_eq!(k("JSON"), FieldKind::Json);
    }

    #[test]
    fn lengths_and_shapes_are_kept() {
        let t = ColumnType::from_sqlite_declared("varchar( 100 )");
        assert_eq!(t.max_length, Some(100));
        let d = ColumnType::from_sqlite_declared("DECIMAL(18, 4)");
        assert_eq!(d.precision_scale, Some((18, 4)));
        let n = ColumnType::from_sqlite_declared("NUMERIC");
        assert_eq!(n.precision_scale, Some(DEFAULT_DECIMAL_SHAPE));
    }
}
