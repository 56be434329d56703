//! Change records: what a source reports for each insert, update and delete, ordered by a
//! position.

use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A source position: orders every change of one source database. Written to the lake as
/// `versionnumber`. Changes of one source transaction may share a position (PostgreSQL's
/// commit LSN); a source never splits such a group across two batches.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Position(pub i64);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The engine's number for one link of one table, given to the source when capture is
/// installed and carried by every change of that table. Relinking gets a new number, so
/// changes captured for an earlier link are never mistaken for the new one.
pub type LinkId = i64;

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new row.
    Insert,
    /// A changed row; its key or partition value may have changed too.
    Update,
    /// A removed row.
    Delete,
    /// Every row of the table removed at once (PostgreSQL's `TRUNCATE`): the lake writes a
    /// delete record, at this change's position, for every row it holds live at this point of
    /// the position (after the changes of the same position before it, before those after).
    Truncate,
}

/// One captured change of one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Where the change stands in the source's order.
    pub position: Position,
    /// Which link the change belongs to.
    pub link: LinkId,
    /// Insert, update or delete.
    pub kind: ChangeKind,
    /// The row after the change, one value per source column in source order (insert and
    /// update); empty for a delete and a truncate. Shorter than the table's current schema when columns
    /// were added after the change was captured; the missing values are NULL.
    pub row: Vec<Value>,
    /// The key column values before the change (update and delete), in key order; empty for
    /// a truncate.
    pub old_key: Vec<Value>,
    /// The partition column's value before the change (update and delete); NULL for a
    /// truncate.
    pub old_partition: Value,
}

/// A run of changes read from a source, in position order.
#[derive(Debug, Default)]
pub struct ChangeBatch {
    /// The changes, in source order.
    pub changes: Vec<Change>,
    /// Everything at or before this position has been read (it may lie past the last change
    /// when the source skipped entries that belong to no link).
    pub end: Position,
    /// Links whose changes the source can no longer capture exactly. The batch holds a broken
    /// link's changes from before the break only; the engine writes them and stops the table.
    pub broken: Vec<BrokenLink>,
    /// Whether the source holds changes after `end` that this batch left out (it was full,
    /// it reached the source's byte cap, or a schema change must be looked at first). When
    /// false, every change the source held when the read began is in this batch or at or
    /// before `end`: the engine is caught up.
    pub more: bool,
    /// The position the batch ended inside: a transaction too large for one batch, whose
    /// first changes (if any of them are for linked tables) lie past `end`; the next batches
    /// bring the rest.
    pub open_position: Option<Position>,
}

impl ChangeBatch {
    /// Whether the batch ended inside a position (see [`ChangeBatch::open_position`]).
    pub fn ends_inside_position(&self) -> bool {
        self.open_position.is_some()
    }
}

/// A link whose capture broke: from `position` on, its changes cannot be delivered exactly
/// (the table was renamed, a column was renamed, ...). Nothing of it at or after `position`
/// is in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The link.
    pub link: LinkId,
    /// The first position whose changes are missing.
    pub position: Position,
    /// What happened and what to do, for the one line that stops the table.
    pub reason: String,
}
