//! Names and paths inside a lake (LAKE_FORMAT §1): which table names are safe, and where each
//! kind of file lives.

use std::fmt;

/// The folder lakelink keeps its own files in.
pub const LAKELINK_DIR: &str = "_lakelink";
/// The folder of the trickle feed's one-entity manifests.
pub const TRICKLE_DIR: &str = "Microsoft.Athena.TrickleFeedService";
/// The partition of an unpartitioned table, and of rows without a usable partition value.
pub const DEFAULT_PARTITION: &str = "1";

/// The folder of a lake of format `delta` that holds its Delta tables, one folder each
/// (LAKE_FORMAT §9); no table of that lake may have this name.
pub const DELTA_DIR: &str = "deltalake";

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
///
/// A path also says whether its file is an append log (see [`LakePath::is_append_log`]), so
/// that a lake is told, not left to guess from a name, which files grow by appends. Two paths
/// with the same text name the same file and are equal.
#[derive(Debug, Clone)]
pub struct LakePath {
    path: String,
    append_log: bool,
}

impl PartialEq for LakePath {
    fn eq(&self, other: &LakePath) -> bool {
        self.path == other.path
    }
}

impl Eq for LakePath {}

impl std::hash::Hash for LakePath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.path.hash(state);
    }
}

impl PartialOrd for LakePath {
    fn partial_cmp(&self, other: &LakePath) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LakePath {
    fn cmp(&self, other: &LakePath) -> std::cmp::Ordering {
        self.path.cmp(&other.path)
    }
}

impl LakePath {
    /// A file written whole.
    fn plain(path: String) -> LakePath {
        LakePath {
            path,
            append_log: false,
        }
    }

    /// A path from its text, of a file written whole (not an append log). Callers build
    /// paths with the constructors below; this is for paths read back from a listing or a
    /// manifest.
    pub fn from_raw(path: impl Into<String>) -> LakePath {
        LakePath::plain(path.into())
    }

    /// The path's text.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The last segment.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// Whether the file is an append log: written only by [`crate::lake::Lake::append`], in
    /// batches, for as long as the table lives. A store may keep such a file as several
    /// parts (see [`crate::lake::Lake::parts`]); every other file is written whole, once.
    pub fn is_append_log(&self) -> bool {
        self.append_log
    }

    /// `model.json`.
    pub fn model() -> LakePath {
        LakePath::plain("model.json".into())
    }

    /// `_lakelink/models/model-T<n>.json`.
    pub fn published_model(generation: u64) -> LakePath {
        LakePath::plain(format!("{LAKELINK_DIR}/models/model-T{generation}.json"))
    }

    /// `_lakelink/models`.
    pub fn published_models_dir() -> LakePath {
        LakePath::plain(format!("{LAKELINK_DIR}/models"))
    }

    /// `_lakelink/lock`.
    pub fn writer_lock() -> LakePath {
        LakePath::plain(format!("{LAKELINK_DIR}/lock"))
    }

    /// `<table>`.
    pub fn table_dir(table: &TableName) -> LakePath {
        LakePath::plain(table.0.clone())
    }

    /// `<table>/<partition>.csv`, an append log (how a store that splits long logs names
    /// the later parts is its own business: LAKE_FORMAT §6).
    pub fn live_file(table: &TableName, partition: &str) -> LakePath {
        LakePath {
            path: format!("{}/{partition}.csv", table.0),
            append_log: true,
        }
    }

    /// The partition a file directly in a table's folder is the live file of, if it is one
    /// (`<partition>.csv`), and its path as an append log.
    pub fn as_live_file(&self, table: &TableName) -> Option<(String, LakePath)> {
        let (dir, file) = self.path.rsplit_once('/')?;
        let partition = file.strip_suffix(".csv")?;
        (dir == table.0 && !partition.is_empty())
            .then(|| (partition.to_string(), LakePath::live_file(table, partition)))
    }

    /// `<table>/Snapshot`.
    pub fn snapshot_dir(table: &TableName) -> LakePath {
        LakePath::plain(format!("{}/Snapshot", table.0))
    }

    /// `<table>/Snapshot/<table>-T<n>.csv` for an unpartitioned table, or
    /// `<table>/Snapshot/<table>-<partition>-T<n>.csv`.
    pub fn snapshot_file(table: &TableName, partition: Option<&str>, generation: u64) -> LakePath {
        match partition {
            None => LakePath::plain(format!("{0}/Snapshot/{0}-T{generation}.csv", table.0)),
            Some(p) => LakePath::plain(format!("{0}/Snapshot/{0}-{p}-T{generation}.csv", table.0)),
        }
    }

    /// `Microsoft.Athena.TrickleFeedService/<table>-model.json`.
    pub fn trickle_manifest(table: &TableName) -> LakePath {
        LakePath::plain(format!("{TRICKLE_DIR}/{}-model.json", table.0))
    }

    /// `deltalake/<table>`: the table's Delta table in a lake of format `delta` (LAKE_FORMAT
    /// §9), a folder that holds nothing else.
    pub fn delta_table_dir(table: &TableName) -> LakePath {
        LakePath::plain(format!("{DELTA_DIR}/{}", table.0))
    }

    /// A file of the table's Delta table, by its path inside the table's folder (a data file's
    /// `add.path`, or `_delta_log/...`).
    pub fn delta_file(table: &TableName, inside: &str) -> LakePath {
        LakePath::plain(format!("{DELTA_DIR}/{}/{inside}", table.0))
    }

    /// `deltalake/<table>/_delta_log/<version>.json`, zero-padded to 20 digits.
    pub fn delta_commit(table: &TableName, version: u64) -> LakePath {
        LakePath::plain(format!(
            "{DELTA_DIR}/{}/_delta_log/{version:020}.json",
            table.0
        ))
    }

    /// `_lakelink/delta`: the record of each generation a lake of format `delta` published.
    pub fn delta_generations_dir() -> LakePath {
        LakePath::plain(format!("{LAKELINK_DIR}/delta"))
    }

    /// `_lakelink/delta/generation-T<n>.json`.
    pub fn delta_generation(generation: u64) -> LakePath {
        LakePath::plain(format!(
            "{LAKELINK_DIR}/delta/generation-T{generation}.json"
        ))
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
        f.write_str(&self.path)
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
        let live = LakePath::live_file(&t, "2024");
        assert_eq!(live.as_str(), "account/2024.csv");
        assert!(live.is_append_log());
        let listed = LakePath::from_raw("account/2024.csv");
        assert!(!listed.is_append_log());
        assert_eq!(listed.as_live_file(&t), Some(("2024".into(), live)));
        assert_eq!(
            LakePath::from_raw("account/Snapshot/account-T1.csv").as_live_file(&t),
            None
        );
        assert!(!LakePath::snapshot_file(&t, Some("2024"), 1).is_append_log());
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
