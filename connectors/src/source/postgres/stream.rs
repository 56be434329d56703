//! Reading changes from the replication session: the transactions the server streams,
//! decoded into change records, whole transactions per batch (a transaction's changes share
//! its commit position, which is never split across batches).
//!
//! The session outlives a batch: the next read goes on from where the last one stopped when it
//! starts where that batch ended. A read from anywhere else (a table linked at an older
//! position, a batch held back for a schema change), or after the engine dropped the batch it
//! read ([`lakelink_model::source::Source::discard_read`]), starts a new session from there:
//! the slot re-sends what the lake has not confirmed, and nothing the engine acknowledged.

use super::pgoutput::{self, Message, RelationColumn, TupleValue};
use super::replication::{Event, ReplicationError, ReplicationStream};
use super::{LinkInfo, PostgresSource};
use crate::source::postgres::errors::{replication_error, source_error};
use crate::source::postgres::types;
use lakelink_model::change::{BrokenLink, Change, ChangeBatch, ChangeKind, LinkId, Position};
use lakelink_model::source::SourceError;
use lakelink_model::value::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a read waits for the server to have sent everything committed before the read
/// began, before it returns what it has (saying there is more).
const READ_WAIT: Duration = Duration::from_secs(1);

/// How long a read waits for the server to say on its own how far it has sent before it
/// asks.
const FIRST_ASK: Duration = Duration::from_millis(10);

/// How often a waiting read asks the server how far it has sent.
const ASK_EVERY: Duration = Duration::from_millis(50);

/// How many bytes of the server's messages one batch holds the changes of, about (a batch
/// also ends at `batch_size` changes): what bounds the memory a large transaction takes.
const BATCH_BYTES: usize = 8 << 20;

/// How long starting a session may take.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a session start waits for the slot to be released by a session that is ending
/// (the agent's own last one, or that of an agent killed a moment ago).
const SLOT_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// A transaction the batches read so far hold the first changes of (one too large for a
/// batch): its position, and how many of its row messages they hold. The engine expects the
/// rest next, so a new session, which sends the transaction from its first change, skips
/// that many; only when the engine dropped a batch ([`Source::discard_read`]) or restarted
/// does it take the transaction from its first change again (its live files skip what they
/// hold).
///
/// [`Source::discard_read`]: lakelink_model::source::Source::discard_read
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    position: Position,
    row_messages: u64,
}

/// A replication session and what it has said so far.
pub struct Session {
    stream: ReplicationStream,
    /// The end of the last batch read from it: a read from here goes on.
    delivered: Position,
    /// The split transaction's row messages this session still has to pass (it was started
    /// while the engine held the first of them; see [`Split`]), until it sends them or another
    /// transaction first.
    skip: Option<Split>,
    /// The last batch read from it ended inside the split transaction: the next read goes on
    /// there.
    inside: bool,
    /// Each relation's columns as the session last described them (sent once per session,
    /// before the relation's first change, and again when they change).
    relations: HashMap<u32, Vec<RelationColumn>>,
}

impl Session {
    /// Everything through `upto` is durable in the lake.
    pub fn confirm(&self, upto: Position) {
        self.stream.confirm(upto.0.max(0) as u64 + 1);
    }
}

/// A relation as the session described it, and the link it feeds.
struct Relation {
    /// How many columns the session sends.
    width: usize,
    /// For each of the link's columns, where the tuple carries it (`None`: dropped since).
    positions: Vec<Option<usize>>,
    link: LinkId,
    /// The tuple carries columns the link does not know yet (added while streaming).
    unknown_columns: bool,
}

impl Relation {
    fn new(columns: &[RelationColumn], link: LinkId, info: &LinkInfo) -> Relation {
        Relation {
            width: columns.len(),
            positions: info
                .columns
                .iter()
                .map(|c| columns.iter().position(|r| &r.name == c))
                .collect(),
            unknown_columns: columns.iter().any(|r| !info.columns.contains(&r.name)),
            link,
        }
    }
}

/// Changes after `after`, up to about `max` (whole transactions).
pub fn read_changes(
    source: &mut PostgresSource,
    after: Position,
    max: usize,
) -> Result<ChangeBatch, SourceError> {
    let batch = ChangeBatch {
        end: after,
        ..ChangeBatch::default()
    };
    if source.links.is_empty() {
        return Ok(batch);
    }
    // Read before asking the session: every transaction that committed before this position
    // was there when this read began.
    let flushed = source.flush_position_for_read()?;
    if flushed - 1 <= after.0 {
        // No WAL since everything through `after` was read.
        return Ok(batch);
    }
    if source
        .session
        .as_ref()
        .is_some_and(|s| s.delivered != after)
    {
        // Not where the last batch ended. Dropped first: the slot is free for the new
        // session.
        source.session = None;
    }
    if source.session.is_none() {
        source.session = Some(start_session(source, after)?);
    }
    match read_session(source, batch, flushed, max) {
        Ok((batch, Read::Whole(split))) => {
            source.split = split;
            Ok(batch)
        }
        Ok((batch, Read::HeldBack(split))) => {
            // The held-back transaction was taken from the session: the next read starts a
            // new one, which sends it again (with the relation described anew), past what
            // earlier batches held of it if it is split across them.
            source.schema_bump += 1;
            source.session = None;
            source.split = split;
            Ok(batch)
        }
        Err(e) => {
            // Part of the session's messages were taken: a read again must start anew.
            source.session = None;
            Err(e)
        }
    }
}

/// How a read of the session ended.
enum Read {
    /// At a transaction's end, or inside one too large for a batch (then how far): the
    /// session goes on from the batch's end.
    Whole(Option<Split>),
    /// Before a transaction that must wait for the engine to widen its table (and what the
    /// engine then holds of a split transaction).
    HeldBack(Option<Split>),
}

/// Adds to `batch` what the session sends, up to about `max` changes or until it has sent
/// everything committed before `flushed`.
fn read_session(
    source: &mut PostgresSource,
    mut batch: ChangeBatch,
    flushed: i64,
    max: usize,
) -> Result<(ChangeBatch, Read), SourceError> {
    let after = batch.end;
    let name = source.name.clone();
    // By OID, which a rename or a move to another schema keeps: the changes of a renamed
    // table are never mistaken for another table's, nor skipped (the engine stops the table
    // when it sees the rename).
    let by_oid: HashMap<u32, LinkId> = source.links.iter().map(|(id, l)| (l.oid, *id)).collect();
    let links = &source.links;
    let deferred = &mut source.deferred;
    let split = source.split;
    let Some(session) = source.session.as_mut() else {
        return Ok((batch, Read::Whole(split)));
    };
    let stream = &session.stream;
    let described = &mut session.relations;
    let client = &mut source.client;
    // Each described relation against its link as the engine knows it now (a link widened
    // since the description counts the new columns as known).
    let mut relations: HashMap<u32, Relation> = described
        .iter()
        .filter_map(|(oid, columns)| {
            let link = *by_oid.get(oid)?;
            Some((*oid, Relation::new(columns, link, &links[&link])))
        })
        .collect();

    let deadline = Instant::now() + READ_WAIT;
    // The server says how far it has sent on its own whenever it catches up with the WAL
    // (this side reports less as received): asked only when that does not come soon, since
    // every question wakes the server.
    let mut asked = Instant::now() - ASK_EVERY + FIRST_ASK;
    // Everything that committed before this WAL position has been read.
    let mut sent_through = 0i64;
    // What the read waits for the server to have sent: the flush position, or less when the
    // server has decoded all it can (the last record it could read may end past the flush
    // position, whose rest the server writes out later).
    let mut target = flushed;
    let mut idle_checked = Instant::now() - ASK_EVERY;
    // A transaction the last batch ended inside goes on: in the same session, where it
    // stopped; in a new one (which sends it from its first change), past the row messages
    // the batches before held.
    let continuing = split.filter(|_| session.inside);
    let mut skipping = session.skip;
    // The split transaction's commit was read: the engine has all of it after this batch.
    let mut split_committed = false;
    let mut position = continuing.map_or(Position(0), |s| s.position);
    let mut in_transaction = continuing.is_some();
    // Row messages of the current transaction read so far (those of earlier batches too).
    let mut row_messages = continuing.map_or(0, |s| s.row_messages);
    // Where the current transaction's changes start in the batch, to take them back when the
    // transaction must wait for the engine to widen a schema.
    let mut transaction_start = 0usize;
    let mut held_back = false;
    let mut cut = false;
    let mut inside = false;
    // The bytes of the messages this batch holds changes of.
    let mut bytes = 0usize;
    loop {
        if in_transaction
            && !batch.changes.is_empty()
            && (batch.changes.len() >= max || bytes >= BATCH_BYTES)
        {
            // A transaction too large for one batch: its first changes go now, the rest in
            // the next batches (see `Split`).
            inside = true;
            break;
        }
        if !in_transaction {
            if batch.changes.len() >= max || bytes >= BATCH_BYTES {
                cut = true;
                break;
            }
            if sent_through >= target {
                break;
            }
            if Instant::now() >= deadline {
                // The server is still decoding what was there (a long transaction of another
                // table, a backlog): what was read so far makes a batch, and there is more.
                tracing::debug!(
                    sent_through,
                    target,
                    "the server has not sent everything yet; the batch ends where it has"
                );
                cut = true;
                break;
            }
            if asked.elapsed() >= ASK_EVERY {
                if idle_checked.elapsed() >= ASK_EVERY
                    && let Some(through) = decoded_all_through(client, &name, stream.server_pid())?
                {
                    target = target.min(through);
                }
                idle_checked = Instant::now();
                stream.ask_position();
                asked = Instant::now();
            }
        }
        let wait = if in_transaction {
            ASK_EVERY
        } else {
            deadline
                .saturating_duration_since(Instant::now())
                .min(ASK_EVERY)
        };
        let data = match stream.next(wait) {
            None => continue,
            Some(Event::SentThrough(through)) => {
                // Sent after every transaction that committed before it, so never past the
                // position of one still being read.
                sent_through = sent_through.max(through as i64);
                continue;
            }
            Some(Event::Ended(e)) => return Err(session_error(&name, e)),
            Some(Event::Data(data)) => data,
        };
        bytes += data.len();
        let message = pgoutput::decode(&data).map_err(|e| SourceError::Database {
            source_name: name.clone(),
            what: "decoding changes".into(),
            source: Box::new(e),
        })?;
        match message {
            Message::Begin { final_lsn } => {
                position = Position(final_lsn);
                transaction_start = batch.changes.len();
                in_transaction = true;
                row_messages = 0;
                if skipping.is_some_and(|s| s.position != position) {
                    skipping = None;
                }
            }
            Message::Commit { commit_lsn } => {
                in_transaction = false;
                if split.is_some_and(|s| s.position.0 == commit_lsn) {
                    split_committed = true;
                    skipping = None;
                }
                if commit_lsn > batch.end.0 {
                    batch.end = Position(commit_lsn);
                }
            }
            Message::Relation { oid, columns, .. } => {
                match by_oid.get(&oid) {
                    Some(&link) => {
                        relations.insert(oid, Relation::new(&columns, link, &links[&link]));
                    }
                    None => {
                        relations.remove(&oid);
                    }
                }
                described.insert(oid, columns);
            }
            Message::Insert { .. }
            | Message::Update { .. }
            | Message::Delete { .. }
            | Message::Truncate { .. }
                if skipping.is_some_and(|s| row_messages < s.row_messages) =>
            {
                // Held by a batch before this session: the engine has it.
                row_messages += 1;
            }
            Message::Insert { oid, .. }
            | Message::Update { oid, .. }
            | Message::Delete { oid, .. } => {
                row_messages += 1;
                let Some(relation) = relations.get(&oid) else {
                    continue;
                };
                if position <= after {
                    continue;
                }
                if batch.broken.iter().any(|b| b.link == relation.link) {
                    continue;
                }
                let info = &links[&relation.link];
                if relation.unknown_columns {
                    let shape = (relation.link, relation.width);
                    let first_time = deferred.insert(shape);
                    if first_time {
                        // Columns were added while streaming: stop before this transaction so
                        // that the engine widens the table first and the new values are kept.
                        tracing::debug!(table = %info.table.sql(), "columns added; holding the batch until the engine widens the table");
                        batch.changes.truncate(transaction_start);
                        batch.end = Position(batch.end.0.min(position.0 - 1)).max(after);
                        held_back = true;
                        break;
                    }
                }
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
                row_messages += 1;
                if position <= after {
                    continue;
                }
                // One change per linked table the TRUNCATE emptied, in its place among the
                // transaction's changes: the engine writes a delete record for every row the
                // lake holds of it at this point.
                for oid in oids {
                    let Some(&link) = by_oid.get(&oid) else {
                        continue;
                    };
                    if batch.broken.iter().any(|b| b.link == link) {
                        continue;
                    }
                    batch.changes.push(Change {
                        position,
                        link,
                        kind: ChangeKind::Truncate,
                        row: Vec::new(),
                        old_key: Vec::new(),
                        old_partition: Value::Null,
                    });
                }
            }
            Message::Other => {}
        }
    }
    // What the engine holds of a split transaction after this batch.
    let kept = split.filter(|_| !split_committed);
    if held_back {
        batch.more = true;
        batch.open_position = kept.map(|s| s.position).filter(|&p| p > batch.end);
        return Ok((batch, Read::HeldBack(kept)));
    }
    let split = if inside {
        // Everything before the open transaction is whole; its position is not.
        batch.end = batch.end.max(after);
        batch.more = true;
        session.inside = true;
        session.skip = None;
        Some(Split {
            position,
            row_messages,
        })
    } else {
        // Every transaction that committed before `sent_through` has been read, including
        // those of tables lakelink does not capture, so the position may move up to there.
        batch.end = batch.end.max(Position(sent_through - 1)).max(after);
        batch.more = cut;
        session.inside = false;
        // A session that has not reached the split transaction yet (the server still decoding
        // up to it) keeps what it must pass, and the engine keeps what it holds.
        session.skip = skipping;
        kept.filter(|_| skipping.is_some())
    };
    batch.open_position = split.map(|s| s.position);
    session.delivered = batch.end;
    Ok((batch, Read::Whole(split)))
}

/// A new session sending what committed after `after`. A session still ending (this
/// source's last one, or that of an agent that was killed) holds the slot for a moment: it
/// is waited for.
fn start_session(source: &mut PostgresSource, after: Position) -> Result<Session, SourceError> {
    let name = source.name.clone();
    let slot = source.config.slot.clone();
    let confirmed: Option<Option<i64>> = source
        .connection()?
        .query_opt(
            "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
            &[&slot],
        )
        .map_err(|e| source_error(&name, "looking for the replication slot", e))?
        .map(|row| row.get(0));
    let Some(confirmed) = confirmed else {
        return Err(SourceError::Unusable {
            source_name: name.clone(),
            reason: format!(
                "replication slot {slot:?} is gone (dropped outside lakelink?); changes since may be lost: relink the tables"
            ),
        });
    };
    let start = after.0.max(0) as u64 + 1;
    let confirmed = confirmed.unwrap_or(0).max(0) as u64;
    let give_up = Instant::now() + SLOT_RELEASE_WAIT;
    loop {
        match ReplicationStream::start(
            &source.config,
            &slot,
            &slot,
            start,
            confirmed,
            START_TIMEOUT,
        ) {
            Ok(stream) => {
                return Ok(Session {
                    stream,
                    delivered: after,
                    skip: source.split,
                    inside: false,
                    relations: HashMap::new(),
                });
            }
            Err(ReplicationError::Server { code, message }) if code == "55006" => {
                if Instant::now() >= give_up {
                    // Still held: by another agent or tool on the same slot, or by a session
                    // the server has not yet noticed is gone. The agent tries again.
                    return Err(SourceError::Busy {
                        source_name: name,
                        what: format!(
                            "starting to stream from replication slot {slot:?}: {message}; if another lakelink or tool reads this slot, give each its own source.slot"
                        ),
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(session_error(&name, e)),
        }
    }
}

/// The position the session's server process has sent everything through, when it has
/// decoded all the WAL it can and waits for more (`None` while it is still decoding): every
/// transaction that committed before that position has been sent, and nothing after it can
/// be decoded yet.
fn decoded_all_through(
    client: &mut postgres::Client,
    name: &str,
    pid: i32,
) -> Result<Option<i64>, SourceError> {
    let err = |e| source_error(name, "looking at the replication session", e);
    let waiting = client
        .query_opt(
            "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'WalSenderWaitForWAL'",
            &[&pid],
        )
        .map_err(err)?
        .is_some();
    if !waiting {
        return Ok(None);
    }
    // Read after it was seen waiting, so it covers everything decodable then.
    Ok(client
        .query_opt(
            "SELECT (sent_lsn - '0/0'::pg_lsn)::int8 FROM pg_stat_replication WHERE pid = $1",
            &[&pid],
        )
        .map_err(err)?
        .and_then(|row| row.get::<_, Option<i64>>(0)))
}

/// A session's end as a source error.
fn session_error(name: &str, e: ReplicationError) -> SourceError {
    replication_error(name, "streaming changes", e)
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
