//! Every kind of source and lake lakelink has, in one place: its `[source]` or `[lake]`
//! config (chosen by `kind = "..."`), where its relative paths are resolved, its checks, and
//! how it is opened. Each kind's own folder holds the rest; adding one is that folder plus a
//! variant and its arms here.

use crate::lake::local::{LocalLake, LocalLakeConfig};
use crate::source::sqlite::{SqliteSource, SqliteSourceConfig};
use lakelink_model::lake::{Lake, LakeError};
use lakelink_model::source::{Source, SourceError};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[cfg(feature = "adls")]
use crate::lake::adls::{AdlsLake, config::AdlsLakeConfig};
#[cfg(feature = "postgres")]
use crate::source::postgres::{PostgresSource, PostgresSourceConfig};

/// `[source]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// `kind = "sqlite"`.
    Sqlite(SqliteSourceConfig),
    /// `kind = "postgres"`.
    #[cfg(feature = "postgres")]
    Postgres(PostgresSourceConfig),
}

impl SourceConfig {
    /// The config with its relative paths made relative to `base` (the config file's folder).
    pub fn resolve_paths(self, base: &Path) -> SourceConfig {
        match self {
            SourceConfig::Sqlite(c) => SourceConfig::Sqlite(c.resolve_paths(base)),
            #[cfg(feature = "postgres")]
            SourceConfig::Postgres(c) => SourceConfig::Postgres(c.resolve_paths(base)),
        }
    }

    /// Every problem with the settings, each naming its key and what to write.
    pub fn problems(&self) -> Vec<String> {
        match self {
            SourceConfig::Sqlite(_) => Vec::new(),
            #[cfg(feature = "postgres")]
            SourceConfig::Postgres(c) => c.problems(),
        }
    }

    /// Whether the source's tables live in schemas (so `[[table]] schema` means something).
    pub fn has_schemas(&self) -> bool {
        match self {
            SourceConfig::Sqlite(_) => false,
            #[cfg(feature = "postgres")]
            SourceConfig::Postgres(_) => true,
        }
    }

    /// Opens the source. `capture_name` sets one lake's capture objects apart from another's
    /// in the same database, where the source keeps any (SQLite's change log and triggers).
    pub fn open(&self, capture_name: &str) -> Result<Box<dyn Source>, SourceError> {
        Ok(match self {
            SourceConfig::Sqlite(c) => Box::new(SqliteSource::open(c, capture_name)?),
            #[cfg(feature = "postgres")]
            SourceConfig::Postgres(c) => Box::new(PostgresSource::open(c)?),
        })
    }
}

/// `[lake]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LakeConfig {
    /// `kind = "local"`.
    Local(LocalLakeConfig),
    /// `kind = "adls"`: Azure Data Lake Storage Gen2.
    #[cfg(feature = "adls")]
    Adls(Box<AdlsLakeConfig>),
}

impl LakeConfig {
    /// The config with its relative paths made relative to `base` (the config file's folder).
    pub fn resolve_paths(self, base: &Path) -> LakeConfig {
        match self {
            LakeConfig::Local(c) => LakeConfig::Local(c.resolve_paths(base)),
            #[cfg(feature = "adls")]
            LakeConfig::Adls(c) => LakeConfig::Adls(Box::new(c.resolve_paths(base))),
        }
    }

    /// Every problem with the settings, each naming its key and what to write.
    pub fn problems(&self) -> Vec<String> {
        match self {
            LakeConfig::Local(c) => c.problems(),
            #[cfg(feature = "adls")]
            LakeConfig::Adls(c) => c.problems(),
        }
    }

    /// Opens the lake (a local folder is created if missing; an ADLS filesystem is probed).
    pub fn open(&self) -> Result<Box<dyn Lake>, LakeError> {
        Ok(match self {
            LakeConfig::Local(c) => Box::new(LocalLake::open(&c.path, c.base_url.clone())?),
            #[cfg(feature = "adls")]
            LakeConfig::Adls(c) => Box::new(AdlsLake::open(c)?),
        })
    }

    /// The folder of a local lake, which a command that only looks must not create.
    pub fn local_folder(&self) -> Option<&Path> {
        match self {
            LakeConfig::Local(c) => Some(&c.path),
            #[cfg(feature = "adls")]
            LakeConfig::Adls(_) => None,
        }
    }
}

/// `path`, relative to `base` unless it is absolute: how every config's paths are read.
pub fn relative_to(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}
