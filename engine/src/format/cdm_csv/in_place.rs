//! An in-place snapshot of one partition: its state at an earlier point (the previous
//! snapshot, or the live file's prefix the initial copy wrote in Id order; see [`MergeBase`])
//! merged with the changes the live file gained since, sorted by Id, keeping each Id's latest
//! image and dropping deleted Ids. Reads the earlier state and the new changes once; memory
//! stays within the sort budget whatever the partition's size. Rows are carried as their bytes
//! ([`RawRow`]): a row that keeps its `SinkCreatedOn` and has every field is written as it was
//! read.

use crate::error::EngineError;
use crate::id_order::{IdKey, Keyed, RawRow, RowReader, SINK_CREATED_ON, SpillSorter};
use lakelink_model::csv_row::{CsvError, CsvReader, Record, RowWriter};
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::LakePath;
use std::io::Write;

/// The partition's state the changes are merged over: rows in strictly increasing Id order,
/// with no delete record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeBase {
    /// None: the changes are the whole state.
    Empty,
    /// The partition's previous snapshot file.
    Snapshot(LakePath),
    /// The live file's first bytes, this many, which the initial copy wrote in Id order
    /// ([`crate::state::LiveFile::id_ordered_len`]).
    LivePrefix(u64),
}

/// Where to read from, and how the table's rows are laid out.
pub struct InPlaceInput<'a> {
    /// The state the changes are merged over.
    pub base: &'a MergeBase,
    /// The live file.
    pub live: &'a LakePath,
    /// Where the changes start in the live file: the previous snapshot's cut, or the end of
    /// the prefix in Id order.
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

/// How many fields a row must have for none of `fills` to be needed.
fn padded_to(fills: &[FilledField]) -> usize {
    fills.last().map_or(0, |f| f.at + 1)
}

/// Writes `row`; `created` replaces its `SinkCreatedOn`; fields the row ends before are
/// filled in from `fills` (empty between them). A row neither changes is copied as its bytes.
fn write_row(
    out: &mut dyn Write,
    row: &RawRow,
    created: Option<&str>,
    fills: &[FilledField],
    scratch: &mut (Record, Vec<u8>),
) -> Result<(), CsvError> {
    let padded_to = padded_to(fills);
    if created.is_none() && row.fields >= padded_to {
        out.write_all(&row.bytes)?;
        return Ok(());
    }
    let (record, bytes) = scratch;
    row.parse(record)?;
    bytes.clear();
    let mut w = RowWriter::new(bytes);
    for (i, (text, quoted)) in record.iter().enumerate() {
        match created {
            Some(created) if i == SINK_CREATED_ON => w.quoted(created),
            _ => w.field(text, quoted),
        }
    }
    for i in record.len()..padded_to {
        match fills.iter().find(|f| f.at == i) {
            Some(f) => w.field(&f.text, f.quoted),
            None => w.null(),
        }
    }
    w.finish();
    out.write_all(bytes)?;
    Ok(())
}

/// The number of live rows when, with no base state, they already are the snapshot: Ids
/// strictly increasing, no delete record, every field there (nothing to fill in). Then the
/// merge would write each row as its bytes, in the order they stand. A copy recorded since
/// the copy's prefix in `Id` order was ([`MergeBase::LivePrefix`]) needs no such scan; this
/// one serves live files of a store from before. `None` as soon as a row says otherwise, so
/// a partition in another order costs a row or two of reading.
fn rows_if_already_in_place(
    lake: &dyn Lake,
    input: &InPlaceInput<'_>,
    from: u64,
    to: u64,
) -> Result<Option<u64>, EngineError> {
    let padded_to = padded_to(input.fills);
    let mut reader = RowReader::new(
        CsvReader::new(lake.read(input.live, from, Some(to))?, from),
        input.is_delete,
        input.integer_ids,
    );
    let mut last: Option<IdKey> = None;
    let mut rows = 0;
    let csv_err = |source| EngineError::Csv {
        path: input.live.to_string(),
        source,
    };
    while let Some((key, fields, deleted)) = reader.next_shape().map_err(csv_err)? {
        if deleted || fields < padded_to || last.as_ref().is_some_and(|l| *l >= key) {
            return Ok(None);
        }
        last = Some(key);
        rows += 1;
    }
    Ok(Some(rows))
}

/// Writes the partition's state at the cut to `out`.
pub fn write_in_place(
    lake: &dyn Lake,
    input: &InPlaceInput<'_>,
    out: &mut dyn Write,
) -> Result<(), EngineError> {
    let (from, to) = (input.from, input.to);
    let as_they_stand = match input.base {
        // The copy's rows in Id order and nothing since: the state is those bytes.
        MergeBase::LivePrefix(len) if from == to && input.fills.is_empty() => Some((0, *len)),
        // Rows appended since that continue the order (an application inserting with a
        // growing key while the table was copied): the whole file, once the new rows are seen
        // to be in order and the file is checked at the seam.
        MergeBase::LivePrefix(_)
            if input.fills.is_empty()
                && rows_if_already_in_place(lake, input, from, to)?.is_some()
                && rows_if_already_in_place(lake, input, 0, to)?.is_some() =>
        {
            Some((0, to))
        }
        MergeBase::Empty if rows_if_already_in_place(lake, input, from, to)?.is_some() => {
            Some((from, to))
        }
        _ => None,
    };
    if let Some((from, to)) = as_they_stand {
        // The same bytes, with no parse and no sort.
        let mut live = lake.read(input.live, from, Some(to))?;
        std::io::copy(&mut live, out).map_err(|e| csv_error(input.live)(e.into()))?;
        return Ok(());
    }
    let mut scratch = (Record::default(), Vec::new());
    merge(lake, input, &mut |row, created| {
        write_row(out, row, created, input.fills, &mut scratch).map_err(csv_error(input.live))
    })?;
    Ok(())
}

/// Calls `visit` with each row of the partition's state at the cut, in Id order, parsed (a row
/// written before a column was added has fewer fields); returns the number of rows.
pub fn visit_in_place(
    lake: &dyn Lake,
    input: &InPlaceInput<'_>,
    visit: &mut dyn FnMut(&Record) -> Result<(), EngineError>,
) -> Result<u64, EngineError> {
    let mut record = Record::default();
    if *input.base == MergeBase::Empty
        && rows_if_already_in_place(lake, input, input.from, input.to)?.is_some()
    {
        // Each live row is in the state, in order: read them as they stand, with no sort.
        let mut live = CsvReader::new(
            lake.read(input.live, input.from, Some(input.to))?,
            input.from,
        );
        let mut rows = 0;
        while live
            .read_record(&mut record)
            .map_err(csv_error(input.live))?
        {
            visit(&record)?;
            rows += 1;
        }
        return Ok(rows);
    }
    merge(lake, input, &mut |row, _| {
        row.parse(&mut record).map_err(csv_error(input.live))?;
        visit(&record)
    })
}

/// Takes one row of a partition's state, parsed, and the `SinkCreatedOn` to write in place of
/// its own (`None`: its own).
pub type VisitStateRow<'v> = dyn FnMut(&Record, Option<&str>) -> Result<(), EngineError> + 'v;

/// Calls `visit` with each row of the merged state, in Id order; returns how many.
pub fn visit_state_rows(
    lake: &dyn Lake,
    input: &InPlaceInput<'_>,
    visit: &mut VisitStateRow<'_>,
) -> Result<u64, EngineError> {
    let mut record = Record::default();
    merge(lake, input, &mut |row, created| {
        row.parse(&mut record).map_err(csv_error(input.live))?;
        visit(&record, created)
    })
}

/// The error for a CSV problem in the file at `path`.
fn csv_error(path: &LakePath) -> impl Fn(CsvError) -> EngineError + use<> {
    let path = path.to_string();
    move |source| EngineError::Csv {
        path: path.clone(),
        source,
    }
}

/// Takes one row of a merged state and the `SinkCreatedOn` to write in place of its own.
type EmitRow<'e> = dyn FnMut(&RawRow, Option<&str>) -> Result<(), EngineError> + 'e;

/// Merges the base with the sorted changes and hands each row of the state at the cut to
/// `emit`, in Id order, with the `SinkCreatedOn` to write in place of its own (`None`:
/// its own); returns the number of rows.
fn merge(
    lake: &dyn Lake,
    input: &InPlaceInput<'_>,
    emit: &mut EmitRow<'_>,
) -> Result<u64, EngineError> {
    let mut sorter = SpillSorter::new(input.sort_budget);
    let mut changes = RowReader::new(
        CsvReader::new(
            lake.read(input.live, input.from, Some(input.to))?,
            input.from,
        ),
        input.is_delete,
        input.integer_ids,
    );
    let mut seq = 0;
    while let Some((key, row)) = changes.next_row().map_err(csv_error(input.live))? {
        sorter
            .push(Keyed { key, seq, row })
            .map_err(csv_error(input.live))?;
        seq += 1;
    }
    let mut sorted = sorter.finish().map_err(csv_error(input.live))?;

    let base = match input.base {
        MergeBase::Empty => None,
        MergeBase::Snapshot(path) => Some((path, lake.read(path, 0, None)?)),
        MergeBase::LivePrefix(len) => Some((input.live, lake.read(input.live, 0, Some(*len))?)),
    };
    let mut previous = base.map(|(path, read)| {
        (
            RowReader::new(CsvReader::new(read, 0), input.is_delete, input.integer_ids),
            path,
        )
    });
    let read_previous = |previous: &mut Option<(RowReader<_>, &LakePath)>| -> Result<Option<(IdKey, RawRow)>, EngineError> {
        match previous {
            Some((reader, path)) => reader.next_row().map_err(csv_error(path)),
            None => Ok(None),
        }
    };

    let mut scratch = Record::default();
    let mut next_previous = read_previous(&mut previous)?;
    let mut next_change = sorted.next_item().map_err(csv_error(input.live))?;
    let mut rows = 0;
    loop {
        let take_previous_only = match (&next_previous, &next_change) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((pk, _)), Some(change)) => *pk < change.key,
        };
        if take_previous_only {
            if let Some((_, row)) = next_previous.take() {
                emit(&row, None)?;
                rows += 1;
            }
            next_previous = read_previous(&mut previous)?;
            continue;
        }
        // Fold every change of this Id over the previous image, in live-file order. The Id's
        // `SinkCreatedOn` is that of the image that created it; `None` while that is the
        // current image itself (read only when an image replaces the one that created it).
        let Some(first) = next_change.take() else {
            break;
        };
        let id = first.key.clone();
        let mut created: Option<String> = None;
        let mut image = match next_previous.take() {
            Some((pk, row)) if pk == id => {
                next_previous = read_previous(&mut previous)?;
                Some(row)
            }
            other => {
                next_previous = other;
                None
            }
        };
        let mut change = Some(first);
        while let Some(c) = change {
            if c.row.is_delete {
                image = None;
                created = None;
            } else {
                if let Some(old) = &image
                    && created.is_none()
                {
                    created = Some(
                        old.sink_created_on(&mut scratch)
                            .map_err(csv_error(input.live))?,
                    );
                }
                image = Some(c.row);
            }
            change = sorted.next_item().map_err(csv_error(input.live))?;
            if change.as_ref().is_some_and(|n| n.key != id) {
                next_change = change;
                break;
            }
        }
        if let Some(row) = image {
            emit(&row, created.as_deref())?;
            rows += 1;
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakelink_connectors::lake::local::LocalLake;

    /// The in-place state of `live` (rows `Id,SinkCreatedOn,x,IsDelete`) with no previous
    /// snapshot.
    fn first_snapshot(live: &str) -> String {
        visited_and_written(None, live).1
    }

    /// What a merge over a base is given: nothing, a previous snapshot's rows, or the live
    /// file's first rows.
    enum Base<'a> {
        Previous(&'a str),
        Prefix(&'a str),
    }

    /// The Ids `visit_in_place` gives for the changes `live` over `base`, and the state
    /// `write_in_place` writes (checked to hold the rows visited).
    fn visited_and_written(base: Option<Base<'_>>, live: &str) -> (Vec<String>, String) {
        let dir = tempfile::tempdir().unwrap();
        let lake = LocalLake::open(dir.path(), None).unwrap();
        let path = LakePath::from_raw("t/1.csv");
        let previous_path = LakePath::from_raw("t/Snapshot/1_1.csv");
        let (merge_base, from) = match base {
            None => (MergeBase::Empty, 0),
            Some(Base::Previous(rows)) => {
                lake.append(&previous_path, 0, rows.as_bytes()).unwrap();
                (MergeBase::Snapshot(previous_path), 0)
            }
            Some(Base::Prefix(rows)) => {
                lake.append(&path, 0, rows.as_bytes()).unwrap();
                let len = rows.len() as u64;
                (MergeBase::LivePrefix(len), len)
            }
        };
        lake.append(&path, from, live.as_bytes()).unwrap();
        let input = InPlaceInput {
            base: &merge_base,
            live: &path,
            from,
            to: from + live.len() as u64,
            is_delete: 3,
            integer_ids: true,
            sort_budget: 1 << 20,
            fills: &[],
        };
        let mut ids = Vec::new();
        let visited = visit_in_place(&lake, &input, &mut |row| {
            ids.push(row.get(0).unwrap().0.to_string());
            Ok(())
        })
        .unwrap();
        let mut out = Vec::new();
        write_in_place(&lake, &input, &mut out).unwrap();
        let mut reader = CsvReader::new(out.as_slice(), 0);
        let mut written_ids = Vec::new();
        let mut record = Record::default();
        while reader.read_record(&mut record).unwrap() {
            written_ids.push(record.get(0).unwrap().0.to_string());
        }
        assert_eq!(visited, written_ids.len() as u64);
        assert_eq!(ids, written_ids);
        (ids, String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_rows_visited_are_the_rows_a_snapshot_writes() {
        // Already in place: the live rows as they stand.
        let (ids, written) = visited_and_written(None, "1,\"c1\",a,\n2,\"c2\",b,\n");
        assert_eq!(ids, ["1", "2"]);
        assert_eq!(written, "1,\"c1\",a,\n2,\"c2\",b,\n");
        // Merged over a previous state: deleted Ids left out, a new one in its place.
        let (ids, written) = visited_and_written(
            Some(Base::Previous("1,\"c1\",a,\n5,\"c5\",e,\n9,\"c9\",i,\n")),
            "5,\"c6\",,True\n3,\"c7\",c,\n9,\"c8\",j,\n",
        );
        assert_eq!(ids, ["1", "3", "9"]);
        assert_eq!(written, "1,\"c1\",a,\n3,\"c7\",c,\n9,\"c9\",j,\n");
    }

    #[test]
    fn the_copys_prefix_in_id_order_is_the_state_with_no_change_after_it() {
        let prefix = "1,\"c1\",\"a, \"\"b\"\"\",\n2,\"c2\",,\n10,\"c3\",\"x\ny\",\n";
        let (ids, written) = visited_and_written(Some(Base::Prefix(prefix)), "");
        assert_eq!(ids, ["1", "2", "10"]);
        assert_eq!(written, prefix);
    }

    #[test]
    fn changes_after_the_copys_prefix_are_merged_over_it_as_over_a_snapshot() {
        // Deleted, updated (keeping the copy's SinkCreatedOn), inserted, and deleted then
        // inserted again (created anew).
        let (ids, written) = visited_and_written(
            Some(Base::Prefix(
                "1,\"c1\",a,\n5,\"c5\",e,\n9,\"c9\",i,\n12,\"c12\",l,\n",
            )),
            "5,\"c6\",,True\n3,\"c7\",c,\n9,\"c8\",j,\n12,\"c13\",,True\n12,\"c14\",m,\n",
        );
        assert_eq!(ids, ["1", "3", "9", "12"]);
        assert_eq!(
            written,
            "1,\"c1\",a,\n3,\"c7\",c,\n9,\"c9\",j,\n12,\"c14\",m,\n"
        );
    }

    #[test]
    fn rows_appended_after_the_copys_prefix_in_id_order_are_written_after_it_as_they_stand() {
        let prefix = "1,\"c1\",a,\n5,\"c5\",e,\n";
        let (ids, written) =
            visited_and_written(Some(Base::Prefix(prefix)), "6,\"c6\",f,\n9,\"c9\",i,\n");
        assert_eq!(ids, ["1", "5", "6", "9"]);
        assert_eq!(written, format!("{prefix}6,\"c6\",f,\n9,\"c9\",i,\n"));
        // Appended in order, but not after the copy's last Id: merged.
        let (ids, _) =
            visited_and_written(Some(Base::Prefix(prefix)), "3,\"c3\",c,\n9,\"c9\",i,\n");
        assert_eq!(ids, ["1", "3", "5", "9"]);
    }

    #[test]
    fn a_column_added_after_the_copy_is_filled_in_for_the_prefixs_rows() {
        let dir = tempfile::tempdir().unwrap();
        let lake = LocalLake::open(dir.path(), None).unwrap();
        let path = LakePath::from_raw("t/1.csv");
        // Two rows the copy wrote before the column was added, one trickled in after it.
        let prefix = "1,\"c1\",a,\n2,\"c2\",b,\n";
        lake.append(&path, 0, prefix.as_bytes()).unwrap();
        let len = prefix.len() as u64;
        for (after, want) in [
            ("", "1,\"c1\",a,,7\n2,\"c2\",b,,7\n"),
            (
                "3,\"c3\",c,,8\n",
                "1,\"c1\",a,,7\n2,\"c2\",b,,7\n3,\"c3\",c,,8\n",
            ),
        ] {
            let to = len + after.len() as u64;
            if !after.is_empty() {
                lake.append(&path, len, after.as_bytes()).unwrap();
            }
            let fills = [FilledField {
                at: 4,
                text: "7".into(),
                quoted: false,
            }];
            let input = InPlaceInput {
                base: &MergeBase::LivePrefix(len),
                live: &path,
                from: len,
                to,
                is_delete: 3,
                integer_ids: true,
                sort_budget: 1 << 20,
                fills: &fills,
            };
            let mut out = Vec::new();
            write_in_place(&lake, &input, &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn live_rows_already_in_id_order_are_the_snapshot_as_they_stand() {
        let live = "1,\"c1\",\"a, \"\"b\"\"\",\n2,\"c2\",,\n10,\"c3\",\"x\ny\",\n";
        assert_eq!(first_snapshot(live), live);
    }

    #[test]
    fn live_rows_out_of_order_or_with_deletes_or_repeats_are_merged() {
        // Out of order: sorted by Id (numerically).
        assert_eq!(
            first_snapshot("10,\"c1\",a,\n2,\"c2\",b,\n"),
            "2,\"c2\",b,\n10,\"c1\",a,\n"
        );
        // In order but a delete record: the Id is gone.
        assert_eq!(
            first_snapshot("1,\"c1\",a,\n2,\"c2\",b,\n3,\"c3\",,True\n"),
            "1,\"c1\",a,\n2,\"c2\",b,\n"
        );
        // An Id twice: its latest image, created when it first was.
        assert_eq!(
            first_snapshot("1,\"c1\",a,\n1,\"c2\",b,\n"),
            "1,\"c1\",b,\n"
        );
    }
}
