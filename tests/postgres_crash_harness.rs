//! The crash harness against PostgreSQL: the real agent under a continuous random workload
//! on a real PostgreSQL server, killed with SIGKILL at random points (during the initial
//! copies, trickle batches between a peek and the slot's advance, snapshot publishing,
//! retention) and restarted. At the end every live file must hold every change exactly once
//! and in order, every kept manifest must be whole, and the snapshot must equal the source.
//!
//! Seeded like `crash_harness.rs`: `LAKELINK_CRASH_SEED` and `LAKELINK_CRASH_KILLS` (default
//! 30 here) set the run.

mod support;

use support::crash_harness::{CrashRun, kill_nine_at_random_points};
use support::pg::*;

#[test]
fn kill_nine_at_random_points_loses_and_doubles_nothing_from_postgres() {
    let ws = PgWorkspace::new(CRM_SCHEMA);
    // Fewer kills and a smaller prefill than on SQLite, and longer runs before the kills
    // during the initial copies.
    kill_nine_at_random_points(
        &ws,
        &CrashRun {
            name: "postgres crash harness",
            seed: 20261124,
            kills_setting: "LAKELINK_CRASH_KILLS",
            kills: 30,
            prefill: 3000,
            initial_run_ms: 5..300,
            run_ms: 20..400,
            write_gap_us: 0..400,
        },
    );
    assert_eq!(ws.slots().len(), 1, "one slot, whatever the crashes");
}
