//! The pipeline of one source and one lake: linking and unlinking tables, the trickle feed,
//! schema changes and snapshots, over the checkpoint store. `lakelink run` and `lakelink sync`
//! drive it; everything they share goes through here, so startup, a pass and a reload are one
//! code path.

mod link;
mod open;
mod reconcile;
mod schema_drift;
mod trickle;

use crate::config::{Config, LakeConfig, SourceConfig, TableSettings};
use crate::error::EngineError;
use crate::format::{Retention, SnapshotFormat};
use crate::linked_table::LinkedTable;
use crate::metrics::{Metrics, TableProgress};
use crate::pending_links::PendingLinks;
use crate::snapshot;
use crate::state::{HistoryMark, StateStore};
use crate::table_feed::{BatchProgress, TableFeed};
use crate::table_schema;
use crate::trickle_manifest;
use lakelink_model::change::{LinkId, Position};
use lakelink_model::datetime::UtcDateTime;
use lakelink_model::lake::{Lake, WriterLock};
use lakelink_model::lake_path::{LakePath, TableName};
use lakelink_model::source::Source;
use lakelink_model::table_ref::TableRef;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// A feed's buffers are appended once they hold this much, even mid-batch, so a batch of wide
/// rows never holds more than this per table in memory.
const FLUSH_BYTES: usize = 8 << 20;

/// Rows per chunk handed from the copy's reader to its writer, at most.
const COPY_CHUNK_ROWS: usize = 1024;
/// Bytes of rows per chunk, at most (a chunk holds at least one row): with
/// [`COPY_QUEUE_CHUNKS`] it bounds the copy's queue in bytes, so that wide rows cannot fill
/// memory.
const COPY_CHUNK_BYTES: usize = 1 << 20;
/// Chunks the copy's writer may fall behind before the reader waits.
const COPY_QUEUE_CHUNKS: usize = 16;

/// The current time in the lake's date-time form.
pub fn now_text() -> String {
    UtcDateTime::from_offset(time::OffsetDateTime::now_utc()).to_lake_text()
}

/// One source, one lake, and the tables linked between them.
pub struct Pipeline {
    config: Config,
    lake: Box<dyn Lake>,
    source: Box<dyn Source>,
    state: StateStore,
    feeds: BTreeMap<String, TableFeed>,
    by_link: HashMap<LinkId, String>,
    schema_version: Option<i64>,
    /// The last batch caught up ended inside a position (see [`Trickled::inside_position`]).
    inside_position: bool,
    /// A table finished its initial copy since the last snapshot run, so no model.json names
    /// it yet (see [`Pipeline::has_unpublished_links`]).
    unpublished_links: bool,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    /// Configured tables that are refused, or whose link or unlink waits for the source.
    pending: PendingLinks,
    /// The lake's writer lock, verified before every write (see [`Pipeline::verify_lock`]).
    lock: Box<dyn WriterLock>,
    /// How snapshots are written and published.
    format: Box<dyn SnapshotFormat>,
    /// When the source was last asked how much of its log it keeps for lakelink.
    retained_asked: Option<std::time::Instant>,
}

/// How often the source is asked how much of its log it keeps (a query on the server).
const RETAINED_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the lake a config names (through the connector registry).
pub fn open_lake(config: &LakeConfig) -> Result<Box<dyn Lake>, EngineError> {
    Ok(config.open()?)
}

/// Opens the source a config names; `capture_name` sets this lake's capture objects apart
/// from other lakes' in the same database (see [`StateStore::capture_name`]).
fn open_source(config: &SourceConfig, capture_name: &str) -> Result<Box<dyn Source>, EngineError> {
    Ok(config.open(capture_name)?)
}

/// What one trickle batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trickled {
    /// Changes read.
    pub changes: usize,
    /// Whether the source said it had nothing more.
    pub caught_up: bool,
    /// Whether the batch ended inside a position (the first changes of a transaction too
    /// large for one batch): no snapshot may cut there.
    pub inside_position: bool,
}

impl Pipeline {
    /// Tables stopped because their capture could no longer be exact, with why.
    pub fn stopped_tables(&self) -> Vec<(String, String)> {
        self.feeds
            .values()
            .filter_map(|f| Some((f.record().table.clone(), f.record().stopped.clone()?)))
            .collect()
    }

    /// Stops a table whose changes can no longer reach the lake exactly: its capture is
    /// removed, its files and its last published snapshot stay as they are, and one line says
    /// why and what to do. The other tables keep flowing.
    fn stop_table(&mut self, table: &str, reason: String) -> Result<(), EngineError> {
        let source_table = self.source_table(table);
        let Some(feed) = self.feeds.get_mut(table) else {
            return Ok(());
        };
        if feed.record().stopped.is_some() {
            return Ok(());
        }
        feed.discard_buffers();
        feed.record_mut().stopped = Some(reason.clone());
        let link = feed.record().link;
        self.state.set_stopped(table, &reason)?;
        self.by_link.remove(&link);
        let line = stop_line(table, &reason);
        self.metrics.record_stopped(table, &line);
        tracing::error!(table, "{line}");
        // The application should not keep paying for capture nobody reads.
        if let Err(e) = self.source.remove_capture(link, &source_table) {
            tracing::warn!(table, error = %e, "could not remove the stopped table's capture; it is removed when the table is relinked");
        }
        // The table may have held the others back: where they all resume from moved, and
        // its history mark with it.
        if let Some(at) = self.common_position()
            && self.state.history_mark()?.is_none_or(|h| h.position != at)
        {
            self.mark_history(at)?;
        }
        self.report_progress(&HashMap::new())
    }

    /// Records the source's history mark of `position`, where every table now resumes from.
    fn mark_history(&mut self, position: Position) -> Result<(), EngineError> {
        let mark = self.source.history_mark(position)?;
        self.state
            .set_history_mark(&HistoryMark { position, mark })?;
        Ok(())
    }

    /// Deletes a table's live files (a fresh initial sync writes them anew); its snapshot
    /// files stay for the manifests that name them.
    fn delete_live_files(&self, name: &TableName) -> Result<(), EngineError> {
        for entry in self.lake.list(&LakePath::table_dir(name))? {
            // Deleted as the append log it is, so a store that split it removes every split.
            if let Some((_, live)) = entry.path.as_live_file(name).filter(|_| !entry.is_dir) {
                self.lake.delete(&live)?;
            }
        }
        Ok(())
    }

    /// The registry this pipeline reports to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Reports every table's state to the metrics, with `batch` = what each table's feed did
    /// in the batch just committed.
    fn report_progress(
        &mut self,
        batch: &HashMap<String, BatchProgress>,
    ) -> Result<(), EngineError> {
        let head = self.source.head_position()?.0;
        if self
            .retained_asked
            .is_none_or(|at| at.elapsed() >= RETAINED_EVERY)
        {
            self.retained_asked = Some(std::time::Instant::now());
            match self.source.retained_bytes() {
                Ok(bytes) => self.metrics.record_retained(bytes),
                // Only a gauge: the batch that asked must not fail for it.
                Err(e) => {
                    tracing::debug!(error = %e, "could not read how much log the source keeps")
                }
            }
        }
        let progress: Vec<TableProgress> = self
            .feeds
            .values()
            .map(|f| {
                let done = batch.get(&f.record().table).copied().unwrap_or_default();
                TableProgress {
                    table: f.record().table.clone(),
                    state: f.record().state.as_str().to_string(),
                    position: f.record().position.0,
                    changes: done.changes,
                    rows: done.rows,
                    bytes: done.bytes,
                    live_rows: f.files().map(|x| x.rows).sum(),
                    partitions: f.files().count(),
                    last_snapshot: f.files().filter_map(|x| x.snapshot_generation).max(),
                    stopped: f.record().stopped.clone(),
                }
            })
            .collect();
        self.metrics.record_progress(head, &progress);
        Ok(())
    }

    /// The config in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The lake.
    pub fn lake(&self) -> &dyn Lake {
        self.lake.as_ref()
    }

    /// The name the source knows a linked table by (its configured schema, if any, in
    /// front); the lake name when the config no longer lists it.
    fn source_table(&self, table: &str) -> TableRef {
        self.config
            .tables
            .iter()
            .find(|t| t.name.as_str() == table)
            .map_or_else(|| TableRef::new(table), TableSettings::source_table)
    }

    /// The position every completed table is durable through.
    fn common_position(&self) -> Option<Position> {
        self.feeds
            .values()
            .filter(|f| f.table().is_flowing())
            .map(|f| f.record().position)
            .min()
    }

    /// Fails, for good, once the lake's writer lock is no longer this agent's (deleted or
    /// replaced by hand, or a lease taken by another writer): another agent may be writing,
    /// and the append length check alone must not be what keeps the lake whole.
    pub fn verify_lock(&self) -> Result<(), EngineError> {
        Ok(self.lock.verify()?)
    }

    /// Whether any snapshot was ever published to this lake.
    pub fn has_published(&self) -> Result<bool, EngineError> {
        Ok(self.state.published()?.is_some())
    }

    /// Takes a snapshot now (publishing only if something changed).
    pub fn snapshot(&mut self) -> Result<Option<snapshot::Published>, EngineError> {
        self.catch_up()?;
        // Whether or not this run ends up publishing, it names every table linked by now.
        self.unpublished_links = false;
        if self.inside_position {
            // Catching up stopped inside a position only because of shutdown: a snapshot now
            // would cut a transaction.
            tracing::info!(
                "shutdown inside a transaction larger than a batch: no snapshot now; the next start goes on with it"
            );
            return Ok(None);
        }
        self.verify_lock()?;
        let position = match self.common_position() {
            Some(p) => p,
            None => self.state.published()?.map_or(Position(0), |p| p.position),
        };
        let mut tables: Vec<&mut LinkedTable> =
            self.feeds.values_mut().map(TableFeed::table_mut).collect();
        let published = snapshot::publish(
            self.format.as_ref(),
            self.lake.as_ref(),
            &mut self.state,
            &mut tables,
            position,
            Retention {
                keep: self.config.engine.keep_generations,
                reader_grace: self.config.engine.reader_grace,
            },
            &now_text(),
        )?;
        if let Some(p) = &published {
            self.metrics
                .record_snapshot(p.generation, p.elapsed.as_secs_f64());
            self.report_progress(&HashMap::new())?;
            tracing::info!(
                generation = p.generation, position = %p.position, files = p.cuts.len(),
                seconds = p.elapsed.as_secs_f64(), removed_files = p.removed.files,
                "snapshot published"
            );
        }
        Ok(published)
    }

    /// Whether a table finished its initial copy since the last snapshot run: a running agent
    /// then publishes at once rather than at the next interval, so that a table linked by
    /// editing the config is readable from model.json as soon as it is copied, not up to an
    /// interval later.
    pub fn has_unpublished_links(&self) -> bool {
        self.unpublished_links
    }

    fn write_trickle_manifest(&self, feed: &TableFeed) -> Result<(), EngineError> {
        trickle_manifest::write(self.lake.as_ref(), feed.table())
    }
}

/// The line that says a configured table cannot be linked, why, and what to do.
pub fn refuse_line(table: &str, reason: &str) -> String {
    format!(
        "table {table:?} is not linked: {reason}; the other tables sync. Fix the table or its [[table]] in the config (the agent tries again when the config changes and at every start), or unlink it"
    )
}

/// Whether `table` can be linked as `config` has it: it is in the source, has a key, and is
/// a table lakelink can capture. Only reads the source (for `lakelink link`, before it edits
/// the config).
pub fn check_linkable(config: &Config, table: &str) -> Result<(), EngineError> {
    let Some(settings) = config
        .tables
        .iter()
        .find(|t| t.name.as_str().eq_ignore_ascii_case(table))
    else {
        return Err(EngineError::Link {
            table: table.to_string(),
            reason: "is not in the config".into(),
        });
    };
    // Describing a table does not touch capture objects, so no lake's capture name is needed.
    let mut source = open_source(&config.source, "")?;
    table_schema::resolve(source.as_mut(), settings)?;
    Ok(())
}

/// The one line that says a table stopped, why, and how to resume it.
pub fn stop_line(table: &str, reason: &str) -> String {
    format!(
        "table {table:?} stopped: {reason}; its lake files stay as they are; to resume it, relink it (remove its [[table]] from the config, sync, then add it back), which copies it afresh (until it is back it leaves model.json, and with on_unlink = \"delete\" its live files go)"
    )
}

fn table_name(name: &str) -> Result<TableName, EngineError> {
    TableName::new(name).map_err(|e| EngineError::Link {
        table: name.to_string(),
        reason: e.to_string(),
    })
}
