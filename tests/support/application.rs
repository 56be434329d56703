//! What the tests do to a source and read back from it, whichever it is: the SQLite database
//! of a [`Workspace`] or a PostgreSQL database of a [`super::pg::PgWorkspace`]. The workload,
//! the oracle and the crash harness are written once over these traits; the SQL of each
//! source stays with it (`workload.rs` for SQLite, `pg.rs` for PostgreSQL).

use super::workload::Expected;
use super::{SourceTableRows, Workspace};
use rand::rngs::StdRng;
use rusqlite::Connection;
use std::time::Duration;

/// A connection to the source as an application holds it: it makes the CRM workload's
/// changes in the source's own SQL, and reads back what the oracle compares the lake with.
/// `Send`, so that it can write on a thread of its own while the agent runs.
pub trait Application: Send + 'static {
    /// One random change to one table; adds the live rows it makes to `expected`, and takes
    /// new rows' ids from `next_id` on.
    fn random_change(&mut self, rng: &mut StdRng, next_id: &mut i64, expected: &mut Expected);

    /// How many rows `table` holds.
    fn row_count(&mut self, table: &str) -> usize;

    /// The columns of `table` and its rows keyed by the text of column `key`.
    fn source_rows(&mut self, table: &str, key: &str) -> SourceTableRows;
}

/// A workspace (lake and config) and its source, whichever kind it is.
pub trait Source {
    type Application: Application;

    /// The lake, the config and the `lakelink` commands.
    fn workspace(&self) -> &Workspace;

    /// A new connection to the source, as an application would hold.
    fn application(&self) -> Self::Application;

    /// Writes the config, with this source's `[source]` section, `[engine]` extras and
    /// `[[table]]` sections.
    fn write_config(&self, engine_extra: &str, tables: &str);
}

impl Source for Workspace {
    type Application = Connection;

    fn workspace(&self) -> &Workspace {
        self
    }

    /// Waits up to 30 s for the agent's locks: an application that writes all along while
    /// the agent captures must never fail on a busy database.
    fn application(&self) -> Connection {
        let conn = self.source();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        conn
    }

    fn write_config(&self, engine_extra: &str, tables: &str) {
        Workspace::write_config(self, engine_extra, tables);
    }
}
