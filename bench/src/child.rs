//! Running a command and measuring it: wall time, and peak resident memory from the kernel's
//! own accounting (`wait4`'s `ru_maxrss`), which no sampling can miss.

use anyhow::{Context as _, Result, bail};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished command cost.
pub struct Measured {
    /// Wall time.
    pub elapsed: Duration,
    /// Peak resident set size, in bytes.
    pub max_rss: u64,
    /// What it wrote to stderr (lakelink's log).
    pub stderr: String,
}

/// Runs `command` to completion with stdout to `stdout_path` (or discarded).
pub fn measure(command: &mut Command, stdout_path: Option<&std::path::Path>) -> Result<Measured> {
    let stdout = match stdout_path {
        Some(p) => Stdio::from(std::fs::File::create(p)?),
        None => Stdio::null(),
    };
    let stderr_file = tempfile::NamedTempFile::new()?;
    let started = Instant::now();
    let child = command
        .stdout(stdout)
        .stderr(Stdio::from(stderr_file.reopen()?))
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, status and usage point to live locals. std's Child is not
    // waited on afterwards (it is dropped), so the child is reaped exactly once, here.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = started.elapsed();
    drop(child);
    if waited != pid {
        bail!(
            "waiting for {command:?} failed: {}",
            std::io::Error::last_os_error()
        );
    }
    let stderr = std::fs::read_to_string(stderr_file.path()).unwrap_or_default();
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{command:?} failed (status {status}): {stderr}");
    }
    Ok(Measured {
        elapsed,
        // Linux reports ru_maxrss in KiB.
        max_rss: usage.ru_maxrss as u64 * 1024,
        stderr,
    })
}

/// The number after `key=` in the last log line containing `message`.
pub fn logged_number(log: &str, message: &str, key: &str) -> Option<f64> {
    let line = log.lines().rev().find(|l| l.contains(message))?;
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
