//! The crash harness: the real agent under a continuous random workload, killed with SIGKILL
//! at random points (during initial sync, trickle batches, snapshot publishing, retention,
//! checkpointing) and restarted, many times. At the end every live file must hold every change
//! exactly once and in order, every kept manifest must be whole and name only whole files,
//! and the snapshot must equal the source.
//!
//! Seeded, so a failure replays: `LAKELINK_CRASH_SEED` (printed on every run) and
//! `LAKELINK_CRASH_KILLS` (default 50) set the run, e.g.
//! `LAKELINK_CRASH_KILLS=200 LAKELINK_CRASH_SEED=7 cargo test --test crash_harness -- --nocapture`.

mod support;

use lakelink_model::lake_path::LakePath;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::time::{Duration, Instant};
use support::crash::{env_number, kill, start_agent};
use support::workload::*;
use support::*;

#[test]
fn kill_nine_at_random_points_loses_and_doubles_nothing() {
    let ws = Workspace::new(CRM_SCHEMA);
    kill_nine_at_random_points(&ws, env_number("LAKELINK_CRASH_KILLS", 50));
}

/// The same on an ADLS lake on Azurite, with fewer kills by default (each restart pays for
/// HTTP round trips): `LAKELINK_CRASH_KILLS_ADLS` sets them.
#[test]
#[cfg(feature = "adls")]
fn kill_nine_at_random_points_of_an_adls_lake_loses_and_doubles_nothing() {
    let azurite = support::azurite::Azurite::start();
    let mut ws = Workspace::new(CRM_SCHEMA);
    support::azurite::use_azurite(&mut ws, &azurite);
    // Splits every 3 batches, so that kills also land around a live file's split.
    if let Some(section) = ws.lake_section.as_mut() {
        section.push_str("split_after_batches = 3\n");
    }
    kill_nine_at_random_points(&ws, env_number("LAKELINK_CRASH_KILLS_ADLS", 25));
    let lake = ws.open_lake();
    let split = ["account", "contact", "tag"].iter().any(|table| {
        lake.list(&LakePath::from_raw(*table))
            .unwrap()
            .iter()
            .any(|e| lake.size(&e.path).unwrap().is_some() && lake.parts(&e.path).len() > 1)
    });
    assert!(
        split,
        "no live file was split: the run did not cover splits"
    );
}

fn kill_nine_at_random_points(ws: &Workspace, kills: u64) {
    let seed = env_number("LAKELINK_CRASH_SEED", 20261122);
    println!("crash harness: seed {seed}, {kills} kills");
    let mut rng = StdRng::seed_from_u64(seed);
    ws.write_config(
        "snapshot_interval = \"250ms\"\nkeep_generations = 2\npoll_interval = \"10ms\"\nbatch_size = 300",
        CRM_TABLES,
    );

    // Phase 1: kills during the initial sync of tables that already hold rows.
    let conn = ws.source();
    let (mut expected, next_id) = prefill(&conn, &mut rng, 6000);
    let initial_kills = (kills / 5).max(1);
    for _ in 0..initial_kills {
        let mut agent = start_agent(&ws.config);
        std::thread::sleep(Duration::from_millis(rng.random_range(5..120)));
        kill(&mut agent);
    }
    // Let one run finish the initial sync before the application starts writing, so that
    // every later change is captured and must appear as exactly one row.
    let mut agent = start_agent(&ws.config);
    let deadline = Instant::now() + Duration::from_secs(120);
    let lake = ws.open_lake();
    while lake.size(&LakePath::model()).unwrap().is_none() {
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
    let writer = BackgroundWriter::start(ws.db.clone(), seed ^ 0x5eed, next_id, |rng| {
        Duration::from_micros(rng.random_range(0..400))
    });
    let started = Instant::now();
    for _ in initial_kills..kills {
        let mut agent = start_agent(&ws.config);
        std::thread::sleep(Duration::from_millis(rng.random_range(20..400)));
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
        "crash harness: {kills} kills in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // A last pass catches up and publishes; then the lake must be exact.
    ws.sync();
    assert_manifests_whole(ws);
    assert_live_files_hold_every_change_once(ws, "account", "accountid", plain, &expected);
    assert_live_files_hold_every_change_once(ws, "contact", "contactid", plain, &expected);
    assert_live_files_hold_every_change_once(ws, "tag", "label", tag_label, &expected);
    assert_lake_matches_source_by(ws, "account", "accountid", plain, None);
    assert_lake_matches_source_by(ws, "tag", "label", tag_label, None);
    let (_, contact_log) = ws.read("contact", None);
    assert_eq!(
        contact_log.len(),
        expected.live_rows["contact"],
        "the append-only snapshot is the whole log"
    );
}
