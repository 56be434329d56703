//! Delta checkpoints (PROTOCOL.md, "Checkpoints"): after every tenth version, the table's state
//! at that version as one Parquet file, `_delta_log/<version>.checkpoint.parquet`, and
//! `_last_checkpoint` naming it, so that readers start there instead of replaying every JSON
//! commit. Classic single-file checkpoints, in the layout Spark writes them: one action per row
//! in the columns `txn`, `add`, `remove`, `metaData`, `protocol`, every field nullable, maps
//! with entries named `key_value`/`key`/`value` and lists with elements named `element` (some
//! readers look the fields up by those names).
//!
//! A checkpoint only repeats what the JSON commits already say: one that is missing (a crash
//! or a failure after the commit) costs readers a longer replay, and the next tenth version
//! writes one. Removed files stay in it as tombstones for 7 days, so that a reader's VACUUM
//! spares the files recent versions name.
//!
//! Once retention has deleted a table's first commits, lakelink's own replay starts from its
//! newest checkpoint instead ([`read_actions`]), and only from one lakelink wrote: lakelink
//! writes one only right after its own commit at that version, so no commit of another writer
//! hides behind it, and it knows what its columns hold.

use super::log::{self, TableLog};
use crate::error::EngineError;
use arrow_array::builder::{
    BooleanBuilder, Int32Builder, Int64Builder, ListBuilder, MapBuilder, MapFieldNames,
    StringBuilder,
};
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow_buffer::NullBuffer;
use arrow_schema::{Field, Fields, Schema};
use lakelink_model::lake::{Lake, LakeError};
use lakelink_model::lake_path::{LakePath, TableName};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::Value as Json;
use std::io::Write;
use std::sync::Arc;

/// A checkpoint is written at every version that is a multiple of this.
pub const CHECKPOINT_INTERVAL: u64 = 10;

/// `_delta_log/<version>.checkpoint.parquet`.
pub fn checkpoint_path(table: &TableName, version: u64) -> LakePath {
    LakePath::delta_file(
        table,
        &format!("_delta_log/{version:020}.checkpoint.parquet"),
    )
}

/// How long a removed file stays in checkpoints as a tombstone (Delta's default
/// `delta.deletedFileRetentionDuration`, 7 days), so that a reader's VACUUM spares it.
const TOMBSTONE_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// What a checkpoint lakelink wrote has as its Parquet `created_by`, before its version.
const CREATED_BY: &str = "lakelink ";

/// Whether `version` is due a checkpoint.
pub fn is_due(version: u64) -> bool {
    version > 0 && version.is_multiple_of(CHECKPOINT_INTERVAL)
}

/// Writes the checkpoint of `state` (the table replayed to exactly the version it is due at),
/// then `_last_checkpoint`. A checkpoint file already there is left as it is: one of a
/// reader's leaves `_last_checkpoint` as it is too, one of lakelink's (an attempt whose
/// `_last_checkpoint` write was lost) gets it.
pub fn write(
    lake: &dyn Lake,
    table: &TableName,
    state: &TableLog,
    now: i64,
) -> Result<(), EngineError> {
    let Some(version) = state.version else {
        return Ok(());
    };
    let path = checkpoint_path(table, version);
    let batch = checkpoint_batch(state, now).map_err(|e| EngineError::Manifest {
        path: path.to_string(),
        reason: format!(
            "its actions do not fit a checkpoint ({e}); this is a bug in lakelink, please report it"
        ),
    })?;
    let mut bytes = Vec::new();
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(format!("{CREATED_BY}{}", env!("CARGO_PKG_VERSION")))
        .build();
    let parquet = |e: parquet::errors::ParquetError| EngineError::Manifest {
        path: path.to_string(),
        reason: format!("could not be written as Parquet ({e})"),
    };
    let mut writer =
        ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties)).map_err(parquet)?;
    writer.write(&batch).map_err(parquet)?;
    writer.close().map_err(parquet)?;
    let created = match lake.create(&path) {
        Err(LakeError::AlreadyExists { .. }) => false,
        Err(e) => return Err(e.into()),
        Ok(mut file) => {
            file.write_all(&bytes)
                .map_err(|e| LakeError::io("write", &path, e))?;
            match file.commit() {
                Err(LakeError::AlreadyExists { .. }) => false,
                other => other.map(|()| true)?,
            }
        }
    };
    // One already there is lakelink's own when an attempt stopped before `_last_checkpoint`
    // (it names it then too), or a reader's (left to that reader).
    if created {
        write_last_checkpoint(lake, table, version, batch.num_rows())?;
    } else if let Some(actions) = read_actions(lake, table, version)? {
        write_last_checkpoint(lake, table, version, actions.len())?;
    }
    Ok(())
}

/// `_delta_log/_last_checkpoint`.
fn last_checkpoint_path(table: &TableName) -> LakePath {
    LakePath::delta_file(table, "_delta_log/_last_checkpoint")
}

/// Replaces `_last_checkpoint` with one naming the checkpoint at `version` of `size` actions
/// (after a checkpoint is written, and before retention deletes the one it named).
pub fn write_last_checkpoint(
    lake: &dyn Lake,
    table: &TableName,
    version: u64,
    size: usize,
) -> Result<(), EngineError> {
    let last = serde_json::json!({"version": version, "size": size});
    lake.replace(&last_checkpoint_path(table), last.to_string().as_bytes())?;
    Ok(())
}

/// The version `_last_checkpoint` names, or `None` when there is none or it names none.
pub fn last_checkpoint(lake: &dyn Lake, table: &TableName) -> Result<Option<u64>, EngineError> {
    let path = last_checkpoint_path(table);
    if lake.size(&path)?.is_none() {
        return Ok(None);
    }
    let bytes = lake.read_all(&path)?;
    Ok(serde_json::from_slice::<Json>(&bytes)
        .ok()
        .and_then(|j| j.get("version").and_then(Json::as_u64)))
}

/// The versions of `table`'s single-file checkpoints, in order (other kinds, multi-part or
/// V2, are other writers' and are not listed).
pub fn versions(lake: &dyn Lake, table: &TableName) -> Result<Vec<u64>, EngineError> {
    log::versions_of(lake, table, ".checkpoint.parquet")
}

/// The actions of `table`'s checkpoint at `version`, one JSON object per action as a commit
/// file holds them, or `None` when lakelink did not write it.
pub fn read_actions(
    lake: &dyn Lake,
    table: &TableName,
    version: u64,
) -> Result<Option<Vec<Json>>, EngineError> {
    let path = checkpoint_path(table, version);
    let data = lake.read_all(&path)?;
    let damaged = |e: &dyn std::fmt::Display| EngineError::Manifest {
        path: path.to_string(),
        reason: format!(
            "is not a readable checkpoint ({e}); delete it if the JSON commits it stands for are all there, else restore it from a backup of the lake"
        ),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(data))
        .map_err(|e| damaged(&e))?;
    let ours = builder
        .metadata()
        .file_metadata()
        .created_by()
        .is_some_and(|c| c.starts_with(CREATED_BY));
    if !ours {
        return Ok(None);
    }
    // Each row holds one action, in the column of its kind; the others are null and
    // left out.
    let mut lines = Vec::new();
    let mut writer = arrow_json::LineDelimitedWriter::new(&mut lines);
    for batch in builder.build().map_err(|e| damaged(&e))? {
        writer
            .write(&batch.map_err(|e| damaged(&e))?)
            .map_err(|e| damaged(&e))?;
    }
    writer.finish().map_err(|e| damaged(&e))?;
    drop(writer);
    let mut actions = Vec::new();
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let action: Json = serde_json::from_slice(line).map_err(|e| damaged(&e))?;
        if action.as_object().is_some_and(|o| !o.is_empty()) {
            actions.push(action);
        }
    }
    Ok(Some(actions))
}

/// The names Spark gives a map's entries, which readers look the fields up by.
fn map_names() -> MapFieldNames {
    MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    }
}

/// A map column of string keys and values, one entry per row (`None`: a null map).
fn string_map(rows: &[Option<&Json>]) -> Result<ArrayRef, arrow_schema::ArrowError> {
    let mut b = MapBuilder::new(
        Some(map_names()),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    for row in rows {
        match row.and_then(Json::as_object) {
            Some(map) => {
                for (k, v) in map {
                    b.keys().append_value(k);
                    match v.as_str() {
                        Some(s) => b.values().append_value(s),
                        None if v.is_null() => b.values().append_null(),
                        None => b.values().append_value(v.to_string()),
                    }
                }
                b.append(true)?;
            }
            None => b.append(false)?,
        }
    }
    Ok(Arc::new(b.finish()))
}

fn strings(rows: &[Option<&Json>], field: &str) -> ArrayRef {
    let mut b = StringBuilder::new();
    for row in rows {
        match row.and_then(|r| r.get(field)) {
            Some(Json::String(s)) => b.append_value(s),
            Some(v) if !v.is_null() => b.append_value(v.to_string()),
            _ => b.append_null(),
        }
    }
    Arc::new(b.finish())
}

fn longs(rows: &[Option<&Json>], field: &str) -> ArrayRef {
    let mut b = Int64Builder::new();
    for row in rows {
        b.append_option(row.and_then(|r| r.get(field)).and_then(Json::as_i64));
    }
    Arc::new(b.finish())
}

fn ints(rows: &[Option<&Json>], field: &str) -> ArrayRef {
    let mut b = Int32Builder::new();
    for row in rows {
        b.append_option(
            row.and_then(|r| r.get(field))
                .and_then(Json::as_i64)
                .and_then(|i| i32::try_from(i).ok()),
        );
    }
    Arc::new(b.finish())
}

fn booleans(rows: &[Option<&Json>], field: &str) -> ArrayRef {
    let mut b = BooleanBuilder::new();
    for row in rows {
        b.append_option(row.and_then(|r| r.get(field)).and_then(Json::as_bool));
    }
    Arc::new(b.finish())
}

fn maps(rows: &[Option<&Json>], field: &str) -> Result<ArrayRef, arrow_schema::ArrowError> {
    let values: Vec<Option<&Json>> = rows.iter().map(|r| r.and_then(|r| r.get(field))).collect();
    string_map(&values)
}

fn string_lists(rows: &[Option<&Json>], field: &str) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new()).with_field(Field::new(
        "element",
        arrow_schema::DataType::Utf8,
        true,
    ));
    for row in rows {
        match row.and_then(|r| r.get(field)).and_then(Json::as_array) {
            Some(items) => {
                for item in items {
                    b.values().append_option(item.as_str());
                }
                b.append(true);
            }
            None => b.append(false),
        }
    }
    Arc::new(b.finish())
}

/// A struct column of `children` (name and array), null where `rows` has no action.
fn struct_of(rows: &[Option<&Json>], children: Vec<(&str, ArrayRef)>) -> ArrayRef {
    let fields: Fields = children
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    let arrays = children.into_iter().map(|(_, a)| a).collect();
    let nulls = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<bool>>());
    Arc::new(StructArray::new(fields, arrays, Some(nulls)))
}

/// The checkpoint's rows: the protocol, the metadata, lakelink's transaction, each file, then
/// each file removed in the last 7 days (as of `now`).
fn checkpoint_batch(state: &TableLog, now: i64) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let protocol = log::protocol_action();
    let mut actions: Vec<(&str, &Json)> = vec![("protocol", &protocol["protocol"])];
    if let Some(meta) = &state.metadata {
        actions.push(("metaData", meta));
    }
    if let Some(txn) = &state.txn {
        actions.push(("txn", txn));
    }
    for add in state.files.values() {
        actions.push(("add", add));
    }
    for remove in state.tombstones.values() {
        let when = remove.get("deletionTimestamp").and_then(Json::as_i64);
        if when.is_none_or(|t| t > now - TOMBSTONE_RETENTION_MS) {
            actions.push(("remove", remove));
        }
    }
    let column = |kind: &str| -> Vec<Option<&Json>> {
        actions
            .iter()
            .map(|(k, a)| (*k == kind).then_some(*a))
            .collect()
    };
    let txn = column("txn");
    let add = column("add");
    let remove = column("remove");
    let meta = column("metaData");
    let protocol = column("protocol");
    let format: Vec<Option<&Json>> = meta
        .iter()
        .map(|m| m.and_then(|m| m.get("format")))
        .collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "txn",
            struct_of(
                &txn,
                vec![
                    ("appId", strings(&txn, "appId")),
                    ("version", longs(&txn, "version")),
                    ("lastUpdated", longs(&txn, "lastUpdated")),
                ],
            ),
        ),
        (
            "add",
            struct_of(
                &add,
                vec![
                    ("path", strings(&add, "path")),
                    ("partitionValues", maps(&add, "partitionValues")?),
                    ("size", longs(&add, "size")),
                    ("modificationTime", longs(&add, "modificationTime")),
                    ("dataChange", booleans(&add, "dataChange")),
                    ("stats", strings(&add, "stats")),
                    ("tags", maps(&add, "tags")?),
                ],
            ),
        ),
        (
            "remove",
            struct_of(
                &remove,
                vec![
                    ("path", strings(&remove, "path")),
                    ("deletionTimestamp", longs(&remove, "deletionTimestamp")),
                    ("dataChange", booleans(&remove, "dataChange")),
                    (
                        "extendedFileMetadata",
                        booleans(&remove, "extendedFileMetadata"),
                    ),
                    ("partitionValues", maps(&remove, "partitionValues")?),
                    ("size", longs(&remove, "size")),
                    ("tags", maps(&remove, "tags")?),
                ],
            ),
        ),
        (
            "metaData",
            struct_of(
                &meta,
                vec![
                    ("id", strings(&meta, "id")),
                    ("name", strings(&meta, "name")),
                    ("description", strings(&meta, "description")),
                    (
                        "format",
                        struct_of(
                            &format,
                            vec![
                                ("provider", strings(&format, "provider")),
                                ("options", maps(&format, "options")?),
                            ],
                        ),
                    ),
                    ("schemaString", strings(&meta, "schemaString")),
                    ("partitionColumns", string_lists(&meta, "partitionColumns")),
                    ("configuration", maps(&meta, "configuration")?),
                    ("createdTime", longs(&meta, "createdTime")),
                ],
            ),
        ),
        (
            "protocol",
            struct_of(
                &protocol,
                vec![
                    ("minReaderVersion", ints(&protocol, "minReaderVersion")),
                    ("minWriterVersion", ints(&protocol, "minWriterVersion")),
                ],
            ),
        ),
    ];
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
}
