//! `TRUNCATE` in a PostgreSQL source, end to end: the real `lakelink` binary against a real
//! PostgreSQL server (a throwaway cluster started by `scripts/postgres-test-cluster.sh`; each
//! test has a database of its own). A truncate reaches the lake as a delete record, at its
//! position, for every row the lake holds of the table at that point of its transaction, in
//! every partition, exactly once: between syncs and while the agent runs, with the
//! transaction's changes before and after it, for several tables at once (an `append_only`
//! one among them), inside a transaction larger than a batch, and whatever kills the agent
//! while it writes them.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::pg::*;
use support::stopped_table::tables;
use support::workload::plain;
use support::{RunningAgent, attribute_index, wait_for};

/// The agent looks for changes often, so that the tests that run it are quick.
const ENGINE: &str = "poll_interval = \"20ms\"";

/// Runs `sql` as the application, on a connection of its own.
fn application(ws: &PgWorkspace, sql: &str) {
    ws.client()
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("the application's {sql:?}: {e}"));
}

/// One row of a live file as the test reads it: Id, versionnumber, whether a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LiveRow {
    id: String,
    position: i64,
    deleted: bool,
}

/// Every live file of `table`, by partition, each row as a [`LiveRow`].
fn live_rows(ws: &PgWorkspace, table: &str) -> BTreeMap<String, Vec<LiveRow>> {
    let model = ws.model();
    let version = attribute_index(&model, table, "versionnumber");
    let is_delete = attribute_index(&model, table, "IsDelete");
    ws.live_files(table)
        .into_iter()
        .map(|(partition, records)| {
            let rows = records
                .iter()
                .map(|r| LiveRow {
                    id: r.get(0).expect("Id").0.to_string(),
                    position: r.get(version).expect("versionnumber").0.parse().unwrap(),
                    deleted: r.get(is_delete).is_some_and(|(t, _)| t == "True"),
                })
                .collect();
            (partition, rows)
        })
        .collect()
}

/// The position of the last delete record of Id `id` in `table`.
fn last_delete_of(ws: &PgWorkspace, table: &str, id: &str) -> i64 {
    live_rows(ws, table)
        .values()
        .flatten()
        .filter(|r| r.deleted && r.id == id)
        .map(|r| r.position)
        .max()
        .unwrap_or_else(|| panic!("{table}: no delete record of Id {id}"))
}

/// How many delete records each (partition, Id) of `table` has at `position`.
fn deletes_at(ws: &PgWorkspace, table: &str, position: i64) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for (partition, rows) in live_rows(ws, table) {
        for r in rows.iter().filter(|r| r.deleted && r.position == position) {
            *out.entry((partition.clone(), r.id.clone())).or_insert(0) += 1;
        }
    }
    out
}

/// Asserts that `table` holds exactly one delete record at `position` for each of
/// `expected` (partition, Id), and none for anything else.
fn assert_one_delete_each(
    ws: &PgWorkspace,
    table: &str,
    position: i64,
    expected: &BTreeSet<(String, String)>,
) {
    let found = deletes_at(ws, table, position);
    let twice: Vec<_> = found.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{table}: delete records written twice: {twice:?}"
    );
    let found: BTreeSet<(String, String)> = found.into_keys().collect();
    let missing: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{table}: at the truncate's position {position}, no delete record for {missing:?}, and one for {extra:?} that the lake did not hold"
    );
}

/// (partition, id) of every row of `table` now, as the lake files them: by the UTC
/// `createdon` in `pattern` (`YYYY` for years, `YYYY-MM` for months), `1` without one.
fn partitioned_rows(ws: &PgWorkspace, table: &str, pattern: &str) -> BTreeSet<(String, String)> {
    ws.client()
        .query(
            &format!(
                "SELECT coalesce(to_char(createdon AT TIME ZONE 'UTC', '{pattern}'), '1'), id::text FROM {table}"
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// A table `p` split by year, whose rows the application updates, moves between partitions
/// and deletes across two syncs and after the last snapshot's cut, then truncates inside a
/// transaction that also writes it before and after: the truncate writes one delete record for
/// each row the lake held at that point, in the partition that held it, and the rows after it
/// flow on.
#[test]
fn a_truncate_writes_one_delete_record_for_each_row_the_lake_holds_in_every_partition() {
    let ws = PgWorkspace::new(
        "CREATE TABLE p (id int PRIMARY KEY, createdon timestamptz, v text);
         CREATE TABLE other (id int PRIMARY KEY, x text);
         INSERT INTO p SELECT g, make_date(2023 + g % 3, 1 + g % 12, 1), 'v' || g
             FROM generate_series(1, 60) g;
         INSERT INTO p VALUES (61, NULL, 'no date');
         INSERT INTO other VALUES (1, 'o1');",
    );
    ws.write_config(
        ENGINE,
        "[[table]]\nname = \"p\"\npartition_by = \"createdon\"\ngranularity = \"year\"\n\n[[table]]\nname = \"other\"\n",
    );
    ws.sync();
    application(
        &ws,
        "UPDATE p SET v = 'changed' WHERE id <= 10;
         UPDATE p SET createdon = '2026-06-01' WHERE id = 11;
         DELETE FROM p WHERE id BETWEEN 12 AND 15;
         INSERT INTO p SELECT g, make_date(2024, 2, 2), 'w' || g FROM generate_series(62, 70) g;",
    );
    ws.sync();
    // Past the last snapshot's cut: in the live files only.
    application(
        &ws,
        "INSERT INTO p SELECT g, make_date(2025, 3, 3), 'x' || g FROM generate_series(71, 75) g;
         UPDATE p SET v = 'changed again' WHERE id = 16;
         UPDATE p SET createdon = '2022-01-01' WHERE id = 17;
         DELETE FROM p WHERE id = 18;",
    );
    let mut held = partitioned_rows(&ws, "p", "YYYY");
    application(
        &ws,
        "BEGIN;
         INSERT INTO p VALUES (100, '2024-04-04', 'inserted before');
         UPDATE p SET v = 'updated before' WHERE id = 19;
         UPDATE p SET createdon = '2021-01-01' WHERE id = 20;
         TRUNCATE p;
         INSERT INTO p VALUES (19, '2025-05-05', 'back after'), (101, NULL, 'after');
         INSERT INTO other VALUES (2, 'o2');
         COMMIT;
         INSERT INTO p VALUES (102, '2023-01-01', 'later');",
    );
    // What the lake held at the truncate: the transaction's rows before it included. Moving
    // row 20 wrote a delete record where it was, at the same position.
    let moved_from = held
        .iter()
        .find(|(_, id)| id == "20")
        .cloned()
        .expect("row 20");
    held.insert(("2024".into(), "100".into()));
    held.remove(&moved_from);
    held.insert(("2021".into(), "20".into()));
    let mut deleted = held.clone();
    deleted.insert(moved_from);
    ws.sync();
    assert_lake_matches_source(&ws, "p", "id", plain);
    assert_lake_matches_source(&ws, "other", "id", plain);
    let truncated_at = last_delete_of(&ws, "p", "100");
    assert_one_delete_each(&ws, "p", truncated_at, &deleted);
    // The rows after the truncate in its transaction come after its delete records.
    for (partition, rows) in live_rows(&ws, "p") {
        let at: Vec<&LiveRow> = rows.iter().filter(|r| r.position == truncated_at).collect();
        if let Some(last_delete) = at.iter().rposition(|r| r.deleted) {
            for r in &at[last_delete..] {
                assert!(
                    r.deleted || r.id == "19" || r.id == "101",
                    "{partition}: {r:?} after the truncate's delete records"
                );
            }
        }
    }
    // Another sync writes nothing of it again.
    let rows = ws.live_row_count("p");
    ws.sync();
    assert_eq!(ws.live_row_count("p"), rows);
}

/// A truncate between the initial copy and the first snapshot: the rows the lake holds are read
/// back from the copy's prefix in `Id` order (there is no snapshot yet), and each gets one
/// delete record.
#[test]
fn a_truncate_before_the_first_snapshot_deletes_each_row_the_copy_wrote_once() {
    let ws = PgWorkspace::new(
        "CREATE TABLE p (id int PRIMARY KEY, createdon timestamptz, v text);
         INSERT INTO p SELECT g, make_date(2023 + g % 3, 1 + g % 12, 1), 'v' || g
             FROM generate_series(1, 300) g;",
    );
    ws.write_config(
        ENGINE,
        "[[table]]\nname = \"p\"\npartition_by = \"createdon\"\ngranularity = \"year\"\n",
    );
    let mut pipeline = ws.pipeline();
    pipeline.reconcile().unwrap();
    // The copy came in Id order (a fresh table's heap order), so each file is its prefix.
    let prefixes = ws.id_ordered_prefixes("p");
    assert_eq!(prefixes.len(), 3, "three live files: {prefixes:?}");
    assert!(
        prefixes.values().all(|(len, ordered)| len == ordered),
        "each in Id order: {prefixes:?}"
    );
    let held = partitioned_rows(&ws, "p", "YYYY");
    application(
        &ws,
        "BEGIN;
         UPDATE p SET v = 'updated before' WHERE id = 5;
         TRUNCATE p;
         INSERT INTO p VALUES (7, '2024-04-04', 'after');
         COMMIT;",
    );
    pipeline.snapshot().unwrap().expect("the first snapshot");
    drop(pipeline);
    assert_lake_matches_source(&ws, "p", "id", plain);
    let truncated_at = last_delete_of(&ws, "p", "1");
    assert_one_delete_each(&ws, "p", truncated_at, &held);
}

/// While the agent runs: `TRUNCATE` then an insert reaches readers as the one new row, and the
/// other table flows on.
#[test]
fn a_table_truncated_while_the_agent_runs_keeps_flowing_with_the_rows_after_it() {
    let ws = PgWorkspace::new(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE TABLE other (id int PRIMARY KEY, x text);
         INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three');
         INSERT INTO other VALUES (1, 'o1');",
    );
    ws.write_config(
        &format!("{ENGINE}\nsnapshot_interval = \"200ms\""),
        &tables(&["t", "other"]),
    );
    let agent = RunningAgent::start(&ws);
    ws.wait_for_publish(60);
    application(&ws, "TRUNCATE t; INSERT INTO t VALUES (10, 'ten');");
    wait_for(
        60,
        "readers to see t as the one row after the truncate",
        || {
            let (_, rows) = ws.read("t", None);
            rows.len() == 1 && rows[0].get(0).is_some_and(|(id, _)| id == "10")
        },
    );
    application(&ws, "INSERT INTO other VALUES (2, 'o2')");
    wait_for(60, "other to flow on", || ws.live_row_count("other") == 2);
    agent.stop_cleanly();
    assert!(!any_table_stopped(&ws), "no table stopped");
    let truncated_at = last_delete_of(&ws, "t", "1");
    let held: BTreeSet<(String, String)> = ["1", "2", "3"]
        .iter()
        .map(|id| ("1".to_string(), id.to_string()))
        .collect();
    assert_one_delete_each(&ws, "t", truncated_at, &held);
    ws.sync();
    assert_lake_matches_source(&ws, "t", "id", plain);
    assert_lake_matches_source(&ws, "other", "id", plain);
}

/// Whether `lakelink status` shows a stopped table.
fn any_table_stopped(ws: &PgWorkspace) -> bool {
    let out = ws.lakelink(&["status", "--config", "{config}"]);
    String::from_utf8_lossy(&out.stdout).contains("Stopped")
}

/// One `TRUNCATE` of three tables: an `in_place` one, an `append_only` one split by month
/// (whose delete records carry each row's partition value, and name each Id once however many
/// changes the log holds of it), and one the lake holds nothing of.
#[test]
fn one_truncate_of_several_tables_deletes_what_each_holds_an_append_only_one_included() {
    let ws = PgWorkspace::new(
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         CREATE TABLE log (id bigint PRIMARY KEY, createdon timestamptz, v text);
         CREATE TABLE empty (id int PRIMARY KEY);
         INSERT INTO a VALUES (1, 'one'), (2, 'two');
         INSERT INTO log SELECT g, make_date(2024, 1 + g % 3, 1), 'l' FROM generate_series(1, 9) g;",
    );
    ws.write_config(
        ENGINE,
        "[[table]]\nname = \"a\"\n\n[[table]]\nname = \"log\"\npartition_by = \"createdon\"\ngranularity = \"month\"\nmode = \"append_only\"\n\n[[table]]\nname = \"empty\"\n",
    );
    ws.sync();
    application(
        &ws,
        "UPDATE log SET v = 'changed' WHERE id <= 3;
         UPDATE log SET createdon = '2024-12-12' WHERE id = 4;
         DELETE FROM log WHERE id = 5;",
    );
    ws.sync();
    let held_log = partitioned_rows(&ws, "log", "YYYY-MM");
    let log_rows = ws.live_row_count("log");
    application(
        &ws,
        "TRUNCATE a, log, empty; INSERT INTO log VALUES (20, '2024-02-02', 'after');",
    );
    ws.sync();
    let truncated_at = last_delete_of(&ws, "a", "1");
    let held_a: BTreeSet<(String, String)> = [("1".into(), "1".into()), ("1".into(), "2".into())]
        .into_iter()
        .collect();
    assert_one_delete_each(&ws, "a", truncated_at, &held_a);
    assert_one_delete_each(&ws, "log", truncated_at, &held_log);
    assert_eq!(
        ws.live_row_count("log"),
        log_rows + held_log.len() + 1,
        "the append-only log gains the delete records and the row after"
    );
    assert_eq!(ws.live_row_count("empty"), 0, "nothing to delete");
    assert_lake_matches_source(&ws, "a", "id", plain);
    let (_, log) = ws.read("log", None);
    assert_eq!(
        log.len(),
        ws.live_row_count("log"),
        "the append-only snapshot is the whole log"
    );
}

/// A `TRUNCATE` and a table stopped (a NULL in its configured key), both inside one
/// transaction too large for one batch that also writes another table: the truncated table
/// gets its delete records, the stop ends the replication session, and the new session goes on
/// past what the earlier batches held, so every row reaches the lake once.
#[test]
fn a_truncate_and_a_stop_inside_a_transaction_larger_than_a_batch_leave_every_row_once() {
    let ws = PgWorkspace::new(SPLIT_TRUNCATE_SCHEMA);
    ws.write_config(
        &format!("{ENGINE}\nbatch_size = 500"),
        SPLIT_TRUNCATE_TABLES,
    );
    ws.sync();
    application(&ws, SPLIT_TRUNCATE);
    assert_split_truncate_synced(&ws);
    // Another run reads nothing of it again.
    assert_split_truncate_synced(&ws);
}

/// The agent killed again and again while it writes the delete records of a large table's
/// truncate (they are appended in several parts): each restart reads the table's rows back to
/// the same point and skips the records already written, so every Id gets exactly one.
#[test]
fn an_agent_killed_while_it_writes_a_truncates_delete_records_writes_each_once() {
    // Enough delete records for more than one append (8 MiB each).
    const ROWS: i64 = 150_000;
    let ws = PgWorkspace::new(&format!(
        "CREATE TABLE big (id int PRIMARY KEY, v text);
         INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, {ROWS}) g;"
    ));
    ws.write_config(ENGINE, &tables(&["big"]));
    ws.sync();
    // Rows changed and added before the truncate, at its position: a delivery after a kill
    // must count them again to know where in the file its own records begin.
    const ADDED: i64 = 500;
    const UPDATED: i64 = 200;
    application(
        &ws,
        &format!(
            "BEGIN;
             UPDATE big SET v = 'updated' WHERE id <= {UPDATED};
             INSERT INTO big SELECT g, 'before' FROM generate_series({ROWS} + 1, {ROWS} + {ADDED}) g;
             TRUNCATE big;
             INSERT INTO big SELECT g, 'after' FROM generate_series(1, 1000) g;
             COMMIT;"
        ),
    );
    let copied = ws.live_row_count("big");
    let live = ws.lake.join("big").join("1.csv");
    let size = || std::fs::metadata(&live).unwrap().len();
    let copied_size = size();
    // Each kill comes a little later than the last, once the records have started.
    let mut delay = Duration::from_millis(30);
    let mut killed_at = Vec::new();
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the sync never finished between the kills"
        );
        let attempt = Instant::now();
        let mut sync = std::process::Command::new(support::lakelink_bin())
            .args(["sync", "--config", ws.config.to_str().unwrap()])
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        while attempt.elapsed() < delay && sync.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(status) = sync.try_wait().unwrap() {
            assert!(status.success(), "the sync failed: {status}");
            println!(
                "the sync finished in {:.2} s, after {} kills once the delete records had started",
                attempt.elapsed().as_secs_f64(),
                killed_at.len()
            );
            break;
        }
        sync.kill().unwrap();
        sync.wait().unwrap();
        if size() > copied_size {
            killed_at.push(size());
            delay += Duration::from_millis(80);
        } else {
            delay = delay * 5 / 4 + Duration::from_millis(20);
        }
    }
    // The records and the rows after them, whole.
    let whole = size();
    assert!(
        killed_at.iter().any(|&s| s < whole),
        "no kill landed while the delete records were written: {killed_at:?} of {whole} bytes"
    );
    let truncated_at = last_delete_of(&ws, "big", "1");
    let held: BTreeSet<(String, String)> = (1..=ROWS + ADDED)
        .map(|id| ("1".to_string(), id.to_string()))
        .collect();
    assert_one_delete_each(&ws, "big", truncated_at, &held);
    assert_eq!(
        ws.live_row_count("big"),
        copied + (UPDATED + ADDED) as usize + (ROWS + ADDED) as usize + 1000
    );
    assert_lake_matches_source(&ws, "big", "id", plain);
}

/// A truncate whose table's files cannot be listed back (its last snapshot file removed by
/// hand) stops that table alone, with one line that names the truncate and what to do; the
/// other tables of the same batch flow on.
#[test]
fn a_truncate_whose_snapshot_is_gone_stops_its_table_alone() {
    let ws = PgWorkspace::new(
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO a VALUES (1, 'one'), (2, 'two');
         INSERT INTO b VALUES (1, 'one');",
    );
    ws.write_config(ENGINE, &tables(&["a", "b"]));
    ws.sync();
    let snapshot = ws.lake.join("a/Snapshot/a-T1.csv");
    std::fs::remove_file(&snapshot).unwrap_or_else(|e| panic!("{}: {e}", snapshot.display()));
    application(
        &ws,
        "BEGIN; INSERT INTO b VALUES (2, 'two'); TRUNCATE a; INSERT INTO b VALUES (3, 'three'); COMMIT;",
    );
    let out = ws.lakelink(&["sync", "--config", "{config}"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stops: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("lakelink: table \"a\" stopped"))
        .collect();
    assert_eq!(stops.len(), 1, "one line tells that a stopped: {stderr}");
    assert!(
        stops[0].contains("TRUNCATE") && stops[0].contains("relink it"),
        "the line names the truncate and what to do: {}",
        stops[0]
    );
    assert!(!stderr.contains("table \"b\" stopped"), "{stderr}");
    assert!(any_table_stopped(&ws));
    assert_lake_matches_source(&ws, "b", "id", plain);
}
