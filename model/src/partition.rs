//! Which partition a row belongs to (LAKE_FORMAT §2).

use crate::datetime::parse_instant;
use crate::lake_path::DEFAULT_PARTITION;
use crate::value::Value;
use serde::{Deserialize, Serialize};

/// How finely a table's rows are split by their timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// `2024`.
    #[default]
    Year,
    /// `2024-12`.
    Month,
}

impl Granularity {
    /// The value of `Athena:PartitionGranularity`.
    pub fn athena_name(self) -> &'static str {
        match self {
            Granularity::Year => "Year",
            Granularity::Month => "Month",
        }
    }

    /// The partition of a row whose partition column holds `value`: the year or month of a
    /// parseable timestamp, else partition `1`.
    pub fn partition_of(self, value: &Value) -> String {
        let mut out = String::new();
        self.write_partition(value, &mut out);
        out
    }

    /// [`Granularity::partition_of`] into a reused buffer (it runs for every row).
    pub fn write_partition(self, value: &Value, out: &mut String) {
        out.clear();
        let parsed = match value {
            Value::Text(text) => parse_instant(text),
            _ => None,
        };
        let Some(at) = parsed else {
            out.push_str(DEFAULT_PARTITION);
            return;
        };
        // By hand for the years lakelink writes as four digits: this runs for every row.
        match u16::try_from(at.year()) {
            Ok(year) if year <= 9999 => {
                push_two_digits(out, (year / 100) as u8);
                push_two_digits(out, (year % 100) as u8);
            }
            _ => {
                use std::fmt::Write as _;
                let _ = write!(out, "{:04}", at.year());
            }
        }
        if self == Granularity::Month {
            out.push('-');
            push_two_digits(out, at.month());
        }
    }
}

/// Appends `n` (below 100) as two digits.
fn push_two_digits(out: &mut String, n: u8) {
    out.push(char::from(b'0' + n / 10));
    out.push(char::from(b'0' + n % 10));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_by_year_and_month() {
        let v = Value::Text("2024-12-31 23:59:59".into());
        assert_eq!(Granularity::Year.partition_of(&v), "2024");
        assert_eq!(Granularity::Month.partition_of(&v), "2024-12");
        assert_eq!(Granularity::Year.partition_of(&Value::Null), "1");
        assert_eq!(
            Granularity::Year.partition_of(&Value::Text("soon".into())),
            "1"
        );
        assert_eq!(Granularity::Month.partition_of(&Value::Integer(5)), "1");
        let early = Value::Text("0042-03-01T00:30:00+01:00".into());
        assert_eq!(Granularity::Year.partition_of(&early), "0042");
        assert_eq!(Granularity::Month.partition_of(&early), "0042-02");
        // Before year 1 in UTC the value is written as its text; its row is still partitioned
        // by its year.
        let first = Value::Text("0000-01-01T00:30:00+01:00".into());
        assert_eq!(Granularity::Month.partition_of(&first), "-001-12");
    }
}
