//! Date-time text as sources store it, and as the lake writes it: ISO 8601 in UTC with seven
//! fractional digits (`2024-05-25T16:21:09.0000000Z`), the form Synapse Link writes.
//!
//! The parser accepts what SQLite's own date functions produce and what applications commonly
//! store (`YYYY-MM-DD`, a space or `T` before the time, optional seconds and fraction, `Z` or
//! a `±HH:MM` offset; no offset means UTC). Anything else is not a date-time, and its text is
//! written unchanged instead.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// A parsed point in time, normalised to UTC, with the sub-second part in 100 ns ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcDateTime(OffsetDateTime);

impl UtcDateTime {
    /// Wraps an instant.
    pub fn from_offset(at: OffsetDateTime) -> Self {
        UtcDateTime(at.to_offset(UtcOffset::UTC))
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(&self) -> i128 {
        self.0.unix_timestamp_nanos()
    }

    /// The calendar year in UTC.
    pub fn year(&self) -> i32 {
        self.0.year()
    }

    /// The month (1 to 12) in UTC.
    pub fn month(&self) -> u8 {
        self.0.month() as u8
    }

    /// `2024-05-25T16:21:09.0000000Z`.
    pub fn to_lake_text(&self) -> String {
        let mut out = String::with_capacity(28);
        self.write_lake_text(&mut out);
        out
    }

    /// Appends `2024-05-25T16:21:09.0000000Z` to `out` ([`parse_datetime`] makes only
    /// instants of years 1 to 9999; another year is written with its sign and digits).
    pub fn write_lake_text(&self, out: &mut String) {
        let (year, month, day) = self.0.to_calendar_date();
        let (hour, minute, second, nanos) = self.0.to_hms_nano();
        if !(0..=9999).contains(&year) {
            use std::fmt::Write as _;
            let _ = write!(out, "{year:+}");
        } else {
            push_digits(out, year as u32, 4);
        }
        out.push('-');
        push_digits(out, u32::from(month as u8), 2);
        out.push('-');
        push_digits(out, u32::from(day), 2);
        out.push('T');
        push_digits(out, u32::from(hour), 2);
        out.push(':');
        push_digits(out, u32::from(minute), 2);
        out.push(':');
        push_digits(out, u32::from(second), 2);
        out.push('.');
        push_digits(out, nanos / 100, 7);
        out.push('Z');
    }

    /// `M/d/yyyy h:mm:ss tt`, the form of `Athena:InitialSyncDataCompletedTime`.
    pub fn to_athena_text(&self) -> String {
        let t = self.0;
        let (hour12, half) = match t.hour() {
            0 => (12, "AM"),
            h @ 1..=11 => (h, "AM"),
            12 => (12, "PM"),
            h => (h - 12, "PM"),
        };
        format!(
            "{}/{}/{:04} {}:{:02}:{:02} {}",
            t.month() as u8,
            t.day(),
            t.year(),
            hour12,
            t.minute(),
            t.second(),
            half
        )
    }
}

/// Appends `value` as exactly `width` decimal digits (zero-padded). Written by hand because
/// this runs for every date-time of every row, and the formatting machinery costs several
/// times more.
fn push_digits(out: &mut String, value: u32, width: u32) {
    let mut divisor = 10u32.pow(width - 1);
    while divisor > 0 {
        out.push(char::from(b'0' + (value / divisor % 10) as u8));
        divisor /= 10;
    }
}

/// Parses a source date-time. `None` when the text is not one, when writing it in the lake's
/// form would lose information (more than seven significant fractional digits), or when the
/// instant in UTC falls outside years 1 to 9999: the range of a reader's timestamp (Spark,
/// .NET, Parquet through pandas), and the range in which the lake's four-digit year is
/// ISO 8601 without an agreed expansion. Such a value is kept as its text.
///
/// Works on bytes, by hand: it runs for every date-time of every row, twice for a partition
/// column, and splitting on patterns made it the largest cost of an initial copy.
pub fn parse_datetime(text: &str) -> Option<UtcDateTime> {
    parse_instant(text).filter(|at| (1..=9999).contains(&at.year()))
}

/// The instant `text` names, in any year from -9999 to 9999: [`parse_datetime`] without its
/// range. Partitions use it, so that a row's partition does not depend on whether its value
/// is written as a date-time or as its text (a row of year 0 is in `0000`).
pub fn parse_instant(text: &str) -> Option<UtcDateTime> {
    let s = text.trim().as_bytes();
    let date = date_of(s.get(..10)?)?;
    let rest = &s[10..];
    let Some((&separator, rest)) = rest.split_first() else {
        return Some(UtcDateTime(
            PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc(),
        ));
    };
    if separator != b'T' && separator != b' ' {
        return None;
    }
    let (clock, offset) = split_offset(rest)?;
    let time = parse_clock(clock)?;
    let local = PrimitiveDateTime::new(date, time);
    if offset.is_utc() {
        // Most stored date-times are in UTC already: no conversion to pay for.
        return Some(UtcDateTime(local.assume_utc()));
    }
    local
        .assume_offset(offset)
        .checked_to_offset(UtcOffset::UTC)
        .map(UtcDateTime)
}

/// Parses `YYYY-MM-DD` exactly.
pub fn parse_date(s: &str) -> Option<Date> {
    date_of(s.as_bytes())
}

fn date_of(b: &[u8]) -> Option<Date> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::from(two_digits(&b[0..2])?) * 100 + i32::from(two_digits(&b[2..4])?);
    let month = two_digits(&b[5..7])?;
    let day = two_digits(&b[8..10])?;
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

/// Exactly two ASCII digits.
fn two_digits(b: &[u8]) -> Option<u8> {
    match b {
        [t @ b'0'..=b'9', u @ b'0'..=b'9'] => Some((t - b'0') * 10 + (u - b'0')),
        _ => None,
    }
}

/// Splits the clock from its zone: `Z`, `±HH:MM`, `±HHMM`, `±HH`, or none (UTC).
fn split_offset(rest: &[u8]) -> Option<(&[u8], UtcOffset)> {
    if let Some((b'Z' | b'z', clock)) = rest.split_last() {
        return Some((clock, UtcOffset::UTC));
    }
    // An offset starts at the last `+` or `-`; the clock itself has neither.
    let Some(at) = rest.iter().rposition(|&b| b == b'+' || b == b'-') else {
        return Some((rest, UtcOffset::UTC));
    };
    let (clock, zone) = rest.split_at(at);
    let sign: i8 = if zone[0] == b'-' { -1 } else { 1 };
    let (h, m) = match &zone[1..] {
        [h1, h2, b':', m1, m2] => (two_digits(&[*h1, *h2])?, two_digits(&[*m1, *m2])?),
        [h1, h2, m1, m2] => (two_digits(&[*h1, *h2])?, two_digits(&[*m1, *m2])?),
        [h1, h2] => (two_digits(&[*h1, *h2])?, 0),
        _ => return None,
    };
    // Two digits are at most 99, which fits an i8.
    let offset = UtcOffset::from_hms(sign * h as i8, sign * m as i8, 0).ok()?;
    Some((clock, offset))
}

/// `HH:MM`, `HH:MM:SS`, either with a fraction of up to nine digits.
fn parse_clock(clock: &[u8]) -> Option<Time> {
    let (hms, fraction) = match clock.iter().position(|&b| b == b'.') {
        Some(dot) => (&clock[..dot], Some(&clock[dot + 1..])),
        None => (clock, None),
    };
    let (hour, minute, second) = match hms {
        [h1, h2, b':', m1, m2] => (two_digits(&[*h1, *h2])?, two_digits(&[*m1, *m2])?, 0),
        [h1, h2, b':', m1, m2, b':', s1, s2] => (
            two_digits(&[*h1, *h2])?,
            two_digits(&[*m1, *m2])?,
            two_digits(&[*s1, *s2])?,
        ),
        _ => return None,
    };
    let nanos = match fraction {
        None => 0,
        Some(f) => {
            if f.is_empty() || f.len() > 9 || !f.iter().all(u8::is_ascii_digit) {
                return None;
            }
            // Digits past the seventh would be lost in the lake's form.
            if f.len() > 7 && f[7..].iter().any(|&b| b != b'0') {
                return None;
            }
            let value = f
                .iter()
                .fold(0u32, |n, &digit| n * 10 + u32::from(digit - b'0'));
            // At most nine digits, so the scale is at least 10^0 and the product below 10^9.
            value * 10u32.pow(9 - f.len() as u32)
        }
    };
    Time::from_hms_nano(hour, minute, second, nanos).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lake(s: &str) -> Option<String> {
        parse_datetime(s).map(|d| d.to_lake_text())
    }

    #[test]
    fn common_forms_normalise_to_utc_with_seven_digits() {
        assert_eq!(
            lake("2024-05-25 16:21:09").as_deref(),
            Some("2024-05-25T16:21:09.0000000Z")
        );
        assert_eq!(
            lake("2024-05-25T16:21:09.123Z").as_deref(),
            Some("2024-05-25T16:21:09.1230000Z")
        );
        assert_eq!(
            lake("2024-05-25T18:21:09+02:00").as_deref(),
            Some("2024-05-25T16:21:09.0000000Z")
        );
        assert_eq!(
            lake("2024-05-25").as_deref(),
            Some("2024-05-25T00:00:00.0000000Z")
        );
        assert_eq!(
            lake("2024-05-25 16:21").as_deref(),
            Some("2024-05-25T16:21:00.0000000Z")
        );
        assert_eq!(
            lake("2024-05-25T16:21:09.123456700").as_deref(),
            Some("2024-05-25T16:21:09.1234567Z")
        );
    }

    #[test]
    fn what_would_lose_information_or_is_not_a_date_is_refused() {
        assert_eq!(lake("2024-05-25T16:21:09.123456789"), None);
        assert_eq!(lake("yesterday"), None);
        assert_eq!(lake("2024-02-30"), None);
        assert_eq!(lake("2024-05-25X16:21"), None);
        assert_eq!(lake("1700000000"), None);
        assert_eq!(lake(""), None);
        assert_eq!(lake("2024-05-25 6:21"), None);
        assert_eq!(lake("2024-05-25 16"), None);
        assert_eq!(lake("2024-05-25 16:21:"), None);
        assert_eq!(lake("2024-05-25 16:21:09:00"), None);
        assert_eq!(lake("2024-05-25 16:21:09."), None);
        assert_eq!(lake("2024-05-25 24:00:00"), None);
        assert_eq!(lake("2024-05-25t16:21:09"), None);
        assert_eq!(lake("2024-05-25 16:21:09+2"), None);
        assert_eq!(lake("2024-05-25 16:21:09+02:0"), None);
        assert_eq!(lake("2024-05-25 16:21:09+26:00"), None);
        assert_eq!(lake("2024-5-25"), None);
        assert_eq!(lake("２０２４-05-25"), None);
        assert_eq!(lake("2024-05-25 16:21:09é"), None);
    }

    #[test]
    fn every_offset_form_and_fraction_length_is_read() {
        for (text, expected) in [
            ("2024-05-25T18:21:09+0200", "2024-05-25T16:21:09.0000000Z"),
            ("2024-05-25T18:21:09+02", "2024-05-25T16:21:09.0000000Z"),
            ("2024-05-25T10:51:09-05:30", "2024-05-25T16:21:09.0000000Z"),
            ("2024-05-25T16:21:09z", "2024-05-25T16:21:09.0000000Z"),
            ("2024-05-25 16:21-01:00", "2024-05-25T17:21:00.0000000Z"),
            ("2024-05-25T16:21:09.1", "2024-05-25T16:21:09.1000000Z"),
            (
                "2024-05-25T16:21:09.1234567",
                "2024-05-25T16:21:09.1234567Z",
            ),
            (
                "2024-05-25T16:21:09.12345670",
                "2024-05-25T16:21:09.1234567Z",
            ),
            (
                "2024-05-25T16:21:09.05+01:00",
                "2024-05-25T15:21:09.0500000Z",
            ),
            ("  2024-05-25 16:21:09\n", "2024-05-25T16:21:09.0000000Z"),
            ("\u{a0}2024-05-25\u{2003}", "2024-05-25T00:00:00.0000000Z"),
            ("2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00.0000000Z"),
            ("0001-01-01", "0001-01-01T00:00:00.0000000Z"),
        ] {
            assert_eq!(lake(text).as_deref(), Some(expected), "{text:?}");
        }
    }

    #[test]
    fn an_instant_before_year_1_in_utc_is_not_a_date_time() {
        assert_eq!(lake("0000-01-01T00:30:00+01:00"), None);
        assert_eq!(lake("0000-06-01T00:00:00Z"), None);
        assert_eq!(lake("0000-12-31"), None);
        assert_eq!(
            lake("0001-01-01T00:30:00-01:00").as_deref(),
            Some("0001-01-01T01:30:00.0000000Z")
        );
        assert_eq!(lake("0001-01-01T00:30:00+01:00"), None);
    }

    #[test]
    fn an_instant_past_year_9999_in_utc_is_not_a_date_time() {
        // Its text is written unchanged rather than the agent failing on it.
        assert_eq!(lake("9999-12-31T23:00:00-05:00"), None);
        assert_eq!(
            lake("9999-12-31T23:00:00+05:00").as_deref(),
            Some("9999-12-31T18:00:00.0000000Z")
        );
    }

    #[test]
    fn athena_time_is_twelve_hour() {
        let d = parse_datetime("2024-05-25 16:21:09").unwrap();
        assert_eq!(d.to_athena_text(), "5/25/2024 4:21:09 PM");
        let d = parse_datetime("2024-01-02 00:05:00").unwrap();
        assert_eq!(d.to_athena_text(), "1/2/2024 12:05:00 AM");
    }
}
