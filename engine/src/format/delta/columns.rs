//! The columns of a table's Delta table (LAKE_FORMAT §9): each attribute with the Delta type its
//! kind maps to, and how a live file's field becomes a value of that type.
//!
//! Nothing is altered on the way: a field fits its column's type when the type holds exactly
//! the value the source stored (an integer in a `long`, a date-time whose 100 ns digit is zero in
//! a `timestamp`, a decimal within the column's precision and scale, ...). A field that does not
//! fit (text in an INTEGER column, a sub-microsecond time, NaN in a decimal, a date-time that
//! does not parse) is null in its column and is kept, as its live-file text, in the attribute's
//! original-text column `<name>__lakelink_text`, which the table gains the first time such a
//! value is written. lakelink's own `SinkCreatedOn`/`SinkModifiedOn` are cut to microseconds.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lakelink_model::FieldKind;
use lakelink_model::column_type::DEFAULT_DECIMAL_SHAPE;
use lakelink_model::datetime::parse_datetime;
use lakelink_model::schema::{Attribute, AttributeRole};

/// The suffix of an attribute's original-text column.
pub const ORIGINAL_TEXT_SUFFIX: &str = "__lakelink_text";

/// The widest precision a Delta decimal has.
const MAX_DECIMAL_PRECISION: u8 = 38;

/// A Delta primitive type (PROTOCOL.md, "Primitive Types"); no `timestamp_ntz`, which older
/// readers refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaType {
    /// `long`.
    Long,
    /// `double`.
    Double,
    /// `decimal(p,s)`.
    Decimal { precision: u8, scale: u8 },
    /// `boolean`.
    Boolean,
    /// `date`.
    Date,
    /// `timestamp`: microseconds since the epoch, in UTC.
    Timestamp,
    /// `string`.
    String,
    /// `binary`.
    Binary,
}

impl DeltaType {
    /// The type of `attribute`'s column; `integer_ids`: whether the table's `Id` is an integer.
    pub fn of(attribute: &Attribute, integer_ids: bool) -> DeltaType {
        match attribute.role {
            // An Id is its key's text unless it is one integer: a date-time or decimal key
            // typed as such could not keep the Id the live files carry.
            AttributeRole::Id if integer_ids => DeltaType::Long,
            AttributeRole::Id => DeltaType::String,
            AttributeRole::SinkCreatedOn | AttributeRole::SinkModifiedOn => DeltaType::Timestamp,
            AttributeRole::VersionNumber => DeltaType::Long,
            AttributeRole::IsDelete => DeltaType::Boolean,
            AttributeRole::Column(_) => match attribute.kind {
                FieldKind::Integer => DeltaType::Long,
                FieldKind::Real => DeltaType::Double,
                FieldKind::Decimal => {
                    let (precision, scale) =
                        attribute.precision_scale.unwrap_or(DEFAULT_DECIMAL_SHAPE);
                    // A decimal wider than Delta's is kept whole as text.
                    if precision > MAX_DECIMAL_PRECISION || scale > precision || precision == 0 {
                        DeltaType::String
                    } else {
                        DeltaType::Decimal { precision, scale }
                    }
                }
                FieldKind::Boolean => DeltaType::Boolean,
                FieldKind::Date => DeltaType::Date,
                FieldKind::DateTime => DeltaType::Timestamp,
                FieldKind::Blob => DeltaType::Binary,
                FieldKind::Text | FieldKind::Guid | FieldKind::Json | FieldKind::Any => {
                    DeltaType::String
                }
            },
        }
    }

    /// The type's name in a Delta schema.
    pub fn schema_name(self) -> String {
        match self {
            DeltaType::Long => "long".into(),
            DeltaType::Double => "double".into(),
            DeltaType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            DeltaType::Boolean => "boolean".into(),
            DeltaType::Date => "date".into(),
            DeltaType::Timestamp => "timestamp".into(),
            DeltaType::String => "string".into(),
            DeltaType::Binary => "binary".into(),
        }
    }

    /// The type named `name` in a Delta schema, if it is one lakelink writes.
    pub fn from_schema_name(name: &str) -> Option<DeltaType> {
        Some(match name {
            "long" => DeltaType::Long,
            "double" => DeltaType::Double,
            "boolean" => DeltaType::Boolean,
            "date" => DeltaType::Date,
            "timestamp" => DeltaType::Timestamp,
            "string" => DeltaType::String,
            "binary" => DeltaType::Binary,
            _ => {
                let inner = name.strip_prefix("decimal(")?.strip_suffix(')')?;
                let (p, s) = inner.split_once(',')?;
                DeltaType::Decimal {
                    precision: p.trim().parse().ok()?,
                    scale: s.trim().parse().ok()?,
                }
            }
        })
    }
}

/// What a column of the Delta table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// The attribute at this index of a row.
    Attribute(usize),
    /// The original text of the attribute at this index, where its value did not fit.
    OriginalText(usize),
}

/// One column of a data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaColumn {
    /// The column's name.
    pub name: String,
    /// Its type.
    pub ty: DeltaType,
    /// What it holds.
    pub role: ColumnRole,
}

/// The columns lakelink gives every table, whose names a source column may not take: Delta
/// column names are case-insensitive.
const SYSTEM_NAMES: [&str; 6] = [
    "Id",
    "SinkCreatedOn",
    "SinkModifiedOn",
    "versionnumber",
    "IsDelete",
    "PartitionId",
];

/// The suffix of a source column named like a system column in another case (`id`).
pub const SOURCE_SUFFIX: &str = "__source";

/// The name of `attribute`'s column: its own, or, for a source column named like a system
/// column in any case (`id` beside `Id`), that name with [`SOURCE_SUFFIX`].
pub fn column_name(attribute: &Attribute) -> String {
    match attribute.role {
        AttributeRole::Column(_)
            if SYSTEM_NAMES
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&attribute.name)) =>
        {
            format!("{}{SOURCE_SUFFIX}", attribute.name)
        }
        _ => attribute.name.clone(),
    }
}

/// The name of `attribute`'s original-text column.
pub fn original_text_name(attribute: &Attribute) -> String {
    format!("{}{ORIGINAL_TEXT_SUFFIX}", column_name(attribute))
}

/// One live-file field as a value of a column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// SQL NULL.
    Null,
    /// A `long`.
    Long(i64),
    /// A `double`.
    Double(f64),
    /// A decimal's unscaled value.
    Decimal(i128),
    /// A `boolean`.
    Boolean(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since the epoch, UTC.
    Timestamp(i64),
    /// A `string`.
    Text(&'a str),
    /// A `binary`.
    Binary(Vec<u8>),
    /// A value the type cannot hold exactly: kept as its text in the original-text column.
    Unfit,
}

/// What a field of a row is, for how it is converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRole {
    /// A source column's value, kept exactly or not at all.
    Value,
    /// The `Id`: its text, whatever the key's type (a REAL or boolean key's Id is unquoted).
    Id,
    /// `SinkCreatedOn`/`SinkModifiedOn`: lakelink's own time, cut to microseconds.
    LakelinkTime,
}

impl FieldRole {
    /// The role of `attribute`'s field.
    pub fn of(attribute: &Attribute) -> FieldRole {
        match attribute.role {
            AttributeRole::Id => FieldRole::Id,
            AttributeRole::SinkCreatedOn | AttributeRole::SinkModifiedOn => FieldRole::LakelinkTime,
            _ => FieldRole::Value,
        }
    }
}

/// The value of the live-file field `text` (`quoted` as written) in a column of type `ty`.
pub fn cell(text: &str, quoted: bool, ty: DeltaType, role: FieldRole) -> Cell<'_> {
    if !quoted && text.is_empty() {
        return Cell::Null;
    }
    match ty {
        DeltaType::String => match quoted || role == FieldRole::Id {
            true => Cell::Text(text),
            false => Cell::Unfit,
        },
        DeltaType::Long => match quoted || text.contains(['.', 'e', 'E']) {
            true => Cell::Unfit,
            false => text.parse().map_or(Cell::Unfit, Cell::Long),
        },
        DeltaType::Double => {
            if quoted {
                return Cell::Unfit;
            }
            match text {
                "NaN" => Cell::Double(f64::NAN),
                "Infinity" => Cell::Double(f64::INFINITY),
                "-Infinity" => Cell::Double(f64::NEG_INFINITY),
                // An integer stored in a REAL column is an integer, not a double.
                _ if !text.contains(['.', 'e', 'E']) => Cell::Unfit,
                _ => text.parse().map_or(Cell::Unfit, Cell::Double),
            }
        }
        DeltaType::Decimal { precision, scale } => {
            decimal(text, precision, scale).map_or(Cell::Unfit, Cell::Decimal)
        }
        DeltaType::Boolean => match (quoted, text) {
            (false, "True") => Cell::Boolean(true),
            (false, "False") => Cell::Boolean(false),
            _ => Cell::Unfit,
        },
        DeltaType::Date => match quoted {
            true => date(text).map_or(Cell::Unfit, Cell::Date),
            false => Cell::Unfit,
        },
        DeltaType::Timestamp => match quoted {
            true => timestamp(text, role == FieldRole::LakelinkTime)
                .map_or(Cell::Unfit, Cell::Timestamp),
            false => Cell::Unfit,
        },
        DeltaType::Binary => match quoted {
            true => BASE64.decode(text).map_or(Cell::Unfit, Cell::Binary),
            false => Cell::Unfit,
        },
    }
}

/// A field as an original-text column keeps it: exactly as the live file encodes it (LAKE_FORMAT
/// §4), so that text is told from a number: a quoted field in `"`, its `"` doubled; an unquoted
/// one bare (`abc` in an INTEGER column is `"abc"`, the REAL 1.5 is `1.5`).
pub fn original_text(text: &str, quoted: bool) -> std::borrow::Cow<'_, str> {
    match quoted {
        true => format!("\"{}\"", text.replace('"', "\"\"")).into(),
        false => text.into(),
    }
}

/// The live-file field an original-text column's value stands for: its text and whether it
/// is quoted.
pub fn field_of_original(original: &str) -> (std::borrow::Cow<'_, str>, bool) {
    match original
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(inner) => (inner.replace("\"\"", "\"").into(), true),
        None => (original.into(), false),
    }
}

/// The unscaled value of the plain decimal `text` (`-12.340`: no exponent, no `+`) at `scale`,
/// if it has at most `scale` fraction digits and fits `precision`.
pub fn decimal(text: &str, precision: u8, scale: u8) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    if digits.contains('.') && fraction.is_empty() {
        return None;
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > usize::from(scale) {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() + usize::from(scale) > usize::from(precision) {
        return None;
    }
    let mut unscaled: i128 = 0;
    for b in whole.bytes().chain(fraction.bytes()) {
        unscaled = unscaled * 10 + i128::from(b - b'0');
    }
    for _ in fraction.len()..usize::from(scale) {
        unscaled *= 10;
    }
    Some(if negative { -unscaled } else { unscaled })
}

/// The days since 1970-01-01 of the date `YYYY-MM-DD`, for years 0001 to 9999.
pub fn date(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year: i32 = text[0..4].parse().ok()?;
    let month: u8 = text[5..7].parse().ok()?;
    let day: u8 = text[8..10].parse().ok()?;
    if year < 1 || !text[0..4].bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let month = time::Month::try_from(month).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY)
}

/// The Julian day of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// The microseconds since the epoch of the lake date-time `text` (its form, with seven fraction
/// digits: LAKE_FORMAT §4), in years 0001 to 9999, if its 100 ns digit is zero or `truncate`.
pub fn timestamp(text: &str, truncate: bool) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 28 || b[10] != b'T' || b[27] != b'Z' || b[19] != b'.' {
        return None;
    }
    if b[26] != b'0' && !truncate {
        return None;
    }
    let at = parse_datetime(text)?;
    if !(1..=9999).contains(&at.year()) {
        return None;
    }
    i64::try_from(at.unix_nanos().div_euclid(1000)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_fits_only_a_type_that_holds_it_exactly() {
        const V: FieldRole = FieldRole::Value;
        let s = DeltaType::String;
        assert_eq!(cell("1.5", false, s, FieldRole::Id), Cell::Text("1.5"));
        assert_eq!(cell("", false, s, V), Cell::Null);
        assert_eq!(cell("", true, s, V), Cell::Text(""));
        assert_eq!(cell("1", false, s, V), Cell::Unfit);
        let l = DeltaType::Long;
        assert_eq!(
            cell("-9223372036854775808", false, l, V),
            Cell::Long(i64::MIN)
        );
        assert_eq!(cell("1.5", false, l, V), Cell::Unfit);
        assert_eq!(cell("abc", true, l, V), Cell::Unfit);
        assert_eq!(cell("1e3", false, l, V), Cell::Unfit);
        let d = DeltaType::Double;
        assert_eq!(cell("0.1", false, d, V), Cell::Double(0.1));
        assert_eq!(cell("1e300", false, d, V), Cell::Double(1e300));
        assert!(matches!(cell("NaN", false, d, V), Cell::Double(f) if f.is_nan()));
        assert_eq!(cell("5", false, d, V), Cell::Unfit);
        let b = DeltaType::Boolean;
        assert_eq!(cell("True", false, b, V), Cell::Boolean(true));
        assert_eq!(cell("2", false, b, V), Cell::Unfit);
        let ts = DeltaType::Timestamp;
        assert_eq!(
            cell("1970-01-01T00:00:01.0000010Z", true, ts, V),
            Cell::Timestamp(1_000_001)
        );
        assert_eq!(
            cell("1970-01-01T00:00:01.0000011Z", true, ts, V),
            Cell::Unfit
        );
        assert_eq!(
            cell(
                "1970-01-01T00:00:01.0000011Z",
                true,
                ts,
                FieldRole::LakelinkTime
            ),
            Cell::Timestamp(1_000_001)
        );
        assert_eq!(
            cell("1969-12-31T23:59:59.9999990Z", true, ts, V),
            Cell::Timestamp(-1)
        );
        assert_eq!(cell("yesterday", true, ts, V), Cell::Unfit);
        assert_eq!(cell("1700000000", false, ts, V), Cell::Unfit);
        let dt = DeltaType::Date;
        assert_eq!(cell("1970-01-02", true, dt, V), Cell::Date(1));
        assert_eq!(cell("0001-01-01", true, dt, V), Cell::Date(-719_162));
        assert_eq!(cell("2024-02-30", true, dt, V), Cell::Unfit);
        assert_eq!(cell("2024-05-25 BC", true, dt, V), Cell::Unfit);
        assert_eq!(
            cell("AAEC/w==", true, DeltaType::Binary, V),
            Cell::Binary(vec![0, 1, 2, 255])
        );
    }

    #[test]
    fn an_original_text_keeps_the_fields_quoting() {
        for (text, quoted, kept) in [
            ("abc", true, "\"abc\""),
            ("1.5", false, "1.5"),
            ("1.5", true, "\"1.5\""),
            ("say \"hi\"", true, "\"say \"\"hi\"\"\""),
            ("", true, "\"\""),
        ] {
            assert_eq!(original_text(text, quoted), kept);
            let (back, was_quoted) = field_of_original(kept);
            assert_eq!((back.as_ref(), was_quoted), (text, quoted));
        }
    }

    #[test]
    fn a_decimal_fits_when_its_digits_fit_the_precision_and_scale() {
        assert_eq!(decimal("12.34", 4, 2), Some(1234));
        assert_eq!(decimal("-12.3", 4, 2), Some(-1230));
        assert_eq!(decimal("0012.3400", 4, 2), Some(1234));
        assert_eq!(decimal("123.4", 4, 2), None);
        assert_eq!(decimal("1.234", 4, 2), None);
        assert_eq!(decimal("1e5", 10, 0), None);
        assert_eq!(decimal("NaN", 10, 0), None);
        assert_eq!(decimal("1.", 10, 2), None);
        assert_eq!(decimal(".5", 10, 2), None);
        assert_eq!(decimal("+1", 10, 2), None);
        assert_eq!(
            decimal("99999999999999999999999999999999999999", 38, 0),
            Some(99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
        assert_eq!(decimal("0.1", 38, 10), Some(1_000_000_000));
    }

    #[test]
    fn type_names_read_back() {
        for ty in [
            DeltaType::Long,
            DeltaType::Double,
            DeltaType::Decimal {
                precision: 38,
                scale: 10,
            },
            DeltaType::Boolean,
            DeltaType::Date,
            DeltaType::Timestamp,
            DeltaType::String,
            DeltaType::Binary,
        ] {
            assert_eq!(DeltaType::from_schema_name(&ty.schema_name()), Some(ty));
        }
    }
}
