//! Who holds a lake's writer lock, as the lock records it: written by the agent that takes
//! the lock, read back by a refused second agent (to name it) and by `lakelink status` (to
//! find its endpoint, or to say which process does not answer). The text is for people
//! first: `lakelink pid 4711 (config /etc/lakelink.toml, since 2026-12-01T10:00:00.0000000Z,
//! status http://127.0.0.1:9464)`.

use std::fmt;
use std::net::SocketAddr;

/// An agent holding (or asking for) a lake's writer lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterHolder {
    /// Its process id.
    pub pid: u32,
    /// Its config file, as given on its command line.
    pub config: String,
    /// When it took the lock (lake time text).
    pub since: String,
    /// Where it serves `/status`, if it does.
    pub status: Option<SocketAddr>,
}

impl fmt::Display for WriterHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lakelink pid {} (config {}, since {}",
            self.pid, self.config, self.since
        )?;
        if let Some(address) = self.status {
            write!(f, ", status http://{address}")?;
        }
        f.write_str(")")
    }
}

impl WriterHolder {
    /// Reads back what [`WriterHolder`]'s `Display` wrote; `None` for any other text (a lock
    /// of another program, or damaged).
    pub fn parse(text: &str) -> Option<WriterHolder> {
        let rest = text.trim().strip_prefix("lakelink pid ")?;
        let (pid, rest) = rest.split_once(" (config ")?;
        let inner = rest.strip_suffix(')')?;
        // The config path may hold ", since "; the time and address never do.
        let (config, tail) = inner.rsplit_once(", since ")?;
        let (since, status) = match tail.split_once(", status http://") {
            Some((since, address)) => (since, Some(address.parse().ok()?)),
            None => (tail, None),
        };
        Some(WriterHolder {
            pid: pid.parse().ok()?,
            config: config.to_string(),
            since: since.to_string(),
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_is_read_back() {
        for status in [None, Some("127.0.0.1:9464".parse().unwrap())] {
            let holder = WriterHolder {
                pid: 4711,
                config: "/etc/lake, since a/b (x).toml".into(),
                since: "2026-12-01T10:00:00.0000000Z".into(),
                status,
            };
            assert_eq!(WriterHolder::parse(&holder.to_string()), Some(holder));
        }
        assert_eq!(WriterHolder::parse("another process"), None);
        assert_eq!(
            WriterHolder::parse("lakelink pid x (config a, since b)"),
            None
        );
    }
}
