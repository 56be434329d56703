//! PostgreSQL errors as [`SourceError`]s: which ones a retry can cure (a server restarting,
//! a dropped connection, a lock wait that timed out) and which need a person (a wrong
//! password or database), each with what to change.

use lakelink_model::source::SourceError;
use postgres::error::SqlState;

/// `err` while doing `what` on source `name`.
pub fn source_error(name: &str, what: &str, err: postgres::Error) -> SourceError {
    let code = err.code().cloned();
    if let Some(code) = &code {
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return SourceError::Unusable {
                source_name: name.to_string(),
                reason: format!(
                    "the server refused the login ({}); check source.user and the password in source.password_env or source.password_file",
                    first_line(&err)
                ),
            };
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return SourceError::Unusable {
                source_name: name.to_string(),
                reason: format!("{}; check source.database", first_line(&err)),
            };
        }
        if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            return SourceError::Unusable {
                source_name: name.to_string(),
                reason: format!(
                    "{} while {what}; the user needs the REPLICATION attribute, ownership of the linked tables and CREATE on the database",
                    first_line(&err)
                ),
            };
        }
        if *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::OBJECT_IN_USE
        {
            return SourceError::Busy {
                source_name: name.to_string(),
                what: what.to_string(),
            };
        }
    }
    // TLS refused by the server or a certificate that does not check out: retrying cannot
    // help. The client reports these without an SQLSTATE, in its message.
    let mut message = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        message = format!("{message}: {c}");
        cause = c.source();
    }
    if code.is_none() && (message.contains("TLS") || message.contains("certificate")) {
        return SourceError::Unusable {
            source_name: name.to_string(),
            reason: format!(
                "{}; check source.sslmode and source.sslrootcert",
                message.lines().next().unwrap_or_default()
            ),
        };
    }
    let transient = err.is_closed()
        || code.is_none()
        || code.as_ref().is_some_and(|c| {
            let c = c.code();
            // Connection exceptions, a server shutting down or starting, too many clients.
            c.starts_with("08") || c.starts_with("57P") || c == "53300"
        });
    if transient {
        return SourceError::Unreachable {
            source_name: name.to_string(),
            what: what.to_string(),
            source: Box::new(err),
        };
    }
    SourceError::Database {
        source_name: name.to_string(),
        what: what.to_string(),
        source: Box::new(err),
    }
}

/// The server's message without its detail lines, for one-line errors.
fn first_line(err: &postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => db.message().to_string(),
        None => err
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}
