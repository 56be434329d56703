//! Rows of PostgreSQL's COPY text format (`COPY ... TO STDOUT`): one row per line, fields
//! separated by tabs, `\N` for NULL, and backslash escapes for the bytes that would break a
//! line or a field. Decoded by hand: the format is small and fixed (PostgreSQL's "COPY, Text
//! Format"), and no maintained crate decodes it apart from a whole client.

use std::io::BufRead;

/// What [`read_row`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum RowRead {
    /// A row, split into the fields.
    Row,
    /// A row that is not what COPY sends (not UTF-8, or the stream ended inside it).
    Damaged,
    /// The end of the stream.
    End,
}

/// Reads the next row of `rows` into `fields`. A row is split straight from the reader's
/// buffer when it lies whole there, as it does with `postgres`'s COPY reader, which hands out
/// each CopyData message as it came and the server sends one per row; only a row that spans
/// buffers is gathered into `line` first.
pub fn read_row(
    rows: &mut impl BufRead,
    line: &mut Vec<u8>,
    fields: &mut Vec<Option<String>>,
) -> std::io::Result<RowRead> {
    line.clear();
    loop {
        let buffer = rows.fill_buf()?;
        if buffer.is_empty() {
            return Ok(match line.is_empty() {
                true => RowRead::End,
                false => RowRead::Damaged,
            });
        }
        let Some(end) = memchr::memchr(b'\n', buffer) else {
            line.extend_from_slice(buffer);
            let all = buffer.len();
            rows.consume(all);
            continue;
        };
        let whole = if line.is_empty() {
            split_fields(&buffer[..end], fields)
        } else {
            line.extend_from_slice(&buffer[..end]);
            split_fields(line, fields)
        };
        rows.consume(end + 1);
        return Ok(match whole {
            true => RowRead::Row,
            false => RowRead::Damaged,
        });
    }
}

/// Splits one line (its `\n` removed) into fields, `None` for NULL, unescaped. Returns `false`
/// when the line is not valid UTF-8 once unescaped (the server sends the client encoding,
/// UTF-8, so that means a damaged stream).
pub fn split_fields(line: &[u8], fields: &mut Vec<Option<String>>) -> bool {
    fields.clear();
    for raw in line.split(|&b| b == b'\t') {
        if raw == b"\\N" {
            fields.push(None);
            continue;
        }
        if !raw.contains(&b'\\') {
            match std::str::from_utf8(raw) {
                Ok(text) => fields.push(Some(text.to_string())),
                Err(_) => return false,
            }
            continue;
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let b = raw[i];
            i += 1;
            if b != b'\\' || i == raw.len() {
                out.push(b);
                continue;
            }
            let e = raw[i];
            i += 1;
            match e {
                b'b' => out.push(0x08),
                b'f' => out.push(0x0c),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'v' => out.push(0x0b),
                b'0'..=b'7' => {
                    // Up to three octal digits.
                    let mut value = u32::from(e - b'0');
                    for _ in 0..2 {
                        match raw.get(i) {
                            Some(&d @ b'0'..=b'7') => {
                                value = value * 8 + u32::from(d - b'0');
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    out.push(value as u8);
                }
                b'x' => {
                    // Up to two hex digits (PostgreSQL reads `\x` without one as `x`).
                    let digit = |b: u8| (b as char).to_digit(16);
                    match raw.get(i).copied().and_then(digit) {
                        Some(first) => {
                            i += 1;
                            let mut value = first;
                            if let Some(second) = raw.get(i).copied().and_then(digit) {
                                value = value * 16 + second;
                                i += 1;
                            }
                            out.push(value as u8);
                        }
                        None => out.push(b'x'),
                    }
                }
                other => out.push(other),
            }
        }
        match String::from_utf8(out) {
            Ok(text) => fields.push(Some(text)),
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Vec<Option<String>> {
        let mut fields = Vec::new();
        assert!(split_fields(line.as_bytes(), &mut fields));
        fields
    }

    #[test]
    fn fields_nulls_and_escapes_are_decoded() {
        assert_eq!(
            split("1\t\\N\ta\\tb\\nc\\\\d\t\\\\N\t"),
            [
                Some("1".into()),
                None,
                Some("a\tb\nc\\d".into()),
                Some("\\N".into()),
                Some(String::new())
            ]
        );
        assert_eq!(
            split("\\x41\\101\\r\\b\\f\\v"),
            [Some("AA\r\x08\x0c\x0b".into())]
        );
        // bytea in hex form arrives with its backslash escaped.
        assert_eq!(split("\\\\x0a1b"), [Some("\\x0a1b".into())]);
        assert_eq!(split("données ✓"), [Some("données ✓".into())]);
    }

    #[test]
    fn rows_are_read_whole_however_the_stream_is_cut() {
        let stream = b"1\ta\n22\t\\N\n333\tc\\td\n";
        for capacity in [1, 2, 3, 5, 64] {
            // A reader whose buffer holds `capacity` bytes cuts rows anywhere.
            let mut rows = std::io::BufReader::with_capacity(capacity, &stream[..]);
            let (mut line, mut fields) = (Vec::new(), Vec::new());
            let mut got = Vec::new();
            while read_row(&mut rows, &mut line, &mut fields).unwrap() == RowRead::Row {
                got.push(fields.clone());
            }
            assert_eq!(
                got,
                [
                    vec![Some("1".into()), Some("a".into())],
                    vec![Some("22".into()), None],
                    vec![Some("333".into()), Some("c\td".into())],
                ],
                "buffer of {capacity} bytes"
            );
        }
        // A stream that ends inside a row is damaged, not a short table.
        let mut rows = &b"1\ta\n2\tb"[..];
        let (mut line, mut fields) = (Vec::new(), Vec::new());
        assert_eq!(
            read_row(&mut rows, &mut line, &mut fields).unwrap(),
            RowRead::Row
        );
        assert_eq!(
            read_row(&mut rows, &mut line, &mut fields).unwrap(),
            RowRead::Damaged
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused() {
        let mut fields = Vec::new();
        assert!(!split_fields(b"\\377", &mut fields));
        assert!(!split_fields(&[0xff], &mut fields));
    }
}
