//! Lock waits on the application's tables. Every DDL lakelink runs on a linked table waits
//! at most [`DDL_LOCK_TIMEOUT`] for its lock: a lock request that waits queues every later
//! request behind it, so an `ALTER TABLE` stuck behind one open transaction (a report, a
//! `pg_dump`) would otherwise stall the application's plain `SELECT`s, and the agent, for
//! as long as that transaction lasts. A wait that times out is reported busy, naming the
//! sessions that hold the table, and the agent retries with backoff.

use super::errors::source_error;
use super::publication::QualifiedTable;
use lakelink_model::source::SourceError;
use postgres::Client;
use postgres::error::SqlState;

/// The longest a DDL statement waits for a lock on an application table.
pub const DDL_LOCK_TIMEOUT: &str = "1s";

/// Runs `sql` in a transaction whose lock waits end after [`DDL_LOCK_TIMEOUT`], and only
/// then: a `statement_timeout` set for the role or the database, shorter than a wait for
/// autovacuum (which yields its lock only after `deadlock_timeout`), would cancel it first.
pub fn execute_ddl(client: &mut Client, sql: &str) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'; SET LOCAL statement_timeout = 0; {sql}"
    ))?;
    tx.commit()
}

/// `err` while doing `what` on `table`, as a source error: when a lock on the table was not
/// granted in time, a busy error that says which lock it waited for and behind which
/// sessions (asked on `client`); else as [`source_error`] maps it.
pub fn table_error(
    client: &mut Client,
    source_name: &str,
    what: &str,
    table: &QualifiedTable,
    oid: u32,
    err: postgres::Error,
) -> SourceError {
    if err.code() != Some(&SqlState::LOCK_NOT_AVAILABLE) {
        return source_error(source_name, what, err);
    }
    let holders = lock_holders(client, oid);
    SourceError::Busy {
        source_name: source_name.to_string(),
        what: format!(
            "{what}: a lock on {} was not granted within {DDL_LOCK_TIMEOUT}; it is held by {holders}",
            table.sql()
        ),
    }
}

/// The sessions (other than this one) holding a lock on relation `oid` or one of its
/// partitions (a partitioned table's DDL runs on each), for a log line:
/// `pid 4711 (psql, idle in transaction for 93 s, AccessShareLock: SELECT ...)`.
fn lock_holders(client: &mut Client, oid: u32) -> String {
    let rows = client.query(
        "SELECT a.pid, string_agg(DISTINCT l.mode, ', '), coalesce(a.application_name, ''), \
                coalesce(a.state, ''), \
                coalesce(extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::int8, 0), \
                left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 80) \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid() \
           AND (l.relation = $1 OR l.relation IN (SELECT relid FROM pg_partition_tree($1))) \
         GROUP BY a.pid, a.application_name, a.state, a.xact_start, a.query_start, a.query \
         ORDER BY a.xact_start NULLS LAST LIMIT 5",
        &[&oid],
    );
    let described: Vec<String> = match rows {
        Ok(rows) => rows
            .iter()
            .map(|r| {
                let pid: i32 = r.get(0);
                let modes: String = r.get(1);
                let application: String = r.get(2);
                let state: String = r.get(3);
                let seconds: i64 = r.get(4);
                let query: String = r.get(5);
                let application = if application.is_empty() {
                    String::new()
                } else {
                    format!("{application}, ")
                };
                format!("pid {pid} ({application}{state} for {seconds} s, {modes}: {query})")
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    if described.is_empty() {
        // The holder ended between the timeout and the look (or is not visible to this user).
        return "a session that has ended or that this user cannot see (see pg_locks)".into();
    }
    described.join("; ")
}
