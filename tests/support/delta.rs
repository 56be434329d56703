//! Reading a lake's Delta tables with readers lakelink did not write (the `deltalake` Python
//! package, Polars, pyarrow's Parquet reader), through `tests/delta/read_table.py` in the
//! virtual environment `scripts/test.sh` makes (`LAKELINK_TEST_PYTHON`), and the oracle that
//! compares what they read with the source.

use super::{Workspace, read_lake_file, source_columns};
use lakelink_model::FieldKind;
use lakelink_model::datetime::parse_datetime;
use lakelink_model::lake_path::{LakePath, TableName};
use rusqlite::Connection;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::process::Command;

/// One reader's view of a table version: its description and its rows.
#[derive(Debug, Clone)]
pub struct DeltaRead {
    /// `version`, `txn`, `protocol`, `partition_columns`, `files` (each data file's path and size), `schema`.
    pub description: Json,
    /// Each row, column name to tagged value (see `read_table.py`).
    pub rows: Vec<Map<String, Json>>,
}

/// The readers every check runs with.
pub const READERS: [&str; 3] = ["deltalake", "polars", "pyarrow"];

/// The `[lake]` section of a local lake of format `delta`.
pub const DELTA_LAKE: &str = "[lake]\nkind = \"local\"\npath = \"lake\"\nformat = \"delta\"\n";

/// The Python interpreter with the pinned readers.
fn python() -> String {
    std::env::var("LAKELINK_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "LAKELINK_TEST_PYTHON is not set: run the tests with scripts/test.sh, which installs the pinned Delta readers (tests/delta/requirements.txt)"
        )
    })
}

/// Reads `table`'s Delta table in the local lake of `ws` at `version` (default: the newest)
/// with `reader`.
pub fn read_delta(ws: &Workspace, table: &str, reader: &str, version: Option<u64>) -> DeltaRead {
    let path = ws.lake.join("deltalake").join(table);
    read_delta_at(path.to_str().unwrap(), None, reader, version)
}

/// Reads the Delta table in filesystem `filesystem` of `azurite` at `path` (e.g.
/// `deltalake/orders`), the way a reader of an ADLS lake does (`az://` and the account key).
pub fn read_delta_on_azurite(
    azurite: &super::azurite::Azurite,
    filesystem: &str,
    path: &str,
    reader: &str,
    version: Option<u64>,
) -> DeltaRead {
    read_delta_on_azurite_port(azurite.port(), filesystem, path, reader, version)
}

/// [`read_delta_on_azurite`] of an Azurite listening on `port`.
fn read_delta_on_azurite_port(
    port: u16,
    filesystem: &str,
    path: &str,
    reader: &str,
    version: Option<u64>,
) -> DeltaRead {
    let options = serde_json::json!({
        "account_name": super::azurite::ACCOUNT,
        "account_key": super::azurite::ACCOUNT_KEY,
        "use_emulator": "true",
    });
    let emulator = format!("http://127.0.0.1:{port}");
    read_delta_at(
        &format!("az://{filesystem}/{path}"),
        Some((&options.to_string(), &emulator)),
        reader,
        version,
    )
}

/// Reads the Delta table at `uri`, with `remote`'s storage options and emulator address.
fn read_delta_at(
    uri: &str,
    remote: Option<(&str, &str)>,
    reader: &str,
    version: Option<u64>,
) -> DeltaRead {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/delta/read_table.py");
    let version = version.map_or("-".to_string(), |v| v.to_string());
    let mut command = Command::new(python());
    command.args([script, reader, uri, &version]);
    if let Some((options, emulator)) = remote {
        command
            .arg(options)
            .env("AZURITE_BLOB_STORAGE_URL", emulator);
    }
    let out = command.output().expect("run the Delta reader");
    assert!(
        out.status.success(),
        "{reader} could not read {uri}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    let description = serde_json::from_slice(lines.next().expect("a description")).unwrap();
    let rows = lines
        .map(|l| serde_json::from_slice(l).expect("a row"))
        .collect();
    DeltaRead { description, rows }
}

/// The Delta version of `table` in generation `generation`, from lakelink's record of it.
pub fn version_in(ws: &Workspace, table: &str, generation: u64) -> u64 {
    let bytes = ws
        .lake_file(&format!("_lakelink/delta/generation-T{generation}.json"))
        .unwrap_or_else(|| panic!("no record of generation {generation}"));
    let record: Json = serde_json::from_slice(&bytes).unwrap();
    record["tables"][table]
        .as_u64()
        .unwrap_or_else(|| panic!("generation {generation} has no table {table}"))
}

/// The newest generation the lake recorded.
pub fn newest_generation(ws: &Workspace) -> u64 {
    std::fs::read_dir(ws.lake.join("_lakelink/delta"))
        .expect("the generation records")
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().to_string();
            name.strip_prefix("generation-T")?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .max()
        .expect("a generation")
}

/// A source value as a Delta reader must give it back in a column of `kind`, tagged as
/// `read_table.py` tags it, for values that fit the column's type (the oracle of the random
/// workloads; the edge cases spell out what they expect).
fn expected_value(value: &rusqlite::types::Value, kind: FieldKind, scale: usize) -> Json {
    use rusqlite::types::Value as V;
    match (value, kind) {
        (V::Null, _) => Json::Null,
        (V::Integer(i), FieldKind::Integer) => Json::from(*i),
        (V::Integer(i), FieldKind::Boolean) => Json::from(*i != 0),
        (V::Integer(i), FieldKind::Decimal) => Json::from(format!("d:{i}{}", decimal_zeros(scale))),
        (V::Real(f), FieldKind::Decimal) => Json::from(format!("d:{f:.scale$}")),
        (V::Real(f), FieldKind::Real) => Json::from(format!("f:{:016x}", f.to_bits())),
        (V::Text(s), FieldKind::DateTime) => {
            let at = parse_datetime(s).unwrap_or_else(|| panic!("{s:?} is not a date-time"));
            let nanos = at.unix_nanos();
            assert_eq!(nanos % 1000, 0, "{s:?} is finer than a microsecond");
            Json::from(format!("ts:{}", nanos / 1000))
        }
        (V::Text(s), FieldKind::Date) => Json::from(format!("date:{s}")),
        (V::Text(s), _) => Json::from(format!("s:{s}")),
        (V::Blob(b), FieldKind::Blob) => Json::from(format!(
            "b:{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        )),
        (other, kind) => panic!("the oracle has no Delta value for {other:?} in a {kind:?} column"),
    }
}

fn decimal_zeros(scale: usize) -> String {
    if scale == 0 {
        String::new()
    } else {
        format!(".{}", "0".repeat(scale))
    }
}

/// Every row of SQLite table `table` as a Delta reader must give it back, by the integer key
/// `key`: each source column's tagged value, under its Delta column's name (`id` is
/// `id__source`, beside lakelink's `Id`). `scales` gives each decimal column's scale.
pub fn expected_rows(
    conn: &Connection,
    table: &str,
    key: &str,
    scales: &[(&str, usize)],
) -> BTreeMap<i64, Map<String, Json>> {
    let columns = source_columns(conn, table);
    let list: Vec<String> = columns.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let mut stmt = conn
        .prepare(&format!("SELECT {} FROM \"{table}\"", list.join(", ")))
        .unwrap();
    let key_at = columns.iter().position(|(n, _)| n == key).unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut out = BTreeMap::new();
    while let Some(row) = rows.next().unwrap() {
        let mut expected = Map::new();
        let mut id = 0;
        for (i, (name, kind)) in columns.iter().enumerate() {
            let value: rusqlite::types::Value = row.get(i).unwrap();
            if i == key_at {
                id = match value {
                    rusqlite::types::Value::Integer(v) => v,
                    ref other => panic!("key {other:?}"),
                };
            }
            let scale = scales
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, s)| *s);
            expected.insert(delta_name(name), expected_value(&value, *kind, scale));
        }
        out.insert(id, expected);
    }
    out
}

/// The Delta column of source column `name`.
pub fn delta_name(name: &str) -> String {
    let system = [
        "Id",
        "SinkCreatedOn",
        "SinkModifiedOn",
        "versionnumber",
        "IsDelete",
        "PartitionId",
    ];
    if system.iter().any(|s| s.eq_ignore_ascii_case(name)) {
        format!("{name}__source")
    } else {
        name.to_string()
    }
}

/// Asserts that `read` holds exactly `expected`: the same Ids, each once, every source column
/// the same, and the system columns there (`IsDelete` null, as in an in-place table).
pub fn assert_delta_matches(
    what: &str,
    read: &DeltaRead,
    expected: &BTreeMap<i64, Map<String, Json>>,
) {
    let mut seen = BTreeMap::new();
    for row in &read.rows {
        let id = row["Id"]
            .as_i64()
            .unwrap_or_else(|| panic!("{what}: Id {:?}", row["Id"]));
        assert!(
            seen.insert(id, ()).is_none(),
            "{what}: Id {id} appears twice"
        );
        let source = expected
            .get(&id)
            .unwrap_or_else(|| panic!("{what}: Id {id} is in the Delta table but not the source"));
        for (name, value) in source {
            assert_eq!(
                row.get(name).unwrap_or(&Json::Null),
                value,
                "{what}: Id {id} column {name}"
            );
            let original = format!("{name}__lakelink_text");
            assert!(
                row.get(&original).is_none_or(Json::is_null),
                "{what}: Id {id}: {original} holds {:?} for a value that fits",
                row[&original]
            );
        }
        for system in ["SinkCreatedOn", "SinkModifiedOn", "versionnumber"] {
            assert!(!row[system].is_null(), "{what}: Id {id} has no {system}");
        }
        assert!(row["IsDelete"].is_null(), "{what}: Id {id} IsDelete");
    }
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{what}: source rows missing: {missing:?}"
    );
}

/// The value of `key = "..."` in a config section.
fn section_value<'a>(section: &'a str, key: &str) -> Option<&'a str> {
    section.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"'))
    })
}

/// Reads `table`'s Delta table in the lake of `ws`, local or on Azurite, with `reader`, at
/// `version` (default: the newest).
pub fn read_workspace_delta(
    ws: &Workspace,
    table: &str,
    reader: &str,
    version: Option<u64>,
) -> DeltaRead {
    let section = ws.lake_section.as_deref().unwrap_or_default();
    if section_value(section, "kind") != Some("adls") {
        return read_delta(ws, table, reader, version);
    }
    let filesystem = section_value(section, "filesystem").expect("the lake's filesystem");
    let endpoint = section_value(section, "endpoint").expect("the lake's endpoint");
    let port = endpoint
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("an Azurite endpoint on loopback");
    read_delta_on_azurite_port(
        port,
        filesystem,
        &format!("deltalake/{table}"),
        reader,
        version,
    )
}

/// Asserts that every committed version of `table`'s Delta table is whole: its commits are
/// numbered with no gap, from 0 or from a checkpoint retention left the log starting at, each
/// line of each is a JSON action, every data file a kept version names is there at the size
/// its `add` says (as the log's commits and, through the `deltalake` package, its checkpoint
/// have it), no temporary file outlived a crash (local lake), and the `deltalake` package
/// reads the newest version with the rows `lakelink read` prints.
pub fn assert_delta_table_whole(ws: &Workspace, table: &str) {
    let lake = ws.open_lake();
    let name = TableName::new(table).unwrap();
    let mut versions: Vec<u64> = Vec::new();
    let mut checkpoints: Vec<u64> = Vec::new();
    for entry in lake
        .list(&LakePath::delta_file(&name, "_delta_log"))
        .unwrap()
    {
        let file = entry.path.file_name();
        if file == "_last_checkpoint" {
            continue;
        }
        if let Some(v) = file.strip_suffix(".checkpoint.parquet") {
            checkpoints.push(v.parse().unwrap());
            continue;
        }
        versions.push(
            file.strip_suffix(".json")
                .and_then(|d| d.parse().ok())
                .unwrap_or_else(|| panic!("{table}: {file} in the log is not a commit")),
        );
    }
    versions.sort_unstable();
    assert!(!versions.is_empty(), "{table}: no commit");
    let first = versions[0];
    // Retention deletes checkpoints, then commits oldest first: a crash part way leaves commits
    // that go on to a checkpoint.
    assert!(
        first == 0 || checkpoints.iter().any(|c| *c + 1 >= first),
        "{table}: the log starts at version {first}, with no checkpoint to start from"
    );
    // Readers that go by `_last_checkpoint` find the checkpoint it names.
    let last = LakePath::delta_file(&name, "_delta_log/_last_checkpoint");
    if lake.size(&last).unwrap().is_some() {
        let named: Json = serde_json::from_slice(&read_lake_file(lake.as_ref(), &last)).unwrap();
        let v = named["version"]
            .as_u64()
            .expect("_last_checkpoint names a version");
        assert!(
            checkpoints.contains(&v),
            "{table}: _last_checkpoint names version {v}, which has no checkpoint ({checkpoints:?})"
        );
    }
    // The versions the kept generations name, and the oldest of them.
    let mut kept: Vec<u64> = Vec::new();
    for entry in lake.list(&LakePath::delta_generations_dir()).unwrap() {
        let record: Json = serde_json::from_slice(&read_lake_file(lake.as_ref(), &entry.path))
            .unwrap_or_else(|e| panic!("{}: not a generation record ({e})", entry.path));
        kept.extend(record["tables"][table].as_u64());
    }
    let oldest_kept = kept.iter().min().copied().unwrap_or(0);
    let mut files: BTreeMap<String, u64> = BTreeMap::new();
    for (expected, version) in (first..).zip(&versions) {
        assert_eq!(*version, expected, "{table}: the log has a gap");
        let path = LakePath::delta_commit(&name, *version);
        let text = String::from_utf8(read_lake_file(lake.as_ref(), &path)).unwrap();
        assert!(text.ends_with('\n'), "{path}: cut short");
        for line in text.lines() {
            let action: Json = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{path}: a line is not whole JSON ({e}): {line}"));
            if let Some(add) = action.get("add") {
                files.insert(
                    add["path"].as_str().unwrap().to_string(),
                    add["size"].as_u64().unwrap(),
                );
            } else if let Some(remove) = action.get("remove") {
                files.remove(remove["path"].as_str().unwrap());
            }
        }
        if first > 0 || *version < oldest_kept {
            // What the checkpoint holds is checked through a reader below; a version no
            // generation keeps may name files retention deleted.
            continue;
        }
        for (file, size) in &files {
            assert_eq!(
                lake.size(&LakePath::delta_file(&name, file)).unwrap(),
                Some(*size),
                "{table} version {version} names {file}, which must be there whole"
            );
        }
    }
    for version in &kept {
        let read = read_workspace_delta(ws, table, "deltalake", Some(*version));
        for (file, size) in read.description["files"].as_object().unwrap() {
            assert_eq!(
                lake.size(&LakePath::delta_file(&name, file)).unwrap(),
                size.as_u64(),
                "{table}: kept version {version} names {file}, which must be there whole"
            );
        }
    }
    println!(
        "{table}: log from version {first} to {:?}, checkpoints {checkpoints:?}, kept versions {kept:?}",
        versions.last()
    );
    if section_value(ws.lake_section.as_deref().unwrap_or_default(), "kind") != Some("adls") {
        let mut dirs = vec![ws.lake.join("deltalake").join(table)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let file = entry.file_name().to_string_lossy().to_string();
                assert!(
                    !file.starts_with('.'),
                    "{}: a temporary file outlived the restart after a crash",
                    entry.path().display()
                );
                if entry.file_type().unwrap().is_dir() {
                    dirs.push(entry.path());
                }
            }
        }
    }
    let read = read_workspace_delta(ws, table, "deltalake", None);
    let (_, rows) = ws.read(table, None);
    assert_eq!(
        read.rows.len(),
        rows.len(),
        "{table}: the deltalake package reads the rows lakelink read prints"
    );
}

/// Runs `operation` (`vacuum`, `compact`) of the `deltalake` package on `table`'s Delta table
/// in the local lake of `ws`, as another engine would; returns what it printed.
pub fn operate(ws: &Workspace, table: &str, operation: &str) -> String {
    let path = ws.lake.join("deltalake").join(table);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/delta/operate.py");
    let out = Command::new(python())
        .args([script, operation, path.to_str().unwrap()])
        .output()
        .expect("run the Delta operation");
    assert!(
        out.status.success(),
        "{operation} of {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}
