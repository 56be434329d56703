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

    /// Appends `2024-05-25T16:21:09.0000000Z` to `out` (for years 0 to 9999; others are
    /// written with their sign and all their digits).
    pub fn write_lake_text(&self, out: &mut String) {
        let t = self.0;
        let year = t.year();
        if !(0..=9999).contains(&year) {
            use std::fmt::Write as _;
            let _ = write!(out, "{year:+}");
        } else {
            push_digits(out, year as u32, 4);
        }
        out.push('-');
        push_digits(out, u32::from(t.month() as u8), 2);
        out.push('-');
        push_digits(out, u32::from(t.day()), 2);
        out.push('T');
        push_digits(out, u32::from(t.hour()), 2);
        out.push(':');
        push_digits(out, u32::from(t.minute()), 2);
        out.push(':');
        push_digits(out, u32::from(t.second()), 2);
        out.push('.');
        push_digits(out, t.nanosecond() / 100, 7);
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

/// Parses a source date-time. `None` when the text is not one, or when writing it in the
/// lake's form would lose information (more than seven significant fractional digits).
pub fn parse_datetime(text: &str) -> Option<UtcDateTime> {
    let s = text.trim();
    let date = parse_date(s.get(..10)?)?;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(UtcDateTime::from_offset(
            PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc(),
        ));
    }
    let rest = rest.strip_prefix(['T', ' '])?;
    let (clock, offset) = split_offset(rest)?;
    let time = parse_clock(clock)?;
    let at = PrimitiveDateTime::new(date, time).assume_offset(offset);
    Some(UtcDateTime::from_offset(at))
}

/// Parses `YYYY-MM-DD` exactly.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year: i32 = digits(&s[0..4])?;
    let month: u8 = digits(&s[5..7])?;
    let day: u8 = digits(&s[8..10])?;
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn split_offset(rest: &str) -> Option<(&str, UtcOffset)> {
    if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        return Some((clock, UtcOffset::UTC));
    }
    // An offset is the last `+` or `-`; the clock itself has neither.
    let Some(at) = rest.rfind(['+', '-']) else {
        return Some((rest, UtcOffset::UTC));
    };
    let (clock, zone) = rest.split_at(at);
    let sign: i8 = if zone.starts_with('-') { -1 } else { 1 };
    let zone = &zone[1..];
    let (h, m) = match zone.len() {
        5 if zone.as_bytes()[2] == b':' => (&zone[0..2], &zone[3..5]),
        4 => (&zone[0..2], &zone[2..4]),
        2 => (&zone[0..2], "00"),
        _ => return None,
    };
    let h: i8 = digits(h)?;
    let m: i8 = digits(m)?;
    let offset = UtcOffset::from_hms(sign * h, sign * m, 0).ok()?;
    Some((clock, offset))
}

fn parse_clock(clock: &str) -> Option<Time> {
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (clock, None),
    };
    let mut parts = hms.split(':');
    let hour: u8 = digits(parts.next()?).filter(|_| hms.len() >= 5)?;
    let minute: u8 = digits(parts.next()?)?;
    let second: u8 = match parts.next() {
        Some(s) => digits(s)?,
        None => 0,
    };
    if parts.next().is_some() || hms.split(':').any(|p| p.len() != 2) {
        return None;
    }
    let nanos = match fraction {
        None => 0,
        Some(f) => {
            if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Digits past the seventh would be lost in the lake's form.
            if f.len() > 7 && f[7..].bytes().any(|b| b != b'0') {
                return None;
            }
            let mut padded = f.to_string();
            padded.truncate(9);
            while padded.len() < 9 {
                padded.push('0');
            }
            padded.parse::<u32>().ok()?
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
    }

    #[test]
    fn athena_time_is_twelve_hour() {
        let d = parse_datetime("2024-05-25 16:21:09").unwrap();
        assert_eq!(d.to_athena_text(), "5/25/2024 4:21:09 PM");
        let d = parse_datetime("2024-01-02 00:05:00").unwrap();
        assert_eq!(d.to_athena_text(), "1/2/2024 12:05:00 AM");
    }
}
