//! PostgreSQL types onto the lake's column types (LAKE_FORMAT §3), and values in their text
//! output form (what `pgoutput` sends and what a text-mode read returns) onto [`Value`]s.
//!
//! The session is set to `TimeZone = UTC`, `DateStyle = ISO` and `bytea_output = hex` on
//! connect, so the text forms are the ones parsed here whatever the server's defaults.

use lakelink_model::column_type::{ColumnType, DEFAULT_DECIMAL_SHAPE, FieldKind};
use lakelink_model::value::Value;

/// Type OIDs from `pg_type.dat`; stable across PostgreSQL versions.
pub(super) mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// The lake's view of a column of type `type_oid` (a domain's base type) with modifier
/// `typmod` (-1 when none). Arrays, enums and every other type are text.
pub fn column_type(type_oid: u32, typmod: i32) -> ColumnType {
    let kind = match type_oid {
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => FieldKind::Integer,
        oid::FLOAT4 | oid::FLOAT8 => FieldKind::Real,
        oid::NUMERIC => FieldKind::Decimal,
        oid::BOOL => FieldKind::Boolean,
        oid::UUID => FieldKind::Guid,
        oid::JSON | oid::JSONB => FieldKind::Json,
        oid::DATE => FieldKind::Date,
        oid::TIMESTAMP | oid::TIMESTAMPTZ => FieldKind::DateTime,
        oid::BYTEA => FieldKind::Blob,
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::CHAR => FieldKind::Text,
        _ => FieldKind::Text,
    };
    // varchar(n) and char(n) store n + 4 (the header) in typmod.
    let max_length = match type_oid {
        oid::VARCHAR | oid::BPCHAR if typmod > 4 => u32::try_from(typmod - 4).ok(),
        _ => None,
    };
    // numeric(p, s) stores ((p << 16) | s) + 4.
    let precision_scale = match (kind, typmod) {
        (FieldKind::Decimal, t) if t >= 4 => {
            let packed = t - 4;
            let precision = (packed >> 16) & 0xffff;
            let scale = packed & 0xffff;
            Some((
                u8::try_from(precision).unwrap_or(u8::MAX),
                u8::try_from(scale).unwrap_or(0),
            ))
        }
        (FieldKind::Decimal, _) => Some(DEFAULT_DECIMAL_SHAPE),
        _ => None,
    };
    ColumnType {
        kind,
        max_length,
        precision_scale,
    }
}

/// A value in its text output form as a [`Value`] of a column of kind `kind`. Text that
/// does not parse as the kind says is kept as text, so nothing is lost.
pub fn from_text(text: String, kind: FieldKind) -> Value {
    match kind {
        FieldKind::Integer => match text.parse::<i64>() {
            Ok(i) => Value::Integer(i),
            Err(_) => Value::Text(text),
        },
        FieldKind::Real => match text.as_str() {
            "NaN" => Value::Real(f64::NAN),
            "Infinity" => Value::Real(f64::INFINITY),
            "-Infinity" => Value::Real(f64::NEG_INFINITY),
            t => match t.parse::<f64>() {
                Ok(f) => Value::Real(f),
                Err(_) => Value::Text(text),
            },
        },
        FieldKind::Boolean => match text.as_str() {
            "t" => Value::Integer(1),
            "f" => Value::Integer(0),
            _ => Value::Text(text),
        },
        FieldKind::Blob => match decode_hex_bytea(&text) {
            Some(bytes) => Value::Blob(bytes),
            None => Value::Text(text),
        },
        _ => Value::Text(text),
    }
}

/// `\x0a1b...` (bytea_output = hex) as bytes.
fn decode_hex_bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    hex.chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_to_the_lake_format() {
        assert_eq!(column_type(oid::INT4, -1).kind, FieldKind::Integer);
        assert_eq!(column_type(oid::FLOAT8, -1).kind, FieldKind::Real);
        assert_eq!(column_type(oid::VARCHAR, 44).max_length, Some(40));
        let numeric = column_type(oid::NUMERIC, ((12 << 16) | 3) + 4);
        assert_eq!(numeric.kind, FieldKind::Decimal);
        assert_eq!(numeric.precision_scale, Some((12, 3)));
        assert_eq!(
            column_type(oid::NUMERIC, -1).precision_scale,
            Some(DEFAULT_DECIMAL_SHAPE)
        );
        assert_eq!(column_type(oid::UUID, -1).kind, FieldKind::Guid);
        assert_eq!(column_type(oid::JSONB, -1).kind, FieldKind::Json);
        assert_eq!(column_type(oid::TIMESTAMPTZ, -1).kind, FieldKind::DateTime);
        assert_eq!(column_type(oid::DATE, -1).kind, FieldKind::Date);
        assert_eq!(column_type(oid::BYTEA, -1).kind, FieldKind::Blob);
        // int4[] and an enum type.
        assert_eq!(column_type(1007, -1).kind, FieldKind::Text);
        assert_eq!(column_type(90_000, -1).kind, FieldKind::Text);
    }

    #[test]
    fn text_forms_become_values() {
        assert_eq!(
            from_text("-42".into(), FieldKind::Integer),
            Value::Integer(-42)
        );
        assert!(from_text("NaN".into(), FieldKind::Real).same_as(&Value::Real(f64::NAN)));
        assert_eq!(from_text("t".into(), FieldKind::Boolean), Value::Integer(1));
        assert_eq!(
            from_text("\\x00ff10".into(), FieldKind::Blob),
            Value::Blob(vec![0, 255, 16])
        );
        assert_eq!(
            from_text("12.50".into(), FieldKind::Decimal),
            Value::Text("12.50".into())
        );
        assert_eq!(
            from_text("oops".into(), FieldKind::Integer),
            Value::Text("oops".into())
        );
    }
}
