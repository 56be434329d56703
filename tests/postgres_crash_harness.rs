//! The crash harness against PostgreSQL: the real agent under a continuous random workload
//! on a real PostgreSQL server, killed with SIGKILL at random points (during the initial
//! copies, trickle batches between a peek and the slot's advance, snapshot publishing,
//! retention) and restarted. At the end every live file must hold every change exactly once
//! and in order, every kept manifest must be whole, and the snapshot must equal the source.
//!
//! Seeded like `crash_harness.rs`: `LAKELINK_CRASH_SEED` and `LAKELINK_CRASH_KILLS` (default
//! 30 here) set the run.

mod support;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::assert_manifests_whole;
use support::crash::{env_number, kill, start_agent};
use support::pg::*;
use support::workload::{CRM_TABLES, Expected, plain, tag_label};

#[test]
fn kill_nine_at_random_points_loses_and_doubles_nothing_from_postgres() {
    let seed = env_number("LAKELINK_CRASH_SEED", 20261124);
    let kills = env_number("LAKELINK_CRASH_KILLS", 30);
    println!("postgres crash harness: seed {seed}, {kills} kills");
    let mut rng = StdRng::seed_from_u64(seed);
    let ws = PgWorkspace::new(CRM_SCHEMA);
    ws.write_config(
        "snapshot_interval = \"250ms\"\nkeep_generations = 2\npoll_interval = \"10ms\"\nbatch_size = 300",
        CRM_TABLES,
    );

    // Phase 1: kills during the initial copies of tables that already hold rows.
    let (mut expected, next_id) = prefill(&mut ws.client(), &mut rng, 3000);
    let initial_kills = (kills / 5).max(1);
    for _ in 0..initial_kills {
        let mut agent = start_agent(&ws.config);
        std::thread::sleep(Duration::from_millis(rng.random_range(5..300)));
        kill(&mut agent);
    }
    // One run finishes the initial sync before the application writes, so that every later
    // change must appear as exactly one row.
    let mut agent = start_agent(&ws.config);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ws.lake.join("model.json").exists() {
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
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        let mut client = ws.client();
        let mut writer_rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        std::thread::spawn(move || {
            let mut expected = Expected::default();
            let mut next_id = next_id;
            while !stop.load(Ordering::Relaxed) {
                random_change(&mut client, &mut writer_rng, &mut next_id, &mut expected);
                std::thread::sleep(Duration::from_micros(writer_rng.random_range(0..400)));
            }
            expected
        })
    };
    let started = Instant::now();
    for _ in initial_kills..kills {
        let mut agent = start_agent(&ws.config);
        std::thread::sleep(Duration::from_millis(rng.random_range(20..400)));
        if let Some(status) = agent.try_wait().unwrap() {
            panic!("the agent exited with {status} on its own after a crash");
        }
        kill(&mut agent);
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("the writer thread");
    for (table, n) in written.live_rows {
        expected.add(table, n);
    }
    println!(
        "postgres crash harness: {kills} kills in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    ws.sync();
    assert_manifests_whole(&ws);
    assert_live_files_hold_every_change_once(&ws, "account", "accountid", plain, &expected);
    assert_live_files_hold_every_change_once(&ws, "contact", "contactid", plain, &expected);
    assert_live_files_hold_every_change_once(&ws, "tag", "label", tag_label, &expected);
    assert_lake_matches_source(&ws, "account", "accountid", plain);
    assert_lake_matches_source(&ws, "tag", "label", tag_label);
    let (_, contact_log) = ws.read("contact", None);
    assert_eq!(
        contact_log.len(),
        expected.live_rows["contact"],
        "the append-only snapshot is the whole log"
    );
    assert_eq!(ws.slots().len(), 1, "one slot, whatever the crashes");
}
