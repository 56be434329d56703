//! Delta mode (`[lake] format = "delta"`, LAKE_FORMAT §9), end to end: the real binary syncs a
//! real SQLite database into a local lake, and readers lakelink did not write (the `deltalake`
//! Python package, Polars, pyarrow's Parquet reader) read every Delta table back. The newest
//! version equals the source, older versions equal the source when they were cut, added
//! columns appear, values no Delta type holds exactly are kept in their original-text column,
//! and an append-only table holds every change once.

mod support;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rusqlite::params;
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use support::delta::{
    DELTA_LAKE, READERS, assert_delta_matches, expected_rows, newest_generation, read_delta,
    version_in,
};
use support::*;

const ORDERS: &str = "CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer TEXT NOT NULL,
    price REAL,
    qty INTEGER,
    amount DECIMAL(10,2),
    shipped DATE,
    created DATETIME NOT NULL,
    paid BOOLEAN,
    label BLOB
);";

/// A workspace of format `delta` over `schema`, syncing `tables`.
fn delta_workspace(schema: &str, tables: &str) -> Workspace {
    let mut ws = Workspace::new(schema);
    ws.lake_section = Some(DELTA_LAKE.to_string());
    ws.write_config("", tables);
    ws
}

/// A random order, its values all of a kind their Delta column holds exactly.
fn random_order(rng: &mut StdRng, id: i64) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value as V;
    let created = format!(
        "202{}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        rng.random_range(3..6),
        rng.random_range(1..13),
        rng.random_range(1..29),
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60),
        rng.random_range(0..1_000_000)
    );
    let shipped = format!(
        "{:04}-{:02}-{:02}",
        rng.random_range(1..10000),
        rng.random_range(1..13),
        rng.random_range(1..29)
    );
    let label: Vec<u8> = (0..rng.random_range(0..20)).map(|_| rng.random()).collect();
    let values = vec![
        V::Integer(id),
        V::Text(format!("customer {} «{}»", rng.random_range(0..50), id % 7)),
        V::Real(rng.random_range(-1e6..1e6)),
        V::Integer(rng.random_range(i64::MIN..i64::MAX)),
        V::Real(f64::from(rng.random_range(-9_999_999..9_999_999)) / 100.0),
        V::Text(shipped),
        V::Text(created),
        V::Integer(rng.random_range(0..2)),
        V::Blob(label),
    ];
    // Any column but the key, the customer and the partition column may be NULL.
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| match i {
            0 | 1 | 6 => v,
            _ if rng.random_range(0..8) == 0 => V::Null,
            _ => v,
        })
        .collect()
}

fn upsert(conn: &rusqlite::Connection, values: &[rusqlite::types::Value]) {
    conn.execute(
        "INSERT OR REPLACE INTO orders (id, customer, price, qty, amount, shipped, created, paid, label)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        rusqlite::params_from_iter(values),
    )
    .unwrap();
}

/// Random inserts, updates (some moving a row to another month) and deletes.
fn change_orders(conn: &rusqlite::Connection, rng: &mut StdRng, next_id: &mut i64, n: usize) {
    for _ in 0..n {
        match rng.random_range(0..10) {
            0..=4 => {
                upsert(conn, &random_order(rng, *next_id));
                *next_id += 1;
            }
            5..=7 => {
                let id = rng.random_range(1..*next_id);
                conn.execute(
                    "UPDATE orders SET qty = ?2, created = ?3 WHERE id = ?1",
                    params![
                        id,
                        rng.random_range(0..1000),
                        format!("2025-{:02}-01 00:00:00", rng.random_range(1..13))
                    ],
                )
                .unwrap();
            }
            _ => {
                let id = rng.random_range(1..*next_id);
                conn.execute("DELETE FROM orders WHERE id = ?1", [id])
                    .unwrap();
            }
        }
    }
}

/// An application writing random orders: its connection, its random numbers and the next
/// new order's id.
struct Orders {
    conn: rusqlite::Connection,
    rng: StdRng,
    next_id: i64,
}

impl Orders {
    /// `rows` random orders written into `ws`'s source, from `seed`.
    fn prefilled(ws: &Workspace, seed: u64, rows: usize) -> Orders {
        let mut orders = Orders {
            conn: ws.source(),
            rng: StdRng::seed_from_u64(seed),
            next_id: 1,
        };
        for _ in 0..rows {
            upsert(&orders.conn, &random_order(&mut orders.rng, orders.next_id));
            orders.next_id += 1;
        }
        orders
    }
}

const SCALES: &[(&str, usize)] = &[("amount", 2)];

#[test]
fn every_reader_reads_each_generation_of_an_in_place_table_as_the_source_was_then() {
    let ws = delta_workspace(
        ORDERS,
        "[[table]]\nname = \"orders\"\npartition_by = \"created\"\ngranularity = \"month\"\n",
    );
    let Orders {
        conn,
        mut rng,
        mut next_id,
    } = Orders::prefilled(&ws, 20261203, 400);
    // Generation 1: the initial copy. Generation 2: changes. Generation 3: a column added,
    // with a default existing rows hold, and more changes.
    let mut expected = Vec::new();
    ws.sync();
    expected.push(expected_rows(&conn, "orders", "id", SCALES));
    change_orders(&conn, &mut rng, &mut next_id, 300);
    ws.sync();
    expected.push(expected_rows(&conn, "orders", "id", SCALES));
    conn.execute_batch("ALTER TABLE orders ADD COLUMN channel TEXT DEFAULT 'web'")
        .unwrap();
    change_orders(&conn, &mut rng, &mut next_id, 200);
    conn.execute("UPDATE orders SET channel = 'phone' WHERE id % 5 = 0", [])
        .unwrap();
    ws.sync();
    expected.push(expected_rows(&conn, "orders", "id", SCALES));
    assert_eq!(newest_generation(&ws), 3);
    assert!(
        !ws.lake.join("model.json").exists(),
        "a lake of format delta publishes no model.json"
    );

    for reader in READERS {
        let latest = read_delta(&ws, "orders", reader, None);
        assert_delta_matches(&format!("{reader}, newest"), &latest, &expected[2]);
        let d = &latest.description;
        assert_eq!(d["protocol"], json!([1, 2]), "{reader}");
        assert_eq!(d["partition_columns"], json!(["PartitionId"]), "{reader}");
        assert_eq!(
            d["txn"],
            json!(3),
            "{reader}: lakelink's transaction version"
        );
        // Each row in the partition of its month.
        for row in &latest.rows {
            let created = row["created"].as_str().unwrap();
            let micros: i64 = created.strip_prefix("ts:").unwrap().parse().unwrap();
            let at =
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap();
            let month = format!("s:{:04}-{:02}", at.year(), u8::from(at.month()));
            assert_eq!(row["PartitionId"], json!(month), "{reader}: {row:?}");
        }
    }
    let types = &read_delta(&ws, "orders", "pyarrow", None).description["schema"];
    for (column, ty) in [
        ("Id", "int64"),
        ("SinkCreatedOn", "timestamp[us, tz=UTC]"),
        ("id__source", "int64"),
        ("customer", "string"),
        ("price", "double"),
        ("qty", "int64"),
        ("amount", "decimal128(10, 2)"),
        ("shipped", "date32[day]"),
        ("created", "timestamp[us, tz=UTC]"),
        ("paid", "bool"),
        ("label", "binary"),
        ("versionnumber", "int64"),
        ("IsDelete", "bool"),
        ("channel", "string"),
    ] {
        assert_eq!(types[column], json!(ty), "{column} in the Parquet files");
    }
    // Time travel: each generation's version is the source when it was cut.
    for generation in 1..=2u64 {
        let version = version_in(&ws, "orders", generation);
        for reader in ["deltalake", "polars"] {
            let read = read_delta(&ws, "orders", reader, Some(version));
            let mut old = expected[generation as usize - 1].clone();
            for row in old.values_mut() {
                // Added later; absent from the older versions' schema.
                row.remove("channel");
            }
            assert_delta_matches(
                &format!("{reader}, generation {generation} (version {version})"),
                &read,
                &old,
            );
            assert_eq!(read.description["txn"], json!(generation));
        }
    }
    let status = ws.lakelink(&["status", "--config", "{config}"]);
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    let version = version_in(&ws, "orders", 3);
    assert!(
        status.contains(&format!(
            "Delta tables of generation T3 (deltalake/<table>): orders version {version}"
        )),
        "{status}"
    );
    // `lakelink read` reads the same table.
    let (header, rows) = ws.read("orders", None);
    assert_eq!(rows.len(), expected[2].len());
    assert!(header.contains(&"channel".to_string()), "{header:?}");
}

/// A column, what its typed column holds, and what its original-text column holds.
type Expected = (&'static str, Json, Json);

#[test]
fn values_no_delta_type_holds_exactly_are_kept_in_their_original_text_column() {
    let ws = delta_workspace(
        "CREATE TABLE odd (
            id INTEGER PRIMARY KEY,
            n INTEGER, r REAL, d DECIMAL(6,2), b BOOLEAN, day DATE, at DATETIME,
            t TEXT, raw BLOB, anything
        );",
        "[[table]]\nname = \"odd\"\n",
    );
    let conn = ws.source();
    // Each row: its values, then what the typed column and the original-text column hold.
    let rows: Vec<(&str, Vec<Expected>)> = vec![
        (
            "1, 'abc', 'x', 'y', 2, '2024-02-30', 'not a time', 'text', X'00FF', 5",
            vec![
                ("n", json!(null), json!("s:\"abc\"")),
                ("r", json!(null), json!("s:\"x\"")),
                ("d", json!(null), json!("s:\"y\"")),
                ("b", json!(null), json!("s:2")),
                ("day", json!(null), json!("s:\"2024-02-30\"")),
                ("at", json!(null), json!("s:\"not a time\"")),
                ("t", json!("s:text"), json!(null)),
                ("raw", json!("b:00ff"), json!(null)),
                // An integer in an untyped column is not the text '5'; a kept value is the
                // live file's field, quoted when it is text.
                ("anything", json!(null), json!("s:5")),
            ],
        ),
        (
            "2, 1.5, 9e999, 1234.567, 0, '0001-01-01', '2024-05-25 16:21:09.1234567', '', X'', '5'",
            vec![
                ("n", json!(null), json!("s:1.5")),
                ("r", json!("f:7ff0000000000000"), json!(null)),
                // More fraction digits than the scale holds.
                ("d", json!(null), json!("s:1234.567")),
                ("b", json!(false), json!(null)),
                ("day", json!("date:0001-01-01"), json!(null)),
                // The 100 ns digit: no microsecond timestamp holds it.
                (
                    "at",
                    json!(null),
                    json!("s:\"2024-05-25T16:21:09.1234567Z\""),
                ),
                ("t", json!("s:"), json!(null)),
                ("raw", json!("b:"), json!(null)),
                ("anything", json!("s:5"), json!(null)),
            ],
        ),
        (
            "3, -9223372036854775808, -1.25, 9999.99, 1, '9999-12-31', '9999-12-31 23:59:59.999999', 'é漢字🦀\r\n\"', NULL, NULL",
            vec![
                ("n", json!(i64::MIN), json!(null)),
                ("r", json!("f:bff4000000000000"), json!(null)),
                ("d", json!("d:9999.99"), json!(null)),
                ("b", json!(true), json!(null)),
                ("day", json!("date:9999-12-31"), json!(null)),
                ("at", json!("ts:253402300799999999"), json!(null)),
                ("t", json!("s:é漢字🦀\r\n\""), json!(null)),
                ("raw", json!(null), json!(null)),
                ("anything", json!(null), json!(null)),
            ],
        ),
        (
            "4, 9223372036854775807, 1e-320, 10000, NULL, '2024-05-25 BC', 1700000000, NULL, NULL, 1.5",
            vec![
                ("n", json!(i64::MAX), json!(null)),
                ("r", json!("f:00000000000007e8"), json!(null)),
                // Beyond DECIMAL(6,2)'s precision.
                ("d", json!(null), json!("s:10000")),
                ("b", json!(null), json!(null)),
                ("day", json!(null), json!("s:\"2024-05-25 BC\"")),
                // An epoch number in a DATETIME column is not a date-time the lake parses.
                ("at", json!(null), json!("s:1700000000")),
                ("t", json!(null), json!(null)),
                ("raw", json!(null), json!(null)),
                ("anything", json!(null), json!("s:1.5")),
            ],
        ),
    ];
    for (values, _) in &rows {
        conn.execute_batch(&format!("INSERT INTO odd VALUES ({values})"))
            .unwrap();
    }
    ws.sync();
    // A later generation whose rows fit adds no column and keeps the earlier ones.
    conn.execute("UPDATE odd SET t = 'again' WHERE id = 3", [])
        .unwrap();
    ws.sync();
    for reader in READERS {
        let read = read_delta(&ws, "odd", reader, None);
        let by_id: BTreeMap<i64, _> = read
            .rows
            .iter()
            .map(|r| (r["Id"].as_i64().unwrap(), r))
            .collect();
        assert_eq!(by_id.len(), rows.len(), "{reader}");
        for (i, (_, expected)) in rows.iter().enumerate() {
            let row = by_id[&(i as i64 + 1)];
            for (column, typed, original) in expected {
                let typed = if i == 2 && *column == "t" {
                    json!("s:again")
                } else {
                    typed.clone()
                };
                let original_column = format!("{column}__lakelink_text");
                assert_eq!(
                    row.get(*column).unwrap_or(&json!(null)),
                    &typed,
                    "{reader}: id {} column {column}",
                    i + 1
                );
                assert_eq!(
                    row.get(&original_column).unwrap_or(&json!(null)),
                    original,
                    "{reader}: id {} column {original_column}",
                    i + 1
                );
            }
        }
        let schema = &read.description["schema"];
        assert!(
            schema.get("t__lakelink_text").is_none() && schema.get("raw__lakelink_text").is_none(),
            "{reader}: a column whose values all fit has no original-text column: {schema}"
        );
    }
    // `lakelink read` prints each kept value as its original text.
    let (header, lake_rows) = ws.read("odd", None);
    let at = header.iter().position(|h| h == "at").unwrap();
    assert_eq!(
        lake_rows[1].get(at),
        Some(("2024-05-25T16:21:09.1234567Z", true))
    );
}

#[test]
fn an_append_only_table_holds_every_change_once_with_its_delete_records() {
    let ws = delta_workspace(
        ORDERS,
        "[[table]]\nname = \"orders\"\nmode = \"append_only\"\npartition_by = \"created\"\n",
    );
    let Orders {
        conn,
        mut rng,
        mut next_id,
    } = Orders::prefilled(&ws, 31, 200);
    ws.sync();
    for _ in 0..3 {
        change_orders(&conn, &mut rng, &mut next_id, 150);
        ws.sync();
    }
    let changes = live_changes(&ws, "orders", 9);
    let total: usize = changes.values().sum();
    for reader in READERS {
        let read = read_delta(&ws, "orders", reader, None);
        assert_eq!(read.rows.len(), total, "{reader}: one row per change");
        assert_eq!(
            changes_read(reader, &read),
            changes,
            "{reader}: the changes, each once"
        );
        assert_eq!(read.description["txn"], json!(4), "{reader}");
    }
}

/// A change: its Id, versionnumber and IsDelete, as the live files write them.
type Change = (String, String, String);

/// The changes the live files of `table` (of `columns` source columns) hold, each with how
/// many times: the change log, whose rows an append-only Delta table holds once each.
fn live_changes(ws: &Workspace, table: &str, columns: usize) -> BTreeMap<Change, usize> {
    let mut changes = BTreeMap::new();
    for rows in ws.live_files(table).values() {
        for r in rows {
            let key = (
                r.get(0).unwrap().0.to_string(),
                r.get(3 + columns).unwrap().0.to_string(),
                r.get(4 + columns).unwrap().0.to_string(),
            );
            *changes.entry(key).or_default() += 1;
        }
    }
    changes
}

/// The changes `reader` read from an append-only Delta table, each with how many times.
fn changes_read(reader: &str, read: &support::delta::DeltaRead) -> BTreeMap<Change, usize> {
    let mut seen = BTreeMap::new();
    for row in &read.rows {
        let key = (
            row["Id"].as_i64().unwrap().to_string(),
            row["versionnumber"].as_i64().unwrap().to_string(),
            match row["IsDelete"] {
                Json::Bool(true) => "True".to_string(),
                Json::Null => String::new(),
                ref other => panic!("{reader}: IsDelete {other:?}"),
            },
        );
        *seen.entry(key).or_default() += 1;
    }
    seen
}

#[test]
fn a_lake_keeps_the_format_it_started_with_and_a_delta_lake_has_no_table_named_deltalake() {
    let ws = delta_workspace(
        "CREATE TABLE deltalake (id INTEGER PRIMARY KEY); CREATE TABLE t (id INTEGER PRIMARY KEY);",
        "[[table]]\nname = \"DeltaLake\"\n",
    );
    let line = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        line.contains("table[0].name: a table named \"DeltaLake\" cannot be linked into a lake of format \"delta\""),
        "{line}"
    );
    ws.write_config("", "[[table]]\nname = \"t\"\n");
    ws.sync();
    // The same checkpoint store with the CSV format: refused, with what to do.
    let text = std::fs::read_to_string(&ws.config).unwrap();
    std::fs::write(&ws.config, text.replace("format = \"delta\"\n", "")).unwrap();
    let line = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        line.contains("belongs to a lake of format \"delta\", but [lake] format is \"csv\"")
            && line.contains("set format = \"delta\" back"),
        "{line}"
    );
    assert!(!ws.lake.join("model.json").exists());
}

#[test]
fn a_relinked_table_starts_its_delta_table_over_with_the_new_links_rows() {
    let tables =
        "[[table]]\nname = \"orders\"\nmode = \"append_only\"\npartition_by = \"created\"\n";
    let ws = delta_workspace(ORDERS, tables);
    let Orders {
        conn,
        mut rng,
        mut next_id,
    } = Orders::prefilled(&ws, 5, 100);
    ws.sync();
    change_orders(&conn, &mut rng, &mut next_id, 100);
    ws.sync();
    // Unlinked, changed meanwhile, then linked again: a fresh copy into new live files.
    ws.write_config("", "");
    ws.sync();
    change_orders(&conn, &mut rng, &mut next_id, 50);
    conn.execute("DELETE FROM orders WHERE id < 20", [])
        .unwrap();
    ws.write_config("", tables);
    ws.sync();
    let live: usize = ws.live_files("orders").values().map(Vec::len).sum();
    let copied = conn
        .query_row("SELECT count(*) FROM orders", [], |r| r.get::<_, i64>(0))
        .unwrap() as usize;
    assert_eq!(live, copied, "the relink's live files hold its copy alone");
    for reader in READERS {
        let read = read_delta(&ws, "orders", reader, None);
        assert_eq!(read.rows.len(), live, "{reader}: only the new link's rows");
        assert!(
            read.rows.iter().all(|r| r["Id"].as_i64().unwrap() >= 20),
            "{reader}: a row the source deleted while unlinked is gone"
        );
    }
}

/// The same on an ADLS lake on Azurite: lakelink commits through the Blob API (create-only
/// commits with If-None-Match), and readers read the tables over `az://`.
#[test]
#[cfg(feature = "adls")]
fn every_reader_reads_an_adls_lakes_delta_tables_on_azurite() {
    let azurite = support::azurite::Azurite::start();
    let mut ws = Workspace::new(ORDERS);
    let filesystem = "deltalake-readers";
    ws.lake_section = Some(format!(
        "{}format = \"delta\"\n",
        azurite.lake_section_in(filesystem, &azurite.account_key_auth())
    ));
    ws.write_config(
        "",
        "[[table]]\nname = \"orders\"\npartition_by = \"created\"\ngranularity = \"month\"\n",
    );
    let Orders {
        conn,
        mut rng,
        mut next_id,
    } = Orders::prefilled(&ws, 11, 150);
    ws.sync();
    let first = expected_rows(&conn, "orders", "id", SCALES);
    change_orders(&conn, &mut rng, &mut next_id, 150);
    ws.sync();
    let second = expected_rows(&conn, "orders", "id", SCALES);
    for reader in ["deltalake", "polars"] {
        let read = support::delta::read_delta_on_azurite(
            &azurite,
            filesystem,
            "deltalake/orders",
            reader,
            None,
        );
        assert_delta_matches(&format!("{reader} on Azurite, newest"), &read, &second);
        assert_eq!(read.description["txn"], json!(2));
        let version = version_in(&ws, "orders", 1);
        let read = support::delta::read_delta_on_azurite(
            &azurite,
            filesystem,
            "deltalake/orders",
            reader,
            Some(version),
        );
        assert_delta_matches(&format!("{reader} on Azurite, generation 1"), &read, &first);
    }
    let (_, rows) = ws.read("orders", None);
    assert_eq!(rows.len(), second.len());
}

#[test]
fn an_id_is_its_keys_text_whatever_the_keys_type() {
    let ws = delta_workspace(
        "CREATE TABLE reading (at REAL PRIMARY KEY, ok BOOLEAN);
         INSERT INTO reading VALUES (1.5, 1), (-0.25, 0), (1e300, NULL);
         CREATE TABLE flag (on_off BOOLEAN PRIMARY KEY, note TEXT);
         INSERT INTO flag VALUES (1, 'on'), (0, 'off');",
        "[[table]]\nname = \"reading\"\n\n[[table]]\nname = \"flag\"\n",
    );
    ws.sync();
    for reader in READERS {
        let read = read_delta(&ws, "flag", reader, None);
        let mut ids: Vec<String> = read.rows.iter().map(|r| r["Id"].to_string()).collect();
        ids.sort();
        assert_eq!(
            ids,
            ["\"s:False\"", "\"s:True\""],
            "{reader}: a boolean key's Id"
        );
    }
    for reader in READERS {
        let read = read_delta(&ws, "reading", reader, None);
        let mut ids: Vec<&Json> = read.rows.iter().map(|r| &r["Id"]).collect();
        ids.sort_by_key(|v| v.to_string());
        assert_eq!(
            ids,
            [&json!("s:-0.25"), &json!("s:1.5"), &json!("s:1e300")],
            "{reader}"
        );
        assert!(
            read.description["schema"]
                .get("Id__lakelink_text")
                .is_none(),
            "{reader}: {}",
            read.description["schema"]
        );
    }
}

#[test]
fn another_writers_compaction_is_refused_until_a_relink() {
    let tables =
        "[[table]]\nname = \"orders\"\nmode = \"append_only\"\npartition_by = \"created\"\n";
    let ws = delta_workspace(ORDERS, tables);
    let Orders {
        conn,
        mut rng,
        mut next_id,
    } = Orders::prefilled(&ws, 17, 100);
    ws.sync();
    change_orders(&conn, &mut rng, &mut next_id, 50);
    ws.sync();
    let live = |ws: &Workspace| -> usize { ws.live_files("orders").values().map(Vec::len).sum() };
    // A compaction replaces lakelink's files with files of another writer's commit, which
    // carry no record of how far into the live files they reach: lakelink refuses, naming
    // the commit, rather than write rows twice.
    let compacted = support::delta::operate(&ws, "orders", "compact");
    assert!(!compacted.contains("'numFilesAdded': 0"), "{compacted}");
    change_orders(&conn, &mut rng, &mut next_id, 50);
    let line = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        line.contains("deltalake/orders/_delta_log/")
            && line.contains("was committed by another writer")
            && line.contains("relink the table"),
        "{line}"
    );
    // Following the advice: the relinked table is written afresh, every change once.
    ws.write_config("", "");
    ws.sync();
    ws.write_config("", tables);
    ws.sync();
    for reader in READERS {
        let read = read_delta(&ws, "orders", reader, None);
        assert_eq!(
            read.rows.len(),
            live(&ws),
            "{reader}, relinked after a compaction"
        );
    }
}

#[test]
fn a_lake_of_one_format_is_refused_in_the_other_even_with_a_new_checkpoint_store() {
    let ws = delta_workspace(ORDERS, "[[table]]\nname = \"orders\"\n");
    ws.sync();
    std::fs::remove_file(ws.dir.path().join("state.db")).unwrap();
    let text = std::fs::read_to_string(&ws.config).unwrap();
    std::fs::write(&ws.config, text.replace("format = \"delta\"\n", "")).unwrap();
    let line = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        line.contains("_lakelink/delta") && line.contains("set format = \"delta\""),
        "{line}"
    );
    assert!(!ws.lake.join("model.json").exists(), "nothing written");
}

#[test]
fn every_tenth_version_has_a_checkpoint_readers_start_from() {
    let ws = delta_workspace(
        ORDERS,
        "[[table]]\nname = \"orders\"\npartition_by = \"created\"\n",
    );
    let Orders {
        conn,
        mut rng,
        mut next_id,
    } = Orders::prefilled(&ws, 23, 50);
    for _ in 0..23 {
        ws.sync();
        change_orders(&conn, &mut rng, &mut next_id, 5);
    }
    ws.sync();
    let log = ws.lake.join("deltalake/orders/_delta_log");
    let last: Json =
        serde_json::from_slice(&std::fs::read(log.join("_last_checkpoint")).unwrap()).unwrap();
    assert_eq!(last["version"], json!(20), "{last}");
    for v in [10, 20] {
        assert!(log.join(format!("{v:020}.checkpoint.parquet")).exists());
    }
    let expected = expected_rows(&conn, "orders", "id", SCALES);
    // A copy of the table without the commits the newest checkpoint stands for: readers
    // that find the same rows read them from the checkpoint.
    let copy = ws.dir.path().join("copy/deltalake/orders");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let status = std::process::Command::new("cp")
        .args(["-r", ws.lake.join("deltalake/orders").to_str().unwrap()])
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    for v in 0..=20 {
        std::fs::remove_file(copy.join(format!("_delta_log/{v:020}.json"))).unwrap();
    }
    let copied = Workspace {
        dir: tempfile::tempdir().unwrap(),
        db: ws.db.clone(),
        lake: ws.dir.path().join("copy"),
        config: ws.config.clone(),
        lake_section: None,
    };
    for reader in READERS {
        let read = read_delta(&ws, "orders", reader, None);
        assert_delta_matches(&format!("{reader}, with checkpoints"), &read, &expected);
        assert_eq!(read.description["txn"], json!(24), "{reader}");
        let read = read_delta(&copied, "orders", reader, None);
        assert_delta_matches(
            &format!("{reader}, from the checkpoint alone"),
            &read,
            &expected,
        );
        assert_eq!(read.description["txn"], json!(24), "{reader}");
        // Version 20 has no JSON commit left: it is the checkpoint's alone.
        let at_checkpoint = read_delta(&copied, "orders", reader, Some(20));
        assert_eq!(
            at_checkpoint.description["txn"],
            json!(21),
            "{reader}: the transaction version from the checkpoint"
        );
        assert!(!at_checkpoint.rows.is_empty(), "{reader}");
    }
}

#[test]
fn a_readers_vacuum_is_taken_in_stride() {
    let ws = delta_workspace(
        ORDERS,
        "[[table]]\nname = \"orders\"\npartition_by = \"created\"\n",
    );
    let Orders {
        conn,
        mut rng,
        mut next_id,
    } = Orders::prefilled(&ws, 19, 100);
    ws.sync();
    change_orders(&conn, &mut rng, &mut next_id, 50);
    ws.sync();
    // The in-place partitions' earlier files are no longer named: VACUUM deletes them, and
    // commits its own VACUUM START and END, which change no file.
    let deleted = support::delta::operate(&ws, "orders", "vacuum");
    assert_ne!(deleted.trim(), "0", "VACUUM found files to delete");
    change_orders(&conn, &mut rng, &mut next_id, 50);
    ws.sync();
    let expected = expected_rows(&conn, "orders", "id", SCALES);
    for reader in READERS {
        assert_delta_matches(
            &format!("{reader}, after a VACUUM"),
            &read_delta(&ws, "orders", reader, None),
            &expected,
        );
    }
}

/// The data files in `table`'s folder, as paths inside it (`PartitionId=<p>/<file>`).
fn data_files_on_disk(ws: &Workspace, table: &str) -> BTreeSet<String> {
    let dir = ws.lake.join("deltalake").join(table);
    let mut files = BTreeSet::new();
    for partition in std::fs::read_dir(&dir).unwrap() {
        let partition = partition.unwrap();
        let name = partition.file_name().to_string_lossy().to_string();
        if !name.starts_with("PartitionId=") {
            continue;
        }
        for file in std::fs::read_dir(partition.path()).unwrap() {
            let file = file.unwrap().file_name().to_string_lossy().to_string();
            files.insert(format!("{name}/{file}"));
        }
    }
    files
}

/// The versions of `table`'s JSON commits and of its checkpoints on disk.
fn log_on_disk(ws: &Workspace, table: &str) -> (Vec<u64>, Vec<u64>) {
    let dir = ws.lake.join("deltalake").join(table).join("_delta_log");
    let (mut commits, mut checkpoints) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if let Some(v) = name.strip_suffix(".checkpoint.parquet") {
            checkpoints.push(v.parse().unwrap());
        } else if let Some(v) = name.strip_suffix(".json") {
            commits.push(v.parse().unwrap());
        }
    }
    commits.sort_unstable();
    checkpoints.sort_unstable();
    (commits, checkpoints)
}

/// Every data file any JSON commit of `table` added.
fn files_ever_added(ws: &Workspace, table: &str) -> BTreeSet<String> {
    let dir = ws.lake.join("deltalake").join(table).join("_delta_log");
    let mut files = BTreeSet::new();
    for v in log_on_disk(ws, table).0 {
        let text = std::fs::read_to_string(dir.join(format!("{v:020}.json"))).unwrap();
        for line in text.lines() {
            let action: Json = serde_json::from_str(line).unwrap();
            if let Some(path) = action["add"]["path"].as_str() {
                files.insert(path.to_string());
            }
        }
    }
    files
}

const EVENTS: &str =
    "CREATE TABLE events (id INTEGER PRIMARY KEY, created DATETIME NOT NULL, what TEXT);";

#[test]
fn retention_keeps_every_kept_generation_readable_and_deletes_what_none_names() {
    let tables = "[[table]]\nname = \"orders\"\npartition_by = \"created\"\n\n[[table]]\nname = \"events\"\nmode = \"append_only\"\npartition_by = \"created\"\n";
    let ws = delta_workspace(&format!("{ORDERS}\n{EVENTS}"), tables);
    ws.write_config("keep_generations = 3", tables);
    let Orders {
        conn,
        mut rng,
        mut next_id,
    } = Orders::prefilled(&ws, 41, 80);
    let mut events = 0;
    let mut change = |conn: &rusqlite::Connection, rng: &mut StdRng, next_id: &mut i64| {
        change_orders(conn, rng, next_id, 12);
        for _ in 0..3 {
            events += 1;
            conn.execute(
                "INSERT OR REPLACE INTO events (id, created, what) VALUES (?1, ?2, ?3)",
                params![
                    rng.random_range(1..=events),
                    format!("202{}-03-01 10:00:00", rng.random_range(3..6)),
                    format!("event {events}")
                ],
            )
            .unwrap();
        }
    };
    // Within the default grace (an hour) nothing a commit removed is deleted, though the kept
    // generations no longer name it; only the records of older generations go, and a file of
    // an attempt cut short (named as lakelink names its files, named by no commit), which no
    // reader ever saw. Another writer's file that no commit names stays.
    for _ in 0..6 {
        ws.sync();
        change(&conn, &mut rng, &mut next_id);
    }
    let table_dir = ws.lake.join("deltalake/orders");
    let some_file = data_files_on_disk(&ws, "orders")
        .into_iter()
        .next()
        .unwrap();
    let partition = some_file.split('/').next().unwrap().to_string();
    let orphan = format!("{partition}/T2-99.parquet");
    let foreign = format!("{partition}/part-00000-0b1c.snappy.parquet");
    for planted in [&orphan, &foreign] {
        std::fs::copy(table_dir.join(&some_file), table_dir.join(planted)).unwrap();
    }
    ws.sync();
    let added = files_ever_added(&ws, "orders");
    let on_disk = data_files_on_disk(&ws, "orders");
    assert!(
        added.is_subset(&on_disk),
        "missing: {:?}",
        added.difference(&on_disk).collect::<Vec<_>>()
    );
    assert!(
        !table_dir.join(&orphan).exists(),
        "an attempt's file is deleted at once"
    );
    assert!(table_dir.join(&foreign).exists());
    assert_eq!(log_on_disk(&ws, "orders").0, (0..=6).collect::<Vec<u64>>());
    assert!(!ws.lake.join("_lakelink/delta/generation-T4.json").exists());
    assert!(ws.lake.join("_lakelink/delta/generation-T5.json").exists());

    // With no grace, each publish deletes what the kept versions do not name: data files, and
    // the log before the newest checkpoint at or before the oldest kept version. Every sync is
    // a new process, so lakelink's own replay starts from that checkpoint.
    ws.write_config("keep_generations = 3\nreader_grace = \"0s\"", tables);
    let mut expected = BTreeMap::new();
    for _ in 0..26 {
        change(&conn, &mut rng, &mut next_id);
        ws.sync();
        let g = newest_generation(&ws);
        expected.insert(g, expected_rows(&conn, "orders", "id", SCALES));
    }
    assert!(
        table_dir.join(&foreign).exists(),
        "another writer's file stays"
    );
    let newest = newest_generation(&ws);
    let kept: Vec<u64> = (newest - 2..=newest).collect();
    for g in newest - 5..newest - 2 {
        assert!(
            !ws.lake
                .join(format!("_lakelink/delta/generation-T{g}.json"))
                .exists()
        );
    }
    for table in ["orders", "events"] {
        let versions: Vec<u64> = kept.iter().map(|g| version_in(&ws, table, *g)).collect();
        let mut named = BTreeSet::new();
        for (g, v) in kept.iter().zip(&versions) {
            for reader in READERS {
                let read = read_delta(&ws, table, reader, Some(*v));
                if table == "orders" {
                    assert_delta_matches(&format!("{reader}, generation {g}"), &read, &expected[g]);
                }
                named.extend(
                    read.description["files"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .cloned(),
                );
            }
        }
        let mut on_disk = data_files_on_disk(&ws, table);
        on_disk.remove(&foreign);
        assert_eq!(
            on_disk, named,
            "{table}: the data files are the kept versions' own"
        );
        let (commits, checkpoints) = log_on_disk(&ws, table);
        let oldest = versions[0];
        let start = oldest / 10 * 10;
        assert!(start >= 20, "{table}: versions {versions:?}");
        assert_eq!(
            commits.first(),
            Some(&start),
            "{table}: the log starts at its checkpoint"
        );
        assert_eq!(
            checkpoints.first(),
            Some(&start),
            "{table}: {checkpoints:?}"
        );
        assert_eq!(commits.last(), versions.last(), "{table}");
    }
    // The append-only table still holds every change once: its files' live-file lengths were
    // read back from the checkpoint.
    let changes = live_changes(&ws, "events", 3);
    for reader in READERS {
        let read = read_delta(&ws, "events", reader, None);
        assert_eq!(
            changes_read(reader, &read),
            changes,
            "{reader}: every change once"
        );
    }
    // lakelink reads what it keeps, and says what it does not.
    let (_, rows) = ws.read("orders", Some(kept[0]));
    assert_eq!(rows.len(), expected[&kept[0]].len());
    let err = ws.failure(&[
        "read",
        "--config",
        "{config}",
        "orders",
        "--generation",
        &(newest - 3).to_string(),
    ]);
    assert!(err.contains("is not kept in this lake"), "{err}");

    // More generations kept than the log still holds: retention keeps what it can read and
    // deletes nothing more, with no warning.
    ws.write_config("keep_generations = 10\nreader_grace = \"0s\"", tables);
    change(&conn, &mut rng, &mut next_id);
    let out = ws.lakelink(&["sync", "--config", "{config}"]);
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("could not apply retention"), "{log}");
    assert_eq!(log_on_disk(&ws, "orders").0.first(), Some(&30));
    let expected = expected_rows(&conn, "orders", "id", SCALES);
    assert_delta_matches(
        "deltalake, keep raised",
        &read_delta(&ws, "orders", "deltalake", None),
        &expected,
    );
}
