//! A fault-injecting test double of the storage service's throttling: a loopback HTTP/1.1
//! proxy in front of a real Azurite that answers every Nth request itself with
//! `503 Server Busy` or `429 Too Many Requests` (alternately, with the error XML and headers
//! the service sends) instead of forwarding it, and forwards all others. Azurite cannot
//! throttle; this makes the lake's retry path run against a real service.
//!
//! Deterministic by request order, so a run throttles the same share of requests every time.
//! It keeps client connections alive (the SDK pools them), each with its own connection to
//! Azurite, frames bodies by `Content-Length` or chunked encoding, and knows the responses
//! that have no body (to HEAD, 1xx, 204, 304). It runs on threads and stops on drop.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What the proxy did, counted across all connections.
#[derive(Default)]
pub struct ProxyCounts {
    /// Requests received.
    pub requests: AtomicU64,
    /// Requests answered `503 Server Busy` and not forwarded.
    pub server_busy: AtomicU64,
    /// Requests answered `429 Too Many Requests` and not forwarded.
    pub too_many_requests: AtomicU64,
}

/// State shared by the acceptor and the connection threads.
struct Shared {
    upstream: u16,
    /// Every Nth request is throttled (0: none).
    every: AtomicU64,
    stopping: AtomicBool,
    counts: ProxyCounts,
    /// Clones of every open socket, shut down on drop to unblock the threads reading them.
    sockets: Mutex<Vec<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The running proxy; stops (and joins its threads) on drop.
pub struct ThrottlingProxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl ThrottlingProxy {
    /// Starts a proxy to Azurite's port `upstream` that throttles every `every`th request.
    pub fn start(upstream: u16, every: u64) -> ThrottlingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port for the proxy");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream,
            every: AtomicU64::new(every),
            stopping: AtomicBool::new(false),
            counts: ProxyCounts::default(),
            sockets: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || accept(listener, shared))
        };
        ThrottlingProxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Its base URL (`http://127.0.0.1:<port>`), to put in front of the account's path.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it did so far.
    pub fn counts(&self) -> &ProxyCounts {
        &self.shared.counts
    }

    /// Requests answered with a throttling response so far.
    pub fn injected(&self) -> u64 {
        let counts = self.counts();
        counts.server_busy.load(Ordering::Relaxed)
            + counts.too_many_requests.load(Ordering::Relaxed)
    }

    /// Stops throttling: every request from now on is forwarded.
    pub fn stop_throttling(&self) {
        self.shared.every.store(0, Ordering::Relaxed);
    }
}

impl Drop for ThrottlingProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        // Wakes the acceptor, which then sees `stopping`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for socket in self.shared.sockets.lock().unwrap().drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
        let threads: Vec<_> = self.shared.threads.lock().unwrap().drain(..).collect();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until the proxy stops, serving each on its own thread.
fn accept(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(client) = client else { continue };
        track(&shared, &client);
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                // A connection ends when either side closes it; the proxy has nothing to add.
                let _ = serve(client, &shared);
            })
        };
        shared.threads.lock().unwrap().push(thread);
    }
}

/// Registers a clone of `socket` to be shut down when the proxy stops.
fn track(shared: &Shared, socket: &TcpStream) {
    if let Ok(clone) = socket.try_clone() {
        shared.sockets.lock().unwrap().push(clone);
    }
}

/// One request, read whole: its method and its bytes as received (head and body).
struct Request {
    method: String,
    bytes: Vec<u8>,
}

/// Serves one client connection's requests in turn until it closes.
fn serve(client: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut to_client = client;
    let mut upstream: Option<(BufReader<TcpStream>, TcpStream)> = None;
    while let Some(request) = read_request(&mut from_client)? {
        let n = shared.counts.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let every = shared.every.load(Ordering::Relaxed);
        if every > 0 && n.is_multiple_of(every) {
            // Alternates, so that both statuses are seen whatever the share.
            let busy = (n / every) % 2 == 1;
            let counter = if busy {
                &shared.counts.server_busy
            } else {
                &shared.counts.too_many_requests
            };
            counter.fetch_add(1, Ordering::Relaxed);
            to_client.write_all(&throttled_response(busy, &request.method))?;
            continue;
        }
        let reused = upstream.is_some();
        let outcome = match forward(&mut upstream, shared, &request, &mut to_client) {
            // Azurite may close a connection that sat idle just as a request is sent on it;
            // a proxy then sends the request again on a fresh one (Azurite answered nothing).
            Err(Failed::Unanswered) if reused => {
                upstream = None;
                forward(&mut upstream, shared, &request, &mut to_client)
            }
            other => other,
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => upstream = None,
            // The client sees its connection drop, as when the service drops one.
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// Why a request could not be forwarded.
enum Failed {
    /// Azurite answered nothing: the request may be sent again.
    Unanswered,
    /// Azurite had the request, and the answer was cut off (or the client went away) while
    /// it was relayed: it must not be sent again.
    CutOff,
}

/// Sends `request` to Azurite (connecting if need be) and relays its response to the client.
/// Returns whether Azurite's connection may be reused.
fn forward(
    upstream: &mut Option<(BufReader<TcpStream>, TcpStream)>,
    shared: &Shared,
    request: &Request,
    to_client: &mut TcpStream,
) -> Result<bool, Failed> {
    let unanswered = |_| Failed::Unanswered;
    let cut_off = |_| Failed::CutOff;
    if upstream.is_none() {
        let socket = TcpStream::connect(("127.0.0.1", shared.upstream)).map_err(unanswered)?;
        track(shared, &socket);
        let reader = BufReader::new(socket.try_clone().map_err(unanswered)?);
        *upstream = Some((reader, socket));
    }
    let (from_azurite, to_azurite) = upstream.as_mut().unwrap();
    to_azurite.write_all(&request.bytes).map_err(unanswered)?;
    let next_head = |from: &mut BufReader<TcpStream>| {
        read_head(from)
            .map_err(unanswered)?
            .ok_or(Failed::Unanswered)
    };
    let mut head = next_head(from_azurite)?;
    // Interim (1xx) responses are relayed as they come; the final one follows.
    while status_of(&head) / 100 == 1 {
        to_client.write_all(&head).map_err(cut_off)?;
        head = next_head(from_azurite)?;
    }
    let status = status_of(&head);
    let headers = headers_of(&head);
    to_client.write_all(&head).map_err(cut_off)?;
    let bodiless = request.method == "HEAD" || status == 204 || status == 304;
    let relayed = if bodiless {
        Ok(())
    } else if is_chunked(&headers) {
        copy_chunked(from_azurite, to_client)
    } else if let Some(length) = content_length(&headers) {
        copy_exactly(from_azurite, to_client, length)
    } else {
        // Delimited by Azurite closing the connection.
        io::copy(from_azurite, to_client).map(|_| ())
    };
    // Part of the response reached the client: it cannot be sent again, only cut off.
    if relayed.is_err() {
        let _ = to_client.shutdown(Shutdown::Both);
        return Err(Failed::CutOff);
    }
    let closes = headers
        .iter()
        .any(|(name, value)| name == "connection" && value.eq_ignore_ascii_case("close"));
    Ok(!closes && (bodiless || is_chunked(&headers) || content_length(&headers).is_some()))
}

/// The next request on the connection, head and body, or `None` when the client closed it.
fn read_request(from_client: &mut impl BufRead) -> io::Result<Option<Request>> {
    let Some(mut bytes) = read_head(from_client)? else {
        return Ok(None);
    };
    let method = String::from_utf8_lossy(&bytes)
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    let headers = headers_of(&bytes);
    if is_chunked(&headers) {
        copy_chunked(from_client, &mut bytes)?;
    } else if let Some(length) = content_length(&headers) {
        copy_exactly(from_client, &mut bytes, length)?;
    }
    Ok(Some(Request { method, bytes }))
}

/// A message's head (start line and headers, through the blank line), or `None` at a clean
/// end of the stream.
fn read_head(from: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let read = from.read_until(b'\n', &mut head)?;
        if read == 0 {
            return match head.is_empty() {
                true => Ok(None),
                false => Err(io::ErrorKind::UnexpectedEof.into()),
            };
        }
        if head.ends_with(b"\r\n\r\n") {
            return Ok(Some(head));
        }
    }
}

/// The status code of a response head.
fn status_of(head: &[u8]) -> u16 {
    String::from_utf8_lossy(head)
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// The headers of a head, names in lower case.
fn headers_of(head: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect()
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(name, value)| {
        name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked")
    })
}

fn content_length(headers: &[(String, String)]) -> Option<u64> {
    headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
}

/// Copies `length` bytes.
fn copy_exactly(from: &mut impl Read, to: &mut impl Write, length: u64) -> io::Result<()> {
    let copied = io::copy(&mut from.take(length), to)?;
    match copied == length {
        true => Ok(()),
        false => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

/// Copies a chunked body as it is framed, through the last chunk and the trailers.
fn copy_chunked(from: &mut impl BufRead, to: &mut impl Write) -> io::Result<()> {
    loop {
        let mut size_line = Vec::new();
        from.read_until(b'\n', &mut size_line)?;
        to.write_all(&size_line)?;
        let text = String::from_utf8_lossy(&size_line);
        let hex = text.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(hex, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a bad chunk size"))?;
        if size == 0 {
            // Trailers, if any, then the blank line.
            loop {
                let mut line = Vec::new();
                if from.read_until(b'\n', &mut line)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                to.write_all(&line)?;
                if line == b"\r\n" {
                    return Ok(());
                }
            }
        }
        // The chunk and its CRLF.
        copy_exactly(from, to, size + 2)?;
    }
}

/// The service's answer to a request it throttles: `503 ServerBusy` (`busy`) or `429`, with
/// the error XML as body (none to a HEAD, as the service does).
fn throttled_response(busy: bool, method: &str) -> Vec<u8> {
    let (status, code, message) = match busy {
        true => (
            "503 Server Busy",
            "ServerBusy",
            "The server is currently unable to receive requests. Please retry your request.",
        ),
        false => (
            "429 Too Many Requests",
            "TooManyRequests",
            "The request rate is above the account limit. Please retry your request.",
        ),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let body = if method == "HEAD" {
        String::new()
    } else {
        body
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nx-ms-error-code: {code}\r\nx-ms-request-id: 00000000-0000-0000-0000-000000000000\r\nx-ms-version: 2021-08-06\r\nRetry-After: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
