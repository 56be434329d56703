//! How a configured table becomes the schema the lake sees: its key (primary, or as
//! configured), its partition column (as configured, else `createdon` when present), and the
//! checks that refuse what cannot be linked. Also the warning for options changed after
//! linking, which need a relink.

use crate::config::TableSettings;
use crate::error::EngineError;
use crate::table_feed::TableFeed;
use lakelink_model::FieldKind;
use lakelink_model::schema::{SYSTEM_ATTRIBUTES, SourceColumn, TableSchema};
use lakelink_model::source::{Source, SourceError};
use lakelink_model::value::Value;

/// The column that partitions a table when the config names none (LAKE_FORMAT §2).
const DEFAULT_PARTITION_COLUMN: &str = "createdon";

/// The lake schema of `table` as the source describes it now.
pub fn resolve(source: &mut dyn Source, table: &TableSettings) -> Result<TableSchema, EngineError> {
    let name = table.name.as_str();
    let link_err = |reason: String| EngineError::Link {
        table: name.to_string(),
        reason,
    };
    if name.to_ascii_lowercase().starts_with(RESERVED_PREFIX) {
        return Err(link_err(format!(
            "names starting with {RESERVED_PREFIX:?} are reserved for lakelink's own objects (its change log, triggers and lake folder); link only application tables"
        )));
    }
    let described = source.describe_table(&table.source_table())?;
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
    check_names(&described.columns).map_err(link_err)?;
    // After the key: a table without one is told to name one first, not to change its
    // replica identity and then be told that.
    if let Some(reason) = source.capture_problem(&table.source_table())? {
        return Err(link_err(reason));
    }
    for &k in &key {
        let column = &described.columns[k];
        if column.column_type.kind == FieldKind::Any {
            return Err(link_err(format!(
                "key column {:?} has no declared type, so SQLite keeps 1 and '1' (or a BLOB and its base64 text) as two keys that the lake would write as one Id; declare the column's type, or name other columns with key = [...]",
                column.name
            )));
        }
    }
    Ok(TableSchema {
        linked_width: described.columns.len(),
        columns: described.columns,
        key,
        partition_column,
        fills: Vec::new(),
        table_id: described.id,
    })
}

/// Table names lakelink keeps for itself: its SQLite change log and triggers, and the
/// lake's `_lakelink` folder.
const RESERVED_PREFIX: &str = "_lakelink";

/// Refuses columns whose names a reader that folds case (Spark, Synapse serverless SQL,
/// Power BI) cannot tell apart: two source columns, or a source column and a system
/// attribute, that differ only in case. A source column `id` beside `Id` is the one
/// exception, kept as LAKE_FORMAT.md says: it is the most common key name, and refusing it
/// would refuse most tables.
pub fn check_names(columns: &[SourceColumn]) -> Result<(), String> {
    for (i, c) in columns.iter().enumerate() {
        if let Some(system) = SYSTEM_ATTRIBUTES
            .iter()
            .find(|s| s.eq_ignore_ascii_case(&c.name) && (**s != "Id" || c.name == "Id"))
        {
            return Err(if *system == c.name {
                format!(
                    "has a column named {:?}, which is a system attribute of the lake format; rename the column in the source",
                    c.name
                )
            } else {
                format!(
                    "column {:?} and the system attribute {system:?} differ only in case, which readers that fold case (Spark, Synapse serverless SQL, Power BI) reject; rename the column in the source",
                    c.name
                )
            });
        }
        if let Some(other) = columns[..i]
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(&c.name))
        {
            return Err(format!(
                "columns {:?} and {:?} differ only in case, which readers that fold case (Spark, Synapse serverless SQL, Power BI) reject; rename one of them in the source",
                other.name, c.name
            ));
        }
    }
    Ok(())
}

/// Why the key values of a full row cannot be a lake `Id` that no other row shares: a NULL
/// (SQLite allows NULL in a PRIMARY KEY that is not INTEGER PRIMARY KEY, and two such rows
/// cannot be told apart), or a BLOB where the column holds text or numbers (its base64 form
/// can equal another row's text key) and text or numbers in a BLOB key column. Checked for
/// every row written, so it allocates only when it finds something.
pub fn key_problem(schema: &TableSchema, row: &[Value]) -> Option<String> {
    for &k in &schema.key {
        let column = &schema.columns[k];
        let blob_column = column.column_type.kind == FieldKind::Blob;
        let problem = match row.get(k).unwrap_or(&Value::Null) {
            Value::Null => "NULL",
            Value::Blob(_) if !blob_column => "a BLOB",
            Value::Integer(_) | Value::Real(_) | Value::Text(_) if blob_column => {
                "a value that is not a BLOB"
            }
            _ => continue,
        };
        return Some(format!(
            "a row has {problem} in key column {:?}, which would give two distinct rows one Id in the lake; make the key NOT NULL and of one type in the source (or name other columns with key = [...])",
            column.name
        ));
    }
    None
}

/// How a linked table's columns changed since the lake last took its shape.
#[derive(Debug, Default)]
pub struct ColumnDrift {
    /// Known columns now under another name: (linked name, new name).
    pub renamed: Vec<(String, String)>,
    /// Known columns whose declared type changed.
    pub retyped: Vec<String>,
    /// Known columns no longer in the table.
    pub dropped: Vec<String>,
    /// Columns the lake does not know yet, in source order.
    pub added: Vec<SourceColumn>,
}

/// Compares the linked columns with the table's columns now. Columns are matched by the
/// source's own number when it has one (PostgreSQL's attnum, which a rename keeps), else by
/// place (SQLite: a column a capture trigger uses cannot be dropped, so places are stable and
/// added columns come last).
pub fn compare(known: &[SourceColumn], now: &[SourceColumn]) -> ColumnDrift {
    let mut drift = ColumnDrift::default();
    let mut matched = vec![false; now.len()];
    let numbered = now.iter().any(|c| c.number.is_some());
    for (i, k) in known.iter().enumerate() {
        let found = match k.number {
            Some(n) => now.iter().position(|c| c.number == Some(n)),
            // A column linked before numbers were recorded, of a source that has them.
            None if numbered => now.iter().position(|c| c.name == k.name),
            None => (i < now.len()).then_some(i),
        };
        let Some(at) = found else {
            drift.dropped.push(k.name.clone());
            continue;
        };
        matched[at] = true;
        let c = &now[at];
        if c.name != k.name {
            drift.renamed.push((k.name.clone(), c.name.clone()));
        } else if c.declared_type != k.declared_type {
            drift.retyped.push(k.name.clone());
        }
    }
    drift.added = now
        .iter()
        .zip(&matched)
        .filter(|(_, m)| !**m)
        .map(|(c, _)| c.clone())
        .collect();
    drift
}

/// Warns when a linked table's options in the config differ from those it was linked with.
pub fn warn_on_changed_options(feed: &TableFeed, wanted: &TableSettings) {
    let r = feed.record();
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
