//! Running the agent like a service: its metrics and status endpoint, `lakelink status`
//! with and without an agent, `lakelink link` and `unlink` while it runs, and a clean stop in
//! the middle of an initial sync.

mod support;

use support::agent_http::{get, sample};
use support::*;

const ENGINE: &str = "poll_interval = \"20ms\"\nsnapshot_interval = \"300ms\"";

/// The agent's status address, from the holder line in the lake's lock file.
fn agent_address(ws: &Workspace) -> Option<String> {
    support::agent_http::address(ws)
}

#[test]
fn metrics_and_status_follow_the_changes() {
    let ws = Workspace::new(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT); INSERT INTO a VALUES (1, 'one');",
    );
    ws.write_config(ENGINE, "[[table]]\nname = \"a\"\n");
    let agent = RunningAgent::start(&ws);
    wait_for(30, "the first snapshot", || {
        ws.lake.join("model.json").exists()
    });
    wait_for(30, "the lock to name the status endpoint", || {
        agent_address(&ws).is_some()
    });
    let address = agent_address(&ws).unwrap();

    let before = get(&address, "/metrics");
    for series in [
        "lakelink_changes_captured_total{table=\"a\"}",
        "lakelink_rows_written_total{table=\"a\"}",
        "lakelink_bytes_written_total{table=\"a\"}",
        "lakelink_lag_changes{table=\"a\"}",
        "lakelink_lag_seconds{table=\"a\"}",
        "lakelink_snapshot_generation",
        "lakelink_snapshot_duration_seconds",
    ] {
        assert!(
            sample(&before, series).is_some(),
            "{series} missing:\n{before}"
        );
    }
    assert!(before.contains("# TYPE lakelink_retries_total counter"));
    let captured = sample(&before, "lakelink_changes_captured_total{table=\"a\"}").unwrap();
    let generation = sample(&before, "lakelink_snapshot_generation").unwrap();

    let conn = ws.source();
    for id in 2..=51 {
        conn.execute("INSERT INTO a VALUES (?1, 'x')", [id])
            .unwrap();
    }
    wait_for(30, "the metrics to count 50 more changes", || {
        let now = get(&address, "/metrics");
        sample(&now, "lakelink_changes_captured_total{table=\"a\"}") == Some(captured + 50.0)
            && sample(&now, "lakelink_lag_changes{table=\"a\"}") == Some(0.0)
    });
    wait_for(30, "a snapshot of the new rows", || {
        sample(&get(&address, "/metrics"), "lakelink_snapshot_generation").unwrap() > generation
    });

    let status: serde_json::Value = serde_json::from_str(&get(&address, "/status")).unwrap();
    assert_eq!(status["tables"]["a"]["state"], "Completed");
    assert_eq!(status["tables"]["a"]["live_rows"], 51);

    let out = ws.lakelink(&["status", "--config", "{config}"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("agent running") && text.contains("Completed"),
        "{text}"
    );
    agent.stop_cleanly();
    let out = ws.lakelink(&["status", "--config", "{config}"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("no agent is running") && text.contains("Completed"),
        "{text}"
    );
}

#[test]
fn link_and_unlink_edit_the_config_and_the_running_agent_follows() {
    let ws = Workspace::new(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT); CREATE TABLE b (id INTEGER PRIMARY KEY, y TEXT);
         INSERT INTO b VALUES (1, 'b1');",
    );
    ws.write_config(
        ENGINE,
        "# tables the agent links\n[[table]]\nname = \"a\" # kept\n",
    );
    let agent = RunningAgent::start(&ws);
    wait_for(30, "the first snapshot", || {
        ws.lake.join("model.json").exists()
    });
    let out = ws.lakelink(&[
        "link",
        "--config",
        "{config}",
        "b",
        "--granularity",
        "month",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&ws.config).unwrap();
    assert!(
        text.contains("# tables the agent links") && text.contains("name = \"a\" # kept"),
        "comments stay:\n{text}"
    );
    wait_for(30, "b in model.json", || ws.model().entity("b").is_some());
    assert_eq!(ws.read("b", None).1.len(), 1);

    let out = ws.lakelink(&["unlink", "--config", "{config}", "b"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(30, "b to leave model.json", || {
        ws.model().entity("b").is_none()
    });
    assert_eq!(trigger_count(&ws.source()), 3);
    let out = ws.lakelink(&["unlink", "--config", "{config}", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("table \"nope\" is not linked"));
    agent.stop_cleanly();
}

#[test]
fn sigterm_during_an_initial_sync_stops_cleanly_and_the_next_start_loses_nothing() {
    let ws = Workspace::new(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, payload TEXT, createdon DATETIME);",
    );
    let conn = ws.source();
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)
         INSERT INTO big SELECT i, printf('row %d with some text to copy', i),
                printf('%d-06-01 00:00:00', 2018 + i % 8) FROM n;",
    )
    .unwrap();
    ws.write_config(ENGINE, "[[table]]\nname = \"big\"\n");
    let agent = RunningAgent::start(&ws);
    wait_for(60, "the copy to start writing", || {
        ws.lake.join("big").exists()
    });
    let started = std::time::Instant::now();
    let status = agent.stop();
    assert!(status.success(), "SIGTERM mid-copy exits 0");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "it stops within a few seconds"
    );
    ws.sync();
    let rows = ws.live_row_count("big");
    assert_eq!(rows, 300_000, "the copy was retaken whole, once");
    assert_eq!(ws.read("big", None).1.len(), 300_000);
}

#[test]
fn status_names_the_agent_that_holds_the_lake_when_it_does_not_answer() {
    let ws = Workspace::new("CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT);");
    ws.write_config(ENGINE, "[[table]]\nname = \"a\"\n");
    let agent = RunningAgent::start(&ws);
    wait_for(30, "the first snapshot", || {
        ws.lake.join("model.json").exists()
    });
    let pid = agent.child.id().to_string();
    // Stopped (SIGSTOP): it holds the lock and cannot answer.
    agent.signal("STOP");
    // The signal is delivered to each thread as it is scheduled: wait until every thread of
    // the agent is stopped, or a reply already under way could still go out.
    wait_for(10, "every thread of the agent to stop", || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks.flatten().all(|t| {
                    std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
                        stat.rsplit_once(')')
                            .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
                    })
                })
            })
            .unwrap_or(false)
    });
    let out = ws.lakelink(&["status", "--config", "{config}"]);
    agent.signal("CONT");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("an agent holds the lake but does not answer")
            && text.contains(&format!("lakelink pid {pid}"))
            && text.contains("kill -CONT")
            && text.contains("Completed"),
        "{text}"
    );
    assert!(!text.contains("no agent is running"), "{text}");
    agent.stop_cleanly();

    // With no endpoint at all.
    ws.write_config(
        &format!("{ENGINE}\nlisten = \"off\""),
        "[[table]]\nname = \"a\"\n",
    );
    let agent = RunningAgent::start(&ws);
    wait_for(30, "the agent to run", || {
        agent.log().contains("agent running")
    });
    let out = ws.lakelink(&["status", "--config", "{config}"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("an agent holds the lake and serves no status endpoint")
            && text.contains(&format!("lakelink pid {}", agent.child.id())),
        "{text}"
    );
    agent.stop_cleanly();
    let out = ws.lakelink(&["status", "--config", "{config}"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no agent is running"), "{text}");
}
