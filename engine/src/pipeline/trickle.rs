//! The trickle feed's pass: one batch of changes read from the source, appended to each
//! table's live files, checkpointed, and only then acknowledged to the source.

use super::{FLUSH_BYTES, Pipeline, Trickled, now_text};
use crate::error::EngineError;
use crate::snapshot::SNAPSHOT_MEMORY;
use crate::state::HistoryMark;
use crate::table_feed::BatchProgress;
use lakelink_model::change::{ChangeKind, LinkId, Position};
use std::collections::{BTreeMap, HashMap};

impl Pipeline {
    /// Reads one batch of changes and makes it durable in the lake. Returns how many changes
    /// it read and whether the source had no more. After a failure nothing of the batch is
    /// checkpointed; whatever reached the lake is skipped when the batch is read again.
    pub fn trickle_once(&mut self) -> Result<Trickled, EngineError> {
        let result = self.trickle_batch();
        if result.is_err() {
            for feed in self.feeds.values_mut() {
                feed.discard_buffers();
            }
            // Read again, from the first change of a position split across batches.
            self.source.discard_read();
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
                inside_position: false,
            });
        };
        let max = self.config.engine.batch_size;
        let batch = self.source.read_changes(after, max)?;
        // The source says whether it holds more: a count could not tell (a source skips what
        // belongs to no link, and stops at a byte cap).
        let caught_up = !batch.more;
        let inside_position = batch.ends_inside_position();
        // A batch inside one large position holds changes with its end not moved.
        if batch.end <= after && batch.changes.is_empty() && batch.broken.is_empty() {
            return Ok(Trickled {
                changes: 0,
                caught_up,
                inside_position,
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
                // A break the table's own copy already stands past (it was copied after it)
                // is not the table's to stop for.
                if self
                    .feeds
                    .get(table)
                    .is_some_and(|f| broken.position <= f.record().position)
                {
                    continue;
                }
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
            if change.position <= feed.record().position {
                continue;
            }
            if broken_at
                .get(&change.link)
                .is_some_and(|&at| change.position >= at)
            {
                continue;
            }
            if change.kind == ChangeKind::Truncate {
                match feed.truncate(
                    self.lake.as_ref(),
                    self.format.as_ref(),
                    change.position,
                    &now,
                    SNAPSHOT_MEMORY,
                    FLUSH_BYTES,
                ) {
                    Ok(appended) => files.extend(appended),
                    Err(e) if e.is_transient() => return Err(e),
                    Err(e) => {
                        // The table's own files cannot be listed (a damaged or missing
                        // snapshot, a live file changed by hand): that table stops, with
                        // none of this truncate's records still buffered; the others flow.
                        feed.discard_buffers();
                        stopping
                            .entry(feed.record().table.clone())
                            .or_insert(format!(
                                "its TRUNCATE at position {} could not be written: {e}",
                                change.position
                            ));
                        self.by_link.remove(&change.link);
                    }
                }
                continue;
            }
            if let Err(problem) = feed.apply(change, &now) {
                let reason = format!("{problem} (at position {})", change.position);
                stopping
                    .entry(feed.record().table.clone())
                    .or_insert(reason);
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
            if feed.record().stopped.is_some() {
                continue;
            }
            files.extend(feed.flush(self.lake.as_ref())?);
            if feed.take_new_partitions() {
                manifests.push(feed.record().table.clone());
            }
            if stopping.contains_key(&feed.record().table) {
                continue;
            }
            if batch.end > feed.record().position {
                feed.record_mut().position = batch.end;
                positions.push((feed.record().table.clone(), batch.end));
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
            .map(|f| (f.record().table.clone(), f.take_progress()))
            .collect();
        self.report_progress(&batch_progress)?;
        tracing::debug!(changes = batch.changes.len(), end = %batch.end, files = files.len(), "batch committed");
        Ok(Trickled {
            changes: batch.changes.len(),
            caught_up,
            inside_position,
        })
    }

    /// Trickles until the source has nothing more (bounded, so a writer that never pauses
    /// cannot hold a snapshot off forever), and never stops inside a position: a transaction
    /// read in several batches is read to its end, so that a snapshot never cuts it.
    pub fn catch_up(&mut self) -> Result<usize, EngineError> {
        let mut total = 0;
        let mut batches = 0;
        loop {
            // A schema change is handled before the batch that follows it is read.
            self.check_schemas()?;
            let trickled = self.trickle_once()?;
            total += trickled.changes;
            batches += 1;
            self.inside_position = trickled.inside_position;
            if trickled.inside_position {
                if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Shutdown: the rest of the transaction is read at the next start (the
                    // snapshot that asked waits for it).
                    break;
                }
                continue;
            }
            if trickled.caught_up || batches >= 1000 {
                break;
            }
        }
        Ok(total)
    }
}
