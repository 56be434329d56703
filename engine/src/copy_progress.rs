//! Progress of an initial copy: a bar with rows, rate and ETA when stderr is a terminal, and a
//! log line every few seconds when it is not (a service's journal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

/// Time between two log lines when no one is watching a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Reports a copy's progress.
pub struct CopyProgress {
    table: String,
    total: u64,
    bar: Option<ProgressBar>,
    started: Instant,
    logged: std::cell::Cell<Instant>,
}

impl CopyProgress {
    /// Starts reporting the copy of `table`, expected to hold about `total` rows.
    pub fn new(table: &str, total: u64) -> CopyProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {human_pos}/{human_len} rows, {per_sec}, ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(format!("copying {table}"));
            bar
        });
        let now = Instant::now();
        CopyProgress {
            table: table.to_string(),
            total,
            bar,
            started: now,
            logged: std::cell::Cell::new(now),
        }
    }

    /// `rows` have been copied.
    pub fn advance(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            // Drawing every row would cost more than the copy; the bar redraws on its own tick.
            if rows.is_multiple_of(1024) {
                bar.set_position(rows);
            }
            return;
        }
        // The clock too is read once in 1,024 rows: once a row, it cost a copy a percent.
        if rows.is_multiple_of(1024) && self.logged.get().elapsed() >= LOG_EVERY {
            self.logged.set(Instant::now());
            let elapsed = self.started.elapsed().as_secs_f64();
            let rate = rows as f64 / elapsed.max(1e-9);
            let left = self.total.saturating_sub(rows) as f64 / rate.max(1e-9);
            tracing::info!(
                table = %self.table, rows, total = self.total,
                rows_per_second = rate as u64, eta_seconds = left as u64,
                "initial copy in progress"
            );
        }
    }

    /// The copy is done.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
