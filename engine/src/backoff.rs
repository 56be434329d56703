//! The waits between retries of something that failed for a reason that can pass (a busy
//! source, a full disk, a lock held by the application): exponential from the poll interval,
//! with jitter, capped.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// Longest wait between two retries of a failing operation.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// The waits between retries: exponential from `poll`, with jitter, never longer than
/// [`MAX_RETRY_DELAY`] (backon adds the jitter after its own cap, so the cap is applied here).
pub fn retry_delays(poll: Duration) -> impl Iterator<Item = Duration> + Send {
    ExponentialBuilder::default()
        .with_min_delay(poll)
        .with_max_delay(MAX_RETRY_DELAY)
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
        assert!(waits[199] >= MAX_RETRY_DELAY / 2, "{waits:?}");
    }
}
