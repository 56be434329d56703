//! The [`Source`] trait: what the engine needs from a database it captures changes from.
//! Shaped so that a trigger-fed change log (SQLite) and a write-ahead-log stream
//! (PostgreSQL) both fit: capture is installed per link, an initial copy is taken at a
//! position, changes are read after a position, and acknowledged once durable in the lake.

use crate::change::{ChangeBatch, LinkId, Position};
use crate::schema::{SourceColumn, TableSchema};
use crate::table_ref::TableRef;
use crate::value::Value;
use std::ops::ControlFlow;

/// A table as the source describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    /// Columns in source order.
    pub columns: Vec<SourceColumn>,
    /// Indexes of the primary key columns, in key order; empty when there is none.
    pub primary_key: Vec<usize>,
    /// The source's own identity of the table, which a rename keeps and a table created
    /// again under the same name does not have (PostgreSQL's OID); `None` where the source
    /// has none (SQLite, whose capture triggers go with the table instead).
    pub id: Option<String>,
}

/// What capture of one linked table needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSpec {
    /// The link's number, carried by every change.
    pub link: LinkId,
    /// The table in the source.
    pub table: TableRef,
    /// Its schema: which columns to capture, the key and the partition column.
    pub schema: TableSchema,
    /// Set when capture is widened: columns from this index on were added to the table since
    /// capture was last installed. Changes captured in between lack their values; the source
    /// fills in what it can know exactly (see [`Source::install_capture`]).
    pub added_from: Option<usize>,
}

/// What the rows that existed when a column was added hold in it.
#[derive(Debug, Clone, PartialEq)]
pub enum ExistingRows {
    /// NULL: the column has no default, so nothing needs filling in.
    Null,
    /// Every such row holds this value (`ADD COLUMN ... DEFAULT` applies it without a logged
    /// change).
    Value(Value),
    /// The rows were given values the source cannot tell (a volatile default that rewrote the
    /// table); the reason says so.
    Unknown(String),
}

/// A database lakelink captures changes from.
///
/// # Contract
/// - [`Source::install_capture`] is idempotent and, once it returns, every later change of
///   the table made by any process is captured. Called again with a wider schema, it widens
///   capture to the new columns, and gives each not yet acknowledged change that is the last
///   one of its row the row's current values of the added columns (exact, since nothing
///   changed the row since). Earlier changes of the same row keep NULL there.
/// - [`Source::copy_table`] streams the table as it stood at one position `p` and returns
///   `p`: every change after `p` is reported by [`Source::read_changes`], none at or before.
/// - [`Source::read_changes`] returns changes after `after` in position order, and says in
///   the batch's `more` whether it left changes out; when it says no, a read from the
///   batch's end finds nothing that was there when this read began. The changes that share
///   a position come whole in one batch, except those of one position too large for a batch:
///   that batch then ends below it ([`ChangeBatch::open_position`]), and the next read from
///   its end goes on with the rest, whatever else was asked of the source in between.
/// - After [`Source::discard_read`] (the engine dropped the batch it read) or in a new
///   instance (a restart), a read delivers its changes again, those of a position split across
///   batches from its first, in the same order, so that the lake's per-file de-duplication
///   skips what was written.
/// - A source that can remove every row of a table in one step without a change per row
///   (PostgreSQL's `TRUNCATE`) reports it as one [`crate::change::ChangeKind::Truncate`] change of each
///   linked table it emptied, in its place among the changes of its position.
/// - [`Source::acknowledge`] tells the source that everything up to `upto` is durable in the
///   lake, so it may discard it. Until then a
///   change stays readable, whatever crashes.
/// - A link whose capture breaks (the table dropped, recreated, renamed, its capture objects
///   removed by someone else) is reported, never silently skipped: by
///   [`Source::capture_broken`], and by a batch's `broken` list when the break shows in the
///   changes themselves.
/// - A source whose history went back (positions given again to other changes: a database
///   restored from an older copy, a change log emptied by hand) fails every read with
///   [`SourceError::WentBack`] rather than deliver changes at reused positions.
pub trait Source: Send {
    /// One line naming the source for messages, e.g. `SQLite database /data/crm.db`.
    fn describe(&self) -> String;

    /// The table's columns and primary key.
    fn describe_table(&mut self, table: &TableRef) -> Result<SourceTable, SourceError>;

    /// A number that changes whenever any table's schema may have changed, cheap enough to
    /// ask before every batch.
    fn schema_version(&mut self) -> Result<i64, SourceError>;

    /// Installs (or widens) capture for a link.
    fn install_capture(&mut self, spec: &CaptureSpec) -> Result<(), SourceError>;

    /// Removes a link's capture objects and forgets its pending changes.
    fn remove_capture(&mut self, link: LinkId, table: &TableRef) -> Result<(), SourceError>;

    /// Streams every row of the table at one position, calling `on_row` with the position and
    /// the row (values in schema column order, handed over so the caller can pass them on
    /// without copying). `on_row` may stop the copy early by
    /// returning `Break`. Returns the position the copy stands at.
    fn copy_table(
        &mut self,
        spec: &CaptureSpec,
        on_row: &mut dyn FnMut(Position, Vec<Value>) -> ControlFlow<()>,
    ) -> Result<Position, SourceError>;

    /// Up to about `max` changes after `after`.
    fn read_changes(&mut self, after: Position, max: usize) -> Result<ChangeBatch, SourceError>;

    /// The batch last read was not written (the engine failed before committing it): the
    /// next read delivers it again. A source whose reads depend only on `after` has nothing
    /// to do.
    fn discard_read(&mut self) {}

    /// The newest position the source has given a change (for lag).
    fn head_position(&mut self) -> Result<Position, SourceError>;

    /// About how many rows the table holds (for the initial copy's progress).
    fn count_rows(&mut self, table: &TableRef) -> Result<u64, SourceError>;

    /// Everything up to `upto` is durable in the lake.
    fn acknowledge(&mut self, upto: Position) -> Result<(), SourceError>;

    /// Why capture of the link `spec` describes no longer stands, or `None` when it is
    /// intact. Cheap enough to ask after every schema change, and asked on start before
    /// capture is installed again (so a table dropped and created again while the agent was
    /// stopped is never taken for the linked one).
    fn capture_broken(&mut self, spec: &CaptureSpec) -> Result<Option<String>, SourceError>;

    /// Why the table's changes could not be captured exactly as it is set up now, with what
    /// to change; `None` when they can. Only reads: asked before a link changes anything
    /// (`lakelink link`, a reload), so that a refusal leaves everything as it was.
    fn capture_problem(&mut self, table: &TableRef) -> Result<Option<String>, SourceError>;

    /// What the table's existing rows hold in `column`, just added.
    fn existing_rows(
        &mut self,
        table: &TableRef,
        column: &str,
    ) -> Result<ExistingRows, SourceError>;

    /// A short text that identifies the source's history at `position` (a position the
    /// source gave out), to be kept with the checkpoint and handed back by
    /// [`Source::resume_at`]; `None` when the source needs none.
    fn history_mark(&mut self, position: Position) -> Result<Option<String>, SourceError>;

    /// How many bytes of its own log the source keeps because lakelink has not confirmed them
    /// (PostgreSQL: the WAL from the slot's restart position to the current one), or `None`
    /// where it keeps none of the kind. Asked now and then for the metrics; a source may log
    /// a warning when it is past what it was told to bear.
    fn retained_bytes(&mut self) -> Result<Option<u64>, SourceError> {
        Ok(None)
    }

    /// Called once the engine knows where it resumes: every table is durable through
    /// `position`, whose history mark was `mark`. Fails with [`SourceError::WentBack`] when
    /// the source's history no longer holds that position as it was.
    fn resume_at(&mut self, position: Position, mark: Option<&str>) -> Result<(), SourceError>;
}

/// What a source operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Another process holds the database locked; trying again later will succeed.
    #[error("{source_name} is busy ({what}); another process holds a lock")]
    Busy {
        /// The source.
        source_name: String,
        /// What was being done.
        what: String,
    },
    /// The table is not in the source.
    #[error("table {table:?} does not exist in {source_name}; check the name in the config")]
    TableNotFound {
        /// The source.
        source_name: String,
        /// The table.
        table: String,
    },
    /// The table is there but its changes cannot be captured (SQLite's own tables, virtual
    /// tables, views); the reason says what to link instead.
    #[error("{source_name}: table {table:?} {reason}")]
    Uncapturable {
        /// The source.
        source_name: String,
        /// The table.
        table: String,
        /// What it is and what to do.
        reason: String,
    },
    /// A column named in the config is not in the table.
    #[error("table {table:?} has no column {column:?}; check the config's {setting}")]
    UnknownColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Which setting named it.
        setting: &'static str,
    },
    /// The database file is gone or was replaced by another file.
    #[error("{source_name} was deleted or replaced while linked; restore it or relink its tables")]
    Gone {
        /// The source.
        source_name: String,
    },
    /// The server cannot be reached or dropped the connection; trying again later can
    /// succeed.
    #[error("{source_name} is unreachable ({what}): {source}")]
    Unreachable {
        /// The source.
        source_name: String,
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The source is set up in a way lakelink cannot use; the reason says what to change.
    #[error("{source_name}: {reason}")]
    Unusable {
        /// The source.
        source_name: String,
        /// What is wrong and what to change.
        reason: String,
    },
    /// The source's positions went back: changes after the checkpoint would reuse positions
    /// the lake already holds.
    #[error("{source_name}: {reason}")]
    WentBack {
        /// The source.
        source_name: String,
        /// What was seen and what to do.
        reason: String,
    },
    /// The database failed.
    #[error("{source_name}: {what}: {source}")]
    Database {
        /// The source.
        source_name: String,
        /// What was being done.
        what: String,
        /// The database's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl SourceError {
    /// Whether trying again later can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SourceError::Busy { .. } | SourceError::Unreachable { .. }
        )
    }
}
