//! Driving the pipeline: `lakelink run` (the background agent, until SIGINT or SIGTERM) and
//! `lakelink sync` (one pass). Transient failures are retried with exponential backoff and
//! jitter, each retry logged with its cause; anything else stops the agent with its error.

use crate::backoff::{MAX_RETRY_DELAY, retry_delays};
use crate::config::Config;
use crate::config_watch::ConfigWatcher;
use crate::error::EngineError;
use crate::http_status::StatusServer;
use crate::metrics::Metrics;
use crate::pending_links::Pending;
use crate::pipeline::Pipeline;
use crate::snapshot::Published;
use lakelink_model::lake::Lake;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Signals the agent listens to.
pub struct Signals {
    /// Set by SIGINT or SIGTERM: stop after the batch in flight.
    pub stop: Arc<AtomicBool>,
    /// Set by SIGUSR1: take a snapshot now.
    pub snapshot_now: Arc<AtomicBool>,
}

impl Signals {
    /// Flags that no signal sets: for running the agent in-process (tests, embedding).
    pub fn manual() -> Signals {
        Signals {
            stop: Arc::new(AtomicBool::new(false)),
            snapshot_now: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Registers the handlers.
    pub fn install() -> std::io::Result<Signals> {
        let stop = Arc::new(AtomicBool::new(false));
        let snapshot_now = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&stop))?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&snapshot_now))?;
        Ok(Signals { stop, snapshot_now })
    }
}

/// What one `lakelink sync` pass did.
#[derive(Debug)]
pub struct SyncOutcome {
    /// The snapshot it published, if anything changed.
    pub published: Option<Published>,
    /// Tables that are stopped (table, why); the others were synced.
    pub stopped: Vec<(String, String)>,
    /// Configured tables that could not be linked (table, the line that says why).
    pub refused: Vec<(String, String)>,
    /// Tables whose link or unlink still waits for a lock in the source.
    pub waiting: Vec<(String, Pending)>,
}

/// How long `lakelink sync` waits for tables whose link meets an application's lock, after
/// syncing the others, before it publishes without them: a cron job must end.
pub const SYNC_WAITS_FOR_LOCKS: Duration = Duration::from_secs(60);

/// One pass: link what is new, trickle everything pending, snapshot now.
pub fn sync_once(config: Config, stop: Arc<AtomicBool>) -> Result<SyncOutcome, EngineError> {
    let mut pipeline = Pipeline::open(config, Arc::clone(&stop))?;
    pipeline.reconcile()?;
    pipeline.check_schemas()?;
    pipeline.catch_up()?;
    // Tables whose link waits for a lock in the source: the others are synced meanwhile, and
    // the pass waits for them for a while (on their backoff), then publishes what it has and
    // names those still waiting, which the next pass tries again.
    let deadline = std::time::Instant::now() + SYNC_WAITS_FOR_LOCKS;
    while let Some(next) = pipeline.next_link_try() {
        if next > deadline {
            break;
        }
        let wait = next.saturating_duration_since(std::time::Instant::now());
        if sleep_unless(&stop, None, wait) == Woken::Stop {
            break;
        }
        pipeline.link_waiting_tables()?;
        pipeline.catch_up()?;
    }
    let published = pipeline.snapshot()?;
    Ok(SyncOutcome {
        published,
        stopped: pipeline.stopped_tables(),
        refused: pipeline.refused_tables(),
        waiting: pipeline.waiting_tables(),
    })
}

/// The next instant, strictly after `now`, that is a whole multiple of `interval` since the
/// epoch: snapshots land on the clock (every hour on the hour), not on the agent's start time.
pub fn next_tick(now: SystemTime, interval: Duration) -> SystemTime {
    let since = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let step = interval.as_nanos().max(1);
    let next = (since / step + 1) * step;
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX))
}

/// Runs the agent until `signals.stop` is set.
pub fn run(config: Config, signals: &Signals) -> Result<(), EngineError> {
    let lake_config = config.lake.clone();
    run_with_lake(config, signals, &|| {
        crate::pipeline::open_lake(&lake_config)
    })
}

/// [`run`] over lakes made by `open_lake` (called again whenever starting is retried).
pub fn run_with_lake(
    config: Config,
    signals: &Signals,
    open_lake: &dyn Fn() -> Result<Box<dyn Lake>, EngineError>,
) -> Result<(), EngineError> {
    let mut poll = config.engine.poll_interval;
    let mut interval = config.engine.snapshot_interval;
    let config_path = config.path.clone();
    let metrics = Arc::new(Metrics::default());
    let server = match config.engine.listen {
        Some(address) => match StatusServer::start(address, Arc::clone(&metrics)) {
            Ok(server) => {
                tracing::info!(address = %server.address(), "serving /metrics and /status");
                Some(server)
            }
            Err(e) => {
                tracing::warn!(address = %address, error = %e, "cannot serve metrics and status; set [engine] listen to a free address, or \"off\"");
                None
            }
        },
        None => None,
    };
    let status_address = server.as_ref().map(StatusServer::address);
    let mut watcher = match ConfigWatcher::start(&config_path) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(config = %config_path.display(), error = %e, "cannot watch the config; edits take effect at the next start");
            None
        }
    };
    let Some(mut pipeline) = retrying(signals, poll, &metrics, "starting", || {
        Pipeline::open_instrumented(
            config.clone(),
            open_lake()?,
            Arc::clone(&signals.stop),
            Arc::clone(&metrics),
            status_address,
        )
    })?
    else {
        return Ok(());
    };
    retrying(signals, poll, &metrics, "linking tables", || {
        pipeline.reconcile()
    })?;
    tracing::info!(
        lake = %pipeline.lake().describe(),
        tables = pipeline.config().tables.len(),
        snapshot_interval = %humantime::format_duration(interval),
        "agent running"
    );
    // A lake with no model.json yet gets its first one as soon as the initial syncs are done,
    // rather than at the next tick, so readers can start right away.
    if !pipeline.has_published()? {
        retrying(signals, poll, &metrics, "taking the first snapshot", || {
            pipeline.snapshot()
        })?;
    }
    let mut due = next_tick(SystemTime::now(), interval);
    while !signals.stop.load(Ordering::Relaxed) {
        if watcher.as_mut().is_some_and(ConfigWatcher::settled_change) {
            match Config::load(&config_path) {
                Ok(new) => {
                    tracing::info!(config = %config_path.display(), "config changed; applying it");
                    let applied = retrying(signals, poll, &metrics, "applying the config", || {
                        pipeline.apply_config(new.clone())
                    });
                    if let Err(e) = applied {
                        tracing::warn!(error = %e, "config rejected; the agent keeps running on the last good config");
                    }
                    poll = pipeline.config().engine.poll_interval;
                    if pipeline.config().engine.snapshot_interval != interval {
                        interval = pipeline.config().engine.snapshot_interval;
                        due = next_tick(SystemTime::now(), interval);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "config rejected; the agent keeps running on the last good config");
                }
            }
        }
        let caught_up = retrying(signals, poll, &metrics, "trickling changes", || {
            pipeline.verify_lock()?;
            pipeline.link_waiting_tables()?;
            pipeline.check_schemas()?;
            pipeline.trickle_once()
        })?
        .is_none_or(|trickled| trickled.caught_up);
        let requested = signals.snapshot_now.swap(false, Ordering::Relaxed);
        // A table just linked is published at once, not at the next tick (which keeps its
        // place on the clock).
        if requested || pipeline.has_unpublished_links() || SystemTime::now() >= due {
            retrying(signals, poll, &metrics, "taking a snapshot", || {
                pipeline.snapshot()
            })?;
            due = next_tick(SystemTime::now(), interval);
        }
        if caught_up {
            sleep_unless(&signals.stop, Some(&signals.snapshot_now), poll);
        }
    }
    tracing::info!("stopping: the last batch is committed; releasing the lake");
    Ok(())
}

/// Calls `op` until it succeeds, a non-transient error stops it, or shutdown is asked for
/// (then `Ok(None)`). Each retry is logged with its cause and the wait before the next.
///
/// Every retry waits its backoff. A snapshot request (SIGUSR1) may cut one wait short, so a
/// person who has fixed the cause can have the agent try again at once; it does not shorten
/// the waits after that, because the flag stays set until the main loop takes the snapshot,
/// and waking on it every time would turn the backoff into a busy loop.
fn retrying<T>(
    signals: &Signals,
    poll: Duration,
    metrics: &Metrics,
    what: &str,
    mut op: impl FnMut() -> Result<T, EngineError>,
) -> Result<Option<T>, EngineError> {
    let mut delays = retry_delays(poll);
    let mut may_cut_short = true;
    let mut attempt = 0u64;
    loop {
        match op() {
            Ok(v) => {
                if attempt > 0 {
                    tracing::info!(what, attempts = attempt + 1, "recovered");
                }
                return Ok(Some(v));
            }
            Err(e) if e.is_transient() => {
                attempt += 1;
                metrics.record_retry(e.kind(), &e.to_string());
                let wait = delays.next().unwrap_or(MAX_RETRY_DELAY);
                tracing::warn!(
                    what, attempt, error = %e,
                    retry_in_ms = wait.as_millis() as u64, "failed; retrying"
                );
                let wake_on = may_cut_short.then_some(&*signals.snapshot_now);
                if sleep_unless(&signals.stop, wake_on, wait) == Woken::SnapshotRequest {
                    may_cut_short = false;
                    tracing::info!(what, "snapshot requested; retrying now");
                }
                if signals.stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
            }
            Err(e) => {
                metrics.record_error(e.kind(), &e.to_string(), e.table());
                return Err(e);
            }
        }
    }
}

/// Why [`sleep_unless`] returned.
#[derive(Debug, PartialEq, Eq)]
enum Woken {
    /// The whole wait passed.
    Elapsed,
    /// Shutdown was asked for.
    Stop,
    /// A snapshot was asked for (only when the caller wakes on that).
    SnapshotRequest,
}

/// Sleeps for `d`, waking early when `stop` is set (shutdown), and when `request` is (a
/// snapshot request), if given.
fn sleep_unless(stop: &AtomicBool, request: Option<&AtomicBool>, d: Duration) -> Woken {
    let step = Duration::from_millis(20);
    let mut left = d;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Woken::Stop;
        }
        if left.is_zero() {
            return Woken::Elapsed;
        }
        if request.is_some_and(|r| r.load(Ordering::Relaxed)) {
            return Woken::SnapshotRequest;
        }
        let nap = left.min(step);
        std::thread::sleep(nap);
        left = left.saturating_sub(nap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_request_cuts_one_retry_wait_short_and_no_more() {
        let signals = Signals::manual();
        signals.snapshot_now.store(true, Ordering::Relaxed);
        let metrics = Metrics::default();
        let mut attempts = 0;
        let started = std::time::Instant::now();
        let result = retrying(
            &signals,
            Duration::from_millis(100),
            &metrics,
            "testing",
            || {
                attempts += 1;
                if attempts < 4 {
                    Err(EngineError::Lake(lakelink_model::lake::LakeError::io(
                        "append",
                        "t/2024.csv",
                        std::io::Error::from(std::io::ErrorKind::StorageFull),
                    )))
                } else {
                    Ok(())
                }
            },
        );
        assert!(matches!(result, Ok(Some(()))));
        assert_eq!(attempts, 4);
        // The pending request cuts the first wait short; the next two (at least 200 ms and
        // 400 ms) are waited out although it is still pending.
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
        assert!(
            signals.snapshot_now.load(Ordering::Relaxed),
            "the main loop takes it"
        );
    }

    #[test]
    fn ticks_are_aligned_to_the_clock() {
        let hour = Duration::from_secs(3600);
        let at = UNIX_EPOCH + Duration::from_secs(10 * 3600 + 125);
        assert_eq!(
            next_tick(at, hour),
            UNIX_EPOCH + Duration::from_secs(11 * 3600)
        );
        let on = UNIX_EPOCH + Duration::from_secs(11 * 3600);
        assert_eq!(
            next_tick(on, hour),
            UNIX_EPOCH + Duration::from_secs(12 * 3600)
        );
    }
}
