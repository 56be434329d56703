//! Bad input and a hostile environment: each gets a clear one-line error (or a warning while
//! the agent carries on) and loses nothing.

mod support;

use support::*;

const ONE_TABLE: &str = "[[table]]\nname = \"t\"\n";

fn workspace() -> Workspace {
    let ws = Workspace::new(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO t VALUES (1, 'one');",
    );
    ws.write_config("", ONE_TABLE);
    ws
}

#[test]
fn a_value_of_the_wrong_type_is_named_with_its_line() {
    let ws = workspace();
    ws.write_config("keep_generations = \"five\"", ONE_TABLE);
    let err = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        err.contains("line 13") && err.contains("invalid type: string \"five\", expected u32"),
        "{err}"
    );
}

#[test]
fn a_table_listed_twice_is_refused() {
    let ws = workspace();
    ws.write_config("", "[[table]]\nname = \"t\"\n\n[[table]]\nname = \"T\"\n");
    let err = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        err.contains("table[1].name: table \"T\" is listed twice"),
        "{err}"
    );
}

#[test]
fn a_missing_source_database_is_named() {
    let ws = workspace();
    std::fs::remove_file(&ws.db).unwrap();
    let err = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        err.contains("source.db: opening the database file (check [source] path)"),
        "{err}"
    );
    assert!(!ws.lake.join("model.json").exists());
}

#[test]
fn text_that_is_not_utf8_is_kept_as_its_bytes_and_reported() {
    let ws = workspace();
    ws.sync();
    let conn = ws.source();
    conn.execute("INSERT INTO t VALUES (2, CAST(x'41ff42' AS TEXT))", [])
        .unwrap();
    let out = ws.lakelink(&["sync", "--config", "{config}"]);
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("not valid UTF-8")
            && log.contains("table=\"t\"")
            && log.contains("column=\"name\""),
        "{log}"
    );
    let (header, rows) = ws.read("t", None);
    let name = header.iter().position(|h| h == "name").unwrap();
    let row = rows
        .iter()
        .find(|r| r.get(0).unwrap().0 == "2")
        .expect("row 2 reached the lake");
    assert_eq!(
        row.get(name),
        Some(("Qf9C", true)),
        "the bytes 41 ff 42, base64"
    );
    // The rest keeps flowing.
    conn.execute("INSERT INTO t VALUES (3, 'three')", [])
        .unwrap();
    ws.sync();
    assert_eq!(ws.read("t", None).1.len(), 3);
}

#[test]
fn a_damaged_model_json_stops_the_agent_until_it_is_restored() {
    let ws = workspace();
    ws.sync();
    let model = ws.lake.join("model.json");
    let good = std::fs::read(&model).unwrap();
    std::fs::write(&model, &good[..good.len() / 2]).unwrap();
    ws.source()
        .execute("INSERT INTO t VALUES (2, 'two')", [])
        .unwrap();
    let err = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        err.contains("model.json in the lake: not a valid manifest")
            && err.contains("restore it by copying _lakelink/models/model-T1.json to model.json"),
        "{err}"
    );
    std::fs::copy(ws.lake.join("_lakelink/models/model-T1.json"), &model).unwrap();
    ws.sync();
    assert_lake_matches_source(&ws, "t", "id", None);
}

#[test]
fn a_model_json_that_is_not_text_names_the_file_to_restore_it_from() {
    let ws = workspace();
    ws.sync();
    ws.source()
        .execute("INSERT INTO t VALUES (2, 'two')", [])
        .unwrap();
    ws.sync();
    let model = ws.lake.join("model.json");
    std::fs::write(&model, [0xff, 0xfe, 0x00, 0x7b, 0x80, 0x81]).unwrap();
    let err = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        err.contains("model.json in the lake: not a valid manifest")
            && err.contains("restore it by copying _lakelink/models/model-T2.json to model.json"),
        "{err}"
    );
    assert!(!err.contains("stream did not contain valid UTF-8"), "{err}");
    // Following the advice works.
    std::fs::copy(ws.lake.join("_lakelink/models/model-T2.json"), &model).unwrap();
    ws.source()
        .execute("INSERT INTO t VALUES (3, 'three')", [])
        .unwrap();
    ws.sync();
    assert_lake_matches_source(&ws, "t", "id", None);
    // With no whole kept manifest left, the advice says to restore from a backup instead of
    // naming a file that is not there.
    std::fs::write(&model, [0xff, 0xfe]).unwrap();
    for entry in std::fs::read_dir(ws.lake.join("_lakelink/models")).unwrap() {
        std::fs::write(entry.unwrap().path(), b"{ cut").unwrap();
    }
    let err = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        err.contains("no whole manifest is kept in _lakelink/models")
            && err.contains("restore model.json from a backup of the lake"),
        "{err}"
    );
}

#[test]
fn a_damaged_checkpoint_store_is_named_and_the_lake_is_left_alone() {
    let ws = workspace();
    ws.sync();
    let before = std::fs::read(ws.lake.join("model.json")).unwrap();
    let state = ws.dir.path().join("state.db");
    for extra in ["state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(ws.dir.path().join(extra));
    }
    std::fs::write(
        &state,
        b"this is not a checkpoint store, it was overwritten",
    )
    .unwrap();
    let err = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        err.contains("checkpoint store") && err.contains("state.db"),
        "{err}"
    );
    assert_eq!(std::fs::read(ws.lake.join("model.json")).unwrap(), before);
}

#[test]
fn a_checkpoint_store_of_another_lake_is_refused() {
    let ws = workspace();
    ws.sync();
    let text = std::fs::read_to_string(&ws.config)
        .unwrap()
        .replace("path = \"lake\"", "path = \"other-lake\"");
    std::fs::write(&ws.config, text).unwrap();
    let err = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        err.contains("belongs to local lake")
            && err.contains("give each lake its own [engine] state"),
        "{err}"
    );
}

#[test]
fn a_source_replaced_while_linked_stops_the_agent_and_keeps_the_lake() {
    let ws = workspace();
    ws.write_config("poll_interval = \"20ms\"", ONE_TABLE);
    let agent = RunningAgent::start(&ws);
    wait_for(30, "the first snapshot", || {
        ws.lake.join("model.json").exists()
    });
    std::fs::rename(&ws.db, ws.dir.path().join("moved.db")).unwrap();
    rusqlite::Connection::open(&ws.db)
        .unwrap()
        .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);")
        .unwrap();
    let mut agent = agent;
    let status = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = agent.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the agent kept running on a replaced source"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    assert!(!status.success());
    let log = agent.log();
    assert!(
        log.contains("was deleted or replaced while linked; restore it or relink its tables"),
        "{log}"
    );
    assert_eq!(ws.model().generation, 1, "the lake is intact");
}

/// The application holds a write transaction in rollback-journal mode, so that lakelink can
/// neither switch the database to WAL nor install its triggers until it ends; an agent polling
/// every 20 ms starts against it. Returns the application's connection (COMMIT ends it).
fn agent_against_a_locked_source(ws: &Workspace) -> (rusqlite::Connection, RunningAgent) {
    ws.write_config("poll_interval = \"20ms\"", ONE_TABLE);
    let conn = ws.source();
    conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (2, 'two');")
        .unwrap();
    (conn, RunningAgent::start(ws))
}

#[test]
fn a_source_locked_by_a_long_transaction_is_waited_for_without_an_error_storm() {
    let ws = workspace();
    let (conn, agent) = agent_against_a_locked_source(&ws);
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert!(
        !ws.lake.join("model.json").exists(),
        "nothing could be read yet"
    );
    conn.execute_batch("COMMIT").unwrap();
    wait_for(60, "the agent to sync after the lock was released", || {
        ws.lake.join("model.json").exists()
    });
    let log = agent.log();
    let retries = log.lines().filter(|l| l.contains("retrying")).count();
    assert!(retries >= 1, "the wait is logged: {log}");
    // Exponential backoff from the 20 ms poll interval doubles to about 2.5 s within 5 s:
    // around eight retries, where a fixed-interval loop would log 250.
    assert!(
        retries <= 12,
        "backoff, not a storm: {retries} retries in 5 s\n{log}"
    );
    assert!(log.contains("busy"), "{log}");
    agent.stop_cleanly();
    assert_lake_matches_source(&ws, "t", "id", None);
}

#[test]
fn a_snapshot_request_while_retrying_does_not_turn_the_backoff_into_a_busy_loop() {
    let ws = workspace();
    let (conn, agent) = agent_against_a_locked_source(&ws);
    wait_for(30, "the first retry", || agent.log().contains("retrying"));
    // A snapshot request stays pending until the agent can take it; it may cut one wait
    // short, and must not cut short every wait after it.
    agent.signal("USR1");
    std::thread::sleep(std::time::Duration::from_secs(5));
    let log = agent.log();
    let retries = log.lines().filter(|l| l.contains("retrying")).count();
    assert!(
        retries <= 14,
        "backoff, not a busy loop: {retries} retries in about 5 s\n{log}"
    );
    assert!(log.contains("snapshot requested; retrying now"), "{log}");
    conn.execute_batch("COMMIT").unwrap();
    wait_for(60, "the agent to sync after the lock was released", || {
        ws.lake.join("model.json").exists()
    });
    agent.stop_cleanly();
    assert_lake_matches_source(&ws, "t", "id", None);
}

#[test]
fn a_date_time_outside_years_1_to_9999_is_kept_as_its_text() {
    let ws = Workspace::new(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME);
         INSERT INTO t VALUES (1, '0000-01-01T00:30:00+01:00'), (2, '9999-12-31T23:00:00-05:00'),
                              (3, '0001-01-01T00:30:00-01:00');",
    );
    ws.write_config("", "[[table]]\nname = \"t\"\npartition_by = \"at\"\n");
    ws.sync();
    let (_, rows) = ws.read("t", None);
    let model = ws.model();
    let at = attribute_index(&model, "t", "at");
    let id = attribute_index(&model, "t", "id");
    let by_id: std::collections::BTreeMap<String, String> = rows
        .iter()
        .map(|r| {
            (
                r.get(id).unwrap().0.to_string(),
                r.get(at).unwrap().0.to_string(),
            )
        })
        .collect();
    assert_eq!(by_id["1"], "0000-01-01T00:30:00+01:00");
    assert_eq!(by_id["2"], "9999-12-31T23:00:00-05:00");
    assert_eq!(by_id["3"], "0001-01-01T01:30:00.0000000Z");
    // Rows are partitioned by their instant's year, however the value is written; past 9999
    // the instant has no year the parser keeps, so the row is in the default partition.
    let live = ws.live_files("t");
    assert_eq!(live["-001"].len(), 1, "{live:?}");
    assert_eq!(live["1"].len(), 1, "{live:?}");
    assert_eq!(live["0001"].len(), 1, "{live:?}");
}

#[test]
fn a_live_file_shorter_than_its_checkpoint_is_reported_as_lost_data() {
    let ws = workspace();
    ws.sync();
    let live = ws.lake.join("t/1.csv");
    let len = std::fs::metadata(&live).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let err = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        err.contains("t/1.csv in the lake: holds") && err.contains("the lake lost data"),
        "{err}"
    );
}

#[test]
fn a_deleted_lake_folder_is_named_as_gone_and_the_advice_to_start_over_works() {
    let ws = workspace();
    ws.write_config("poll_interval = \"20ms\"", ONE_TABLE);
    // While the agent runs: it stops at its next poll, saying the lake folder went.
    let mut agent = RunningAgent::start(&ws);
    wait_for(30, "the first snapshot", || {
        ws.lake.join("model.json").exists()
    });
    std::fs::remove_dir_all(&ws.lake).unwrap();
    let exit = agent.child.wait().unwrap();
    assert!(!exit.success());
    // The agent may look while the deletion is halfway (the lock gone, the folder not yet).
    let log = agent.log();
    assert!(
        log.contains(
            "_lakelink/lock was deleted along with the whole lake folder while this agent held it"
        ) || log.contains("_lakelink/lock was deleted while this agent held it"),
        "{log}"
    );
    // At the next start the advice names no file that is gone.
    let err = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        err.contains("model.json in the lake: is missing but generation 1 was published")
            && err.contains("the lake's files are gone")
            && err.contains("move the checkpoint store")
            && err.contains("state.db aside and sync"),
        "{err}"
    );
    assert!(
        !err.contains("model-T1.json"),
        "names a file that is gone: {err}"
    );
    // Following it: the lake is whole again, and the old capture is named for removal.
    std::fs::rename(
        ws.dir.path().join("state.db"),
        ws.dir.path().join("state.db.old"),
    )
    .unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(ws.dir.path().join(format!("state.db{suffix}")));
    }
    ws.source()
        .execute("INSERT INTO t VALUES (2, 'two')", [])
        .unwrap();
    let out = ws.lakelink(&["sync", "--config", "{config}"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "capture triggers of another lake, or of a checkpoint store no longer in use"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_lake_matches_source(&ws, "t", "id", None);
}
