//! Opening a pipeline: the lake's writer lock, the checkpoint store and the source, the repair
//! of what a crash left (recovery), and each linked table's capture and live files taken up
//! again where the checkpoint says.

use super::{Pipeline, now_text, open_lake, open_source, stop_line, table_name};
use crate::config::Config;
use crate::error::EngineError;
use crate::metrics::Metrics;
use crate::pending_links::PendingLinks;
use crate::recovery;
use crate::state::{StateStore, SyncState};
use crate::table_feed::TableFeed;
use lakelink_model::lake::Lake;
use lakelink_model::source::{CaptureSpec, SourceError};
use lakelink_model::writer_holder::WriterHolder;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

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
        state.check_output_format(config.format.name())?;
        config.format.check_lake(lake.as_ref())?;
        let format = config.format.open();
        recovery::remove_abandoned_files(lake.as_ref(), format.as_ref())?;
        recovery::settle_publish(lake.as_ref(), format.as_ref(), &mut state, &now_text())?;
        let mut pipeline = Pipeline {
            config,
            lake,
            source,
            state,
            feeds: BTreeMap::new(),
            by_link: HashMap::new(),
            schema_version: None,
            inside_position: false,
            unpublished_links: false,
            stop,
            metrics,
            pending: PendingLinks::default(),
            lock,
            format,
            retained_asked: None,
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
                pipeline.feeds.insert(feed.record().table.clone(), feed);
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
            let table = feed.record().table.clone();
            if let Some(reason) = broken {
                pipeline.feeds.insert(table.clone(), feed);
                pipeline.stop_table(&table, reason)?;
                continue;
            }
            pipeline.by_link.insert(feed.record().link, table.clone());
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
}
