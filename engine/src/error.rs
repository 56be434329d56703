//! The engine's errors, with the table, file or position they concern, and the one place that
//! decides which of them are worth retrying.

use crate::config::ConfigError;
use crate::state::StateError;
use lakelink_model::csv_row::CsvError;
use lakelink_model::lake::LakeError;
use lakelink_model::source::SourceError;

/// What the pipeline can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The config is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The lake failed.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// The checkpoint store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A table cannot be linked as configured.
    #[error("table {table:?}: {reason}")]
    Link {
        /// The table.
        table: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A file in the lake is not what lakelink wrote.
    #[error("{path} in the lake: {source}")]
    Csv {
        /// The file.
        path: String,
        /// What is wrong with it.
        #[source]
        source: CsvError,
    },
    /// A manifest in the lake is damaged or does not match the checkpoint store.
    #[error("{path} in the lake: {reason}")]
    Manifest {
        /// The manifest.
        path: String,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl EngineError {
    /// A short name of the kind of error, for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::Config(_) => "config",
            EngineError::Source(e) if e.is_transient() => "source_busy",
            EngineError::Source(_) => "source",
            EngineError::Lake(e) if e.is_transient() => "lake_io",
            EngineError::Lake(_) => "lake",
            EngineError::State(_) => "checkpoint_store",
            EngineError::Link { .. } => "link",
            EngineError::Csv { .. } => "lake_file",
            EngineError::Manifest { .. } => "manifest",
        }
    }

    /// The table the error concerns, when it names one.
    pub fn table(&self) -> Option<&str> {
        match self {
            EngineError::Link { table, .. } => Some(table),
            _ => None,
        }
    }

    /// Whether the error is about one configured table that cannot be linked as configured
    /// (not in the source, no key, a column the config names is missing, a table lakelink
    /// cannot capture): that table is refused, and the others are linked.
    pub fn refuses_link(&self) -> bool {
        matches!(
            self,
            EngineError::Link { .. }
                | EngineError::Source(
                    SourceError::TableNotFound { .. }
                        | SourceError::UnknownColumn { .. }
                        | SourceError::Uncapturable { .. }
                )
        )
    }

    /// Whether the source is busy (a lock another session holds): worth waiting for, and
    /// only the operation that met it need wait.
    pub fn is_source_busy(&self) -> bool {
        matches!(self, EngineError::Source(SourceError::Busy { .. }))
    }

    /// Whether the same operation can succeed if tried again later: a busy source, a full
    /// disk, a dropped connection. Everything else needs a person and stops the agent.
    pub fn is_transient(&self) -> bool {
        match self {
            EngineError::Source(e) => e.is_transient(),
            EngineError::Lake(e) => e.is_transient(),
            EngineError::Csv {
                source: CsvError::Io(_),
                ..
            } => true,
            _ => false,
        }
    }
}
