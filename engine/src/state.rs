//! The checkpoint store: what is durable in the lake, per table and per live file, and which
//! snapshot generation is published. A SQLite database with `synchronous = FULL`, so a
//! committed checkpoint survives power loss, and every update is one transaction.
//!
//! Progress only moves forward: a table's position is never lowered by a checkpoint.

use lakelink_model::change::{LinkId, Position};
use lakelink_model::partition::Granularity;
use lakelink_model::schema::TableSchema;
use lakelink_model::table_mode::Mode;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};

/// The store's layout version; a store written by another layout is refused, never guessed.
const FORMAT_VERSION: &str = "1";

/// What can go wrong with the checkpoint store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database failed.
    #[error("checkpoint store {path}: {what}: {source}")]
    Database {
        /// The store.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The store belongs to another lake.
    #[error(
        "checkpoint store {path} belongs to {recorded}, not {configured}; give each lake its own [engine] state"
    )]
    WrongLake {
        /// The store.
        path: PathBuf,
        /// The lake it records.
        recorded: String,
        /// The lake configured now.
        configured: String,
    },
    /// The store's lake was written in another output format than the one configured.
    #[error(
        "checkpoint store {path} belongs to a lake of format {recorded:?}, but [lake] format is {configured:?}; a lake keeps the format it started with: set format = {recorded:?} back, or start a new lake with its own [engine] state"
    )]
    OutputFormat {
        /// The store.
        path: PathBuf,
        /// The format it recorded.
        recorded: String,
        /// The format configured now.
        configured: String,
    },
    /// The store has a layout this version does not know.
    #[error(
        "checkpoint store {path} has layout {found}, this lakelink reads layout {FORMAT_VERSION}"
    )]
    Format {
        /// The store.
        path: PathBuf,
        /// Its layout version.
        found: String,
    },
    /// A stored value does not parse.
    #[error("checkpoint store {path}: damaged record for table {table:?}: {reason}")]
    Damaged {
        /// The store.
        path: PathBuf,
        /// The table.
        table: String,
        /// What is wrong.
        reason: String,
    },
}

/// A table's initial sync state (`Athena:InitialSyncState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// Linked, capture not yet installed.
    NotStarted,
    /// The initial copy is being written.
    InProgress,
    /// Copied; changes trickle.
    Completed,
}

impl SyncState {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::NotStarted => "NotStarted",
            SyncState::InProgress => "InProgress",
            SyncState::Completed => "Completed",
        }
    }

    fn parse(s: &str) -> Option<SyncState> {
        Some(match s {
            "NotStarted" => SyncState::NotStarted,
            "InProgress" => SyncState::InProgress,
            "Completed" => SyncState::Completed,
            _ => return None,
        })
    }
}

/// One linked table.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkRecord {
    /// The table's name.
    pub table: String,
    /// The link's number.
    pub link: LinkId,
    /// Initial sync state.
    pub state: SyncState,
    /// Every change of the table at or before this position is durable in the lake.
    pub position: Position,
    /// The table's schema as the lake sees it.
    pub schema: TableSchema,
    /// Snapshot mode.
    pub mode: Mode,
    /// Partition granularity.
    pub granularity: Granularity,
    /// When the initial copy completed (lake date-time text).
    pub completed_at: Option<String>,
    /// Why the table was stopped (its capture could no longer be exact); `None` while it
    /// flows. A stopped table keeps its files and its last published snapshot, and flows
    /// again only when it is relinked.
    pub stopped: Option<String>,
}

/// One live file's durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// The table.
    pub table: String,
    /// The partition.
    pub partition: String,
    /// Bytes committed.
    pub len: u64,
    /// Position of the last row.
    pub last_position: Position,
    /// How many rows at the end share `last_position` (one change can write two rows to a
    /// file, and a source may give several changes one position).
    pub rows_at_last: u64,
    /// Rows in the file.
    pub rows: u64,
    /// The file's length at the last published snapshot's cut.
    pub snapshot_len: u64,
    /// Generation of the snapshot file that covers it up to `snapshot_len`.
    pub snapshot_generation: Option<u64>,
    /// Bytes `[0, id_ordered_len)` of the file were written by the initial copy, its rows in
    /// strictly increasing `Id` order with no delete record: the partition's state at the
    /// copy's position, as a snapshot lays it out. A snapshot or a `TRUNCATE`'s read-back
    /// with no earlier snapshot of the file within reach reads this prefix as it would read a
    /// previous snapshot. 0 when no such prefix is known.
    pub id_ordered_len: u64,
}

impl LiveFile {
    /// A live file that holds nothing yet.
    pub fn empty(table: &str, partition: &str) -> LiveFile {
        LiveFile {
            table: table.to_string(),
            partition: partition.to_string(),
            len: 0,
            last_position: Position(i64::MIN),
            rows_at_last: 0,
            rows: 0,
            snapshot_len: 0,
            snapshot_generation: None,
            id_ordered_len: 0,
        }
    }
}

/// The source's mark of a position (see `Source::history_mark`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoryMark {
    /// The position.
    pub position: Position,
    /// The source's mark of it.
    pub mark: Option<String>,
}

/// The last published manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Its generation.
    pub generation: u64,
    /// The source position it is cut at.
    pub position: Position,
    /// What tables it named, to tell whether linking or unlinking needs a new publish.
    pub signature: String,
    /// When it was published (lake date-time text).
    pub published_at: String,
}

/// A snapshot being written: recorded before any file of it is, so a restart can tell
/// whether to roll it forward (model.json names it) or discard it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSnapshot {
    /// The generation being written.
    pub generation: u64,
    /// The cut.
    pub position: Position,
    /// The table signature it will publish.
    pub signature: String,
    /// Each partition it rewrites, and where.
    pub cuts: Vec<PartitionCut>,
}

/// Where a snapshot cuts one partition's live file. Stored as a `[table, partition, length]`
/// array, the form the checkpoint store's `pending_snapshot.cuts` column holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "(String, String, u64)", into = "(String, String, u64)")]
pub struct PartitionCut {
    /// The table.
    pub table: String,
    /// The partition.
    pub partition: String,
    /// The live file's committed length at the cut.
    pub length: u64,
}

impl From<(String, String, u64)> for PartitionCut {
    fn from((table, partition, length): (String, String, u64)) -> Self {
        PartitionCut {
            table,
            partition,
            length,
        }
    }
}

impl From<PartitionCut> for (String, String, u64) {
    fn from(cut: PartitionCut) -> Self {
        (cut.table, cut.partition, cut.length)
    }
}

/// The checkpoint store.
pub struct StateStore {
    path: PathBuf,
    conn: Connection,
}

impl StateStore {
    /// Opens (or creates) the store for `lake`.
    pub fn open(path: &Path, lake: &str) -> Result<StateStore, StateError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(|source| StateError::Database {
            path: path.to_path_buf(),
            what: "opening",
            source,
        })?;
        let store = StateStore {
            path: path.to_path_buf(),
            conn,
        };
        store.run("preparing", |c| {
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            c.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
            c.execute_batch(
                "PRAGMA synchronous=FULL;
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS links (
                    name TEXT PRIMARY KEY, link INTEGER NOT NULL, state TEXT NOT NULL,
                    position INTEGER NOT NULL, schema TEXT NOT NULL, mode TEXT NOT NULL,
                    granularity TEXT NOT NULL, completed_at TEXT);
                 CREATE TABLE IF NOT EXISTS live_files (
                    name TEXT NOT NULL, partition TEXT NOT NULL, len INTEGER NOT NULL,
                    last_position INTEGER NOT NULL, rows_at_last INTEGER NOT NULL,
                    rows INTEGER NOT NULL, snapshot_len INTEGER NOT NULL,
                    snapshot_generation INTEGER, id_ordered_len INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (name, partition));
                 CREATE TABLE IF NOT EXISTS published (
                    generation INTEGER PRIMARY KEY, position INTEGER NOT NULL,
                    signature TEXT NOT NULL, published_at TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS pending_snapshot (
                    generation INTEGER NOT NULL, position INTEGER NOT NULL,
                    signature TEXT NOT NULL, cuts TEXT NOT NULL);",
            )?;
            // Added to layout 1 in place: a store without it has no stopped table.
            if !has_stopped_column(c)? {
                c.execute_batch("ALTER TABLE links ADD COLUMN stopped TEXT")?;
            }
            // Also added in place: a live file of a store without it has no known prefix in
            // `Id` order, which only means its first snapshot sorts it.
            if !has_id_ordered_column(c)? {
                c.execute_batch(
                    "ALTER TABLE live_files ADD COLUMN id_ordered_len INTEGER NOT NULL DEFAULT 0",
                )?;
            }
            Ok(())
        })?;
        let format = store.meta("format")?;
        match format.as_deref() {
            None => store.set_meta("format", FORMAT_VERSION)?,
            Some(FORMAT_VERSION) => {}
            Some(other) => {
                return Err(StateError::Format {
                    path: path.to_path_buf(),
                    found: other.to_string(),
                });
            }
        }
        match store.meta("lake")? {
            None => store.set_meta("lake", lake)?,
            Some(recorded) if recorded == lake => {}
            Some(recorded) => {
                return Err(StateError::WrongLake {
                    path: path.to_path_buf(),
                    recorded,
                    configured: lake.to_string(),
                });
            }
        }
        Ok(store)
    }

    /// Opens an existing store without changing it (for `status`); `None` if it does not exist.
    pub fn open_existing(path: &Path) -> Result<Option<StateStore>, StateError> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|source| StateError::Database {
                path: path.to_path_buf(),
                what: "opening",
                source,
            })?;
        let store = StateStore {
            path: path.to_path_buf(),
            conn,
        };
        // A store no agent of this version opened yet has no `stopped` column; reading it
        // must not change it, so the column is added to the view only.
        store.run("reading links", |c| {
            if !has_stopped_column(c)? {
                c.execute_batch(
                    "CREATE TEMP VIEW links AS SELECT *, NULL AS stopped FROM main.links",
                )?;
            }
            if !has_id_ordered_column(c)? {
                c.execute_batch(
                    "CREATE TEMP VIEW live_files AS
                     SELECT *, 0 AS id_ordered_len FROM main.live_files",
                )?;
            }
            Ok(())
        })?;
        Ok(Some(store))
    }

    fn run<T>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        f(&self.conn).map_err(|source| StateError::Database {
            path: self.path.clone(),
            what,
            source,
        })
    }

    /// Records the lake's output format on first use (a store from before formats were
    /// recorded, that has published, wrote `csv`), and refuses another one later.
    pub fn check_output_format(&self, configured: &str) -> Result<(), StateError> {
        let recorded = match self.meta("output_format")? {
            Some(f) => f,
            None if self.published()?.is_some() => "csv".to_string(),
            None => configured.to_string(),
        };
        if recorded != configured {
            return Err(StateError::OutputFormat {
                path: self.path.clone(),
                recorded,
                configured: configured.to_string(),
            });
        }
        self.set_meta("output_format", configured)
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StateError> {
        self.run("reading meta", |c| {
            c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.run("writing meta", |c| upsert_meta(c, key, value))
    }

    /// A link number never given before.
    pub fn next_link_id(&self) -> Result<LinkId, StateError> {
        let last: i64 = self
            .meta("last_link")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        self.set_meta("last_link", &(last + 1).to_string())?;
        Ok(last + 1)
    }

    /// Every linked table.
    pub fn links(&self) -> Result<Vec<LinkRecord>, StateError> {
        let rows = self.run("reading links", |c| {
            let mut stmt = c.prepare(
                "SELECT name, link, state, position, schema, mode, granularity, completed_at,
                        stopped
                 FROM links ORDER BY name",
            )?;
            stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()
        })?;
        rows.into_iter()
            .map(
                |(
                    table,
                    link,
                    state,
                    position,
                    schema,
                    mode,
                    granularity,
                    completed_at,
                    stopped,
                )| {
                    let damaged = |reason: String| StateError::Damaged {
                        path: self.path.clone(),
                        table: table.clone(),
                        reason,
                    };
                    Ok(LinkRecord {
                        link,
                        state: SyncState::parse(&state)
                            .ok_or_else(|| damaged(format!("unknown state {state:?}")))?,
                        position: Position(position),
                        schema: serde_json::from_str(&schema)
                            .map_err(|e| damaged(e.to_string()))?,
                        mode: serde_json::from_str(&mode).map_err(|e| damaged(e.to_string()))?,
                        granularity: serde_json::from_str(&granularity)
                            .map_err(|e| damaged(e.to_string()))?,
                        completed_at,
                        stopped,
                        table,
                    })
                },
            )
            .collect()
    }

    /// Creates or replaces a link record.
    pub fn put_link(&self, link: &LinkRecord) -> Result<(), StateError> {
        self.run("writing a link", |c| write_link(c, link))
    }

    /// Records that a table stopped, and why.
    pub fn set_stopped(&self, table: &str, reason: &str) -> Result<(), StateError> {
        self.run("stopping a table", |c| {
            c.execute(
                "UPDATE links SET stopped = ?2 WHERE name = ?1",
                [table, reason],
            )
            .map(drop)
        })
    }

    /// Records the source's history mark of the position every table resumes from.
    pub fn set_history_mark(&self, history: &HistoryMark) -> Result<(), StateError> {
        self.set_meta(
            "history",
            &serde_json::to_string(history).unwrap_or_default(),
        )
    }

    /// Forgets a table and its live files.
    pub fn remove_link(&mut self, table: &str) -> Result<(), StateError> {
        self.transaction("removing a link", |tx| {
            tx.execute("DELETE FROM links WHERE name = ?1", [table])?;
            tx.execute("DELETE FROM live_files WHERE name = ?1", [table])?;
            Ok(())
        })
    }

    /// The table's live files.
    pub fn live_files(&self, table: &str) -> Result<Vec<LiveFile>, StateError> {
        self.run("reading live files", |c| {
            let mut stmt = c.prepare(
                "SELECT name, partition, len, last_position, rows_at_last, rows, snapshot_len,
                        snapshot_generation, id_ordered_len
                 FROM live_files WHERE name = ?1 ORDER BY partition",
            )?;
            stmt.query_map([table], |r| {
                Ok(LiveFile {
                    table: r.get(0)?,
                    partition: r.get(1)?,
                    len: r.get::<_, i64>(2)? as u64,
                    last_position: Position(r.get(3)?),
                    rows_at_last: r.get::<_, i64>(4)? as u64,
                    rows: r.get::<_, i64>(5)? as u64,
                    snapshot_len: r.get::<_, i64>(6)? as u64,
                    snapshot_generation: r.get::<_, Option<i64>>(7)?.map(|g| g as u64),
                    id_ordered_len: r.get::<_, i64>(8)? as u64,
                })
            })?
            .collect()
        })
    }

    /// Forgets a table's live files (a fresh initial sync starts over).
    pub fn clear_live_files(&self, table: &str) -> Result<(), StateError> {
        self.run("clearing live files", |c| {
            c.execute("DELETE FROM live_files WHERE name = ?1", [table])
                .map(drop)
        })
    }

    /// Records appended files and advanced table positions in one transaction, with the
    /// source's history mark of the position every table is now durable through.
    pub fn commit_batch(
        &mut self,
        files: &[LiveFile],
        positions: &[(String, Position)],
        history: Option<&HistoryMark>,
    ) -> Result<(), StateError> {
        self.transaction("committing a batch", |tx| {
            for f in files {
                upsert_live_file(tx, f)?;
            }
            for (table, position) in positions {
                tx.execute(
                    "UPDATE links SET position = max(position, ?2) WHERE name = ?1",
                    params![table, position.0],
                )?;
            }
            if let Some(h) = history {
                upsert_meta(tx, "history", &serde_json::to_string(h).unwrap_or_default())?;
            }
            Ok(())
        })
    }

    /// The source's history mark last recorded by [`StateStore::commit_batch`].
    pub fn history_mark(&self) -> Result<Option<HistoryMark>, StateError> {
        Ok(self
            .meta("history")?
            .and_then(|text| serde_json::from_str(&text).ok()))
    }

    /// The store's file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The name that sets this lake's capture objects in the source apart from every other
    /// lake's (SQLite: its change log and triggers), made when the store is new. A store made
    /// before lakes had one, with tables linked under the unsuffixed names, keeps those: an
    /// empty name.
    pub fn capture_name(&self) -> Result<String, StateError> {
        if let Some(name) = self.meta("capture_name")? {
            return Ok(name);
        }
        let legacy: bool = self.run("reading links", |c| {
            c.query_row("SELECT count(*) > 0 FROM links", [], |r| r.get(0))
        })?;
        let name = if legacy {
            String::new()
        } else {
            use std::hash::BuildHasher as _;
            // RandomState is seeded randomly per process; the time and path make two stores
            // made by one process differ too.
            let seed = std::collections::hash_map::RandomState::new().hash_one((
                std::time::SystemTime::now(),
                std::process::id(),
                &self.path,
            ));
            format!("{:08x}", seed as u32)
        };
        self.set_meta("capture_name", &name)?;
        Ok(name)
    }

    /// Marks a table's initial sync complete at `position`, with its files, in one transaction.
    pub fn complete_initial_sync(
        &mut self,
        link: &LinkRecord,
        files: &[LiveFile],
    ) -> Result<(), StateError> {
        self.transaction("completing an initial sync", |tx| {
            write_link(tx, link)?;
            for f in files {
                upsert_live_file(tx, f)?;
            }
            Ok(())
        })
    }

    /// The last published manifest.
    pub fn published(&self) -> Result<Option<Published>, StateError> {
        self.run("reading the published generation", |c| {
            c.query_row(
                "SELECT generation, position, signature, published_at FROM published
                 ORDER BY generation DESC LIMIT 1",
                [],
                |r| {
                    Ok(Published {
                        generation: r.get::<_, i64>(0)? as u64,
                        position: Position(r.get(1)?),
                        signature: r.get(2)?,
                        published_at: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Records a snapshot about to be written.
    pub fn begin_pending(&mut self, pending: &PendingSnapshot) -> Result<(), StateError> {
        let cuts = serde_json::to_string(&pending.cuts).unwrap_or_default();
        self.transaction("recording a pending snapshot", |tx| {
            tx.execute("DELETE FROM pending_snapshot", [])?;
            tx.execute(
                "INSERT INTO pending_snapshot (generation, position, signature, cuts)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    pending.generation as i64,
                    pending.position.0,
                    pending.signature,
                    cuts
                ],
            )?;
            Ok(())
        })
    }

    /// The snapshot recorded by [`StateStore::begin_pending`] and not yet committed.
    pub fn pending(&self) -> Result<Option<PendingSnapshot>, StateError> {
        let row = self.run("reading the pending snapshot", |c| {
            c.query_row(
                "SELECT generation, position, signature, cuts FROM pending_snapshot",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()
        })?;
        row.map(|(generation, position, signature, cuts)| {
            Ok(PendingSnapshot {
                generation: generation as u64,
                position: Position(position),
                signature,
                cuts: serde_json::from_str(&cuts).map_err(|e| StateError::Damaged {
                    path: self.path.clone(),
                    table: String::new(),
                    reason: format!("pending snapshot: {e}"),
                })?,
            })
        })
        .transpose()
    }

    /// The pending snapshot was published: move each cut partition's snapshot forward.
    pub fn commit_pending(&mut self, published_at: &str) -> Result<(), StateError> {
        let Some(p) = self.pending()? else {
            return Ok(());
        };
        self.transaction("committing a snapshot", |tx| {
            for cut in &p.cuts {
                tx.execute(
                    "UPDATE live_files SET snapshot_len = ?3, snapshot_generation = ?4
                     WHERE name = ?1 AND partition = ?2",
                    params![
                        cut.table,
                        cut.partition,
                        cut.length as i64,
                        p.generation as i64
                    ],
                )?;
            }
            tx.execute(
                "INSERT INTO published (generation, position, signature, published_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![p.generation as i64, p.position.0, p.signature, published_at],
            )?;
            tx.execute("DELETE FROM pending_snapshot", [])?;
            Ok(())
        })
    }

    /// The pending snapshot was not published; forget it.
    pub fn discard_pending(&mut self) -> Result<(), StateError> {
        self.run("discarding a pending snapshot", |c| {
            c.execute("DELETE FROM pending_snapshot", []).map(drop)
        })
    }

    fn transaction(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>,
    ) -> Result<(), StateError> {
        let path = self.path.clone();
        let wrap = |source| StateError::Database {
            path: path.clone(),
            what,
            source,
        };
        let tx = self.conn.transaction().map_err(wrap)?;
        f(&tx).map_err(wrap)?;
        tx.commit().map_err(wrap)
    }
}

fn upsert_meta(c: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
    .map(drop)
}

/// Whether the live_files table has the `id_ordered_len` column, added to layout 1 in place.
fn has_id_ordered_column(c: &Connection) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('live_files') WHERE name = 'id_ordered_len'",
        [],
        |r| r.get(0),
    )
}

/// Whether the links table has the `stopped` column, added to layout 1 in place.
fn has_stopped_column(c: &Connection) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('links') WHERE name = 'stopped'",
        [],
        |r| r.get(0),
    )
}

fn write_link(c: &Connection, link: &LinkRecord) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO links (name, link, state, position, schema, mode, granularity, completed_at,
                            stopped)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (name) DO UPDATE SET link = excluded.link, state = excluded.state,
           position = excluded.position, schema = excluded.schema, mode = excluded.mode,
           granularity = excluded.granularity, completed_at = excluded.completed_at,
           stopped = excluded.stopped",
        params![
            link.table,
            link.link,
            link.state.as_str(),
            link.position.0,
            json(&link.schema),
            json(&link.mode),
            json(&link.granularity),
            link.completed_at,
            link.stopped
        ],
    )
    .map(drop)
}

fn upsert_live_file(tx: &rusqlite::Transaction<'_>, f: &LiveFile) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO live_files (name, partition, len, last_position, rows_at_last, rows,
                                 snapshot_len, snapshot_generation, id_ordered_len)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (name, partition) DO UPDATE SET len = excluded.len,
           last_position = excluded.last_position, rows_at_last = excluded.rows_at_last,
           rows = excluded.rows",
        params![
            f.table,
            f.partition,
            f.len as i64,
            f.last_position.0,
            f.rows_at_last as i64,
            f.rows as i64,
            f.snapshot_len as i64,
            f.snapshot_generation.map(|g| g as i64),
            f.id_ordered_len as i64
        ],
    )
    .map(drop)
}

/// A record's JSON column. Serialising these plain data types cannot fail.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store as an agent before `id_ordered_len` (and `stopped`) left it, with one live file.
    fn old_store(path: &Path) {
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('format', '1'), ('lake', 'lake');
             CREATE TABLE links (
                name TEXT PRIMARY KEY, link INTEGER NOT NULL, state TEXT NOT NULL,
                position INTEGER NOT NULL, schema TEXT NOT NULL, mode TEXT NOT NULL,
                granularity TEXT NOT NULL, completed_at TEXT);
             CREATE TABLE live_files (
                name TEXT NOT NULL, partition TEXT NOT NULL, len INTEGER NOT NULL,
                last_position INTEGER NOT NULL, rows_at_last INTEGER NOT NULL,
                rows INTEGER NOT NULL, snapshot_len INTEGER NOT NULL,
                snapshot_generation INTEGER, PRIMARY KEY (name, partition));
             INSERT INTO live_files VALUES ('t', '2024', 120, 7, 1, 3, 0, NULL);",
        )
        .unwrap();
    }

    #[test]
    fn a_store_from_before_the_id_ordered_prefix_reads_as_having_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        old_store(&path);
        // Read without changing it: the column is seen as 0 and the file keeps its layout.
        let reader = StateStore::open_existing(&path).unwrap().unwrap();
        let files = reader.live_files("t").unwrap();
        assert_eq!((files[0].len, files[0].id_ordered_len), (120, 0));
        drop(reader);
        let c = Connection::open(&path).unwrap();
        assert!(!has_id_ordered_column(&c).unwrap());
        drop(c);
        // Opened by an agent: the column is added, the row kept, and a new marker is stored.
        let mut store = StateStore::open(&path, "lake").unwrap();
        let mut file = store.live_files("t").unwrap().remove(0);
        assert_eq!((file.len, file.rows, file.id_ordered_len), (120, 3, 0));
        file.partition = "2025".into();
        file.id_ordered_len = 100;
        store
            .transaction("test", |tx| upsert_live_file(tx, &file))
            .unwrap();
        let files = store.live_files("t").unwrap();
        assert_eq!(
            files.iter().map(|f| f.id_ordered_len).collect::<Vec<_>>(),
            [0, 100]
        );
    }
}
