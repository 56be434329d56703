//! The capture objects lakelink installs in a SQLite database: one change log table shared by
//! every linked table, and three triggers per link that append to it.
//!
//! One shared log gives every change of the database a single position, its rowid, so that
//! all tables can be cut at one position. SQLite gives a new row the largest rowid plus one;
//! the log is never trimmed of its newest entry, so that largest rowid never goes back and a
//! position is never reused. (AUTOINCREMENT would give the same guarantee at the price of an
//! update of `sqlite_sequence` on every captured write.) The triggers run inside the
//! application's own transaction: a change and its log entry commit or roll back together, and
//! each captured write costs the application one extra row insert.
//!
//! Log columns are untyped, so every value is kept with the storage class it had. Key and
//! image values go to positional columns (`k0..`, `c0..`) that are added as links need them;
//! a column added to a linked table widens the log and the triggers without a relink.
//!
//! Every lake has capture objects of its own, named by its checkpoint store's capture name
//! (`_lakelink_<name>_log`, `_lakelink_<name>_<link>_insert`, ...), so that two lakes fed
//! from one database never share a log or a trigger: each trims only its own log, and link
//! numbers (which start at 1 in every store) cannot collide. A store made before capture
//! names existed keeps the unsuffixed names (`_lakelink_log`, `_lakelink_<link>_insert`).

use lakelink_model::change::LinkId;
use lakelink_model::source::CaptureSpec;
use rusqlite::{Connection, TransactionBehavior};

/// The names of one lake's capture objects in the database.
#[derive(Debug, Clone)]
pub(super) struct CaptureNames {
    /// The change log table.
    pub log: String,
    /// What every trigger name starts with.
    trigger_prefix: String,
}

impl CaptureNames {
    /// The names for a checkpoint store's capture name (empty: the unsuffixed names).
    pub fn new(capture_name: &str) -> CaptureNames {
        if capture_name.is_empty() {
            return CaptureNames {
                log: "_lakelink_log".into(),
                trigger_prefix: "_lakelink_".into(),
            };
        }
        CaptureNames {
            log: format!("_lakelink_{capture_name}_log"),
            trigger_prefix: format!("_lakelink_{capture_name}_"),
        }
    }

    /// Whether `trigger` is one of this lake's: the prefix, a link number, what it captures.
    pub fn owns_trigger(&self, trigger: &str) -> bool {
        trigger
            .strip_prefix(&self.trigger_prefix)
            .and_then(|rest| rest.split_once('_'))
            .is_some_and(|(link, what)| link.parse::<LinkId>().is_ok() && TRIGGERS.contains(&what))
    }

    /// The trigger of `link` for `what` (`insert`, `update`, `delete`).
    pub fn trigger(&self, link: LinkId, what: &str) -> String {
        format!("{}{link}_{what}", self.trigger_prefix)
    }
}

/// What each of a link's triggers is for (the last part of its name): the three that log
/// changes, and the two that log rows REPLACE may delete (`replace_markers`).
const TRIGGERS: [&str; 5] = [
    "insert",
    "update",
    "delete",
    "replace_insert",
    "replace_update",
];

/// The columns every change log starts with; a table of the log's name without them is not
/// lakelink's and is never altered.
const LOG_COLUMNS: [&str; 4] = ["pos", "link", "op", "opart"];

/// Operation codes stored in the log's `op` column.
const OP_INSERT: i64 = 1;
const OP_UPDATE: i64 = 2;
const OP_DELETE: i64 = 3;

/// `name` as a quoted SQL identifier.
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether a table of the log's name exists that lakelink did not make: its columns are not
/// the log's. Such a table belongs to the application and must not be touched.
pub(super) fn foreign_log(conn: &Connection, names: &CaptureNames) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare_cached("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
    let columns: Vec<String> = stmt
        .query_map([&names.log], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if columns.is_empty() {
        return Ok(false);
    }
    Ok(columns.len() < LOG_COLUMNS.len()
        || columns[..LOG_COLUMNS.len()] != LOG_COLUMNS
        || !columns[LOG_COLUMNS.len()..]
            .iter()
            .all(|c| positional(c, 'k') || positional(c, 'c')))
}

/// Whether `column` is a positional log column `<prefix><n>` (`k0`, `c12`, ...).
fn positional(column: &str, prefix: char) -> bool {
    column
        .strip_prefix(prefix)
        .is_some_and(|n| n.parse::<usize>().is_ok())
}

/// Installs or widens the log and the link's triggers, in one write transaction so that no
/// change of the table slips between the old triggers and the new.
pub(super) fn install(
    conn: &mut Connection,
    names: &CaptureNames,
    spec: &CaptureSpec,
) -> rusqlite::Result<()> {
    let log = &names.log;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {log} (
            pos INTEGER PRIMARY KEY,
            link INTEGER NOT NULL,
            op INTEGER NOT NULL,
            opart
        );"
    ))?;
    let schema = &spec.schema;
    let (keys, images) = log_width(&tx, names)?;
    for k in keys..schema.key.len() {
        tx.execute_batch(&format!("ALTER TABLE {log} ADD COLUMN k{k}"))?;
    }
    for c in images..schema.columns.len() {
        tx.execute_batch(&format!("ALTER TABLE {log} ADD COLUMN c{c}"))?;
    }
    let table = quote_ident(&spec.table.name);
    let col = |i: usize, side: &str| format!("{side}.{}", quote_ident(&schema.columns[i].name));
    let image_names: Vec<String> = (0..schema.columns.len()).map(|c| format!("c{c}")).collect();
    let key_names: Vec<String> = (0..schema.key.len()).map(|k| format!("k{k}")).collect();
    let new_image: Vec<String> = (0..schema.columns.len()).map(|i| col(i, "NEW")).collect();
    let old_key: Vec<String> = schema.key.iter().map(|&i| col(i, "OLD")).collect();
    let old_partition = schema
        .partition_column
        .map_or_else(|| "NULL".to_string(), |i| col(i, "OLD"));
    let link = spec.link;
    let (ins, upd, del) = (
        names.trigger(link, "insert"),
        names.trigger(link, "update"),
        names.trigger(link, "delete"),
    );
    let sep = |v: &[String]| {
        if v.is_empty() {
            String::new()
        } else {
            format!(", {}", v.join(", "))
        }
    };
    tx.execute_batch(&format!(
        "DROP TRIGGER IF EXISTS {ins};
         DROP TRIGGER IF EXISTS {upd};
         DROP TRIGGER IF EXISTS {del};
         CREATE TRIGGER {ins} AFTER INSERT ON {table} BEGIN
           INSERT INTO {log} (link, op{cols}) VALUES ({link}, {OP_INSERT}{vals});
         END;
         CREATE TRIGGER {upd} AFTER UPDATE ON {table} BEGIN
           INSERT INTO {log} (link, op, opart{keys}{cols})
             VALUES ({link}, {OP_UPDATE}, {old_partition}{old_keys}{vals});
         END;
         CREATE TRIGGER {del} AFTER DELETE ON {table} BEGIN
           INSERT INTO {log} (link, op, opart{keys})
             VALUES ({link}, {OP_DELETE}, {old_partition}{old_keys});
         END;",
        cols = sep(&image_names),
        vals = sep(&new_image),
        keys = sep(&key_names),
        old_keys = sep(&old_key),
    ))?;
    let markers = super::replace_markers::triggers_sql(&tx, names, spec)?;
    tx.execute_batch(&markers)?;
    if let Some(from) = spec.added_from {
        backfill_added_columns(&tx, log, spec, from)?;
    }
    tx.commit()
}

/// Gives the changes captured before capture was widened the values of the added columns,
/// where they can be known exactly: for a change that is the last logged change of its row,
/// the row has not changed since, so its current values are the values at that change.
/// Runs in the widening transaction, so no change can slip in between.
fn backfill_added_columns(
    tx: &rusqlite::Transaction<'_>,
    log: &str,
    spec: &CaptureSpec,
    from: usize,
) -> rusqlite::Result<usize> {
    let schema = &spec.schema;
    if from >= schema.columns.len() {
        return Ok(0);
    }
    let table = quote_ident(&spec.table.name);
    let sets: Vec<String> = (from..schema.columns.len())
        .map(|c| format!("c{c} = t.{}", quote_ident(&schema.columns[c].name)))
        .collect();
    // The row of a change: its image's key columns equal the table row's key.
    let same_row: Vec<String> = schema
        .key
        .iter()
        .map(|&k| format!("t.{} IS l.c{k}", quote_ident(&schema.columns[k].name)))
        .collect();
    // A later change of the same row: a later image with the same key, or a later update or
    // delete whose old key is this key.
    let later_image: Vec<String> = schema
        .key
        .iter()
        .map(|&k| format!("l2.c{k} IS l.c{k}"))
        .collect();
    let later_old: Vec<String> = schema
        .key
        .iter()
        .enumerate()
        .map(|(i, &k)| format!("l2.k{i} IS l.c{k}"))
        .collect();
    let sql = format!(
        "UPDATE {log} AS l SET {sets}
         FROM {table} AS t
         WHERE l.link = ?1 AND l.op IN ({OP_INSERT}, {OP_UPDATE}) AND {same_row}
           AND NOT EXISTS (
             SELECT 1 FROM {log} AS l2
             WHERE l2.link = ?1 AND l2.pos > l.pos
               AND ((l2.op IN ({OP_INSERT}, {OP_UPDATE}) AND {later_image})
                    OR (l2.op IN ({OP_UPDATE}, {OP_DELETE}) AND {later_old})))",
        sets = sets.join(", "),
        same_row = same_row.join(" AND "),
        later_image = later_image.join(" AND "),
        later_old = later_old.join(" AND "),
    );
    let filled = tx.execute(&sql, [spec.link])?;
    let pending: i64 = tx.query_row(
        &format!("SELECT count(*) FROM {log} WHERE link = ?1 AND op IN ({OP_INSERT}, {OP_UPDATE})"),
        [spec.link],
        |r| r.get(0),
    )?;
    let unknown = usize::try_from(pending).unwrap_or(0).saturating_sub(filled);
    if unknown > 0 {
        tracing::warn!(
            table = %spec.table, changes = unknown,
            "changes made between adding a column and lakelink seeing it were superseded before capture widened; their values of the new columns are unknown and written empty"
        );
    }
    Ok(filled)
}

/// Drops the link's triggers and its pending log entries before `keep_from` (the position
/// the other links resume from, whose entry marks the log's history; see
/// [`history_mark`]). The newest entry stays too, so the next position is one past it.
pub(super) fn remove(
    conn: &mut Connection,
    names: &CaptureNames,
    link: LinkId,
    keep_from: i64,
) -> rusqlite::Result<()> {
    let log = &names.log;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for what in TRIGGERS {
        tx.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS {}",
            names.trigger(link, what)
        ))?;
    }
    let has_log: bool = tx.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE name = ?1",
        [log],
        |r| r.get(0),
    )?;
    if has_log && !foreign_log(&tx, names)? {
        tx.execute(
            &format!(
                "DELETE FROM {log} WHERE link = ?1 AND pos < ?2 AND pos < (SELECT max(pos) FROM {log})"
            ),
            rusqlite::params![link, keep_from],
        )?;
    }
    tx.commit()
}

/// Capture triggers on `table` that are not this lake's: another lake's, or those of a
/// checkpoint store that was replaced (which then keep writing to a log no agent trims).
pub(super) fn other_lakes_triggers(
    conn: &Connection,
    names: &CaptureNames,
    table: &str,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1 COLLATE NOCASE AND name LIKE '\\_lakelink\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let all: Vec<String> = stmt
        .query_map([table], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(all.into_iter().filter(|t| !names.owns_trigger(t)).collect())
}

/// The table a link's triggers are attached to, or `None` when any of them is gone (the
/// table was dropped, or dropped and created again, which drops its triggers).
pub(super) fn captured_table(
    conn: &Connection,
    names: &CaptureNames,
    link: LinkId,
) -> rusqlite::Result<Option<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT tbl_name FROM sqlite_schema WHERE type = 'trigger' AND name IN (?1, ?2, ?3)",
    )?;
    let tables: Vec<String> = stmt
        .query_map(
            [
                names.trigger(link, "insert"),
                names.trigger(link, "update"),
                names.trigger(link, "delete"),
            ],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    Ok(match tables.as_slice() {
        [a, b, c] if a == b && b == c => Some(a.clone()),
        _ => None,
    })
}

/// The last position given to a change (0 before the first).
pub(super) fn last_position(conn: &Connection, names: &CaptureNames) -> rusqlite::Result<i64> {
    conn.query_row(
        &format!("SELECT coalesce(max(pos), 0) FROM {}", names.log),
        [],
        |r| r.get(0),
    )
}

/// A short digest of the log entry at `position`, or `None` when there is none: the mark of
/// the log's history at that position. The digested columns of an entry are never rewritten
/// and the entry at the position every link resumes from is never trimmed, so a different
/// digest (or none) there means the log went back: the database was restored from an older
/// copy, or the log was emptied, and its positions are being given out again.
pub(super) fn history_mark(
    conn: &Connection,
    names: &CaptureNames,
    position: i64,
) -> rusqlite::Result<Option<String>> {
    use sha2::Digest as _;
    // Only what an entry never changes: widening capture adds log columns and fills added
    // columns of pending entries in (`backfill_added_columns`), but never touches `pos`,
    // `link`, `op`, `opart`, the first old-key column or the first image column.
    let (keys, images) = log_width(conn, names)?;
    let mut columns = vec!["pos", "link", "op", "opart"];
    if keys > 0 {
        columns.push("k0");
    }
    if images > 0 {
        columns.push("c0");
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM {} WHERE pos = ?1",
        columns.join(", "),
        names.log
    ))?;
    let mut rows = stmt.query([position])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let mut digest = sha2::Sha256::new();
    for i in 0..row.as_ref().column_count() {
        use rusqlite::types::ValueRef;
        // Each value with its storage class and length, so that no two entries share bytes.
        match row.get_ref(i)? {
            ValueRef::Null => digest.update([0]),
            ValueRef::Integer(v) => {
                digest.update([1]);
                digest.update(v.to_le_bytes());
            }
            ValueRef::Real(v) => {
                digest.update([2]);
                digest.update(v.to_bits().to_le_bytes());
            }
            ValueRef::Text(b) | ValueRef::Blob(b) => {
                digest.update([3]);
                digest.update((b.len() as u64).to_le_bytes());
                digest.update(b);
            }
        }
    }
    let bytes = digest.finalize();
    Ok(Some(
        bytes[..8].iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

/// How many key columns (`k0..`) and image columns (`c0..`) the log has.
pub(super) fn log_width(
    conn: &Connection,
    names: &CaptureNames,
) -> rusqlite::Result<(usize, usize)> {
    let mut stmt = conn.prepare_cached("SELECT name FROM pragma_table_info(?1)")?;
    let columns = stmt.query_map([&names.log], |r| r.get::<_, String>(0))?;
    let (mut keys, mut images) = (0, 0);
    for column in columns {
        let column = column?;
        if positional(&column, 'k') {
            keys += 1;
        } else if positional(&column, 'c') {
            images += 1;
        }
    }
    Ok((keys, images))
}

/// The query that reads changes after a position: `pos, link, op, opart, k.., c..`.
pub(super) fn select_changes_sql(names: &CaptureNames, keys: usize, images: usize) -> String {
    let mut columns = vec![
        "pos".to_string(),
        "link".into(),
        "op".into(),
        "opart".into(),
    ];
    columns.extend((0..keys).map(|k| format!("k{k}")));
    columns.extend((0..images).map(|c| format!("c{c}")));
    format!(
        "SELECT {} FROM {} WHERE pos > ?1 ORDER BY pos LIMIT ?2",
        columns.join(", "),
        names.log
    )
}

/// Deletes log entries before `upto`: they are durable in the lake. The entry at `upto`
/// stays as the mark of the log's history there ([`history_mark`]), and the newest entry
/// stays so that the next position is still one past it.
pub(super) fn discard_before(
    conn: &Connection,
    names: &CaptureNames,
    upto: i64,
) -> rusqlite::Result<usize> {
    let log = &names.log;
    conn.execute(
        &format!("DELETE FROM {log} WHERE pos < ?1 AND pos < (SELECT max(pos) FROM {log})"),
        [upto],
    )
}
