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
