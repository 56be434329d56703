//! Which partition a row belongs to (LAKE_FORMAT §2).

use crate::datetime::parse_datetime;
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
        use std::fmt::Write as _;
        out.clear();
        let parsed = match value {
            Value::Text(text) => parse_datetime(text),
            _ => None,
        };
        let _ = match (parsed, self) {
            (Some(at), Granularity::Year) => write!(out, "{:04}", at.year()),
            (Some(at), Granularity::Month) => write!(out, "{:04}-{:02}", at.year(), at.month()),
            (None, _) => out.write_str(DEFAULT_PARTITION),
        };
    }
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
    }
}
