//! `lakelink read` of a Delta table: the table at the version a generation recorded (default:
//! the newest), printed as CSV with a header row in the live files' encoding (LAKE_FORMAT §4).
//! A value kept in an original-text column is printed as the live-file field it holds. Each data file is read
//! whole (at most about 128 MiB: `data_file.rs` caps them).

use super::column_builder::date_text;
use super::columns::{ORIGINAL_TEXT_SUFFIX, field_of_original};
use super::{generations, log};
use crate::error::EngineError;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lakelink_model::csv_row::RowWriter;
use lakelink_model::datetime::UtcDateTime;
use lakelink_model::lake::{Lake, LakeError};
use lakelink_model::lake_path::{LakePath, TableName};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::io::Write;

/// Writes table `table` as published in `generation` (default: the newest) to `out`.
pub fn read_table(
    lake: &dyn Lake,
    table: &str,
    generation: Option<u64>,
    out: &mut dyn Write,
) -> Result<u64, EngineError> {
    let dir = LakePath::delta_generations_dir();
    let generation = match generation {
        Some(g) => g,
        None => generations::recorded(lake)?
            .first()
            .copied()
            .ok_or_else(|| EngineError::Manifest {
                path: dir.to_string(),
                reason: "no snapshot has been published yet; run `lakelink sync` or wait for the agent's next snapshot".into(),
            })?,
    };
    let record = generations::read(lake, generation)?.ok_or_else(|| EngineError::Manifest {
        path: LakePath::delta_generation(generation).to_string(),
        reason: format!("generation {generation} is not kept in this lake (see keep_generations)"),
    })?;
    let Some(&version) = record.tables.get(table) else {
        return Err(EngineError::Manifest {
            path: LakePath::delta_generation(generation).to_string(),
            reason: format!(
                "has no table {table:?}; it has: {}",
                record.tables.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    };
    let name = TableName::new(table).map_err(|e| EngineError::Manifest {
        path: dir.to_string(),
        reason: e.to_string(),
    })?;
    let state = log::replay(lake, &name, Some(version))?;
    // Every column but the partition column and the original-text column of another.
    let names: Vec<&str> = state.schema.iter().map(|(n, _)| n.as_str()).collect();
    let shown: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| *n != log::PARTITION_COLUMN)
        .filter(|n| {
            n.strip_suffix(ORIGINAL_TEXT_SUFFIX)
                .is_none_or(|base| !names.contains(&base))
        })
        .collect();
    let write_err = |e| EngineError::Lake(LakeError::io("write", "standard output", e));
    let mut bytes = Vec::new();
    let mut header = RowWriter::new(&mut bytes);
    for n in &shown {
        header.quoted(n);
    }
    header.finish();
    out.write_all(&bytes).map_err(write_err)?;
    let mut files: Vec<(&str, Option<&str>)> = state
        .files
        .iter()
        .map(|(path, add)| (path.as_str(), log::partition_of(add)))
        .collect();
    files.sort_by_key(|(path, partition)| (*partition, file_order(path)));
    let mut rows = 0;
    for (inside, _) in files {
        let path = LakePath::delta_file(&name, inside);
        let data = lake.read_all(&path)?;
        let damaged = |e: &dyn std::fmt::Display| EngineError::Manifest {
            path: path.to_string(),
            reason: format!(
                "is not a whole Parquet file ({e}); restore it from a backup of the lake, or relink the table to write it afresh"
            ),
        };
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(data))
            .and_then(|b| b.build())
            .map_err(|e| damaged(&e))?;
        for batch in reader {
            let batch = batch.map_err(|e| damaged(&e))?;
            rows += write_batch(&batch, &shown, out).map_err(write_err)?;
        }
    }
    out.flush().map_err(write_err)?;
    Ok(rows)
}

/// A data file's place among its partition's files: `T<generation>-<n>.parquet` by number.
fn file_order(path: &str) -> (u64, u64, String) {
    let name = path.rsplit('/').next().unwrap_or(path);
    let numbers = name
        .strip_prefix('T')
        .and_then(|r| r.strip_suffix(".parquet"))
        .and_then(|r| r.split_once('-'))
        .and_then(|(g, n)| Some((g.parse().ok()?, n.parse().ok()?)));
    let (g, n) = numbers.unwrap_or((u64::MAX, u64::MAX));
    (g, n, name.to_string())
}

/// A shown column's typed array and its original-text array, where the file has them.
type TypedAndOriginal<'a> = (Option<&'a dyn Array>, Option<&'a dyn Array>);

/// Writes each row of `batch` as the columns `shown`; returns how many.
fn write_batch(batch: &RecordBatch, shown: &[&str], out: &mut dyn Write) -> std::io::Result<u64> {
    let columns: Vec<TypedAndOriginal<'_>> = shown
        .iter()
        .map(|n| {
            let original = format!("{n}{ORIGINAL_TEXT_SUFFIX}");
            (
                batch.column_by_name(n).map(|a| a.as_ref()),
                batch.column_by_name(&original).map(|a| a.as_ref()),
            )
        })
        .collect();
    let mut bytes = Vec::new();
    for i in 0..batch.num_rows() {
        bytes.clear();
        let mut row = RowWriter::new(&mut bytes);
        for (typed, original) in &columns {
            if let Some(o) = original
                && o.is_valid(i)
            {
                let (text, quoted) = field_of_original(o.as_string::<i32>().value(i));
                row.field(&text, quoted);
                continue;
            }
            match typed {
                Some(a) if a.is_valid(i) => write_cell(&mut row, *a, i),
                _ => row.null(),
            }
        }
        row.finish();
        out.write_all(&bytes)?;
    }
    Ok(batch.num_rows() as u64)
}

/// Writes value `i` of `array` in the live files' encoding.
fn write_cell(row: &mut RowWriter<'_>, array: &dyn Array, i: usize) {
    match array.data_type() {
        DataType::Int64 => {
            row.raw(itoa::Buffer::new().format(array.as_primitive::<Int64Type>().value(i)))
        }
        DataType::Float64 => {
            let f = array.as_primitive::<Float64Type>().value(i);
            let text = if f.is_nan() {
                "NaN".to_string()
            } else if f.is_infinite() {
                if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
            } else {
                format!("{f:?}")
            };
            row.raw(&text);
        }
        DataType::Decimal128(_, scale) => {
            let v = array.as_primitive::<Decimal128Type>().value(i);
            row.raw(&decimal_text(v, *scale));
        }
        DataType::Boolean => row.raw(if array.as_boolean().value(i) {
            "True"
        } else {
            "False"
        }),
        DataType::Date32 => match date_text(array.as_primitive::<Date32Type>().value(i)) {
            Some(text) => row.quoted(&text),
            None => row.null(),
        },
        DataType::Timestamp(_, _) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(i);
            let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            row.quoted(&UtcDateTime::from_offset(at).to_lake_text());
        }
        DataType::Utf8 => row.quoted(array.as_string::<i32>().value(i)),
        DataType::Binary => row.quoted(&BASE64.encode(array.as_binary::<i32>().value(i))),
        _ => row.null(),
    }
}

/// The plain text of an unscaled decimal at `scale`: `-12.340`.
fn decimal_text(unscaled: i128, scale: i8) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let scale = usize::try_from(scale).unwrap_or(0);
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_print_at_their_scale() {
        assert_eq!(decimal_text(1234, 2), "12.34");
        assert_eq!(decimal_text(-5, 3), "-0.005");
        assert_eq!(decimal_text(7, 0), "7");
        assert_eq!(file_order("PartitionId=1/T12-3.parquet").0, 12);
    }
}
