//! The pipeline of one source and one lake: linking and unlinking tables, the trickle feed,
//! schema changes and snapshots, over the checkpoint store. `lakelink run` and `lakelink sync`
//! drive it; everything they share goes through here, so startup, a pass and a reload are one
//! code path.

mod link;
mod reconcile;

use crate::config::{Config, LakeConfig, SourceConfig, TableSettings};
use crate::error::EngineError;
use crate::manifest;
use crate::metrics::{Metrics, TableProgress};
use crate::pending_links::PendingLinks;
use crate::recovery;
use crate::snapshot;
use crate::state::{HistoryMark, StateStore, SyncState};
use crate::table_feed::{BatchProgress, TableFeed};
use crate::table_schema;
use lakelink_model::change::{LinkId, Position};
use lakelink_model::datetime::UtcDateTime;
use lakelink_model::lake::{Lake, WriterLock};
use lakelink_model::lake_path::{LakePath, TableName};
use lakelink_model::schema::ColumnFill;
use lakelink_model::source::{CaptureSpec, ExistingRows, Source, SourceError};
use lakelink_model::writer_holder::WriterHolder;
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
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    /// Configured tables that are refused, or whose link or unlink waits for the source.
    pending: PendingLinks,
    /// The lake's writer lock, verified before every write (see [`Pipeline::verify_lock`]).
    lock: Box<dyn WriterLock>,
}

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
}

impl Pipeline {
    /// Takes the lake's writer lock, opens the source and the checkpoint store, and repairs
    /// what a crash left. `stop` interrupts a long initial copy.
    pub fn open(config: Config, stop: Arc<AtomicBool>) -> Result<Pipeline, EngineError> {
        let lake = open_lake(&config.lake)?;
        Pipeline::open_with_lake(config, lake, stop)
    }

    /// [`Pipeline::open`] over a lake the caller opened (the config's `[lake]` is not used to
    /// open one): for embedding, and for tests that put a fault-injecting wrapper around it.
    pub fn open_with_lake(
        config: Config,
        lake: Box<dyn Lake>,
        stop: Arc<AtomicBool>,
    ) -> Result<Pipeline, EngineError> {
        Pipeline::open_instrumented(config, lake, stop, Arc::new(Metrics::default()), None)
    }

    /// [`Pipeline::open_with_lake`] reporting to `metrics`, and naming the agent's status
    /// endpoint in the lake's lock so that `lakelink status` can find it.
    pub fn open_instrumented(
        config: Config,
        lake: Box<dyn Lake>,
        stop: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
        status_address: Option<std::net::SocketAddr>,
    ) -> Result<Pipeline, EngineError> {
        let holder = WriterHolder {
            pid: std::process::id(),
            config: config.path.display().to_string(),
            since: now_text(),
            status: status_address,
        };
        let lock = lake.lock_writer(&holder.to_string())?;
        let mut state = StateStore::open(&config.engine.state, &lake.describe())?;
        let source = open_source(&config.source, &state.capture_name()?)?;
        recovery::remove_abandoned_files(lake.as_ref())?;
        recovery::settle_publish(lake.as_ref(), &mut state, &now_text())?;
        let mut pipeline = Pipeline {
            config,
            lake,
            source,
            state,
            feeds: BTreeMap::new(),
            by_link: HashMap::new(),
            schema_version: None,
            stop,
            metrics,
            pending: PendingLinks::default(),
            lock,
        };
        for record in pipeline.state.links()? {
            if record.state != SyncState::Completed {
                // An initial sync a crash interrupted starts over when the table is linked.
                continue;
            }
            if let Some(reason) = &record.stopped {
                // Stopped tables stay stopped, and say so at every start, until relinked.
                tracing::error!(table = %record.table, "{}", stop_line(&record.table, reason));
                // A crash may have come between recording the stop and removing capture:
                // remove it again (it is idempotent).
                let source_table = pipeline.source_table(&record.table);
                if let Err(e) = pipeline.source.remove_capture(record.link, &source_table) {
                    tracing::warn!(table = %record.table, error = %e, "could not remove the stopped table's capture; it is removed when the table is relinked");
                }
                let name = table_name(&record.table)?;
                let files = pipeline.state.live_files(&record.table)?;
                let feed = TableFeed::new(record, name, files);
                pipeline.feeds.insert(feed.record.table.clone(), feed);
                continue;
            }
            if !pipeline
                .config
                .tables
                .iter()
                .any(|t| t.name.as_str() == record.table)
            {
                // No longer configured: the reconcile that follows unlinks it; reinstalling
                // its capture first would only have to be undone.
                continue;
            }
            let name = table_name(&record.table)?;
            let files = pipeline.state.live_files(&record.table)?;
            let files = recovery::repair_live_files(pipeline.lake.as_ref(), &record, &name, files)?;
            pipeline.state.commit_batch(&files, &[], None)?;
            let source_table = pipeline.source_table(&record.table);
            let spec = CaptureSpec {
                link: record.link,
                table: source_table,
                schema: record.schema.clone(),
                added_from: None,
            };
            // Gone (or replaced) while the agent was stopped, where reinstalling capture would
            // capture another table or fail for every table; or changed so that its changes
            // can no longer be captured exactly (a replica identity set to NOTHING): that
            // table stops.
            let broken = match pipeline.source.capture_broken(&spec)? {
                Some(reason) => Some(reason),
                None => match pipeline.source.install_capture(&spec) {
                    Ok(()) => None,
                    Err(SourceError::Uncapturable { reason, .. }) => Some(reason),
                    Err(e) => return Err(e.into()),
                },
            };
            let feed = TableFeed::new(record, name, files);
            let table = feed.record.table.clone();
            if let Some(reason) = broken {
                pipeline.feeds.insert(table.clone(), feed);
                pipeline.stop_table(&table, reason)?;
                continue;
            }
            pipeline.by_link.insert(feed.record.link, table.clone());
            pipeline.write_trickle_manifest(&feed)?;
            pipeline.feeds.insert(table, feed);
        }
        if let Some(at) = pipeline.common_position() {
            // The mark is recorded with every checkpoint that moves the common position, so
            // it names `at` unless a crash came between a copy and its mark.
            let mark = pipeline.state.history_mark()?.filter(|h| h.position == at);
            let mark = mark.and_then(|h| h.mark);
            pipeline.source.resume_at(at, mark.as_deref())?;
        }
        pipeline.report_progress(&HashMap::new())?;
        Ok(pipeline)
    }

    /// Tables stopped because their capture could no longer be exact, with why.
    pub fn stopped_tables(&self) -> Vec<(String, String)> {
        self.feeds
            .values()
            .filter_map(|f| Some((f.record.table.clone(), f.record.stopped.clone()?)))
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
        if feed.record.stopped.is_some() {
            return Ok(());
        }
        feed.discard_buffers();
        feed.record.stopped = Some(reason.clone());
        let link = feed.record.link;
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
            if !entry.is_dir && entry.path.file_name().ends_with(".csv") {
                self.lake.delete(&entry.path)?;
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
        let progress: Vec<TableProgress> = self
            .feeds
            .values()
            .map(|f| {
                let done = batch.get(&f.record.table).copied().unwrap_or_default();
                TableProgress {
                    table: f.record.table.clone(),
                    state: f.record.state.as_str().to_string(),
                    position: f.record.position.0,
                    changes: done.changes,
                    rows: done.rows,
                    bytes: done.bytes,
                    live_rows: f.files().map(|x| x.rows).sum(),
                    partitions: f.files().count(),
                    last_snapshot: f.files().filter_map(|x| x.snapshot_generation).max(),
                    stopped: f.record.stopped.clone(),
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

    /// Looks at every linked table after a schema change: a table whose capture broke
    /// (dropped, recreated, renamed) or that changed in a way its lake entity cannot follow
    /// is stopped; columns added are picked up.
    pub fn check_schemas(&mut self) -> Result<(), EngineError> {
        let version = self.source.schema_version()?;
        if self.schema_version == Some(version) {
            return Ok(());
        }
        self.schema_version = Some(version);
        let tables: Vec<String> = self
            .feeds
            .values()
            .filter(|f| f.record.stopped.is_none() && f.record.state == SyncState::Completed)
            .map(|f| f.record.table.clone())
            .collect();
        for table in tables {
            if let Some(reason) = self.check_schema(&table)? {
                self.stop_table(&table, reason)?;
            }
        }
        Ok(())
    }

    /// One table of [`Pipeline::check_schemas`]: `Some(reason)` when it must stop.
    fn check_schema(&mut self, table: &str) -> Result<Option<String>, EngineError> {
        let source_table = self.source_table(table);
        let link = self.feeds[table].record.link;
        let spec = CaptureSpec {
            link,
            table: source_table.clone(),
            schema: self.feeds[table].record.schema.clone(),
            added_from: None,
        };
        if let Some(reason) = self.source.capture_broken(&spec)? {
            return Ok(Some(reason));
        }
        let described = match self.source.describe_table(&source_table) {
            Ok(d) => d,
            Err(SourceError::TableNotFound { .. }) => {
                return Ok(Some(format!(
                    "{source_table:?} is gone from the source (dropped or renamed)"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let known = self.feeds[table].record.schema.columns.clone();
        let mut drift = table_schema::compare(&known, &described.columns);
        if let Some((old, new)) = drift.renamed.first() {
            // SQLite would go on under the old name only until capture is installed again,
            // which then makes the application's own writes fail; PostgreSQL sends the column
            // under a name the lake does not know. Neither can be followed.
            return Ok(Some(format!(
                "column {old:?} was renamed to {new:?}, which its lake entity cannot follow"
            )));
        }
        let mut schema = self.feeds[table].record.schema.clone();
        let mut reshaped = false;
        // Links recorded before columns had numbers and tables an identity get them now.
        if schema.table_id.is_none() && described.id.is_some() {
            schema.table_id = described.id.clone();
            reshaped = true;
        }
        for c in schema.columns.iter_mut().filter(|c| c.number.is_none()) {
            if let Some(now) = described
                .columns
                .iter()
                .find(|d| d.name == c.name && d.number.is_some())
            {
                c.number = now.number;
                reshaped = true;
            }
        }
        // A column dropped and added again under its own name (a way to change its type) is
        // the same attribute, and its values flow into it again.
        let mut readded = Vec::new();
        drift.added.retain(|added| {
            let Some(k) = schema
                .columns
                .iter()
                .position(|c| c.name == added.name && drift.dropped.contains(&c.name))
            else {
                return true;
            };
            schema.columns[k].number = added.number;
            readded.push(added.name.clone());
            false
        });
        drift.dropped.retain(|d| !readded.contains(d));
        if !readded.is_empty() {
            reshaped = true;
            tracing::warn!(
                table, columns = ?readded,
                "columns were dropped and added again; their values flow into the same attributes, in the type they were linked with"
            );
        }
        let key_or_partition: Vec<&str> = schema
            .key
            .iter()
            .copied()
            .chain(schema.partition_column)
            .map(|i| schema.columns[i].name.as_str())
            .collect();
        if let Some(gone) = drift
            .dropped
            .iter()
            .find(|d| key_or_partition.contains(&d.as_str()))
        {
            return Ok(Some(format!(
                "column {gone:?}, which identifies its rows or picks their partition, was dropped"
            )));
        }
        if !drift.retyped.is_empty() || !drift.dropped.is_empty() {
            tracing::warn!(
                table, retyped = ?drift.retyped, dropped = ?drift.dropped,
                "columns were dropped or retyped; new rows keep the linked columns (a dropped one written empty); relink the table to take the new shape"
            );
        }
        if drift.added.is_empty() {
            if reshaped {
                let feed = self.feeds.get_mut(table).expect("a linked table");
                feed.record.schema = schema;
                self.state.put_link(&feed.record)?;
            }
            return Ok(None);
        }
        let mut candidate = schema.columns.clone();
        candidate.extend(drift.added.iter().cloned());
        if let Err(reason) = table_schema::check_names(&candidate) {
            return Ok(Some(format!("a column was added: {reason}")));
        }
        for column in &drift.added {
            let index = schema.columns.len();
            match self.source.existing_rows(&source_table, &column.name)? {
                ExistingRows::Null => {}
                ExistingRows::Value(value) => schema.fills.push(ColumnFill {
                    column: index,
                    value,
                }),
                ExistingRows::Unknown(reason) => {
                    return Ok(Some(format!(
                        "column {:?} was added: {reason}",
                        column.name
                    )));
                }
            }
            schema.columns.push(column.clone());
        }
        let added: Vec<String> = drift.added.iter().map(|c| c.name.clone()).collect();
        self.source.install_capture(&CaptureSpec {
            link,
            table: source_table,
            schema: schema.clone(),
            added_from: Some(known.len()),
        })?;
        let feed = self.feeds.get_mut(table).expect("a linked table");
        feed.widen(schema);
        self.state.put_link(&feed.record)?;
        let feed = &self.feeds[table];
        self.write_trickle_manifest(feed)?;
        tracing::info!(
            table,
            ?added,
            "columns added; they are captured from now on"
        );
        Ok(None)
    }

    /// The name the source knows a linked table by (its configured schema, if any, in
    /// front); the lake name when the config no longer lists it.
    fn source_table(&self, table: &str) -> String {
        self.config
            .tables
            .iter()
            .find(|t| t.name.as_str() == table)
            .map_or_else(|| table.to_string(), TableSettings::source_name)
    }

    /// The position every completed table is durable through.
    fn common_position(&self) -> Option<Position> {
        self.feeds
            .values()
            .filter(|f| f.record.state == SyncState::Completed && f.record.stopped.is_none())
            .map(|f| f.record.position)
            .min()
    }

    /// Reads one batch of changes and makes it durable in the lake. Returns how many changes
    /// it read and whether the source had no more. After a failure nothing of the batch is
    /// checkpointed; whatever reached the lake is skipped when the batch is read again.
    pub fn trickle_once(&mut self) -> Result<Trickled, EngineError> {
        let result = self.trickle_batch();
        if result.is_err() {
            for feed in self.feeds.values_mut() {
                feed.discard_buffers();
            }
        }
        result
    }

    fn trickle_batch(&mut self) -> Result<Trickled, EngineError> {
        // Every poll, not only before a write: one stat, and an agent whose lake was taken
        // over says so while idle too.
        self.verify_lock()?;
        let Some(after) = self.common_position() else {
            return Ok(Trickled {
                changes: 0,
                caught_up: true,
            });
        };
        let max = self.config.engine.batch_size;
        let batch = self.source.read_changes(after, max)?;
        // The source says whether it holds more: a count could not tell (a source skips what
        // belongs to no link, and stops at a byte cap).
        let caught_up = !batch.more;
        if batch.end <= after {
            return Ok(Trickled {
                changes: 0,
                caught_up,
            });
        }
        let now = now_text();
        let mut files = Vec::new();
        // Tables whose capture broke in this batch: their changes before the break are
        // written, then they stop.
        let mut stopping: BTreeMap<String, String> = BTreeMap::new();
        let mut broken_at: HashMap<LinkId, Position> = HashMap::new();
        for broken in &batch.broken {
            if let Some(table) = self.by_link.get(&broken.link) {
                let reason = format!("{} (at position {})", broken.reason, broken.position);
                stopping.insert(table.clone(), reason);
                broken_at.insert(broken.link, broken.position);
            }
        }
        for change in &batch.changes {
            let Some(feed) = self
                .by_link
                .get(&change.link)
                .and_then(|t| self.feeds.get_mut(t))
            else {
                continue;
            };
            if change.position <= feed.record.position {
                continue;
            }
            if broken_at
                .get(&change.link)
                .is_some_and(|&at| change.position >= at)
            {
                continue;
            }
            if let Err(problem) = feed.apply(change, &now) {
                let reason = format!("{problem} (at position {})", change.position);
                stopping.entry(feed.record.table.clone()).or_insert(reason);
                // The table's later changes in this batch are not written either.
                self.by_link.remove(&change.link);
                continue;
            }
            if feed.buffered_bytes() >= FLUSH_BYTES {
                files.extend(feed.flush(self.lake.as_ref())?);
            }
        }
        let mut positions = Vec::new();
        let mut manifests = Vec::new();
        for feed in self.feeds.values_mut() {
            if feed.record.stopped.is_some() {
                continue;
            }
            files.extend(feed.flush(self.lake.as_ref())?);
            if feed.take_new_partitions() {
                manifests.push(feed.record.table.clone());
            }
            if stopping.contains_key(&feed.record.table) {
                continue;
            }
            if batch.end > feed.record.position {
                feed.record.position = batch.end;
                positions.push((feed.record.table.clone(), batch.end));
            }
        }
        for table in manifests {
            self.write_trickle_manifest(&self.feeds[&table])?;
        }
        let history = match positions.is_empty() {
            true => None,
            false => Some(HistoryMark {
                position: batch.end,
                mark: self.source.history_mark(batch.end)?,
            }),
        };
        self.state
            .commit_batch(&files, &positions, history.as_ref())?;
        for (table, reason) in stopping {
            self.stop_table(&table, reason)?;
        }
        if let Some(upto) = self.common_position() {
            self.source.acknowledge(upto)?;
        }
        let batch_progress: HashMap<String, BatchProgress> = self
            .feeds
            .values_mut()
            .map(|f| (f.record.table.clone(), f.take_progress()))
            .collect();
        self.report_progress(&batch_progress)?;
        tracing::debug!(changes = batch.changes.len(), end = %batch.end, files = files.len(), "batch committed");
        Ok(Trickled {
            changes: batch.changes.len(),
            caught_up,
        })
    }

    /// Trickles until the source has nothing more (bounded, so a writer that never pauses
    /// cannot hold a snapshot off forever).
    pub fn catch_up(&mut self) -> Result<usize, EngineError> {
        let mut total = 0;
        for _ in 0..1000 {
            // A schema change is handled before the batch that follows it is read.
            self.check_schemas()?;
            let trickled = self.trickle_once()?;
            total += trickled.changes;
            if trickled.caught_up {
                break;
            }
        }
        Ok(total)
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
        self.verify_lock()?;
        let position = match self.common_position() {
            Some(p) => p,
            None => self.state.published()?.map_or(Position(0), |p| p.position),
        };
        let published = snapshot::publish(
            self.lake.as_ref(),
            &mut self.state,
            &mut self.feeds,
            position,
            self.config.engine.keep_generations,
            &now_text(),
        )?;
        if let Some(p) = &published {
            self.metrics
                .record_snapshot(p.generation, p.elapsed.as_secs_f64());
            self.report_progress(&HashMap::new())?;
            tracing::info!(
                generation = p.generation, position = %p.position, files = p.files_written,
                seconds = p.elapsed.as_secs_f64(), removed_files = p.removed.files,
                "snapshot published"
            );
        }
        Ok(published)
    }

    fn write_trickle_manifest(&self, feed: &TableFeed) -> Result<(), EngineError> {
        let model = manifest::trickle_model(self.lake.as_ref(), feed);
        self.lake.replace(
            &LakePath::trickle_manifest(feed.name()),
            &manifest::to_bytes(&model),
        )?;
        Ok(())
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
