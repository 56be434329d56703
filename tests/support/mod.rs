//! Shared helpers of the end-to-end tests: a fresh SQLite database, lake and config in a
//! temporary folder, the real `lakelink` binary, and an oracle that compares what
//! `lakelink read` returns with the source table.

#![allow(dead_code)]

pub mod agent_http;
pub mod application;
pub mod azurite;
pub mod crash;
pub mod crash_harness;
pub mod delta;
pub mod pg;
pub mod stopped_table;
pub mod throttling_proxy;
pub mod workload;

pub use application::{Application, Source};

use lakelink_model::FieldKind;
use lakelink_model::cdm::Model;
use lakelink_model::csv_row::{CsvReader, Record};
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::LakePath;
use lakelink_model::value::Value;
use lakelink_model::value_codec::read_value;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The name of the change log lakelink made in a SQLite database (each lake's own:
/// `_lakelink_<capture name>_log`); panics when there is none or more than one.
pub fn change_log(conn: &Connection) -> String {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE '\\_lakelink%\\_log' ESCAPE '\\'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    match names.as_slice() {
        [one] => one.clone(),
        other => panic!("expected one lakelink change log, found {other:?}"),
    }
}

/// The binary under test.
pub fn lakelink_bin() -> &'static str {
    env!("CARGO_BIN_EXE_lakelink")
}

/// A source database, a lake and a config in a temporary folder.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub lake: PathBuf,
    pub config: PathBuf,
    /// The `[lake]` section when the lake is not the local folder `lake` (an ADLS lake on
    /// Azurite, see [`azurite::AzuriteLake`]).
    pub lake_section: Option<String>,
}

impl Workspace {
    /// A fresh workspace whose database is set up by `schema_sql`.
    pub fn new(schema_sql: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("source.db");
        let conn = Connection::open(&db).expect("create source db");
        conn.execute_batch(schema_sql).expect("source schema");
        Workspace {
            lake: dir.path().join("lake"),
            config: dir.path().join("lakelink.toml"),
            db,
            dir,
            lake_section: None,
        }
    }

    /// The engine in-process on the config and the local lake folder, for a test that drives
    /// its steps (`reconcile`, `snapshot`) one by one.
    pub fn pipeline(&self) -> lakelink_engine::pipeline::Pipeline {
        lakelink_engine::pipeline::Pipeline::open_with_lake(
            lakelink_engine::config::Config::load(&self.config).expect("the config"),
            Box::new(
                lakelink_connectors::lake::local::LocalLake::open(&self.lake, None)
                    .expect("the lake"),
            ),
            std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        )
        .expect("open the pipeline")
    }

    /// Each live file of `table` the checkpoint store records, by partition: its length and
    /// the bytes from its start its initial copy wrote in `Id` order.
    pub fn id_ordered_prefixes(&self, table: &str) -> BTreeMap<String, (u64, u64)> {
        let state = Connection::open(self.config.parent().unwrap().join("state.db")).unwrap();
        let mut stmt = state
            .prepare("SELECT partition, len, id_ordered_len FROM live_files WHERE name = ?1")
            .unwrap();
        stmt.query_map([table], |r| {
            Ok((
                r.get(0)?,
                (r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    /// The lake the config names, opened as the agent opens it (for reading what is in a
    /// lake that is not a local folder).
    pub fn open_lake(&self) -> Box<dyn lakelink_model::lake::Lake> {
        let config = lakelink_engine::config::Config::load(&self.config).expect("the config");
        lakelink_engine::pipeline::open_lake(&config.lake).expect("open the lake")
    }

    /// Whether the lake is of format `delta`.
    pub fn is_delta(&self) -> bool {
        self.lake_section
            .as_deref()
            .is_some_and(|s| s.contains("format = \"delta\""))
    }

    /// Whether `lake` (this workspace's) has published a generation: model.json, or a Delta
    /// lake's generation record.
    pub fn has_published(&self, lake: &dyn Lake) -> bool {
        if self.is_delta() {
            !lake
                .list(&LakePath::delta_generations_dir())
                .unwrap()
                .is_empty()
        } else {
            lake.size(&LakePath::model()).unwrap().is_some()
        }
    }

    /// Waits until the lake, whatever kind and format it is, has published: the initial sync
    /// is done.
    pub fn wait_for_publish(&self, seconds: u64) {
        let lake = self.open_lake();
        wait_for(seconds, "the initial sync to publish", || {
            self.has_published(lake.as_ref())
        });
    }

    /// The whole content of `path` in the lake, or `None` when it does not exist.
    pub fn lake_file(&self, path: &str) -> Option<Vec<u8>> {
        use std::io::Read as _;
        if self.lake_section.is_none() {
            return std::fs::read(self.lake.join(path)).ok();
        }
        let lake = self.open_lake();
        let path = lakelink_model::lake_path::LakePath::from_raw(path);
        let mut reader = match lake.read(&path, 0, None) {
            Ok(reader) => reader,
            Err(lakelink_model::lake::LakeError::NotFound { .. }) => return None,
            Err(e) => panic!("read {path}: {e}"),
        };
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).expect("read the lake file");
        Some(bytes)
    }

    /// A connection to the source, as an application would hold.
    pub fn source(&self) -> Connection {
        let conn = Connection::open(&self.db).expect("open source db");
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn
    }

    /// Writes the config with `[engine]` extras and `[[table]]` sections. Snapshots are hourly
    /// unless the extras set `snapshot_interval`.
    pub fn write_config(&self, engine_extra: &str, tables: &str) {
        self.write_config_for_source(
            "[source]\nkind = \"sqlite\"\npath = \"source.db\"\n",
            engine_extra,
            tables,
        );
    }

    /// Writes the config with the `[source]` section `source`, this workspace's lake,
    /// `[engine]` extras and `[[table]]` sections: one place fills in the engine's defaults,
    /// whichever the source.
    pub fn write_config_for_source(&self, source: &str, engine_extra: &str, tables: &str) {
        let sets = |key: &str| {
            engine_extra
                .lines()
                .any(|l| l.split('=').next().is_some_and(|k| k.trim() == key))
        };
        // Hourly snapshots, and the status endpoint on a free port so that tests never collide.
        let mut defaults = String::new();
        if !sets("snapshot_interval") {
            defaults.push_str("snapshot_interval = \"1h\"\n");
        }
        if !sets("listen") {
            defaults.push_str("listen = \"127.0.0.1:0\"\n");
        }
        let lake = self
            .lake_section
            .clone()
            .unwrap_or_else(|| "[lake]\nkind = \"local\"\npath = \"lake\"\n".to_string());
        let text = format!(
            "{source}\n{lake}\n[engine]\n{defaults}state = \"state.db\"\n{engine_extra}\n\n{tables}\n"
        );
        std::fs::write(&self.config, text).expect("write config");
    }

    /// Runs `lakelink` with `args` (the config is appended where `{config}` stands).
    pub fn lakelink(&self, args: &[&str]) -> Output {
        let config = self.config.to_string_lossy().to_string();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{config}", &config))
            .collect();
        Command::new(lakelink_bin())
            .args(&args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run lakelink")
    }

    /// `lakelink sync`, which must succeed; returns its standard output.
    pub fn sync(&self) -> String {
        let out = self.lakelink(&["sync", "--config", "{config}"]);
        assert!(
            out.status.success(),
            "lakelink sync failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Runs `lakelink` with `args`, which must fail with one line starting `lakelink: `;
    /// returns that line.
    pub fn failure(&self, args: &[&str]) -> String {
        let out = self.lakelink(args);
        assert!(
            !out.status.success(),
            "expected a failure, got: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let last = err.lines().last().unwrap_or_default().to_string();
        assert!(last.starts_with("lakelink: "), "{err}");
        last
    }

    /// `lakelink read` of `table`, parsed: the header and the rows.
    pub fn read(&self, table: &str, generation: Option<u64>) -> (Vec<String>, Vec<Record>) {
        let (flag, lake) = match self.lake_section {
            None => ("--lake", self.lake.to_string_lossy().to_string()),
            Some(_) => ("--config", self.config.to_string_lossy().to_string()),
        };
        let mut args = vec!["read", flag, lake.as_str(), table];
        let g;
        if let Some(generation) = generation {
            g = generation.to_string();
            args.extend(["--generation", g.as_str()]);
        }
        let out = self.lakelink(&args);
        assert!(
            out.status.success(),
            "lakelink read failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut records = parse_csv(&out.stdout);
        let header = records
            .remove(0)
            .iter()
            .map(|(t, _)| t.to_string())
            .collect();
        (header, records)
    }

    /// The trickle-feed manifest of `table` (`Microsoft.Athena.TrickleFeedService/<table>-model.json`):
    /// its entity's attributes, in a lake of either format.
    pub fn trickle_model(&self, table: &str) -> Model {
        let path = format!("Microsoft.Athena.TrickleFeedService/{table}-model.json");
        let bytes = self.lake_file(&path).expect("the trickle-feed manifest");
        serde_json::from_slice(&bytes).expect("the trickle-feed manifest parses")
    }

    /// model.json.
    pub fn model(&self) -> Model {
        let bytes = self.lake_file("model.json").expect("model.json");
        serde_json::from_slice(&bytes).expect("model.json parses")
    }

    /// How many rows the live files of `table` hold in all: every change once, so tests count
    /// changes with it.
    pub fn live_row_count(&self, table: &str) -> usize {
        self.live_files(table).values().map(Vec::len).sum()
    }

    /// Every live file of `table`, by partition.
    pub fn live_files(&self, table: &str) -> BTreeMap<String, Vec<Record>> {
        let mut out = BTreeMap::new();
        if self.lake_section.is_some() {
            let lake = self.open_lake();
            let name = lakelink_model::lake_path::TableName::new(table).expect("a table name");
            for entry in lake
                .list(&LakePath::table_dir(&name))
                .expect("list the table's folder")
            {
                // Read as the append log it is: every split, in order.
                if let Some((partition, live)) = entry.path.as_live_file(&name)
                    && !entry.is_dir
                {
                    // Read with the lake already open: opening one per file costs requests.
                    let bytes = read_lake_file(lake.as_ref(), &live);
                    out.insert(partition, parse_csv(&bytes));
                }
            }
            return out;
        }
        let Ok(entries) = std::fs::read_dir(self.lake.join(table)) else {
            return out;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "csv") {
                let partition = path.file_stem().unwrap().to_string_lossy().to_string();
                out.insert(partition, parse_csv(&std::fs::read(&path).unwrap()));
            }
        }
        out
    }
}

/// Parses CSV bytes written by lakelink.
pub fn parse_csv(bytes: &[u8]) -> Vec<Record> {
    let mut reader = CsvReader::new(bytes, 0);
    let mut out = Vec::new();
    let mut record = Record::default();
    while reader.read_record(&mut record).expect("valid CSV") {
        out.push(record.clone());
    }
    out
}

/// The columns of a source table as the application sees them (generated columns included,
/// which `table_info` leaves out): names and how their values are written.
pub fn source_columns(conn: &Connection, table: &str) -> Vec<(String, FieldKind)> {
    let mut stmt = conn
        .prepare(
            "SELECT name, type FROM pragma_table_xinfo(?1) WHERE hidden IN (0, 2, 3) ORDER BY cid",
        )
        .unwrap();
    stmt.query_map([table], |r| {
        let declared: String = r.get(1)?;
        Ok((
            r.get(0)?,
            lakelink_connectors::source::sqlite::types::column_type(&declared).kind,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Every row of a source table, keyed by the text of its key column.
pub fn source_rows(conn: &Connection, table: &str, key: &str) -> BTreeMap<String, Vec<Value>> {
    let columns = source_columns(conn, table);
    let list: Vec<String> = columns.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let mut stmt = conn
        .prepare(&format!("SELECT {} FROM \"{table}\"", list.join(", ")))
        .unwrap();
    let key_index = columns
        .iter()
        .position(|(n, _)| n == key)
        .expect("key column");
    let mut rows = stmt.query([]).unwrap();
    let mut out = BTreeMap::new();
    while let Some(row) = rows.next().unwrap() {
        let values: Vec<Value> = (0..columns.len())
            .map(|i| match row.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => Value::Null,
                rusqlite::types::ValueRef::Integer(v) => Value::Integer(v),
                rusqlite::types::ValueRef::Real(v) => Value::Real(v),
                rusqlite::types::ValueRef::Text(t) => {
                    Value::Text(String::from_utf8(t.to_vec()).unwrap())
                }
                rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            })
            .collect();
        out.insert(key_text(&values[key_index]), values);
    }
    out
}

/// A key value as text, for matching lake rows with source rows.
pub fn key_text(v: &Value) -> String {
    match v {
        Value::Integer(i) => i.to_string(),
        Value::Text(t) => t.clone(),
        other => format!("{other:?}"),
    }
}

/// Whether a lake value stands for the source value: equal, or the same instant for a
/// date-time the lake normalised.
pub fn same_value(source: &Value, lake: &Value, kind: FieldKind) -> bool {
    if source.same_as(lake) {
        return true;
    }
    // LAKE_FORMAT §4: a BLOB is written as base64 text; only a BLOB column reads it back as
    // bytes, elsewhere it reads back as that text.
    if let (Value::Blob(bytes), Value::Text(text)) = (source, lake) {
        use base64::Engine as _;
        return kind != FieldKind::Blob
            && base64::engine::general_purpose::STANDARD.encode(bytes) == *text;
    }
    if let (Value::Text(s), Value::Text(l), FieldKind::DateTime) = (source, lake, kind) {
        let parse = lakelink_model::datetime::parse_datetime;
        return parse(s).is_some() && parse(s) == parse(l);
    }
    false
}

/// Asserts that what `lakelink read` returns for `table` equals the source table: the same
/// Ids, and every source column's value the same.
pub fn assert_lake_matches_source(ws: &Workspace, table: &str, key: &str, generation: Option<u64>) {
    assert_lake_matches_source_by(ws, table, key, |id| id.to_string(), generation)
}

/// [`assert_lake_matches_source`] for a table whose Id is not the text of one column:
/// `id_to_key` maps the lake's Id to the text of the source column `key`. Any source: the
/// oracle is the same for SQLite and PostgreSQL.
pub fn assert_lake_matches_source_by(
    ws: &impl Source,
    table: &str,
    key: &str,
    id_to_key: fn(&str) -> String,
    generation: Option<u64>,
) {
    let (columns, expected) = ws.application().source_rows(table, key);
    let (header, rows) = ws.workspace().read(table, generation);
    assert_rows_match_source(table, &columns, &expected, &header, &rows, id_to_key);
}

/// A source table's columns (names and kinds) and its rows keyed by one column's text.
pub type SourceTableRows = (Vec<(String, FieldKind)>, BTreeMap<String, Vec<Value>>);

/// Asserts that the rows a reader got for `table` (`header` and `rows`, as `lakelink read`
/// prints them) are the `expected` source rows, keyed by the text of the key column: the
/// same Ids, each once, and every source column's value the same. `id_to_key` maps the lake's
/// Id to that key text.
pub fn assert_rows_match_source(
    table: &str,
    columns: &[(String, FieldKind)],
    expected: &BTreeMap<String, Vec<Value>>,
    header: &[String],
    rows: &[Record],
    id_to_key: fn(&str) -> String,
) {
    let id_at = header.iter().position(|h| h == "Id").expect("Id attribute");
    let mut seen = BTreeMap::new();
    for row in rows {
        let id = id_to_key(row.get(id_at).expect("Id field").0);
        assert!(
            seen.insert(id.clone(), ()).is_none(),
            "{table}: Id {id} appears twice in the snapshot"
        );
        let source = expected
            .get(&id)
            .unwrap_or_else(|| panic!("{table}: Id {id} is in the lake but not in the source"));
        for (c, (name, kind)) in columns.iter().enumerate() {
            let at = header
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| panic!("{table}: no attribute {name}"));
            let (text, quoted) = row.get(at).unwrap_or(("", false));
            let lake = read_value(text, quoted, *kind);
            assert!(
                same_value(&source[c], &lake, *kind),
                "{table} Id {id} column {name}: source {:?}, lake {:?}",
                source[c],
                lake
            );
        }
    }
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{table}: source rows missing from the lake: {missing:?}"
    );
}

/// The index of attribute `name` in model.json's entity `table`.
pub fn attribute_index(model: &Model, table: &str, name: &str) -> usize {
    model
        .entity(table)
        .expect("entity")
        .attributes
        .iter()
        .position(|a| a.name == name)
        .unwrap_or_else(|| panic!("no attribute {name}"))
}

/// Path helper.
pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// A running `lakelink run`, its stderr going to a file the test can read while it runs.
pub struct RunningAgent {
    pub child: std::process::Child,
    pub log: PathBuf,
}

impl RunningAgent {
    /// Starts the agent on the workspace's config.
    pub fn start(ws: &Workspace) -> RunningAgent {
        RunningAgent::start_logging(ws, "info")
    }

    /// Starts the agent on the workspace's config, logging what `RUST_LOG` filter `filter`
    /// lets through (e.g. a module's debug lines).
    pub fn start_logging(ws: &Workspace, filter: &str) -> RunningAgent {
        // One file per agent: two agents of one test must not write over each other's log.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = ws
            .dir
            .path()
            .join(format!("agent-{}-{n}.log", std::process::id()));
        let file = std::fs::File::create(&log).expect("agent log");
        let child = Command::new(lakelink_bin())
            .args(["run", "--config", ws.config.to_str().unwrap()])
            .env("RUST_LOG", filter)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start the agent");
        RunningAgent { child, log }
    }

    /// What the agent logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address of its status endpoint, once it has logged it.
    pub fn status_address(&self) -> Option<String> {
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains("serving /metrics and /status"))?;
        let at = line.find("address=")? + "address=".len();
        Some(line[at..].split_whitespace().next()?.to_string())
    }

    /// Sends `signal` (`USR1`, `STOP`, `CONT`, ...) to the agent.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {} failed", self.child.id());
    }

    /// Asks the agent for a snapshot now (SIGUSR1, as `systemctl kill -s USR1` does) and
    /// waits until it has published a newer generation than the lake of `ws` had.
    pub fn snapshot_now(&self, ws: &Workspace) {
        let before = ws.model().generation;
        self.signal("USR1");
        wait_for(30, "a snapshot published after SIGUSR1", || {
            ws.model().generation > before
        });
    }

    /// Stops the agent with SIGTERM and fails, with its whole log, unless it exits cleanly.
    pub fn stop_cleanly(self) {
        let log = self.log.clone();
        let status = self.stop();
        assert!(
            status.success(),
            "the agent exited with {status}; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }

    /// Stops the agent with SIGTERM and returns its exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait for the agent")
    }
}

impl Drop for RunningAgent {
    /// SIGKILL, so that a failing test never leaves an agent behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `what` holds, failing with `description` after `seconds`.
pub fn wait_for(seconds: u64, description: &str, mut what: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !what() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {seconds} s waiting for {description}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The number of capture triggers in the source.
pub fn trigger_count(conn: &Connection) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Every manifest lakelink keeps (and model.json) parses, and every file it names exists
/// and is whole CSV.
pub fn assert_manifests_whole(ws: &Workspace) {
    let lake = ws.open_lake();
    if ws.lake_section.is_none() {
        for entry in std::fs::read_dir(ws.lake.join("_lakelink/models")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            assert!(
                !name.starts_with('.'),
                "{name}: a temporary file outlived the restart after a crash"
            );
        }
    }
    let mut manifests = vec![LakePath::model()];
    for entry in lake.list(&LakePath::published_models_dir()).unwrap() {
        manifests.push(entry.path);
    }
    for path in manifests {
        let bytes = read_lake_file(lake.as_ref(), &path);
        let model: lakelink_model::cdm::Model =
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path}: not whole: {e}"));
        for entity in &model.entities {
            for p in &entity.partitions {
                let file = lake
                    .path_of_location(&p.location)
                    .unwrap_or_else(|| panic!("{path} names {}, outside the lake", p.location));
                // parse_csv panics on a torn or malformed row.
                parse_csv(&read_lake_file(lake.as_ref(), &file));
            }
        }
    }
}

/// The whole file at `path`, read through the lake.
pub fn read_lake_file(lake: &dyn Lake, path: &LakePath) -> Vec<u8> {
    let mut bytes = Vec::new();
    lake.read(path, 0, None)
        .and_then(|mut r| {
            r.read_to_end(&mut bytes)
                .map_err(|e| lakelink_model::lake::LakeError::io("read", path, e))
        })
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    bytes
}

/// Runs `lakelink` with `args` on the workspace's config and returns its exit status and its
/// peak resident memory in MiB (the kernel's high-water mark, `VmHWM`, read until it exits).
pub fn peak_memory_of_lakelink(ws: &Workspace, args: &[&str]) -> (std::process::ExitStatus, u64) {
    let config = ws.config.to_string_lossy().to_string();
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{config}", &config))
        .collect();
    let mut child = Command::new(lakelink_bin())
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run lakelink");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait for lakelink") {
            return (status, peak_kib / 1024);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
