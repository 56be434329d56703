//! `lakelink read`: what a downstream reader sees of a table, resolved through model.json (or
//! an older published manifest) and printed as CSV with a header row. Rows shorter than the
//! attribute list (written before a column was added) are padded with NULLs.

use super::manifests::{partition_path, read_model};
use crate::error::EngineError;
use lakelink_model::csv_row::{CsvReader, Record, RowWriter};
use lakelink_model::lake::{Lake, LakeError};
use lakelink_model::lake_path::LakePath;
use std::io::Write;

/// Writes table `table` of the lake, as published in `generation` (default: model.json), to
/// `out`. Returns the number of rows.
pub fn read_table(
    lake: &dyn Lake,
    table: &str,
    generation: Option<u64>,
    out: &mut dyn Write,
) -> Result<u64, EngineError> {
    let manifest = generation.map_or_else(LakePath::model, LakePath::published_model);
    if lake.size(&manifest)?.is_none() {
        return Err(EngineError::Manifest {
            path: manifest.to_string(),
            reason: match generation {
                Some(g) => format!("generation {g} is not kept in this lake (see keep_generations)"),
                None => "no snapshot has been published yet; run `lakelink sync` or wait for the agent's next snapshot".into(),
            },
        });
    }
    let model = read_model(lake, &manifest)?;
    let entity = model.entity(table).ok_or_else(|| EngineError::Manifest {
        path: manifest.to_string(),
        reason: format!(
            "has no table {table:?}; it has: {}",
            model
                .entities
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })?;
    let write_err = |e| EngineError::Lake(LakeError::io("write", "standard output", e));
    let width = entity.attributes.len();
    let mut bytes = Vec::new();
    let mut header = RowWriter::new(&mut bytes);
    for a in &entity.attributes {
        header.quoted(&a.name);
    }
    header.finish();
    out.write_all(&bytes).map_err(write_err)?;
    let mut rows = 0;
    let mut record = Record::default();
    for partition in &entity.partitions {
        let path = partition_path(lake, &entity.name, &partition.location);
        let mut reader = CsvReader::new(lake.read(&path, 0, None)?, 0);
        loop {
            let more = reader
                .read_record(&mut record)
                .map_err(|source| EngineError::Csv {
                    path: path.to_string(),
                    source,
                })?;
            if !more {
                break;
            }
            bytes.clear();
            let mut row = RowWriter::new(&mut bytes);
            for i in 0..width.max(record.len()) {
                match record.get(i) {
                    Some((text, quoted)) => row.field(text, quoted),
                    None => row.null(),
                }
            }
            row.finish();
            out.write_all(&bytes).map_err(write_err)?;
            rows += 1;
        }
    }
    out.flush().map_err(write_err)?;
    Ok(rows)
}
