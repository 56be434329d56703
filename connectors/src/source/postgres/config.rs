//! `[source] kind = "postgres"`: where the server is, who connects, where the password comes
//! from (never the config text), and the replication slot and publication lakelink owns.

use serde::Deserialize;
use std::path::PathBuf;

/// The port PostgreSQL listens on unless configured otherwise.
pub const DEFAULT_PORT: u16 = 5432;
/// The slot (and publication) name when the config names none. Two lakes fed from one
/// database must each name their own.
pub const DEFAULT_SLOT: &str = "lakelink";

/// Whether the connection uses TLS, as libpq's `sslmode` means it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, plain otherwise; the certificate is not checked (the
    /// default, as in libpq).
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS, with the server's certificate checked against `sslrootcert` (or the public web
    /// PKI roots) and its host name.
    VerifyFull,
}

/// `[source] kind = "postgres"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    /// Host name or address of the server.
    pub host: String,
    /// TCP port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The database the linked tables live in.
    pub database: String,
    /// The role lakelink connects as (needs REPLICATION or superuser, and ownership of the
    /// linked tables to add them to the publication).
    pub user: String,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// A file holding the password (its first line); relative to the config file.
    pub password_file: Option<PathBuf>,
    /// TLS or not.
    #[serde(default)]
    pub sslmode: SslMode,
    /// PEM certificates of the authorities `verify-full` trusts; relative to the config file.
    pub sslrootcert: Option<PathBuf>,
    /// The logical replication slot, also the publication's name.
    #[serde(default = "default_slot")]
    pub slot: String,
    /// A warning is logged when the slot keeps more WAL than this, in MB (see
    /// [`crate::source::postgres::PostgresSource`]'s `retained_bytes`).
    #[serde(default = "default_retained_wal_warning_mb")]
    pub retained_wal_warning_mb: u64,
}

/// What `retained_wal_warning_mb` is unless set: 4 GB of WAL held for lakelink is worth a look.
pub const DEFAULT_RETAINED_WAL_WARNING_MB: u64 = 4096;

fn default_retained_wal_warning_mb() -> u64 {
    DEFAULT_RETAINED_WAL_WARNING_MB
}

fn default_port() -> u16 {
    DEFAULT_PORT
}

fn default_slot() -> String {
    DEFAULT_SLOT.to_string()
}

impl PostgresSourceConfig {
    /// The config with relative file paths made relative to `base`.
    pub fn resolve_paths(self, base: &std::path::Path) -> PostgresSourceConfig {
        let resolve =
            |p: Option<std::path::PathBuf>| p.map(|p| crate::registry::relative_to(base, &p));
        PostgresSourceConfig {
            password_file: resolve(self.password_file.clone()),
            sslrootcert: resolve(self.sslrootcert.clone()),
            ..self
        }
    }

    /// Every problem with these settings, each naming its key (empty when usable).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.host.trim().is_empty() {
            problems.push("source.host must not be empty".to_string());
        }
        if self.database.trim().is_empty() {
            problems.push("source.database must not be empty".to_string());
        }
        if self.user.trim().is_empty() {
            problems.push("source.user must not be empty".to_string());
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            problems.push(
                "source.password_env and source.password_file are both set; keep one".to_string(),
            );
        }
        // PostgreSQL's own rule for slot names; the publication takes the same name.
        let slot_ok = !self.slot.is_empty()
            && self.slot.len() <= 63
            && self
                .slot
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !slot_ok {
            problems.push(format!(
                "source.slot {:?} must be 1 to 63 lower-case letters, digits or underscores",
                self.slot
            ));
        }
        if self.sslrootcert.is_some() && self.sslmode != SslMode::VerifyFull {
            problems.push(
                "source.sslrootcert is only used with sslmode = \"verify-full\"; set both, or neither"
                    .to_string(),
            );
        }
        problems
    }

    /// The password, read from where the config says; `None` when neither is set.
    pub fn password(&self) -> Result<Option<String>, String> {
        if let Some(var) = &self.password_env {
            return std::env::var(var).map(Some).map_err(|_| {
                format!("environment variable {var} (named by source.password_env) is not set")
            });
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "cannot read {} (named by source.password_file): {e}",
                    path.display()
                )
            })?;
            return Ok(Some(text.lines().next().unwrap_or_default().to_string()));
        }
        Ok(None)
    }
}
