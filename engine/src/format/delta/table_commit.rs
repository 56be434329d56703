//! One table's part of a generation: the columns its data files are written in, and its commit
//! (the actions that publish the partitions staged for it, its schema when columns were added,
//! the removal of an earlier link's files).

use super::columns::{ColumnRole, DeltaColumn, DeltaType, column_name, original_text_name};
use super::data_file::{Layout, WrittenFile};
use super::log::{self, TableLog};
use crate::error::EngineError;
use crate::linked_table::LinkedTable;
use lakelink_model::FieldKind;
use lakelink_model::change::Position;
use lakelink_model::lake::Lake;
use serde_json::{Map, Value as Json};
use std::collections::HashSet;

/// The `add` tag that records how far into its partition's live file a data file's rows reach.
pub const LIVE_LENGTH_TAG: &str = "lakelink.liveLength";

/// A partition's files written for a generation, waiting for its table's commit.
pub struct Staged {
    /// The generation they belong to.
    pub generation: u64,
    /// The link they were written for.
    pub link: i64,
    /// The partition.
    pub partition: String,
    /// The files, committed create-only and named by no commit yet.
    pub files: Vec<WrittenFile>,
    /// The `add` actions of the files the new ones replace.
    pub removes: Vec<Json>,
    /// The live-file length the new files reach.
    pub live_length: u64,
    /// The columns the files were written in.
    pub layout: Layout,
}

/// Whether `state` holds an earlier link of `table` (or nothing yet): then its files and
/// columns are not this link's, and the next commit starts the table over.
pub fn is_fresh(state: &TableLog, table: &LinkedTable) -> bool {
    state.link != Some(table.record.link)
}

/// The columns `table`'s data files are written in: the columns its Delta table already has
/// (`existing`), in their order, then its attributes the table lacks (columns added to the
/// source).
pub fn layout(table: &LinkedTable, existing: &[(String, DeltaType)]) -> Layout {
    let attributes = table.attributes();
    let integer_ids = table.record.schema.id_kind() == FieldKind::Integer;
    let mut columns = Vec::new();
    for (name, ty) in existing {
        if let Some(at) = attributes.iter().position(|a| column_name(a) == *name) {
            columns.push(DeltaColumn {
                name: name.clone(),
                ty: *ty,
                role: ColumnRole::Attribute(at),
            });
        } else if let Some(at) = attributes
            .iter()
            .position(|a| original_text_name(a) == *name)
        {
            columns.push(DeltaColumn {
                name: name.clone(),
                ty: DeltaType::String,
                role: ColumnRole::OriginalText(at),
            });
        }
    }
    for (at, a) in attributes.iter().enumerate() {
        let name = column_name(a);
        if !existing.iter().any(|(n, _)| *n == name) {
            columns.push(DeltaColumn {
                name,
                ty: DeltaType::of(a, integer_ids),
                role: ColumnRole::Attribute(at),
            });
        }
    }
    Layout { columns }
}

/// The table's schema after a commit whose files were written in `layouts`: the columns it
/// had, in order, then every new one (the partition column follows the first commit's
/// attributes).
fn schema_after(
    existing: &[(String, DeltaType)],
    base: &Layout,
    layouts: &[&Layout],
) -> Vec<(String, DeltaType)> {
    let mut schema = existing.to_vec();
    let push = |name: &str, ty: DeltaType, schema: &mut Vec<(String, DeltaType)>| {
        if !schema.iter().any(|(n, _)| n == name) {
            schema.push((name.to_string(), ty));
        }
    };
    for c in &base.columns {
        push(&c.name, c.ty, &mut schema);
    }
    push(log::PARTITION_COLUMN, DeltaType::String, &mut schema);
    for layout in layouts {
        for c in &layout.columns {
            push(&c.name, c.ty, &mut schema);
        }
    }
    schema
}

/// The error for a schema with two columns whose names differ only in case (a source column
/// named like one lakelink adds, such as `x__lakelink_text` beside `x`'s kept values).
fn clashing_names(table: &LinkedTable, schema: &[(String, DeltaType)]) -> Option<EngineError> {
    let mut seen = HashSet::new();
    let clash = schema
        .iter()
        .find(|(name, _)| !seen.insert(name.to_lowercase()))?;
    Some(EngineError::Link {
        table: table.name().as_str().to_string(),
        reason: format!(
            "its Delta table would have two columns named {:?} (Delta column names are case-insensitive, and lakelink names columns <name>__source and <name>__lakelink_text); rename the source column, or link the table into a lake of format \"csv\"",
            clash.0
        ),
    })
}

/// Commits `table`'s `staged` partitions of `generation` on top of `state` (its replayed
/// log), or nothing when neither its rows nor its columns changed; returns its version after.
pub fn commit_table(
    lake: &dyn Lake,
    table: &LinkedTable,
    state: &TableLog,
    staged: &[Staged],
    generation: u64,
    position: Position,
    now: i64,
) -> Result<Option<u64>, EngineError> {
    let name = table.name();
    let fresh = is_fresh(state, table);
    if !fresh && let Some(version) = state.foreign {
        return Err(log::foreign_commit(name, version));
    }
    // A table relinked since its last commit starts over: every file of the old link goes,
    // and its schema is the new link's.
    let existing: &[(String, DeltaType)] = if fresh { &[] } else { &state.schema };
    let base = layout(table, existing);
    let layouts: Vec<&Layout> = staged.iter().map(|s| &s.layout).collect();
    let schema = schema_after(existing, &base, &layouts);
    if let Some(e) = clashing_names(table, &schema) {
        return Err(e);
    }
    let mut actions = vec![serde_json::json!({"commitInfo": {
        "timestamp": now,
        "operation": "WRITE",
        "operationParameters": {"mode": "Append"},
        "engineInfo": format!("lakelink/{}", env!("CARGO_PKG_VERSION")),
        "isBlindAppend": false,
        "lakelink": {"generation": generation, "position": position.0},
    }})];
    if state.version.is_none() {
        actions.push(log::protocol_action());
    }
    // The table's properties carry over, but for one a relink's removal of the earlier
    // link's files would break (only another writer sets it, on a table lakelink starts over).
    let mut configuration = state.configuration.clone();
    if fresh {
        configuration.remove("delta.appendOnly");
    }
    if fresh || schema != state.schema {
        let id = state
            .table_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        actions.push(log::metadata_action(
            name.as_str(),
            &id,
            &schema,
            table.record.link,
            configuration,
            state.created_time.unwrap_or(now),
        ));
    }
    let old_link_files: Vec<&Json> = match fresh {
        true => state.files.values().collect(),
        false => Vec::new(),
    };
    let removes = old_link_files.len() + staged.iter().map(|s| s.removes.len()).sum::<usize>();
    let adds: usize = staged.iter().map(|s| s.files.len()).sum();
    if actions.len() == 1 && removes + adds == 0 {
        return Ok(state.version);
    }
    actions.push(serde_json::json!({"txn": {
        "appId": log::APP_ID,
        "version": generation,
        "lastUpdated": now,
    }}));
    for add in old_link_files {
        actions.push(log::remove_action(add, now));
    }
    for s in staged {
        for remove in &s.removes {
            actions.push(log::remove_action(remove, now));
        }
        for f in &s.files {
            let mut tags = Map::new();
            tags.insert(
                LIVE_LENGTH_TAG.into(),
                Json::from(s.live_length.to_string()),
            );
            actions.push(log::add_action(
                &f.path,
                &s.partition,
                f.size,
                &f.stats,
                tags,
                now,
            ));
        }
    }
    let version = state.version.map_or(0, |v| v + 1);
    log::commit(lake, name, version, &actions)?;
    Ok(Some(version))
}
