//! The agent follows its config file while it runs: tables added are linked, tables removed
//! are unlinked, an invalid edit is rejected with the agent running on, and editors that save
//! by renaming a new file over the old one are seen too.

mod support;

use support::*;

const SCHEMA: &str = "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT);
                      CREATE TABLE b (id INTEGER PRIMARY KEY, y TEXT);
                      INSERT INTO a VALUES (1, 'a1'); INSERT INTO b VALUES (1, 'b1');";
const ENGINE: &str = "poll_interval = \"20ms\"\nsnapshot_interval = \"300ms\"";

fn entities(ws: &Workspace) -> Vec<String> {
    if !ws.lake.join("model.json").exists() {
        return Vec::new();
    }
    ws.model().entities.into_iter().map(|e| e.name).collect()
}

/// Replaces the config the way many editors save: a new file renamed over the old one.
fn save_by_rename(ws: &Workspace, engine: &str, tables: &str) {
    let staged = ws.dir.path().join("lakelink.toml.new");
    let real = ws.config.clone();
    let tmp = Workspace {
        dir: tempfile::tempdir().unwrap(),
        db: ws.db.clone(),
        lake: ws.lake.clone(),
        config: staged.clone(),
        lake_section: ws.lake_section.clone(),
    };
    tmp.write_config(engine, tables);
    std::fs::rename(&staged, &real).unwrap();
}

#[test]
fn tables_are_linked_and_unlinked_by_editing_the_config() {
    let ws = Workspace::new(SCHEMA);
    ws.write_config(ENGINE, "[[table]]\nname = \"a\"\n");
    let agent = RunningAgent::start(&ws);
    wait_for(30, "table a in model.json", || entities(&ws) == ["a"]);
    let conn = ws.source();
    assert_eq!(trigger_count(&conn), 3);

    ws.write_config(
        ENGINE,
        "[[table]]\nname = \"a\"\n\n[[table]]\nname = \"b\"\n",
    );
    wait_for(30, "table b in model.json", || entities(&ws) == ["a", "b"]);
    assert_eq!(
        trigger_count(&conn),
        6,
        "b's capture triggers were installed"
    );
    conn.execute("INSERT INTO a VALUES (2, 'a2')", []).unwrap();
    conn.execute("INSERT INTO b VALUES (2, 'b2')", []).unwrap();
    wait_for(30, "both tables' new rows", || {
        ws.read("a", None).1.len() == 2 && ws.read("b", None).1.len() == 2
    });

    save_by_rename(&ws, ENGINE, "[[table]]\nname = \"b\"\n");
    wait_for(30, "table a to leave model.json", || entities(&ws) == ["b"]);
    assert_eq!(trigger_count(&conn), 3, "a's triggers were removed");
    assert!(ws.lake.join("a/1.csv").exists(), "a's folder stays");
    agent.stop_cleanly();
    assert_lake_matches_source(&ws, "b", "id", None);
}

#[test]
fn an_invalid_edit_is_rejected_and_the_agent_keeps_syncing_on_the_last_good_config() {
    let ws = Workspace::new(SCHEMA);
    ws.write_config(ENGINE, "[[table]]\nname = \"a\"\n");
    let agent = RunningAgent::start(&ws);
    wait_for(30, "table a in model.json", || entities(&ws) == ["a"]);

    // A typo, then a table that does not exist: both rejected, one line each.
    ws.write_config(ENGINE, "[[table]]\nnme = \"a\"\n");
    wait_for(30, "the typo to be rejected", || {
        agent.log().contains("unknown field `nme`")
    });
    ws.write_config(
        ENGINE,
        "[[table]]\nname = \"a\"\n\n[[table]]\nname = \"missing\"\n",
    );
    wait_for(30, "the missing table to be rejected", || {
        agent.log().contains("table \"missing\" does not exist")
    });
    assert!(
        agent
            .log()
            .contains("config rejected; the agent keeps running on the last good config")
    );

    let conn = ws.source();
    conn.execute("INSERT INTO a VALUES (2, 'a2')", []).unwrap();
    wait_for(30, "a's new row", || ws.read("a", None).1.len() == 2);
    assert_eq!(entities(&ws), ["a"]);
    agent.stop_cleanly();
}

#[test]
fn reading_the_config_does_not_reload_it() {
    // `lakelink status --config`, an editor opening the file, a backup: none changes it.
    let ws = Workspace::new(SCHEMA);
    ws.write_config(ENGINE, "[[table]]\nname = \"a\"\n");
    let agent = RunningAgent::start(&ws);
    wait_for(30, "table a in model.json", || entities(&ws) == ["a"]);
    for _ in 0..3 {
        std::fs::read_to_string(&ws.config).unwrap();
        let status = ws.lakelink(&["status", "--config", "{config}"]);
        assert!(status.status.success());
    }
    // Longer than the watcher's debounce, so that a reload would have happened.
    std::thread::sleep(std::time::Duration::from_secs(1));
    ws.write_config(
        ENGINE,
        "[[table]]\nname = \"a\"\n\n[[table]]\nname = \"b\"\n",
    );
    wait_for(30, "table b in model.json", || entities(&ws) == ["a", "b"]);
    let log = agent.log();
    assert_eq!(
        log.matches("config changed; applying it").count(),
        1,
        "only the one edit is a change:\n{log}"
    );
    agent.stop_cleanly();
}

#[test]
fn a_reload_that_fails_partway_changes_nothing_and_the_removed_table_keeps_flowing() {
    // The edit removes a and adds item, whose copy finds two rows keyed NULL: item cannot
    // be linked, so the edit is rejected whole, and a (which it would have unlinked) stays.
    let ws = Workspace::new(&format!(
        "{SCHEMA}
         CREATE TABLE item (code TEXT PRIMARY KEY, v);
         INSERT INTO item VALUES (NULL, 'first'), (NULL, 'second'), ('c', 'fine');"
    ));
    ws.write_config(ENGINE, "[[table]]\nname = \"a\"\n");
    let agent = RunningAgent::start(&ws);
    wait_for(30, "table a in model.json", || entities(&ws) == ["a"]);
    let conn = ws.source();
    let triggers = trigger_count(&conn);
    ws.write_config(ENGINE, "[[table]]\nname = \"item\"\n");
    wait_for(30, "the edit to be rejected", || {
        agent
            .log()
            .contains("config rejected; the agent keeps running on the last good config")
    });
    let log = agent.log();
    let rejected = log.lines().find(|l| l.contains("config rejected")).unwrap();
    assert!(
        rejected.contains("item") && rejected.contains("NULL"),
        "says why: {rejected}"
    );
    assert!(!log.contains("unlinked"), "a was not unlinked: {log}");
    assert_eq!(
        trigger_count(&conn),
        triggers,
        "item's capture was taken back, a's kept"
    );
    conn.execute("INSERT INTO a VALUES (2, 'a2')", []).unwrap();
    wait_for(30, "a's new row", || ws.read("a", None).1.len() == 2);
    assert_eq!(entities(&ws), ["a"]);
    assert!(
        !ws.lake.join("item").join("1.csv").exists(),
        "item's copy was removed"
    );
    agent.stop_cleanly();
}

/// A table linked by editing the config of a running agent is in model.json as soon as its
/// copy is done, not an interval later: here the interval is an hour.
#[test]
fn a_table_linked_while_the_agent_runs_is_published_once_copied() {
    const HOURLY: &str = "poll_interval = \"20ms\"\nsnapshot_interval = \"1h\"";
    let ws = Workspace::new(SCHEMA);
    ws.write_config(HOURLY, "[[table]]\nname = \"a\"\n");
    let agent = RunningAgent::start(&ws);
    wait_for(30, "table a in model.json", || entities(&ws) == ["a"]);
    let published = |generation: u64| {
        ws.lake
            .join(format!("_lakelink/models/model-T{generation}.json"))
            .exists()
    };
    assert!(published(1) && !published(2));
    ws.write_config(
        HOURLY,
        "[[table]]\nname = \"a\"\n\n[[table]]\nname = \"b\"\n",
    );
    wait_for(30, "table b in model.json", || entities(&ws) == ["a", "b"]);
    // Give a second, needless publish the time to show itself.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(published(2) && !published(3), "one publish for the link");
    agent.stop_cleanly();
    assert_lake_matches_source(&ws, "b", "id", None);
}
