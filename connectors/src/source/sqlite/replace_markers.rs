//! Deletes that SQLite's REPLACE conflict resolution makes without firing delete triggers.
//!
//! `INSERT OR REPLACE`, `UPDATE OR REPLACE` and constraints declared `ON CONFLICT REPLACE`
//! delete the rows that stand in the way of the new row, and fire no delete trigger unless the
//! application's connection sets `recursive_triggers`. Two kinds of such deletes would reach
//! the lake wrong:
//! - a row of another key that held the new row's value of a UNIQUE constraint: it vanishes
//!   with no change at all;
//! - the row of the same key, in a partitioned table, when the new row lands in another
//!   partition: its old image would stay in the old partition.
//!
//! So, for a table that can have either (partitioned, or with a UNIQUE index besides the key),
//! BEFORE INSERT and BEFORE UPDATE triggers log a *marker* for every row the statement would
//! replace if it goes through: op 4 for the row of the new key (its key and partition), op 5
//! for a row holding the new row's values of a UNIQUE index (its key, its partition, and those
//! values in their image columns). A BEFORE trigger cannot know whether the row will be
//! written (`INSERT OR IGNORE` skips it, and leaves the marker), so the reader decides: the
//! markers a link logged since its last change apply to its next change only, and only if
//! that change is an insert or update whose new key (op 4) or values (op 5) match; they then
//! become delete records at that change's position, written before its image. Any other
//! change of the link drops them. A statement that fails rolls its markers back with it.
//!
//! Cost: one indexed lookup per UNIQUE index (and one by key in a partitioned table) per
//! insert, and per update that changes those columns. Partial and expression indexes are not
//! followed (a marker from them could not be told true from false).

use super::capture::{CaptureNames, quote_ident};
use lakelink_model::change::{Change, ChangeKind, LinkId, Position};
use lakelink_model::schema::TableSchema;
use lakelink_model::source::CaptureSpec;
use lakelink_model::value::Value;
use rusqlite::Connection;

/// A row of the new row's key that the statement replaces.
pub(super) const OP_REPLACED_SAME_KEY: i64 = 4;
/// A row of another key, holding the new row's values of a UNIQUE index, that the statement
/// replaces.
pub(super) const OP_REPLACED_OTHER_KEY: i64 = 5;

/// The columns (schema indexes) of each UNIQUE index of the table other than its primary key
/// that markers can follow: neither partial nor on expressions.
fn unique_indexes(
    conn: &Connection,
    table: &str,
    schema: &TableSchema,
) -> rusqlite::Result<Vec<Vec<usize>>> {
    let mut list = conn.prepare(
        "SELECT name FROM pragma_index_list(?1) WHERE \"unique\" AND origin <> 'pk' AND NOT partial",
    )?;
    let names: Vec<String> = list
        .query_map([table], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for index in names {
        let mut info = conn.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?;
        let columns: Vec<Option<String>> = info
            .query_map([&index], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let found: Option<Vec<usize>> = columns
            .iter()
            .map(|c| {
                let c = c.as_deref()?;
                schema
                    .columns
                    .iter()
                    .position(|s| s.name.eq_ignore_ascii_case(c))
            })
            .collect();
        if let Some(found) = found
            && found != schema.key
        {
            out.push(found);
        }
    }
    Ok(out)
}

/// The SQL that installs (or drops) the link's marker triggers, inside the capture
/// transaction; empty when the table needs none.
pub(super) fn triggers_sql(
    conn: &Connection,
    names: &CaptureNames,
    spec: &CaptureSpec,
) -> rusqlite::Result<String> {
    let schema = &spec.schema;
    let (ins, upd) = (
        names.trigger(spec.link, "replace_insert"),
        names.trigger(spec.link, "replace_update"),
    );
    let mut sql = format!("DROP TRIGGER IF EXISTS {ins}; DROP TRIGGER IF EXISTS {upd};");
    let uniques = unique_indexes(conn, &spec.table.name, schema)?;
    let partitioned = schema.partition_column.is_some();
    if !partitioned && uniques.is_empty() {
        return Ok(sql);
    }
    let log = &names.log;
    let link = spec.link;
    let table = quote_ident(&spec.table.name);
    let col = |side: &str, i: usize| format!("{side}.{}", quote_ident(&schema.columns[i].name));
    let all = |cols: &[usize], f: &dyn Fn(usize) -> String| {
        cols.iter().map(|&i| f(i)).collect::<Vec<_>>().join(" AND ")
    };
    let key_names: Vec<String> = (0..schema.key.len()).map(|k| format!("k{k}")).collect();
    let key_values: Vec<String> = schema.key.iter().map(|&k| col("r", k)).collect();
    let partition = schema
        .partition_column
        .map_or_else(|| "NULL".to_string(), |p| col("r", p));
    // One marker statement: the rows `r` of the table that `condition` picks, logged with
    // `op`, their key and partition, and the image columns `images`.
    let marker = |op: i64, images: &[usize], condition: String| {
        let mut columns = vec!["link".to_string(), "op".into(), "opart".into()];
        columns.extend(key_names.iter().cloned());
        columns.extend(images.iter().map(|c| format!("c{c}")));
        let mut values = vec![link.to_string(), op.to_string(), partition.clone()];
        values.extend(key_values.iter().cloned());
        values.extend(images.iter().map(|&c| col("r", c)));
        format!(
            "INSERT INTO {log} ({}) SELECT {} FROM {table} AS r WHERE {condition};",
            columns.join(", "),
            values.join(", ")
        )
    };
    let key = &schema.key;
    let mut on_insert = Vec::new();
    let mut on_update = Vec::new();
    if partitioned {
        let same_key = all(key, &|k| format!("{} = {}", col("r", k), col("NEW", k)));
        on_insert.push(marker(OP_REPLACED_SAME_KEY, &[], same_key.clone()));
        let key_changed = all(key, &|k| format!("{} IS {}", col("NEW", k), col("OLD", k)));
        on_update.push(marker(
            OP_REPLACED_SAME_KEY,
            &[],
            format!("NOT ({key_changed}) AND {same_key}"),
        ));
    }
    for unique in &uniques {
        let same_values = all(unique, &|c| format!("{} = {}", col("r", c), col("NEW", c)));
        let other_than_new = all(key, &|k| format!("{} IS {}", col("r", k), col("NEW", k)));
        on_insert.push(marker(
            OP_REPLACED_OTHER_KEY,
            unique,
            format!("{same_values} AND NOT ({other_than_new})"),
        ));
        let changed = all(unique, &|c| {
            format!("{} IS {}", col("NEW", c), col("OLD", c))
        });
        let other_than_old = all(key, &|k| format!("{} IS {}", col("r", k), col("OLD", k)));
        on_update.push(marker(
            OP_REPLACED_OTHER_KEY,
            unique,
            format!("NOT ({changed}) AND {same_values} AND NOT ({other_than_old})"),
        ));
    }
    sql.push_str(&format!(
        "CREATE TRIGGER {ins} BEFORE INSERT ON {table} BEGIN {} END;
         CREATE TRIGGER {upd} BEFORE UPDATE ON {table} BEGIN {} END;",
        on_insert.join(" "),
        on_update.join(" ")
    ));
    Ok(sql)
}

/// A marker read from the log, waiting for the link's next change.
#[derive(Debug, Clone)]
pub(super) struct Marker {
    pub position: Position,
    pub op: i64,
    pub key: Vec<Value>,
    pub partition: Value,
    /// (column, value) of the UNIQUE index's columns (op 5).
    pub values: Vec<(usize, Value)>,
}

/// The delete records the markers pending for `change`'s link make, to be placed before it;
/// the markers are spent either way.
pub(super) fn resolve(
    pending: Vec<Marker>,
    change: &Change,
    key: &[usize],
    link: LinkId,
) -> Vec<Change> {
    if change.kind == ChangeKind::Delete {
        return Vec::new();
    }
    let new_key: Vec<Value> = key
        .iter()
        .map(|&k| change.row.get(k).cloned().unwrap_or(Value::Null))
        .collect();
    let same =
        |a: &[Value], b: &[Value]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y));
    let mut out: Vec<Change> = Vec::new();
    for m in pending {
        let applies = match m.op {
            OP_REPLACED_SAME_KEY => same(&m.key, &new_key),
            _ => m
                .values
                .iter()
                .all(|(c, v)| change.row.get(*c).is_some_and(|x| x.same_as(v))),
        };
        if !applies || out.iter().any(|d| same(&d.old_key, &m.key)) {
            continue;
        }
        out.push(Change {
            position: change.position,
            link,
            kind: ChangeKind::Delete,
            row: Vec::new(),
            old_key: m.key,
            old_partition: m.partition,
        });
    }
    out
}
