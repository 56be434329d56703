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

use lakelink_model::lake_path::{LakePath, TableName};
use support::Workspace;
use support::crash_harness::{CrashRun, kill_nine_at_random_points};
use support::workload::CRM_SCHEMA;

/// The SQLite runs: a larger prefill than PostgreSQL's, and shorter runs before the kills
/// during the initial sync.
fn sqlite_run(kills_setting: &'static str, kills: u64) -> CrashRun {
    CrashRun {
        name: "crash harness",
        seed: 20261122,
        kills_setting,
        kills,
        prefill: 6000,
        initial_run_ms: 5..120,
        run_ms: 20..400,
        write_gap_us: 0..400,
    }
}

/// The Delta runs: longer runs before each kill, and an application that writes at a pace the
/// agent catches up with between two snapshots, so that enough generations are published
/// between the kills for checkpoints and retention to come round, and kills land in them.
fn delta_run(kills_setting: &'static str, kills: u64) -> CrashRun {
    CrashRun {
        run_ms: 20..3000,
        write_gap_us: 0..4000,
        ..sqlite_run(kills_setting, kills)
    }
}

#[test]
fn kill_nine_at_random_points_loses_and_doubles_nothing() {
    let ws = Workspace::new(CRM_SCHEMA);
    kill_nine_at_random_points(&ws, &sqlite_run("LAKELINK_CRASH_KILLS", 50));
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
    kill_nine_at_random_points(&ws, &sqlite_run("LAKELINK_CRASH_KILLS_ADLS", 25));
    let lake = ws.open_lake();
    let split = ["account", "contact", "tag"].iter().any(|table| {
        let table = TableName::new(table).unwrap();
        lake.list(&LakePath::table_dir(&table))
            .unwrap()
            .iter()
            .filter_map(|e| e.path.as_live_file(&table))
            .any(|(_, live)| lake.size(&live).unwrap().is_some() && lake.parts(&live).len() > 1)
    });
    assert!(
        split,
        "no live file was split: the run did not cover splits"
    );
}

/// The same into a lake of format `delta`: every committed Delta version whole, every data
/// file it names there, and the tables (read by lakelink and by the `deltalake` package) equal
/// to the source. Fewer kills by default: `LAKELINK_CRASH_KILLS_DELTA` sets them.
#[test]
fn kill_nine_at_random_points_of_a_delta_lake_loses_and_doubles_nothing() {
    let mut ws = Workspace::new(CRM_SCHEMA);
    ws.lake_section = Some(support::delta::DELTA_LAKE.to_string());
    kill_nine_at_random_points(&ws, &delta_run("LAKELINK_CRASH_KILLS_DELTA", 25));
}

/// Delta on an ADLS lake on Azurite: `LAKELINK_CRASH_KILLS_DELTA_ADLS` sets the kills.
#[test]
#[cfg(feature = "adls")]
fn kill_nine_at_random_points_of_an_adls_delta_lake_loses_and_doubles_nothing() {
    let azurite = support::azurite::Azurite::start();
    let mut ws = Workspace::new(CRM_SCHEMA);
    support::azurite::use_azurite(&mut ws, &azurite);
    if let Some(section) = ws.lake_section.as_mut() {
        section.push_str("format = \"delta\"\n");
    }
    // Each append and each Parquet file is an HTTP round trip to the emulator: an application
    // at a tenth of the local pace, and runs long enough to publish, so that kills land in
    // publishes rather than only in catching up.
    kill_nine_at_random_points(
        &ws,
        &CrashRun {
            run_ms: 500..4000,
            write_gap_us: 0..20_000,
            ..delta_run("LAKELINK_CRASH_KILLS_DELTA_ADLS", 15)
        },
    );
}
