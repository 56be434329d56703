//! One column of a data file being built: its values as an Arrow array, and the statistics a
//! Delta `add` action carries for it (`nullCount`, `minValues`, `maxValues`).
//!
//! Statistics follow what readers skip files by, and leave out what they could misread: no
//! minimum or maximum for a double column that holds NaN, for booleans, decimals or binary;
//! a string's minimum cut to 32 characters (still a lower bound) and its maximum left out when
//! longer; timestamps in milliseconds, the minimum rounded down and the maximum up.

use super::columns::{Cell, DeltaType};
use arrow_array::ArrayRef;
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use serde_json::Value as Json;
use std::sync::Arc;

/// How many characters of a string a statistic keeps.
const STRING_STAT_CHARS: usize = 32;

/// A column's values so far, in the builder of its type.
enum Values {
    Long(Int64Builder),
    Double(Float64Builder),
    Decimal(Decimal128Builder),
    Boolean(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    String(StringBuilder),
    Binary(BinaryBuilder),
}

/// The smallest or largest value seen, in a form statistics can order.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Bound {
    Long(i64),
    Double(f64),
    Date(i32),
    Timestamp(i64),
    Text(String),
}

/// The statistics of a column over one file.
#[derive(Debug, Default, Clone)]
pub struct ColumnStats {
    /// How many values are null.
    pub nulls: u64,
    min: Option<Bound>,
    max: Option<Bound>,
    /// A value was seen that leaves the minimum and maximum out (NaN, a long string's max).
    no_min: bool,
    no_max: bool,
}

impl ColumnStats {
    fn see(&mut self, value: Bound) {
        if self.min.as_ref().is_none_or(|m| value < *m) {
            self.min = Some(value.clone());
        }
        if self.max.as_ref().is_none_or(|m| value > *m) {
            self.max = Some(value);
        }
    }

    /// Sees a string by its first [`STRING_STAT_CHARS`] characters, allocating only for a new
    /// minimum or maximum (this runs for every string of every row).
    fn see_text(&mut self, text: &str) {
        let cut = match text.len() > STRING_STAT_CHARS {
            true => match text.char_indices().nth(STRING_STAT_CHARS) {
                Some((at, _)) => {
                    // A prefix is no upper bound of the whole string.
                    self.no_max = true;
                    &text[..at]
                }
                None => text,
            },
            false => text,
        };
        fn text_of(b: &Option<Bound>) -> Option<&str> {
            match b {
                Some(Bound::Text(t)) => Some(t.as_str()),
                _ => None,
            }
        }
        if text_of(&self.min).is_none_or(|m| cut < m) {
            self.min = Some(Bound::Text(cut.to_string()));
        }
        if text_of(&self.max).is_none_or(|m| cut > m) {
            self.max = Some(Bound::Text(cut.to_string()));
        }
    }

    /// The `minValues` entry, if the statistics give one.
    pub fn min_json(&self) -> Option<Json> {
        if self.no_min {
            return None;
        }
        self.min.as_ref().and_then(|b| bound_json(b, false))
    }

    /// The `maxValues` entry, if the statistics give one.
    pub fn max_json(&self) -> Option<Json> {
        if self.no_max {
            return None;
        }
        self.max.as_ref().and_then(|b| bound_json(b, true))
    }
}

/// A bound as a statistic, or `None` where none can be written that bounds the values: a
/// timestamp in milliseconds, rounded down for a minimum and up for a maximum (readers compare
/// at millisecond precision), left out when rounding up leaves year 9999.
fn bound_json(bound: &Bound, upper: bool) -> Option<Json> {
    Some(match bound {
        Bound::Long(i) => Json::from(*i),
        Bound::Double(f) => Json::Number(serde_json::Number::from_f64(*f)?),
        Bound::Date(days) => Json::from(date_text(*days)?),
        Bound::Timestamp(micros) => {
            let millis = if upper {
                micros.div_euclid(1000) + i64::from(micros.rem_euclid(1000) != 0)
            } else {
                micros.div_euclid(1000)
            };
            Json::from(millis_text(millis)?)
        }
        Bound::Text(s) => Json::from(s.as_str()),
    })
}

/// `YYYY-MM-DD` of days since 1970-01-01, for years 0001 to 9999.
pub fn date_text(days: i32) -> Option<String> {
    let date = time::Date::from_julian_day(days.checked_add(2_440_588)?).ok()?;
    (1..=9999).contains(&date.year()).then(|| {
        format!(
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        )
    })
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of milliseconds since the epoch, for years 0001 to 9999.
fn millis_text(millis: i64) -> Option<String> {
    let at =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()?;
    (1..=9999).contains(&at.year()).then(|| {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.millisecond()
        )
    })
}

/// One column being built.
pub struct ColumnBuilder {
    values: Values,
    /// Statistics over every value appended since the file began.
    pub stats: ColumnStats,
    /// About how many bytes the values hold.
    pub bytes: usize,
}

impl ColumnBuilder {
    /// An empty column of type `ty`.
    pub fn new(ty: DeltaType) -> ColumnBuilder {
        let values = match ty {
            DeltaType::Long => Values::Long(Int64Builder::new()),
            DeltaType::Double => Values::Double(Float64Builder::new()),
            DeltaType::Decimal { precision, scale } => Values::Decimal(
                Decimal128Builder::new()
                    .with_precision_and_scale(precision, scale as i8)
                    .unwrap_or_default(),
            ),
            DeltaType::Boolean => Values::Boolean(BooleanBuilder::new()),
            DeltaType::Date => Values::Date(Date32Builder::new()),
            DeltaType::Timestamp => {
                Values::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            DeltaType::String => Values::String(StringBuilder::new()),
            DeltaType::Binary => Values::Binary(BinaryBuilder::new()),
        };
        ColumnBuilder {
            values,
            stats: ColumnStats::default(),
            bytes: 0,
        }
    }

    /// Appends `cell`, which [`super::columns::cell`] made for this column's type; anything
    /// else (an unfit value) is appended as null.
    pub fn append(&mut self, cell: &Cell<'_>) {
        self.bytes += 9;
        match (&mut self.values, cell) {
            (Values::Long(b), Cell::Long(i)) => {
                b.append_value(*i);
                self.stats.see(Bound::Long(*i));
            }
            (Values::Double(b), Cell::Double(f)) => {
                b.append_value(*f);
                if f.is_nan() {
                    self.stats.no_min = true;
                    self.stats.no_max = true;
                } else if f.is_infinite() {
                    // JSON has no infinity: the bound on that side is left out.
                    if *f > 0.0 {
                        self.stats.no_max = true;
                    } else {
                        self.stats.no_min = true;
                    }
                } else {
                    // -0.0 and 0.0 order as equal; either bounds the other.
                    self.stats.see(Bound::Double(*f));
                }
            }
            (Values::Decimal(b), Cell::Decimal(d)) => {
                b.append_value(*d);
                self.stats.no_min = true;
                self.stats.no_max = true;
            }
            (Values::Boolean(b), Cell::Boolean(v)) => {
                b.append_value(*v);
                self.stats.no_min = true;
                self.stats.no_max = true;
            }
            (Values::Date(b), Cell::Date(d)) => {
                b.append_value(*d);
                self.stats.see(Bound::Date(*d));
            }
            (Values::Timestamp(b), Cell::Timestamp(t)) => {
                b.append_value(*t);
                self.stats.see(Bound::Timestamp(*t));
            }
            (Values::String(b), Cell::Text(s)) => {
                b.append_value(s);
                self.bytes += s.len();
                self.stats.see_text(s);
            }
            (Values::Binary(b), Cell::Binary(v)) => {
                b.append_value(v);
                self.bytes += v.len();
                self.stats.no_min = true;
                self.stats.no_max = true;
            }
            _ => self.append_null(),
        }
    }

    /// Appends the text of an original-text column.
    pub fn append_text(&mut self, text: &str) {
        self.append(&Cell::Text(text));
    }

    /// Appends a null.
    pub fn append_null(&mut self) {
        self.stats.nulls += 1;
        match &mut self.values {
            Values::Long(b) => b.append_null(),
            Values::Double(b) => b.append_null(),
            Values::Decimal(b) => b.append_null(),
            Values::Boolean(b) => b.append_null(),
            Values::Date(b) => b.append_null(),
            Values::Timestamp(b) => b.append_null(),
            Values::String(b) => b.append_null(),
            Values::Binary(b) => b.append_null(),
        }
    }

    /// The values appended since the last call, as an array; the statistics go on.
    pub fn finish(&mut self) -> ArrayRef {
        self.bytes = 0;
        match &mut self.values {
            Values::Long(b) => Arc::new(b.finish()),
            Values::Double(b) => Arc::new(b.finish()),
            Values::Decimal(b) => Arc::new(b.finish()),
            Values::Boolean(b) => Arc::new(b.finish()),
            Values::Date(b) => Arc::new(b.finish()),
            Values::Timestamp(b) => Arc::new(b.finish()),
            Values::String(b) => Arc::new(b.finish()),
            Values::Binary(b) => Arc::new(b.finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_bound_every_value_and_leave_out_what_readers_could_misread() {
        let mut ts = ColumnBuilder::new(DeltaType::Timestamp);
        ts.append(&Cell::Timestamp(1_500));
        ts.append(&Cell::Timestamp(-1));
        ts.append(&Cell::Null);
        assert_eq!(
            ts.stats.min_json(),
            Some(Json::from("1969-12-31T23:59:59.999Z"))
        );
        assert_eq!(
            ts.stats.max_json(),
            Some(Json::from("1970-01-01T00:00:00.002Z"))
        );
        assert_eq!(ts.stats.nulls, 1);
        let mut d = ColumnBuilder::new(DeltaType::Double);
        d.append(&Cell::Double(1.0));
        d.append(&Cell::Double(f64::NAN));
        assert_eq!((d.stats.min_json(), d.stats.max_json()), (None, None));
        let mut s = ColumnBuilder::new(DeltaType::String);
        s.append(&Cell::Text(&"b".repeat(40)));
        s.append(&Cell::Text("c"));
        assert_eq!(s.stats.min_json(), Some(Json::from("b".repeat(32))));
        assert_eq!(s.stats.max_json(), None);
        // Cut at characters, not bytes: 32 two-byte characters are whole, 33 are cut.
        let mut u = ColumnBuilder::new(DeltaType::String);
        u.append(&Cell::Text(&"é".repeat(32)));
        assert_eq!(u.stats.max_json(), Some(Json::from("é".repeat(32))));
        u.append(&Cell::Text(&"ü".repeat(33)));
        assert_eq!(u.stats.min_json(), Some(Json::from("é".repeat(32))));
        assert_eq!(u.stats.max_json(), None, "a cut string bounds no maximum");
        let mut cut = ColumnBuilder::new(DeltaType::String);
        cut.append(&Cell::Text(&"ü".repeat(33)));
        assert_eq!(cut.stats.min_json(), Some(Json::from("ü".repeat(32))));
        let mut dt = ColumnBuilder::new(DeltaType::Date);
        dt.append(&Cell::Date(-719_162));
        assert_eq!(dt.stats.min_json(), Some(Json::from("0001-01-01")));
        // The last microsecond of year 9999 rounds up past it: no maximum, never a wrong one.
        let mut end = ColumnBuilder::new(DeltaType::Timestamp);
        end.append(&Cell::Timestamp(253_402_300_799_999_999));
        assert_eq!(end.stats.max_json(), None);
        assert_eq!(
            end.stats.min_json(),
            Some(Json::from("9999-12-31T23:59:59.999Z"))
        );
        let mut inf = ColumnBuilder::new(DeltaType::Double);
        inf.append(&Cell::Double(1.0));
        inf.append(&Cell::Double(f64::INFINITY));
        assert_eq!(
            (inf.stats.min_json(), inf.stats.max_json()),
            (Some(Json::from(1.0)), None)
        );
    }
}
