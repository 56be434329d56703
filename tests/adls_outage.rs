//! The storage service goes away while the agent trickles: Azurite is stopped for 30 s while
//! an application keeps writing, then started again. The agent must retry without giving up,
//! catch up by itself, and leave every change in the lake exactly once.

mod support;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::time::{Duration, Instant};
use support::azurite::Azurite;
use support::workload::*;
use support::*;

/// How long the service is away: longer than one request's retries, shorter than the lease.
const OUTAGE: Duration = Duration::from_secs(30);

#[test]
fn a_30_second_outage_of_the_service_loses_and_doubles_nothing() {
    let mut azurite = Azurite::start();
    let mut ws = Workspace::new(CRM_SCHEMA);
    // A SAS, so that the retries' log lines (which name the request) are checked for it.
    let sas = azurite.account_sas(support::azurite::ACCOUNT_KEY, "sco");
    let sas_file = ws.dir.path().join("sas");
    std::fs::write(&sas_file, &sas).unwrap();
    ws.lake_section = Some(azurite.lake_section(&format!(
        "auth = \"sas\"\nsas_token_file = \"{}\"",
        sas_file.display()
    )));
    ws.write_config("poll_interval = \"20ms\"\nbatch_size = 200", CRM_TABLES);
    let mut rng = StdRng::seed_from_u64(4);
    let (mut expected, next_id) = prefill(&mut ws.application(), &mut rng, 300);
    let agent = RunningAgent::start(&ws);
    ws.wait_for_publish(60);

    let writer = BackgroundWriter::start(ws.application(), 5, next_id, |rng| {
        Duration::from_millis(rng.random_range(5..25))
    });
    std::thread::sleep(Duration::from_secs(2));
    azurite.stop();
    std::thread::sleep(OUTAGE);
    azurite.resume();
    std::thread::sleep(Duration::from_secs(1));
    for (table, n) in writer.finish().live_rows {
        expected.add(table, n);
    }

    // The agent catches up by itself: every change reaches the live files.
    let total: usize = expected.live_rows.values().sum();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rows: usize = ["account", "contact", "tag"]
            .iter()
            .map(|t| fold_live_files(&ws, t).1)
            .sum();
        if rows == total {
            break;
        }
        assert!(
            rows < total,
            "the live files hold {rows} rows for {total} changes: some were written twice"
        );
        assert!(
            Instant::now() < deadline,
            "timed out after 120 s waiting for the agent to catch up ({rows} of {total} rows); its log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = agent.log();
    assert!(
        log.contains("retrying"),
        "the outage was not noticed:\n{log}"
    );
    let signature = sas.split("sig=").nth(1).unwrap();
    assert!(!log.contains(signature), "the SAS reached the log:\n{log}");
    let status = ws.lakelink(&["status", "--config", "{config}"]);
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        status.contains("agent running (http://"),
        "status finds the agent through the lock blob: {status}"
    );
    assert!(!status.contains(signature), "{status}");
    // More than a lease's 60 s have passed since the agent took it: it was renewed through
    // the outage, and still keeps a second writer out.
    let refused = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        refused.contains("the lake is in use by lakelink pid"),
        "{refused}"
    );
    // The outage is over: the agent stops cleanly.
    agent.stop_cleanly();

    ws.sync();
    assert_live_files_hold_every_change_once(&ws, "account", "accountid", plain, &expected);
    assert_live_files_hold_every_change_once(&ws, "contact", "contactid", plain, &expected);
    assert_live_files_hold_every_change_once(&ws, "tag", "label", tag_label, &expected);
    assert_lake_matches_source_by(&ws, "account", "accountid", plain, None);
    assert_lake_matches_source_by(&ws, "tag", "label", tag_label, None);
}
