//! Fault injection at named points of the lake, with the real local lake underneath, a real
//! SQLite source and the engine in-process: every recovery path of a failed write runs
//! deterministically, not by luck.

mod support;

use lakelink_connectors::lake::local::LocalLake;
use lakelink_engine::agent::{self, Signals};
use lakelink_engine::config::Config;
use lakelink_engine::error::EngineError;
use lakelink_engine::pipeline::Pipeline;
use lakelink_model::lake::{Lake, LakeEntry, LakeError, NewFile, WriterLock};
use lakelink_model::lake_path::LakePath;
use rusqlite::params;
use std::io::{self, BufRead};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// The lake operations a fault can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Append,
    Create,
    Replace,
}

/// One injected fault: the `skip + 1`-th to `skip + times`-th matching operations (on a path
/// that contains `path_contains`, or is exactly what follows a leading `=`) fail with `kind`. With `after_effect`, the operation is carried out before the failure is reported,
/// as when a process dies right after a write it could not acknowledge.
#[derive(Debug, Clone)]
struct Fault {
    op: Op,
    path_contains: &'static str,
    skip: u32,
    times: u32,
    kind: io::ErrorKind,
    after_effect: bool,
}

#[derive(Default)]
struct Plan {
    faults: Vec<(Fault, u32)>,
    injected: u32,
}

/// A fault-injecting wrapper (a test double named as such) around the real [`LocalLake`].
struct FaultyLake {
    inner: LocalLake,
    plan: Arc<Mutex<Plan>>,
}

impl FaultyLake {
    fn check(&self, op: Op, path: &LakePath) -> Option<(io::ErrorKind, bool)> {
        let mut plan = self.plan.lock().unwrap();
        let mut hit = None;
        for (fault, seen) in plan.faults.iter_mut() {
            let matches = match fault.path_contains.strip_prefix('=') {
                Some(exact) => path.as_str() == exact,
                None => path.as_str().contains(fault.path_contains),
            };
            if fault.op == op && matches {
                *seen += 1;
                if *seen > fault.skip && *seen <= fault.skip + fault.times {
                    hit = Some((fault.kind, fault.after_effect));
                    break;
                }
            }
        }
        if hit.is_some() {
            plan.injected += 1;
        }
        hit
    }

    fn fail<T>(&self, op: Op, path: &LakePath, kind: io::ErrorKind) -> Result<T, LakeError> {
        Err(LakeError::io(
            match op {
                Op::Append => "append to",
                Op::Create => "create",
                Op::Replace => "replace",
            },
            path,
            io::Error::new(kind, "injected fault"),
        ))
    }
}

struct FailingNewFile {
    inner: Box<dyn NewFile>,
    fail: Option<io::ErrorKind>,
    path: LakePath,
}

impl io::Write for FailingNewFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl NewFile for FailingNewFile {
    fn commit(self: Box<Self>) -> Result<(), LakeError> {
        match self.fail {
            Some(kind) => Err(LakeError::io(
                "commit",
                &self.path,
                io::Error::new(kind, "injected fault"),
            )),
            None => self.inner.commit(),
        }
    }
}

impl Lake for FaultyLake {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn location(&self, path: &LakePath) -> String {
        self.inner.location(path)
    }
    fn path_of_location(&self, location: &str) -> Option<LakePath> {
        self.inner.path_of_location(location)
    }
    fn size(&self, path: &LakePath) -> Result<Option<u64>, LakeError> {
        self.inner.size(path)
    }
    fn append(&self, path: &LakePath, expected_len: u64, data: &[u8]) -> Result<u64, LakeError> {
        match self.check(Op::Append, path) {
            Some((kind, true)) => {
                self.inner.append(path, expected_len, data)?;
                self.fail(Op::Append, path, kind)
            }
            Some((kind, false)) => self.fail(Op::Append, path, kind),
            None => self.inner.append(path, expected_len, data),
        }
    }
    fn discard_tail(&self, path: &LakePath, len: u64) -> Result<(), LakeError> {
        self.inner.discard_tail(path, len)
    }
    fn read(
        &self,
        path: &LakePath,
        start: u64,
        end: Option<u64>,
    ) -> Result<Box<dyn BufRead + Send>, LakeError> {
        self.inner.read(path, start, end)
    }
    fn create(&self, path: &LakePath) -> Result<Box<dyn NewFile>, LakeError> {
        let fail = self.check(Op::Create, path).map(|(kind, _)| kind);
        Ok(Box::new(FailingNewFile {
            inner: self.inner.create(path)?,
            fail,
            path: path.clone(),
        }))
    }
    fn replace(&self, path: &LakePath, data: &[u8]) -> Result<(), LakeError> {
        match self.check(Op::Replace, path) {
            Some((kind, true)) => {
                self.inner.replace(path, data)?;
                self.fail(Op::Replace, path, kind)
            }
            Some((kind, false)) => self.fail(Op::Replace, path, kind),
            None => self.inner.replace(path, data),
        }
    }
    fn list(&self, dir: &LakePath) -> Result<Vec<LakeEntry>, LakeError> {
        self.inner.list(dir)
    }
    fn delete(&self, path: &LakePath) -> Result<(), LakeError> {
        self.inner.delete(path)
    }
    fn remove_abandoned(&self, dir: &LakePath) -> Result<usize, LakeError> {
        self.inner.remove_abandoned(dir)
    }
    fn lock_writer(&self, holder: &str) -> Result<Box<dyn WriterLock>, LakeError> {
        self.inner.lock_writer(holder)
    }
    fn writer_holder(&self) -> Result<Option<String>, LakeError> {
        self.inner.writer_holder()
    }
}

const SCHEMA: &str = "CREATE TABLE event (id INTEGER PRIMARY KEY, what TEXT, createdon DATETIME);";
const TABLES: &str = "[[table]]\nname = \"event\"\n";

fn setup(extra: &str) -> (Workspace, Config, Arc<Mutex<Plan>>) {
    let ws = Workspace::new(SCHEMA);
    ws.write_config(extra, TABLES);
    let config = Config::load(&ws.config).unwrap();
    (ws, config, Arc::new(Mutex::new(Plan::default())))
}

fn open(ws: &Workspace, config: &Config, plan: &Arc<Mutex<Plan>>) -> Pipeline {
    let lake = FaultyLake {
        inner: LocalLake::open(&ws.lake, None).unwrap(),
        plan: Arc::clone(plan),
    };
    Pipeline::open_with_lake(
        config.clone(),
        Box::new(lake),
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap()
}

fn inject(plan: &Arc<Mutex<Plan>>, fault: Fault) {
    plan.lock().unwrap().faults.push((fault, 0));
}

/// Inserts `n` events spread over four years; returns how many live rows they make.
fn insert_events(ws: &Workspace, from: i64, n: i64) -> usize {
    let conn = ws.source();
    for id in from..from + n {
        conn.execute(
            "INSERT INTO event VALUES (?1, ?2, ?3)",
            params![
                id,
                format!("event {id}"),
                format!("{}-06-01 12:00:00", 2021 + id % 4)
            ],
        )
        .unwrap();
    }
    n as usize
}

#[test]
fn a_batch_that_fails_halfway_is_read_again_without_doubling_what_reached_the_lake() {
    let (ws, config, plan) = setup("");
    let mut pipeline = open(&ws, &config, &plan);
    pipeline.reconcile().unwrap();
    let expected = insert_events(&ws, 0, 40);
    // The batch touches four live files; the second append fails after the first is durable.
    inject(
        &plan,
        Fault {
            op: Op::Append,
            path_contains: ".csv",
            skip: 1,
            times: 1,
            kind: io::ErrorKind::StorageFull,
            after_effect: false,
        },
    );
    let err = pipeline.trickle_once().unwrap_err();
    assert!(err.is_transient(), "a full disk is worth retrying: {err}");
    assert!(
        ws.live_row_count("event") > 0 && ws.live_row_count("event") < expected,
        "the failure came halfway"
    );
    pipeline.trickle_once().unwrap();
    assert_eq!(ws.live_row_count("event"), expected, "every change once");
    pipeline.snapshot().unwrap();
    drop(pipeline);
    assert_lake_matches_source(&ws, "event", "id", None);
}

#[test]
fn an_append_that_reached_the_lake_but_was_not_acknowledged_is_not_written_twice() {
    let (ws, config, plan) = setup("");
    let mut pipeline = open(&ws, &config, &plan);
    pipeline.reconcile().unwrap();
    let expected = insert_events(&ws, 0, 12);
    inject(
        &plan,
        Fault {
            op: Op::Append,
            path_contains: ".csv",
            skip: 0,
            times: 1,
            kind: io::ErrorKind::TimedOut,
            after_effect: true,
        },
    );
    assert!(pipeline.trickle_once().is_err());
    // As after a crash: a new agent finds rows the checkpoint does not count.
    drop(pipeline);
    let mut pipeline = open(&ws, &config, &plan);
    pipeline.trickle_once().unwrap();
    pipeline.snapshot().unwrap();
    drop(pipeline);
    assert_eq!(ws.live_row_count("event"), expected);
    assert_lake_matches_source(&ws, "event", "id", None);
}

#[test]
fn a_crash_right_after_model_json_is_replaced_is_rolled_forward() {
    let (ws, config, plan) = setup("");
    let mut pipeline = open(&ws, &config, &plan);
    pipeline.reconcile().unwrap();
    insert_events(&ws, 0, 10);
    inject(
        &plan,
        Fault {
            op: Op::Replace,
            path_contains: "=model.json",
            skip: 0,
            times: 1,
            kind: io::ErrorKind::Interrupted,
            after_effect: true,
        },
    );
    assert!(pipeline.snapshot().is_err());
    assert_eq!(
        ws.model().generation,
        1,
        "model.json was replaced before the failure"
    );
    drop(pipeline);
    let mut pipeline = open(&ws, &config, &plan);
    assert!(
        pipeline.snapshot().unwrap().is_none(),
        "generation 1 was recorded on start; nothing new to publish"
    );
    drop(pipeline);
    assert_lake_matches_source(&ws, "event", "id", None);
}

#[test]
fn a_failure_before_model_json_is_replaced_leaves_the_old_manifest_and_is_retaken() {
    let (ws, config, plan) = setup("");
    let mut pipeline = open(&ws, &config, &plan);
    pipeline.reconcile().unwrap();
    insert_events(&ws, 0, 10);
    pipeline.snapshot().unwrap();
    let before = std::fs::read(ws.lake.join("model.json")).unwrap();
    insert_events(&ws, 10, 10);
    inject(
        &plan,
        Fault {
            op: Op::Create,
            path_contains: "Snapshot",
            skip: 1,
            times: 1,
            kind: io::ErrorKind::PermissionDenied,
            after_effect: false,
        },
    );
    assert!(pipeline.snapshot().is_err());
    assert_eq!(
        std::fs::read(ws.lake.join("model.json")).unwrap(),
        before,
        "readers still see generation 1"
    );
    drop(pipeline);
    let mut pipeline = open(&ws, &config, &plan);
    let published = pipeline
        .snapshot()
        .unwrap()
        .expect("the snapshot is retaken");
    assert_eq!(published.generation, 2);
    drop(pipeline);
    assert_lake_matches_source(&ws, "event", "id", None);
    let snapshot_files = std::fs::read_dir(ws.lake.join("event/Snapshot"))
        .unwrap()
        .count();
    assert_eq!(
        snapshot_files, 8,
        "four partitions at generations 1 and 2, nothing left over"
    );
}

#[test]
fn a_full_disk_pauses_the_agent_which_resumes_by_itself_when_space_returns() {
    let (ws, config, plan) = setup("poll_interval = \"10ms\"");
    let signals = Arc::new(Signals::manual());
    inject(
        &plan,
        Fault {
            op: Op::Append,
            path_contains: ".csv",
            skip: 0,
            times: u32::MAX,
            kind: io::ErrorKind::StorageFull,
            after_effect: false,
        },
    );
    let agent = {
        let (signals, plan, lake_dir) = (Arc::clone(&signals), Arc::clone(&plan), ws.lake.clone());
        std::thread::spawn(move || {
            let open_lake = || -> Result<Box<dyn Lake>, EngineError> {
                Ok(Box::new(FaultyLake {
                    inner: LocalLake::open(&lake_dir, None)?,
                    plan: Arc::clone(&plan),
                }))
            };
            agent::run_with_lake(config, &signals, &open_lake)
        })
    };
    let expected = insert_events(&ws, 0, 30);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        ws.live_row_count("event"),
        0,
        "nothing can be written while the disk is full"
    );
    assert!(
        plan.lock().unwrap().injected >= 2,
        "the agent kept retrying"
    );
    plan.lock().unwrap().faults.clear();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ws.live_row_count("event") < expected {
        assert!(
            Instant::now() < deadline,
            "the agent did not resume within 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    signals.stop.store(true, Ordering::Relaxed);
    agent.join().unwrap().expect("the agent stops cleanly");
    assert_eq!(ws.live_row_count("event"), expected, "every change once");
    ws.sync();
    assert_lake_matches_source(&ws, "event", "id", None);
}

#[test]
fn a_row_cut_short_by_a_crash_is_removed_before_anything_else_is_written() {
    let (ws, config, plan) = setup("");
    let mut pipeline = open(&ws, &config, &plan);
    pipeline.reconcile().unwrap();
    let expected = insert_events(&ws, 0, 8) + insert_events(&ws, 8, 8);
    pipeline.trickle_once().unwrap();
    drop(pipeline);
    // A write the crash interrupted: part of a row, after the last checkpointed batch.
    let live = ws.lake.join("event/2021.csv");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&live)
        .unwrap();
    std::io::Write::write_all(
        &mut file,
        b"99,\"2026-01-01T00:00:00.0000000Z\",\"half a ro",
    )
    .unwrap();
    drop(file);
    let mut pipeline = open(&ws, &config, &plan);
    insert_events(&ws, 16, 4);
    pipeline.trickle_once().unwrap();
    pipeline.snapshot().unwrap();
    drop(pipeline);
    assert_eq!(
        ws.live_row_count("event"),
        expected + 4,
        "the torn row is gone and nothing else changed"
    );
    assert_lake_matches_source(&ws, "event", "id", None);
}

#[test]
fn an_initial_copy_that_failed_halfway_starts_over_without_doubling() {
    let (ws, config, plan) = setup("");
    let expected = insert_events(&ws, 0, 40);
    // The copy's rows reach the lake, but the process dies before the copy is recorded complete.
    inject(
        &plan,
        Fault {
            op: Op::Append,
            path_contains: ".csv",
            skip: 1,
            times: 1,
            kind: io::ErrorKind::Interrupted,
            after_effect: true,
        },
    );
    let mut pipeline = open(&ws, &config, &plan);
    assert!(pipeline.reconcile().is_err());
    assert!(
        ws.live_row_count("event") > 0,
        "part of the copy reached the lake"
    );
    drop(pipeline);
    let mut pipeline = open(&ws, &config, &plan);
    pipeline.reconcile().unwrap();
    pipeline.snapshot().unwrap();
    drop(pipeline);
    assert_eq!(
        ws.live_row_count("event"),
        expected,
        "the copy was taken again from the start, once"
    );
    assert_lake_matches_source(&ws, "event", "id", None);
    assert_eq!(
        ws.model()
            .entity("event")
            .unwrap()
            .annotation("Athena:InitialSyncState"),
        Some("Completed")
    );
}

#[test]
fn a_reload_that_fails_after_a_retried_failure_takes_back_every_table_it_brought_in() {
    let (ws, config, plan) = setup("");
    ws.source()
        .execute_batch(
            "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT); INSERT INTO a VALUES (1, 'a');
             CREATE TABLE b (id INTEGER PRIMARY KEY, y TEXT); INSERT INTO b VALUES (1, 'b');
             CREATE TABLE item (code TEXT PRIMARY KEY, v);
             INSERT INTO item VALUES (NULL, 'first'), (NULL, 'second');",
        )
        .unwrap();
    let mut pipeline = open(&ws, &config, &plan);
    pipeline.reconcile().unwrap();
    // The edit removes event and adds a, b and item. b's copy meets a full disk once, so the
    // agent applies the edit again; a is linked by then, and item's copy finds two NULL keys.
    ws.write_config(
        "",
        "[[table]]\nname = \"a\"\n\n[[table]]\nname = \"b\"\n\n[[table]]\nname = \"item\"\n",
    );
    let edited = Config::load(&ws.config).unwrap();
    inject(
        &plan,
        Fault {
            op: Op::Append,
            path_contains: "b/",
            skip: 0,
            times: 1,
            kind: io::ErrorKind::StorageFull,
            after_effect: false,
        },
    );
    let first = pipeline.apply_config(edited.clone()).unwrap_err();
    assert!(first.is_transient(), "{first}");
    let second = pipeline.apply_config(edited).unwrap_err();
    assert!(
        !second.is_transient() && second.to_string().contains("NULL"),
        "{second}"
    );
    // Nothing of the edit stays: event is still linked and flowing; a, b and item are not
    // linked, and none of them keeps capture triggers.
    let configured: Vec<&str> = pipeline
        .config()
        .tables
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(configured, ["event"]);
    let triggers: i64 = ws
        .source()
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name IN ('a', 'b', 'item')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(triggers, 0, "the edit's capture was taken back");
    let expected = insert_events(&ws, 0, 5);
    pipeline.trickle_once().unwrap();
    pipeline.snapshot().unwrap();
    let entities: Vec<String> = ws.model().entities.into_iter().map(|e| e.name).collect();
    assert_eq!(entities, ["event"]);
    assert_eq!(ws.live_row_count("event"), expected);
    assert!(
        !ws.lake.join("a").join("1.csv").exists(),
        "a's copy was removed"
    );
}

/// Two tables in a lake of format `delta`: `event` in place, `note` append-only.
fn setup_delta() -> (Workspace, Config, Arc<Mutex<Plan>>) {
    let mut ws = Workspace::new(
        "CREATE TABLE event (id INTEGER PRIMARY KEY, what TEXT, createdon DATETIME);
         CREATE TABLE note (id INTEGER PRIMARY KEY, what TEXT);",
    );
    ws.lake_section = Some(support::delta::DELTA_LAKE.to_string());
    ws.write_config(
        "",
        "[[table]]\nname = \"event\"\npartition_by = \"createdon\"\n\n[[table]]\nname = \"note\"\nmode = \"append_only\"\n",
    );
    let config = Config::load(&ws.config).unwrap();
    (ws, config, Arc::new(Mutex::new(Plan::default())))
}

/// Changes both tables: inserts, updates and deletes.
fn change_both(ws: &Workspace, from: i64) {
    insert_events(ws, from, 20);
    let conn = ws.source();
    for id in from..from + 20 {
        conn.execute("INSERT INTO note VALUES (?1, ?2)", params![id, "new"])
            .unwrap();
    }
    conn.execute_batch(&format!(
        "UPDATE event SET what = 'changed' WHERE id % 3 = 0 AND id < {from};
         DELETE FROM event WHERE id % 7 = 0;
         UPDATE note SET what = 'changed' WHERE id % 2 = 0;
         DELETE FROM note WHERE id % 5 = 0;"
    ))
    .unwrap();
}

/// Asserts that `note`'s Delta table holds each row of its live files once, and that `event`'s
/// holds the source.
fn assert_delta_exactly_once(ws: &Workspace) {
    let live: usize = ws.live_files("note").values().map(Vec::len).sum();
    for reader in support::delta::READERS {
        let note = support::delta::read_delta(ws, "note", reader, None);
        assert_eq!(
            note.rows.len(),
            live,
            "{reader}: note holds every change once"
        );
        let mut changes: Vec<(i64, i64, bool)> = note
            .rows
            .iter()
            .map(|r| {
                (
                    r["Id"].as_i64().unwrap(),
                    r["versionnumber"].as_i64().unwrap(),
                    r["IsDelete"] == serde_json::json!(true),
                )
            })
            .collect();
        changes.sort();
        changes.dedup();
        assert_eq!(changes.len(), live, "{reader}: no change twice");
        let event = support::delta::read_delta(ws, "event", reader, None);
        let expected = support::delta::expected_rows(&ws.source(), "event", "id", &[]);
        support::delta::assert_delta_matches(reader, &event, &expected);
    }
}

#[test]
fn a_delta_generation_cut_short_after_its_tables_committed_is_taken_again_writing_nothing_twice() {
    let (ws, config, plan) = setup_delta();
    let mut pipeline = open(&ws, &config, &plan);
    pipeline.reconcile().unwrap();
    change_both(&ws, 0);
    pipeline.trickle_once().unwrap();
    assert_eq!(pipeline.snapshot().unwrap().unwrap().generation, 1);
    change_both(&ws, 100);
    pipeline.trickle_once().unwrap();
    // Both tables commit generation 2; its record, the commit point, fails.
    inject(
        &plan,
        Fault {
            op: Op::Create,
            path_contains: "_lakelink/delta/generation-T2",
            skip: 0,
            times: 1,
            kind: io::ErrorKind::PermissionDenied,
            after_effect: false,
        },
    );
    assert!(pipeline.snapshot().is_err());
    assert!(
        ws.lake
            .join("deltalake/note/_delta_log/00000000000000000001.json")
            .exists()
    );
    drop(pipeline);
    // As after a crash: generation 2 is not recorded, so it is taken again as 3 from each
    // table's log.
    let mut pipeline = open(&ws, &config, &plan);
    assert_eq!(pipeline.snapshot().unwrap().unwrap().generation, 3);
    drop(pipeline);
    assert!(!ws.lake.join("_lakelink/delta/generation-T2.json").exists());
    assert_delta_exactly_once(&ws);
}

#[test]
fn a_delta_generation_cut_short_between_two_tables_commits_is_taken_again_writing_nothing_twice() {
    let (ws, config, plan) = setup_delta();
    let mut pipeline = open(&ws, &config, &plan);
    pipeline.reconcile().unwrap();
    change_both(&ws, 0);
    pipeline.trickle_once().unwrap();
    pipeline.snapshot().unwrap().unwrap();
    change_both(&ws, 100);
    pipeline.trickle_once().unwrap();
    // `event` commits generation 2; `note`'s commit fails.
    inject(
        &plan,
        Fault {
            op: Op::Create,
            path_contains: "deltalake/note/_delta_log/",
            skip: 0,
            times: 1,
            kind: io::ErrorKind::TimedOut,
            after_effect: false,
        },
    );
    assert!(pipeline.snapshot().is_err());
    assert!(
        ws.lake
            .join("deltalake/event/_delta_log/00000000000000000001.json")
            .exists()
    );
    assert!(
        !ws.lake
            .join("deltalake/note/_delta_log/00000000000000000001.json")
            .exists()
    );
    // The agent retries in the same process, then a third generation follows.
    let published = pipeline.snapshot().unwrap().unwrap();
    assert_eq!(published.generation, 3);
    change_both(&ws, 200);
    pipeline.trickle_once().unwrap();
    assert_eq!(pipeline.snapshot().unwrap().unwrap().generation, 4);
    drop(pipeline);
    assert_delta_exactly_once(&ws);
    let note = support::delta::read_delta(&ws, "note", "deltalake", None);
    assert_eq!(note.description["txn"], serde_json::json!(4));
}
