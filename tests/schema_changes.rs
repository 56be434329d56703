//! Schema changes and odd keys in a SQLite source, end to end: the real `lakelink` binary
//! against a real SQLite file that the application changes under it. Each test says what the
//! application does to its database, and holds lakelink to one rule: either the change
//! reaches the lake exactly once, or lakelink stops that table (`table "<name>" stopped:`
//! with the cause and `relink`, the other tables flowing on), or it refuses the link with one
//! line naming the table; and nothing already delivered is touched.
//!
//! Covered: two lakes fed from one database; a table dropped and created again, or rebuilt
//! by SQLite's twelve-step ALTER procedure; keys that would collide in the lake (untyped,
//! NULL, BLOB) at link time and after; columns added with defaults; a change log that goes
//! back (a backup restored in place, the log emptied by hand); generated columns; following
//! lakelink's own advice after an old checkpoint store came back; lakelink's own names in
//! the application; names that differ from system attributes only in case; and rows that
//! `INSERT OR REPLACE` deletes without a delete trigger.

mod support;

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use support::stopped_table::*;
use support::*;

/// The agent looks for changes often, so that the tests that run it are quick.
const ENGINE: &str = "poll_interval = \"20ms\"";

/// A table `t` with three rows and another table, `other`, that must keep flowing.
const T_AND_OTHER: &str = "
    CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
    CREATE TABLE other (id INTEGER PRIMARY KEY, x TEXT);
    INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three');
    INSERT INTO other VALUES (1, 'o1');";

/// The application's n-th change to `other`: one new row.
fn write_other(conn: &Connection) -> impl FnMut(i64) + '_ {
    move |n| {
        conn.execute("INSERT INTO other VALUES (?1, 'more')", [100 + n])
            .unwrap();
    }
}

/// A workspace over [`T_AND_OTHER`] whose config (with `engine` settings) links both tables.
fn t_and_other(engine: &str) -> Workspace {
    let ws = Workspace::new(T_AND_OTHER);
    ws.write_config(engine, &tables(&["t", "other"]));
    ws
}

/// The application runs `sql` between two syncs of a [`t_and_other`] workspace; `t` then
/// stops with one of `causes` while `other` flows on ([`assert_stops_at_sync`]).
fn t_stops_at_sync_after(ws: &Workspace, sql: &str, causes: &[&str]) {
    let conn = ws.application();
    assert_stops_at_sync(
        ws,
        "t",
        causes,
        "other",
        || conn.execute_batch(sql).unwrap(),
        write_other(&conn),
    );
}

/// The same while `lakelink run` runs ([`assert_stops_while_running`]).
fn t_stops_while_running_after(ws: &Workspace, sql: &str, causes: &[&str]) {
    let conn = ws.application();
    assert_stops_while_running(
        ws,
        "t",
        causes,
        "other",
        |_| conn.execute_batch(sql).unwrap(),
        write_other(&conn),
    );
}

/// Copies the database `db` to `to` with SQLite's online backup, as the `sqlite3` shell's
/// `.backup` does.
fn backup(db: &Path, to: &Path) {
    Connection::open(db)
        .unwrap()
        .backup(
            rusqlite::MAIN_DB,
            to,
            None::<fn(rusqlite::backup::Progress)>,
        )
        .unwrap_or_else(|e| panic!("back {} up to {}: {e}", db.display(), to.display()));
}

/// Restores the database `db` in place (same file, same inode) from the copy `from`, as the
/// `sqlite3` shell's `.restore` does.
fn restore(db: &Path, from: &Path) {
    Connection::open(db)
        .unwrap()
        .restore(
            rusqlite::MAIN_DB,
            from,
            None::<fn(rusqlite::backup::Progress)>,
        )
        .unwrap_or_else(|e| panic!("restore {} from {}: {e}", db.display(), from.display()));
}

/// The application's tables `which` as it sees them: the definition of each and of its
/// indexes and triggers, and its rows (sorted). A refused link must leave them as they were.
fn application_tables(conn: &Connection, which: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for name in which {
        let mut stmt = conn
            .prepare(
                "SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_schema \
                 WHERE tbl_name = ?1 ORDER BY type, name",
            )
            .unwrap();
        let schema = stmt.query_map([name], |r| r.get::<_, String>(0)).unwrap();
        out.extend(schema.map(Result::unwrap));
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{name}\"")).unwrap();
        let width = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let values: Vec<SqlValue> = (0..width).map(|i| r.get(i).unwrap()).collect();
                Ok(format!("{name} row {values:?}"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        out.extend(rows);
    }
    out
}

/// Asserts that linking `table` (the config's only table) is refused: `lakelink sync` fails
/// with one line naming `"<table>"` and holding every one of `words`, and the application's
/// tables `app_tables` are as they were. Returns the line.
fn assert_link_refused(ws: &Workspace, table: &str, words: &[&str], app_tables: &[&str]) -> String {
    ws.write_config("", &tables(&[table]));
    let before = application_tables(&ws.source(), app_tables);
    let line = assert_sync_refuses(ws, table, words);
    assert_eq!(
        application_tables(&ws.source(), app_tables),
        before,
        "a refused link of {table:?} must leave the application's tables (schema and rows) as they were"
    );
    line
}

// Two lakes fed from one database.

/// A second lake fed from `ws`'s database: a config, a checkpoint store and a lake folder
/// of its own (in a folder of its own), linking `linked`.
fn second_lake(ws: &Workspace, linked: &[&str]) -> Workspace {
    let dir = tempfile::tempdir().expect("temp dir");
    let lake2 = Workspace {
        lake: dir.path().join("lake"),
        config: dir.path().join("lakelink.toml"),
        db: ws.db.clone(),
        dir,
        lake_section: None,
    };
    let source = format!(
        "[source]\nkind = \"sqlite\"\npath = {:?}\n",
        ws.db.display().to_string()
    );
    lake2.write_config_for_source(&source, "", &tables(linked));
    lake2
}

/// One round of the application's writes to `table` (`id INTEGER PRIMARY KEY, v TEXT`):
/// three inserts, two updates and a delete. Returns how many rows changed: each is one live
/// row in every lake that links the table.
fn write_round(conn: &Connection, table: &str, round: i64) -> usize {
    let mut changed = 0;
    for i in 0..3 {
        changed += conn
            .execute(
                &format!("INSERT INTO {table} VALUES (?1, ?2)"),
                rusqlite::params![round * 10 + i + 100, format!("{table} round {round}")],
            )
            .unwrap();
    }
    changed += conn
        .execute(
            &format!(
                "UPDATE {table} SET v = 'updated in round ' || ?1 WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT 2)"
            ),
            [round],
        )
        .unwrap();
    changed += conn
        .execute(
            &format!("DELETE FROM {table} WHERE id = (SELECT max(id) FROM {table})"),
            [],
        )
        .unwrap();
    changed
}

/// Asserts what one lake holds: for each table it links, a snapshot equal to the source and
/// live files with the copied rows plus each change once (`expected`); nothing of the tables
/// it does not link.
fn assert_lake_holds(lake: &Workspace, which: &str, expected: &BTreeMap<&str, usize>) {
    for table in ["a", "b"] {
        match expected.get(table) {
            Some(&rows) => {
                assert_eq!(
                    lake.live_row_count(table),
                    rows,
                    "{which}: the live files of {table:?} should hold the copied rows plus each change once"
                );
                assert_lake_matches_source(lake, table, "id", None);
            }
            None => {
                assert!(
                    lake.model().entity(table).is_none(),
                    "{which}: model.json has table {table:?}, which only the other lake links"
                );
                assert_eq!(
                    lake.live_row_count(table),
                    0,
                    "{which}: holds rows of table {table:?}, which only the other lake links"
                );
            }
        }
    }
}

/// Two lakes over one database, linking `linked1` and `linked2`; the application writes to
/// both tables between alternating syncs of the two lakes.
fn two_lakes_alternate(linked1: &[&str], linked2: &[&str]) {
    let lake1 = Workspace::new(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT);
         CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO a VALUES (1, 'a1'), (2, 'a2'), (3, 'a3');
         INSERT INTO b VALUES (1, 'b1'), (2, 'b2'), (3, 'b3'), (4, 'b4');",
    );
    lake1.write_config("", &tables(linked1));
    let lake2 = second_lake(&lake1, linked2);
    let lakes = [("lake 1", &lake1, linked1), ("lake 2", &lake2, linked2)];
    let conn = lake1.application();
    let count = |table: &str| -> usize {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as usize
    };
    // Per lake, the live rows of each table it links: the rows copied, then one per change.
    let mut expected: Vec<BTreeMap<&str, usize>> = Vec::new();
    for (which, lake, linked) in &lakes {
        lake.sync();
        expected.push(linked.iter().map(|t| (*t, count(t))).collect());
        assert_lake_holds(lake, which, expected.last().unwrap());
    }
    for round in 1..=6 {
        for table in ["a", "b"] {
            let changed = write_round(&conn, table, round);
            for e in &mut expected {
                if let Some(rows) = e.get_mut(table) {
                    *rows += changed;
                }
            }
        }
        let at = (round % 2) as usize;
        let (which, lake, _) = lakes[at];
        lake.sync();
        assert_lake_holds(lake, &format!("{which} after round {round}"), &expected[at]);
    }
    for (at, (which, lake, _)) in lakes.iter().enumerate() {
        lake.sync();
        assert_lake_holds(lake, &format!("{which} at the end"), &expected[at]);
    }
}

#[test]
fn two_lakes_on_one_database_linking_different_tables_each_get_their_changes_exactly_once() {
    two_lakes_alternate(&["a"], &["b"]);
}

#[test]
fn two_lakes_on_one_database_linking_the_same_table_each_get_its_changes_exactly_once() {
    two_lakes_alternate(&["a"], &["a", "b"]);
}

// A linked table dropped and created again while the agent runs.

#[test]
fn a_table_dropped_and_created_again_while_the_agent_runs_stops_until_it_is_relinked() {
    let ws = t_and_other(ENGINE);
    t_stops_while_running_after(
        &ws,
        "DROP TABLE t;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO t VALUES (1, 'one again'), (7, 'seven');
         UPDATE t SET v = 'seven, changed' WHERE id = 7;",
        &["dropped"],
    );
    relink(&ws, ENGINE, &tables(&["other"]), &tables(&["t", "other"]));
    assert_lake_matches_source(&ws, "t", "id", None);
    assert_lake_matches_source(&ws, "other", "id", None);
}

#[test]
fn a_table_rebuilt_by_the_twelve_step_alter_procedure_while_the_agent_runs_stops_until_it_is_relinked()
 {
    let ws = t_and_other(ENGINE);
    // https://www.sqlite.org/lang_altertable.html#otheralter: a new table of the new shape,
    // the rows copied over, the old table dropped, the new one renamed.
    t_stops_while_running_after(
        &ws,
        "PRAGMA foreign_keys = OFF;
         BEGIN;
         CREATE TABLE new_t (id INTEGER PRIMARY KEY, v TEXT NOT NULL DEFAULT '');
         INSERT INTO new_t (id, v) SELECT id, coalesce(v, '') FROM t;
         DROP TABLE t;
         ALTER TABLE new_t RENAME TO t;
         COMMIT;
         PRAGMA foreign_keys = ON;
         INSERT INTO t VALUES (8, 'eight');
         UPDATE t SET v = 'two, rebuilt' WHERE id = 2;
         DELETE FROM t WHERE id = 3;",
        &["dropped"],
    );
    relink(&ws, ENGINE, &tables(&["other"]), &tables(&["t", "other"]));
    assert_lake_matches_source(&ws, "t", "id", None);
}

#[test]
fn a_table_rebuilt_while_the_agent_was_stopped_stops_at_the_next_sync_and_the_others_flow() {
    // The triggers went with the old table while no agent ran: the next start must not
    // install capture on the new table and carry on as if nothing happened.
    let ws = t_and_other("");
    t_stops_at_sync_after(
        &ws,
        "BEGIN;
         CREATE TABLE new_t (id INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO new_t SELECT id, v FROM t;
         DROP TABLE t;
         ALTER TABLE new_t RENAME TO t;
         COMMIT;
         INSERT INTO t VALUES (8, 'eight');",
        &["dropped"],
    );
    relink(&ws, "", &tables(&["other"]), &tables(&["t", "other"]));
    assert_lake_matches_source(&ws, "t", "id", None);
}

#[test]
fn a_table_dropped_while_the_agent_was_stopped_is_named_as_gone_and_stops_alone() {
    let ws = t_and_other("");
    t_stops_at_sync_after(&ws, "DROP TABLE t;", &["is gone from the source"]);
    let out = ws.lakelink(&["sync", "--config", "{config}"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("if it is gone for good, unlink it") && !err.contains("SQL logic error"),
        "{err}"
    );
    // Unlinked, the table leaves the agent's concerns, and the sync passes again.
    let out = ws.lakelink(&["unlink", "--config", "{config}", "t"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ws.sync();
    assert_lake_matches_source(&ws, "other", "id", None);
}

#[test]
fn a_table_renamed_while_the_agent_was_stopped_stops_at_the_next_sync() {
    let ws = t_and_other("");
    t_stops_at_sync_after(
        &ws,
        "ALTER TABLE t RENAME TO t2; INSERT INTO t2 VALUES (8, 'eight');",
        &["renamed"],
    );
}

#[test]
fn a_column_renamed_stops_the_table_and_the_applications_writes_keep_working() {
    // SQLite rewrites the capture triggers with the new name, but capture installed again
    // under the linked name would make every write of the application fail: the table stops,
    // its capture removed, and the application's writes go on.
    let ws = t_and_other("");
    t_stops_at_sync_after(
        &ws,
        "ALTER TABLE t RENAME COLUMN v TO w; UPDATE t SET w = 'uno' WHERE id = 1;",
        &["renamed"],
    );
    ws.application()
        .execute_batch(
            "INSERT INTO t (id, w) VALUES (20, 'twenty'); UPDATE t SET w = 'dos' WHERE id = 2;
             DELETE FROM t WHERE id = 3;",
        )
        .expect("the application's writes work after the table stopped");
    relink(&ws, "", &tables(&["other"]), &tables(&["t", "other"]));
    assert_lake_matches_source(&ws, "t", "id", None);
}

// Keys that would collide in the lake.

#[test]
fn an_untyped_key_holding_1_and_text_1_is_refused_as_having_no_declared_type() {
    // Without a declared type, 1 and '1' are two keys to SQLite, and one Id in the lake.
    let ws = Workspace::new(
        "CREATE TABLE item (code PRIMARY KEY, v);
         INSERT INTO item VALUES (1, 'the integer'), ('1', 'the text');",
    );
    let line = assert_link_refused(&ws, "item", &["no declared type"], &["item"]);
    assert!(
        names(&line, "code"),
        "the line names the key column: {line}"
    );
}

#[test]
fn a_text_key_with_two_null_rows_is_refused_naming_null() {
    // SQLite lets a non-integer primary key hold NULL, and NULLs never conflict.
    let ws = Workspace::new(
        "CREATE TABLE item (code TEXT PRIMARY KEY, v);
         INSERT INTO item VALUES (NULL, 'first'), (NULL, 'second'), ('c', 'fine');",
    );
    let line = assert_link_refused(&ws, "item", &["NULL"], &["item"]);
    assert!(
        names(&line, "code"),
        "the line names the key column: {line}"
    );
}

#[test]
fn a_text_key_holding_a_blob_and_its_base64_text_is_refused_naming_blob() {
    // TEXT affinity keeps a BLOB a BLOB; the lake writes it as base64, which is 'AQI='.
    let ws = Workspace::new(
        "CREATE TABLE item (code TEXT PRIMARY KEY, v);
         INSERT INTO item VALUES (X'0102', 'the blob'), ('AQI=', 'the text');",
    );
    let line = assert_link_refused(&ws, "item", &["BLOB"], &["item"]);
    assert!(
        names(&line, "code"),
        "the line names the key column: {line}"
    );
}

#[test]
fn a_composite_key_with_the_same_null_part_twice_is_refused_naming_null() {
    let ws = Workspace::new(
        "CREATE TABLE item (region TEXT, seq INTEGER, v, PRIMARY KEY (region, seq));
         INSERT INTO item VALUES (NULL, 1, 'first'), (NULL, 1, 'second'), ('north', 1, 'fine');",
    );
    let line = assert_link_refused(&ws, "item", &["NULL"], &["item"]);
    assert!(
        names(&line, "region"),
        "the line names the key column: {line}"
    );
}

/// A clean `item` keyed by TEXT, and `other`.
const ITEM_AND_OTHER: &str = "
    CREATE TABLE item (id TEXT PRIMARY KEY, v TEXT);
    CREATE TABLE other (id INTEGER PRIMARY KEY, x TEXT);
    INSERT INTO item VALUES ('a', 'one'), ('b', 'two');
    INSERT INTO other VALUES (1, 'o1');";

#[test]
fn a_null_key_inserted_after_linking_stops_the_table() {
    let ws = Workspace::new(ITEM_AND_OTHER);
    ws.write_config("", &tables(&["item", "other"]));
    let conn = ws.application();
    assert_stops_at_sync(
        &ws,
        "item",
        &["NULL"],
        "other",
        || {
            conn.execute("INSERT INTO item VALUES (NULL, 'no key')", [])
                .unwrap();
        },
        write_other(&conn),
    );
}

/// Two more syncs after `item` stopped for a NULL key: each names it stopped (never a log
/// that went back), and `other`'s new rows reach the lake.
fn other_flows_while_item_stays_stopped(ws: &Workspace, conn: &Connection) {
    for n in 0..2 {
        conn.execute("INSERT INTO other VALUES (?1, 'later')", [10 + n])
            .unwrap();
        let stderr = ws.sync_with_stopped_table("item", &["NULL"]);
        assert!(!stderr.contains("went back"), "{stderr}");
    }
    assert_lake_matches_source(ws, "other", "id", None);
}

#[test]
fn a_table_stopped_at_the_last_change_read_is_not_mistaken_for_a_log_that_went_back() {
    // The change that stops `item` is the last one read, so its log entry marks the position
    // every table resumes from. Removing the stopped table's capture, on every later start,
    // must keep that entry.
    let ws = Workspace::new(ITEM_AND_OTHER);
    ws.write_config("", &tables(&["item", "other"]));
    ws.sync();
    let conn = ws.application();
    conn.execute("INSERT INTO item VALUES (NULL, 'no key')", [])
        .unwrap();
    ws.sync_with_stopped_table("item", &["NULL"]);
    other_flows_while_item_stays_stopped(&ws, &conn);
}

#[test]
fn a_table_stopped_while_it_alone_held_the_others_back_is_not_mistaken_for_a_log_that_went_back() {
    // `other` is linked while `item` still has changes to trickle, so it starts ahead; the
    // batch that stops `item` moves no table, and where every table resumes from jumps to
    // `other`'s position.
    let ws = Workspace::new(ITEM_AND_OTHER);
    ws.write_config("", &tables(&["item"]));
    ws.sync();
    let conn = ws.application();
    conn.execute("UPDATE item SET v = 'uno' WHERE id = 'a'", [])
        .unwrap();
    ws.sync();
    conn.execute_batch(
        "INSERT INTO item VALUES ('c', 'three'); INSERT INTO item VALUES (NULL, 'no key');",
    )
    .unwrap();
    ws.write_config("", &tables(&["item", "other"]));
    let first = ws.sync_with_stopped_table("item", &["NULL"]);
    assert!(!first.contains("went back"), "{first}");
    other_flows_while_item_stays_stopped(&ws, &conn);
}

#[test]
fn a_blob_key_inserted_while_the_agent_runs_stops_the_table() {
    let ws = Workspace::new(ITEM_AND_OTHER);
    ws.write_config(ENGINE, &tables(&["item", "other"]));
    let conn = ws.application();
    assert_stops_while_running(
        &ws,
        "item",
        &["BLOB"],
        "other",
        |_| {
            conn.execute("INSERT INTO item VALUES (X'0102', 'a blob key')", [])
                .unwrap();
        },
        write_other(&conn),
    );
}

// Columns added with a default.

/// What the application does to `t` (from [`T_AND_OTHER`]): three columns added with
/// defaults, one new row with its own values, one old row updated.
const ADD_COLUMNS_WITH_DEFAULTS: &str = "
    ALTER TABLE t ADD COLUMN c TEXT DEFAULT 'x';
    ALTER TABLE t ADD COLUMN d TEXT NOT NULL DEFAULT 'y';
    ALTER TABLE t ADD COLUMN n INTEGER DEFAULT 7;
    INSERT INTO t VALUES (4, 'four', 'explicit c', 'explicit d', 44);
    UPDATE t SET v = 'two, updated' WHERE id = 2;";

#[test]
fn columns_added_with_defaults_between_syncs_show_the_defaults_in_the_old_rows() {
    let ws = t_and_other("");
    ws.sync();
    ws.source()
        .execute_batch(ADD_COLUMNS_WITH_DEFAULTS)
        .unwrap();
    ws.sync();
    // Every row, the untouched ones (1 and 3) included, has the values the source shows.
    assert_lake_matches_source(&ws, "t", "id", None);
}

#[test]
fn columns_added_with_defaults_while_the_agent_runs_show_the_defaults_in_the_old_rows() {
    let ws = t_and_other(ENGINE);
    let agent = RunningAgent::start(&ws);
    ws.wait_for_publish(60);
    let rows = ws.live_row_count("t");
    ws.source()
        .execute_batch(ADD_COLUMNS_WITH_DEFAULTS)
        .unwrap();
    wait_for(
        NOTICE_SECONDS,
        "the insert and the update in t's live files",
        || ws.live_row_count("t") >= rows + 2,
    );
    agent.snapshot_now(&ws);
    assert_lake_matches_source(&ws, "t", "id", None);
    agent.stop_cleanly();
}

// A change log that goes back.

/// model.json and every live file of the lake, by path.
fn model_and_live_files(ws: &Workspace) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    out.insert(
        PathBuf::from("model.json"),
        std::fs::read(ws.lake.join("model.json")).unwrap(),
    );
    for entry in std::fs::read_dir(&ws.lake).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "csv") {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(&ws.lake).unwrap().to_path_buf(), bytes);
            }
        }
    }
    out
}

/// Asserts that the next sync fails with a line saying the change log went back, naming the
/// database, and leaves model.json and every live file as they were.
fn assert_sync_refuses_a_log_that_went_back(ws: &Workspace) {
    let before = model_and_live_files(ws);
    let db = ws.db.display().to_string();
    assert_sync_fails_with(ws, &["went back", &db]);
    let after = model_and_live_files(ws);
    for (path, bytes) in &before {
        assert!(
            after.get(path) == Some(bytes),
            "{} changed in the sync that found the change log went back",
            path.display()
        );
    }
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the sync that found the change log went back made new live files"
    );
}

#[test]
fn a_database_restored_in_place_from_an_older_backup_is_refused_and_the_lake_is_left_alone() {
    let ws = t_and_other("");
    ws.sync();
    let backup_copy = ws.dir.path().join("old.db");
    backup(&ws.db, &backup_copy);
    {
        let conn = ws.source();
        for id in 10..20 {
            conn.execute("INSERT INTO t VALUES (?1, 'after the backup')", [id])
                .unwrap();
        }
    }
    ws.sync();
    // The operator restores the backup into the database file itself: same file, same inode,
    // so nothing but the data says it is another database.
    use std::os::unix::fs::MetadataExt as _;
    let inode = std::fs::metadata(&ws.db).unwrap().ino();
    restore(&ws.db, &backup_copy);
    assert_eq!(
        std::fs::metadata(&ws.db).unwrap().ino(),
        inode,
        "restored in place"
    );
    let conn = ws.source();
    conn.execute_batch(
        "INSERT INTO t VALUES (30, 'after the restore');
         UPDATE t SET v = 'changed after the restore' WHERE id = 1;
         INSERT INTO other VALUES (30, 'after the restore');",
    )
    .unwrap();
    assert_sync_refuses_a_log_that_went_back(&ws);
}

#[test]
fn widening_capture_is_not_mistaken_for_a_log_that_went_back() {
    // The last change read is the latest change of its row: widening capture for an added
    // column fills that log entry's new column in, and adds log columns. Neither is the log
    // going back.
    let ws = t_and_other("");
    ws.sync();
    let conn = ws.source();
    conn.execute("UPDATE t SET v = 'uno' WHERE id = 1", [])
        .unwrap();
    ws.sync();
    conn.execute_batch("ALTER TABLE t ADD COLUMN c TEXT; ALTER TABLE t ADD COLUMN e TEXT;")
        .unwrap();
    conn.execute("UPDATE t SET c = 'see' WHERE id = 2", [])
        .unwrap();
    ws.sync();
    conn.execute(
        "INSERT INTO t (id, v, c, e) VALUES (9, 'nine', 'c9', 'e9')",
        [],
    )
    .unwrap();
    ws.sync();
    assert_lake_matches_source(&ws, "t", "id", None);
}

#[test]
fn a_change_log_emptied_by_hand_is_refused_and_the_lake_is_left_alone() {
    let ws = t_and_other("");
    ws.sync();
    let conn = ws.source();
    conn.execute_batch("INSERT INTO t VALUES (10, 'ten'); UPDATE t SET v = 'uno' WHERE id = 1;")
        .unwrap();
    ws.sync();
    let logs: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE '\\_lakelink%' ESCAPE '\\'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!logs.is_empty(), "lakelink's change log is in the database");
    for log in &logs {
        conn.execute(&format!("DELETE FROM \"{log}\""), []).unwrap();
    }
    conn.execute_batch(
        "INSERT INTO t VALUES (11, 'eleven'); UPDATE t SET v = 'due' WHERE id = 2;
         DELETE FROM t WHERE id = 3;",
    )
    .unwrap();
    assert_sync_refuses_a_log_that_went_back(&ws);
}

// Generated columns.

#[test]
fn generated_columns_reach_the_lake_and_a_stored_one_partitions_the_table() {
    let ws = Workspace::new(
        "CREATE TABLE event (
            id INTEGER PRIMARY KEY,
            happened TEXT,
            name TEXT,
            createdon TEXT GENERATED ALWAYS AS (substr(happened, 1, 19)) STORED,
            label TEXT GENERATED ALWAYS AS (upper(name)) VIRTUAL);
         INSERT INTO event (id, happened, name) VALUES
            (1, '2023-04-01 10:00:00 local', 'launch'), (2, '2024-07-15 08:30:00 local', 'review');",
    );
    ws.write_config("", &tables(&["event"]));
    ws.sync();
    ws.source()
        .execute_batch(
            "INSERT INTO event (id, happened, name) VALUES (3, '2024-12-31 23:59:59 local', 'close');
             UPDATE event SET name = 'launch, renamed' WHERE id = 1;",
        )
        .unwrap();
    ws.sync();
    let model = ws.model();
    let entity = model.entity("event").expect("entity event");
    let attributes: Vec<&str> = entity.attributes.iter().map(|a| a.name.as_str()).collect();
    for generated in ["createdon", "label"] {
        assert!(
            attributes.contains(&generated),
            "the generated column {generated} should be an attribute of the entity: {attributes:?}"
        );
    }
    assert_lake_matches_source(&ws, "event", "id", None);
    let partitions: Vec<String> = ws.live_files("event").into_keys().collect();
    assert_eq!(
        partitions,
        ["2023", "2024"],
        "the table is partitioned by the year of its generated createdon"
    );
}

// Following lakelink's own advice never rewrites published files.

/// Every file under `dir` whose name ends with `suffix`, by path, with its bytes.
fn files_ending(dir: &Path, suffix: &str, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_ending(&path, suffix, out);
        } else if path.to_string_lossy().ends_with(suffix) {
            out.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
}

#[test]
fn following_the_advice_after_an_old_checkpoint_store_came_back_never_rewrites_published_files() {
    let ws = t_and_other("");
    ws.sync();
    assert_eq!(ws.model().generation, 1);
    let state = ws.dir.path().join("state.db");
    let saved = ws.dir.path().join("state-saved.db");
    backup(&state, &saved);
    ws.source()
        .execute_batch(
            "INSERT INTO t VALUES (4, 'four'); UPDATE t SET v = 'uno' WHERE id = 1;
             DELETE FROM t WHERE id = 3; INSERT INTO other VALUES (2, 'o2');",
        )
        .unwrap();
    ws.sync();
    assert_eq!(ws.model().generation, 2);
    let mut published = BTreeMap::new();
    files_ending(&ws.lake, "-T2.csv", &mut published);
    files_ending(&ws.lake, "model-T2.json", &mut published);
    assert!(
        published.len() >= 3,
        "generation 2 wrote a manifest and snapshot files: {:?}",
        published.keys()
    );
    // The old checkpoint store comes back (restored from a backup, say).
    for extra in ["state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(ws.dir.path().join(extra));
    }
    std::fs::copy(&saved, &state).unwrap();
    let line = ws.failure(&["sync", "--config", "{config}"]);
    let at = line.find("_lakelink/models/").unwrap_or_else(|| {
        panic!("the failure should name the manifest under _lakelink/models to restore: {line}")
    });
    let advised: String = line[at..]
        .chars()
        .take_while(|c| c.is_alphanumeric() || "/_-.".contains(*c))
        .collect();
    let advised = advised.trim_end_matches('.');
    // The advice, followed to the letter.
    std::fs::copy(ws.lake.join(advised), ws.lake.join("model.json")).unwrap_or_else(|e| {
        panic!("the advice names {advised}, which cannot be copied: {e} (line: {line})")
    });
    ws.sync();
    let generation = ws.model().generation;
    assert!(
        generation > 2,
        "after following the advice ({line}), the sync should publish a new generation above 2; model.json names {generation}"
    );
    for (path, bytes) in &published {
        assert!(
            std::fs::read(path).ok().as_ref() == Some(bytes),
            "{} was published in generation 2 and was rewritten or removed",
            path.display()
        );
    }
    assert_lake_matches_source(&ws, "t", "id", None);
    assert_lake_matches_source(&ws, "other", "id", None);
}

// lakelink's own names.

#[test]
fn linking_a_table_with_lakelinks_reserved_prefix_is_refused() {
    let ws = Workspace::new(&format!(
        "{T_AND_OTHER}
         CREATE TABLE _lakelink_anything (id INTEGER PRIMARY KEY, x TEXT);
         INSERT INTO _lakelink_anything VALUES (1, 'the application''s');"
    ));
    ws.write_config("", &tables(&["t"]));
    ws.sync();
    for reserved in ["_lakelink_log", "_lakelink_anything"] {
        ws.write_config("", &tables(&["t", reserved]));
        let before = application_tables(&ws.source(), &["t", "_lakelink_anything"]);
        assert_sync_refuses(&ws, reserved, &["reserved"]);
        assert_eq!(
            application_tables(&ws.source(), &["t", "_lakelink_anything"]),
            before,
            "a refused link of {reserved:?} must leave the application's tables as they were"
        );
    }
}

/// The columns of `table` as `PRAGMA table_info` lists them.
fn table_info(conn: &Connection, table: &str) -> Vec<(String, String, bool, Option<String>)> {
    conn.prepare(&format!("PRAGMA table_info(\"{table}\")"))
        .unwrap()
        .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn an_application_table_named_like_lakelinks_log_is_left_alone() {
    let ws = Workspace::new(&format!(
        "{T_AND_OTHER}
         CREATE TABLE _lakelink_log (note TEXT);
         INSERT INTO _lakelink_log VALUES ('the application''s own');"
    ));
    let conn = ws.source();
    let columns = table_info(&conn, "_lakelink_log");
    ws.write_config("", &tables(&["t"]));
    let out = ws.lakelink(&["sync", "--config", "{config}"]);
    assert_eq!(
        table_info(&conn, "_lakelink_log"),
        columns,
        "lakelink must leave the application's own table _lakelink_log as it was"
    );
    assert!(
        out.status.success(),
        "lakelink sync should link t beside the application's _lakelink_log: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    conn.execute("INSERT INTO _lakelink_log (note) VALUES ('x')", [])
        .expect("the application can still write its _lakelink_log");
    conn.execute_batch("INSERT INTO t VALUES (4, 'four'); UPDATE t SET v = 'uno' WHERE id = 1;")
        .unwrap();
    ws.sync();
    assert_lake_matches_source(&ws, "t", "id", None);
    let notes: Vec<String> = conn
        .prepare("SELECT note FROM _lakelink_log ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(notes, ["the application's own", "x"]);
}

// Names that differ from a system attribute only in case.

#[test]
fn a_column_versionnumber_in_another_case_is_refused() {
    let ws = Workspace::new(
        "CREATE TABLE doc (id INTEGER PRIMARY KEY, VersionNumber INTEGER);
         INSERT INTO doc VALUES (1, 3);",
    );
    let line = assert_link_refused(&ws, "doc", &["differ only in case"], &["doc"]);
    assert!(names(&line, "VersionNumber"), "names the column: {line}");
}

#[test]
fn columns_isdelete_and_sinkcreatedon_in_another_case_are_refused() {
    let ws = Workspace::new(
        "CREATE TABLE flagged (id INTEGER PRIMARY KEY, isdelete INTEGER);
         CREATE TABLE stamped (id INTEGER PRIMARY KEY, SINKCREATEDON TEXT);
         INSERT INTO flagged VALUES (1, 0); INSERT INTO stamped VALUES (1, '2024-01-01');",
    );
    for (table, column) in [("flagged", "isdelete"), ("stamped", "SINKCREATEDON")] {
        let line = assert_link_refused(&ws, table, &["differ only in case"], &[table]);
        assert!(names(&line, column), "names the column {column}: {line}");
    }
}

#[test]
fn a_column_isdelete_in_another_case_added_after_linking_stops_the_table() {
    let ws = t_and_other("");
    t_stops_at_sync_after(
        &ws,
        "ALTER TABLE t ADD COLUMN ISDELETE TEXT; UPDATE t SET ISDELETE = 'no' WHERE id = 1;",
        &["differ only in case"],
    );
}

// REPLACE conflict resolution deletes rows without a delete trigger.

#[test]
fn rows_that_insert_or_replace_deletes_without_a_trigger_leave_the_lake_at_the_next_snapshot() {
    let ws = Workspace::new(
        "CREATE TABLE contact (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT);
         INSERT INTO contact VALUES (1, 'a@example.com', 'Ann'), (2, 'b@example.com', 'Bob'),
                                    (3, 'c@example.com', 'Cy');",
    );
    ws.write_config("", &tables(&["contact"]));
    ws.sync();
    // Without PRAGMA recursive_triggers, the rows REPLACE deletes for the UNIQUE email fire
    // no delete trigger: row 1 goes for the insert, row 2 for the update.
    ws.source()
        .execute_batch(
            "INSERT OR REPLACE INTO contact VALUES (4, 'a@example.com', 'Ann again');
             UPDATE OR REPLACE contact SET email = 'b@example.com' WHERE id = 3;",
        )
        .unwrap();
    ws.sync();
    assert_lake_matches_source(&ws, "contact", "id", None);
    // The snapshot found them gone, and the live files say so too, for readers of the log.
    let is_delete = attribute_index(&ws.model(), "contact", "IsDelete");
    let live = ws.live_files("contact");
    for vanished in ["1", "2"] {
        assert!(
            live.values()
                .flatten()
                .any(|r| r.get(0) == Some((vanished, false))
                    && r.get(is_delete).is_some_and(|(f, _)| f == "True")),
            "the live files of contact should hold a delete record for Id {vanished}, which REPLACE deleted"
        );
    }
}

#[test]
fn every_form_of_replace_reaches_the_lake_and_an_ignored_insert_deletes_nothing() {
    every_form_of_replace_with("");
}

#[test]
fn replace_markers_that_open_a_full_batch_are_kept_with_their_change() {
    // A batch of one or two log entries: a marker often opens a batch that cannot reach the
    // change it belongs to, and the read must go on to it rather than end before the marker
    // (it cannot) or lose it.
    for batch_size in [1, 2, 3] {
        every_form_of_replace_with(&format!("batch_size = {batch_size}"));
    }
}

fn every_form_of_replace_with(engine: &str) {
    // A partitioned table with a UNIQUE column and a column declared ON CONFLICT REPLACE:
    // each statement below deletes rows without a delete trigger, or (INSERT OR IGNORE)
    // only looks as if it would.
    let ws = Workspace::new(
        "CREATE TABLE contact (
             id INTEGER PRIMARY KEY, email TEXT UNIQUE, phone TEXT UNIQUE ON CONFLICT REPLACE,
             createdon TEXT, name TEXT);
         INSERT INTO contact VALUES
             (1, 'a@x', '100', '2023-01-05', 'Ann'), (2, 'b@x', '200', '2023-02-05', 'Bob'),
             (3, 'c@x', '300', '2024-03-05', 'Cy'), (4, 'd@x', '400', '2024-04-05', 'Di'),
             (5, 'e@x', '500', '2025-05-05', 'Ed'), (6, 'f@x', '600', '2025-06-05', 'Flo');",
    );
    ws.write_config(engine, &tables(&["contact"]));
    ws.sync();
    ws.source()
        .execute_batch(
            "-- the same key, moved to another partition
             INSERT OR REPLACE INTO contact VALUES (1, 'a@x', '100', '2026-01-01', 'Ann moved');
             -- an ignored insert that would conflict with row 2: nothing happens
             INSERT OR IGNORE INTO contact VALUES (7, 'b@x', '700', '2026-02-02', 'ignored');
             INSERT INTO contact VALUES (8, 'h@x', '800', '2026-03-03', 'Hal');
             -- a plain insert that the ON CONFLICT REPLACE phone replaces row 3 for
             INSERT INTO contact VALUES (9, 'i@x', '300', '2026-04-04', 'Ivy');
             -- an update onto another row's key, and one onto another row's email
             UPDATE OR REPLACE contact SET id = 5 WHERE id = 4;
             UPDATE OR REPLACE contact SET email = 'f@x' WHERE id = 8;
             -- several rows in one statement
             INSERT OR REPLACE INTO contact VALUES
                 (2, 'b@x', '201', '2027-01-01', 'Bob again'), (10, 'f@x', '1000', '2027-02-02', 'Jo');",
        )
        .unwrap();
    ws.sync();
    assert_lake_matches_source(&ws, "contact", "id", None);
    assert_live_files_replay_to_the_source(&ws, "contact");
}

/// Replaying every live file of `table` (latest image per Id, deletes removed) gives the
/// source's Ids: the live files say what the snapshot says.
fn assert_live_files_replay_to_the_source(ws: &Workspace, table: &str) {
    let model = ws.model();
    let is_delete = attribute_index(&model, table, "IsDelete");
    let version = attribute_index(&model, table, "versionnumber");
    let mut rows: Vec<(i64, usize, String, bool)> = Vec::new();
    for (seq, record) in ws.live_files(table).values().flatten().enumerate() {
        let position = record.get(version).unwrap().0.parse().unwrap();
        let deleted = record.get(is_delete).is_some_and(|(f, _)| f == "True");
        rows.push((position, seq, record.get(0).unwrap().0.to_string(), deleted));
    }
    // Within a position, a file's rows keep their order; across files, a delete and the image
    // of one change share the position, and the delete comes first.
    rows.sort_by_key(|(position, seq, _, deleted)| (*position, !*deleted, *seq));
    let mut live = BTreeSet::new();
    for (_, _, id, deleted) in rows {
        if deleted {
            live.remove(&id);
        } else {
            live.insert(id);
        }
    }
    let source: BTreeSet<String> = ws
        .source()
        .prepare(&format!("SELECT id FROM {table}"))
        .unwrap()
        .query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|id| id.unwrap().to_string())
        .collect();
    assert_eq!(live, source, "replaying the live files of {table}");
}
