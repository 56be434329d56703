//! A Delta table's transaction log (`_delta_log/`, PROTOCOL.md): replayed to the table's state
//! at a version, and extended by one commit, the create-only write of the next
//! `<version>.json`.
//!
//! Written by hand against the protocol rather than through the `deltalake` or `delta_kernel`
//! crates: `deltalake` stores through the async `object_store` interface under an ambient Tokio
//! runtime and needs modification times that the [`Lake`] contract does not carry, and
//! `delta_kernel`'s write path is unstable (0.x, behind `internal-api`). A commit is a
//! create-only file, which both of lakelink's lakes already make atomic (a hard link locally,
//! If-None-Match on ADLS); the actions are a few JSON objects.

use super::checkpoint;
use super::columns::DeltaType;
use crate::error::EngineError;
use lakelink_model::lake::{Lake, LakeError};
use lakelink_model::lake_path::{LakePath, TableName};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};

/// The transaction identifier lakelink commits under (a `txn` action's `appId`); its
/// `version` is the lakelink generation the commit belongs to.
pub const APP_ID: &str = "lakelink";

/// The protocol lakelink writes: the oldest readers and writers read it (no deletion vectors,
/// no column mapping, no `timestamp_ntz`).
pub const MIN_READER_VERSION: u64 = 1;
/// See [`MIN_READER_VERSION`].
pub const MIN_WRITER_VERSION: u64 = 2;

/// The table property naming the link the table's rows belong to: a relinked table (a fresh
/// initial copy, new live files) starts its Delta table over.
pub const LINK_PROPERTY: &str = "lakelink.link";

/// The partition column every table has.
pub const PARTITION_COLUMN: &str = "PartitionId";

/// A table's state at a version: what a reader of that version sees.
#[derive(Debug, Clone, Default)]
pub struct TableLog {
    /// The version replayed to, or `None` when the table has no commit yet.
    pub version: Option<u64>,
    /// The schema's columns and their types, in order.
    pub schema: Vec<(String, DeltaType)>,
    /// The table's metaData `id`.
    pub table_id: Option<String>,
    /// The data files of the version, by path, as their `add` actions.
    pub files: BTreeMap<String, Json>,
    /// The files removed and not added again, by path, as their `remove` actions: the
    /// tombstones a checkpoint carries while they are recent.
    pub tombstones: BTreeMap<String, Json>,
    /// The link (`lakelink.link` in the metaData's configuration) the table's rows belong to.
    pub link: Option<i64>,
    /// The newest `metaData` action.
    pub metadata: Option<Json>,
    /// lakelink's newest `txn` action.
    pub txn: Option<Json>,
    /// The table's properties (the metaData's configuration).
    pub configuration: Map<String, Json>,
    /// When the table was created (the metaData's `createdTime`).
    pub created_time: Option<i64>,
    /// The newest commit of another writer that changed files or schema after lakelink's last
    /// commit, if any.
    pub foreign: Option<u64>,
}

impl TableLog {
    /// The data files of `partition`.
    pub fn files_of<'a>(&'a self, partition: &'a str) -> impl Iterator<Item = (&'a str, &'a Json)> {
        self.files
            .iter()
            .filter(move |(_, add)| partition_of(add) == Some(partition))
            .map(|(path, add)| (path.as_str(), add))
    }
}

/// The `PartitionId` of an `add` action.
pub fn partition_of(add: &Json) -> Option<&str> {
    add.get("partitionValues")?.get(PARTITION_COLUMN)?.as_str()
}

/// A tag lakelink set on an `add` action.
pub fn tag<'a>(add: &'a Json, name: &str) -> Option<&'a str> {
    add.get("tags")?.get(name)?.as_str()
}

/// The versions of the commits in `table`'s log, in order.
pub fn versions(lake: &dyn Lake, table: &TableName) -> Result<Vec<u64>, EngineError> {
    versions_of(lake, table, ".json")
}

/// The versions of the files in `table`'s `_delta_log` named `<20 digits><suffix>`, in order.
pub fn versions_of(
    lake: &dyn Lake,
    table: &TableName,
    suffix: &str,
) -> Result<Vec<u64>, EngineError> {
    let dir = LakePath::delta_file(table, "_delta_log");
    let mut versions: Vec<u64> = lake
        .list(&dir)?
        .into_iter()
        .filter(|e| !e.is_dir)
        .filter_map(|e| {
            let digits = e.path.file_name().strip_suffix(suffix)?;
            (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse().ok())
                .flatten()
        })
        .collect();
    versions.sort_unstable();
    Ok(versions)
}

/// Replays `table`'s log up to `upto` (default: its newest commit).
pub fn replay(
    lake: &dyn Lake,
    table: &TableName,
    upto: Option<u64>,
) -> Result<TableLog, EngineError> {
    let log = replay_onto(lake, table, TableLog::default(), upto)?;
    if let Some(u) = upto
        && log.version != Some(u)
    {
        return Err(EngineError::Manifest {
            path: LakePath::delta_commit(table, u).to_string(),
            reason: format!(
                "version {u} of the table is not in its log (its newest is {:?}); read a generation the lake keeps",
                log.version
            ),
        });
    }
    Ok(log)
}

/// Replays the commits of `table`'s log past `base` (a replay of its first versions) up to
/// `upto`. Starts afresh when the log no longer goes on from `base`: from version 0, or, once
/// retention has deleted the first commits, from lakelink's newest checkpoint at or before
/// `upto` that the commits after it go on from.
pub fn replay_onto(
    lake: &dyn Lake,
    table: &TableName,
    base: TableLog,
    upto: Option<u64>,
) -> Result<TableLog, EngineError> {
    let versions = versions(lake, table)?;
    let goes_on = |v: u64| {
        versions.first().is_some_and(|first| *first <= v + 1)
            && versions.last().is_some_and(|last| *last >= v)
    };
    let mut log = match base.version {
        Some(v) if goes_on(v) && upto.is_none_or(|u| u >= v) => base,
        _ => TableLog::default(),
    };
    if log.version.is_none() && versions.first().is_some_and(|first| *first > 0) {
        log = from_checkpoint(lake, table, &versions, upto)?;
    }
    let mut expected = log.version.map_or(0, |v| v + 1);
    for version in versions {
        if log.version.is_some_and(|v| version <= v) {
            continue;
        }
        if upto.is_some_and(|u| version > u) {
            break;
        }
        let path = LakePath::delta_commit(table, version);
        if version != expected {
            return Err(EngineError::Manifest {
                path: path.to_string(),
                reason: format!(
                    "the table's log lacks version {expected} (lakelink reads its Delta tables from version 0 or from a checkpoint it wrote; restore the missing commits, or relink the table to write it afresh)"
                ),
            });
        }
        let actions = read_commit(lake, &path)?;
        apply_commit(&mut log, version, &actions, &path)?;
        log.version = Some(version);
        expected += 1;
    }
    Ok(log)
}

/// Applies the actions of commit `version`, read from `path`.
fn apply_commit(
    log: &mut TableLog,
    version: u64,
    actions: &[Json],
    path: &LakePath,
) -> Result<(), EngineError> {
    let ours = actions.iter().any(|a| lakelink_txn(a).is_some());
    let changes_table = actions.iter().any(|a| {
        ["add", "remove", "metaData", "protocol"]
            .iter()
            .any(|k| a.get(k).is_some())
    });
    for action in actions {
        apply(log, action, path)?;
    }
    // A commit of another writer that changes files or schema since lakelink's last one
    // (a compaction, a DELETE): what lakelink writes next could no longer be exact.
    if ours {
        log.foreign = None;
    } else if changes_table {
        log.foreign = Some(version);
    }
    Ok(())
}

/// The table's state at lakelink's newest checkpoint at or before `upto` that the commits in
/// `versions` go on from.
fn from_checkpoint(
    lake: &dyn Lake,
    table: &TableName,
    versions: &[u64],
    upto: Option<u64>,
) -> Result<TableLog, EngineError> {
    let first = versions.first().copied().unwrap_or(0);
    for version in checkpoint::versions(lake, table)?.into_iter().rev() {
        if upto.is_some_and(|u| version > u) || version + 1 < first {
            continue;
        }
        let Some(actions) = checkpoint::read_actions(lake, table, version)? else {
            continue;
        };
        let mut log = TableLog::default();
        let path = checkpoint::checkpoint_path(table, version);
        for action in &actions {
            apply(&mut log, action, &path)?;
        }
        log.version = Some(version);
        return Ok(log);
    }
    Err(EngineError::Manifest {
        path: LakePath::delta_commit(table, first.saturating_sub(1)).to_string(),
        reason: format!(
            "is not in the table's log, which starts at version {first} with no checkpoint of lakelink's to start from{}; restore the missing commits, or relink the table to write it afresh",
            upto.map(|u| format!(" at or before version {u}"))
                .unwrap_or_default()
        ),
    })
}

/// lakelink's `txn` action, if `action` is one.
fn lakelink_txn(action: &Json) -> Option<&Json> {
    action
        .get("txn")
        .filter(|t| t.get("appId").and_then(Json::as_str) == Some(APP_ID))
}

/// The generation of lakelink's newest commit to `table`, read from its newest commits back,
/// without replaying the log.
pub fn last_generation(lake: &dyn Lake, table: &TableName) -> Result<Option<u64>, EngineError> {
    for version in versions(lake, table)?.into_iter().rev() {
        let path = LakePath::delta_commit(table, version);
        for action in read_commit(lake, &path)? {
            if let Some(txn) = lakelink_txn(&action) {
                return Ok(txn.get("version").and_then(Json::as_u64));
            }
        }
    }
    Ok(None)
}

/// The error for a table another writer changed since lakelink's last commit.
pub fn foreign_commit(table: &TableName, version: u64) -> EngineError {
    EngineError::Manifest {
        path: LakePath::delta_commit(table, version).to_string(),
        reason: "was committed by another writer and changes the table's files or schema (an OPTIMIZE, DELETE, MERGE or ALTER from another engine); lakelink must be the only writer of its Delta tables, or its next commit could double or lose rows: relink the table to write it afresh".into(),
    }
}

/// The actions of one commit file.
pub fn read_commit(lake: &dyn Lake, path: &LakePath) -> Result<Vec<Json>, EngineError> {
    let mut actions = Vec::new();
    for line in lake.read(path, 0, None)?.lines() {
        let line = line.map_err(|e| LakeError::io("read", path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let action: Json = serde_json::from_str(&line).map_err(|e| EngineError::Manifest {
            path: path.to_string(),
            reason: format!("a line is not a Delta action ({e}); restore the file"),
        })?;
        actions.push(action);
    }
    Ok(actions)
}

/// Applies one action to the state.
fn apply(log: &mut TableLog, action: &Json, path: &LakePath) -> Result<(), EngineError> {
    if let Some(add) = action.get("add") {
        if let Some(p) = add.get("path").and_then(Json::as_str) {
            log.tombstones.remove(p);
            log.files.insert(p.to_string(), add.clone());
        }
    } else if let Some(remove) = action.get("remove") {
        if let Some(p) = remove.get("path").and_then(Json::as_str) {
            log.files.remove(p);
            log.tombstones.insert(p.to_string(), remove.clone());
        }
    } else if let Some(meta) = action.get("metaData") {
        log.table_id = meta.get("id").and_then(Json::as_str).map(str::to_string);
        log.metadata = Some(meta.clone());
        log.created_time = meta.get("createdTime").and_then(Json::as_i64);
        log.configuration = meta
            .get("configuration")
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default();
        log.link = log
            .configuration
            .get(LINK_PROPERTY)
            .and_then(Json::as_str)
            .and_then(|l| l.parse().ok());
        log.schema = schema_of(meta).ok_or_else(|| EngineError::Manifest {
            path: path.to_string(),
            reason: "its metaData has a schema lakelink does not write (a reader changed the table's schema? relink the table)".into(),
        })?;
    } else if let Some(txn) = lakelink_txn(action) {
        log.txn = Some(txn.clone());
    } else if let Some(protocol) = action.get("protocol") {
        let reader = protocol.get("minReaderVersion").and_then(Json::as_u64);
        let writer = protocol.get("minWriterVersion").and_then(Json::as_u64);
        if reader > Some(MIN_READER_VERSION) || writer > Some(MIN_WRITER_VERSION) {
            return Err(EngineError::Manifest {
                path: path.to_string(),
                reason: format!(
                    "raises the table's protocol to reader {reader:?} / writer {writer:?}, beyond what lakelink writes (1 / 2); relink the table"
                ),
            });
        }
    }
    Ok(())
}

/// The columns of a metaData action's `schemaString`.
fn schema_of(meta: &Json) -> Option<Vec<(String, DeltaType)>> {
    let schema: Json = serde_json::from_str(meta.get("schemaString")?.as_str()?).ok()?;
    schema
        .get("fields")?
        .as_array()?
        .iter()
        .map(|f| {
            let name = f.get("name")?.as_str()?.to_string();
            let ty = DeltaType::from_schema_name(f.get("type")?.as_str()?)?;
            Some((name, ty))
        })
        .collect()
}

/// A `schemaString` of `columns`, each nullable.
pub fn schema_string(columns: &[(String, DeltaType)]) -> String {
    let fields: Vec<Json> = columns
        .iter()
        .map(|(name, ty)| {
            serde_json::json!({
                "name": name,
                "type": ty.schema_name(),
                "nullable": true,
                "metadata": {},
            })
        })
        .collect();
    serde_json::json!({"type": "struct", "fields": fields}).to_string()
}

/// A `metaData` action for a table named `name` with `columns`, holding the rows of `link`,
/// keeping the properties `configuration` the table had (a reader's retention settings).
pub fn metadata_action(
    name: &str,
    id: &str,
    columns: &[(String, DeltaType)],
    link: i64,
    mut configuration: Map<String, Json>,
    created: i64,
) -> Json {
    configuration.insert(LINK_PROPERTY.into(), Json::from(link.to_string()));
    // Other engines delete JSON commits older than a checkpoint after their own commits (a
    // reader's VACUUM) unless told not to; lakelink replays its tables from version 0.
    configuration.insert("delta.enableExpiredLogCleanup".into(), Json::from("false"));
    serde_json::json!({"metaData": {
        "id": id,
        "name": name,
        "format": {"provider": "parquet", "options": {}},
        "schemaString": schema_string(columns),
        "partitionColumns": [PARTITION_COLUMN],
        "configuration": configuration,
        "createdTime": created,
    }})
}

/// The `protocol` action of a table's first commit.
pub fn protocol_action() -> Json {
    serde_json::json!({"protocol": {
        "minReaderVersion": MIN_READER_VERSION,
        "minWriterVersion": MIN_WRITER_VERSION,
    }})
}

/// Writes commit `version` of `table` holding `actions`, create-only: a version another
/// writer committed first is never replaced.
pub fn commit(
    lake: &dyn Lake,
    table: &TableName,
    version: u64,
    actions: &[Json],
) -> Result<(), EngineError> {
    let path = LakePath::delta_commit(table, version);
    let mut text = Vec::new();
    for action in actions {
        serde_json::to_writer(&mut text, action).map_err(|e| EngineError::Manifest {
            path: path.to_string(),
            reason: format!("could not write an action: {e}"),
        })?;
        text.push(b'\n');
    }
    let taken = || {
        EngineError::Manifest {
        path: path.to_string(),
        reason: "another writer committed this version first; lakelink must be the only writer of its Delta tables: stop the other writer, then relink the table".into(),
    }
    };
    let mut file = match lake.create(&path) {
        Err(LakeError::AlreadyExists { .. }) => return Err(taken()),
        other => other?,
    };
    file.write_all(&text)
        .map_err(|e| LakeError::io("write", &path, e))?;
    match file.commit() {
        Err(LakeError::AlreadyExists { .. }) => Err(taken()),
        other => Ok(other?),
    }
}

/// An `add` action of a data file.
pub fn add_action(
    path: &str,
    partition: &str,
    size: u64,
    stats: &str,
    tags: Map<String, Json>,
    now: i64,
) -> Json {
    serde_json::json!({"add": {
        "path": path,
        "partitionValues": {PARTITION_COLUMN: partition},
        "size": size,
        "modificationTime": now,
        "dataChange": true,
        "stats": stats,
        "tags": tags,
    }})
}

/// A `remove` action of a data file its `add` action named.
pub fn remove_action(add: &Json, now: i64) -> Json {
    serde_json::json!({"remove": {
        "path": add.get("path").cloned().unwrap_or(Json::Null),
        "deletionTimestamp": now,
        "dataChange": true,
        "extendedFileMetadata": true,
        "partitionValues": add.get("partitionValues").cloned().unwrap_or_else(|| Json::Object(Map::new())),
        "size": add.get("size").cloned().unwrap_or(Json::Null),
        "tags": add.get("tags").cloned().unwrap_or_else(|| Json::Object(Map::new())),
    }})
}
