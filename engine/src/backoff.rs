//! The waits between retries of something that failed for a reason that can pass (a busy
//! source, a full disk, a lock held by the application): exponential from the poll interval,
//! with jitter, capped.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// Longest wait between two retries of a failing operation.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// The waits between retries: exponential from `poll`, with jitter, never longer than
/// [`MAX_RETRY_DELAY`]. backon adds up to as much again as jitter after its own cap, so the
/// base is capped at half: at the cap the waits still spread (15 to 30 s), so agents that
/// met the same failure do not retry in step.
pub fn retry_delays(poll: Duration) -> impl Iterator<Item = Duration> + Send {
    ExponentialBuilder::default()
        .with_min_delay(poll.min(MAX_RETRY_DELAY / 2))
        .with_max_delay(MAX_RETRY_DELAY / 2)
        .with_jitter()
        .without_max_times()
        .build()
        .map(|d| d.min(MAX_RETRY_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_grow_and_never_pass_the_cap() {
        let waits: Vec<Duration> = retry_delays(Duration::from_millis(20)).take(200).collect();
        assert!(waits.iter().all(|w| *w <= MAX_RETRY_DELAY), "{waits:?}");
        assert!(waits[0] >= Duration::from_millis(20), "{waits:?}");
        assert!(
            waits[150..].iter().all(|w| *w >= MAX_RETRY_DELAY / 2),
            "{waits:?}"
        );
        let distinct: std::collections::BTreeSet<Duration> = waits[150..].iter().copied().collect();
        assert!(
            distinct.len() > 10,
            "still jittered at the cap: {distinct:?}"
        );
    }
}
