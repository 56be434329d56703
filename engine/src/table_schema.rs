//! How a configured table becomes the schema the lake sees: its key (primary, or as
//! configured), its partition column (as configured, else `createdon` when present), and the
//! checks that refuse what cannot be linked. Also the warning for options changed after
//! linking, which need a relink.

use crate::config::TableSettings;
use crate::error::EngineError;
use crate::table_feed::TableFeed;
use lakelink_model::schema::{SYSTEM_ATTRIBUTES, TableSchema};
use lakelink_model::source::{Source, SourceError};

/// The column that partitions a table when the config names none (LAKE_FORMAT §2).
const DEFAULT_PARTITION_COLUMN: &str = "createdon";

/// The lake schema of `table` as the source describes it now.
pub fn resolve(source: &mut dyn Source, table: &TableSettings) -> Result<TableSchema, EngineError> {
    let name = table.name.as_str();
    let described = source.describe_table(&table.source_name())?;
    let link_err = |reason: String| EngineError::Link {
        table: name.to_string(),
        reason,
    };
    let find = |column: &str, setting: &'static str| {
        described
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(column))
            .ok_or_else(|| SourceError::UnknownColumn {
                table: name.to_string(),
                column: column.to_string(),
                setting,
            })
    };
    let key = match &table.key {
        Some(columns) => columns
            .iter()
            .map(|c| find(c, "key"))
            .collect::<Result<Vec<_>, _>>()?,
        None => described.primary_key.clone(),
    };
    if key.is_empty() {
        return Err(link_err(
            "has no primary key; name the columns that identify a row with key = [\"...\"] in its [[table]]"
                .into(),
        ));
    }
    let partition_column = match &table.partition_by {
        Some(column) => Some(find(column, "partition_by")?),
        None => find(DEFAULT_PARTITION_COLUMN, "partition_by").ok(),
    };
    if let Some(c) = described
        .columns
        .iter()
        .find(|c| SYSTEM_ATTRIBUTES.contains(&c.name.as_str()))
    {
        return Err(link_err(format!(
            "has a column named {:?}, which is a system attribute of the lake format; rename the column in the source",
            c.name
        )));
    }
    Ok(TableSchema {
        linked_width: described.columns.len(),
        columns: described.columns,
        key,
        partition_column,
    })
}

/// Warns when a linked table's options in the config differ from those it was linked with.
pub fn warn_on_changed_options(feed: &TableFeed, wanted: &TableSettings) {
    let r = &feed.record;
    let column_name = |i: usize| r.schema.columns[i].name.to_lowercase();
    let mut changed = Vec::new();
    if r.mode != wanted.mode {
        changed.push("mode");
    }
    if r.granularity != wanted.granularity {
        changed.push("granularity");
    }
    if let Some(p) = &wanted.partition_by
        && r.schema.partition_column.map(column_name) != Some(p.to_lowercase())
    {
        changed.push("partition_by");
    }
    if let Some(key) = &wanted.key {
        let linked: Vec<String> = r.schema.key.iter().map(|&i| column_name(i)).collect();
        let wanted: Vec<String> = key.iter().map(|k| k.to_lowercase()).collect();
        if linked != wanted {
            changed.push("key");
        }
    }
    if !changed.is_empty() {
        tracing::warn!(
            table = %wanted.name, options = ?changed,
            "these options differ from when the table was linked and are not applied; remove the table from the config, sync, and add it back to relink with them"
        );
    }
}
