//! Bringing the linked tables in line with the config, one table at a time so that no table
//! holds the others up: at start (`reconcile`), for a reload (`apply_config`, all or
//! nothing), and for the tables that wait on a backoff of their own (`link_waiting_tables`).
//!
//! Each link ends one of four ways: linked; refused alone (it cannot be linked as
//! configured: one line, tried again at the next start or config change); waiting (the
//! source keeps it busy behind an application's lock: tried again with backoff while the
//! others flow); or an error the agent retries as a whole (the lake or the source failing).

use super::{Pipeline, refuse_line};
use crate::config::{Config, TableSettings};
use crate::error::EngineError;
use crate::pending_links::Pending;
use crate::state::SyncState;
use crate::table_schema;
use lakelink_model::lake_path::{LakePath, TableName};
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Pipeline {
    /// Applies a changed config, all or nothing: tables added are linked, tables removed are
    /// unlinked, and `[engine]` settings take effect. The added tables are checked, then
    /// linked, before anything else changes; if one cannot be linked, the links this edit
    /// made are undone and the agent stays on the config in force, removed tables still
    /// linked. The source, the lake and the checkpoint store stay as they were opened until
    /// the next start (they are the agent's identity), and saying so.
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
        // A table the config in force already named that is refused or waiting does not
        // reject the edit: it is tried again by the reconcile below, alone.
        let added: Vec<TableSettings> = new
            .tables
            .iter()
            .filter(|t| {
                let name = t.name.as_str();
                !self.feeds.contains_key(name)
                    && !self.pending.is_refused(name)
                    && self.pending.waits(name).is_none()
            })
            .cloned()
            .collect();
        // Read-only checks first: most refusals change nothing at all.
        for table in &added {
            table_schema::resolve(self.source.as_mut(), table)?;
        }
        for table in &added {
            let name = table.name.as_str();
            match self.link_table(table) {
                Ok(()) => {}
                Err(e) if e.is_source_busy() && !self.feeds.contains_key(name) => {
                    self.wait_for_source(name, Pending::Link, &e);
                }
                // The lake or the source failing: the agent tries the edit again, and the
                // tables linked so far are linked already then (so not in `added`).
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    // Every table this edit brought in, in this try or an earlier one that
                    // failed on something passing, goes back out.
                    let brought_in: Vec<String> = new
                        .tables
                        .iter()
                        .map(|t| t.name.as_str().to_string())
                        .filter(|t| !self.config.tables.iter().any(|o| o.name.as_str() == t))
                        .collect();
                    for done in &brought_in {
                        if let Err(undo) = self.undo_link(done) {
                            tracing::warn!(table = %done, error = %undo, "could not take back this table's link; it is unlinked at the next start or config change");
                        }
                    }
                    return Err(e);
                }
            }
        }
        self.config = new;
        // The edit is in force from here: what fails now fails for the new config, and is
        // retried if it can pass, else said as such (never as a rejected edit).
        match self.reconcile() {
            Err(e) if !e.is_transient() => {
                tracing::error!(error = %e, "the config is in force, but applying it failed; the agent tries again at the next config change or start");
                Ok(())
            }
            other => other,
        }
    }

    /// Links the configured tables that are not linked yet (running their initial sync) and
    /// unlinks the tables the config no longer lists. A table that cannot be linked is
    /// refused alone and one the source keeps busy waits; the others go on.
    pub fn reconcile(&mut self) -> Result<(), EngineError> {
        let wanted: Vec<TableSettings> = self.config.tables.clone();
        let is_wanted = |table: &str| wanted.iter().any(|w| w.name.as_str() == table);
        let stale: Vec<String> = self
            .state
            .links()?
            .into_iter()
            .map(|r| r.table)
            .filter(|t| !is_wanted(t))
            .collect();
        for table in &stale {
            if !self.pending.is_waiting_now(table, Pending::Unlink) {
                self.try_unlink(table)?;
            }
        }
        for gone in self
            .pending
            .retain(|t| is_wanted(t) || stale.iter().any(|s| s == t))
        {
            self.metrics.forget_table(&gone);
        }
        for table in &wanted {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let name = table.name.as_str();
            if let Some(feed) = self.feeds.get(name) {
                // Configured again while a busy unlink waits: the unlink goes through first
                // (its capture may be half removed), then the table is linked afresh.
                table_schema::warn_on_changed_options(feed, table);
                continue;
            }
            if !self.pending.is_waiting_now(name, Pending::Link) {
                self.try_link(table)?;
            }
        }
        Ok(())
    }

    /// Tries again the tables whose wait for the source is over, and only those.
    pub fn link_waiting_tables(&mut self) -> Result<(), EngineError> {
        for (table, pending) in self.pending.due() {
            let settings = self
                .config
                .tables
                .iter()
                .find(|t| t.name.as_str() == table)
                .cloned();
            match (pending, settings) {
                (Pending::Unlink, settings) => {
                    self.try_unlink(&table)?;
                    // Configured again while it waited: linked afresh once it is unlinked.
                    if let Some(settings) = settings
                        && !self.feeds.contains_key(&table)
                        && self.pending.waits(&table).is_none()
                    {
                        self.try_link(&settings)?;
                    }
                }
                (Pending::Link, Some(settings)) => self.try_link(&settings)?,
                (Pending::Link, None) => {
                    self.pending.settle(&table);
                }
            }
        }
        Ok(())
    }

    /// When the next waiting table is due to be tried again, if any waits.
    pub fn next_link_try(&self) -> Option<Instant> {
        self.pending.next_try()
    }

    /// Configured tables that could not be linked, with the line that says why.
    pub fn refused_tables(&self) -> Vec<(String, String)> {
        self.pending.refused()
    }

    /// Tables whose link or unlink waits for the source (a lock an application holds).
    pub fn waiting_tables(&self) -> Vec<(String, Pending)> {
        self.pending.waiting()
    }

    /// Checks and links one table.
    fn link_table(&mut self, table: &TableSettings) -> Result<(), EngineError> {
        let schema = table_schema::resolve(self.source.as_mut(), table)?;
        self.link(table, schema)
    }

    /// Links `table`, sorting out how it ended: linked, refused alone, or waiting.
    fn try_link(&mut self, table: &TableSettings) -> Result<(), EngineError> {
        let name = table.name.as_str();
        match self.link_table(table) {
            Ok(()) => {
                if let Some(attempts) = self.pending.settle(name) {
                    tracing::info!(
                        table = name,
                        attempts,
                        "linked after waiting for the source"
                    );
                }
                Ok(())
            }
            // Linked, and what failed came after the link's commit point (reporting
            // progress, marking the source's history): the agent retries that as a whole.
            Err(e) if self.feeds.contains_key(name) => {
                self.pending.settle(name);
                Err(e)
            }
            Err(e) if e.refuses_link() => {
                self.refuse(name, &e);
                Ok(())
            }
            Err(e) if e.is_source_busy() => {
                self.wait_for_source(name, Pending::Link, &e);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Unlinks `table`; one the source keeps busy stays linked and flowing, and waits.
    fn try_unlink(&mut self, table: &str) -> Result<(), EngineError> {
        match self.unlink(table) {
            Ok(()) => {
                self.pending.settle(table);
                Ok(())
            }
            Err(e) if e.is_source_busy() => {
                self.wait_for_source(table, Pending::Unlink, &e);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Puts `table` off to its next backoff, saying what it waits for and behind what.
    fn wait_for_source(&mut self, table: &str, pending: Pending, error: &EngineError) {
        let next = self
            .pending
            .wait(table, pending, self.config.engine.poll_interval);
        self.metrics.record_retry(error.kind(), &error.to_string());
        let what = match pending {
            Pending::Link => {
                self.metrics.record_waiting(table, &error.to_string());
                "the table waits to be linked; the other tables keep flowing"
            }
            Pending::Unlink => "the table waits to be unlinked and keeps flowing until then",
        };
        tracing::warn!(
            table, attempt = next.attempt, error = %error,
            retry_in_ms = next.wait.as_millis() as u64, "{what}"
        );
    }

    /// Records that a configured table cannot be linked, saying so once per reason, and takes
    /// back whatever a link that got partway left in the source (capture that would keep
    /// logging the application's writes with no one to read them).
    fn refuse(&mut self, table: &str, error: &EngineError) {
        if let Err(e) = self.undo_link(table) {
            tracing::warn!(table, error = %e, "could not take back the refused table's capture; it is removed when the table is linked or unlinked");
        }
        let line = refuse_line(table, &error.to_string());
        self.metrics.record_refused(table, &line);
        if self.pending.refuse(table, &line) {
            tracing::error!(table, "{line}");
        }
    }

    /// Takes a link back as if it had never been made: capture removed, the link forgotten,
    /// its live files and trickle-feed manifest deleted (none was published: a table linked
    /// now is not in model.json yet). Snapshot files of an earlier link stay for the
    /// manifests that name them.
    fn undo_link(&mut self, table: &str) -> Result<(), EngineError> {
        self.verify_lock()?;
        self.pending.settle(table);
        let Some(record) = self.state.links()?.into_iter().find(|r| r.table == table) else {
            // Never got as far as recording a link: nothing of it is anywhere (and what the
            // table's folder holds from an earlier link is the user's).
            self.feeds.remove(table);
            self.metrics.forget_table(table);
            return Ok(());
        };
        let source_table = self.source_table(table);
        // Capture goes first: until it is gone the feed stays, so nothing it logs is lost
        // unread if this fails.
        self.source.remove_capture(record.link, &source_table)?;
        if let Some(feed) = self.feeds.remove(table) {
            self.by_link.remove(&feed.record().link);
        }
        if record.state != SyncState::NotStarted
            && let Ok(name) = TableName::new(table)
        {
            // The copy had begun, and had replaced the live files with its own.
            self.lake.delete(&LakePath::trickle_manifest(&name))?;
            self.delete_live_files(&name)?;
        }
        self.state.remove_link(table)?;
        self.metrics.forget_table(table);
        Ok(())
    }
}
