//! Names and paths inside a lake (LAKE_FORMAT §1): which table names are safe, and where each
//! kind of file lives.

use std::fmt;

/// The folder lakelink keeps its own files in.
pub const LAKELINK_DIR: &str = "_lakelink";
/// The folder of the trickle feed's one-entity manifests.
pub const TRICKLE_DIR: &str = "Microsoft.Athena.TrickleFeedService";
/// The partition of an unpartitioned table, and of rows without a usable partition value.
pub const DEFAULT_PARTITION: &str = "1";

/// A table name that is safe as one path segment and as a CDM entity name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName(String);

/// Why a table name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "table name {name:?} {reason}; link the table under a name that is a single plain path segment"
)]
pub struct UnsafeTableName {
    /// The refused name.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl TableName {
    /// Checks `name` against LAKE_FORMAT §1.
    pub fn new(name: &str) -> Result<TableName, UnsafeTableName> {
        let refuse = |reason| {
            Err(UnsafeTableName {
                name: name.to_string(),
                reason,
            })
        };
        if name.is_empty() {
            return refuse("is empty");
        }
        if name.contains(['/', '\\']) {
            return refuse("contains a path separator");
        }
        if name.contains('.') {
            return refuse("contains '.', which CDM forbids in entity names");
        }
        if name.contains('"') {
            return refuse("contains '\"', which CDM forbids in entity names");
        }
        if name.chars().any(char::is_control) {
            return refuse("contains a control character");
        }
        if name.eq_ignore_ascii_case(LAKELINK_DIR) {
            return refuse("is the name of lakelink's own folder");
        }
        Ok(TableName(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A path inside a lake: `/`-separated, relative to the lake's root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LakePath(String);

impl LakePath {
    /// A path from its text. Callers build paths with the constructors below; this is for
    /// paths read back from a listing.
    pub fn from_raw(path: impl Into<String>) -> LakePath {
        LakePath(path.into())
    }

    /// The path's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// `model.json`.
    pub fn model() -> LakePath {
        LakePath("model.json".into())
    }

    /// `_lakelink/models/model-T<n>.json`.
    pub fn published_model(generation: u64) -> LakePath {
        LakePath(format!("{LAKELINK_DIR}/models/model-T{generation}.json"))
    }

    /// `_lakelink/models`.
    pub fn published_models_dir() -> LakePath {
        LakePath(format!("{LAKELINK_DIR}/models"))
    }

    /// `_lakelink/lock`.
    pub fn writer_lock() -> LakePath {
        LakePath(format!("{LAKELINK_DIR}/lock"))
    }

    /// `<table>`.
    pub fn table_dir(table: &TableName) -> LakePath {
        LakePath(table.0.clone())
    }

    /// `<table>/<partition>.csv`, or `<table>/<partition>_00n.csv` for split `n` > 0.
    pub fn live_file(table: &TableName, partition: &str, split: u32) -> LakePath {
        if split == 0 {
            LakePath(format!("{}/{partition}.csv", table.0))
        } else {
            LakePath(format!("{}/{partition}_{split:03}.csv", table.0))
        }
    }

    /// `<table>/Snapshot`.
    pub fn snapshot_dir(table: &TableName) -> LakePath {
        LakePath(format!("{}/Snapshot", table.0))
    }

    /// `<table>/Snapshot/<table>-T<n>.csv` for an unpartitioned table, or
    /// `<table>/Snapshot/<table>-<partition>-T<n>.csv`.
    pub fn snapshot_file(table: &TableName, partition: Option<&str>, generation: u64) -> LakePath {
        match partition {
            None => LakePath(format!("{0}/Snapshot/{0}-T{generation}.csv", table.0)),
            Some(p) => LakePath(format!("{0}/Snapshot/{0}-{p}-T{generation}.csv", table.0)),
        }
    }

    /// `Microsoft.Athena.TrickleFeedService/<table>-model.json`.
    pub fn trickle_manifest(table: &TableName) -> LakePath {
        LakePath(format!("{TRICKLE_DIR}/{}-model.json", table.0))
    }

    /// The generation in a snapshot file's or published manifest's name (`...-T<n>.csv`,
    /// `model-T<n>.json`).
    pub fn generation(&self) -> Option<u64> {
        let name = self.file_name();
        let stem = name
            .strip_suffix(".csv")
            .or_else(|| name.strip_suffix(".json"))?;
        let at = stem.rfind("-T")?;
        stem[at + 2..].parse().ok()
    }
}

impl fmt::Display for LakePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_are_refused() {
        for bad in [
            "",
            "..",
            ".",
            "../x",
            "a/b",
            "a\\b",
            "a.b",
            "a\"b",
            "a\nb",
            "_lakelink",
        ] {
            assert!(TableName::new(bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["account", "Order Lines", "données", "x-1"] {
            assert!(TableName::new(good).is_ok(), "{good:?} was refused");
        }
    }

    #[test]
    fn paths_follow_the_layout() {
        let t = TableName::new("account").unwrap();
        assert_eq!(
            LakePath::live_file(&t, "2024", 0).as_str(),
            "account/2024.csv"
        );
        assert_eq!(
            LakePath::live_file(&t, "2024", 2).as_str(),
            "account/2024_002.csv"
        );
        assert_eq!(
            LakePath::snapshot_file(&t, Some("2024-05"), 7).as_str(),
            "account/Snapshot/account-2024-05-T7.csv"
        );
        assert_eq!(
            LakePath::snapshot_file(&t, None, 7).as_str(),
            "account/Snapshot/account-T7.csv"
        );
        assert_eq!(
            LakePath::snapshot_file(&t, Some("2024"), 12).generation(),
            Some(12)
        );
        assert_eq!(LakePath::published_model(3).generation(), Some(3));
        assert_eq!(LakePath::model().generation(), None);
    }
}
