//! What the storage service's errors mean to the engine: which are worth retrying (throttling,
//! timeouts, dropped connections: retried here with backoff and jitter, then reported as
//! transient so the agent keeps trying), and which need a person (a refused credential, a
//! missing filesystem: never transient), each as one line without secrets.

use azure_core::error::ErrorKind;
use azure_core::http::StatusCode;
use backon::{ExponentialBuilder, Retryable};
use lakelink_model::lake::LakeError;
use std::future::Future;
use std::io;
use std::time::Duration;

/// Tries per operation before giving up to the agent's own (unbounded, logged) retry loop:
/// enough to ride out a throttling burst without hiding a real outage for long.
const TRIES: usize = 5;
/// The first wait between tries; doubled each time, with jitter, up to [`MAX_DELAY`].
const MIN_DELAY: Duration = Duration::from_millis(200);
/// The longest wait between two tries.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// The HTTP status of a service error, if it is one.
pub fn status(e: &azure_core::Error) -> Option<StatusCode> {
    e.http_status()
}

/// The service's error code (e.g. `BlobNotFound`), if it sent one.
pub fn error_code(e: &azure_core::Error) -> Option<&str> {
    match e.kind() {
        ErrorKind::HttpResponse { error_code, .. } => error_code.as_deref(),
        _ => None,
    }
}

/// Whether the service said the blob (not the filesystem) is missing.
pub fn is_blob_not_found(e: &azure_core::Error) -> bool {
    status(e) == Some(StatusCode::NotFound) && error_code(e) != Some("ContainerNotFound")
}

/// Whether a condition (If-Match, If-None-Match) failed or the blob already exists.
pub fn is_condition_failed(e: &azure_core::Error) -> bool {
    matches!(
        status(e),
        Some(StatusCode::PreconditionFailed) | Some(StatusCode::Conflict)
    ) && !matches!(
        error_code(e),
        Some("LeaseIdMissing" | "LeaseIdMismatchWithBlobOperation" | "LeaseIdMismatch")
    )
}

/// Whether trying the same request again soon can succeed.
pub fn is_retryable(e: &azure_core::Error) -> bool {
    match e.kind() {
        ErrorKind::HttpResponse { status, .. } => matches!(
            *status,
            StatusCode::RequestTimeout
                | StatusCode::TooManyRequests
                | StatusCode::InternalServerError
                | StatusCode::BadGateway
                | StatusCode::ServiceUnavailable
                | StatusCode::GatewayTimeout
        ),
        ErrorKind::Connection | ErrorKind::Io => true,
        _ => false,
    }
}

/// Whether the error is that the host name does not resolve: a wrong account or endpoint.
pub fn is_unknown_host(e: &azure_core::Error) -> bool {
    let text = chain_text(e).to_ascii_lowercase();
    text.contains("dns error") || text.contains("failed to lookup address")
}

/// `text` with the signature of any SAS in it (`sig=...`, as in a URL an HTTP error names)
/// replaced, so that no secret reaches a log or an error message.
pub fn redact_signatures(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("sig=") {
        let (before, after) = rest.split_at(at + "sig=".len());
        out.push_str(before);
        out.push_str("REDACTED");
        let end = after
            .find(|c: char| c == '&' || c == ')' || c == '"' || c.is_whitespace())
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The error and its causes on one line, without secrets.
pub fn chain_text(e: &azure_core::Error) -> String {
    let mut text = match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => match error_code {
            Some(code) => format!("HTTP {} {code}", u16::from(*status)),
            None => format!("HTTP {}", u16::from(*status)),
        },
        _ => e.to_string(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    redact_signatures(&text.replace('\n', " "))
}

/// Maps a service error of `operation` on `path` to a lake error. Throttling, timeouts and
/// dropped connections are transient ([`LakeError::Io`]), and so is a token that could not
/// be had (an identity endpoint's blip); a refused credential, a missing filesystem or a bad
/// request are not ([`LakeError::Refused`]).
pub fn lake_error(
    operation: &'static str,
    path: impl ToString,
    e: &azure_core::Error,
) -> LakeError {
    let hint = match (status(e), error_code(e)) {
        (Some(StatusCode::Forbidden), _) | (Some(StatusCode::Unauthorized), _) => {
            "; the credential in lake.auth is refused or lacks the rights lakelink needs"
        }
        (_, Some("ContainerNotFound")) => "; the filesystem in lake.filesystem is gone",
        _ => "",
    };
    let text = format!("{}{hint}", chain_text(e));
    let kind = match e.kind() {
        _ if is_retryable(e) => io::ErrorKind::TimedOut,
        ErrorKind::Credential => io::ErrorKind::PermissionDenied,
        _ => return LakeError::refused(operation, path, text),
    };
    LakeError::io(operation, path, io::Error::new(kind, text))
}

/// Runs `op` until it succeeds, fails with an error [`is_retryable`] refuses, or has been
/// tried [`TRIES`] times, waiting with exponential backoff and jitter in between.
pub async fn with_retries<T, F, Fut>(op: F) -> azure_core::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = azure_core::Result<T>>,
{
    op.retry(
        ExponentialBuilder::default()
            .with_min_delay(MIN_DELAY)
            .with_max_delay(MAX_DELAY)
            .with_max_times(TRIES - 1)
            .with_jitter(),
    )
    .sleep(tokio::time::sleep)
    .when(is_retryable)
    .notify(|e, wait| {
        tracing::debug!(error = %chain_text(e), retry_in_ms = wait.as_millis() as u64, "storage request failed; retrying");
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sas_signatures_never_reach_a_message() {
        assert_eq!(
            redact_signatures(
                "error sending request for url (http://h/acct/lake?comp=list&sv=2021-08-06&sig=abc%2Bdef%3D&sp=rl): refused"
            ),
            "error sending request for url (http://h/acct/lake?comp=list&sv=2021-08-06&sig=REDACTED&sp=rl): refused"
        );
        assert_eq!(redact_signatures("x?sig=abc"), "x?sig=REDACTED");
        assert_eq!(redact_signatures("no secret here"), "no secret here");
        let e = azure_core::Error::with_message(
            ErrorKind::Io,
            "error sending request for url (http://h/a?sig=secret)",
        );
        assert!(!chain_text(&e).contains("secret"), "{}", chain_text(&e));
    }
}
