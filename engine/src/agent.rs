//! Driving the pipeline: `lakelink run` (the background agent, until SIGINT or SIGTERM) and
//! `lakelink sync` (one pass). Transient failures are retried with exponential backoff and
//! jitter, each retry logged with its cause; anything else stops the agent with its error.

use crate::config::Config;
use crate::config_watch::ConfigWatcher;
use crate::error::EngineError;
use crate::http_status::StatusServer;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::snapshot::Published;
use backon::{BackoffBuilder, ExponentialBuilder};
use lakelink_model::lake::Lake;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest wait between two retries of a failing operation.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

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
}

/// One pass: link what is new, trickle everything pending, snapshot now.
pub fn sync_once(config: Config, stop: Arc<AtomicBool>) -> Result<SyncOutcome, EngineError> {
    let mut pipeline = Pipeline::open(config, stop)?;
    pipeline.reconcile()?;
    pipeline.check_schemas()?;
    pipeline.catch_up()?;
    let published = pipeline.snapshot()?;
    Ok(SyncOutcome {
        published,
        stopped: pipeline.stopped_tables(),
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
            pipeline.check_schemas()?;
            pipeline.trickle_once()
        })?
        .is_none_or(|(_, caught_up)| caught_up);
        let requested = signals.snapshot_now.swap(false, Ordering::Relaxed);
        if requested || SystemTime::now() >= due {
            retrying(signals, poll, &metrics, "taking a snapshot", || {
                pipeline.snapshot()
            })?;
            due = next_tick(SystemTime::now(), interval);
        }
        if caught_up {
            sleep_unless(signals, poll);
        }
    }
    tracing::info!("stopping: the last batch is committed; releasing the lake");
    Ok(())
}

/// Calls `op` until it succeeds, a non-transient error stops it, or shutdown is asked for
/// (then `Ok(None)`). Each retry is logged with its cause and the wait before the next.
fn retrying<T>(
    signals: &Signals,
    poll: Duration,
    metrics: &Metrics,
    what: &str,
    mut op: impl FnMut() -> Result<T, EngineError>,
) -> Result<Option<T>, EngineError> {
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(poll)
        .with_max_delay(MAX_RETRY_DELAY)
        .with_jitter()
        .without_max_times()
        .build();
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
                sleep_unless(signals, wait);
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

/// Sleeps for `d`, waking early on shutdown or a snapshot request.
fn sleep_unless(signals: &Signals, d: Duration) {
    let step = Duration::from_millis(20);
    let mut left = d;
    while !left.is_zero()
        && !signals.stop.load(Ordering::Relaxed)
        && !signals.snapshot_now.load(Ordering::Relaxed)
    {
        let nap = left.min(step);
        std::thread::sleep(nap);
        left = left.saturating_sub(nap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
