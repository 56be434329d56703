//! What a stopped table and a refused link look like from outside, for the tests of schema
//! changes and odd keys on any source: the `table "<name>" stopped:` line (in the agent's log
//! and in a failing `lakelink sync`), `lakelink status` showing `Stopped`, the other tables
//! flowing on, and a table's files in the lake recorded before and compared after, so that a
//! test can tell that nothing already delivered was touched. The two stories (a table stopped
//! while `lakelink run` runs, and one stopped between two syncs) are written once here and
//! told by the SQLite and the PostgreSQL tests.

use super::{RunningAgent, Source, Workspace, assert_lake_matches_source_by, wait_for};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How long a test waits for the agent to notice what the application did to a table.
pub const NOTICE_SECONDS: u64 = 30;

/// The marker every stop line carries.
fn marker(table: &str) -> String {
    format!("table \"{table}\" stopped:")
}

/// The first line of `log` saying that `table` stopped, if there is one.
pub fn stop_line(log: &str, table: &str) -> Option<String> {
    let marker = marker(table);
    log.lines()
        .find(|l| l.contains(&marker))
        .map(str::to_string)
}

/// Asserts that `log` (named `whose` in the failure) has a line saying that `table` stopped,
/// whose cause holds one of `causes` and which says to `relink`; returns that line.
pub fn assert_stop_line(log: &str, whose: &str, table: &str, causes: &[&str]) -> String {
    let expected = format!(
        "a line `table \"{table}\" stopped: <{}> ... relink`",
        causes.join(" or ")
    );
    let line = stop_line(log, table)
        .unwrap_or_else(|| panic!("{whose}: expected {expected}; there is none in:\n{log}"));
    let cause = &line[line.find(&marker(table)).unwrap_or(0)..];
    assert!(
        causes.iter().any(|c| cause.contains(c)) && cause.contains("relink"),
        "{whose}: expected {expected}; got: {line}"
    );
    line
}

/// Whether `line` names `name` as a word of its own (not as part of a longer identifier), in
/// whatever quotes.
pub fn names(line: &str, name: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(name).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + name.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// Asserts that `lakelink sync` on the workspace's config refuses it: it exits non-zero with
/// one line naming the table (`"<table>"`) and holding every one of `words`; returns the line.
pub fn assert_sync_refuses(ws: &Workspace, table: &str, words: &[&str]) -> String {
    let out = ws.lakelink(&["sync", "--config", "{config}"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "linking table {table:?} should be refused with a line naming \"{table}\" and {words:?}; lakelink sync succeeded: {}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    let line = stderr.trim().lines().last().unwrap_or_default().to_string();
    assert!(
        line.starts_with("lakelink: ")
            && line.contains(&format!("\"{table}\""))
            && words.iter().all(|w| line.contains(w)),
        "linking table {table:?} should be refused with one line naming \"{table}\" and {words:?}; got: {line}\n(whole stderr: {stderr})"
    );
    line
}

/// Asserts that `lakelink sync` fails with a line holding every one of `words`, whatever
/// else it says; returns that line.
pub fn assert_sync_fails_with(ws: &Workspace, words: &[&str]) -> String {
    let out = ws.lakelink(&["sync", "--config", "{config}"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "lakelink sync should fail with a line holding {words:?}; it succeeded: {}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
        .lines()
        .find(|l| words.iter().all(|w| l.contains(w)))
        .unwrap_or_else(|| {
            panic!("lakelink sync failed, but no line of its stderr holds {words:?}:\n{stderr}")
        })
        .to_string()
}

/// What the lake held for one table at one moment: every file of its folder (live files and
/// snapshot files) and its entity in model.json (attributes and partitions: what readers
/// read).
pub struct Delivered {
    table: String,
    files: BTreeMap<PathBuf, Vec<u8>>,
    entity: Option<Entity>,
}

/// What model.json tells readers about a table: its attributes (each as its JSON) and its
/// partitions (each as `name -> location`).
#[derive(Debug, PartialEq)]
struct Entity {
    attributes: Vec<String>,
    partitions: Vec<String>,
}

/// Every file under `dir`, by its path relative to `root`.
fn files_under(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(root, &path, out);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
        }
    }
}

impl Workspace {
    /// What the lake holds for `table` now.
    pub fn delivered(&self, table: &str) -> Delivered {
        let mut files = BTreeMap::new();
        files_under(&self.lake, &self.lake.join(table), &mut files);
        let entity = if self.lake.join("model.json").exists() {
            self.model().entity(table).map(|e| Entity {
                attributes: e
                    .attributes
                    .iter()
                    .map(|a| serde_json::to_string(a).unwrap())
                    .collect(),
                partitions: e
                    .partitions
                    .iter()
                    .map(|p| format!("{} -> {}", p.name, p.location))
                    .collect(),
            })
        } else {
            None
        };
        Delivered {
            table: table.to_string(),
            files,
            entity,
        }
    }

    /// Asserts that nothing the lake held for the table when `before` was taken was removed
    /// or rewritten: every snapshot file is byte for byte the same, every live file begins
    /// with the bytes it had, and model.json still names the same attributes and files.
    pub fn assert_delivered_untouched(&self, before: &Delivered) {
        let table = &before.table;
        let now = self.delivered(table);
        for (path, bytes) in &before.files {
            let after = now.files.get(path).unwrap_or_else(|| {
                panic!(
                    "{table}: {} was in the lake before the table stopped and is gone",
                    path.display()
                )
            });
            let snapshot = path.components().any(|c| c.as_os_str() == "Snapshot");
            if snapshot {
                assert!(
                    after == bytes,
                    "{table}: snapshot file {} was rewritten after the table stopped",
                    path.display()
                );
            } else {
                assert!(
                    after.starts_with(bytes),
                    "{table}: live file {} lost or changed rows it held before the table stopped",
                    path.display()
                );
            }
        }
        if let Some(entity) = &before.entity {
            assert_eq!(
                now.entity.as_ref(),
                Some(entity),
                "{table}: model.json should keep the table's entity (attributes and partitions) as it was before the table stopped"
            );
        }
    }

    /// What `lakelink status` printed, and the state it shows for `table` (the running
    /// agent's when there is one, else the checkpoint store's).
    pub fn status_of(&self, table: &str) -> (String, Option<String>) {
        let out = self.lakelink(&["status", "--config", "{config}"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "lakelink status failed: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let state = text.lines().find_map(|l| {
            let mut fields = l.split_whitespace();
            (fields.next() == Some(table)).then(|| fields.next().unwrap_or_default().to_string())
        });
        (text, state)
    }

    /// Asserts that `lakelink status` shows `table` in state `Stopped`.
    pub fn assert_status_stopped(&self, table: &str, when: &str) {
        let (text, state) = self.status_of(table);
        assert_eq!(
            state.as_deref(),
            Some("Stopped"),
            "{when}: lakelink status should show table {table:?} as Stopped; it printed:\n{text}"
        );
    }

    /// `lakelink sync` on a config with the stopped `table`: it must exit non-zero, with the
    /// table's stop line (one of `causes`, and `relink`) on stderr. Returns stderr.
    pub fn sync_with_stopped_table(&self, table: &str, causes: &[&str]) -> String {
        let out = self.lakelink(&["sync", "--config", "{config}"]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "lakelink sync should exit non-zero while table {table:?} is stopped ({}); it succeeded: {}{stderr}",
            causes.join(" or "),
            String::from_utf8_lossy(&out.stdout)
        );
        assert_stop_line(&stderr, "lakelink sync's stderr", table, causes);
        stderr
    }
}

/// Asserts that what `lakelink read` returns for `table` (keyed by its column `id`, the Id
/// as it is) equals the source.
fn assert_matches_source<S: Source>(ws: &S, table: &str) {
    assert_lake_matches_source_by(ws, table, "id", |id| id.to_string(), None);
}

/// The story of a table stopped by what the application does while `lakelink run` runs.
/// The config (written by the caller) links `table` and `other`, both keyed by a column
/// `id`. The agent starts and publishes; then `change` alters `table` in the source (it gets
/// the agent, to wait on it if it must). Then:
///
/// - the agent logs `table "<table>" stopped:` with one of `causes` and `relink`, and keeps
///   running;
/// - `lakelink status` shows the table `Stopped`, asking the agent, and after the agent has
///   stopped, from the checkpoint store;
/// - `other` keeps flowing: `write_other(n)` makes its n-th change, which reaches its live
///   files while the agent runs, and is published by the `lakelink sync` that follows, which
///   fails naming the stopped table;
/// - nothing the lake held for `table` before the change was removed or rewritten.
pub fn assert_stops_while_running<S: Source>(
    ws: &S,
    table: &str,
    causes: &[&str],
    other: &str,
    change: impl FnOnce(&RunningAgent),
    mut write_other: impl FnMut(i64),
) {
    let w = ws.workspace();
    let agent = RunningAgent::start(w);
    w.wait_for_publish(60);
    let before = w.delivered(table);
    change(&agent);
    wait_for(
        NOTICE_SECONDS,
        &format!(
            "the agent to log `table \"{table}\" stopped: <{}> ... relink` and keep running",
            causes.join(" or ")
        ),
        || stop_line(&agent.log(), table).is_some(),
    );
    assert_stop_line(&agent.log(), "the agent's log", table, causes);
    w.assert_status_stopped(table, "while the agent runs");
    let rows = w.live_row_count(other);
    write_other(1);
    wait_for(
        NOTICE_SECONDS,
        &format!("the other table {other:?} to keep flowing after {table:?} stopped"),
        || w.live_row_count(other) > rows,
    );
    agent.stop_cleanly();
    w.assert_status_stopped(table, "after the agent stopped");
    write_other(2);
    w.sync_with_stopped_table(table, causes);
    assert_matches_source(ws, other);
    w.assert_delivered_untouched(&before);
}

/// The story of a table stopped by what the application did between two syncs. The config
/// (written by the caller) links `table` and `other`, both keyed by a column `id`. A sync
/// publishes; `change` alters `table`; `write_other(n)` makes the n-th change to `other`.
/// Then every `lakelink sync` exits non-zero with the table's stop line (one of `causes`,
/// and `relink`) and still publishes `other`; `lakelink status` shows the table `Stopped`;
/// nothing the lake held for `table` before the change was removed or rewritten.
pub fn assert_stops_at_sync<S: Source>(
    ws: &S,
    table: &str,
    causes: &[&str],
    other: &str,
    change: impl FnOnce(),
    mut write_other: impl FnMut(i64),
) {
    let w = ws.workspace();
    w.sync();
    let before = w.delivered(table);
    change();
    write_other(1);
    w.sync_with_stopped_table(table, causes);
    assert_matches_source(ws, other);
    w.assert_status_stopped(table, "after the sync that stopped it");
    // It stays stopped until it is relinked; the other table goes on.
    write_other(2);
    w.sync_with_stopped_table(table, causes);
    assert_matches_source(ws, other);
    w.assert_delivered_untouched(&before);
}

/// Relinks a table the way the stop line says: the config without it (`without`), a sync,
/// the config with it again (`with`), a sync; both syncs must succeed.
pub fn relink<S: Source>(ws: &S, engine: &str, without: &str, with: &str) {
    ws.write_config(engine, without);
    ws.workspace().sync();
    ws.write_config(engine, with);
    ws.workspace().sync();
}

/// `[[table]]` sections linking `names` with the default options.
pub fn tables(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("[[table]]\nname = \"{n}\"\n"))
        .collect::<Vec<_>>()
        .join("\n")
}
