//! Asking a running agent over its status endpoint: a plain HTTP GET, and one sample of its
//! Prometheus metrics.

use std::io::{Read, Write};
use std::net::TcpStream;

/// The body of `GET path` from the agent at `address`, which must answer 200.
pub fn get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to the agent");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
        "{response}"
    );
    response.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// The value of `series` (a metric name with its labels) in `metrics`.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The agent's status address, from the holder line in the (local) lake's lock file.
pub fn address(ws: &super::Workspace) -> Option<String> {
    let holder = std::fs::read_to_string(ws.lake.join("_lakelink/lock")).ok()?;
    let at = holder.find("status http://")? + "status http://".len();
    Some(holder[at..].trim_end_matches(')').trim().to_string())
}
