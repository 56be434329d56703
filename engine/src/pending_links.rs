//! Tables whose link or unlink has not happened yet, so that one table never holds the others
//! up. A table that cannot be linked as configured is *refused*: it is tried again at the next
//! start or config change, when a person may have fixed it. A table whose link (or unlink) the
//! source keeps busy, behind a lock an application holds, *waits*: it is tried again on a
//! backoff of its own while the other tables flow.

use crate::backoff;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What a waiting table waits to have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Link it (install capture, copy it).
    Link,
    /// Unlink it (remove capture); until then it keeps flowing.
    Unlink,
}

/// A table the source keeps busy.
struct Waiting {
    pending: Pending,
    /// Tries so far.
    attempt: u32,
    /// When to try next.
    next_try: Instant,
    /// The waits before the tries after it.
    delays: Box<dyn Iterator<Item = Duration> + Send>,
}

/// The refused and the waiting tables.
#[derive(Default)]
pub struct PendingLinks {
    /// Table, the line that says why it is refused.
    refused: BTreeMap<String, String>,
    waiting: BTreeMap<String, Waiting>,
}

/// When a waiting table is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextTry {
    /// Tries so far.
    pub attempt: u32,
    /// The wait before the next.
    pub wait: Duration,
}

impl PendingLinks {
    /// Records that `table` is refused with `line`; true when that is news (a first refusal,
    /// or another reason), which is when to log it.
    pub fn refuse(&mut self, table: &str, line: &str) -> bool {
        self.waiting.remove(table);
        self.refused.insert(table.to_string(), line.to_string()) != Some(line.to_string())
    }

    /// Whether `table` is refused.
    pub fn is_refused(&self, table: &str) -> bool {
        self.refused.contains_key(table)
    }

    /// The refused tables, with their lines.
    pub fn refused(&self) -> Vec<(String, String)> {
        self.refused
            .iter()
            .map(|(t, line)| (t.clone(), line.clone()))
            .collect()
    }

    /// Puts `table` off to its next backoff (from `poll`) for `pending`.
    pub fn wait(&mut self, table: &str, pending: Pending, poll: Duration) -> NextTry {
        self.refused.remove(table);
        let waiting = self
            .waiting
            .entry(table.to_string())
            .or_insert_with(|| Waiting {
                pending,
                attempt: 0,
                next_try: Instant::now(),
                delays: Box::new(backoff::retry_delays(poll)),
            });
        waiting.pending = pending;
        waiting.attempt += 1;
        let wait = waiting.delays.next().unwrap_or(backoff::MAX_RETRY_DELAY);
        waiting.next_try = Instant::now() + wait;
        NextTry {
            attempt: waiting.attempt,
            wait,
        }
    }

    /// Whether `table` waits, and for what.
    pub fn waits(&self, table: &str) -> Option<Pending> {
        self.waiting.get(table).map(|w| w.pending)
    }

    /// Whether `table` waits for `pending` and its wait is not over.
    pub fn is_waiting_now(&self, table: &str, pending: Pending) -> bool {
        self.waiting
            .get(table)
            .is_some_and(|w| w.pending == pending && Instant::now() < w.next_try)
    }

    /// The waiting tables whose wait is over, with what they wait for.
    pub fn due(&self) -> Vec<(String, Pending)> {
        let now = Instant::now();
        self.waiting
            .iter()
            .filter(|(_, w)| w.next_try <= now)
            .map(|(t, w)| (t.clone(), w.pending))
            .collect()
    }

    /// When the next waiting table is due, if any waits.
    pub fn next_try(&self) -> Option<Instant> {
        self.waiting.values().map(|w| w.next_try).min()
    }

    /// The tables that wait, with what for.
    pub fn waiting(&self) -> Vec<(String, Pending)> {
        self.waiting
            .iter()
            .map(|(t, w)| (t.clone(), w.pending))
            .collect()
    }

    /// `table` is done with (linked, unlinked, or no longer configured): forgets it. Returns
    /// how many tries it took when it had waited.
    pub fn settle(&mut self, table: &str) -> Option<u32> {
        self.refused.remove(table);
        self.waiting.remove(table).map(|w| w.attempt + 1)
    }

    /// Forgets the tables for which `keep` is false; returns them.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let gone: Vec<String> = self
            .refused
            .keys()
            .chain(self.waiting.keys())
            .filter(|t| !keep(t))
            .cloned()
            .collect();
        for table in &gone {
            self.settle(table);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_table_is_due_after_its_backoff_and_settling_forgets_it() {
        let mut pending = PendingLinks::default();
        let first = pending.wait("t", Pending::Link, Duration::from_millis(10));
        assert_eq!(first.attempt, 1);
        assert!(pending.is_waiting_now("t", Pending::Link));
        assert!(!pending.is_waiting_now("t", Pending::Unlink));
        std::thread::sleep(first.wait + Duration::from_millis(5));
        assert_eq!(pending.due(), [("t".to_string(), Pending::Link)]);
        let second = pending.wait("t", Pending::Link, Duration::from_millis(10));
        assert_eq!(second.attempt, 2);
        assert_eq!(pending.settle("t"), Some(3));
        assert_eq!(pending.next_try(), None);
    }

    #[test]
    fn a_refusal_is_news_once_per_reason_and_waiting_replaces_it() {
        let mut pending = PendingLinks::default();
        assert!(pending.refuse("t", "gone"));
        assert!(!pending.refuse("t", "gone"));
        assert!(pending.refuse("t", "no key"));
        pending.wait("t", Pending::Link, Duration::from_millis(10));
        assert!(!pending.is_refused("t"));
        assert_eq!(pending.retain(|t| t != "t"), ["t"]);
        assert_eq!(pending.waits("t"), None);
    }
}
