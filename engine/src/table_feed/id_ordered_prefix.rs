//! How much of each live file an `in_place` table's initial copy writes in `Id` order. A source
//! that gives its rows along their key (a SQLite table keyed by its rowid, or by an integer
//! primary key) writes each live file in the order the table's snapshots lay it out, and each
//! file then records that prefix ([`crate::state::LiveFile::id_ordered_len`]). The first
//! snapshot reads the prefix as it would read a previous snapshot: with no change after the
//! copy it is the prefix's bytes, and changes the agent trickled in before the first snapshot
//! (an application writing while its table is linked) are merged over it, the changes alone
//! sorted, rather than every live row.
//!
//! The rows are noted as they are written, not reordered: a copy that comes in another order
//! (a table keyed by a UUID) leaves a prefix of its first rows only, and its first snapshot
//! sorts the rest of the live file.

use crate::id_order::IdKey;

/// How far one live file of a copy stands in `Id` order so far.
#[derive(Debug, Default)]
pub struct IdOrderedPrefix {
    /// The Id of the last row noted.
    last: Option<IdKey>,
    /// Bytes from the file's start in strictly increasing `Id` order.
    len: u64,
    /// Whether a row broke that order (nothing noted after it extends the prefix).
    broken: bool,
}

impl IdOrderedPrefix {
    /// Notes the next encoded row of the file (its bytes as they go to the lake; the copy
    /// started the file empty). `integer_ids`: whether the table's Ids are integers (see
    /// [`IdKey::parse`]).
    pub fn note(&mut self, row: &[u8], integer_ids: bool) {
        if self.broken {
            return;
        }
        // A row this dialect cannot read back an Id from ends the prefix: the snapshot then
        // reads the file as a sort would, which is always right.
        match IdKey::of_row_bytes(row, integer_ids) {
            Ok(key) if self.last.as_ref().is_none_or(|last| *last < key) => {
                self.len += row.len() as u64;
                self.last = Some(key);
            }
            _ => self.broken = true,
        }
    }

    /// Bytes from the file's start in strictly increasing `Id` order.
    pub fn ordered_len(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each partition's ordered prefix after noting `rows` (partition, Id), rows `Id,"x"`.
    fn prefixes(rows: &[(&str, &str)], integer_ids: bool) -> Vec<(String, u64)> {
        let mut files: std::collections::BTreeMap<String, IdOrderedPrefix> = Default::default();
        for (partition, id) in rows {
            files
                .entry(partition.to_string())
                .or_default()
                .note(format!("{id},\"x\"\n").as_bytes(), integer_ids);
        }
        files
            .into_iter()
            .map(|(p, f)| (p, f.ordered_len()))
            .collect()
    }

    /// The bytes of the rows `Id,"x"` of `ids`.
    fn len_of(ids: &[&str]) -> u64 {
        ids.iter().map(|id| id.len() as u64 + 5).sum()
    }

    #[test]
    fn a_file_written_in_id_order_is_ordered_whole() {
        let rows = [("a", "1"), ("b", "2"), ("a", "9"), ("b", "10"), ("a", "10")];
        assert_eq!(
            prefixes(&rows, true),
            [
                ("a".to_string(), len_of(&["1", "9", "10"])),
                ("b".to_string(), len_of(&["2", "10"]))
            ]
        );
    }

    #[test]
    fn the_prefix_ends_at_the_first_row_out_of_order_or_repeated() {
        // Text Ids: "10" sorts before "9", and after a row out of order nothing counts.
        let rows = [
            ("a", "8"),
            ("a", "9"),
            ("a", "10"),
            ("a", "11"),
            ("b", "1"),
            ("b", "1"),
        ];
        assert_eq!(
            prefixes(&rows, false),
            [
                ("a".to_string(), len_of(&["8", "9"])),
                ("b".to_string(), len_of(&["1"]))
            ]
        );
        // The same Ids as integers are in order.
        assert_eq!(
            prefixes(&rows[..4], true),
            [("a".to_string(), len_of(&["8", "9", "10", "11"]))]
        );
    }

    #[test]
    fn a_row_whose_id_cannot_be_read_ends_the_prefix() {
        let mut prefix = IdOrderedPrefix::default();
        prefix.note(b"1,x\n", true);
        prefix.note(b"2\"oops,x\n", true);
        prefix.note(b"3,x\n", true);
        assert_eq!(prefix.ordered_len(), 4);
    }
}
