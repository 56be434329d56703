//! Linking a table (capture first, then the initial copy at a known position, from which it
//! trickles) and unlinking one. The copy runs on two threads, the source read on this one and
//! the rows encoded and appended on the other, through a bounded channel.

use super::{
    COPY_CHUNK_BYTES, COPY_CHUNK_ROWS, COPY_QUEUE_CHUNKS, FLUSH_BYTES, Pipeline, now_text,
};
use crate::config::{OnUnlink, TableSettings};
use crate::copy_progress::CopyProgress;
use crate::error::EngineError;
use crate::state::{LinkRecord, LiveFile, SyncState};
use crate::table_feed::TableFeed;
use lakelink_model::change::Position;
use lakelink_model::lake_path::{LakePath, TableName};
use lakelink_model::schema::TableSchema;
use lakelink_model::source::CaptureSpec;
use lakelink_model::value::Value;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::Ordering;

impl Pipeline {
    /// Links a table: capture first, then the initial copy at a known position, then it
    /// trickles from that position.
    pub(super) fn link(
        &mut self,
        table: &TableSettings,
        schema: TableSchema,
    ) -> Result<(), EngineError> {
        let name = table.name.clone();
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
            stopped: None,
        };
        self.state.put_link(&record)?;
        let spec = CaptureSpec {
            link,
            table: table.source_table(),
            schema: record.schema.clone(),
            added_from: None,
        };
        self.verify_lock()?;
        self.source.install_capture(&spec)?;
        tracing::info!(table = %name, link, "capture installed; starting the initial copy");
        record.state = SyncState::InProgress;
        self.state.put_link(&record)?;
        // A fresh initial sync replaces whatever live files an earlier link or an interrupted
        // copy left; snapshot files stay for the manifests that still name them.
        self.state.clear_live_files(&record.table)?;
        self.delete_live_files(&name)?;

        let started = std::time::Instant::now();
        let now = now_text();
        let total = self.source.count_rows(&table.source_table())?;
        let progress = CopyProgress::new(name.as_str(), total);
        let feed = TableFeed::for_copy(record.clone(), name.clone());
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
                        feed.copy_row(row, position, &now)?;
                    }
                    if feed.buffered_bytes() >= FLUSH_BYTES {
                        feed.flush(lake)?;
                    }
                }
                feed.finish_copy(lake)?;
                Ok(feed)
            });
            let mut chunk = Vec::with_capacity(COPY_CHUNK_ROWS);
            let mut rows: u64 = 0;
            // Every row of a copy stands at the copy's position.
            let mut copy_position = Position(0);
            let mut chunk_bytes = 0usize;
            let read = source.copy_table(&spec, &mut |position, row| {
                copy_position = position;
                chunk_bytes += row.iter().map(Value::memory_size).sum::<usize>();
                chunk.push(row);
                rows += 1;
                progress.advance(rows);
                if (chunk.len() == COPY_CHUNK_ROWS || chunk_bytes >= COPY_CHUNK_BYTES)
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
                if chunk.is_empty() {
                    chunk_bytes = 0;
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
        let feed = match encoded {
            Err(refused @ EngineError::Link { .. }) => {
                // The table cannot be linked as it is: take capture back out, so that the
                // application does not keep paying for it, and forget the link.
                progress.finish();
                self.source.remove_capture(link, &table.source_table())?;
                self.state.remove_link(name.as_str())?;
                self.delete_live_files(&name)?;
                return Err(refused);
            }
            other => other?,
        };
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
        self.by_link.insert(link, feed.record().table.clone());
        self.feeds.insert(feed.record().table.clone(), feed);
        self.unpublished_links = true;
        if self.common_position() == Some(position) {
            // The first table (or one copied at the lowest position) sets where every table
            // resumes from: mark the source's history there.
            self.mark_history(position)?;
        }
        self.report_progress(&HashMap::new())?;
        Ok(())
    }

    /// Unlinks a table: capture removed from the source, the table forgotten; its folder stays
    /// in the lake and the entity leaves model.json at the next publish.
    pub(super) fn unlink(&mut self, table: &str) -> Result<(), EngineError> {
        self.verify_lock()?;
        let link = self.state.links()?.into_iter().find(|r| r.table == table);
        if let Some(record) = link {
            self.source
                .remove_capture(record.link, &self.source_table(table))?;
            self.by_link.remove(&record.link);
        }
        self.state.remove_link(table)?;
        self.feeds.remove(table);
        self.metrics.forget_table(table);
        if let Ok(name) = TableName::new(table) {
            self.lake.delete(&LakePath::trickle_manifest(&name))?;
            if self.config.engine.on_unlink == OnUnlink::Delete {
                // Live files go now (each as the append log it is, every split with it);
                // snapshot files go with retention, once no kept manifest (which readers may
                // still be using) names them.
                self.delete_live_files(&name)?;
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
}
