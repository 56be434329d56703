//! Sorting a partition's changes by Id in bounded memory: rows are sorted in memory up to a
//! byte budget, each full buffer is written to a temporary run file, and the runs are merged.
//!
//! Written here rather than with the `extsort` crate because extsort bounds a segment by its
//! number of items, and change rows range from a few bytes to many megabytes: only a budget in
//! bytes keeps memory bounded for any table.

use super::id_key::IdKey;
use lakelink_model::csv_row::{CsvError, CsvReader, Record, RowWriter};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom, Write};

/// One change row with its sort key: the Id, then its order in the live file.
pub struct Keyed {
    /// The row's Id.
    pub key: IdKey,
    /// Its index in the live file segment.
    pub seq: u64,
    /// The row.
    pub record: Record,
}

impl Keyed {
    fn size(&self) -> usize {
        // Text plus per-field bounds and fixed overhead: a close enough measure of the heap
        // memory the item holds.
        let text: usize = self.record.iter().map(|(t, _)| t.len() + 24).sum();
        text + self.key.heap_size() + 64
    }
}

/// Sorts by (Id, seq). No two items share a seq, so an unstable sort gives the one order a
/// stable sort would, with fewer moves of these large items.
fn sort_by_key_and_seq(items: &mut [Keyed]) {
    items.sort_unstable_by(|a, b| (&a.key, a.seq).cmp(&(&b.key, b.seq)));
}

/// Collects rows and yields them sorted by (Id, seq).
pub struct SpillSorter {
    budget: usize,
    used: usize,
    buffer: Vec<Keyed>,
    runs: Vec<File>,
    integer_ids: bool,
}

impl SpillSorter {
    /// A sorter that keeps at most about `budget` bytes in memory. `integer_ids`: whether
    /// the table's Ids are integers (see [`IdKey::parse`]).
    pub fn new(budget: usize, integer_ids: bool) -> SpillSorter {
        SpillSorter {
            budget,
            used: 0,
            buffer: Vec::new(),
            runs: Vec::new(),
            integer_ids,
        }
    }

    /// Adds a row.
    pub fn push(&mut self, item: Keyed) -> io::Result<()> {
        self.used += item.size();
        self.buffer.push(item);
        if self.used >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// How many runs went to disk (for tests).
    #[cfg(test)]
    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    fn spill(&mut self) -> io::Result<()> {
        sort_by_key_and_seq(&mut self.buffer);
        let mut file = tempfile::tempfile()?;
        {
            let mut out = BufWriter::new(&mut file);
            let mut bytes = Vec::new();
            for item in self.buffer.drain(..) {
                bytes.clear();
                let mut row = RowWriter::new(&mut bytes);
                row.raw(&item.seq.to_string());
                for (text, quoted) in item.record.iter() {
                    row.field(text, quoted);
                }
                row.finish();
                out.write_all(&bytes)?;
            }
            out.flush()?;
        }
        file.seek(SeekFrom::Start(0))?;
        self.runs.push(file);
        self.used = 0;
        Ok(())
    }

    /// Every row, sorted by (Id, seq).
    pub fn finish(mut self) -> Result<Sorted, CsvError> {
        if self.runs.is_empty() {
            sort_by_key_and_seq(&mut self.buffer);
            return Ok(Sorted(SortedInner::Memory(self.buffer.into_iter())));
        }
        if !self.buffer.is_empty() {
            self.spill()?;
        }
        let mut runs = Vec::new();
        let mut heap = BinaryHeap::new();
        for (i, file) in self.runs.into_iter().enumerate() {
            let mut run = Run {
                reader: CsvReader::new(BufReader::new(file), 0),
                integer_ids: self.integer_ids,
            };
            if let Some(item) = run.next()? {
                heap.push(Reverse(HeapItem { item, run: i }));
            }
            runs.push(run);
        }
        Ok(Sorted(SortedInner::Merge { runs, heap }))
    }
}

struct Run {
    reader: CsvReader<BufReader<File>>,
    integer_ids: bool,
}

impl Run {
    fn next(&mut self) -> Result<Option<Keyed>, CsvError> {
        let mut stored = Record::default();
        if !self.reader.read_record(&mut stored)? {
            return Ok(None);
        }
        let seq = stored
            .get(0)
            .and_then(|(t, _)| t.parse().ok())
            .ok_or(CsvError::Malformed {
                offset: self.reader.offset(),
                reason: "a spilled row without its sequence number",
            })?;
        let record = Record::from_fields(stored.iter().skip(1));
        let key = IdKey::of_record(&record, self.integer_ids);
        Ok(Some(Keyed { key, seq, record }))
    }
}

struct HeapItem {
    item: Keyed,
    run: usize,
}

impl PartialEq for HeapItem {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapItem {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.item.key, self.item.seq).cmp(&(&other.item.key, other.item.seq))
    }
}

/// The sorted rows.
pub struct Sorted(SortedInner);

enum SortedInner {
    /// Everything fitted in memory.
    Memory(std::vec::IntoIter<Keyed>),
    /// A k-way merge of spilled runs, with each run's next row on the heap.
    Merge {
        runs: Vec<Run>,
        heap: BinaryHeap<Reverse<HeapItem>>,
    },
}

impl Sorted {
    /// The next row in (Id, seq) order.
    pub fn next_item(&mut self) -> Result<Option<Keyed>, CsvError> {
        match &mut self.0 {
            SortedInner::Memory(items) => Ok(items.next()),
            SortedInner::Merge { runs, heap } => {
                let Some(Reverse(top)) = heap.pop() else {
                    return Ok(None);
                };
                if let Some(next) = runs[top.run].next()? {
                    heap.push(Reverse(HeapItem {
                        item: next,
                        run: top.run,
                    }));
                }
                Ok(Some(top.item))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spilled_runs_merge_in_order() {
        let mut sorter = SpillSorter::new(2_000, true);
        let n = 500u64;
        for seq in 0..n {
            let id = (seq * 7919) % 101;
            let text = format!("row {seq}, with \"quotes\"\nand a newline");
            let record =
                Record::from_fields([(id.to_string().as_str(), false), (text.as_str(), true)]);
            sorter
                .push(Keyed {
                    key: IdKey::Int(id as i64),
                    seq,
                    record,
                })
                .unwrap();
        }
        assert!(sorter.spilled_runs() > 3, "the budget should force spills");
        let mut sorted = sorter.finish().unwrap();
        let mut last = (IdKey::Int(i64::MIN), 0);
        let mut count = 0;
        while let Some(item) = sorted.next_item().unwrap() {
            assert!((&item.key, item.seq) > (&last.0, last.1) || count == 0);
            assert_eq!(
                item.record.get(1).unwrap().0,
                format!("row {}, with \"quotes\"\nand a newline", item.seq)
            );
            last = (item.key, item.seq);
            count += 1;
        }
        assert_eq!(count, n);
    }
}
