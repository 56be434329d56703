//! The SQLite source: capture by triggers into a change log inside the database, initial
//! copies from a read transaction, and changes read in log order.
//!
//! The database is put in WAL mode so that lakelink's reads never block the application's
//! writers and a copy sees one consistent state while writes go on.

mod capture;
mod replace_markers;
pub mod types;
mod values;

use capture::{CaptureNames, quote_ident};
use lakelink_model::change::{Change, ChangeBatch, ChangeKind, LinkId, Position};
use lakelink_model::schema::SourceColumn;
use lakelink_model::source::{CaptureSpec, ExistingRows, Source, SourceError, SourceTable};
use lakelink_model::table_ref::TableRef;
use lakelink_model::value::Value;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};
use serde::Deserialize;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[source] kind = "sqlite"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSourceConfig {
    /// The database file; relative paths are relative to the config file.
    pub path: PathBuf,
}

impl SqliteSourceConfig {
    /// The config with a relative database path made relative to `base`.
    pub fn resolve_paths(self, base: &std::path::Path) -> SqliteSourceConfig {
        SqliteSourceConfig {
            path: crate::registry::relative_to(base, &self.path),
        }
    }
}

/// How long one statement waits for an application's lock before reporting
/// [`SourceError::Busy`]; the engine retries with backoff after that.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// A batch stops growing past this many bytes of values, so that wide rows (1 MB strings)
/// cannot make a batch of thousands of changes hold gigabytes.
const MAX_BATCH_BYTES: usize = 32 << 20;

/// What is known about each link whose changes this source reads.
#[derive(Debug, Clone)]
struct LinkInfo {
    table: String,
    columns: Vec<String>,
    key_width: usize,
    /// Indexes of the key columns in the image.
    key: Vec<usize>,
}

/// A SQLite database as a source.
pub struct SqliteSource {
    path: PathBuf,
    name: String,
    conn: Connection,
    identity: (u64, u64),
    links: HashMap<LinkId, LinkInfo>,
    names: CaptureNames,
    /// The position every link resumes from and the log's history mark there, checked by
    /// every read: a log that went back must never deliver changes at reused positions.
    anchor: Option<(Position, Option<String>)>,
    /// The schema version the engine last asked for: changes are read only while the schema
    /// is still that one, so that none captured after a column was added is read at the old
    /// width before the engine widened capture.
    seen_schema: Option<i64>,
}

impl SqliteSource {
    /// Opens the database (which must exist) and switches it to WAL mode. `capture_name` sets
    /// this lake's change log and triggers apart from other lakes' (empty: the unsuffixed
    /// names of stores made before capture names).
    pub fn open(
        config: &SqliteSourceConfig,
        capture_name: &str,
    ) -> Result<SqliteSource, SourceError> {
        let path = config.path.clone();
        let name = format!("SQLite database {}", path.display());
        let meta = std::fs::metadata(&path).map_err(|e| SourceError::Database {
            source_name: name.clone(),
            what: "opening the database file (check [source] path)".into(),
            source: Box::new(e),
        })?;
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| db_error(&name, "opening the database", e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| db_error(&name, "setting the busy timeout", e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| db_error(&name, "switching to WAL mode", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(source = %name, mode = %mode, "the database stays in {mode} mode; lakelink's reads may delay writers");
        }
        Ok(SqliteSource {
            path,
            name,
            conn,
            identity: (meta.dev(), meta.ino()),
            links: HashMap::new(),
            names: CaptureNames::new(capture_name),
            anchor: None,
            seen_schema: None,
        })
    }

    /// Fails with [`SourceError::WentBack`] unless the log still reaches `after` and still
    /// holds, at the anchor, the entry it held when the anchor was set.
    fn check_history(
        &self,
        conn: &Connection,
        last: i64,
        after: Position,
    ) -> Result<(), SourceError> {
        let log = &self.names.log;
        if last < after.0 {
            return Err(self.went_back(format!(
                "its change log {log} went back: its newest position is {last}, but the lake holds changes through {after}"
            )));
        }
        if let Some((at, Some(mark))) = &self.anchor {
            let now = capture::history_mark(conn, &self.names, at.0)
                .map_err(|e| self.err("reading the change log", e))?;
            if now.as_deref() != Some(mark.as_str()) {
                return Err(self.went_back(format!(
                    "its change log {log} went back: the entry at position {at}, which the lake holds, is gone or different"
                )));
            }
        }
        Ok(())
    }

    fn went_back(&self, what: String) -> SourceError {
        SourceError::WentBack {
            source_name: self.name.clone(),
            reason: format!(
                "{what}; the database was restored from an older copy or the log was emptied by hand, so new changes would reuse positions the lake already holds. Nothing was written. To go on from the database as it is now, relink every table (unlink them all, sync, then link them again)"
            ),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fails with [`SourceError::Gone`] if the file was deleted or replaced since it was
    /// opened: reading on would read a file that no longer is the database.
    fn check_identity(&self) -> Result<(), SourceError> {
        match std::fs::metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.identity => Ok(()),
            _ => Err(SourceError::Gone {
                source_name: self.name.clone(),
            }),
        }
    }

    fn err(&self, what: &str, e: rusqlite::Error) -> SourceError {
        db_error(&self.name, what, e)
    }
}

fn db_error(name: &str, what: &str, e: rusqlite::Error) -> SourceError {
    if matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    ) {
        return SourceError::Busy {
            source_name: name.to_string(),
            what: what.to_string(),
        };
    }
    SourceError::Database {
        source_name: name.to_string(),
        what: what.to_string(),
        source: Box::new(e),
    }
}

/// What one read of the change log came to.
enum Read {
    /// A batch to hand out.
    Batch(ChangeBatch),
    /// The read was full and opens with a marker whose change it did not reach.
    MarkerPastTheEnd,
}

impl SqliteSource {
    /// The name as stored and the kind (`table`, `view`, `virtual`, `shadow`) of the table
    /// `table` names in any case, or `None` when there is none.
    fn table_kind(&self, table: &str) -> Result<Option<(String, String)>, SourceError> {
        self.conn
            .query_row(
                "SELECT name, type FROM pragma_table_list WHERE schema = 'main' AND name = ?1 COLLATE NOCASE",
                [table],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err("reading the schema", e))
    }

    /// [`Source::read_changes`] with a byte cap of `byte_cap`.
    fn read_changes_within(
        &mut self,
        after: Position,
        max: usize,
        byte_cap: usize,
    ) -> Result<Read, SourceError> {
        self.check_identity()?;
        let name = &self.name;
        let links = &self.links;
        let err = |e| db_error(name, "reading changes", e);
        let mut batch = ChangeBatch {
            end: after,
            ..ChangeBatch::default()
        };
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        // One read transaction: the log's last position and the entries come from the same
        // state, so when the batch is not full everything up to that position has been read.
        let tx = self.conn.unchecked_transaction().map_err(err)?;
        let last = capture::last_position(&tx, &self.names).map_err(err)?;
        self.check_history(&tx, last, after)?;
        let version: i64 = tx
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .map_err(err)?;
        if self.seen_schema.is_some_and(|seen| seen != version) {
            // The schema changed since the engine last looked: it looks again (and widens
            // capture for added columns) before anything more is read.
            batch.more = last > after.0;
            return Ok(Read::Batch(batch));
        }
        let (key_cols, image_cols) = capture::log_width(&tx, &self.names).map_err(err)?;
        let sql = capture::select_changes_sql(&self.names, key_cols, image_cols);
        let mut read_rows = 0usize;
        let mut bytes = 0usize;
        // Markers of rows REPLACE may delete, by link, until the link's next change.
        let mut markers: HashMap<LinkId, Vec<replace_markers::Marker>> = HashMap::new();
        {
            let mut stmt = tx.prepare_cached(&sql).map_err(err)?;
            let mut rows = stmt.query(rusqlite::params![after.0, limit]).map_err(err)?;
            while let Some(row) = rows.next().map_err(err)? {
                read_rows += 1;
                let read = |i| row.get_ref(i).map_err(err);
                let position = Position(read(0)?.as_i64().unwrap_or_default());
                batch.end = position;
                let link = read(1)?.as_i64().unwrap_or_default();
                let Some(info) = links.get(&link) else {
                    // A link this agent does not hold (unlinked, or an earlier link of a
                    // table); its entries are dropped with the next acknowledgement.
                    continue;
                };
                let op = read(2)?.as_i64().unwrap_or_default();
                let value = |v, column: &str| values::from_sql(v, &info.table, column, position);
                let old_partition = value(read(3)?, "(partition column)");
                let mut old_key = Vec::with_capacity(info.key_width);
                for k in 0..info.key_width.min(key_cols) {
                    old_key.push(value(read(4 + k)?, "(key)"));
                }
                let kind = match op {
                    1 => ChangeKind::Insert,
                    2 => ChangeKind::Update,
                    3 => ChangeKind::Delete,
                    _ => {
                        // A row the next change of the link may have replaced.
                        let mut values_at = Vec::new();
                        for (c, column) in info.columns.iter().enumerate().take(image_cols) {
                            let v = value(read(4 + key_cols + c)?, column);
                            if !v.is_null() {
                                values_at.push((c, v));
                            }
                        }
                        markers
                            .entry(link)
                            .or_default()
                            .push(replace_markers::Marker {
                                position,
                                op,
                                key: old_key,
                                partition: old_partition,
                                values: values_at,
                            });
                        continue;
                    }
                };
                let mut image = Vec::new();
                if kind != ChangeKind::Delete {
                    let width = info.columns.len().min(image_cols);
                    image.reserve(width);
                    for (c, column) in info.columns.iter().enumerate().take(width) {
                        image.push(value(read(4 + key_cols + c)?, column));
                    }
                }
                bytes += image
                    .iter()
                    .chain(&old_key)
                    .map(Value::memory_size)
                    .sum::<usize>();
                let change = Change {
                    position,
                    link,
                    kind,
                    row: image,
                    old_key,
                    old_partition,
                };
                if let Some(pending) = markers.remove(&link) {
                    batch
                        .changes
                        .extend(replace_markers::resolve(pending, &change, &info.key, link));
                }
                batch.changes.push(change);
                if bytes > byte_cap {
                    break;
                }
            }
        }
        tx.commit().map_err(err)?;
        let complete = read_rows < max && bytes <= byte_cap;
        batch.more = !complete;
        if complete {
            // Markers with no change after them, though the log was read to its end: their
            // statement did not write the row (INSERT OR IGNORE), and replaced nothing.
            batch.end = batch.end.max(Position(last));
        } else if let Some(first) = markers.values().flatten().map(|m| m.position).min() {
            if first.0 - 1 <= after.0 {
                return Ok(Read::MarkerPastTheEnd);
            }
            // The change a marker waits for was not read yet: the batch ends before it, so
            // that the marker and its change are read together next time.
            batch.changes.retain(|c| c.position < first);
            batch.end = Position(first.0 - 1);
        }
        Ok(Read::Batch(batch))
    }
}

impl Source for SqliteSource {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn describe_table(&mut self, table: &TableRef) -> Result<SourceTable, SourceError> {
        // A SQLite database has no schemas (the config refuses one): the name alone.
        let table = table.name.as_str();
        self.check_identity()?;
        // table_list says what kind of table a name is: SQLite forbids triggers on its own
        // tables, on virtual tables and on a virtual table's shadow tables, and a view holds
        // no rows of its own; none of them can be captured.
        let Some((found, kind)) = self.table_kind(table)? else {
            return Err(SourceError::TableNotFound {
                source_name: self.name.clone(),
                table: table.to_string(),
            });
        };
        let uncapturable = |reason: &str| SourceError::Uncapturable {
            source_name: self.name.clone(),
            table: table.to_string(),
            reason: reason.to_string(),
        };
        if found.to_ascii_lowercase().starts_with("sqlite_") {
            return Err(uncapturable(
                "is one of SQLite's own tables, on which SQLite allows no triggers; link application tables only",
            ));
        }
        match kind.as_str() {
            "table" => {}
            "virtual" => {
                return Err(uncapturable(
                    "is a virtual table (FTS, R*Tree, ...), on which SQLite allows no triggers; link the tables whose rows it holds instead",
                ));
            }
            "shadow" => {
                return Err(uncapturable(
                    "is a virtual table's internal (shadow) table, which SQLite keeps itself; link the tables whose rows the virtual table holds instead",
                ));
            }
            "view" => {
                return Err(uncapturable(
                    "is a view, which holds no rows of its own to capture; link the tables it reads instead",
                ));
            }
            other => {
                return Err(uncapturable(&format!(
                    "is a {other}, not a table lakelink can capture"
                )));
            }
        }
        let mut stmt = self
            .conn
            // table_xinfo lists generated columns too (hidden 2: virtual, 3: stored), which
            // triggers and the copy read like any other; hidden 1 is a virtual table's.
            .prepare(
                "SELECT name, type, pk FROM pragma_table_xinfo(?1) WHERE hidden IN (0, 2, 3) ORDER BY cid",
            )
            .map_err(|e| self.err("reading the table's columns", e))?;
        let rows = stmt
            .query_map([table], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| db_error(&self.name, "reading the table's columns", e))?;
        let mut pk: Vec<(i64, usize)> = Vec::new();
        let columns = rows
            .into_iter()
            .enumerate()
            .map(|(i, (name, declared, pk_index))| {
                if pk_index > 0 {
                    pk.push((pk_index, i));
                }
                SourceColumn {
                    column_type: types::column_type(&declared),
                    name,
                    declared_type: declared,
                    number: None,
                }
            })
            .collect();
        pk.sort();
        Ok(SourceTable {
            columns,
            primary_key: pk.into_iter().map(|(_, i)| i).collect(),
            id: None,
        })
    }

    fn schema_version(&mut self) -> Result<i64, SourceError> {
        self.check_identity()?;
        let version = self
            .conn
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .map_err(|e| self.err("reading the schema version", e))?;
        self.seen_schema = Some(version);
        Ok(version)
    }

    fn install_capture(&mut self, spec: &CaptureSpec) -> Result<(), SourceError> {
        self.check_identity()?;
        if capture::foreign_log(&self.conn, &self.names)
            .map_err(|e| self.err("reading the schema", e))?
        {
            return Err(SourceError::Unusable {
                source_name: self.name.clone(),
                reason: format!(
                    "a table named {} exists that lakelink did not make, and lakelink leaves it alone; rename the application's table, or give this lake a new checkpoint store ([engine] state) so that its capture gets other names",
                    self.names.log
                ),
            });
        }
        capture::install(&mut self.conn, &self.names, spec)
            .map_err(|e| self.err("installing capture triggers", e))?;
        if spec.added_from.is_none() {
            let others = capture::other_lakes_triggers(&self.conn, &self.names, &spec.table.name)
                .map_err(|e| self.err("reading the schema", e))?;
            if !others.is_empty() {
                tracing::warn!(
                    table = %spec.table, triggers = ?others,
                    "the table has capture triggers of another lake, or of a checkpoint store no longer in use, whose log nothing may trim; if no agent uses them, drop them (DROP TRIGGER ...) and their _lakelink_..._log table"
                );
            }
        }
        self.links.insert(
            spec.link,
            LinkInfo {
                table: spec.table.to_string(),
                columns: spec.schema.columns.iter().map(|c| c.name.clone()).collect(),
                key_width: spec.schema.key.len(),
                key: spec.schema.key.clone(),
            },
        );
        Ok(())
    }

    fn remove_capture(&mut self, link: LinkId, table: &TableRef) -> Result<(), SourceError> {
        self.check_identity()?;
        // Entries from the anchor on stay: the one there marks the log's history. Before the
        // anchor is known (removing a stopped table's capture on start) nothing is deleted;
        // acknowledgements trim those entries later.
        let keep_from = self.anchor.as_ref().map_or(i64::MIN, |(at, _)| at.0);
        capture::remove(&mut self.conn, &self.names, link, keep_from)
            .map_err(|e| db_error(&self.name, &format!("removing capture of \"{table}\""), e))?;
        self.links.remove(&link);
        Ok(())
    }

    fn copy_table(
        &mut self,
        spec: &CaptureSpec,
        on_row: &mut dyn FnMut(Position, Vec<Value>) -> ControlFlow<()>,
    ) -> Result<Position, SourceError> {
        self.check_identity()?;
        let name = self.name.clone();
        let err = |what: &str, e| db_error(&name, what, e);
        // One read transaction: the position and the rows come from the same state of the
        // database, so the copy stands exactly at that position.
        let tx = self
            .conn
            .transaction()
            .map_err(|e| err("starting the copy", e))?;
        let position = Position(
            capture::last_position(&tx, &self.names)
                .map_err(|e| err("reading the log position", e))?,
        );
        let columns: Vec<String> = spec
            .schema
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect();
        let sql = format!(
            "SELECT {} FROM {}",
            columns.join(", "),
            quote_ident(&spec.table.name)
        );
        let mut stmt = tx.prepare(&sql).map_err(|e| err("reading the table", e))?;
        let mut rows = stmt.query([]).map_err(|e| err("reading the table", e))?;
        while let Some(row) = rows.next().map_err(|e| err("reading the table", e))? {
            let mut values = Vec::with_capacity(columns.len());
            for (i, column) in spec.schema.columns.iter().enumerate() {
                let v = row.get_ref(i).map_err(|e| err("reading the table", e))?;
                values.push(values::from_sql(
                    v,
                    &spec.table.name,
                    &column.name,
                    position,
                ));
            }
            if on_row(position, values).is_break() {
                break;
            }
        }
        drop(rows);
        drop(stmt);
        tx.commit().map_err(|e| err("ending the copy", e))?;
        Ok(position)
    }

    fn read_changes(&mut self, after: Position, max: usize) -> Result<ChangeBatch, SourceError> {
        let (mut max, mut byte_cap) = (max, MAX_BATCH_BYTES);
        loop {
            match self.read_changes_within(after, max, byte_cap)? {
                Read::Batch(batch) => return Ok(batch),
                // A full batch that opens with a REPLACE marker whose change lies past it:
                // the batch cannot end before the marker, nor drop it, so it reads further.
                Read::MarkerPastTheEnd => {
                    max = max.saturating_mul(2);
                    byte_cap = byte_cap.saturating_mul(2);
                }
            }
        }
    }

    fn head_position(&mut self) -> Result<Position, SourceError> {
        self.check_identity()?;
        if self.links.is_empty() {
            // Before any link the change log may not exist yet: nothing was captured.
            return Ok(Position(0));
        }
        capture::last_position(&self.conn, &self.names)
            .map(Position)
            .map_err(|e| self.err("reading the log position", e))
    }

    fn count_rows(&mut self, table: &TableRef) -> Result<u64, SourceError> {
        // A SQLite database has no schemas (the config refuses one): the name alone.
        let table = table.name.as_str();
        self.check_identity()?;
        self.conn
            .query_row(
                &format!("SELECT count(*) FROM {}", quote_ident(table)),
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.err("counting the table's rows", e))
    }

    fn acknowledge(&mut self, upto: Position) -> Result<(), SourceError> {
        self.check_identity()?;
        // Never past the anchor, whose entry marks the log's history (the common position can
        // move past it without a new mark, when the table holding it back stops).
        let upto = self
            .anchor
            .as_ref()
            .map_or(upto.0, |(at, _)| upto.0.min(at.0));
        match capture::discard_before(&self.conn, &self.names, upto) {
            Ok(_) => Ok(()),
            // Trimming the log is housekeeping: if the application holds the write lock, the
            // next acknowledgement trims the same entries.
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) =>
            {
                tracing::debug!(source = %self.name, "change log busy; trimming it later");
                Ok(())
            }
            Err(e) => Err(self.err("trimming the change log", e)),
        }
    }

    fn capture_broken(&mut self, spec: &CaptureSpec) -> Result<Option<String>, SourceError> {
        let (link, table) = (spec.link, spec.table.name.as_str());
        self.check_identity()?;
        let attached = capture::captured_table(&self.conn, &self.names, link)
            .map_err(|e| self.err("reading the schema", e))?;
        Ok(match attached {
            None if self.table_kind(table)?.is_none() => Some(format!(
                "{table:?} is gone from the source (dropped, or renamed while its capture triggers went with it); if it is gone for good, unlink it"
            )),
            None => Some(format!(
                "its capture triggers are gone: {table:?} was dropped and created again (as ALTER TABLE's 12-step procedure does), so changes since were not captured"
            )),
            Some(now) if !now.eq_ignore_ascii_case(table) => {
                Some(format!("{table:?} was renamed to {now:?}"))
            }
            Some(_) => None,
        })
    }

    fn capture_problem(&mut self, _table: &TableRef) -> Result<Option<String>, SourceError> {
        // Triggers capture every change of a table exactly; what cannot carry triggers (views,
        // virtual, shadow and system tables) describe_table already refuses.
        Ok(None)
    }

    fn existing_rows(
        &mut self,
        table: &TableRef,
        column: &str,
    ) -> Result<ExistingRows, SourceError> {
        // A SQLite database has no schemas (the config refuses one): the name alone.
        let table = table.name.as_str();
        self.check_identity()?;
        let found: Option<(Option<String>, i64)> = self
            .conn
            .query_row(
                "SELECT dflt_value, hidden FROM pragma_table_xinfo(?1) WHERE name = ?2",
                [table, column],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err("reading the table's columns", e))?;
        match found {
            None => Ok(ExistingRows::Null),
            Some((_, hidden)) if hidden != 0 => Ok(ExistingRows::Unknown(
                "it is generated from other columns, so the existing rows hold values no logged change carries".into(),
            )),
            Some((None, _)) => Ok(ExistingRows::Null),
            // ALTER TABLE ... ADD COLUMN takes only constant defaults, which every existing
            // row reads; evaluating the expression gives the value with its storage class.
            Some((Some(default), _)) => {
                let value = self
                    .conn
                    .query_row(&format!("SELECT ({default})"), [], |r| {
                        Ok(values::from_sql(r.get_ref(0)?, table, column, Position(0)))
                    })
                    .map_err(|e| self.err("reading the column's default", e))?;
                Ok(match value {
                    Value::Null => ExistingRows::Null,
                    value => ExistingRows::Value(value),
                })
            }
        }
    }

    fn history_mark(&mut self, position: Position) -> Result<Option<String>, SourceError> {
        self.check_identity()?;
        let mark = capture::history_mark(&self.conn, &self.names, position.0)
            .map_err(|e| self.err("reading the change log", e))?;
        self.anchor = Some((position, mark.clone()));
        Ok(mark)
    }

    fn resume_at(&mut self, position: Position, mark: Option<&str>) -> Result<(), SourceError> {
        self.check_identity()?;
        self.anchor = Some((position, mark.map(str::to_string)));
        let last = capture::last_position(&self.conn, &self.names)
            .map_err(|e| self.err("reading the log position", e))?;
        self.check_history(&self.conn, last, position)
    }
}
