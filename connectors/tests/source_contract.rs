//! The `Source` contract (model/src/source.rs), checked the same way against every source:
//! SQLite (a database file in a temporary folder) and PostgreSQL (a database of its own in
//! the server `scripts/postgres-test-cluster.sh` starts, named by `LAKELINK_TEST_POSTGRES`).

use lakelink_connectors::source::postgres::{PostgresSource, PostgresSourceConfig, SslMode};
use lakelink_connectors::source::sqlite::{SqliteSource, SqliteSourceConfig};
use lakelink_model::change::{ChangeBatch, ChangeKind, Position};
use lakelink_model::schema::TableSchema;
use lakelink_model::source::{CaptureSpec, Source};
use lakelink_model::value::Value;
use std::ops::ControlFlow;

/// A source database under test: SQL run as an application would, and a fresh `Source` on it
/// (a new one stands for the agent after a crash).
trait Database {
    fn execute(&mut self, sql: &str);
    fn open(&self) -> Box<dyn Source>;
    /// Whether the database can empty a table in one step, without a change per row
    /// (`TRUNCATE`; SQLite's `DELETE` without `WHERE` fires the capture triggers for each row).
    fn truncates(&self) -> bool {
        false
    }
}

struct Sqlite {
    _dir: tempfile::TempDir,
    config: SqliteSourceConfig,
    conn: rusqlite::Connection,
}

impl Database for Sqlite {
    fn execute(&mut self, sql: &str) {
        self.conn.execute_batch(sql).expect("application SQL");
    }
    fn open(&self) -> Box<dyn Source> {
        Box::new(SqliteSource::open(&self.config, "contract").expect("open the SQLite source"))
    }
}

fn sqlite() -> Sqlite {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("source.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    Sqlite {
        config: SqliteSourceConfig { path },
        conn,
        _dir: dir,
    }
}

struct Postgres {
    config: PostgresSourceConfig,
    client: postgres::Client,
}

impl Database for Postgres {
    fn execute(&mut self, sql: &str) {
        self.client.batch_execute(sql).expect("application SQL");
    }
    fn open(&self) -> Box<dyn Source> {
        Box::new(PostgresSource::open(&self.config).expect("open the PostgreSQL source"))
    }
    fn truncates(&self) -> bool {
        true
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut admin = connect_postgres("postgres");
        let _ = admin.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1",
            &[&self.config.database],
        );
        let _ = admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.config.database
        ));
    }
}

fn server_setting(key: &str) -> String {
    let server = std::env::var("LAKELINK_TEST_POSTGRES").expect(
        "LAKELINK_TEST_POSTGRES is not set: run the tests with scripts/test.sh, which starts a throwaway PostgreSQL server",
    );
    server
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("LAKELINK_TEST_POSTGRES has no {key}="))
}

fn connect_postgres(database: &str) -> postgres::Client {
    postgres::Client::connect(
        &format!(
            "host={} port={} user={} dbname={database}",
            server_setting("host"),
            server_setting("port"),
            server_setting("user")
        ),
        postgres::NoTls,
    )
    .expect("connect to the test server")
}

fn postgres(name: &str) -> Postgres {
    let database = format!("lakelink_contract_{name}_{}", std::process::id());
    connect_postgres("postgres")
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .unwrap();
    Postgres {
        config: PostgresSourceConfig {
            host: server_setting("host"),
            port: server_setting("port").parse().unwrap(),
            database: database.clone(),
            user: server_setting("user"),
            password_env: None,
            password_file: None,
            sslmode: SslMode::Disable,
            sslrootcert: None,
            slot: database.clone(),
            retained_wal_warning_mb: 4096,
        },
        client: connect_postgres(&database),
    }
}

const TABLE: &str = "CREATE TABLE item (id integer PRIMARY KEY, name text, createdon timestamp);
    INSERT INTO item VALUES (1, 'one', '2024-01-01 00:00:00'), (2, 'two', '2025-01-01 00:00:00');";

fn spec(source: &mut dyn Source) -> CaptureSpec {
    let table = source
        .describe_table(&"item".into())
        .expect("describe the table");
    assert_eq!(table.primary_key, vec![0], "the key is the primary key");
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "name", "createdon"]);
    CaptureSpec {
        link: 1,
        table: "item".into(),
        schema: TableSchema {
            linked_width: table.columns.len(),
            columns: table.columns,
            key: vec![0],
            partition_column: Some(2),
            fills: Vec::new(),
            table_id: table.id,
        },
        added_from: None,
    }
}

/// Every change after `after`, read `max` at a time, checking that no position is split
/// across reads and that positions never go back. Returns the changes and the end.
fn read_all(
    source: &mut dyn Source,
    after: Position,
    max: usize,
) -> (Vec<(Position, ChangeKind, Vec<Value>)>, Position) {
    let mut out = Vec::new();
    let mut after = after;
    // Whether the last batch ended inside the position of its last change.
    let mut ended_inside = false;
    for _ in 0..100 {
        let batch = source.read_changes(after, max).expect("read changes");
        for change in &batch.changes {
            assert!(
                change.position > after,
                "a change at or before {after} was read again"
            );
            if let Some((last, _, _)) = out.last() {
                assert!(change.position >= *last, "positions went back");
            }
            out.push((change.position, change.kind, change.old_key.clone()));
        }
        if let (Some(first), Some((last, _, _))) = (
            batch.changes.first(),
            out.iter().rev().nth(batch.changes.len()),
        ) {
            // A position comes whole, or goes on from a batch that said it ended inside it.
            assert!(
                first.position != *last || ended_inside,
                "a position was split across two reads without the first ending inside it"
            );
        }
        assert!(batch.end >= after, "the end went back");
        ended_inside = batch.ends_inside_position();
        if ended_inside {
            let last = batch.changes.last().map(|c| c.position);
            assert!(
                last.is_some_and(|p| batch.end < p) && batch.more,
                "a batch inside a position ends below it and says there is more"
            );
        }
        if !batch.more {
            // Nothing more, says the source: and nothing written since, so the next read
            // finds nothing either.
            let next = source.read_changes(batch.end, max).expect("read changes");
            assert!(
                next.changes.is_empty() && !next.more,
                "a batch said the source had nothing more, yet the next read found {:?}",
                next.changes
            );
            return (out, batch.end);
        }
        after = batch.end;
    }
    panic!("the source never ran out of changes");
}

fn the_contract_holds(db: &mut dyn Database) {
    db.execute(TABLE);
    let mut source = db.open();
    let spec = spec(source.as_mut());
    source.install_capture(&spec).expect("install capture");
    // Installing again is harmless.
    source
        .install_capture(&spec)
        .expect("install capture again");
    let mut copied = Vec::new();
    let copy_at = source
        .copy_table(&spec, &mut |_, row| {
            copied.push(row);
            ControlFlow::Continue(())
        })
        .expect("copy the table");
    assert_eq!(copied.len(), 2);
    assert_eq!(copied[0][0], Value::Integer(1));

    // One transaction of two inserts, one key change, one delete.
    db.execute(
        "BEGIN; INSERT INTO item VALUES (3, 'three', '2024-03-03 00:00:00');
         INSERT INTO item VALUES (4, 'four', '2024-04-04 00:00:00'); COMMIT;
         UPDATE item SET id = 5 WHERE id = 1;
         DELETE FROM item WHERE id = 2;",
    );
    let first = source.read_changes(copy_at, 1).unwrap();
    assert!(
        first.more || first.changes.len() == 4,
        "a batch that left changes out says the source holds more"
    );
    // A batch the engine dropped is read again, from the first change of its position.
    source.discard_read();
    let again = source.read_changes(copy_at, 1).unwrap();
    let firsts = |b: &lakelink_model::change::ChangeBatch| {
        b.changes
            .first()
            .map(|c| (c.position, c.kind, c.row.clone()))
    };
    assert_eq!(firsts(&again), firsts(&first), "read again from the start");
    source.discard_read();
    let (changes, end) = read_all(source.as_mut(), copy_at, 1);
    let kinds: Vec<ChangeKind> = changes.iter().map(|c| c.1).collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::Insert,
            ChangeKind::Insert,
            ChangeKind::Update,
            ChangeKind::Delete
        ]
    );
    assert_eq!(
        changes[2].2,
        vec![Value::Integer(1)],
        "the old key of a key change"
    );
    assert_eq!(changes[3].2, vec![Value::Integer(2)], "the key of a delete");

    // Nothing acknowledged: after a crash every change is read again.
    drop(source);
    let mut source = db.open();
    source.install_capture(&spec).unwrap();
    let (again, _) = read_all(source.as_mut(), copy_at, 1000);
    assert_eq!(again, changes, "unacknowledged changes stay readable");

    // Acknowledged: gone for good; later changes still come.
    source.acknowledge(end).unwrap();
    drop(source);
    let mut source = db.open();
    source.install_capture(&spec).unwrap();
    db.execute("INSERT INTO item VALUES (6, 'six', '2026-06-06 00:00:00');");
    let (after_ack, end) = read_all(source.as_mut(), end, 1000);
    assert_eq!(after_ack.len(), 1);
    assert_eq!(after_ack[0].1, ChangeKind::Insert);
    assert!(source.head_position().unwrap() >= after_ack[0].0);

    // A transaction of three inserts read one change at a time. A source may split it across
    // batches (PostgreSQL does; SQLite gives each change its own position): the reads then go
    // on with the rest, whatever else the source is asked in between (here, a second link
    // removed), and a batch the engine dropped is read again from its position's first change.
    db.execute("CREATE TABLE extra (id integer PRIMARY KEY, name text, createdon timestamp);");
    let mut extra = spec.clone();
    extra.link = 2;
    extra.table = "extra".into();
    extra.schema.table_id = source.describe_table(&"extra".into()).unwrap().id;
    source.install_capture(&extra).unwrap();
    db.execute(
        "BEGIN; INSERT INTO item VALUES (11, 'a', '2026-01-01 00:00:00'), (12, 'b', '2026-01-02 00:00:00'), (13, 'c', '2026-01-03 00:00:00'); COMMIT;",
    );
    let id = |b: &ChangeBatch| b.changes.first().map(|c| c.row[0].clone());
    let first = source.read_changes(end, 1).unwrap();
    assert_eq!(id(&first), Some(Value::Integer(11)));
    source.remove_capture(2, &"extra".into()).unwrap();
    let second = source.read_changes(first.end, 1).unwrap();
    assert_eq!(id(&second), Some(Value::Integer(12)), "the reads go on");
    source.discard_read();
    let again = source.read_changes(first.end, 1).unwrap();
    let expected = if first.ends_inside_position() {
        assert_eq!(
            second.changes[0].position, first.changes[0].position,
            "a split position goes on in the next batch"
        );
        vec![11, 12, 13]
    } else {
        vec![12, 13]
    };
    let row_ids = |b: &ChangeBatch| {
        b.changes
            .iter()
            .map(|c| c.row[0].clone())
            .collect::<Vec<_>>()
    };
    let mut ids = row_ids(&again);
    let mut at = again;
    while at.more {
        at = source.read_changes(at.end, 1).unwrap();
        ids.extend(row_ids(&at));
    }
    assert_eq!(
        ids,
        expected.into_iter().map(Value::Integer).collect::<Vec<_>>(),
        "a dropped batch is read again from its position's first change, then the rest once"
    );
    let mut end = at.end;

    // A table emptied in one step: one truncate change in its place among its position's.
    if db.truncates() {
        db.execute(
            "BEGIN; INSERT INTO item VALUES (21, 'x', '2026-01-01 00:00:00'); TRUNCATE item;
             INSERT INTO item VALUES (22, 'y', '2026-01-01 00:00:00'); COMMIT;",
        );
        let (changes, truncated) = read_all(source.as_mut(), end, 1000);
        let kinds: Vec<ChangeKind> = changes.iter().map(|c| c.1).collect();
        assert_eq!(
            kinds,
            [ChangeKind::Insert, ChangeKind::Truncate, ChangeKind::Insert]
        );
        assert!(
            changes.iter().all(|c| c.0 == changes[0].0),
            "one transaction, one position"
        );
        end = truncated;
    }

    // Removed: the table's changes are no longer reported.
    source.remove_capture(spec.link, &"item".into()).unwrap();
    db.execute("INSERT INTO item VALUES (7, 'seven', '2026-07-07 00:00:00');");
    let batch = source.read_changes(end, 1000).unwrap();
    assert!(batch.changes.is_empty(), "{:?}", batch.changes);
}

#[test]
fn sqlite_keeps_the_source_contract() {
    the_contract_holds(&mut sqlite());
}

#[test]
fn postgres_keeps_the_source_contract() {
    the_contract_holds(&mut postgres("contract"));
}
