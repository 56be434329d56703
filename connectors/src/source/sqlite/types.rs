//! SQLite declared types as the lake sees them: by affinity (the rules of
//! <https://sqlite.org/datatype3.html> §3.1), refined by the names people actually declare
//! (`UUID`, `BOOLEAN`, `DATETIME`, `JSON`).

use lakelink_model::column_type::{ColumnType, DEFAULT_DECIMAL_SHAPE, FieldKind};

/// Resolves a SQLite declared type (`""`, `INTEGER`, `VARCHAR(40)`, `DECIMAL(10,2)`, ...).
pub fn column_type(declared: &str) -> ColumnType {
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
        let k = |d: &str| column_type(d).kind;
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
        let t = column_type("varchar( 100 )");
        assert_eq!(t.max_length, Some(100));
        let d = column_type("DECIMAL(18, 4)");
        assert_eq!(d.precision_scale, Some((18, 4)));
        let n = column_type("NUMERIC");
        assert_eq!(n.precision_scale, Some(DEFAULT_DECIMAL_SHAPE));
    }
}
