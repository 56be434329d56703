//! PostgreSQL with a transaction held open for a long time by another session, end to end.
//! Kept in a test binary of its own: an open transaction makes every replication slot
//! created meanwhile wait for it (the other tests create theirs all the time), so these run
//! alone.

mod support;

use support::pg::*;

/// Runs `sql` as the application, on a connection of its own.
fn application(ws: &PgWorkspace, sql: &str) {
    ws.client()
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("the application's {sql:?}: {e}"));
}

/// A table stopped inside a transaction too large for one batch (which ends the replication
/// session), another truncated in it, while a transaction left open elsewhere holds the slot's
/// restart position far back: the session that follows the stop must decode a lot before it reaches the split
/// transaction, and a read can end before it gets there. What the earlier batches held is
/// still passed over, not written again.
#[test]
fn a_split_transaction_resumes_exactly_when_the_new_session_takes_long_to_reach_it() {
    let ws = PgWorkspace::new(&format!(
        "{SPLIT_TRUNCATE_SCHEMA} CREATE TABLE filler (x text);"
    ));
    ws.write_config(
        "poll_interval = \"20ms\"\nbatch_size = 500",
        SPLIT_TRUNCATE_TABLES,
    );
    ws.sync();
    let mut open = ws.client();
    open.batch_execute("BEGIN; INSERT INTO filler VALUES ('held open')")
        .unwrap();
    // WAL the new session must decode again (the open transaction pins it).
    for _ in 0..30 {
        application(
            &ws,
            "INSERT INTO filler SELECT repeat(md5(g::text), 30) FROM generate_series(1, 40000) g",
        );
    }
    application(&ws, SPLIT_TRUNCATE);
    assert_split_truncate_synced(&ws);
    open.batch_execute("ROLLBACK").unwrap();
}
