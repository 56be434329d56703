//! PostgreSQL for the end-to-end tests: a fresh database per test in the cluster that
//! `scripts/postgres-test-cluster.sh` runs (named by `LAKELINK_TEST_POSTGRES`), a config
//! pointing the real `lakelink` binary at it, an oracle comparing `lakelink read` with the
//! source table, and the CRM workload of [`super::workload`] in PostgreSQL's SQL.

use super::workload::{Expected, created, tricky_text};
use super::{Application, Source, SourceTableRows, Workspace};
use lakelink_model::FieldKind;
use lakelink_model::value::Value;
use postgres::{Client, NoTls, SimpleQueryMessage};
use rand::RngExt;
use rand::rngs::StdRng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How to run the PostgreSQL tests, for the failure when no server is configured.
const HOW_TO_RUN: &str = "LAKELINK_TEST_POSTGRES is not set: run the tests with scripts/test.sh (or scripts/postgres-test-cluster.sh cargo test ...), which starts throwaway PostgreSQL servers";

/// The test server's connection settings (`host=... port=... user=...`).
pub fn server() -> String {
    std::env::var("LAKELINK_TEST_POSTGRES").expect(HOW_TO_RUN)
}

/// One setting of [`server`].
pub fn server_setting(key: &str) -> String {
    server()
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("LAKELINK_TEST_POSTGRES has no {key}="))
}

/// A connection to `database` as the test superuser.
pub fn connect(database: &str) -> Client {
    Client::connect(&format!("{} dbname={database}", server()), NoTls)
        .unwrap_or_else(|e| panic!("connecting to the test server: {e}; {HOW_TO_RUN}"))
}

/// A lake, a config and a fresh database of its own in the test server.
pub struct PgWorkspace {
    pub ws: Workspace,
    pub database: String,
}

impl std::ops::Deref for PgWorkspace {
    type Target = Workspace;
    fn deref(&self) -> &Workspace {
        &self.ws
    }
}

impl PgWorkspace {
    /// A fresh database set up by `schema_sql`.
    pub fn new(schema_sql: &str) -> PgWorkspace {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let database = format!(
            "lakelink_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        connect("postgres")
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .expect("create the test database");
        let ws = PgWorkspace {
            ws: Workspace::new(""),
            database,
        };
        ws.client()
            .batch_execute(schema_sql)
            .expect("source schema");
        ws
    }

    /// A connection to the source, as an application would hold.
    pub fn client(&self) -> Client {
        connect(&self.database)
    }

    /// The `[source]` section for this database, with `extra` settings.
    pub fn source_section(&self, extra: &str) -> String {
        format!(
            "[source]\nkind = \"postgres\"\nhost = \"{}\"\nport = {}\ndatabase = \"{}\"\nuser = \"{}\"\n{}{extra}\n",
            server_setting("host"),
            server_setting("port"),
            self.database,
            server_setting("user"),
            // Slot names are unique in the whole server: one per test database.
            if extra.contains("slot =") {
                String::new()
            } else {
                format!("slot = \"{}\"\n", self.database)
            },
        )
    }

    /// Writes the config with `[source]` extras, `[engine]` extras and `[[table]]` sections.
    pub fn write_config_with(&self, source_extra: &str, engine_extra: &str, tables: &str) {
        self.ws
            .write_config_for_source(&self.source_section(source_extra), engine_extra, tables);
    }

    /// Writes the config with `[engine]` extras and `[[table]]` sections.
    pub fn write_config(&self, engine_extra: &str, tables: &str) {
        self.write_config_with("", engine_extra, tables);
    }

    /// The replication slots of this database.
    pub fn slots(&self) -> Vec<String> {
        self.client()
            .query(
                "SELECT slot_name::text FROM pg_replication_slots WHERE database = current_database()",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

impl Drop for PgWorkspace {
    /// Drops the database and any slot left in it, so the shared server does not keep WAL.
    fn drop(&mut self) {
        let mut admin = connect("postgres");
        let _ = admin.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1",
            &[&self.database],
        );
        let _ = admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.database
        ));
    }
}

/// How the oracle reads a column of PostgreSQL type `type_name` back from the lake.
fn kind_of(type_name: &str) -> FieldKind {
    match type_name {
        "smallint" | "integer" | "bigint" | "oid" => FieldKind::Integer,
        "double precision" | "real" => FieldKind::Real,
        "boolean" => FieldKind::Boolean,
        "bytea" => FieldKind::Blob,
        "uuid" => FieldKind::Guid,
        "json" | "jsonb" => FieldKind::Json,
        "date" => FieldKind::Date,
        t if t.starts_with("timestamp") => FieldKind::DateTime,
        t if t.starts_with("numeric") => FieldKind::Decimal,
        _ => FieldKind::Text,
    }
}

/// The value the lake must hold for a source value in its text form (UTC, ISO, hex).
fn expected_value(text: Option<&str>, kind: FieldKind) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    match kind {
        FieldKind::Integer => Value::Integer(text.parse().unwrap()),
        FieldKind::Real => Value::Real(match text {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            t => t.parse().unwrap(),
        }),
        FieldKind::Boolean => Value::Integer(i64::from(text == "t")),
        FieldKind::Blob => {
            let hex = text.strip_prefix("\\x").unwrap();
            Value::Blob(
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect(),
            )
        }
        _ => Value::Text(text.to_string()),
    }
}

/// The columns of a source table (names and kinds) and its rows keyed by column `key`.
pub fn source_rows(client: &mut Client, table: &str, key: &str) -> SourceTableRows {
    let columns: Vec<(String, FieldKind)> = client
        .query(
            // A domain by its base type, as the lake types it.
            "SELECT a.attname::text, CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) \
                    ELSE format_type(a.atttypid, a.atttypmod) END \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&table],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), kind_of(r.get::<_, String>(1).as_str())))
        .collect();
    let key_at = columns
        .iter()
        .position(|(n, _)| n == key)
        .expect("key column");
    let list: Vec<String> = columns.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let messages = client
        .simple_query(&format!(
            "SET TimeZone = 'UTC'; SET bytea_output = 'hex'; SET extra_float_digits = 3; SELECT {} FROM \"{table}\"",
            list.join(", ")
        ))
        .unwrap();
    let mut rows = BTreeMap::new();
    for message in messages {
        if let SimpleQueryMessage::Row(row) = message {
            let values: Vec<Value> = columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| expected_value(row.get(i), *kind))
                .collect();
            rows.insert(row.get(key_at).unwrap().to_string(), values);
        }
    }
    (columns, rows)
}

/// Asserts that what `lakelink read` returns for `table` equals the source table.
pub fn assert_lake_matches_source(
    ws: &PgWorkspace,
    table: &str,
    key: &str,
    id_to_key: fn(&str) -> String,
) {
    super::assert_lake_matches_source_by(ws, table, key, id_to_key, None);
}

/// The CRM schema of [`super::workload::CRM_SCHEMA`] in PostgreSQL. `tag` has no primary
/// key: its identity is REPLICA IDENTITY FULL and its key is configured.
pub const CRM_SCHEMA: &str = "
    CREATE TABLE account (
        accountid text PRIMARY KEY, name text NOT NULL, revenue double precision,
        employees integer, notes text, createdon timestamp);
    CREATE TABLE contact (
        contactid bigint PRIMARY KEY, fullname text, email text, createdon timestamptz);
    CREATE TABLE tag (owner text NOT NULL, label text NOT NULL, weight integer);
    ALTER TABLE tag REPLICA IDENTITY FULL;
";

fn pick(client: &mut Client, sql: &str, rng: &mut StdRng) -> Option<String> {
    let n: i64 = client
        .query_one(&format!("SELECT count(*) FROM ({sql}) AS s"), &[])
        .unwrap()
        .get(0);
    if n == 0 {
        return None;
    }
    let off = rng.random_range(0..n);
    client
        .query_one(&format!("SELECT (({sql} LIMIT 1 OFFSET {off})::text)"), &[])
        .ok()
        .map(|r| r.get(0))
}

/// One random change to one table, in its own transaction; counts the live rows it adds.
fn random_change(
    client: &mut Client,
    rng: &mut StdRng,
    next_id: &mut i64,
    expected: &mut Expected,
) {
    let year = |s: &str| s[..4].to_string();
    let month = |s: &str| s[..7].to_string();
    if rng.random_range(0..150) == 0 {
        // Now and then a table is emptied: one delete record for each row it held, in its
        // place among its transaction's changes (an insert before and one after it).
        let (table, n) = if rng.random_range(0..2) == 0 {
            *next_id += 2;
            let mut t = client.transaction().unwrap();
            t.execute(
                "INSERT INTO tag VALUES ('o1', $1, 1)",
                &[&format!("label {}", *next_id - 1)],
            )
            .unwrap();
            let held: i64 = t.query_one("SELECT count(*) FROM tag", &[]).unwrap().get(0);
            t.batch_execute("TRUNCATE tag").unwrap();
            t.execute(
                "INSERT INTO tag VALUES ('o2', $1, 2)",
                &[&format!("label {next_id}")],
            )
            .unwrap();
            t.commit().unwrap();
            ("tag", 1 + held as usize + 1)
        } else {
            let mut t = client.transaction().unwrap();
            let held: i64 = t
                .query_one("SELECT count(*) FROM contact", &[])
                .unwrap()
                .get(0);
            t.batch_execute("TRUNCATE contact").unwrap();
            t.commit().unwrap();
            ("contact", held as usize)
        };
        expected.add(table, n);
        expected.truncates += 1;
        return;
    }
    if rng.random_range(0..40) == 0 {
        // Now and then one transaction changes every account: larger than a batch once the
        // table has grown, so it reaches the lake in several batches at one position.
        let updated = client
            .execute("UPDATE account SET revenue = revenue + 1", &[])
            .unwrap();
        expected.add("account", updated as usize);
        return;
    }
    match rng.random_range(0..10) {
        0 | 1 => {
            *next_id += 1;
            client
                .execute(
                    "INSERT INTO account VALUES ($1, $2, $3, $4, $5, $6::text::timestamp)",
                    &[
                        &format!("acc-{next_id:06}"),
                        &format!("Account {next_id}"),
                        &rng.random_range(-1e6..1e9),
                        &rng.random_range(0..100_000i32),
                        &tricky_text(rng),
                        &created(rng),
                    ],
                )
                .unwrap();
            expected.add("account", 1);
        }
        2 | 3 => {
            if let Some(id) = pick(
                client,
                "SELECT accountid FROM account ORDER BY accountid",
                rng,
            ) {
                let old: String = client
                    .query_one(
                        "SELECT createdon::text FROM account WHERE accountid = $1",
                        &[&id],
                    )
                    .unwrap()
                    .get(0);
                // Every third update moves the row to another year's partition.
                let new = if rng.random_range(0..3) == 0 {
                    created(rng)
                } else {
                    old.clone()
                };
                client
                    .execute(
                        "UPDATE account SET revenue = $2, notes = $3, createdon = $4::text::timestamp WHERE accountid = $1",
                        &[&id, &rng.random_range(0.0..1e6), &tricky_text(rng), &new],
                    )
                    .unwrap();
                expected.add("account", if year(&old) != year(&new) { 2 } else { 1 });
            }
        }
        4 => {
            if let Some(id) = pick(
                client,
                "SELECT accountid FROM account ORDER BY accountid",
                rng,
            ) {
                client
                    .execute("DELETE FROM account WHERE accountid = $1", &[&id])
                    .unwrap();
                expected.add("account", 1);
            }
        }
        5 => {
            *next_id += 1;
            client
                .execute(
                    "INSERT INTO contact VALUES ($1, $2, $3, $4::text::timestamptz)",
                    &[
                        &*next_id,
                        &format!("Person {next_id}"),
                        &tricky_text(rng),
                        &format!("{}+00", created(rng)),
                    ],
                )
                .unwrap();
            expected.add("contact", 1);
        }
        6 => {
            if let Some(id) = pick(
                client,
                "SELECT contactid FROM contact ORDER BY contactid",
                rng,
            ) {
                let id: i64 = id.parse().unwrap();
                let old: String = client
                    .query_one(
                        "SELECT to_char(createdon AT TIME ZONE 'UTC', 'YYYY-MM') FROM contact WHERE contactid = $1",
                        &[&id],
                    )
                    .unwrap()
                    .get(0);
                let new = created(rng);
                client
                    .execute(
                        "UPDATE contact SET email = $2, createdon = $3::text::timestamptz WHERE contactid = $1",
                        &[&id, &tricky_text(rng), &format!("{new}+00")],
                    )
                    .unwrap();
                expected.add("contact", if old != month(&new) { 2 } else { 1 });
            }
        }
        7 => {
            if let Some(id) = pick(
                client,
                "SELECT contactid FROM contact ORDER BY contactid",
                rng,
            ) {
                let id: i64 = id.parse().unwrap();
                client
                    .execute("DELETE FROM contact WHERE contactid = $1", &[&id])
                    .unwrap();
                expected.add("contact", 1);
            }
        }
        8 => {
            *next_id += 1;
            client
                .execute(
                    "INSERT INTO tag VALUES ($1, $2, $3)",
                    &[
                        &format!("o{}", *next_id % 7),
                        &format!("label {next_id}"),
                        &rng.random_range(0..10i32),
                    ],
                )
                .unwrap();
            expected.add("tag", 1);
        }
        _ => {
            // A key change: the tag gets another label, which is another Id.
            if let Some(label) = pick(client, "SELECT label FROM tag ORDER BY label", rng) {
                *next_id += 1;
                client
                    .execute(
                        "UPDATE tag SET label = $2 WHERE label = $1",
                        &[&label, &format!("relabelled {next_id}")],
                    )
                    .unwrap();
                expected.add("tag", 2);
            }
        }
    }
}

/// The CRM workload in PostgreSQL's SQL.
impl Application for Client {
    fn random_change(&mut self, rng: &mut StdRng, next_id: &mut i64, expected: &mut Expected) {
        random_change(self, rng, next_id, expected);
    }

    fn row_count(&mut self, table: &str) -> usize {
        let n: i64 = self
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .unwrap()
            .get(0);
        n as usize
    }

    fn source_rows(&mut self, table: &str, key: &str) -> SourceTableRows {
        source_rows(self, table, key)
    }
}

impl Source for PgWorkspace {
    type Application = Client;

    fn workspace(&self) -> &Workspace {
        &self.ws
    }

    fn application(&self) -> Client {
        self.client()
    }

    fn write_config(&self, engine_extra: &str, tables: &str) {
        PgWorkspace::write_config(self, engine_extra, tables);
    }
}

/// The tables of [`SPLIT_TRUNCATE`]: `t` (three rows), `other` (one) and `note`, keyed by a
/// column that may be NULL.
pub const SPLIT_TRUNCATE_SCHEMA: &str = "
    CREATE TABLE t (id int PRIMARY KEY, v text);
    CREATE TABLE other (id int PRIMARY KEY, x text);
    CREATE TABLE note (owner text, body text);
    ALTER TABLE note REPLICA IDENTITY FULL;
    INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three');
    INSERT INTO other VALUES (1, 'o1');
    INSERT INTO note VALUES ('o', 'kept');";

/// The config's tables for [`SPLIT_TRUNCATE_SCHEMA`].
pub const SPLIT_TRUNCATE_TABLES: &str = "[[table]]\nname = \"t\"\n\n[[table]]\nname = \"other\"\n\n[[table]]\nname = \"note\"\nkey = [\"owner\"]\n";

/// One transaction larger than a batch of 500: 6,000 rows of `other` around a TRUNCATE of `t`
/// (then one row of it) and a row of `note` with no key, which stops `note` and so ends the
/// replication session in the middle of the transaction.
pub const SPLIT_TRUNCATE: &str = "BEGIN;
    INSERT INTO other SELECT g, 'before' FROM generate_series(1000, 3999) g;
    TRUNCATE t;
    INSERT INTO t VALUES (10, 'ten');
    INSERT INTO note VALUES (NULL, 'no key');
    INSERT INTO other SELECT g, 'after' FROM generate_series(4000, 6999) g;
    COMMIT;";

/// A sync after [`SPLIT_TRUNCATE`]: `note` stops, naming its NULL key, with the row it held
/// kept; `t` holds one delete record of each of its three rows and the row after, and `other`
/// its copied row and each of the transaction's 6,000, once.
pub fn assert_split_truncate_synced(ws: &PgWorkspace) {
    let out = ws.lakelink(&["sync", "--config", "{config}"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("note") && stderr.contains("NULL"),
        "note stops, saying why: {stderr}"
    );
    let ids: std::collections::BTreeSet<String> = ws
        .live_files("other")
        .values()
        .flatten()
        .map(|row| row.get(0).expect("Id").0.to_string())
        .collect();
    assert_eq!(ids.len(), 6001, "each row of other");
    assert_eq!(ws.live_row_count("other"), 6001, "once");
    let t: Vec<(String, bool)> = ws
        .live_files("t")
        .values()
        .flatten()
        .map(|row| {
            let deleted = row.iter().any(|(text, _)| text == "True");
            (row.get(0).expect("Id").0.to_string(), deleted)
        })
        .collect();
    let expected: Vec<(String, bool)> = [
        ("1", false),
        ("2", false),
        ("3", false),
        ("1", true),
        ("2", true),
        ("3", true),
        ("10", false),
    ]
    .iter()
    .map(|(id, deleted)| (id.to_string(), *deleted))
    .collect();
    assert_eq!(
        t, expected,
        "t: its copy, one delete record each, the row after"
    );
    assert_lake_matches_source(ws, "t", "id", super::workload::plain);
    assert_eq!(ws.live_row_count("note"), 1, "note keeps what it held");
}
