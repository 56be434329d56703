//! How a table's snapshots are made (LAKE_FORMAT §7): the partition's state, or the log of
//! every change.

use serde::{Deserialize, Serialize};

/// How a table's snapshots are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The partition's state: latest image per Id, deleted rows absent.
    #[default]
    InPlace,
    /// The log of every change.
    AppendOnly,
}

impl Mode {
    /// The value of `lakelink:Mode`.
    pub fn cdm_name(self) -> &'static str {
        match self {
            Mode::InPlace => "InPlace",
            Mode::AppendOnly => "AppendOnly",
        }
    }
}
