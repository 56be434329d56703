//! Sorting a partition's changes by Id in bounded memory: rows are sorted in memory up to a
//! byte budget, each full buffer is written to a temporary run file, and the runs are merged,
//! with the rows still in memory at the end as one more run (never written out and read back).
//! At most [`FAN_IN`] runs of one size are kept: that many are merged into one run of the next
//! size as soon as they are there, so a partition of any size needs a bounded number of open
//! files (a log of 64 GB spills a thousand runs of 64 MiB; merged 64 at a time it holds at most
//! 64 per level, of which 64 GB has two), and each row is rewritten once per level.
//!
//! Written here rather than with the `extsort` crate because extsort bounds a segment by its
//! number of items, and change rows range from a few bytes to many megabytes: only a budget in
//! bytes keeps memory bounded for any table.

use super::id_key::IdKey;
use super::raw_row::RawRow;
use lakelink_model::csv_row::CsvError;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

/// One change row with its sort key: the Id, then its order in the live file.
pub struct Keyed {
    /// The row's Id.
    pub key: IdKey,
    /// Its index in the live file segment.
    pub seq: u64,
    /// The row.
    pub row: RawRow,
}

impl Keyed {
    /// Bytes of memory the item holds.
    fn size(&self) -> usize {
        // The row's bytes and the key's, the item itself twice (the buffer's growth by
        // doubling), and the allocator's overhead of its two blocks: a close enough measure of
        // the memory an item holds, for rows of a few bytes as for rows of megabytes.
        self.row.bytes.len() + self.key.heap_size() + 2 * std::mem::size_of::<Keyed>() + 32
    }

    /// Writes the item to a run file: the key (a tag, then an `i64` or a length and its
    /// text), the seq, the field count, the delete flag and the row's bytes, lengths in
    /// little-endian. A run is read back only by this process, so it needs no more than that.
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        match &self.key {
            IdKey::Missing => out.write_all(&[0])?,
            IdKey::Int(i) => {
                out.write_all(&[1])?;
                out.write_all(&i.to_le_bytes())?;
            }
            IdKey::Text(t) => {
                out.write_all(&[2])?;
                out.write_all(&(t.len() as u64).to_le_bytes())?;
                out.write_all(t.as_bytes())?;
            }
        }
        out.write_all(&self.seq.to_le_bytes())?;
        out.write_all(&(self.row.fields as u64).to_le_bytes())?;
        out.write_all(&[u8::from(self.row.is_delete)])?;
        out.write_all(&(self.row.bytes.len() as u64).to_le_bytes())?;
        out.write_all(&self.row.bytes)
    }

    /// Reads an item [`Keyed::write_to`] wrote, or `None` at the run's end.
    fn read_from(input: &mut impl Read) -> Result<Option<Keyed>, CsvError> {
        let mut tag = [0u8; 1];
        if input.read(&mut tag)? == 0 {
            return Ok(None);
        }
        let mut word = [0u8; 8];
        let mut u64_of = |input: &mut dyn Read| -> io::Result<u64> {
            input.read_exact(&mut word)?;
            Ok(u64::from_le_bytes(word))
        };
        let key = match tag[0] {
            0 => IdKey::Missing,
            1 => IdKey::Int(u64_of(input)? as i64),
            2 => {
                let len = u64_of(input)? as usize;
                let mut text = vec![0; len];
                input.read_exact(&mut text)?;
                IdKey::Text(String::from_utf8(text).map_err(|_| CsvError::Malformed {
                    offset: 0,
                    reason: "a spilled Id that is not UTF-8",
                })?)
            }
            _ => {
                return Err(CsvError::Malformed {
                    offset: 0,
                    reason: "a spilled row of an unknown kind",
                });
            }
        };
        let seq = u64_of(input)?;
        let fields = u64_of(input)? as usize;
        let mut flag = [0u8; 1];
        input.read_exact(&mut flag)?;
        let len = u64_of(input)? as usize;
        let mut bytes = vec![0; len];
        input.read_exact(&mut bytes)?;
        Ok(Some(Keyed {
            key,
            seq,
            row: RawRow {
                bytes,
                fields,
                is_delete: flag[0] != 0,
            },
        }))
    }
}

/// Sorts by (Id, seq). No two items share a seq, so an unstable sort gives the one order a
/// stable sort would, with fewer moves of these large items.
fn sort_by_key_and_seq(items: &mut [Keyed]) {
    items.sort_unstable_by(|a, b| (&a.key, a.seq).cmp(&(&b.key, b.seq)));
}

/// Runs merged at once, in a merge that makes a bigger run and in the final one.
const FAN_IN: usize = 64;

/// A spilled run: its file, and its level (0: one buffer's worth; n + 1: a merge of
/// [`FAN_IN`] runs of level n).
struct SpilledRun {
    file: File,
    level: u32,
}

/// Collects rows and yields them sorted by (Id, seq).
pub struct SpillSorter {
    budget: usize,
    used: usize,
    buffer: Vec<Keyed>,
    /// Levels never increase along the list, so the runs of the lowest level are its tail.
    runs: Vec<SpilledRun>,
}

impl SpillSorter {
    /// A sorter that keeps at most about `budget` bytes in memory.
    pub fn new(budget: usize) -> SpillSorter {
        SpillSorter {
            budget,
            used: 0,
            buffer: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn push(&mut self, item: Keyed) -> Result<(), CsvError> {
        self.used += item.size();
        self.buffer.push(item);
        if self.used >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// How many runs are on disk now (for tests).
    #[cfg(test)]
    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    fn spill(&mut self) -> Result<(), CsvError> {
        sort_by_key_and_seq(&mut self.buffer);
        let items = std::mem::take(&mut self.buffer);
        let file = write_run(items.into_iter().map(Ok))?;
        self.runs.push(SpilledRun { file, level: 0 });
        self.used = 0;
        // FAN_IN runs of one level become one of the next (which may complete that level).
        loop {
            let level = self.runs.last().map_or(0, |r| r.level);
            let same = self
                .runs
                .iter()
                .rev()
                .take_while(|r| r.level == level)
                .count();
            if same < FAN_IN {
                return Ok(());
            }
            let group = self.runs.split_off(self.runs.len() - FAN_IN);
            let mut merged = merge_runs(file_runs(group, self.budget))?;
            let file = write_run(std::iter::from_fn(|| merged.next_item().transpose()))?;
            self.runs.push(SpilledRun {
                file,
                level: level + 1,
            });
        }
    }

    /// Every row, sorted by (Id, seq).
    pub fn finish(mut self) -> Result<Sorted, CsvError> {
        if self.runs.is_empty() {
            sort_by_key_and_seq(&mut self.buffer);
            return Ok(Sorted(SortedInner::Memory(self.buffer.into_iter())));
        }
        // At most FAN_IN - 1 runs of each level are left: few enough to merge at once. The
        // rows still in memory are merged from there, as one more run, rather than written
        // to disk and read back.
        let mut runs = file_runs(self.runs, self.budget);
        if !self.buffer.is_empty() {
            sort_by_key_and_seq(&mut self.buffer);
            runs.push(Run::Memory(self.buffer.into_iter()));
        }
        merge_runs(runs)
    }
}

/// Writes sorted items to a new run file, ready to be read from its start.
fn write_run(items: impl Iterator<Item = Result<Keyed, CsvError>>) -> Result<File, CsvError> {
    let mut file = tempfile::tempfile()?;
    {
        let mut out = BufWriter::with_capacity(1 << 20, &mut file);
        for item in items {
            item?.write_to(&mut out)?;
        }
        out.flush()?;
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// Spilled runs to read, their read buffers sharing `budget`.
fn file_runs(spilled: Vec<SpilledRun>, budget: usize) -> Vec<Run> {
    let buffer = (budget / spilled.len().max(1)).clamp(8 << 10, 1 << 20);
    spilled
        .into_iter()
        .map(|r| Run::File(BufReader::with_capacity(buffer, r.file)))
        .collect()
}

/// A merge of sorted runs.
fn merge_runs(mut runs: Vec<Run>) -> Result<Sorted, CsvError> {
    let mut heap = BinaryHeap::new();
    for (i, run) in runs.iter_mut().enumerate() {
        if let Some(item) = run.next()? {
            heap.push(Reverse(HeapItem { item, run: i }));
        }
    }
    Ok(Sorted(SortedInner::Merge { runs, heap }))
}

/// One sorted run of a merge.
enum Run {
    /// Spilled to a file.
    File(BufReader<File>),
    /// The rows left in memory when the sort finished.
    Memory(std::vec::IntoIter<Keyed>),
}

impl Run {
    fn next(&mut self) -> Result<Option<Keyed>, CsvError> {
        match self {
            Run::File(reader) => Keyed::read_from(reader),
            Run::Memory(items) => Ok(items.next()),
        }
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

    /// Every item of `sorter`, checked to come in strictly increasing (Id, seq) order.
    fn drained_in_order(sorter: SpillSorter) -> Vec<Keyed> {
        let mut sorted = sorter.finish().unwrap();
        let mut items: Vec<Keyed> = Vec::new();
        while let Some(item) = sorted.next_item().unwrap() {
            if let Some(last) = items.last() {
                assert!((&item.key, item.seq) > (&last.key, last.seq));
            }
            items.push(item);
        }
        items
    }

    #[test]
    fn runs_past_the_fan_in_are_merged_so_open_files_stay_bounded() {
        // About ten rows a run: 50,000 rows spill some 5,000 runs, more than FAN_IN squared.
        let mut sorter = SpillSorter::new(2_000);
        let n = 50_000;
        let mut peak = 0;
        for seq in 0..n {
            let id = (seq * 7919) % 1009;
            sorter
                .push(Keyed {
                    key: IdKey::Int(id as i64),
                    seq,
                    row: RawRow {
                        bytes: format!("{id},row {seq}\n").into_bytes(),
                        fields: 2,
                        is_delete: false,
                    },
                })
                .unwrap();
            peak = peak.max(sorter.spilled_runs());
        }
        assert!(
            sorter.runs.iter().any(|r| r.level >= 2),
            "level-1 runs were merged again"
        );
        assert!(peak < 3 * FAN_IN, "{peak} runs held at once");
        let items = drained_in_order(sorter);
        assert_eq!(items.len() as u64, n);
        for item in items {
            let IdKey::Int(id) = item.key else {
                panic!("an Id changed kind")
            };
            assert_eq!(
                item.row.bytes,
                format!("{id},row {}\n", item.seq).into_bytes()
            );
        }
    }

    #[test]
    fn spilled_runs_merge_in_order() {
        let mut sorter = SpillSorter::new(2_000);
        let n = 500u64;
        let row = |seq: u64| {
            format!(
                "{},\"row {seq}, with \"\"quotes\"\"\nand a newline\"\n",
                (seq * 7919) % 101
            )
        };
        for seq in 0..n {
            let id = (seq * 7919) % 101;
            let key = if seq % 50 == 0 {
                IdKey::Text(format!("t{id}"))
            } else {
                IdKey::Int(id as i64)
            };
            sorter
                .push(Keyed {
                    key,
                    seq,
                    row: RawRow {
                        bytes: row(seq).into_bytes(),
                        fields: 2,
                        is_delete: seq % 3 == 0,
                    },
                })
                .unwrap();
        }
        assert!(sorter.spilled_runs() > 3, "the budget should force spills");
        let items = drained_in_order(sorter);
        assert_eq!(items.len() as u64, n);
        for item in items {
            assert_eq!(item.row.bytes, row(item.seq).into_bytes());
            assert_eq!(item.row.fields, 2);
            assert_eq!(item.row.is_delete, item.seq % 3 == 0);
        }
    }
}
