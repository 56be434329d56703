//! How a [`Value`] is written into a CSV field of a column of a given [`FieldKind`], and how
//! it is read back (LAKE_FORMAT §4).
//!
//! A value that fits its column is written in the column's form: numbers unquoted in
//! invariant form, booleans as `True`/`False`, date-times in UTC with seven fractional
//! digits. A value that does not fit (SQLite lets `'abc'` into an INTEGER column) is written
//! as itself: text quoted, numbers unquoted. So nothing is dropped or zeroed, and a reader
//! can tell from the quoting which storage class the value had.

use crate::column_type::FieldKind;
use crate::csv_row::RowWriter;
use crate::datetime::parse_datetime;
use crate::value::Value;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::fmt::Write as _;

/// Writes `value` as one field of a column of kind `kind`.
pub fn write_value(row: &mut RowWriter<'_>, value: &Value, kind: FieldKind, scratch: &mut String) {
    match value {
        Value::Null => row.null(),
        Value::Integer(i) => match (kind, i) {
            (FieldKind::Boolean, 0) => row.raw("False"),
            (FieldKind::Boolean, 1) => row.raw("True"),
            _ => row.raw(itoa::Buffer::new().format(*i)),
        },
        Value::Real(f) => {
            scratch.clear();
            write_real(scratch, *f, kind);
            row.raw(scratch);
        }
        Value::Text(s) => match kind {
            FieldKind::DateTime => match parse_datetime(s) {
                Some(at) => {
                    scratch.clear();
                    at.write_lake_text(scratch);
                    row.quoted(scratch);
                }
                None => row.quoted(s),
            },
            _ => row.quoted(s),
        },
        Value::Blob(bytes) => {
            scratch.clear();
            BASE64.encode_string(bytes, scratch);
            row.quoted(scratch);
        }
    }
}

/// Doubles are written in the shortest form that parses back to the same bits. Outside
/// decimal columns that form always has a `.` or an exponent, so that a reader can tell a
/// double from an integer in an untyped column; decimal columns get plain positional
/// notation with a `.`, which every decimal parser accepts.
fn write_real(out: &mut String, f: f64, kind: FieldKind) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    } else if kind == FieldKind::Decimal {
        let _ = write!(out, "{f}");
        if !out.contains('.') {
            out.push_str(".0");
        }
    } else {
        let _ = write!(out, "{f:?}");
    }
}

/// Reads a field written by [`write_value`] back into the value the source held. Date-times
/// come back in the lake's form (the instant is the same; the text is normalised).
pub fn read_value(text: &str, quoted: bool, kind: FieldKind) -> Value {
    if quoted {
        if kind == FieldKind::Blob
            && let Ok(bytes) = BASE64.decode(text)
        {
            return Value::Blob(bytes);
        }
        return Value::Text(text.to_string());
    }
    match text {
        "" => Value::Null,
        "True" if kind == FieldKind::Boolean => Value::Integer(1),
        "False" if kind == FieldKind::Boolean => Value::Integer(0),
        "NaN" => Value::Real(f64::NAN),
        "Infinity" => Value::Real(f64::INFINITY),
        "-Infinity" => Value::Real(f64::NEG_INFINITY),
        _ => {
            let looks_integral = !text.contains(['.', 'e', 'E']);
            if looks_integral && let Ok(i) = text.parse::<i64>() {
                return Value::Integer(i);
            }
            match text.parse::<f64>() {
                Ok(f) => Value::Real(f),
                Err(_) => Value::Text(text.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv_row::{CsvReader, Record};
    use proptest::prelude::*;

    fn encode(value: &Value, kind: FieldKind) -> Vec<u8> {
        let mut out = Vec::new();
        let mut row = RowWriter::new(&mut out);
        write_value(&mut row, value, kind, &mut String::new());
        row.finish();
        out
    }

    fn round_trip(value: &Value, kind: FieldKind) -> Value {
        let bytes = encode(value, kind);
        let mut reader = CsvReader::new(&bytes[..], 0);
        let mut record = Record::default();
        assert!(reader.read_record(&mut record).unwrap());
        let (text, quoted) = record.get(0).unwrap();
        read_value(text, quoted, kind)
    }

    #[test]
    fn exact_forms() {
        let s = |v: Value, k| String::from_utf8(encode(&v, k)).unwrap();
        assert_eq!(s(Value::Null, FieldKind::Text), "\n");
        assert_eq!(s(Value::Text(String::new()), FieldKind::Text), "\"\"\n");
        assert_eq!(s(Value::Integer(1), FieldKind::Boolean), "True\n");
        assert_eq!(s(Value::Integer(0), FieldKind::Boolean), "False\n");
        assert_eq!(s(Value::Integer(2), FieldKind::Boolean), "2\n");
        assert_eq!(s(Value::Real(1.0), FieldKind::Real), "1.0\n");
        assert_eq!(s(Value::Real(0.1), FieldKind::Real), "0.1\n");
        assert_eq!(s(Value::Real(1.5), FieldKind::Decimal), "1.5\n");
        assert_eq!(
            s(Value::Real(f64::NEG_INFINITY), FieldKind::Real),
            "-Infinity\n"
        );
        assert_eq!(
            s(Value::Text("abc".into()), FieldKind::Integer),
            "\"abc\"\n"
        );
        assert_eq!(
            s(
                Value::Text("2024-05-25 16:21:09".into()),
                FieldKind::DateTime
            ),
            "\"2024-05-25T16:21:09.0000000Z\"\n"
        );
        assert_eq!(
            s(Value::Text("not a date".into()), FieldKind::DateTime),
            "\"not a date\"\n"
        );
        assert_eq!(
            s(Value::Blob(vec![0, 1, 2, 255]), FieldKind::Blob),
            "\"AAEC/w==\"\n"
        );
    }

    #[test]
    fn extremes_round_trip() {
        for v in [
            Value::Integer(i64::MIN),
            Value::Integer(i64::MAX),
            Value::Real(f64::MIN_POSITIVE),
            Value::Real(5e-324),
            Value::Real(f64::MAX),
            Value::Real(-0.0),
            Value::Real(f64::NAN),
            Value::Real(f64::INFINITY),
            Value::Text("x".repeat(1 << 20)),
            Value::Text("é漢字🦀\r\n\"".into()),
        ] {
            for kind in [
                FieldKind::Any,
                FieldKind::Real,
                FieldKind::Text,
                FieldKind::Integer,
            ] {
                let back = round_trip(&v, kind);
                assert!(back.same_as(&v), "{v:?} as {kind:?} came back as {back:?}");
            }
        }
    }

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Integer),
            any::<f64>().prop_map(Value::Real),
            any::<String>().prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Blob),
        ]
    }

    fn value_fitting(kind: FieldKind) -> BoxedStrategy<Value> {
        match kind {
            // In an untyped column SQLite keeps every storage class apart.
            FieldKind::Any => any_value().boxed(),
            // Text in a BLOB column is ambiguous with base64 and is not generated here.
            FieldKind::Blob => prop_oneof![
                Just(Value::Null),
                any::<i64>().prop_map(Value::Integer),
                any::<f64>().prop_map(Value::Real),
                proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Blob),
            ]
            .boxed(),
            FieldKind::Boolean => prop_oneof![
                Just(Value::Null),
                any::<i64>().prop_map(Value::Integer),
                "[a-z]{0,8}".prop_map(Value::Text)
            ]
            .boxed(),
            _ => prop_oneof![
                Just(Value::Null),
                any::<i64>().prop_map(Value::Integer),
                any::<f64>().prop_map(Value::Real),
                any::<String>().prop_map(Value::Text),
            ]
            .boxed(),
        }
    }

    proptest! {
        #[test]
        fn any_row_of_values_round_trips(
            kinds in proptest::collection::vec(prop_oneof![
                Just(FieldKind::Any), Just(FieldKind::Integer), Just(FieldKind::Real),
                Just(FieldKind::Text), Just(FieldKind::Blob), Just(FieldKind::Boolean),
                Just(FieldKind::Json), Just(FieldKind::Guid)], 1..8)
                .prop_flat_map(|kinds| {
                    let values: Vec<_> = kinds.iter().map(|k| value_fitting(*k)).collect();
                    (Just(kinds), values)
                })
        ) {
            let (kinds, values) = kinds;
            let mut out = Vec::new();
            let mut row = RowWriter::new(&mut out);
            let mut scratch = String::new();
            for (v, k) in values.iter().zip(&kinds) {
                write_value(&mut row, v, *k, &mut scratch);
            }
            row.finish();
            let mut reader = CsvReader::new(&out[..], 0);
            let mut record = Record::default();
            prop_assert!(reader.read_record(&mut record).unwrap());
            prop_assert_eq!(record.len(), values.len());
            for (i, (v, k)) in values.iter().zip(&kinds).enumerate() {
                let (text, quoted) = record.get(i).unwrap();
                let back = read_value(text, quoted, *k);
                // A blob outside a blob column is read back as its base64 text (LAKE_FORMAT
                // writes blobs as strings); every other value comes back bit for bit.
                if let (Value::Blob(b), false) = (v, *k == FieldKind::Blob) {
                    prop_assert_eq!(back, Value::Text(BASE64.encode(b)));
                } else {
                    prop_assert!(back.same_as(v), "{:?} as {:?} came back as {:?}", v, k, back);
                }
            }
        }
    }
}
