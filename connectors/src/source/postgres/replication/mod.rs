//! Streaming logical replication: one `START_REPLICATION SLOT ... LOGICAL` session that the
//! server decodes the WAL for once, read by a thread of its own into a queue bounded in bytes.
//!
//! The thread also keeps the session alive while the engine is busy elsewhere (a snapshot, a
//! long copy): it answers the server's keepalives and sends a standby status update at least
//! every [`STATUS_INTERVAL`], so the server never ends the session for silence. The update's
//! flush position is only ever what the engine acknowledged as durable in the lake, never
//! what was merely received: the slot's confirmed position is what a restart resumes from.
//!
//! The server sends a keepalive carrying the position it has decoded through when asked
//! ([`ReplicationStream::ask_position`]) and when it caught up while this side has reported
//! receiving less; every transaction that committed before that position was sent before the
//! keepalive. That is how a read knows it has seen everything, and how the slot moves on while
//! the linked tables are idle and other tables write.

mod connection;
mod inbox;

use connection::Connection;
use inbox::{Inbox, Weight};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::config::PostgresSourceConfig;

/// How often the session tells the server where it stands even with nothing new to say
/// (well inside the server's default `wal_sender_timeout` of 60 s).
const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// How often at most a status update reports new positions (received or acknowledged).
const UPDATE_INTERVAL: Duration = Duration::from_millis(100);

/// How long the thread waits on the socket before looking at what it has to send.
const TICK: Duration = Duration::from_millis(20);

/// How many bytes of decoded changes the thread reads ahead of the source.
const READ_AHEAD_BYTES: usize = 16 << 20;

/// How long ending the session may take (the server finishing what it was sending).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01), for status timestamps.
const POSTGRES_EPOCH_MICROS: u64 = 946_684_800_000_000;

/// What can end a replication session.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The socket failed or the server did not answer in time.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server refused or ended the session.
    #[error("{message} (SQLSTATE {code})")]
    Server {
        /// Its SQLSTATE.
        code: String,
        /// Its message's first line.
        message: String,
    },
    /// TLS could not be set up as `sslmode` asks.
    #[error("TLS: {0}")]
    Tls(String),
    /// The settings cannot work (no password where one is asked for, an unreadable file).
    #[error("{0}")]
    Config(String),
    /// The server sent something this client does not understand.
    #[error("{0}")]
    Protocol(String),
}

/// What the reading thread hands over, in the order the server sent it.
pub enum Event {
    /// One `pgoutput` message (copied out of the read buffer, so that what the inbox counts is
    /// what it holds).
    Data(Vec<u8>),
    /// The server has sent every transaction that committed before this WAL position.
    SentThrough(u64),
    /// The session ended, and why; nothing follows.
    Ended(ReplicationError),
}

impl Weight for Event {
    fn bytes(&self) -> usize {
        match self {
            Event::Data(data) => data.len(),
            _ => 0,
        }
    }
}

/// What the source and the reading thread share.
struct Shared {
    inbox: Inbox<Event>,
    /// The flush position to report: everything before it is durable in the lake.
    flushed: AtomicU64,
    /// The highest WAL position received, reported as written.
    received: AtomicU64,
    ask_position: AtomicBool,
    stop: AtomicBool,
}

/// A running replication session.
pub struct ReplicationStream {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    server_pid: i32,
}

impl ReplicationStream {
    /// Opens a session on `slot` for `publication` that sends the transactions committed at
    /// or after WAL position `start`. `confirmed` is the slot's confirmed position, reported
    /// as flushed until [`ReplicationStream::confirm`] says more: a session never confirms
    /// anything by starting.
    pub fn start(
        config: &PostgresSourceConfig,
        slot: &str,
        publication: &str,
        start: u64,
        confirmed: u64,
        timeout: Duration,
    ) -> Result<ReplicationStream, ReplicationError> {
        let mut connection = Connection::open(config, timeout)?;
        // The slot and publication names are lower-case letters, digits and underscores (see
        // the config's checks), so they need no quoting beyond this.
        let command = format!(
            "START_REPLICATION SLOT \"{slot}\" LOGICAL {} (\"proto_version\" '1', \"publication_names\" '\"{publication}\"')",
            lsn_text(start)
        );
        connection.start_copy_both(&command, timeout)?;
        connection.set_wait(TICK)?;
        let server_pid = connection.server_pid();
        let shared = Arc::new(Shared {
            inbox: Inbox::new(READ_AHEAD_BYTES),
            flushed: AtomicU64::new(confirmed),
            received: AtomicU64::new(start),
            ask_position: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("lakelink-pg-replication".into())
            .spawn(move || read_session(connection, &thread_shared))
            .map_err(ReplicationError::Io)?;
        Ok(ReplicationStream {
            shared,
            thread: Some(thread),
            server_pid,
        })
    }

    /// The server process (walsender) of the session.
    pub fn server_pid(&self) -> i32 {
        self.server_pid
    }

    /// The next event, waiting at most `wait`.
    pub fn next(&self, wait: Duration) -> Option<Event> {
        self.shared.inbox.pop(wait)
    }

    /// Asks the server to say how far it has sent (answered with [`Event::SentThrough`]).
    pub fn ask_position(&self) {
        self.shared.ask_position.store(true, Ordering::Relaxed);
    }

    /// Everything before WAL position `upto` is durable in the lake: the server may release it.
    pub fn confirm(&self, upto: u64) {
        self.shared.flushed.fetch_max(upto, Ordering::Relaxed);
    }
}

impl Drop for ReplicationStream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Taken so the thread is not left waiting for room.
        while self.shared.inbox.pop(Duration::ZERO).is_some() {}
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The reading thread: messages into the inbox, status updates out, until told to stop or
/// the session ends.
fn read_session(connection: Connection, shared: &Shared) {
    let mut reader = SessionReader {
        connection,
        shared,
        reported: (0, 0),
        last_status: None,
    };
    match reader.run() {
        Ok(()) => {
            // Told to stop: the last acknowledgement goes out before the session ends.
            let _ = reader.send_status(true);
            reader.connection.close(CLOSE_TIMEOUT);
        }
        Err(e) => {
            // Handed over unless the source is gone (it stops waiting then).
            let mut event = Event::Ended(e);
            while !shared.stop.load(Ordering::Relaxed) {
                match shared.inbox.push(event, TICK) {
                    Ok(()) => return,
                    Err(back) => event = back,
                }
            }
        }
    }
}

/// The reading thread's state.
struct SessionReader<'a> {
    connection: Connection,
    shared: &'a Shared,
    /// The received and flushed positions last reported.
    reported: (u64, u64),
    last_status: Option<Instant>,
}

impl SessionReader<'_> {
    /// Reads until told to stop (`Ok`) or the session fails.
    fn run(&mut self) -> Result<(), ReplicationError> {
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            self.send_status(false)?;
            // A server or network gone without closing the connection shows as a socket
            // error: TCP keepalives and a send timeout are set on it (see `connection`). The
            // server itself may rightly stay silent for long (replaying a large transaction
            // it sends nothing of).
            let Some(frame) = self.connection.read()? else {
                continue;
            };
            match frame.tag {
                b'd' => {
                    let body = frame.body;
                    match body.first() {
                        // XLogData: start position, end position, send time, then the message.
                        Some(b'w') if body.len() >= 25 => {
                            let start =
                                u64::from_be_bytes(body[1..9].try_into().unwrap_or_default());
                            self.shared.received.fetch_max(start, Ordering::Relaxed);
                            if !self.deliver(Event::Data(body[25..].to_vec()))? {
                                return Ok(());
                            }
                        }
                        // Keepalive: the position sent through, the send time, whether a reply
                        // is due.
                        Some(b'k') if body.len() >= 18 => {
                            let through =
                                u64::from_be_bytes(body[1..9].try_into().unwrap_or_default());
                            self.shared.received.fetch_max(through, Ordering::Relaxed);
                            if !self.deliver(Event::SentThrough(through))? {
                                return Ok(());
                            }
                            if body[17] == 1 {
                                self.send_status(true)?;
                            }
                        }
                        _ => {
                            return Err(ReplicationError::Protocol(format!(
                                "a replication message of unknown kind {:?}",
                                body.first()
                            )));
                        }
                    }
                }
                b'E' => return Err(connection::server_error(frame)),
                b'c' => {
                    return Err(ReplicationError::Protocol(
                        "the server ended the replication stream".into(),
                    ));
                }
                // Notices and parameter changes.
                _ => {}
            }
        }
    }

    /// Hands `event` over once the inbox has room, keeping the session alive meanwhile;
    /// `false` when told to stop first. A position replaces one just before it, so that an
    /// idle source's inbox does not grow with them.
    fn deliver(&mut self, event: Event) -> Result<bool, ReplicationError> {
        let mut event = match event {
            Event::SentThrough(through) => match self.shared.inbox.merge_last(|last| {
                if let Event::SentThrough(before) = last {
                    *before = (*before).max(through);
                    true
                } else {
                    false
                }
            }) {
                true => return Ok(true),
                false => Event::SentThrough(through),
            },
            other => other,
        };
        loop {
            match self.shared.inbox.push(event, TICK) {
                Ok(()) => return Ok(true),
                Err(back) => event = back,
            }
            if self.shared.stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            self.send_status(false)?;
        }
    }

    /// Sends a standby status update when one is due: forced, asked for, new positions (at most every [`UPDATE_INTERVAL`]), or
    /// [`STATUS_INTERVAL`] since the last (which also asks the server to answer).
    fn send_status(&mut self, force: bool) -> Result<(), ReplicationError> {
        let asked = self.shared.ask_position.swap(false, Ordering::Relaxed);
        let now = (
            self.shared.received.load(Ordering::Relaxed),
            self.shared.flushed.load(Ordering::Relaxed),
        );
        let since = self.last_status.map(|at| at.elapsed());
        let due = since.is_none_or(|s| s >= STATUS_INTERVAL);
        // New positions go out at most every UPDATE_INTERVAL: the engine acknowledges every
        // batch, and each update wakes the server.
        let news = now != self.reported && since.is_none_or(|s| s >= UPDATE_INTERVAL);
        if !(force || asked || due || news) {
            return Ok(());
        }
        self.reported = now;
        self.last_status = Some(Instant::now());
        self.connection
            .send_copy_data(&status_update(now.0, now.1, asked || due))
    }
}

/// A WAL position as PostgreSQL writes it: both 32-bit halves in hexadecimal.
fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// A standby status update: written, flushed and applied positions, the time, and whether
/// the server should answer with a keepalive.
fn status_update(written: u64, flushed: u64, reply: bool) -> Vec<u8> {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
        .saturating_sub(POSTGRES_EPOCH_MICROS);
    let mut message = Vec::with_capacity(34);
    message.push(b'r');
    message.extend_from_slice(&written.max(flushed).to_be_bytes());
    message.extend_from_slice(&flushed.to_be_bytes());
    message.extend_from_slice(&flushed.to_be_bytes());
    message.extend_from_slice(&micros.to_be_bytes());
    message.push(u8::from(reply));
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_written_in_hexadecimal_halves() {
        assert_eq!(lsn_text(0), "0/0");
        assert_eq!(lsn_text(0x1A_5F00_0000), "1A/5F000000");
        assert_eq!(lsn_text(u64::MAX), "FFFFFFFF/FFFFFFFF");
    }

    #[test]
    fn a_status_update_reports_what_was_received_and_what_is_durable() {
        let update = status_update(0x20, 0x10, true);
        assert_eq!(update.len(), 34);
        assert_eq!(update[0], b'r');
        assert_eq!(u64::from_be_bytes(update[1..9].try_into().unwrap()), 0x20);
        assert_eq!(u64::from_be_bytes(update[9..17].try_into().unwrap()), 0x10);
        assert_eq!(u64::from_be_bytes(update[17..25].try_into().unwrap()), 0x10);
        assert_eq!(update[33], 1);
        // Never less written than flushed.
        let update = status_update(0x10, 0x20, false);
        assert_eq!(u64::from_be_bytes(update[1..9].try_into().unwrap()), 0x20);
        assert_eq!(update[33], 0);
    }
}
