//! The storage service throttles while the agent trickles: a proxy in front of Azurite
//! answers one request in five with `503 Server Busy` or `429 Too Many Requests` (alternately)
//! while an application keeps writing. The lake must retry them with backoff, the agent must
//! keep running and keep up, and every change must reach the lake exactly once.

mod support;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::agent_http::{get, sample};
use support::azurite::{ACCOUNT, Azurite};
use support::throttling_proxy::ThrottlingProxy;
use support::workload::*;
use support::*;

/// One request in this many is throttled.
const THROTTLE_EVERY: u64 = 5;
/// How long the application writes while the service throttles.
const WRITING: Duration = Duration::from_secs(6);
/// How long the agent may take to catch up once the application stops writing.
const CATCH_UP: Duration = Duration::from_secs(30);
/// The lake's retries log at debug; the rest of the agent at info.
const LOG_FILTER: &str = "info,lakelink_connectors::lake::adls=debug";

#[test]
fn throttling_responses_are_retried_and_lose_and_double_nothing() {
    let azurite = Azurite::start();
    let proxy = ThrottlingProxy::start(azurite.port(), THROTTLE_EVERY);
    let mut ws = Workspace::new(CRM_SCHEMA);
    let endpoint = format!("{}/{ACCOUNT}", proxy.url());
    ws.lake_section = Some(azurite.lake_section_via(&endpoint, &azurite.account_key_auth()));
    ws.write_config("poll_interval = \"20ms\"\nbatch_size = 200", CRM_TABLES);
    let mut rng = StdRng::seed_from_u64(6);
    let (mut expected, next_id) = prefill(&mut ws.application(), &mut rng, 300);
    let mut agent = RunningAgent::start_logging(&ws, LOG_FILTER);
    ws.wait_for_publish(30);

    // Slower than the outage test's writer: one request in five waits out a backoff, and
    // each change may touch its own partition files.
    let writer = BackgroundWriter::start(ws.application(), 7, next_id, |rng| {
        Duration::from_millis(rng.random_range(40..120))
    });
    // The application writes for a while: the time is the workload, not a wait for a state.
    std::thread::sleep(WRITING);
    for (table, n) in writer.finish().live_rows {
        expected.add(table, n);
    }

    // The agent keeps up by itself, still throttled: it says every table is durable through
    // the source's newest change (reading the lake itself is the slow, final check below).
    let source = ws.source();
    let newest: i64 = source
        .query_row(
            &format!("SELECT max(pos) FROM {}", change_log(&source)),
            [],
            |r| r.get(0),
        )
        .unwrap();
    wait_for(10, "the agent to name its status endpoint", || {
        agent.status_address().is_some()
    });
    let address = agent.status_address().unwrap();
    let caught_up = || {
        let metrics = get(&address, "/metrics");
        sample(&metrics, "lakelink_source_position").is_some_and(|p| p >= newest as f64)
            && ["account", "contact", "tag"].iter().all(|table| {
                sample(
                    &metrics,
                    &format!("lakelink_lag_changes{{table=\"{table}\"}}"),
                ) == Some(0.0)
            })
    };
    let started = Instant::now();
    while !caught_up() {
        assert!(
            started.elapsed() < CATCH_UP,
            "the agent did not catch up within {CATCH_UP:?}; its metrics:\n{}\nits log:\n{}",
            get(&address, "/metrics"),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("caught up {:?} after the writer stopped", started.elapsed());
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "the agent stopped while throttled; its log:\n{}",
        agent.log()
    );
    let counts = proxy.counts();
    let (busy, too_many) = (
        counts.server_busy.load(Ordering::Relaxed),
        counts.too_many_requests.load(Ordering::Relaxed),
    );
    assert!(
        busy > 0 && too_many > 0,
        "the proxy throttled {busy} requests with 503 and {too_many} with 429"
    );
    let log = agent.log();
    for status in ["HTTP 503 ServerBusy", "HTTP 429 TooManyRequests"] {
        assert!(
            log.lines()
                .any(|l| l.contains("storage request failed; retrying") && l.contains(status)),
            "no retry of a {status} was logged:\n{log}"
        );
    }
    eprintln!(
        "the proxy saw {} requests and throttled {busy} with 503 and {too_many} with 429",
        counts.requests.load(Ordering::Relaxed)
    );
    agent.stop_cleanly();

    // The checks read the lake through the proxy too: unthrottled, so that they are quick
    // and a failure is the lake's, not a check's own retries.
    proxy.stop_throttling();
    ws.sync();
    assert_live_files_hold_every_change_once(&ws, "account", "accountid", plain, &expected);
    assert_live_files_hold_every_change_once(&ws, "contact", "contactid", plain, &expected);
    assert_live_files_hold_every_change_once(&ws, "tag", "label", tag_label, &expected);
    assert_lake_matches_source_by(&ws, "account", "accountid", plain, None);
    assert_lake_matches_source_by(&ws, "tag", "label", tag_label, None);
}
