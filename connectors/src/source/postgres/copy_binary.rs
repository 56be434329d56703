//! Values of PostgreSQL's binary COPY format (`COPY ... TO STDOUT (FORMAT binary)`), decoded
//! into the very [`Value`]s their text output form gives through [`types::from_text`]: the
//! initial copy reads binary, the stream (`pgoutput`) reads text, and a row must reach the lake
//! alike whichever of the two delivered it.
//!
//! The binary form costs the server far less than the text form (no number or date-time
//! formatting), and the client less too (no escapes to undo, no numbers to parse). Only types
//! whose binary form maps onto their text form exactly are read binary; a column of another
//! type is selected as `column::text`, which is its text output when PostgreSQL converts it
//! through its output function (the automatic I/O conversion cast). A type with a cast of its
//! own to `text` (`inet`, `xml`, `"char"`, ...) may write something else, so a table holding
//! one is read with the text COPY instead ([`plan`]).
//!
//! The row framing is the `postgres` crate's (`binary_copy`); the value encodings decoded
//! here are PostgreSQL's `*send` functions, which no maintained crate turns into their text
//! output form (the crate's own `FromSql` types would lose BC years, infinities and the
//! exact digits of a numeric).
//!
//! [`types::from_text`]: super::types::from_text

use super::types::{self, oid};
use lakelink_model::column_type::FieldKind;
use lakelink_model::value::Value;

/// How the copy reads one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldDecoder {
    /// `int2`, `int4`, `int8`: big-endian signed integers.
    Integer,
    /// `oid`: a big-endian unsigned 32-bit integer.
    Oid,
    /// `float8`: big-endian IEEE 754 bits (`float4` is not: its text output names the
    /// shortest decimal of the `float4`, which as a double is a different number).
    Float8,
    /// `bool`: one byte.
    Bool,
    /// `text`, `varchar`, `bpchar` (padded as stored), `name`, `json`: the text's bytes.
    Text,
    /// `jsonb`: a version byte (1) and the text.
    Jsonb,
    /// `uuid`: 16 bytes.
    Uuid,
    /// `bytea`: the bytes.
    Bytea,
    /// `numeric`: base-10,000 digits with a weight, a sign and a display scale.
    Numeric,
    /// `date`: days since 2000-01-01.
    Date,
    /// `timestamp`: microseconds since 2000-01-01 00:00.
    Timestamp,
    /// `timestamptz`: microseconds since 2000-01-01 00:00 UTC, written as the session
    /// (`TimeZone = UTC`) writes it.
    Timestamptz,
    /// Selected as `column::text`: the text output, parsed as its column's kind.
    ViaText(FieldKind),
}

/// The decoder for a column of type `type_oid` (a domain's base type, as the server
/// describes a query's columns) read binary, if its binary form is decoded here.
fn binary_decoder(type_oid: u32) -> Option<FieldDecoder> {
    Some(match type_oid {
        oid::INT2 | oid::INT4 | oid::INT8 => FieldDecoder::Integer,
        oid::OID => FieldDecoder::Oid,
        oid::FLOAT8 => FieldDecoder::Float8,
        oid::BOOL => FieldDecoder::Bool,
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::JSON => FieldDecoder::Text,
        oid::JSONB => FieldDecoder::Jsonb,
        oid::UUID => FieldDecoder::Uuid,
        oid::BYTEA => FieldDecoder::Bytea,
        oid::NUMERIC => FieldDecoder::Numeric,
        oid::DATE => FieldDecoder::Date,
        oid::TIMESTAMP => FieldDecoder::Timestamp,
        oid::TIMESTAMPTZ => FieldDecoder::Timestamptz,
        _ => return None,
    })
}

/// How to read columns of types `type_oids` (as the server describes `SELECT <columns>`)
/// that the capture expects to be of kinds `kinds`. `casts_to_text(oid)` says whether the
/// type has a cast of its own to `text`. The text COPY (`Err` with the first column that
/// needs it) when a column's type is not of the kind expected (the text path parses its
/// values as the expected kind, as the stream does: a column retyped since the table was
/// inspected, or a domain over a domain linked when such a column was inspected as text) or
/// could not be read exactly through `::text`.
pub fn plan(
    type_oids: &[u32],
    kinds: &[FieldKind],
    casts_to_text: impl Fn(u32) -> bool,
) -> Result<Vec<FieldDecoder>, usize> {
    type_oids
        .iter()
        .zip(kinds)
        .enumerate()
        .map(|(i, (&type_oid, &kind))| {
            if types::column_type(type_oid, -1).kind != kind {
                return Err(i);
            }
            match binary_decoder(type_oid) {
                Some(decoder) => Ok(decoder),
                None if !casts_to_text(type_oid) => Ok(FieldDecoder::ViaText(kind)),
                None => Err(i),
            }
        })
        .collect()
}

/// The SELECT list item that reads `quoted_column` for `decoder`.
pub fn select_expression(quoted_column: &str, decoder: FieldDecoder) -> String {
    match decoder {
        // Qualified: a type named `text` in a schema on the search_path would be taken.
        FieldDecoder::ViaText(_) => format!("{quoted_column}::pg_catalog.text"),
        _ => quoted_column.to_string(),
    }
}

impl FieldDecoder {
    /// The value `raw` (a non-NULL field's bytes) holds; `None` when the bytes are not what
    /// the server sends for the type (a damaged stream).
    pub fn decode(self, raw: &[u8]) -> Option<Value> {
        Some(match self {
            FieldDecoder::Integer => Value::Integer(match raw.len() {
                2 => i64::from(i16::from_be_bytes(raw.try_into().ok()?)),
                4 => i64::from(i32::from_be_bytes(raw.try_into().ok()?)),
                8 => i64::from_be_bytes(raw.try_into().ok()?),
                _ => return None,
            }),
            FieldDecoder::Oid => {
                Value::Integer(i64::from(u32::from_be_bytes(raw.try_into().ok()?)))
            }
            FieldDecoder::Float8 => {
                let f = f64::from_bits(u64::from_be_bytes(raw.try_into().ok()?));
                // Every NaN's text is `NaN`, which parses as the one NaN; PostgreSQL also
                // stores others (`'-NaN'`, `'inf' - 'inf'`).
                Value::Real(if f.is_nan() { f64::NAN } else { f })
            }
            FieldDecoder::Bool => match raw {
                [0] => Value::Integer(0),
                [1] => Value::Integer(1),
                _ => return None,
            },
            FieldDecoder::Text => Value::Text(utf8(raw)?),
            FieldDecoder::Jsonb => match raw.split_first() {
                Some((1, text)) => Value::Text(utf8(text)?),
                _ => return None,
            },
            FieldDecoder::Uuid => Value::Text(uuid_text(raw.try_into().ok()?)),
            FieldDecoder::Bytea => Value::Blob(raw.to_vec()),
            FieldDecoder::Numeric => Value::Text(numeric_text(raw)?),
            FieldDecoder::Date => {
                let days = i32::from_be_bytes(raw.try_into().ok()?);
                let mut out = String::with_capacity(13);
                write_date(&mut out, days);
                Value::Text(out)
            }
            FieldDecoder::Timestamp | FieldDecoder::Timestamptz => {
                let micros = i64::from_be_bytes(raw.try_into().ok()?);
                let mut out = String::with_capacity(32);
                write_timestamp(&mut out, micros, self == FieldDecoder::Timestamptz);
                Value::Text(out)
            }
            FieldDecoder::ViaText(kind) => types::from_text(utf8(raw)?, kind),
        })
    }
}

fn utf8(raw: &[u8]) -> Option<String> {
    String::from_utf8(raw.to_vec()).ok()
}

/// `a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`, as `uuid_out` writes it.
fn uuid_text(bytes: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// Appends `value` in at least `width` digits, zero-padded. By hand: it runs for every
/// numeric and date-time of every row, and the formatting machinery costs several times more.
fn push_padded(out: &mut String, value: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut rest = value;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (rest % 10) as u8;
        rest /= 10;
        len += 1;
        if rest == 0 {
            break;
        }
    }
    for _ in len..width {
        out.push('0');
    }
    for &digit in digits[..len].iter().rev() {
        out.push(char::from(digit));
    }
}

/// `numeric_send`'s sign words.
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// A `numeric` as `numeric_out` writes it (`get_str_from_var`): the integer part's base-10,000
/// digits, then exactly `dscale` fractional decimal digits.
fn numeric_text(raw: &[u8]) -> Option<String> {
    let word =
        |i: usize| -> Option<u16> { Some(u16::from_be_bytes(raw.get(i..i + 2)?.try_into().ok()?)) };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = usize::from(word(6)?);
    if raw.len() != 8 + 2 * ndigits {
        return None;
    }
    match sign {
        NUMERIC_NAN => return Some("NaN".into()),
        NUMERIC_PINF => return Some("Infinity".into()),
        NUMERIC_NINF => return Some("-Infinity".into()),
        0 | NUMERIC_NEG => {}
        _ => return None,
    }
    let mut digits = Vec::with_capacity(ndigits);
    for i in 0..ndigits {
        let digit = word(8 + 2 * i)?;
        if digit > 9999 {
            return None;
        }
        digits.push(digit);
    }
    let digit_at = |d: i32| -> u16 {
        usize::try_from(d)
            .ok()
            .and_then(|d| digits.get(d).copied())
            .unwrap_or(0)
    };
    let mut out = String::with_capacity(8 + 4 * ndigits + dscale);
    if sign == NUMERIC_NEG {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        push_padded(&mut out, u64::from(digit_at(0)), 1);
        for d in 1..=weight {
            push_padded(&mut out, u64::from(digit_at(d)), 4);
        }
    }
    if dscale > 0 {
        out.push('.');
        let end = out.len() + dscale;
        let mut d = weight + 1;
        while out.len() < end {
            push_padded(&mut out, u64::from(digit_at(d)), 4);
            d += 1;
        }
        out.truncate(end);
    }
    Some(out)
}

/// Days from 0000-03-01 of the proleptic Gregorian calendar to 2000-01-01 (PostgreSQL's
/// epoch for dates and timestamps).
const DAYS_TO_2000: i64 = 730_425;

/// The proleptic Gregorian (year, month, day) `days` after 2000-01-01, as PostgreSQL's
/// `j2date` gives it for any date it stores (years 4713 BC to 5874897 AD; year 0 is 1 BC).
/// Written by hand (the civil-from-days algorithm): the `time` crate stops at year 9999.
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + DAYS_TO_2000;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2024-02-29` (`YYYY` at least four digits), or `0044-03-15` with ` BC` appended by the
/// caller when the year is 0 or before: `EncodeDateOnly` in the ISO style. Returns whether
/// the date is BC.
fn write_calendar_date(out: &mut String, days: i64) -> bool {
    let (year, month, day) = civil_date(days);
    let bc = year <= 0;
    let shown = if bc { 1 - year } else { year };
    push_padded(out, shown.unsigned_abs(), 4);
    out.push('-');
    push_padded(out, u64::from(month), 2);
    out.push('-');
    push_padded(out, u64::from(day), 2);
    bc
}

/// A `date` as `date_out` writes it (`DateStyle = ISO`).
fn write_date(out: &mut String, days: i32) {
    match days {
        i32::MIN => out.push_str("-infinity"),
        i32::MAX => out.push_str("infinity"),
        _ => {
            if write_calendar_date(out, i64::from(days)) {
                out.push_str(" BC");
            }
        }
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A `timestamp` or (`with_zone`) a `timestamptz` in a `TimeZone = UTC` session as
/// `timestamp_out` / `timestamptz_out` write it (`DateStyle = ISO`): seconds with their
/// fraction's trailing zeros dropped, `+00` for the zone, ` BC` last.
fn write_timestamp(out: &mut String, micros: i64, with_zone: bool) {
    match micros {
        i64::MIN => return out.push_str("-infinity"),
        i64::MAX => return out.push_str("infinity"),
        _ => {}
    }
    let days = micros.div_euclid(MICROS_PER_DAY);
    let of_day = micros.rem_euclid(MICROS_PER_DAY);
    let bc = write_calendar_date(out, days);
    let seconds = (of_day / 1_000_000) as u64;
    let fraction = (of_day % 1_000_000) as u64;
    out.push(' ');
    push_padded(out, seconds / 3600, 2);
    out.push(':');
    push_padded(out, seconds / 60 % 60, 2);
    out.push(':');
    push_padded(out, seconds % 60, 2);
    if fraction != 0 {
        out.push('.');
        push_padded(out, fraction, 6);
        // A fraction that is not zero ends in a digit that is not.
        while out.ends_with('0') {
            out.pop();
        }
    }
    if with_zone {
        out.push_str("+00");
    }
    if bc {
        out.push_str(" BC");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `numeric_send`'s bytes for the given digits.
    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(digits.len() as u16).to_be_bytes());
        raw.extend_from_slice(&weight.to_be_bytes());
        raw.extend_from_slice(&sign.to_be_bytes());
        raw.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            raw.extend_from_slice(&d.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numerics_are_written_as_numeric_out_writes_them() {
        let text = |raw: Vec<u8>| numeric_text(&raw).unwrap();
        assert_eq!(text(numeric(0, 0, 0, &[])), "0");
        assert_eq!(text(numeric(0, 0, 2, &[])), "0.00");
        // 123456789.125 in numeric(12,3): digits 1|2345|6789|1250.
        assert_eq!(
            text(numeric(2, 0, 3, &[1, 2345, 6789, 1250])),
            "123456789.125"
        );
        assert_eq!(text(numeric(0, NUMERIC_NEG, 1, &[12, 5000])), "-12.5");
        // 1e-20: weight -5, digit 1 (0.0000 0000 0000 0000 0001).
        assert_eq!(text(numeric(-5, 0, 20, &[1])), "0.00000000000000000001");
        // 1e20 with no fraction: trailing zero groups are not stored.
        assert_eq!(text(numeric(5, 0, 0, &[1])), "100000000000000000000");
        // A display scale shorter than the stored group keeps only its digits.
        assert_eq!(text(numeric(0, 0, 1, &[7, 1000])), "7.1");
        assert_eq!(text(numeric(0, NUMERIC_NAN, 0, &[])), "NaN");
        assert_eq!(text(numeric(0, NUMERIC_PINF, 0, &[])), "Infinity");
        assert_eq!(text(numeric(0, NUMERIC_NINF, 0, &[])), "-Infinity");
        // Damaged: a digit past 9999, a short buffer, an unknown sign.
        assert_eq!(numeric_text(&numeric(0, 0, 0, &[10_000])), None);
        assert_eq!(numeric_text(&numeric(0, 0, 0, &[1])[..9]), None);
        assert_eq!(numeric_text(&numeric(0, 0x1234, 0, &[1])), None);
    }

    fn date(days: i32) -> String {
        let mut out = String::new();
        write_date(&mut out, days);
        out
    }

    fn timestamp(micros: i64, with_zone: bool) -> String {
        let mut out = String::new();
        write_timestamp(&mut out, micros, with_zone);
        out
    }

    #[test]
    fn dates_are_written_as_date_out_writes_them() {
        assert_eq!(date(0), "2000-01-01");
        assert_eq!(date(-1), "1999-12-31");
        assert_eq!(date(8825), "2024-02-29");
        assert_eq!(date(-730_119), "0001-01-01");
        assert_eq!(date(-730_120), "0001-12-31 BC");
        // 44 BC is astronomical year -43.
        assert_eq!(date(-746_117), "0044-03-15 BC");
        assert_eq!(date(2_921_940), "10000-01-01");
        // PostgreSQL's first and last dates.
        assert_eq!(date(-2_451_545), "4714-11-24 BC");
        assert_eq!(date(2_145_031_948), "5874897-12-31");
        assert_eq!(date(i32::MAX), "infinity");
        assert_eq!(date(i32::MIN), "-infinity");
    }

    #[test]
    fn calendar_dates_agree_with_the_time_crate_where_it_reaches() {
        let epoch = time::Date::from_calendar_date(2000, time::Month::January, 1).unwrap();
        for days in (-3_652_059i64..=2_914_000).step_by(997) {
            let expected = epoch + time::Duration::days(days);
            let (year, month, day) = civil_date(days);
            assert_eq!(
                (year, month, day),
                (
                    i64::from(expected.year()),
                    u32::from(expected.month() as u8),
                    u32::from(expected.day())
                ),
                "{days} days after 2000-01-01"
            );
        }
    }

    #[test]
    fn timestamps_are_written_as_timestamp_out_writes_them() {
        assert_eq!(timestamp(0, false), "2000-01-01 00:00:00");
        assert_eq!(timestamp(0, true), "2000-01-01 00:00:00+00");
        assert_eq!(timestamp(-1, true), "1999-12-31 23:59:59.999999+00");
        // Trailing zeros of the fraction are dropped.
        assert_eq!(timestamp(1_500_000, false), "2000-01-01 00:00:01.5");
        assert_eq!(timestamp(1_000_010, false), "2000-01-01 00:00:01.00001");
        assert_eq!(
            timestamp(-730_120 * MICROS_PER_DAY + 3_600_000_000, true),
            "0001-12-31 01:00:00+00 BC"
        );
        assert_eq!(timestamp(i64::MAX, true), "infinity");
        assert_eq!(timestamp(i64::MIN, false), "-infinity");
    }

    #[test]
    fn values_decode_as_their_text_forms_parse() {
        let decode = |d: FieldDecoder, raw: &[u8]| d.decode(raw).unwrap();
        assert_eq!(
            decode(FieldDecoder::Integer, &(-32768i16).to_be_bytes()),
            Value::Integer(-32768)
        );
        assert_eq!(
            decode(FieldDecoder::Integer, &u32::MAX.to_be_bytes()),
            Value::Integer(-1),
            "four bytes are an int4"
        );
        assert_eq!(
            decode(FieldDecoder::Oid, &u32::MAX.to_be_bytes()),
            Value::Integer(4_294_967_295),
            "an oid is unsigned"
        );
        assert_eq!(
            decode(FieldDecoder::Integer, &i64::MIN.to_be_bytes()),
            Value::Integer(i64::MIN)
        );
        assert!(
            decode(FieldDecoder::Float8, &f64::NAN.to_bits().to_be_bytes())
                .same_as(&Value::Real(f64::NAN))
        );
        // `'-NaN'::float8`, as float8send sends it, is the NaN its text `NaN` parses to.
        let negative_nan = decode(
            FieldDecoder::Float8,
            &0xfff8_0000_0000_0000u64.to_be_bytes(),
        );
        match negative_nan {
            Value::Real(f) => assert_eq!(f.to_bits(), f64::NAN.to_bits()),
            other => panic!("{other:?}"),
        }
        assert_eq!(decode(FieldDecoder::Bool, &[1]), Value::Integer(1));
        assert_eq!(
            decode(FieldDecoder::Jsonb, b"\x01{\"a\": 1}"),
            Value::Text("{\"a\": 1}".into())
        );
        assert_eq!(
            decode(
                FieldDecoder::Uuid,
                &[
                    0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd,
                    0x38, 0x0a, 0x11
                ]
            ),
            Value::Text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into())
        );
        assert_eq!(decode(FieldDecoder::Bytea, b""), Value::Blob(Vec::new()));
        assert!(decode(FieldDecoder::ViaText(FieldKind::Real), b"0.1").same_as(&Value::Real(0.1)));
        // Damaged fields.
        assert_eq!(FieldDecoder::Integer.decode(&[0; 3]), None);
        assert_eq!(FieldDecoder::Bool.decode(&[2]), None);
        assert_eq!(FieldDecoder::Jsonb.decode(b"\x02{}"), None);
        assert_eq!(FieldDecoder::Text.decode(&[0xff]), None);
        assert_eq!(FieldDecoder::Uuid.decode(&[0; 15]), None);
    }

    #[test]
    fn a_table_is_read_binary_only_when_every_column_reads_exactly() {
        const FLOAT4: u32 = 700;
        const INET: u32 = 869;
        let no_cast = |_| false;
        assert_eq!(
            plan(
                &[oid::INT8, oid::UUID, FLOAT4],
                &[FieldKind::Integer, FieldKind::Guid, FieldKind::Real],
                no_cast
            ),
            Ok(vec![
                FieldDecoder::Integer,
                FieldDecoder::Uuid,
                FieldDecoder::ViaText(FieldKind::Real)
            ])
        );
        // inet has a cast of its own to text, which writes the netmask.
        assert_eq!(
            plan(
                &[oid::INT8, INET],
                &[FieldKind::Integer, FieldKind::Text],
                |t| t == INET
            ),
            Err(1)
        );
        // A column retyped since it was inspected is read as text, as the stream reads it.
        assert_eq!(plan(&[oid::TEXT], &[FieldKind::Integer], no_cast), Err(0));
    }
}
