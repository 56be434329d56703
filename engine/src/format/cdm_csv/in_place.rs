//! An in-place snapshot of one partition: the previous snapshot (sorted by Id) merged with
//! the changes the live file gained since, sorted by Id, keeping each Id's latest image and
//! dropping deleted Ids. Reads the previous snapshot and the new changes once; memory stays
//! within the sort budget whatever the partition's size.

use super::id_key::IdKey;
use super::spill_sort::{Keyed, SpillSorter};
use crate::error::EngineError;
use lakelink_model::csv_row::{CsvReader, Record, RowWriter};
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::LakePath;
use std::io::Write;

/// Field positions every row shares.
const SINK_CREATED_ON: usize = 1;

/// Where to read from, and how the table's rows are laid out.
pub struct InPlaceInput<'a> {
    /// The partition's previous snapshot file, if it has one.
    pub previous: Option<&'a LakePath>,
    /// The live file.
    pub live: &'a LakePath,
    /// The live file's length at the previous snapshot's cut.
    pub from: u64,
    /// Its length at this snapshot's cut.
    pub to: u64,
    /// Index of the `IsDelete` field.
    pub is_delete: usize,
    /// Whether Ids are integers.
    pub integer_ids: bool,
    /// Memory budget for sorting, in bytes.
    pub sort_budget: usize,
    /// The fields a row written before a column was added gets for it, in field order. A row
    /// that ends before such a field was written before the column existed, and holds the
    /// column's value for existing rows.
    pub fills: &'a [FilledField],
}

/// The field a row written before its column was added holds for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilledField {
    /// The field's index in a row.
    pub at: usize,
    /// Its text, as a CSV reader gives it back.
    pub text: String,
    /// Whether it is written quoted.
    pub quoted: bool,
}

/// Writes `record` as a row; `created` replaces its `SinkCreatedOn`; fields the record ends
/// before are filled in from `fills` (empty between them).
fn write_row(out: &mut Vec<u8>, record: &Record, created: Option<&str>, fills: &[FilledField]) {
    let padded_to = fills.last().map_or(0, |f| f.at + 1);
    if created.is_none() && record.len() >= padded_to {
        record.write_to(out);
        return;
    }
    let mut row = RowWriter::new(out);
    for (i, (text, quoted)) in record.iter().enumerate() {
        match created {
            Some(created) if i == SINK_CREATED_ON => row.quoted(created),
            _ => row.field(text, quoted),
        }
    }
    for i in record.len()..padded_to {
        match fills.iter().find(|f| f.at == i) {
            Some(f) => row.field(&f.text, f.quoted),
            None => row.null(),
        }
    }
    row.finish();
}

/// Writes the partition's state at the cut to `out`; returns the number of rows.
pub fn write_in_place(
    lake: &dyn Lake,
    input: &InPlaceInput<'_>,
    out: &mut dyn Write,
) -> Result<u64, EngineError> {
    let csv_err = |path: &LakePath| {
        let path = path.to_string();
        move |source| EngineError::Csv {
            path: path.clone(),
            source,
        }
    };
    let mut sorter = SpillSorter::new(input.sort_budget, input.integer_ids);
    let mut changes = CsvReader::new(
        lake.read(input.live, input.from, Some(input.to))?,
        input.from,
    );
    let mut seq = 0;
    loop {
        let mut record = Record::default();
        if !changes
            .read_record(&mut record)
            .map_err(csv_err(input.live))?
        {
            break;
        }
        let key = IdKey::of_record(&record, input.integer_ids);
        sorter
            .push(Keyed { key, seq, record })
            .map_err(|e| csv_err(input.live)(e.into()))?;
        seq += 1;
    }
    let mut sorted = sorter.finish().map_err(csv_err(input.live))?;

    let mut previous = match input.previous {
        Some(path) => Some((CsvReader::new(lake.read(path, 0, None)?, 0), path)),
        None => None,
    };
    let read_previous = |previous: &mut Option<(CsvReader<_>, &LakePath)>| -> Result<Option<(IdKey, Record)>, EngineError> {
        let Some((reader, path)) = previous else {
            return Ok(None);
        };
        let mut record = Record::default();
        if reader.read_record(&mut record).map_err(csv_err(path))? {
            Ok(Some((IdKey::of_record(&record, input.integer_ids), record)))
        } else {
            Ok(None)
        }
    };

    let mut next_previous = read_previous(&mut previous)?;
    let mut next_change = sorted.next_item().map_err(csv_err(input.live))?;
    let mut rows = 0;
    let mut bytes = Vec::new();
    loop {
        let take_previous_only = match (&next_previous, &next_change) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((pk, _)), Some(change)) => *pk < change.key,
        };
        if take_previous_only {
            if let Some((_, record)) = next_previous.take() {
                bytes.clear();
                write_row(&mut bytes, &record, None, input.fills);
                out.write_all(&bytes)
                    .map_err(|e| csv_err(input.live)(e.into()))?;
                rows += 1;
            }
            next_previous = read_previous(&mut previous)?;
            continue;
        }
        // Fold every change of this Id over the previous image, in live-file order.
        let Some(first) = next_change.take() else {
            break;
        };
        let id = first.key.clone();
        let (mut created, mut image) = match next_previous.take() {
            Some((pk, record)) if pk == id => {
                next_previous = read_previous(&mut previous)?;
                (field(&record, SINK_CREATED_ON), Some(record))
            }
            other => {
                next_previous = other;
                (String::new(), None)
            }
        };
        let mut change = Some(first);
        while let Some(c) = change {
            let deleted = c
                .record
                .get(input.is_delete)
                .is_some_and(|(t, _)| t == "True");
            if deleted {
                image = None;
            } else {
                if image.is_none() {
                    created = field(&c.record, SINK_CREATED_ON);
                }
                image = Some(c.record);
            }
            change = sorted.next_item().map_err(csv_err(input.live))?;
            if change.as_ref().is_some_and(|n| n.key != id) {
                next_change = change;
                break;
            }
        }
        if let Some(record) = image {
            bytes.clear();
            write_row(&mut bytes, &record, Some(&created), input.fills);
            out.write_all(&bytes)
                .map_err(|e| csv_err(input.live)(e.into()))?;
            rows += 1;
        }
    }
    Ok(rows)
}

fn field(record: &Record, i: usize) -> String {
    record
        .get(i)
        .map(|(t, _)| t.to_string())
        .unwrap_or_default()
}
