//! The agent's HTTP endpoint: `GET /metrics` (Prometheus text) and `GET /status` (JSON), on
//! the address `[engine] listen` names (loopback by default). Served from its own thread with
//! `tiny_http`: two read-only routes need no async runtime.

use crate::metrics::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

/// The running endpoint; stops when dropped.
pub struct StatusServer {
    server: Arc<tiny_http::Server>,
    address: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl StatusServer {
    /// Binds `address` and serves `metrics` from a background thread.
    pub fn start(address: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<StatusServer> {
        let server = tiny_http::Server::http(address).map_err(std::io::Error::other)?;
        let address = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("the endpoint is not on an IP address"))?;
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("lakelink-http".into())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    let (body, content_type, code) = match request.url() {
                        "/metrics" => (metrics.prometheus(), "text/plain; version=0.0.4", 200),
                        "/status" => (
                            serde_json::to_string_pretty(&metrics.status()).unwrap_or_default(),
                            "application/json",
                            200,
                        ),
                        _ => (
                            "not found; try /metrics or /status\n".to_string(),
                            "text/plain",
                            404,
                        ),
                    };
                    let header = tiny_http::Header::from_bytes("Content-Type", content_type)
                        .expect("a valid header");
                    let response = tiny_http::Response::from_string(body)
                        .with_status_code(code)
                        .with_header(header);
                    if let Err(e) = request.respond(response) {
                        tracing::debug!(error = %e, "a status client went away");
                    }
                }
            })?;
        Ok(StatusServer {
            server,
            address,
            thread: Some(thread),
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Fetches `/status` from an agent at `address` (for `lakelink status`); `None` when no agent
/// answers within a second.
pub fn fetch_status(address: SocketAddr) -> Option<crate::metrics::AgentStatus> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(1);
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(stream, "GET /status HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let body = response.split_once("\r\n\r\n")?.1;
    serde_json::from_str(body).ok()
}
