//! What a source column holds, as the lake sees it: the kind that decides its CDM `dataType`
//! and the way its values are written, with its declared length or shape. Each source maps its
//! own declared types onto these (`connectors/src/source/<source>/types.rs`).

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
