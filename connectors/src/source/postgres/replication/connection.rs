//! A blocking connection in PostgreSQL's replication mode (`replication=database`): connect
//! over TCP or a Unix socket, TLS by `sslmode` with the same rustls settings as the SQL
//! connections, log in (trust, password, MD5 or SCRAM-SHA-256), run one command, then read
//! and write the messages of the copy-both stream that `START_REPLICATION` opens.
//!
//! Written on `postgres-protocol`'s message codecs rather than taken from a crate: the
//! `postgres` client cannot open a replication session, and the replication crates there are
//! (pgwire-replication, pg_walstream) are young, async, and bring their own TLS modes; this
//! source needs a synchronous reader whose acknowledgements it controls, checking the server
//! exactly as its SQL connections do. The protocol part is small: startup, login, one simple
//! query, then copy-both frames.
//!
//! SCRAM is done without channel binding (as libpq's `channel_binding=disable`): binding the
//! login to the TLS session only adds something where the certificate is not checked
//! (`prefer`, `require`), and `verify-full` authenticates the server by its certificate.

use super::ReplicationError;
use crate::source::postgres::config::{PostgresSourceConfig, SslMode};
use crate::source::postgres::tls;
use bytes::{Buf, BytesMut};
use postgres::fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::{backend, frontend};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The session settings the text forms of values are parsed in (see `types`), the same as
/// the SQL connections set: a replication session formats values in its own settings. The
/// copy's binary decoders (`copy_binary`) write date-times as a session with these settings
/// writes them: change them together.
const SESSION_SETTINGS: [(&str, &str); 5] = [
    ("client_encoding", "UTF8"),
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO"),
    ("bytea_output", "hex"),
    ("extra_float_digits", "3"),
];

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// The socket under the protocol.
enum Transport {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Unix(UnixStream),
}

impl Transport {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.set_read_timeout(timeout),
            Transport::Tls(s) => s.sock.set_read_timeout(timeout),
            Transport::Unix(s) => s.set_read_timeout(timeout),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
            Transport::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
            Transport::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
            Transport::Unix(s) => s.flush(),
        }
    }
}

/// One message from the server: its type byte and its body (the length word removed).
pub struct Frame {
    pub tag: u8,
    pub body: BytesMut,
}

/// A logged-in replication session.
pub struct Connection {
    transport: Transport,
    incoming: BytesMut,
    outgoing: BytesMut,
    /// The server process serving the session (from its cancel key message).
    server_pid: i32,
}

impl Connection {
    /// Connects and logs in, all within `timeout`.
    pub fn open(
        config: &PostgresSourceConfig,
        timeout: Duration,
    ) -> Result<Connection, ReplicationError> {
        let password = config.password().map_err(ReplicationError::Config)?;
        let deadline = Instant::now() + timeout;
        let transport = connect(config, timeout)?;
        let mut connection = Connection {
            transport,
            incoming: BytesMut::with_capacity(READ_CHUNK),
            outgoing: BytesMut::new(),
            server_pid: 0,
        };
        connection.transport.set_read_timeout(Some(timeout))?;
        let mut parameters = vec![
            ("user", config.user.as_str()),
            ("database", config.database.as_str()),
            ("replication", "database"),
            ("application_name", "lakelink"),
        ];
        parameters.extend(SESSION_SETTINGS);
        frontend::startup_message(parameters, &mut connection.outgoing)?;
        connection.send()?;
        connection.log_in(&config.user, password.as_deref(), deadline)?;
        Ok(connection)
    }

    /// Answers the server's login requests until it is ready for a query.
    fn log_in(
        &mut self,
        user: &str,
        password: Option<&str>,
        deadline: Instant,
    ) -> Result<(), ReplicationError> {
        let needed = || {
            ReplicationError::Config(
                "the server asks for a password and none is configured; set source.password_env or source.password_file".into(),
            )
        };
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let frame = self.read_until(deadline)?;
            match frame.tag {
                b'R' => match parse(frame)? {
                    backend::Message::AuthenticationOk => {}
                    backend::Message::AuthenticationCleartextPassword => {
                        let password = password.ok_or_else(needed)?;
                        frontend::password_message(password.as_bytes(), &mut self.outgoing)?;
                        self.send()?;
                    }
                    backend::Message::AuthenticationMd5Password(body) => {
                        let password = password.ok_or_else(needed)?;
                        let hash = md5_hash(user.as_bytes(), password.as_bytes(), body.salt());
                        frontend::password_message(hash.as_bytes(), &mut self.outgoing)?;
                        self.send()?;
                    }
                    backend::Message::AuthenticationSasl(body) => {
                        let password = password.ok_or_else(needed)?;
                        let mut offered = body.mechanisms();
                        let mut scram_offered = false;
                        while let Some(mechanism) = offered.next()? {
                            scram_offered |= mechanism == sasl::SCRAM_SHA_256;
                        }
                        if !scram_offered {
                            return Err(ReplicationError::Config(
                                "the server offers no login method lakelink knows (it knows SCRAM-SHA-256, MD5 and passwords); allow one of them for this user in pg_hba.conf".into(),
                            ));
                        }
                        let client = sasl::ScramSha256::new(
                            password.as_bytes(),
                            sasl::ChannelBinding::unsupported(),
                        );
                        frontend::sasl_initial_response(
                            sasl::SCRAM_SHA_256,
                            client.message(),
                            &mut self.outgoing,
                        )?;
                        self.send()?;
                        scram = Some(client);
                    }
                    backend::Message::AuthenticationSaslContinue(body) => {
                        let client = scram.as_mut().ok_or_else(|| {
                            ReplicationError::Protocol("SCRAM reply without a SCRAM login".into())
                        })?;
                        client.update(body.data())?;
                        frontend::sasl_response(client.message(), &mut self.outgoing)?;
                        self.send()?;
                    }
                    backend::Message::AuthenticationSaslFinal(body) => {
                        let client = scram.as_mut().ok_or_else(|| {
                            ReplicationError::Protocol("SCRAM reply without a SCRAM login".into())
                        })?;
                        client.finish(body.data())?;
                    }
                    _ => {
                        return Err(ReplicationError::Config(
                            "the server asks for a login method lakelink does not support (it supports SCRAM-SHA-256, MD5 and passwords); allow one of them for this user in pg_hba.conf".into(),
                        ));
                    }
                },
                b'E' => return Err(server_error(frame)),
                b'K' => {
                    if let backend::Message::BackendKeyData(body) = parse(frame)? {
                        self.server_pid = body.process_id();
                    }
                }
                b'Z' => return Ok(()),
                // Parameter status, notices.
                _ => {}
            }
        }
    }

    /// Sends `command` (a replication command such as `START_REPLICATION`) and reads until it
    /// starts a copy-both stream.
    pub fn start_copy_both(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<(), ReplicationError> {
        let deadline = Instant::now() + timeout;
        frontend::query(command, &mut self.outgoing)?;
        self.send()?;
        loop {
            let frame = self.read_until(deadline)?;
            match frame.tag {
                b'W' => return Ok(()),
                b'E' => return Err(server_error(frame)),
                b'Z' => {
                    return Err(ReplicationError::Protocol(format!(
                        "the server ended {command:?} without starting to stream"
                    )));
                }
                _ => {}
            }
        }
    }

    /// The server process serving the session.
    pub fn server_pid(&self) -> i32 {
        self.server_pid
    }

    /// Waits at most `timeout` for reading: `read` returns `None` when it passes.
    pub fn set_wait(&mut self, timeout: Duration) -> Result<(), ReplicationError> {
        Ok(self.transport.set_read_timeout(Some(timeout))?)
    }

    /// The next whole message, or `None` when none arrived within the wait set.
    pub fn read(&mut self) -> Result<Option<Frame>, ReplicationError> {
        loop {
            if let Some(frame) = self.take_frame()? {
                return Ok(Some(frame));
            }
            let start = self.incoming.len();
            self.incoming.resize(start + READ_CHUNK, 0);
            let read = self.transport.read(&mut self.incoming[start..]);
            match read {
                Ok(0) => {
                    self.incoming.truncate(start);
                    return Err(ReplicationError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the replication connection",
                    )));
                }
                Ok(n) => self.incoming.truncate(start + n),
                Err(e) => {
                    self.incoming.truncate(start);
                    match e.kind() {
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => return Ok(None),
                        io::ErrorKind::Interrupted => {}
                        _ => return Err(ReplicationError::Io(e)),
                    }
                }
            }
        }
    }

    /// A whole message from what was read, if there is one.
    fn take_frame(&mut self) -> Result<Option<Frame>, ReplicationError> {
        if self.incoming.len() < 5 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([
            self.incoming[1],
            self.incoming[2],
            self.incoming[3],
            self.incoming[4],
        ]) as usize;
        if length < 4 {
            return Err(ReplicationError::Protocol(format!(
                "a message of impossible length {length}"
            )));
        }
        if self.incoming.len() < length + 1 {
            self.incoming.reserve(length + 1 - self.incoming.len());
            return Ok(None);
        }
        let mut body = self.incoming.split_to(length + 1);
        let tag = body[0];
        body.advance(5);
        Ok(Some(Frame { tag, body }))
    }

    /// The next message before `deadline`; its passing is an error.
    fn read_until(&mut self, deadline: Instant) -> Result<Frame, ReplicationError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ReplicationError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the server did not answer in time",
                )));
            }
            self.transport.set_read_timeout(Some(left))?;
            if let Some(frame) = self.read()? {
                return Ok(frame);
            }
        }
    }

    /// Sends one copy-data message holding `payload`.
    pub fn send_copy_data(&mut self, payload: &[u8]) -> Result<(), ReplicationError> {
        frontend::CopyData::new(payload)?.write(&mut self.outgoing);
        self.send()
    }

    /// Ends the stream from this side and waits (at most `timeout`) for the server to end the
    /// command, so that the slot is released before this returns; then logs out.
    pub fn close(mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        frontend::copy_done(&mut self.outgoing);
        if self.send().is_err() {
            return;
        }
        while let Ok(frame) = self.read_until(deadline) {
            if frame.tag == b'Z' {
                break;
            }
        }
        frontend::terminate(&mut self.outgoing);
        let _ = self.send();
    }

    fn send(&mut self) -> Result<(), ReplicationError> {
        let sent = self
            .transport
            .write_all(&self.outgoing)
            .and_then(|()| self.transport.flush());
        self.outgoing.clear();
        sent.map_err(ReplicationError::Io)
    }
}

/// The socket, with TLS negotiated as `sslmode` says.
fn connect(
    config: &PostgresSourceConfig,
    timeout: Duration,
) -> Result<Transport, ReplicationError> {
    if config.host.starts_with('/') {
        // A socket directory, as libpq takes it; no TLS over a local socket.
        let path = format!("{}/.s.PGSQL.{}", config.host, config.port);
        return Ok(Transport::Unix(UnixStream::connect(path)?));
    }
    let mut last = None;
    let mut tcp = None;
    for address in (config.host.as_str(), config.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut tcp = match (tcp, last) {
        (Some(tcp), _) => tcp,
        (None, Some(e)) => return Err(e.into()),
        (None, None) => {
            return Err(ReplicationError::Io(io::Error::new(
                io::ErrorKind::NotFound,
                format!("host {:?} has no address", config.host),
            )));
        }
    };
    tcp.set_nodelay(true)?;
    // A server or network that vanishes without closing the connection is noticed by the
    // kernel: probes after 15 s of silence, and sends unacknowledged for 60 s fail.
    let socket = socket2::SockRef::from(&tcp);
    socket.set_tcp_keepalive(
        &socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(15))
            .with_interval(Duration::from_secs(5))
            .with_retries(4),
    )?;
    socket.set_tcp_user_timeout(Some(Duration::from_secs(60)))?;
    if config.sslmode == SslMode::Disable {
        return Ok(Transport::Plain(tcp));
    }
    tcp.set_read_timeout(Some(timeout))?;
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    tcp.write_all(&request)?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)?;
    match answer[0] {
        b'S' => {}
        b'N' if config.sslmode == SslMode::Prefer => return Ok(Transport::Plain(tcp)),
        b'N' => {
            return Err(ReplicationError::Tls(
                "the server does not accept TLS connections".into(),
            ));
        }
        other => {
            return Err(ReplicationError::Protocol(format!(
                "unexpected answer {other:#04x} to the TLS request"
            )));
        }
    }
    let settings = tls::client_config(config.sslmode, config.sslrootcert.as_deref())
        .map_err(ReplicationError::Config)?;
    let server_name = ServerName::try_from(config.host.clone())
        .map_err(|e| ReplicationError::Tls(format!("host {:?}: {e}", config.host)))?;
    let mut session = ClientConnection::new(Arc::new(settings), server_name)
        .map_err(|e| ReplicationError::Tls(e.to_string()))?;
    while session.is_handshaking() {
        session.complete_io(&mut tcp).map_err(tls_or_io)?;
    }
    Ok(Transport::Tls(Box::new(StreamOwned::new(session, tcp))))
}

/// A socket error during the TLS handshake, told apart from a TLS failure (a refused
/// certificate, which retrying does not cure). Once the session runs, a TLS error is a
/// broken connection like any other.
fn tls_or_io(e: io::Error) -> ReplicationError {
    let is_tls = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if is_tls {
        ReplicationError::Tls(e.to_string())
    } else {
        ReplicationError::Io(e)
    }
}

/// A message `postgres-protocol` decodes (the login messages).
fn parse(frame: Frame) -> Result<backend::Message, ReplicationError> {
    let mut whole = BytesMut::with_capacity(frame.body.len() + 5);
    whole.extend_from_slice(&[frame.tag]);
    whole.extend_from_slice(&(frame.body.len() as u32 + 4).to_be_bytes());
    whole.extend_from_slice(&frame.body);
    backend::Message::parse(&mut whole)?
        .ok_or_else(|| ReplicationError::Protocol("a message cut short".into()))
}

/// The server's error message as an error: its SQLSTATE and first line.
pub fn server_error(frame: Frame) -> ReplicationError {
    let mut code = String::new();
    let mut message = String::new();
    if let Ok(backend::Message::ErrorResponse(body)) = parse(frame) {
        let mut fields = body.fields();
        while let Ok(Some(field)) = fields.next() {
            match field.type_() {
                b'C' => code = String::from_utf8_lossy(field.value_bytes()).into_owned(),
                b'M' => message = String::from_utf8_lossy(field.value_bytes()).into_owned(),
                _ => {}
            }
        }
    }
    ReplicationError::Server { code, message }
}
