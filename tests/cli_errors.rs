//! Bad input gets one clear line naming what is at fault, a non-zero exit, and loses nothing.

mod support;

use support::*;

#[test]
fn a_missing_config_is_named() {
    let ws = Workspace::new("");
    let err = ws.failure(&["sync", "--config", "/nonexistent/lakelink.toml"]);
    assert!(
        err.contains("config /nonexistent/lakelink.toml: cannot read it"),
        "{err}"
    );
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let ws = Workspace::new("CREATE TABLE t (id INTEGER PRIMARY KEY);");
    ws.write_config("snapshot_intervall = \"1h\"", "");
    let err = ws.failure(&["sync", "--config", "{config}"]);
    assert!(err.contains("unknown field `snapshot_intervall`"), "{err}");
    assert!(err.contains("line 13"), "{err}");
}

#[test]
fn a_missing_table_is_named() {
    let ws = Workspace::new("CREATE TABLE t (id INTEGER PRIMARY KEY);");
    ws.write_config("", "[[table]]\nname = \"nope\"\n");
    let err = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        err.contains("table \"nope\" does not exist in SQLite database"),
        "{err}"
    );
}

#[test]
fn a_table_without_a_key_is_refused_until_one_is_configured() {
    let ws =
        Workspace::new("CREATE TABLE log (at TEXT, msg TEXT); INSERT INTO log VALUES ('t', 'm');");
    ws.write_config("", "[[table]]\nname = \"log\"\n");
    let err = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        err.contains("table \"log\": has no primary key; name the columns"),
        "{err}"
    );
    ws.write_config("", "[[table]]\nname = \"log\"\nkey = [\"at\", \"msg\"]\n");
    ws.sync();
    assert_eq!(ws.read("log", None).1.len(), 1);
}

#[test]
fn a_key_column_that_does_not_exist_is_named() {
    let ws = Workspace::new("CREATE TABLE log (at TEXT, msg TEXT);");
    ws.write_config("", "[[table]]\nname = \"log\"\nkey = [\"when\"]\n");
    let err = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        err.contains("table \"log\" has no column \"when\"; check the config's key"),
        "{err}"
    );
}

#[test]
fn unsafe_table_names_are_refused() {
    let ws = Workspace::new("CREATE TABLE t (id INTEGER PRIMARY KEY);");
    for bad in ["../x", "a/b", "a.b", ""] {
        ws.write_config("", &format!("[[table]]\nname = \"{bad}\"\n"));
        let err = ws.failure(&["sync", "--config", "{config}"]);
        assert!(err.contains("table[0].name: table name"), "{bad:?}: {err}");
    }
}

#[test]
fn a_second_writer_on_the_same_lake_is_refused_and_named() {
    let ws = Workspace::new("CREATE TABLE t (id INTEGER PRIMARY KEY);");
    ws.write_config("poll_interval = \"20ms\"", "[[table]]\nname = \"t\"\n");
    let agent = RunningAgent::start(&ws);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ws.lake.join("t/Snapshot").exists()
        && !ws
            .lake
            .join("Microsoft.Athena.TrickleFeedService/t-model.json")
            .exists()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let err = ws.failure(&["sync", "--config", "{config}"]);
    // SIGKILL: the holder dies without releasing anything itself.
    drop(agent);
    assert!(err.contains("the lake is in use by lakelink pid"), "{err}");
    // The holder died: its lock died with it.
    ws.sync();
}

#[test]
fn deleting_the_lock_file_by_hand_stops_the_agent_before_a_second_one_writes_beside_it() {
    let ws = Workspace::new("CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT);");
    ws.write_config("poll_interval = \"20ms\"", "[[table]]\nname = \"t\"\n");
    let mut first = RunningAgent::start(&ws);
    wait_for(30, "the first snapshot", || {
        ws.lake.join("model.json").exists()
    });
    std::fs::remove_file(ws.lake.join("_lakelink/lock")).unwrap();
    // A second agent can now take a new lock file at that name, and starts at once beside
    // the first, which must notice at its next poll and stop before writing anything more
    // (the lock is gone, or already the second agent's file, by then).
    let beside = RunningAgent::start(&ws);
    let exit = first.child.wait().unwrap();
    assert!(!exit.success(), "the agent must stop: {}", first.log());
    let log = first.log();
    assert!(
        log.contains("the lake's writer lock")
            && (log.contains("_lakelink/lock was deleted while this agent held it")
                || log.contains("_lakelink/lock was replaced while this agent held it"))
            && log.contains("Make sure no other agent runs on this lake"),
        "{log}"
    );
    // The one beside it took the lake and keeps it, and what the application writes
    // reaches the lake once.
    wait_for(30, "the agent beside it to run", || {
        beside.log().contains("agent running")
    });
    ws.source()
        .execute("INSERT INTO t VALUES (1, 'one')", [])
        .unwrap();
    wait_for(30, "the row through the agent beside it", || {
        ws.live_row_count("t") == 1
    });
    beside.stop_cleanly();
    // Replacing it with another file is noticed the same way.
    let second = RunningAgent::start(&ws);
    wait_for(30, "the second agent to take the lake", || {
        second.log().contains("agent running")
    });
    let lock = ws.lake.join("_lakelink/lock");
    std::fs::rename(&lock, ws.lake.join("_lakelink/lock.old")).unwrap();
    std::fs::write(&lock, "someone else").unwrap();
    let mut second = second;
    let exit = second.child.wait().unwrap();
    assert!(!exit.success());
    assert!(
        second
            .log()
            .contains("_lakelink/lock was replaced while this agent held it"),
        "{}",
        second.log()
    );
    // Nothing was lost or doubled: a fresh agent carries on.
    ws.source()
        .execute("INSERT INTO t VALUES (2, 'two')", [])
        .unwrap();
    ws.sync();
    assert_eq!(ws.live_row_count("t"), 2, "each change once");
    assert_lake_matches_source(&ws, "t", "id", None);
}

#[test]
fn help_says_what_lakelink_does_and_each_command_shows_an_example() {
    let ws = Workspace::new("");
    let out = ws.lakelink(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or("");
    assert!(
        first.starts_with("Keeps a data lake in sync with your database"),
        "{text}"
    );
    assert!(
        !text.contains("pipeline"),
        "no internal description: {text}"
    );
    for command in ["run", "sync", "status", "link", "unlink", "read"] {
        let out = ws.lakelink(&[command, "--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{command}: {text}");
        assert!(
            text.contains("Example") && text.contains(&format!("  lakelink {command} ")),
            "{command} --help shows an example: {text}"
        );
    }
}

#[test]
fn link_checks_the_table_against_the_source_before_it_edits_the_config() {
    let ws = Workspace::new(
        "CREATE TABLE t (id INTEGER PRIMARY KEY);
         CREATE TABLE log (at TEXT, msg TEXT);
         CREATE TABLE seq (id INTEGER PRIMARY KEY AUTOINCREMENT);
         CREATE VIRTUAL TABLE docs USING fts5(body);
         CREATE VIEW v AS SELECT * FROM t;",
    );
    ws.write_config("", "[[table]]\nname = \"t\"\n");
    let before = std::fs::read_to_string(&ws.config).unwrap();
    for (args, expected) in [
        (
            vec!["nope"],
            "table \"nope\" does not exist in SQLite database",
        ),
        (vec!["log"], "table \"log\": has no primary key"),
        (
            vec!["log", "--key", "when"],
            "table \"log\" has no column \"when\"; check the config's key",
        ),
        (
            vec!["_lakelink_x"],
            "names starting with \"_lakelink\" are reserved",
        ),
        (
            vec!["docs", "--key", "body"],
            "table \"docs\" is a virtual table",
        ),
        (
            vec!["docs_data", "--key", "id"],
            "table \"docs_data\" is a virtual table's internal (shadow) table",
        ),
        (
            vec!["sqlite_sequence", "--key", "name"],
            "table \"sqlite_sequence\" is one of SQLite's own tables",
        ),
        (vec!["v", "--key", "id"], "table \"v\" is a view"),
    ] {
        let mut command = vec!["link", "--config", "{config}"];
        command.extend(args.iter().copied());
        let err = ws.failure(&command);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(err.contains("is unchanged"), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert_eq!(
            std::fs::read_to_string(&ws.config).unwrap(),
            before,
            "{args:?} left the config as it was"
        );
    }
    // What can be linked is.
    let out = ws.lakelink(&["link", "--config", "{config}", "log", "--key", "at,msg"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ws.sync();
}

#[test]
fn a_configured_table_that_cannot_be_linked_is_refused_alone_and_the_others_flow() {
    let ws = Workspace::new(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT); INSERT INTO t VALUES (1, 'one');
         CREATE TABLE counter (id INTEGER PRIMARY KEY AUTOINCREMENT);
         CREATE VIRTUAL TABLE docs USING fts5(body);",
    );
    let tables = "[[table]]\nname = \"t\"\n\n[[table]]\nname = \"gone\"\n\n[[table]]\nname = \"docs\"\nkey = [\"body\"]\n\n[[table]]\nname = \"sqlite_sequence\"\nkey = [\"name\"]\n";
    ws.write_config("poll_interval = \"20ms\"", tables);
    // sync: the others are synced, then the pass fails naming each refused table.
    let out = ws.lakelink(&["sync", "--config", "{config}"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    for expected in [
        "table \"gone\" is not linked: table \"gone\" does not exist in SQLite database",
        "table \"docs\" is not linked",
        "is a virtual table",
        "table \"sqlite_sequence\" is not linked",
        "is one of SQLite's own tables",
        "or unlink it",
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }
    assert_lake_matches_source(&ws, "t", "id", None);
    assert!(ws.model().entity("gone").is_none());

    // The agent: runs, keeps t flowing, and status shows the refused tables.
    let agent = RunningAgent::start(&ws);
    wait_for(30, "the agent to run", || {
        agent.log().contains("agent running")
    });
    ws.source()
        .execute("INSERT INTO t VALUES (2, 'two')", [])
        .unwrap();
    agent.snapshot_now(&ws);
    assert_lake_matches_source(&ws, "t", "id", None);
    let status = ws.lakelink(&["status", "--config", "{config}"]);
    let text = String::from_utf8_lossy(&status.stdout);
    let gone = text.lines().find(|l| l.starts_with("gone ")).unwrap_or("");
    assert!(
        gone.contains("Refused") && gone.contains("does not exist"),
        "{text}"
    );
    let log = agent.log();
    assert_eq!(
        log.matches("table \"gone\" is not linked").count(),
        1,
        "said once: {log}"
    );
    // Creating the table and touching the config links it, without a restart.
    ws.source()
        .execute_batch("CREATE TABLE gone (id INTEGER PRIMARY KEY); INSERT INTO gone VALUES (7);")
        .unwrap();
    ws.write_config(
        "poll_interval = \"20ms\"",
        &format!("{tables}\n# touched\n"),
    );
    // Published once copied, without waiting for the next snapshot interval.
    wait_for(30, "gone to be linked and published", || {
        ws.model().entity("gone").is_some()
    });
    assert_lake_matches_source(&ws, "gone", "id", None);
    agent.stop_cleanly();
}
