//! The initial copy's exact hand-off to the stream, over ordinary SQL connections.
//!
//! The table is already in the publication and the slot exists (both committed). Connection
//! A then opens a REPEATABLE READ transaction and takes `LOCK TABLE ... IN SHARE MODE`: the
//! lock waits for every transaction that wrote the table to end and keeps new writers out.
//! Under the lock A exports its snapshot and reads the WAL insert position `P0`. Every
//! transaction that wrote the table committed before the lock was granted, so it is in the
//! snapshot and its commit record lies before `P0`; every later writer must wait for A to end,
//! so its changes and commit record lie after `P0` and are decoded from the slot. Connection B
//! adopts the snapshot, A commits (the lock lasted milliseconds), and B streams the table with
//! `COPY (SELECT ...) TO STDOUT`, a row at a time, never holding it in memory: in the binary
//! form where every column's type reads exactly ([`copy_binary`]), in the text form otherwise.
//! The copy stands at `P0`.

use super::copy_binary::{self, FieldDecoder};
use super::copy_text;
use super::lock_wait::DDL_LOCK_TIMEOUT;
use super::publication::QualifiedTable;
use super::types;
use lakelink_model::change::Position;
use lakelink_model::column_type::FieldKind;
use lakelink_model::value::Value;
use postgres::binary_copy::BinaryCopyOutIter;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, Type};
use postgres::{Client, IsolationLevel, Transaction};
use std::ops::ControlFlow;

/// Tries before the copy reports the table busy (the agent then retries with backoff). Each
/// waits at most [`DDL_LOCK_TIMEOUT`] for the table's in-flight writers: while it waits, new
/// writers queue behind it, so the wait stays short.
const LOCK_TRIES: u32 = 3;

/// How a copy failed.
#[derive(Debug)]
pub enum CopyError {
    /// What failed, and the server's error.
    Server(&'static str, postgres::Error),
    /// What failed, and the connection's error while the rows streamed.
    Stream(&'static str, std::io::Error),
    /// The stream held something COPY does not send.
    Damaged(&'static str),
}

impl CopyError {
    /// An error reading the COPY stream: the server's, when that is what it carries.
    fn from_stream(what: &'static str, e: std::io::Error) -> CopyError {
        match e
            .get_ref()
            .is_some_and(|inner| inner.is::<postgres::Error>())
        {
            true => match e
                .into_inner()
                .map(|inner| inner.downcast::<postgres::Error>())
            {
                Some(Ok(server)) => CopyError::Server(what, *server),
                _ => CopyError::Damaged(what),
            },
            false => CopyError::Stream(what, e),
        }
    }
}

/// Copies `table` at an exact position; `reader` is a second connection to the same
/// database. Returns the position (the WAL insert position while the table was locked).
pub fn copy_table(
    locker: &mut Client,
    reader: &mut Client,
    table: &QualifiedTable,
    columns: &[String],
    kinds: &[FieldKind],
    cancel: &dyn Fn(&postgres::CancelToken),
    on_row: &mut dyn FnMut(Position, Vec<Value>) -> ControlFlow<()>,
) -> Result<Position, CopyError> {
    let mut tries = 0;
    let (lock, snapshot, position) = loop {
        tries += 1;
        let mut lock = locker
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .start()
            .map_err(|e| CopyError::Server("starting the copy", e))?;
        // LOCK and SET take no snapshot, so the one exported below is taken under the lock.
        // lock_timeout bounds the wait; a statement_timeout set for the role or the database
        // (shorter than a wait for autovacuum, which yields only after deadlock_timeout)
        // would cancel it instead, and the copy with it, at every try.
        lock.batch_execute(&format!(
            "SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'; SET LOCAL statement_timeout = 0"
        ))
        .map_err(|e| CopyError::Server("starting the copy", e))?;
        match lock.batch_execute(&format!("LOCK TABLE {} IN SHARE MODE", table.sql())) {
            Ok(()) => {}
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) && tries < LOCK_TRIES => {
                tracing::info!(table = %table.sql(), tries, "waiting for the table's writers to finish before the copy");
                continue;
            }
            Err(e) => {
                return Err(CopyError::Server(
                    "locking the table for the copy's hand-off",
                    e,
                ));
            }
        }
        let row = lock
            .query_one(
                "SELECT pg_export_snapshot(), (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8",
                &[],
            )
            .map_err(|e| CopyError::Server("exporting the copy's snapshot", e))?;
        let snapshot: String = row.get(0);
        let position: i64 = row.get(1);
        break (lock, snapshot, Position(position));
    };
    let token = reader.cancel_token();
    let mut copy = reader
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(|e| CopyError::Server("starting the copy's read", e))?;
    // The whole table is one COPY statement: a statement_timeout set for the role or the
    // database (common on managed servers) would cancel a big table's copy at every try.
    copy.batch_execute(&format!(
        "SET TRANSACTION SNAPSHOT '{}'; SET LOCAL statement_timeout = 0",
        snapshot.replace('\'', "''")
    ))
    .map_err(|e| CopyError::Server("adopting the copy's snapshot", e))?;
    lock.commit()
        .map_err(|e| CopyError::Server("releasing the copy's lock", e))?;

    let list: Vec<String> = columns
        .iter()
        .map(|c| super::publication::quote_ident(c))
        .collect();
    let read = match plan_copy(&mut copy, table, columns, &list, kinds)? {
        Some(binary) => read_binary(&mut copy, table, &list, &binary, position, on_row),
        None => read_text(&mut copy, table, &list, kinds, position, on_row),
    };
    // When the rest is not wanted (or cannot be read), ending the transaction without a
    // cancel would wait for the server to send, and this side to discard, the whole remaining
    // table.
    match read {
        Ok(ControlFlow::Continue(())) => {}
        Ok(ControlFlow::Break(())) => {
            cancel(&token);
            return Ok(position);
        }
        Err(e) => {
            if matches!(e, CopyError::Damaged(_)) {
                cancel(&token);
            }
            return Err(e);
        }
    }
    copy.commit()
        .map_err(|e| CopyError::Server("ending the copy", e))?;
    Ok(position)
}

/// How the binary COPY reads a table's columns.
struct BinaryRead {
    /// One per column.
    decoders: Vec<FieldDecoder>,
    /// The columns' types as the server describes them (a domain as its base type).
    types: Vec<Type>,
}

/// How the copy reads `table`'s `columns` (`list`, quoted): binary, or `None` for the text
/// COPY.
fn plan_copy(
    copy: &mut Transaction<'_>,
    table: &QualifiedTable,
    columns: &[String],
    list: &[String],
    kinds: &[FieldKind],
) -> Result<Option<BinaryRead>, CopyError> {
    let described = copy
        .prepare(&format!("SELECT {} FROM {}", list.join(", "), table.sql()))
        .map_err(|e| CopyError::Server("reading the table's column types", e))?;
    let types: Vec<Type> = described
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    let with_text_casts: Vec<u32> = copy
        .query(
            "SELECT castsource FROM pg_catalog.pg_cast WHERE casttarget = 'pg_catalog.text'::pg_catalog.regtype",
            &[],
        )
        .map_err(|e| CopyError::Server("reading the casts to text", e))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let oids: Vec<u32> = types.iter().map(Type::oid).collect();
    match copy_binary::plan(&oids, kinds, |t| with_text_casts.contains(&t)) {
        Ok(decoders) => {
            tracing::debug!(table = %table.sql(), "the copy reads the table in COPY's binary form");
            Ok(Some(BinaryRead { decoders, types }))
        }
        Err(i) => {
            tracing::debug!(
                table = %table.sql(),
                column = %columns[i],
                column_type = %types[i],
                "the copy reads the table in COPY's text form: the binary form of this column's type is not read exactly"
            );
            Ok(None)
        }
    }
}

/// Streams the table with `COPY (SELECT ...) TO STDOUT (FORMAT binary)`, a message per row:
/// memory holds one row at a time whatever the table's size, and no round trip waits between
/// chunks.
fn read_binary(
    copy: &mut Transaction<'_>,
    table: &QualifiedTable,
    list: &[String],
    binary: &BinaryRead,
    position: Position,
    on_row: &mut dyn FnMut(Position, Vec<Value>) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, CopyError> {
    let expressions: Vec<String> = list
        .iter()
        .zip(&binary.decoders)
        .map(|(column, decoder)| copy_binary::select_expression(column, *decoder))
        .collect();
    let query = format!(
        "COPY (SELECT {} FROM {}) TO STDOUT (FORMAT binary)",
        expressions.join(", "),
        table.sql()
    );
    let reader = copy
        .copy_out(&query)
        .map_err(|e| CopyError::Server("reading the table", e))?;
    let mut rows = BinaryCopyOutIter::new(reader, &binary.types);
    while let Some(row) = rows
        .next()
        .map_err(|e| CopyError::Server("reading the table", e))?
    {
        let mut values = Vec::with_capacity(binary.decoders.len());
        for (i, decoder) in binary.decoders.iter().enumerate() {
            let field = row
                .try_get::<Option<RawField<'_>>>(i)
                .map_err(|e| CopyError::Server("reading the table", e))?;
            values.push(match field {
                Some(RawField(raw)) => decoder.decode(raw).ok_or(CopyError::Damaged(
                    "a value of the copy that is not what COPY sends for its type (a torn or damaged stream)",
                ))?,
                None => Value::Null,
            });
        }
        if on_row(position, values).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// A field's bytes as the binary COPY sent them, whatever its type: [`FieldDecoder`] decodes
/// them.
struct RawField<'a>(&'a [u8]);

impl<'a> FromSql<'a> for RawField<'a> {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> Result<RawField<'a>, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawField(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Streams the table with `COPY (SELECT ...) TO STDOUT` in COPY's text form, for a table with
/// a column whose binary form is not read exactly.
fn read_text(
    copy: &mut Transaction<'_>,
    table: &QualifiedTable,
    list: &[String],
    kinds: &[FieldKind],
    position: Position,
    on_row: &mut dyn FnMut(Position, Vec<Value>) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, CopyError> {
    let query = format!(
        "COPY (SELECT {} FROM {}) TO STDOUT",
        list.join(", "),
        table.sql()
    );
    let mut rows = copy
        .copy_out(&query)
        .map_err(|e| CopyError::Server("reading the table", e))?;
    let mut line = Vec::new();
    let mut fields = Vec::with_capacity(kinds.len());
    loop {
        let read = copy_text::read_row(&mut rows, &mut line, &mut fields)
            .map_err(|e| CopyError::from_stream("reading the table", e))?;
        match read {
            copy_text::RowRead::End => return Ok(ControlFlow::Continue(())),
            copy_text::RowRead::Row if fields.len() == kinds.len() => {}
            _ => {
                return Err(CopyError::Damaged(
                    "a row of the copy that is not what COPY sends (a torn or damaged stream)",
                ));
            }
        }
        let values = fields
            .drain(..)
            .zip(kinds)
            .map(|(field, kind)| match field {
                Some(text) => types::from_text(text, *kind),
                None => Value::Null,
            })
            .collect();
        if on_row(position, values).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
}
