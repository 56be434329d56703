//! The crash harness, written once for every source: the real agent under a continuous
//! random workload, killed with SIGKILL at random points and restarted many times, then the
//! checks that the lake lost and doubled nothing. `tests/crash_harness.rs` runs it on SQLite
//! (local and ADLS lakes), `tests/postgres_crash_harness.rs` on PostgreSQL.

use super::crash::{env_number, kill, start_agent};
use super::workload::{
    BackgroundWriter, CRM_TABLES, assert_live_files_hold_every_change_once, plain, prefill,
    tag_label,
};
use super::{Source, assert_lake_matches_source_by, assert_manifests_whole};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::ops::Range;
use std::time::{Duration, Instant};

/// How one harness runs: what differs between sources is how long a restart takes, so the
/// kill count, the prefill and the first kills' timing are set per source.
pub struct CrashRun {
    /// Names the run in its output.
    pub name: &'static str,
    /// The seed when `LAKELINK_CRASH_SEED` is not set.
    pub seed: u64,
    /// How many kills: the number in `kills_setting` from the environment, or `kills`.
    pub kills_setting: &'static str,
    pub kills: u64,
    /// Random changes made before the tables are linked, for the initial copies to carry.
    pub prefill: usize,
    /// How long each agent runs before a kill during the initial sync, in milliseconds.
    pub initial_run_ms: Range<u64>,
    /// How long each agent runs before a kill while the application writes, in milliseconds.
    pub run_ms: Range<u64>,
    /// The application's pause between two changes, in microseconds.
    pub write_gap_us: Range<u64>,
}

/// Runs the harness on `ws`, whose CRM schema is in place: kills during the initial sync of
/// tables that already hold rows, then kills while the application writes all along. At the
/// end every live file holds every change exactly once and in order, every kept manifest (or,
/// in a lake of format `delta`, every committed Delta version) is whole and names only whole
/// files, and the snapshot equals the source.
pub fn kill_nine_at_random_points(ws: &impl Source, run: &CrashRun) {
    let name = run.name;
    let seed = env_number("LAKELINK_CRASH_SEED", run.seed);
    let kills = env_number(run.kills_setting, run.kills);
    println!("{name}: seed {seed}, {kills} kills");
    let mut rng = StdRng::seed_from_u64(seed);
    let workspace = ws.workspace();
    ws.write_config(
        "snapshot_interval = \"250ms\"\nkeep_generations = 2\nreader_grace = \"0s\"\npoll_interval = \"10ms\"\nbatch_size = 300",
        CRM_TABLES,
    );

    // Phase 1: kills during the initial sync of tables that already hold rows.
    let (mut expected, next_id) = prefill(&mut ws.application(), &mut rng, run.prefill);
    let initial_kills = (kills / 5).max(1);
    for _ in 0..initial_kills {
        let mut agent = start_agent(&workspace.config);
        std::thread::sleep(Duration::from_millis(
            rng.random_range(run.initial_run_ms.clone()),
        ));
        kill(&mut agent);
    }
    // Let one run finish the initial sync before the application starts writing, so that
    // every later change is captured and must appear as exactly one row.
    let mut agent = start_agent(&workspace.config);
    let deadline = Instant::now() + Duration::from_secs(120);
    let lake = workspace.open_lake();
    while !workspace.has_published(lake.as_ref()) {
        assert!(
            Instant::now() < deadline,
            "the initial sync did not complete in 120 s"
        );
        if let Some(status) = agent.try_wait().unwrap() {
            panic!("the agent exited with {status} during the initial sync");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    kill(&mut agent);

    // Phase 2: the application writes all along; the agent is killed and restarted.
    let gap = run.write_gap_us.clone();
    let writer = BackgroundWriter::start(ws.application(), seed ^ 0x5eed, next_id, move |rng| {
        Duration::from_micros(rng.random_range(gap.clone()))
    });
    let started = Instant::now();
    for _ in initial_kills..kills {
        let mut agent = start_agent(&workspace.config);
        std::thread::sleep(Duration::from_millis(rng.random_range(run.run_ms.clone())));
        if let Some(status) = agent.try_wait().unwrap() {
            panic!("the agent exited with {status} on its own after a crash");
        }
        kill(&mut agent);
    }
    let written = writer.finish();
    for (table, n) in written.live_rows {
        expected.add(table, n);
    }
    println!(
        "{name}: {kills} kills in {:.1} s, {} tables truncated meanwhile",
        started.elapsed().as_secs_f64(),
        written.truncates
    );

    // A last pass catches up and publishes; then the lake must be exact.
    workspace.sync();
    if workspace.is_delta() {
        for table in ["account", "contact", "tag"] {
            super::delta::assert_delta_table_whole(workspace, table);
        }
    } else {
        assert_manifests_whole(workspace);
    }
    assert_live_files_hold_every_change_once(ws, "account", "accountid", plain, &expected);
    assert_live_files_hold_every_change_once(ws, "contact", "contactid", plain, &expected);
    assert_live_files_hold_every_change_once(ws, "tag", "label", tag_label, &expected);
    assert_lake_matches_source_by(ws, "account", "accountid", plain, None);
    assert_lake_matches_source_by(ws, "tag", "label", tag_label, None);
    let (_, contact_log) = workspace.read("contact", None);
    assert_eq!(
        contact_log.len(),
        expected.live_rows["contact"],
        "the append-only snapshot is the whole log"
    );
}
