//! The initial copy's exact hand-off to the stream, over ordinary SQL connections.
//!
//! The table is already in the publication and the slot exists (both committed). Connection
//! A then opens a REPEATABLE READ transaction and takes `LOCK TABLE ... IN SHARE MODE`: the
//! lock waits for every transaction that wrote the table to end and keeps new writers out.
//! Under the lock A exports its snapshot and reads the WAL insert position `P0`. Every
//! transaction that wrote the table committed before the lock was granted, so it is in the
//! snapshot and its commit record lies before `P0`; every later writer must wait for A to end,
//! so its changes and commit record lie after `P0` and are decoded from the slot. Connection B
//! adopts the snapshot, A commits (the lock lasted milliseconds), and B reads the table
//! through a cursor in chunks, never holding it in memory. The copy stands at `P0`.

use super::lock_wait::DDL_LOCK_TIMEOUT;
use super::publication::QualifiedTable;
use super::types;
use lakelink_model::change::Position;
use lakelink_model::column_type::FieldKind;
use lakelink_model::value::Value;
use postgres::error::SqlState;
use postgres::{Client, IsolationLevel, SimpleQueryMessage};
use std::ops::ControlFlow;

/// Tries before the copy reports the table busy (the agent then retries with backoff). Each
/// waits at most [`DDL_LOCK_TIMEOUT`] for the table's in-flight writers: while it waits, new
/// writers queue behind it, so the wait stays short.
const LOCK_TRIES: u32 = 3;
/// Rows fetched per round trip, at most.
const FETCH_ROWS: usize = 5000;
/// Bytes of rows fetched per round trip, about: a fetch's rows are all in memory at once,
/// so the next fetch asks for as many rows as the last ones' size says fit.
const FETCH_BYTES: usize = 4 << 20;

/// What failed, and the server's error.
pub type CopyError = (&'static str, postgres::Error);

/// Copies `table` at an exact position; `reader` is a second connection to the same
/// database. Returns the position (the WAL insert position while the table was locked).
pub fn copy_table(
    locker: &mut Client,
    reader: &mut Client,
    table: &QualifiedTable,
    columns: &[String],
    kinds: &[FieldKind],
    on_row: &mut dyn FnMut(Position, Vec<Value>) -> ControlFlow<()>,
) -> Result<Position, CopyError> {
    let mut tries = 0;
    let (lock, snapshot, position) = loop {
        tries += 1;
        let mut lock = locker
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .start()
            .map_err(|e| ("starting the copy", e))?;
        // LOCK and SET take no snapshot, so the one exported below is taken under the lock.
        lock.batch_execute(&format!("SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'"))
            .map_err(|e| ("starting the copy", e))?;
        match lock.batch_execute(&format!("LOCK TABLE {} IN SHARE MODE", table.sql())) {
            Ok(()) => {}
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) && tries < LOCK_TRIES => {
                tracing::info!(table = %table.sql(), tries, "waiting for the table's writers to finish before the copy");
                continue;
            }
            Err(e) => return Err(("locking the table for the copy's hand-off", e)),
        }
        let row = lock
            .query_one(
                "SELECT pg_export_snapshot(), (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8",
                &[],
            )
            .map_err(|e| ("exporting the copy's snapshot", e))?;
        let snapshot: String = row.get(0);
        let position: i64 = row.get(1);
        break (lock, snapshot, Position(position));
    };
    let mut copy = reader
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(|e| ("starting the copy's read", e))?;
    copy.batch_execute(&format!(
        "SET TRANSACTION SNAPSHOT '{}'",
        snapshot.replace('\'', "''")
    ))
    .map_err(|e| ("adopting the copy's snapshot", e))?;
    lock.commit()
        .map_err(|e| ("releasing the copy's lock", e))?;

    let list: Vec<String> = columns
        .iter()
        .map(|c| super::publication::quote_ident(c))
        .collect();
    copy.batch_execute(&format!(
        "DECLARE lakelink_copy NO SCROLL CURSOR FOR SELECT {} FROM {}",
        list.join(", "),
        table.sql()
    ))
    .map_err(|e| ("reading the table", e))?;
    let mut fetch_rows = 100;
    'chunks: loop {
        let messages = copy
            .simple_query(&format!("FETCH {fetch_rows} FROM lakelink_copy"))
            .map_err(|e| ("reading the table", e))?;
        let mut rows = 0;
        let mut bytes = 0usize;
        for message in messages {
            let SimpleQueryMessage::Row(row) = message else {
                continue;
            };
            rows += 1;
            bytes += (0..kinds.len())
                .map(|i| row.get(i).map_or(0, str::len))
                .sum::<usize>();
            let values = kinds
                .iter()
                .enumerate()
                .map(|(i, kind)| match row.get(i) {
                    Some(text) => types::from_text(text.to_string(), *kind),
                    None => Value::Null,
                })
                .collect();
            if on_row(position, values).is_break() {
                break 'chunks;
            }
        }
        if rows < fetch_rows {
            break;
        }
        let per_row = (bytes / rows.max(1)).max(1);
        fetch_rows = (FETCH_BYTES / per_row).clamp(1, FETCH_ROWS);
    }
    copy.commit().map_err(|e| ("ending the copy", e))?;
    Ok(position)
}
