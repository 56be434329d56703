//! `lakelink link` and `lakelink unlink`: edit the config file, keeping its comments and
//! layout, so that the config stays the one source of truth. A running agent sees the edit
//! and applies it; otherwise it applies at the next start or `sync`.

use crate::config::{Config, ConfigError};
use std::path::Path;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, value};

/// The options of a table being linked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkOptions {
    /// `partition_by`.
    pub partition_by: Option<String>,
    /// `granularity` (`year` or `month`).
    pub granularity: Option<String>,
    /// `mode` (`in_place` or `append_only`).
    pub mode: Option<String>,
    /// `key`.
    pub key: Option<Vec<String>>,
}

/// What went wrong editing the config.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The config (as it is, or as it would become) is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The file could not be written.
    #[error("config {path}: cannot write it: {source}")]
    Write {
        /// The config file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The edit does not apply.
    #[error("config {path}: {reason}")]
    Refused {
        /// The config file.
        path: String,
        /// Why.
        reason: String,
    },
}

fn load(path: &Path) -> Result<(String, DocumentMut), EditError> {
    // Only a config that is valid now is edited: the edit must not bury an existing mistake.
    Config::load(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let doc = text
        .parse::<DocumentMut>()
        .map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            line: String::new(),
            message: e.to_string().replace('\n', " "),
        })?;
    Ok((text, doc))
}

fn tables(doc: &mut DocumentMut) -> &mut ArrayOfTables {
    if doc
        .get("table")
        .and_then(Item::as_array_of_tables)
        .is_none()
    {
        doc.insert("table", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    doc["table"]
        .as_array_of_tables_mut()
        .expect("`table` was just made an array of tables")
}

fn name_of(t: &Table) -> Option<&str> {
    t.get("name").and_then(Item::as_str)
}

/// Validates the edited text as a config, then replaces the file atomically (a watcher sees
/// one change).
fn save(path: &Path, text: &str) -> Result<(), EditError> {
    Config::parse(path, text)?;
    let write_err = |source| EditError::Write {
        path: path.display().to_string(),
        source,
    };
    let staged = path.with_file_name(format!(
        ".{}.lakelink-edit",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&staged, text).map_err(write_err)?;
    std::fs::rename(&staged, path).map_err(write_err)
}

/// A config edit that has been validated but not written yet.
#[derive(Debug)]
pub struct PlannedEdit {
    /// The config file.
    path: std::path::PathBuf,
    /// Its new text.
    text: String,
    /// The config it parses as.
    pub config: Config,
}

impl PlannedEdit {
    /// Writes the edit (atomically).
    pub fn save(self) -> Result<(), EditError> {
        save(&self.path, &self.text)
    }
}

/// Adds a `[[table]]` for `table`.
pub fn link(path: &Path, table: &str, options: &LinkOptions) -> Result<(), EditError> {
    plan_link(path, table, options)?.save()
}

/// The config with a `[[table]]` for `table` added, checked as a config, not yet written:
/// the caller checks the table against the source first.
pub fn plan_link(
    path: &Path,
    table: &str,
    options: &LinkOptions,
) -> Result<PlannedEdit, EditError> {
    let (_, mut doc) = load(path)?;
    let entries = tables(&mut doc);
    if entries
        .iter()
        .any(|t| name_of(t).is_some_and(|n| n.eq_ignore_ascii_case(table)))
    {
        return Err(EditError::Refused {
            path: path.display().to_string(),
            reason: format!("table {table:?} is already linked"),
        });
    }
    let mut entry = Table::new();
    entry.insert("name", value(table));
    if let Some(p) = &options.partition_by {
        entry.insert("partition_by", value(p.as_str()));
    }
    if let Some(g) = &options.granularity {
        entry.insert("granularity", value(g.as_str()));
    }
    if let Some(m) = &options.mode {
        entry.insert("mode", value(m.as_str()));
    }
    if let Some(key) = &options.key {
        entry.insert(
            "key",
            value(key.iter().map(String::as_str).collect::<Array>()),
        );
    }
    entries.push(entry);
    let text = doc.to_string();
    let config = Config::parse(path, &text)?;
    Ok(PlannedEdit {
        path: path.to_path_buf(),
        text,
        config,
    })
}

/// Removes the `[[table]]` of `table` (or of every table with `all`).
pub fn unlink(path: &Path, table: Option<&str>, all: bool) -> Result<usize, EditError> {
    let (_, mut doc) = load(path)?;
    let entries = tables(&mut doc);
    let before = entries.len();
    entries.retain(|t| {
        !all && !name_of(t).is_some_and(|n| table.is_some_and(|w| n.eq_ignore_ascii_case(w)))
    });
    let removed = before - entries.len();
    if removed == 0 && !all {
        return Err(EditError::Refused {
            path: path.display().to_string(),
            reason: format!("table {:?} is not linked", table.unwrap_or_default()),
        });
    }
    if entries.is_empty() {
        doc.remove("table");
    }
    save(path, &doc.to_string())?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "# the sample agent\n[source]\nkind = \"sqlite\" # embedded\npath = \"crm.db\"\n\n[lake]\nkind = \"local\"\npath = \"lake\"\n\n# accounts by year\n[[table]]\nname = \"account\"\n";

    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lakelink.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn link_and_unlink_keep_comments_and_layout() {
        let (_d, path) = file(CONFIG);
        let options = LinkOptions {
            granularity: Some("month".into()),
            key: Some(vec!["a".into(), "b".into()]),
            ..LinkOptions::default()
        };
        link(&path, "contact", &options).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(CONFIG),
            "the existing text is untouched:\n{text}"
        );
        assert!(
            text.ends_with(
                "[[table]]\nname = \"contact\"\ngranularity = \"month\"\nkey = [\"a\", \"b\"]\n"
            ),
            "{text}"
        );
        assert_eq!(Config::load(&path).unwrap().tables.len(), 2);

        assert_eq!(unlink(&path, Some("account"), false).unwrap(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# the sample agent") && text.contains("kind = \"sqlite\" # embedded"),
            "{text}"
        );
        assert!(!text.contains("name = \"account\""), "{text}");
        assert_eq!(unlink(&path, None, true).unwrap(), 1);
        assert!(Config::load(&path).unwrap().tables.is_empty());
    }

    #[test]
    fn bad_edits_are_refused_and_change_nothing() {
        let (_d, path) = file(CONFIG);
        let err = link(&path, "Account", &LinkOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("table \"Account\" is already linked"), "{err}");
        let err = link(&path, "../x", &LinkOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("table[1].name"), "{err}");
        let bad = LinkOptions {
            granularity: Some("week".into()),
            ..LinkOptions::default()
        };
        let err = link(&path, "x", &bad).unwrap_err().to_string();
        assert!(err.contains("unknown variant `week`"), "{err}");
        let err = unlink(&path, Some("nope"), false).unwrap_err().to_string();
        assert!(err.contains("table \"nope\" is not linked"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), CONFIG);
    }
}
