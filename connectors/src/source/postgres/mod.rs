//! The PostgreSQL source: changes decoded from the write-ahead log through a logical
//! replication slot with the built-in `pgoutput` plugin, streamed over a replication session
//! (`START_REPLICATION`, see [`replication`]) so that the server decodes each WAL record once;
//! an ordinary SQL connection does the rest (catalog lookups, the publication, the copy's
//! hand-off). Reading never consumes: the slot's confirmed position advances only when the
//! engine acknowledges what is durable in the lake, so a crash re-delivers.
//!
//! A change's position is its transaction's commit LSN: equal for the changes of one
//! transaction, increasing across transactions (transactions are decoded in commit order).

mod config;
mod copy_binary;
mod copy_text;
mod errors;
mod handoff;
mod lock_wait;
mod pgoutput;
mod publication;
mod replication;
mod stream;
mod tls;
mod types;

pub use config::{DEFAULT_PORT, DEFAULT_SLOT, PostgresSourceConfig, SslMode};

use errors::source_error;
use lakelink_model::change::{ChangeBatch, LinkId, Position};
use lakelink_model::column_type::FieldKind;
use lakelink_model::schema::SourceColumn;
use lakelink_model::source::{CaptureSpec, ExistingRows, Source, SourceError, SourceTable};
use lakelink_model::table_ref::TableRef;
use lakelink_model::value::Value;
use postgres::{Client, NoTls};
use publication::QualifiedTable;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Duration;

/// How long connecting may take before it counts as a transient failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema a `[[table]]` is looked up in unless it names one.
const DEFAULT_SCHEMA: &str = "public";

/// Joined to `pg_attribute a`: the column's type with every domain resolved to its base type
/// (`base.type_oid`) and the innermost domain's modifier (`base.typmod`), as the server itself
/// resolves it (`getBaseTypeAndTypmod`) when it describes a query's columns, so that a domain
/// over a domain over `boolean` is a boolean, and the copy's binary decoders
/// ([`copy_binary`]) see the kind the link recorded.
const BASE_TYPE_JOIN: &str = "CROSS JOIN LATERAL ( \
        WITH RECURSIVE chain(type_oid, typmod, depth) AS ( \
            SELECT a.atttypid, a.atttypmod, 0 \
            UNION ALL \
            SELECT t.typbasetype, t.typtypmod, chain.depth + 1 \
            FROM chain JOIN pg_catalog.pg_type t ON t.oid = chain.type_oid WHERE t.typtype = 'd') \
        SELECT type_oid, typmod FROM chain ORDER BY depth DESC LIMIT 1) base";

/// What is known about each link whose changes this source reads.
#[derive(Debug, Clone)]
struct LinkInfo {
    table: QualifiedTable,
    oid: u32,
    columns: Vec<String>,
    kinds: Vec<FieldKind>,
    key: Vec<usize>,
    partition: Option<usize>,
}

/// A PostgreSQL database as a source.
pub struct PostgresSource {
    config: PostgresSourceConfig,
    name: String,
    client: Client,
    links: HashMap<LinkId, LinkInfo>,
    /// Bumped when a decoded change shows columns the engine has not been told about, so that
    /// [`Source::schema_version`] makes the engine look again before the next batch.
    schema_bump: i64,
    /// Relations whose unknown columns already held a batch back once (by link and number of
    /// columns): a column that is gone again by the time the engine looks is not waited for
    /// twice.
    deferred: std::collections::HashSet<(LinkId, usize)>,
    /// Whether the slot was last seen keeping more WAL than `retained_wal_warning_mb`: the
    /// warning is logged when it crosses the line, not at every look.
    over_retained_warning: bool,
    /// The replication session changes stream over, once a read started one.
    session: Option<stream::Session>,
    /// The transaction the batches read so far end inside, if any (kept when a session ends).
    split: Option<stream::Split>,
    /// The statements run before every batch, prepared once per connection: parsing and
    /// planning them each time would cost the server more than running them.
    prepared: HashMap<&'static str, postgres::Statement>,
    /// The WAL flush position read with the schema version, for the batch read that follows
    /// it (taken once), and when it was last read (for lag, which may be a moment old).
    flush_for_read: Option<i64>,
    flush_seen: Option<(i64, std::time::Instant)>,
}

impl PostgresSource {
    /// Connects, checks that the server can decode logically, and sets the session up for
    /// the text forms [`types`] parses.
    pub fn open(config: &PostgresSourceConfig) -> Result<PostgresSource, SourceError> {
        let name = format!(
            "PostgreSQL database {} on {}:{}",
            config.database, config.host, config.port
        );
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(SourceError::Unusable {
                source_name: name,
                reason: problems.join("; "),
            });
        }
        let mut client = connect(config, &name)?;
        let row = client
            .query_one(
                "SELECT current_setting('wal_level'), current_setting('server_encoding')",
                &[],
            )
            .map_err(|e| source_error(&name, "reading the server's settings", e))?;
        let wal_level: String = row.get(0);
        let encoding: String = row.get(1);
        if wal_level != "logical" {
            return Err(SourceError::Unusable {
                source_name: name,
                reason: format!(
                    "wal_level is {wal_level}; set wal_level = logical in postgresql.conf and restart the server"
                ),
            });
        }
        if encoding != "UTF8" {
            return Err(SourceError::Unusable {
                source_name: name,
                reason: format!(
                    "the database's encoding is {encoding}; lakelink reads UTF8 databases"
                ),
            });
        }
        Ok(PostgresSource {
            config: config.clone(),
            name,
            client,
            links: HashMap::new(),
            schema_bump: 0,
            deferred: Default::default(),
            over_retained_warning: false,
            session: None,
            split: None,
            prepared: HashMap::new(),
            flush_for_read: None,
            flush_seen: None,
        })
    }

    /// Reconnects when the server dropped the connection (a restart, a network failure);
    /// nothing else needs restoring: the replication session has its own connection.
    fn connection(&mut self) -> Result<&mut Client, SourceError> {
        if self.client.is_closed() {
            self.client = connect(&self.config, &self.name)?;
            self.prepared.clear();
            tracing::info!(source = %self.name, "reconnected");
        }
        Ok(&mut self.client)
    }

    /// The connection and `sql` prepared on it (once per connection).
    fn prepared(
        &mut self,
        sql: &'static str,
    ) -> Result<(&mut Client, postgres::Statement), SourceError> {
        self.connection()?;
        let statement = match self.prepared.get(sql) {
            Some(statement) => statement.clone(),
            None => {
                let statement = self
                    .client
                    .prepare(sql)
                    .map_err(|e| source_error(&self.name, "preparing a query", e))?;
                self.prepared.insert(sql, statement.clone());
                statement
            }
        };
        Ok((&mut self.client, statement))
    }

    /// The table's schema-qualified name and OID; a table in no schema is in `public`.
    fn resolve(&mut self, table: &TableRef) -> Result<(QualifiedTable, u32), SourceError> {
        let name = self.name.clone();
        let QualifiedTable {
            schema,
            name: table,
        } = configured_table(table);
        let client = self.connection()?;
        // The exact name first, then the name folded to lower case as unquoted SQL would.
        let row = client
            .query_opt(
                "SELECT n.nspname::text, c.relname::text, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1::text AND c.relname::text IN ($2::text, lower($2::text)) AND c.relkind IN ('r', 'p') \
                 ORDER BY c.relname::text = $2::text DESC LIMIT 1",
                &[&schema, &table],
            )
            .map_err(|e| source_error(&name, "looking the table up", e))?;
        match row {
            Some(row) => Ok((
                QualifiedTable {
                    schema: row.get(0),
                    name: row.get(1),
                },
                row.get(2),
            )),
            None => Err(SourceError::TableNotFound {
                source_name: name,
                table: table.to_string(),
            }),
        }
    }
}

impl PostgresSource {
    /// The WAL flush position: every transaction that committed before it is durable on the
    /// server and can be decoded.
    fn flush_position(&mut self) -> Result<i64, SourceError> {
        let name = self.name.clone();
        let (client, statement) =
            self.prepared("SELECT (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::int8")?;
        let flush = client
            .query_one(&statement, &[])
            .map_err(|e| source_error(&name, "reading the WAL position", e))?
            .get(0);
        self.flush_seen = Some((flush, std::time::Instant::now()));
        Ok(flush)
    }

    /// The flush position for a batch read: the one the schema version was read with just
    /// before (the engine asks for it before every batch; one query instead of two), or a
    /// fresh one. Either was read before the read began, which is what the read needs.
    fn flush_position_for_read(&mut self) -> Result<i64, SourceError> {
        match self.flush_for_read.take() {
            Some(flush) => Ok(flush),
            None => self.flush_position(),
        }
    }
}

/// The table a configured one means: in its schema, or in `public`, named as written
/// (lookups also try it folded to lower case).
fn configured_table(table: &TableRef) -> QualifiedTable {
    QualifiedTable {
        schema: table
            .schema
            .as_deref()
            .unwrap_or(DEFAULT_SCHEMA)
            .to_string(),
        name: table.name.clone(),
    }
}

fn connect(config: &PostgresSourceConfig, name: &str) -> Result<Client, SourceError> {
    let password = config.password().map_err(|reason| SourceError::Unusable {
        source_name: name.to_string(),
        reason,
    })?;
    let mut pg = postgres::Config::new();
    pg.host(&config.host)
        .port(config.port)
        .dbname(&config.database)
        .user(&config.user)
        .application_name("lakelink")
        .connect_timeout(CONNECT_TIMEOUT)
        .ssl_mode(match config.sslmode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => postgres::config::SslMode::Require,
        });
    if let Some(password) = password {
        pg.password(password);
    }
    let connected = match config.sslmode {
        SslMode::Disable => pg.connect(NoTls),
        mode => {
            let tls = tls::connector(mode, config.sslrootcert.as_deref()).map_err(|reason| {
                SourceError::Unusable {
                    source_name: name.to_string(),
                    reason,
                }
            })?;
            pg.connect(tls)
        }
    };
    let mut client = connected.map_err(|e| source_error(name, "connecting", e))?;
    // The stream's session sets the same (`replication::connection`), and the copy's binary
    // decoders (`copy_binary`) write date-times as these settings do: change them together.
    client
        .batch_execute(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET bytea_output = 'hex'; SET extra_float_digits = 3",
        )
        .map_err(|e| source_error(name, "setting the session up", e))?;
    Ok(client)
}

/// Asks the server to cancel what the session of `token` runs, over the connection's own TLS
/// setting. Best effort: a server that cannot be reached is not waited for past the connect
/// timeout, and the caller goes on either way.
fn cancel_query(config: &PostgresSourceConfig, token: &postgres::CancelToken) {
    let cancelled = match config.sslmode {
        SslMode::Disable => token.cancel_query(NoTls),
        mode => match tls::connector(mode, config.sslrootcert.as_deref()) {
            Ok(tls) => token.cancel_query(tls),
            Err(_) => return,
        },
    };
    if let Err(e) = cancelled {
        tracing::debug!(error = %e, "could not cancel the copy's COPY; ending it waits for the rest of the table");
    }
}

impl Source for PostgresSource {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn describe_table(&mut self, table: &TableRef) -> Result<SourceTable, SourceError> {
        let (_, oid) = self.resolve(table)?;
        let name = self.name.clone();
        let client = self.connection()?;
        let rows = client
            .query(
                &format!(
                    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                            base.type_oid, base.typmod, \
                            coalesce((SELECT k.ord::int4 FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
                                      WHERE i.indrelid = a.attrelid AND i.indisprimary AND k.attnum = a.attnum), 0), \
                            a.attnum::int8 \
                     FROM pg_attribute a {BASE_TYPE_JOIN} \
                     WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
                     ORDER BY a.attnum"
                ),
                &[&oid],
            )
            .map_err(|e| source_error(&name, "reading the table's columns", e))?;
        let mut key: Vec<(i32, usize)> = Vec::new();
        let columns = rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let key_position: i32 = row.get(4);
                if key_position > 0 {
                    key.push((key_position, i));
                }
                SourceColumn {
                    name: row.get(0),
                    declared_type: row.get(1),
                    column_type: types::column_type(row.get(2), row.get(3)),
                    number: Some(row.get(5)),
                }
            })
            .collect();
        key.sort();
        Ok(SourceTable {
            columns,
            primary_key: key.into_iter().map(|(_, i)| i).collect(),
            id: Some(oid.to_string()),
        })
    }

    fn schema_version(&mut self) -> Result<i64, SourceError> {
        let oids: Vec<u32> = self.links.values().map(|l| l.oid).collect();
        let bump = self.schema_bump;
        let name = self.name.clone();
        let slot = self.config.slot.clone();
        // Columns, and each table's name, schema and publication membership: a rename, a
        // move, a drop or a table leaving the publication changes the number too.
        let (client, statement) = self.prepared(
                "SELECT (coalesce((SELECT sum(hashtext(attrelid::text || ':' || attnum || ':' || attname || ':' || atttypid || ':' || atttypmod || ':' || attisdropped || ':' || atthasmissing)) \
                                   FROM pg_attribute WHERE attrelid = ANY($1) AND attnum > 0), 0) \
                       + coalesce((SELECT sum(hashtext(c.oid::text || ':' || c.relname || ':' || c.relnamespace || ':' || \
                                   EXISTS (SELECT 1 FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid \
                                           WHERE p.pubname = $2 AND r.prrelid = c.oid))) \
                                   FROM pg_class c WHERE c.oid = ANY($1)), 0) \
                       + (SELECT count(*) FROM pg_class c WHERE c.oid = ANY($1)))::int8, \
                       (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::int8",
        )?;
        let row = client
            .query_one(&statement, &[&oids, &slot])
            .map_err(|e| source_error(&name, "reading the schema version", e))?;
        let hash: i64 = row.get(0);
        let flush: i64 = row.get(1);
        self.flush_for_read = Some(flush);
        self.flush_seen = Some((flush, std::time::Instant::now()));
        Ok(hash.wrapping_add(bump))
    }

    fn install_capture(&mut self, spec: &CaptureSpec) -> Result<(), SourceError> {
        let (table, oid) = self.resolve(&spec.table)?;
        let name = self.name.clone();
        let slot = self.config.slot.clone();
        let client = self.connection()?;
        let err = |what: &str, e| source_error(&name, what, e);
        // A lock wait that timed out names the sessions holding the table.
        let locked = |client: &mut Client, what: &str, e: postgres::Error| {
            lock_wait::table_error(client, &name, what, &table, oid, e)
        };
        let identity = publication::prepare_replica_identity(client, &table, oid);
        if let Some(reason) = identity.map_err(|e| {
            locked(
                client,
                &format!("setting REPLICA IDENTITY FULL on {}", table.sql()),
                e,
            )
        })? {
            return Err(SourceError::Uncapturable {
                source_name: name,
                table: spec.table.to_string(),
                reason,
            });
        }
        let ensured = publication::ensure_slot(client, &slot).map_err(|e| {
            if e.code() == Some(&postgres::error::SqlState::QUERY_CANCELED) {
                // SLOT_TIMEOUT passed: transactions in progress (the log named them) hold the
                // slot's creation up. Worth waiting for, like a lock.
                return SourceError::Busy {
                    source_name: name.clone(),
                    what: format!(
                        "creating the replication slot {slot:?}: transactions in progress did not end within {}",
                        publication::SLOT_TIMEOUT
                    ),
                };
            }
            err("creating the publication and replication slot", e)
        })?;
        if let Some(reason) = ensured {
            return Err(SourceError::Unusable {
                source_name: name,
                reason,
            });
        }
        if let Err(e) = publication::add_table(client, &slot, &table) {
            return Err(locked(
                client,
                &format!("adding {} to the publication", table.sql()),
                e,
            ));
        }
        if spec.added_from.is_none() {
            let generated: Vec<String> = client
                .query(
                    "SELECT attname::text FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated <> '' ORDER BY attnum",
                    &[&oid],
                )
                .map_err(|e| err("reading the table's columns", e))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !generated.is_empty() {
                tracing::warn!(
                    table = %table.sql(), columns = ?generated,
                    "generated columns are not in the lake: PostgreSQL before version 18 does not send them to logical decoding"
                );
            }
        }
        self.links.insert(
            spec.link,
            LinkInfo {
                table,
                oid,
                columns: spec.schema.columns.iter().map(|c| c.name.clone()).collect(),
                kinds: spec
                    .schema
                    .columns
                    .iter()
                    .map(|c| c.column_type.kind)
                    .collect(),
                key: spec.schema.key.clone(),
                partition: spec.schema.partition_column,
            },
        );
        Ok(())
    }

    fn remove_capture(&mut self, link: LinkId, table: &TableRef) -> Result<(), SourceError> {
        // Forgotten only once removed: a retry after a lock wait still goes by OID.
        let known = self.links.get(&link).cloned();
        // By OID when known, so that a table renamed since still leaves the publication.
        let (schema, table, oid) = match &known {
            Some(info) => (
                Some(info.table.schema.as_str()),
                info.table.name.as_str(),
                Some(info.oid),
            ),
            // Not known by OID (a link that never got this far this run): by its configured
            // name, in its schema or (none configured) in any schema.
            None => (table.schema.as_deref(), table.name.as_str(), None),
        };
        let name = self.name.clone();
        let slot = self.config.slot.clone();
        // The last table's removal drops the slot, which a session holding it would refuse.
        self.session = None;
        let client = self.connection()?;
        let what = format!("removing {table:?} from capture");
        let removed = publication::remove_table(client, &slot, schema, table, oid);
        if removed.is_ok() {
            self.links.remove(&link);
            return Ok(());
        }
        let client = self.connection()?;
        removed.map_err(|e| match oid {
            Some(oid) => {
                let qualified = QualifiedTable {
                    schema: schema.unwrap_or("public").to_string(),
                    name: table.to_string(),
                };
                lock_wait::table_error(client, &name, &what, &qualified, oid, e)
            }
            None => source_error(&name, &what, e),
        })
    }

    fn copy_table(
        &mut self,
        spec: &CaptureSpec,
        on_row: &mut dyn FnMut(Position, Vec<Value>) -> ControlFlow<()>,
    ) -> Result<Position, SourceError> {
        let (table, oid) = self.resolve(&spec.table)?;
        let columns: Vec<String> = spec.schema.columns.iter().map(|c| c.name.clone()).collect();
        let kinds: Vec<FieldKind> = spec
            .schema
            .columns
            .iter()
            .map(|c| c.column_type.kind)
            .collect();
        let mut reader = connect(&self.config, &self.name)?;
        let name = self.name.clone();
        let config = self.config.clone();
        let cancel = move |token: &postgres::CancelToken| cancel_query(&config, token);
        let locker = self.connection()?;
        handoff::copy_table(
            locker,
            &mut reader,
            &table,
            &columns,
            &kinds,
            &cancel,
            on_row,
        )
        .map_err(|e| match e {
            handoff::CopyError::Server(what, e) => {
                lock_wait::table_error(&mut reader, &name, what, &table, oid, e)
            }
            handoff::CopyError::Stream(what, e) => SourceError::Unreachable {
                source_name: name.clone(),
                what: format!("{what} {}", table.sql()),
                source: Box::new(e),
            },
            handoff::CopyError::Damaged(what) => SourceError::Unreachable {
                source_name: name.clone(),
                what: format!("reading {}", table.sql()),
                source: what.into(),
            },
        })
    }

    fn read_changes(&mut self, after: Position, max: usize) -> Result<ChangeBatch, SourceError> {
        stream::read_changes(self, after, max)
    }

    fn discard_read(&mut self) {
        // The session's place is past the dropped batch: a new one sends it again, a
        // transaction split across batches from its first change.
        self.session = None;
        self.split = None;
    }

    fn head_position(&mut self) -> Result<Position, SourceError> {
        if self.links.is_empty() {
            return Ok(Position(0));
        }
        // Lag may be a moment old: the position read for the batch just written serves.
        let flush = match self.flush_seen {
            Some((flush, at)) if at.elapsed() < Duration::from_secs(1) => flush,
            _ => self.flush_position()?,
        };
        Ok(Position(flush - 1))
    }

    fn count_rows(&mut self, table: &TableRef) -> Result<u64, SourceError> {
        let (qualified, oid) = self.resolve(table)?;
        let name = self.name.clone();
        let client = self.connection()?;
        // The planner's estimate; a table never analysed (-1) is counted.
        let estimate: f32 = client
            .query_one("SELECT reltuples FROM pg_class WHERE oid = $1", &[&oid])
            .map_err(|e| source_error(&name, "estimating the table's rows", e))?
            .get(0);
        if estimate >= 0.0 {
            return Ok(estimate as u64);
        }
        let count: i64 = client
            .query_one(&format!("SELECT count(*) FROM {}", qualified.sql()), &[])
            .map_err(|e| source_error(&name, "counting the table's rows", e))?
            .get(0);
        Ok(count.max(0) as u64)
    }

    fn acknowledge(&mut self, upto: Position) -> Result<(), SourceError> {
        if self.links.is_empty() {
            return Ok(());
        }
        // The slot skips a transaction whose commit record starts before its confirmed
        // position, so everything through commit LSN `upto` is released by moving to upto + 1.
        if let Some(session) = &self.session {
            // In the session's next status update (the slot is held by the session, which
            // SQL cannot advance meanwhile).
            session.confirm(upto);
            return Ok(());
        }
        let name = self.name.clone();
        let slot = self.config.slot.clone();
        let client = self.connection()?;
        // Never backwards: the server refuses that.
        client
            .execute(
                "SELECT pg_replication_slot_advance(slot_name, ('0/0'::pg_lsn + $2::int8::numeric)) FROM pg_replication_slots \
                 WHERE slot_name = $1 AND confirmed_flush_lsn < ('0/0'::pg_lsn + $2::int8::numeric)",
                &[&slot, &(upto.0 + 1)],
            )
            .map_err(|e| source_error(&name, "advancing the replication slot", e))?;
        Ok(())
    }

    fn capture_broken(&mut self, spec: &CaptureSpec) -> Result<Option<String>, SourceError> {
        // The OID the link captures: the installed one, or (on start, before capture is
        // installed again) the one recorded when the table was linked.
        let (oid, linked) = match self.links.get(&spec.link) {
            Some(info) => (info.oid, info.table.clone()),
            None => {
                let Some(oid) = spec
                    .schema
                    .table_id
                    .as_deref()
                    .and_then(|id| id.parse().ok())
                else {
                    return Ok(None);
                };
                // The configured name as lookups resolve it (case folded as unquoted SQL
                // would): the linked table when it still resolves to the recorded OID.
                let linked = match self.resolve(&spec.table) {
                    Ok((qualified, now)) if now == oid => qualified,
                    _ => configured_table(&spec.table),
                };
                (oid, linked)
            }
        };
        let name = self.name.clone();
        let slot = self.config.slot.clone();
        let client = self.connection()?;
        let row = client
            .query_opt(
                "SELECT n.nspname::text, c.relname::text, \
                        EXISTS (SELECT 1 FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid \
                                WHERE p.pubname = $2 AND r.prrelid = c.oid) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                &[&oid, &slot],
            )
            .map_err(|e| source_error(&name, "looking the table up", e))?;
        let linked_sql = linked.sql();
        Ok(match row {
            None => Some(format!(
                "{linked_sql} was dropped (a table of that name now, if any, is another table), so its changes since are not captured"
            )),
            Some(row) => {
                let now = QualifiedTable {
                    schema: row.get(0),
                    name: row.get(1),
                };
                let published: bool = row.get(2);
                if now != linked {
                    let what = if now.schema == linked.schema {
                        "renamed"
                    } else {
                        "moved"
                    };
                    Some(format!("{linked_sql} was {what} to {}", now.sql()))
                } else if !published {
                    Some(format!(
                        "{linked_sql} left the publication {slot:?} (ALTER PUBLICATION ... DROP TABLE outside lakelink), so its changes since are not captured"
                    ))
                } else {
                    None
                }
            }
        })
    }

    fn capture_problem(&mut self, table: &TableRef) -> Result<Option<String>, SourceError> {
        let (qualified, oid) = self.resolve(table)?;
        let name = self.name.clone();
        let client = self.connection()?;
        publication::replica_identity_problem(client, &qualified, oid)
            .map_err(|e| source_error(&name, "checking the table's replica identity", e))
    }

    fn existing_rows(
        &mut self,
        table: &TableRef,
        column: &str,
    ) -> Result<ExistingRows, SourceError> {
        let (_, oid) = self.resolve(table)?;
        let name = self.name.clone();
        let client = self.connection()?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT a.atthasmissing, (a.attmissingval::text::text[])[1], a.atthasdef, \
                            base.type_oid, base.typmod \
                     FROM pg_attribute a {BASE_TYPE_JOIN} \
                     WHERE a.attrelid = $1 AND a.attname = $2 AND NOT a.attisdropped"
                ),
                &[&oid, &column],
            )
            .map_err(|e| source_error(&name, "reading the column's default", e))?;
        let Some(row) = row else {
            return Ok(ExistingRows::Null);
        };
        let has_missing: bool = row.get(0);
        let missing: Option<String> = row.get(1);
        let has_default: bool = row.get(2);
        let kind = types::column_type(row.get(3), row.get(4)).kind;
        Ok(match (has_missing, missing, has_default) {
            // ADD COLUMN with a constant default: existing rows read the stored value.
            (true, Some(text), _) => ExistingRows::Value(types::from_text(text, kind)),
            (true, None, _) | (false, _, false) => ExistingRows::Null,
            // A volatile default is written into every row by a table rewrite, which logical
            // decoding does not report (so is a default set after the column was added).
            (false, _, true) => ExistingRows::Unknown(
                "it has a default that PostgreSQL wrote into the existing rows by rewriting the table (a volatile default such as random() or now()), which logical decoding does not report".into(),
            ),
        })
    }

    fn history_mark(&mut self, _position: Position) -> Result<Option<String>, SourceError> {
        // Commit LSNs only go forward in one server's history, and a server restored from a
        // backup has no slot for lakelink to read.
        Ok(None)
    }

    fn retained_bytes(&mut self) -> Result<Option<u64>, SourceError> {
        let name = self.name.clone();
        let slot = self.config.slot.clone();
        let warning_mb = self.config.retained_wal_warning_mb;
        let was_over = self.over_retained_warning;
        let client = self.connection()?;
        let row = client
            .query_opt(
                "SELECT (pg_current_wal_lsn() - restart_lsn)::int8 FROM pg_replication_slots \
                 WHERE slot_name = $1 AND restart_lsn IS NOT NULL",
                &[&slot],
            )
            .map_err(|e| source_error(&name, "reading the slot's retained WAL", e))?;
        let Some(bytes) = row.map(|r| r.get::<_, i64>(0).max(0) as u64) else {
            return Ok(None);
        };
        let over = bytes > warning_mb.saturating_mul(1 << 20);
        if over && !was_over {
            // The one thing that holds a slot's WAL while lakelink keeps up is a transaction
            // left open on the server: decoding cannot move past its start.
            let oldest = client
                .query_opt(
                    "SELECT pid, coalesce(application_name, ''), coalesce(state, ''), \
                            extract(epoch FROM now() - xact_start)::int8 \
                     FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND xact_start IS NOT NULL \
                     AND pid <> pg_backend_pid() ORDER BY xact_start LIMIT 1",
                    &[],
                )
                .ok()
                .flatten()
                .map(|r| {
                    format!(
                        "the oldest open transaction that wrote is pid {} (application {:?}, {}, open {} s)",
                        r.get::<_, i32>(0),
                        r.get::<_, String>(1),
                        r.get::<_, String>(2),
                        r.get::<_, i64>(3)
                    )
                })
                .unwrap_or_else(|| {
                    "none that wrote is visible to this role (a prepared transaction, see pg_prepared_xacts, or a session of another role: grant pg_read_all_stats to see it)".into()
                });
            tracing::warn!(
                slot = %slot,
                retained_mb = bytes >> 20,
                "replication slot {slot:?} keeps {} MB of WAL on the server, more than retained_wal_warning_mb = {}: the server cannot remove it until lakelink has read past it. A transaction left open holds it back ({oldest}): end it, or raise retained_wal_warning_mb if the server can bear more; an agent that falls behind holds it back too (see lakelink_lag_changes)",
                bytes >> 20,
                warning_mb
            );
        }
        self.over_retained_warning = over;
        Ok(Some(bytes))
    }

    fn resume_at(&mut self, _position: Position, _mark: Option<&str>) -> Result<(), SourceError> {
        Ok(())
    }
}
