//! `[lake] kind = "adls"`: which account, filesystem and folder, how to authenticate, and
//! where each secret comes from. Secrets are never part of the config text: only the name of
//! an environment variable or of a file that holds them.

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// How the agent authenticates to the storage account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdlsAuthMode {
    /// A Microsoft Entra application: `tenant_id`, `client_id` and a client secret.
    ServicePrincipal,
    /// The managed identity of the machine the agent runs on (optionally `client_id`).
    ManagedIdentity,
    /// A shared access signature.
    Sas,
    /// The storage account's access key.
    AccountKey,
}

impl fmt::Display for AdlsAuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdlsAuthMode::ServicePrincipal => "service_principal",
            AdlsAuthMode::ManagedIdentity => "managed_identity",
            AdlsAuthMode::Sas => "sas",
            AdlsAuthMode::AccountKey => "account_key",
        })
    }
}

/// `[lake] kind = "adls"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdlsLakeConfig {
    /// The storage account name.
    pub account: String,
    /// The filesystem (blob container) holding the lake.
    pub filesystem: String,
    /// A folder inside the filesystem that holds the lake, so several lakes can share one.
    pub path: Option<String>,
    /// The account's blob endpoint when it is not `https://<account>.blob.core.windows.net`
    /// (the emulator, a sovereign cloud), e.g. `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: Option<String>,
    /// How to authenticate.
    pub auth: AdlsAuthMode,
    /// `account_key`: the environment variable holding the key.
    pub account_key_env: Option<String>,
    /// `account_key`: the file holding the key.
    pub account_key_file: Option<PathBuf>,
    /// `sas`: the environment variable holding the token.
    pub sas_token_env: Option<String>,
    /// `sas`: the file holding the token.
    pub sas_token_file: Option<PathBuf>,
    /// `service_principal`: the Microsoft Entra tenant.
    pub tenant_id: Option<String>,
    /// `service_principal`: the application's client id; `managed_identity`: a user-assigned
    /// identity's client id (the system-assigned identity when absent).
    pub client_id: Option<String>,
    /// `service_principal`: the environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// `service_principal`: the file holding the client secret.
    pub client_secret_file: Option<PathBuf>,
    /// Batches a live file's split takes before the next split starts
    /// ([`DEFAULT_SPLIT_AFTER_BATCHES`] when absent).
    pub split_after_batches: Option<usize>,
}

/// A live file's split takes 10,000 batches (blocks) before the next starts: far below blob
/// storage's 50,000-block limit, and small enough that the block list every append re-sends
/// stays under half a megabyte. At the default 200 ms poll that is over half an hour of
/// non-stop changes to one partition.
pub const DEFAULT_SPLIT_AFTER_BATCHES: usize = 10_000;
/// The most a split may take: room below the service's limit for a batch of several blocks.
pub const MAX_SPLIT_AFTER_BATCHES: usize = 49_000;

/// Where a secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable, by name.
    Env(String),
    /// A file, by path.
    File(PathBuf),
}

impl SecretSource {
    /// Reads the secret, trimmed of surrounding whitespace (a file usually ends in a newline).
    /// The error names where it looked, never the value.
    pub fn read(&self, key: &str) -> Result<String, String> {
        let value = match self {
            SecretSource::Env(name) => std::env::var(name).map_err(|_| {
                format!("lake.{key}_env: the environment variable {name} is not set")
            })?,
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("lake.{key}_file: cannot read {}: {e}", path.display()))?,
        };
        let value = value.trim().to_string();
        if value.is_empty() {
            return Err(format!("lake.{key}: {self:?} is empty"));
        }
        Ok(value)
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "environment variable {name}"),
            SecretSource::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

impl AdlsLakeConfig {
    /// Resolves the secret files relative to `base` (the config file's folder).
    pub fn resolve_paths(mut self, base: &Path) -> AdlsLakeConfig {
        let resolve = |p: Option<PathBuf>| p.map(|p| crate::registry::relative_to(base, &p));
        self.account_key_file = resolve(self.account_key_file);
        self.sas_token_file = resolve(self.sas_token_file);
        self.client_secret_file = resolve(self.client_secret_file);
        self
    }

    /// Batches per live-file split.
    pub fn split_after(&self) -> usize {
        self.split_after_batches
            .unwrap_or(DEFAULT_SPLIT_AFTER_BATCHES)
    }

    /// The folder prefix inside the filesystem, without slashes at either end ("" for none).
    pub fn prefix(&self) -> &str {
        self.path.as_deref().unwrap_or("").trim_matches('/')
    }

    /// Every problem with the settings, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        // Storage account names: 3-24 lowercase letters and digits.
        if !(3..=24).contains(&self.account.len())
            || !self
                .account
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            problems.push(format!(
                "lake.account {:?} is not a storage account name (3 to 24 lowercase letters and digits)",
                self.account
            ));
        }
        // Container names: 3-63 of lowercase letters, digits and single inner hyphens.
        let fs = &self.filesystem;
        if !(3..=63).contains(&fs.len())
            || !fs
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || fs.starts_with('-')
            || fs.ends_with('-')
            || fs.contains("--")
        {
            problems.push(format!(
                "lake.filesystem {fs:?} is not a filesystem name (3 to 63 lowercase letters, digits and single inner hyphens)"
            ));
        }
        if self
            .prefix()
            .split('/')
            .any(|s| s == "." || s == ".." || (s.is_empty() && !self.prefix().is_empty()))
        {
            problems.push(format!(
                "lake.path {:?} must be a folder like \"lakes/crm\"",
                self.path.as_deref().unwrap_or("")
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        {
            problems.push(format!(
                "lake.endpoint {endpoint:?} must be an http(s):// URL"
            ));
        }
        if !(1..=MAX_SPLIT_AFTER_BATCHES).contains(&self.split_after()) {
            problems.push(format!(
                "lake.split_after_batches must be between 1 and {MAX_SPLIT_AFTER_BATCHES}"
            ));
        }
        let mut secret = |key: &str, env: &Option<String>, file: &Option<PathBuf>| {
            match (
            env, file,
        ) {
            (Some(_), Some(_)) => problems.push(format!(
                "lake.{key}_env and lake.{key}_file are both set; keep one"
            )),
            (None, None) => problems.push(format!(
                "lake.auth = \"{}\" needs lake.{key}_env (an environment variable's name) or lake.{key}_file",
                self.auth
            )),
            _ => {}
        }
        };
        match self.auth {
            AdlsAuthMode::AccountKey => {
                secret("account_key", &self.account_key_env, &self.account_key_file)
            }
            AdlsAuthMode::Sas => secret("sas_token", &self.sas_token_env, &self.sas_token_file),
            AdlsAuthMode::ServicePrincipal => {
                secret(
                    "client_secret",
                    &self.client_secret_env,
                    &self.client_secret_file,
                );
                for (key, value) in [
                    ("tenant_id", &self.tenant_id),
                    ("client_id", &self.client_id),
                ] {
                    if value.is_none() {
                        problems.push(format!(
                            "lake.auth = \"service_principal\" needs lake.{key}"
                        ));
                    }
                }
            }
            AdlsAuthMode::ManagedIdentity => {}
        }
        // A setting of another mode is a mistake worth naming (e.g. a key left behind when
        // switching to a SAS), not something to ignore silently.
        let unused: [(&str, bool, &[AdlsAuthMode]); 8] = [
            (
                "account_key_env",
                self.account_key_env.is_some(),
                &[AdlsAuthMode::AccountKey],
            ),
            (
                "account_key_file",
                self.account_key_file.is_some(),
                &[AdlsAuthMode::AccountKey],
            ),
            (
                "sas_token_env",
                self.sas_token_env.is_some(),
                &[AdlsAuthMode::Sas],
            ),
            (
                "sas_token_file",
                self.sas_token_file.is_some(),
                &[AdlsAuthMode::Sas],
            ),
            (
                "tenant_id",
                self.tenant_id.is_some(),
                &[AdlsAuthMode::ServicePrincipal],
            ),
            (
                "client_id",
                self.client_id.is_some(),
                &[
                    AdlsAuthMode::ServicePrincipal,
                    AdlsAuthMode::ManagedIdentity,
                ],
            ),
            (
                "client_secret_env",
                self.client_secret_env.is_some(),
                &[AdlsAuthMode::ServicePrincipal],
            ),
            (
                "client_secret_file",
                self.client_secret_file.is_some(),
                &[AdlsAuthMode::ServicePrincipal],
            ),
        ];
        for (key, set, modes) in unused {
            if set && !modes.contains(&self.auth) {
                problems.push(format!(
                    "lake.{key} does not apply to lake.auth = \"{}\"",
                    self.auth
                ));
            }
        }
        problems
    }

    /// The configured mode's secret: its key in messages (`account_key`, `sas_token`,
    /// `client_secret`) and where it comes from (`None` for a managed identity, which has
    /// none).
    pub fn secret_source(&self) -> Option<(&'static str, SecretSource)> {
        let pick = |key, env: &Option<String>, file: &Option<PathBuf>| {
            env.clone()
                .map(SecretSource::Env)
                .or_else(|| file.clone().map(SecretSource::File))
                .map(|source| (key, source))
        };
        match self.auth {
            AdlsAuthMode::AccountKey => {
                pick("account_key", &self.account_key_env, &self.account_key_file)
            }
            AdlsAuthMode::Sas => pick("sas_token", &self.sas_token_env, &self.sas_token_file),
            AdlsAuthMode::ServicePrincipal => pick(
                "client_secret",
                &self.client_secret_env,
                &self.client_secret_file,
            ),
            AdlsAuthMode::ManagedIdentity => None,
        }
    }
}
