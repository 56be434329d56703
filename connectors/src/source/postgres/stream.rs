//! Reading changes from the slot: one `pg_logical_slot_peek_binary_changes` call per batch,
//! decoded into change records. A peek decodes from the slot's confirmed position and
//! consumes nothing; `upto_nchanges` only stops at the end of a transaction, so the changes of
//! one commit position are never split across batches.

use super::pgoutput::{self, Message, RelationColumn, TupleValue};
use super::{LinkInfo, PostgresSource};
use crate::source::postgres::errors::source_error;
use crate::source::postgres::types;
use lakelink_model::change::{BrokenLink, Change, ChangeBatch, ChangeKind, LinkId, Position};
use lakelink_model::source::SourceError;
use lakelink_model::value::Value;
use postgres::fallible_iterator::FallibleIterator;
use std::collections::HashMap;

/// A relation as the current decoding run described it, and the link it feeds.
struct Relation {
    columns: Vec<RelationColumn>,
    /// For each of the link's columns, where the tuple carries it (`None`: dropped since).
    positions: Vec<Option<usize>>,
    link: LinkId,
    /// The tuple carries columns the link does not know yet (added while streaming).
    unknown_columns: bool,
}

/// Changes after `after`, up to about `max` (whole transactions).
pub fn read_changes(
    source: &mut PostgresSource,
    after: Position,
    max: usize,
) -> Result<ChangeBatch, SourceError> {
    let mut batch = ChangeBatch {
        end: after,
        ..ChangeBatch::default()
    };
    if source.links.is_empty() {
        return Ok(batch);
    }
    let name = source.name.clone();
    let slot = source.config.slot.clone();
    let err = |what: &str, e| source_error(&name, what, e);
    // By OID, which a rename or a move to another schema keeps: the changes of a renamed
    // table are never mistaken for another table's, nor skipped (the engine stops the table
    // when it sees the rename).
    let by_oid: HashMap<u32, LinkId> = source.links.iter().map(|(id, l)| (l.oid, *id)).collect();
    source.connection()?;
    // Disjoint borrows: the connection streams while the links are looked up.
    let client = &mut source.client;
    let links = &source.links;
    let deferred = &mut source.deferred;
    // Read before the peek: every commit that starts before this position is decoded by it.
    let flushed: i64 = client
        .query_one(
            "SELECT (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::int8",
            &[],
        )
        .map_err(|e| err("reading the WAL position", e))?
        .get(0);
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
            &[&slot],
        )
        .map_err(|e| err("looking for the replication slot", e))?
        .is_some();
    if !exists {
        return Err(SourceError::Unusable {
            source_name: name.clone(),
            reason: format!(
                "replication slot {slot:?} is gone (dropped outside lakelink?); changes since may be lost: relink the tables"
            ),
        });
    }
    if flushed - 1 <= after.0 {
        // No WAL since everything through `after` was read: nothing to decode, and the
        // server is spared a decoding run from the slot's restart position.
        return Ok(batch);
    }
    let statement = client
        .prepare(
            "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, 'proto_version', '1', 'publication_names', $3)",
        )
        .map_err(|e| err("reading changes", e))?;
    // A peek counts rows (begin, relation, change and commit messages), not changes: ask for
    // enough rows to fill the batch, and again for more when a cut peek still fell short, so
    // that a batch smaller than `max` means the slot had nothing more.
    let mut limit = max.max(1).saturating_mul(3).saturating_add(64);
    loop {
        batch.changes.clear();
        batch.broken.clear();
        batch.end = after;
        let rows_limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let params: [&(dyn postgres::types::ToSql + Sync); 3] = [&slot, &rows_limit, &slot];
        let mut rows = client
            .query_raw(&statement, params)
            .map_err(|e| err("reading changes", e))?;

        let mut relations: HashMap<u32, Relation> = HashMap::new();
        let mut read = 0usize;
        let mut position = Position(0);
        // Where the current transaction's changes start in the batch, to take them back when the
        // transaction must wait for the engine to widen a schema.
        let mut transaction_start = 0usize;
        let mut held_back = false;
        let mut new_columns_seen = false;
        while let Some(row) = rows.next().map_err(|e| err("reading changes", e))? {
            read += 1;
            let data: &[u8] = row.get(0);
            let message = pgoutput::decode(data).map_err(|e| SourceError::Database {
                source_name: name.clone(),
                what: "decoding changes".into(),
                source: Box::new(e),
            })?;
            match message {
                Message::Begin { final_lsn } => {
                    position = Position(final_lsn);
                    transaction_start = batch.changes.len();
                }
                Message::Commit { commit_lsn } => {
                    if commit_lsn > batch.end.0 {
                        batch.end = Position(commit_lsn);
                    }
                }
                Message::Relation { oid, columns, .. } => {
                    relations.remove(&oid);
                    let Some(&link) = by_oid.get(&oid) else {
                        continue;
                    };
                    let info = &links[&link];
                    let positions = info
                        .columns
                        .iter()
                        .map(|c| columns.iter().position(|r| &r.name == c))
                        .collect();
                    let unknown_columns = columns.iter().any(|r| !info.columns.contains(&r.name));
                    relations.insert(
                        oid,
                        Relation {
                            columns,
                            positions,
                            link,
                            unknown_columns,
                        },
                    );
                }
                Message::Insert { oid, .. }
                | Message::Update { oid, .. }
                | Message::Delete { oid, .. } => {
                    let Some(relation) = relations.get(&oid) else {
                        continue;
                    };
                    if position <= after {
                        continue;
                    }
                    if batch.broken.iter().any(|b| b.link == relation.link) {
                        continue;
                    }
                    if relation.unknown_columns {
                        let info = &links[&relation.link];
                        let shape = (relation.link, relation.columns.len());
                        let first_time = deferred.insert(shape);
                        if first_time {
                            // Columns were added while streaming: stop before this transaction so
                            // that the engine widens the table first and the new values are kept.
                            tracing::debug!(table = %info.table.sql(), "columns added; holding the batch until the engine widens the table");
                            batch.changes.truncate(transaction_start);
                            batch.end = Position(batch.end.0.min(position.0 - 1)).max(after);
                            held_back = true;
                            new_columns_seen = true;
                            break;
                        }
                    }
                    let info = &links[&relation.link];
                    if relation.unknown_columns
                        && let Some(missing) = relation
                            .positions
                            .iter()
                            .zip(&info.columns)
                            .find_map(|(at, c)| at.is_none().then_some(c))
                    {
                        // A linked column is missing and an unknown one is there: a renamed
                        // column (the engine, which looked once, kept the table). Writing on
                        // would write its values as empty.
                        batch.broken.push(BrokenLink {
                            link: relation.link,
                            position,
                            reason: format!(
                                "column {missing:?} is no longer sent under that name (renamed, or dropped and another added), so its values would be written empty"
                            ),
                        });
                        continue;
                    }
                    let c = change(&name, info, relation, position, message)?;
                    batch.changes.push(c);
                }
                Message::Truncate { oids } => {
                    // Writing a TRUNCATE as a delete for every row the lake holds is not done
                    // yet; going on would leave the lake with rows the table no longer has, so
                    // the table stops, its changes of the transactions before this one written.
                    for oid in oids {
                        let Some(&link) = by_oid.get(&oid) else {
                            continue;
                        };
                        if position > after && !batch.broken.iter().any(|b| b.link == link) {
                            batch.broken.push(BrokenLink {
                                link,
                                position,
                                reason: "was emptied by TRUNCATE, which lakelink does not yet write to the lake as deletes, so its entity would keep rows the table no longer has".into(),
                            });
                        }
                    }
                }
                Message::Other => {}
            }
        }
        drop(rows);
        if new_columns_seen {
            source.schema_bump += 1;
        }
        // Not cut short by the limit: every commit before `flushed` has been read, including
        // those of tables lakelink does not capture, so the position may move up to there.
        let cut = read >= limit;
        if !held_back && !cut {
            batch.end = batch.end.max(Position(flushed - 1));
        }
        batch.more = held_back || cut;
        if held_back || !cut || batch.changes.len() >= max || rows_limit == i32::MAX {
            break;
        }
        limit = limit.saturating_mul(2);
    }
    Ok(batch)
}

/// One decoded row change as a change record of `info`'s link.
fn change(
    source_name: &str,
    info: &LinkInfo,
    relation: &Relation,
    position: Position,
    message: Message,
) -> Result<Change, SourceError> {
    let (kind, old, new) = match message {
        Message::Insert { new, .. } => (ChangeKind::Insert, None, Some(new)),
        Message::Update { old, new, .. } => (ChangeKind::Update, old, Some(new)),
        Message::Delete { old, .. } => (ChangeKind::Delete, Some(old), None),
        _ => unreachable!("only row changes are passed here"),
    };
    let values = |tuple: &[TupleValue], fallback: Option<&[TupleValue]>| {
        relation
            .positions
            .iter()
            .zip(&info.kinds)
            .enumerate()
            .map(|(c, (at, kind))| {
                let Some(at) = *at else {
                    // A column dropped since the link: written empty.
                    return Ok(Value::Null);
                };
                match tuple.get(at) {
                    Some(TupleValue::Text(text)) => Ok(types::from_text(text.clone(), *kind)),
                    Some(TupleValue::Null) | None => Ok(Value::Null),
                    Some(TupleValue::UnchangedToast) => {
                        // Unchanged TOASTed value: carried from the old row, which REPLICA
                        // IDENTITY FULL makes the server send whole.
                        match fallback.and_then(|old| old.get(at)) {
                            Some(TupleValue::Text(text)) => {
                                Ok(types::from_text(text.clone(), *kind))
                            }
                            Some(TupleValue::Null) => Ok(Value::Null),
                            _ => Err(SourceError::Unusable {
                                source_name: source_name.to_string(),
                                reason: format!(
                                    "table {}: an update at position {position} left column {:?} unchanged and the server sent no old row to carry it from; run ALTER TABLE {} REPLICA IDENTITY FULL and relink the table",
                                    info.table.sql(),
                                    info.columns[c],
                                    info.table.sql()
                                ),
                            }),
                        }
                    }
                }
            })
            .collect::<Result<Vec<Value>, SourceError>>()
    };
    let old_row = match &old {
        Some(old) => Some(values(old, None)?),
        None => None,
    };
    let row = match &new {
        Some(new) => values(new, old.as_deref())?,
        None => Vec::new(),
    };
    // Without an old row (an identity that sends none) the key and partition are unchanged.
    let before = old_row.as_ref().unwrap_or(&row);
    let old_key = info.key.iter().map(|&k| before[k].clone()).collect();
    let old_partition = info.partition.map_or(Value::Null, |p| before[p].clone());
    Ok(Change {
        position,
        link: relation.link,
        kind,
        row,
        old_key,
        old_partition,
    })
}
