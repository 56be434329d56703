//! PostgreSQL errors as [`SourceError`]s: which ones a retry can cure (a server restarting,
//! a dropped connection, a lock wait that timed out) and which need a person (a wrong
//! password or database), each with what to change.

use super::replication::ReplicationError;
use lakelink_model::source::SourceError;
use postgres::error::SqlState;

/// `err` while doing `what` on source `name`.
pub fn source_error(name: &str, what: &str, err: postgres::Error) -> SourceError {
    let code = err.code().cloned();
    if let Some(code) = &code
        && let Some(known) = by_code(name, what, code.code(), &first_line(&err))
    {
        return known;
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
            // Connection exceptions, a server shutting down or starting, too many clients.
            transient_code(c.code())
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

/// The errors an SQLSTATE tells apart: a refused login, a wrong database, missing
/// privileges, a lock or an object in use (worth waiting for); `None` for the others.
fn by_code(name: &str, what: &str, code: &str, message: &str) -> Option<SourceError> {
    let unusable = |reason: String| {
        Some(SourceError::Unusable {
            source_name: name.to_string(),
            reason,
        })
    };
    if code == SqlState::INVALID_PASSWORD.code()
        || code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION.code()
    {
        return unusable(format!(
            "the server refused the login ({message}); check source.user and the password in source.password_env or source.password_file"
        ));
    }
    if code == SqlState::INVALID_CATALOG_NAME.code() {
        return unusable(format!("{message}; check source.database"));
    }
    if code == SqlState::INSUFFICIENT_PRIVILEGE.code() {
        return unusable(format!(
            "{message} while {what}; the user needs the REPLICATION attribute, ownership of the linked tables and CREATE on the database"
        ));
    }
    if code == SqlState::LOCK_NOT_AVAILABLE.code()
        || code == SqlState::T_R_SERIALIZATION_FAILURE.code()
        || code == SqlState::T_R_DEADLOCK_DETECTED.code()
        || code == SqlState::OBJECT_IN_USE.code()
    {
        return Some(SourceError::Busy {
            source_name: name.to_string(),
            what: what.to_string(),
        });
    }
    None
}

/// Whether an SQLSTATE says the server is going away or starting, the connection broke, or
/// there are too many clients: trying again later can succeed.
fn transient_code(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P") || code == "53300"
}

/// The end of a replication session while doing `what` on source `name`.
pub fn replication_error(name: &str, what: &str, err: ReplicationError) -> SourceError {
    match err {
        ReplicationError::Server { code, message } => {
            if let Some(known) = by_code(name, what, &code, &message) {
                return known;
            }
            if code == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE.code() {
                // The slot was invalidated (max_slot_wal_keep_size) or its WAL removed: the
                // changes it held are gone.
                return SourceError::Unusable {
                    source_name: name.to_string(),
                    reason: format!(
                        "{message} (SQLSTATE {code}): the server no longer holds the changes lakelink had not yet read; relink the tables"
                    ),
                };
            }
            let failure = ReplicationError::Server {
                code: code.clone(),
                message,
            };
            if transient_code(&code) {
                SourceError::Unreachable {
                    source_name: name.to_string(),
                    what: what.to_string(),
                    source: Box::new(failure),
                }
            } else {
                SourceError::Database {
                    source_name: name.to_string(),
                    what: what.to_string(),
                    source: Box::new(failure),
                }
            }
        }
        ReplicationError::Tls(reason) => SourceError::Unusable {
            source_name: name.to_string(),
            reason: format!("TLS: {reason}; check source.sslmode and source.sslrootcert"),
        },
        ReplicationError::Config(reason) => SourceError::Unusable {
            source_name: name.to_string(),
            reason,
        },
        e @ (ReplicationError::Io(_) | ReplicationError::Protocol(_)) => SourceError::Unreachable {
            source_name: name.to_string(),
            what: what.to_string(),
            source: Box::new(e),
        },
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
