//! The pipeline of one source and one lake: linking and unlinking tables, the trickle feed,
//! schema changes and snapshots, over the checkpoint store. `lakelink run` and `lakelink sync`
//! drive it; everything they share goes through here, so startup, a pass and a reload are one
//! code path.

use crate::config::{Config, LakeConfig, OnUnlink, SourceConfig, TableSettings};
use crate::copy_progress::CopyProgress;
use crate::error::EngineError;
use crate::manifest;
use crate::metrics::{Metrics, TableProgress};
use crate::recovery;
use crate::snapshot;
use crate::state::{LinkRecord, LiveFile, StateStore, SyncState};
use crate::table_feed::TableFeed;
use crate::table_schema;
#[cfg(feature = "adls")]
use lakelink_connectors::lake::adls::AdlsLake;
use lakelink_connectors::lake::local::LocalLake;
#[cfg(feature = "postgres")]
use lakelink_connectors::source::postgres::PostgresSource;
use lakelink_connectors::source::sqlite::SqliteSource;
use lakelink_model::change::{LinkId, Position};
use lakelink_model::datetime::UtcDateTime;
use lakelink_model::lake::{Lake, WriterLock};
use lakelink_model::lake_path::{LakePath, TableName};
use lakelink_model::source::{CaptureSpec, Source};
use lakelink_model::value::Value;
use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A feed's buffers are appended once they hold this much, even mid-batch, so a batch of wide
/// rows never holds more than this per table in memory.
const FLUSH_BYTES: usize = 8 << 20;

/// Rows per chunk handed from the copy's reader to its writer.
const COPY_CHUNK_ROWS: usize = 1024;
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
    _lock: Box<dyn WriterLock>,
}

/// Opens the lake a config names.
pub fn open_lake(config: &LakeConfig) -> Result<Box<dyn Lake>, EngineError> {
    Ok(match config {
        LakeConfig::Local(c) => Box::new(LocalLake::open(&c.path, c.base_url.clone())?),
        #[cfg(feature = "adls")]
        LakeConfig::Adls(c) => Box::new(AdlsLake::open(c)?),
    })
}

fn open_source(config: &SourceConfig) -> Result<Box<dyn Source>, EngineError> {
    Ok(match config {
        SourceConfig::Sqlite(c) => Box::new(SqliteSource::open(c)?),
        #[cfg(feature = "postgres")]
        SourceConfig::Postgres(c) => Box::new(PostgresSource::open(c)?),
    })
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
        let status = status_address.map_or_else(String::new, |a| format!(", status http://{a}"));
        let holder = format!(
            "lakelink pid {} (config {}, since {}{status})",
            std::process::id(),
            config.path.display(),
            now_text()
        );
        let lock = lake.lock_writer(&holder)?;
        let source = open_source(&config.source)?;
        let mut state = StateStore::open(&config.engine.state, &lake.describe())?;
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
            _lock: lock,
        };
        for record in pipeline.state.links()? {
            if record.state != SyncState::Completed {
                // An initial sync a crash interrupted starts over when the table is linked.
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
            pipeline.state.commit_batch(&files, &[])?;
            let source_table = pipeline.source_table(&record.table);
            pipeline.source.install_capture(&CaptureSpec {
                link: record.link,
                table: source_table,
                schema: record.schema.clone(),
                added_from: None,
            })?;
            pipeline.by_link.insert(record.link, record.table.clone());
            let feed = TableFeed::new(record, name, files);
            pipeline.write_trickle_manifest(&feed)?;
            pipeline.feeds.insert(feed.record.table.clone(), feed);
        }
        pipeline.report_progress(&HashMap::new())?;
        Ok(pipeline)
    }

    /// The registry this pipeline reports to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Reports every table's state to the metrics, with `batch` = per table (changes, rows,
    /// bytes) of the batch just committed.
    fn report_progress(
        &mut self,
        batch: &HashMap<String, (u64, u64, u64)>,
    ) -> Result<(), EngineError> {
        let head = self.source.head_position()?.0;
        let progress: Vec<TableProgress> = self
            .feeds
            .values()
            .map(|f| {
                let (changes, rows, bytes) =
                    batch.get(&f.record.table).copied().unwrap_or_default();
                TableProgress {
                    table: f.record.table.clone(),
                    state: f.record.state.as_str().to_string(),
                    position: f.record.position.0,
                    changes,
                    rows,
                    bytes,
                    live_rows: f.files().map(|x| x.rows).sum(),
                    partitions: f.files().count(),
                    last_snapshot: f.files().filter_map(|x| x.snapshot_generation).max(),
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

    /// Applies a changed config: tables added are linked, tables removed are unlinked, and
    /// `[engine]` settings take effect. The source, the lake and the checkpoint store stay as
    /// they were opened until the next start (they are the agent's identity), and saying so.
    pub fn apply_config(&mut self, mut new: Config) -> Result<(), EngineError> {
        let old = &self.config;
        if new.source != old.source || new.lake != old.lake || new.engine.state != old.engine.state
        {
            tracing::warn!(
                "[source], [lake] and [engine] state changed; they take effect when the agent restarts"
            );
            new.source = old.source.clone();
            new.lake = old.lake.clone();
            new.engine.state = old.engine.state.clone();
        }
        // Every new table must be linkable before anything changes, so that a rejected config
        // leaves the agent exactly on the last good one.
        for table in &new.tables {
            if !self.feeds.contains_key(table.name.as_str()) {
                table_schema::resolve(self.source.as_mut(), table)?;
            }
        }
        self.config = new;
        self.reconcile()
    }

    /// The lake.
    pub fn lake(&self) -> &dyn Lake {
        self.lake.as_ref()
    }

    /// Links the configured tables that are not linked yet (running their initial sync) and
    /// unlinks the tables the config no longer lists.
    pub fn reconcile(&mut self) -> Result<(), EngineError> {
        let wanted: Vec<TableSettings> = self.config.tables.clone();
        let stale: Vec<String> = self
            .state
            .links()?
            .into_iter()
            .map(|r| r.table)
            .filter(|t| !wanted.iter().any(|w| w.name.as_str() == t))
            .collect();
        for table in stale {
            self.unlink(&table)?;
        }
        for table in &wanted {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            match self.feeds.get(table.name.as_str()) {
                Some(feed) => table_schema::warn_on_changed_options(feed, table),
                None => self.link(table)?,
            }
        }
        Ok(())
    }

    /// Links a table: capture first, then the initial copy at a known position, then it
    /// trickles from that position.
    fn link(&mut self, table: &TableSettings) -> Result<(), EngineError> {
        let name = table.name.clone();
        let schema = table_schema::resolve(self.source.as_mut(), table)?;
        let previous = self
            .state
            .links()?
            .into_iter()
            .find(|r| r.table == name.as_str());
        let link = match &previous {
            Some(r) => r.link,
            None => self.state.next_link_id()?,
        };
        let mut record = LinkRecord {
            table: name.as_str().to_string(),
            link,
            state: SyncState::NotStarted,
            position: Position(0),
            schema,
            mode: table.mode,
            granularity: table.granularity,
            completed_at: None,
        };
        self.state.put_link(&record)?;
        let spec = CaptureSpec {
            link,
            table: table.source_name(),
            schema: record.schema.clone(),
            added_from: None,
        };
        self.source.install_capture(&spec)?;
        tracing::info!(table = %name, link, "capture installed; starting the initial copy");
        record.state = SyncState::InProgress;
        self.state.put_link(&record)?;
        // A fresh initial sync replaces whatever live files an earlier link or an interrupted
        // copy left; snapshot files stay for the manifests that still name them.
        self.state.clear_live_files(&record.table)?;
        for entry in self.lake.list(&LakePath::table_dir(&name))? {
            if !entry.is_dir && entry.path.file_name().ends_with(".csv") {
                self.lake.delete(&entry.path)?;
            }
        }

        let started = std::time::Instant::now();
        let now = now_text();
        let total = self.source.count_rows(&table.source_name())?;
        let progress = CopyProgress::new(name.as_str(), total);
        let feed = TableFeed::new(record.clone(), name.clone(), Vec::new());
        let lake = self.lake.as_ref();
        let stop = &self.stop;
        let source = &mut self.source;
        // Two threads: this one reads the source, the other encodes rows and appends them, so
        // that reading and writing overlap. Rows travel in chunks through a bounded channel:
        // a slow lake slows the read instead of filling memory.
        let (sender, receiver) =
            std::sync::mpsc::sync_channel::<(Position, Vec<Vec<Value>>)>(COPY_QUEUE_CHUNKS);
        let (position, encoded, rows) = std::thread::scope(|scope| {
            let writer = scope.spawn(|| -> Result<TableFeed, EngineError> {
                let mut feed = feed;
                for (position, chunk) in receiver {
                    for row in &chunk {
                        feed.copy_row(row, position, &now);
                    }
                    if feed.buffered_bytes() >= FLUSH_BYTES {
                        feed.flush(lake)?;
                    }
                }
                feed.flush(lake)?;
                Ok(feed)
            });
            let mut chunk = Vec::with_capacity(COPY_CHUNK_ROWS);
            let mut rows: u64 = 0;
            // Every row of a copy stands at the copy's position.
            let mut copy_position = Position(0);
            let read = source.copy_table(&spec, &mut |position, row| {
                copy_position = position;
                chunk.push(row);
                rows += 1;
                progress.advance(rows);
                if chunk.len() == COPY_CHUNK_ROWS
                    && sender
                        .send((
                            position,
                            std::mem::replace(&mut chunk, Vec::with_capacity(COPY_CHUNK_ROWS)),
                        ))
                        .is_err()
                {
                    // The writer stopped on an error, which its join reports.
                    return ControlFlow::Break(());
                }
                if stop.load(Ordering::Relaxed) {
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            });
            if !chunk.is_empty() {
                let _ = sender.send((copy_position, chunk));
            }
            drop(sender);
            let encoded = writer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (read, encoded, rows)
        });
        let feed = encoded?;
        let position = position?;
        progress.finish();
        if self.stop.load(Ordering::Relaxed) {
            tracing::info!(table = %name, "initial copy interrupted by shutdown; it starts over next time");
            return Ok(());
        }
        record.state = SyncState::Completed;
        record.position = position;
        record.completed_at = Some(now_text());
        let files: Vec<LiveFile> = feed.files().cloned().collect();
        self.state.complete_initial_sync(&record, &files)?;
        let feed = TableFeed::new(record, name.clone(), files);
        self.write_trickle_manifest(&feed)?;
        tracing::info!(
            table = %name, rows, position = %position,
            seconds = started.elapsed().as_secs_f64(), "initial copy completed"
        );
        self.by_link.insert(link, feed.record.table.clone());
        self.feeds.insert(feed.record.table.clone(), feed);
        self.report_progress(&HashMap::new())?;
        Ok(())
    }

    /// Unlinks a table: capture removed from the source, the table forgotten; its folder stays
    /// in the lake and the entity leaves model.json at the next publish.
    fn unlink(&mut self, table: &str) -> Result<(), EngineError> {
        let link = self.state.links()?.into_iter().find(|r| r.table == table);
        if let Some(record) = link {
            self.source.remove_capture(record.link, table)?;
            self.by_link.remove(&record.link);
        }
        self.state.remove_link(table)?;
        self.feeds.remove(table);
        self.metrics.forget_table(table);
        if let Ok(name) = TableName::new(table) {
            self.lake.delete(&LakePath::trickle_manifest(&name))?;
            if self.config.engine.on_unlink == OnUnlink::Delete {
                // Live files go now; snapshot files go with retention, once no kept manifest
                // (which readers may still be using) names them.
                for entry in self.lake.list(&LakePath::table_dir(&name))? {
                    if !entry.is_dir {
                        self.lake.delete(&entry.path)?;
                    }
                }
                tracing::info!(
                    table,
                    "unlinked; its live files are deleted, its snapshots go with retention"
                );
                return Ok(());
            }
        }
        tracing::info!(table, "unlinked; its folder stays in the lake");
        Ok(())
    }

    /// Picks up columns added to linked tables since the last look.
    pub fn check_schemas(&mut self) -> Result<(), EngineError> {
        let version = self.source.schema_version()?;
        if self.schema_version == Some(version) {
            return Ok(());
        }
        self.schema_version = Some(version);
        let tables: Vec<String> = self.feeds.keys().cloned().collect();
        for table in tables {
            let source_table = self.source_table(&table);
            let described = self.source.describe_table(&source_table)?;
            let feed = &self.feeds[&table];
            let known = &feed.record.schema.columns;
            let same_prefix = described.columns.len() >= known.len()
                && known
                    .iter()
                    .zip(&described.columns)
                    .all(|(a, b)| a.name == b.name && a.declared_type == b.declared_type);
            if !same_prefix {
                tracing::warn!(
                    table,
                    "columns were renamed, dropped or retyped; new rows keep the linked columns; relink the table to take the new shape"
                );
                continue;
            }
            if described.columns.len() == known.len() {
                continue;
            }
            let mut schema = feed.record.schema.clone();
            let added: Vec<String> = described.columns[known.len()..]
                .iter()
                .map(|c| c.name.clone())
                .collect();
            schema.columns = described.columns;
            self.source.install_capture(&CaptureSpec {
                link: feed.record.link,
                table: source_table,
                schema: schema.clone(),
                added_from: Some(known.len()),
            })?;
            let feed = self.feeds.get_mut(&table).expect("feed listed above");
            feed.widen(schema);
            self.state.put_link(&feed.record)?;
            let feed = &self.feeds[&table];
            self.write_trickle_manifest(feed)?;
            tracing::info!(
                table,
                ?added,
                "columns added; they are captured from now on"
            );
        }
        Ok(())
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
            .filter(|f| f.record.state == SyncState::Completed)
            .map(|f| f.record.position)
            .min()
    }

    /// Reads one batch of changes and makes it durable in the lake. Returns how many changes
    /// it read and whether the source had no more. After a failure nothing of the batch is
    /// checkpointed; whatever reached the lake is skipped when the batch is read again.
    pub fn trickle_once(&mut self) -> Result<(usize, bool), EngineError> {
        let result = self.trickle_batch();
        if result.is_err() {
            for feed in self.feeds.values_mut() {
                feed.discard_buffers();
            }
        }
        result
    }

    fn trickle_batch(&mut self) -> Result<(usize, bool), EngineError> {
        let Some(after) = self.common_position() else {
            return Ok((0, true));
        };
        let max = self.config.engine.batch_size;
        let batch = self.source.read_changes(after, max)?;
        let caught_up = batch.changes.len() < max;
        if batch.end <= after {
            return Ok((0, caught_up));
        }
        let now = now_text();
        let mut files = Vec::new();
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
            feed.apply(change, &now);
            if feed.buffered_bytes() >= FLUSH_BYTES {
                files.extend(feed.flush(self.lake.as_ref())?);
            }
        }
        let mut positions = Vec::new();
        let mut manifests = Vec::new();
        for feed in self.feeds.values_mut() {
            files.extend(feed.flush(self.lake.as_ref())?);
            if feed.take_new_partitions() {
                manifests.push(feed.record.table.clone());
            }
            if batch.end > feed.record.position {
                feed.record.position = batch.end;
                positions.push((feed.record.table.clone(), batch.end));
            }
        }
        for table in manifests {
            self.write_trickle_manifest(&self.feeds[&table])?;
        }
        self.state.commit_batch(&files, &positions)?;
        if let Some(upto) = self.common_position() {
            self.source.acknowledge(upto)?;
        }
        let batch_progress: HashMap<String, (u64, u64, u64)> = self
            .feeds
            .values_mut()
            .map(|f| (f.record.table.clone(), f.take_progress()))
            .collect();
        self.report_progress(&batch_progress)?;
        tracing::debug!(changes = batch.changes.len(), end = %batch.end, files = files.len(), "batch committed");
        Ok((batch.changes.len(), caught_up))
    }

    /// Trickles until the source has nothing more (bounded, so a writer that never pauses
    /// cannot hold a snapshot off forever).
    pub fn catch_up(&mut self) -> Result<usize, EngineError> {
        let mut total = 0;
        for _ in 0..1000 {
            let (n, caught_up) = self.trickle_once()?;
            total += n;
            if caught_up {
                break;
            }
        }
        Ok(total)
    }

    /// Whether any snapshot was ever published to this lake.
    pub fn has_published(&self) -> Result<bool, EngineError> {
        Ok(self.state.published()?.is_some())
    }

    /// Takes a snapshot now (publishing only if something changed).
    pub fn snapshot(&mut self) -> Result<Option<snapshot::Published>, EngineError> {
        self.catch_up()?;
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

fn table_name(name: &str) -> Result<TableName, EngineError> {
    TableName::new(name).map_err(|e| EngineError::Link {
        table: name.to_string(),
        reason: e.to_string(),
    })
}
