//! A random workload over a CRM-like schema, and the checks that the lake holds every change
//! of it exactly once. Shared by the end-to-end tests and the crash harness, for every source
//! (through [`Application`]); the SQL here is SQLite's, PostgreSQL's is in `pg.rs`.

use super::{Application, Source, SourceTableRows, Workspace, attribute_index};
use lakelink_model::csv_row::Record;
use rand::RngExt;
use rand::rngs::StdRng;
use rusqlite::{Connection, params};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub const CRM_SCHEMA: &str = "
    CREATE TABLE account (
        accountid TEXT PRIMARY KEY, name TEXT NOT NULL, revenue REAL, employees INTEGER,
        notes TEXT, createdon DATETIME);
    CREATE TABLE contact (
        contactid INTEGER PRIMARY KEY, fullname TEXT, email TEXT, createdon DATETIME);
    CREATE TABLE tag (
        owner TEXT NOT NULL, label TEXT NOT NULL, weight INTEGER);
";

pub const CRM_TABLES: &str = r#"
[[table]]
name = "account"
partition_by = "createdon"
granularity = "year"

[[table]]
name = "contact"
granularity = "month"
mode = "append_only"

[[table]]
name = "tag"
key = ["owner", "label"]
"#;

/// Counts the live rows each table should have: one per change, plus one delete record for
/// every update that moves a row to another partition or changes its key, and for every row a
/// `TRUNCATE` removed.
#[derive(Default, Clone)]
pub struct Expected {
    pub live_rows: BTreeMap<&'static str, usize>,
    /// Tables emptied by a `TRUNCATE` (where the source has one), for the run's report.
    pub truncates: usize,
}

impl Expected {
    pub fn add(&mut self, table: &'static str, n: usize) {
        *self.live_rows.entry(table).or_default() += n;
    }
}

pub fn created(rng: &mut StdRng) -> String {
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}",
        rng.random_range(2019..=2026),
        rng.random_range(1..=12),
        rng.random_range(1..=28),
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60)
    )
}

pub fn tricky_text(rng: &mut StdRng) -> Option<String> {
    match rng.random_range(0..6) {
        0 => None,
        1 => Some(String::new()),
        2 => Some("quote \" comma , newline\nend".into()),
        3 => Some("Zoë · 東京 · 🦀".into()),
        _ => Some(format!("note {}", rng.random_range(0..1_000_000))),
    }
}

fn year_of(created: &str) -> &str {
    &created[..4]
}

fn month_of(created: &str) -> &str {
    &created[..7]
}

/// One random change to one table; returns the number of live rows it adds.
fn random_change(conn: &Connection, rng: &mut StdRng, next_id: &mut i64, expected: &mut Expected) {
    let pick = |conn: &Connection, sql: &str, rng: &mut StdRng| -> Option<String> {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM ({sql})"), [], |r| r.get(0))
            .unwrap();
        if n == 0 {
            return None;
        }
        let off = rng.random_range(0..n);
        conn.query_row(&format!("{sql} LIMIT 1 OFFSET {off}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .ok()
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
    };
    match rng.random_range(0..10) {
        0 | 1 => {
            *next_id += 1;
            conn.execute(
                "INSERT INTO account VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    format!("acc-{next_id:06}"),
                    format!("Account {next_id}"),
                    rng.random_range(-1e6..1e9),
                    rng.random_range(0..100_000),
                    tricky_text(rng),
                    created(rng)
                ],
            )
            .unwrap();
            expected.add("account", 1);
        }
        2 | 3 => {
            if let Some(id) = pick(
                conn,
                "SELECT accountid FROM account ORDER BY accountid",
                rng,
            ) {
                let old: String = conn
                    .query_row(
                        "SELECT createdon FROM account WHERE accountid = ?1",
                        [&id],
                        |r| r.get(0),
                    )
                    .unwrap();
                // Every third update moves the row to another year's partition.
                let new = if rng.random_range(0..3) == 0 {
                    created(rng)
                } else {
                    old.clone()
                };
                conn.execute(
                    "UPDATE account SET revenue = ?2, notes = ?3, createdon = ?4 WHERE accountid = ?1",
                    params![id, rng.random_range(0.0..1e6), tricky_text(rng), new],
                )
                .unwrap();
                expected.add(
                    "account",
                    if year_of(&old) != year_of(&new) { 2 } else { 1 },
                );
            }
        }
        4 => {
            if let Some(id) = pick(
                conn,
                "SELECT accountid FROM account ORDER BY accountid",
                rng,
            ) {
                conn.execute("DELETE FROM account WHERE accountid = ?1", [&id])
                    .unwrap();
                expected.add("account", 1);
            }
        }
        5 => {
            *next_id += 1;
            conn.execute(
                "INSERT INTO contact VALUES (?1, ?2, ?3, ?4)",
                params![
                    *next_id,
                    format!("Person {next_id}"),
                    tricky_text(rng),
                    created(rng)
                ],
            )
            .unwrap();
            expected.add("contact", 1);
        }
        6 => {
            if let Some(id) = pick(
                conn,
                "SELECT contactid FROM contact ORDER BY contactid",
                rng,
            ) {
                let old: String = conn
                    .query_row(
                        "SELECT createdon FROM contact WHERE contactid = ?1",
                        [&id],
                        |r| r.get(0),
                    )
                    .unwrap();
                let new = created(rng);
                conn.execute(
                    "UPDATE contact SET email = ?2, createdon = ?3 WHERE contactid = ?1",
                    params![id, tricky_text(rng), new],
                )
                .unwrap();
                expected.add(
                    "contact",
                    if month_of(&old) != month_of(&new) {
                        2
                    } else {
                        1
                    },
                );
            }
        }
        7 => {
            if let Some(id) = pick(
                conn,
                "SELECT contactid FROM contact ORDER BY contactid",
                rng,
            ) {
                conn.execute("DELETE FROM contact WHERE contactid = ?1", [&id])
                    .unwrap();
                expected.add("contact", 1);
            }
        }
        8 => {
            *next_id += 1;
            conn.execute(
                "INSERT INTO tag VALUES (?1, ?2, ?3)",
                params![
                    format!("o{}", *next_id % 7),
                    format!("label {next_id}"),
                    rng.random_range(0..10)
                ],
            )
            .unwrap();
            expected.add("tag", 1);
        }
        _ => {
            // A key change: the tag gets another label, which is another Id.
            if let Some(label) = pick(conn, "SELECT label FROM tag ORDER BY label", rng) {
                *next_id += 1;
                conn.execute(
                    "UPDATE tag SET label = ?2 WHERE label = ?1",
                    params![label, format!("relabelled {next_id}")],
                )
                .unwrap();
                expected.add("tag", 2);
            }
        }
    }
}

/// The CRM workload in SQLite's SQL.
impl Application for Connection {
    fn random_change(&mut self, rng: &mut StdRng, next_id: &mut i64, expected: &mut Expected) {
        random_change(self, rng, next_id, expected);
    }

    fn row_count(&mut self, table: &str) -> usize {
        let n: i64 = self
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        n as usize
    }

    fn source_rows(&mut self, table: &str, key: &str) -> SourceTableRows {
        (
            super::source_columns(self, table),
            super::source_rows(self, table, key),
        )
    }
}

/// Folds a table's live files (every change, in order) into the latest image per Id, and
/// checks positions never go back within a file. Within a file the later row wins; across
/// files the later position, and at one position an image over a delete record (a change that
/// moves a row writes a delete record to the old partition and the image to the new one).
pub fn fold_live_files(ws: &Workspace, table: &str) -> (BTreeMap<String, Record>, usize) {
    let model = ws.trickle_model(table);
    let version = attribute_index(&model, table, "versionnumber");
    let is_delete = attribute_index(&model, table, "IsDelete");
    // Each Id's last row in each file: its position and its image (empty: deleted).
    let mut state: BTreeMap<String, (i64, Record)> = BTreeMap::new();
    let mut rows = 0;
    for (partition, records) in ws.live_files(table) {
        let mut last = i64::MIN;
        let mut in_file: BTreeMap<String, (i64, Record)> = BTreeMap::new();
        for r in records {
            rows += 1;
            let position: i64 = r.get(version).unwrap().0.parse().expect("versionnumber");
            assert!(
                position >= last,
                "{table}/{partition}.csv: versionnumber went back from {last} to {position}"
            );
            last = position;
            let id = r.get(0).unwrap().0.to_string();
            let deleted = r.get(is_delete).is_some_and(|(t, _)| t == "True");
            in_file.insert(id, (position, if deleted { Record::default() } else { r }));
        }
        for (id, (position, r)) in in_file {
            match state.entry(id) {
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    let (seen_at, seen) = e.get();
                    if position > *seen_at || (position == *seen_at && seen.is_empty()) {
                        e.insert((position, r));
                    }
                }
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert((position, r));
                }
            }
        }
    }
    let live = state
        .into_iter()
        .filter(|(_, (_, r))| !r.is_empty())
        .map(|(id, (_, r))| (id, r))
        .collect();
    (live, rows)
}

/// The Id of a `tag` row is the JSON array of its key (owner, label); labels are unique.
pub fn tag_label(id: &str) -> String {
    let key: Vec<String> = serde_json::from_str(id).expect("composite Id is a JSON array");
    key[1].clone()
}

pub fn plain(id: &str) -> String {
    id.to_string()
}

/// Every live file of `table` holds each change once: as many rows as `expected` counts, and
/// replaying them gives the source's rows.
pub fn assert_live_files_hold_every_change_once(
    ws: &impl Source,
    table: &'static str,
    key: &str,
    id_to_key: fn(&str) -> String,
    expected: &Expected,
) {
    let (live, rows) = fold_live_files(ws.workspace(), table);
    assert_eq!(
        rows, expected.live_rows[table],
        "{table}: the live files hold {rows} rows for {} expected",
        expected.live_rows[table]
    );
    let (_, source) = ws.application().source_rows(table, key);
    let replayed: std::collections::BTreeSet<String> =
        live.keys().map(|id| id_to_key(id)).collect();
    assert_eq!(
        replayed.into_iter().collect::<Vec<_>>(),
        source.keys().cloned().collect::<Vec<_>>(),
        "{table}: replaying the live files does not give the source's rows"
    );
}

/// Makes `changes` random changes before the tables are linked (they reach the lake through
/// the initial copy), and returns the live rows the copy will make and the next free id.
pub fn prefill(
    application: &mut impl Application,
    rng: &mut StdRng,
    changes: usize,
) -> (Expected, i64) {
    let mut next_id = 0;
    for _ in 0..changes {
        application.random_change(rng, &mut next_id, &mut Expected::default());
    }
    let mut expected = Expected::default();
    for table in ["account", "contact", "tag"] {
        expected.add(table, application.row_count(table));
    }
    (expected, next_id)
}

/// An application on its own thread making random changes to its source until told to stop.
pub struct BackgroundWriter {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Expected>,
}

impl BackgroundWriter {
    /// Starts `application` writing, new rows from `next_id` on, with a generator seeded by
    /// `seed`, pausing `pause(rng)` after each change.
    pub fn start(
        mut application: impl Application,
        seed: u64,
        next_id: i64,
        pause: impl Fn(&mut StdRng) -> Duration + Send + 'static,
    ) -> BackgroundWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut rng = <StdRng as rand::SeedableRng>::seed_from_u64(seed);
                let mut expected = Expected::default();
                let mut next_id = next_id;
                while !stop.load(Ordering::Relaxed) {
                    application.random_change(&mut rng, &mut next_id, &mut expected);
                    std::thread::sleep(pause(&mut rng));
                }
                expected
            })
        };
        BackgroundWriter { stop, thread }
    }

    /// Stops the writer after its change in flight and returns what it wrote.
    pub fn finish(self) -> Expected {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the writer thread")
    }
}
