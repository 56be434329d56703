//! End-to-end tests: the real `lakelink` binary against real SQLite files and a real lake
//! folder. Random mixes of inserts, updates, deletes and partition moves over several tables
//! and syncs; every snapshot must equal the source, and every live file must hold each change
//! exactly once.

mod support;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rusqlite::{Connection, params};
use std::collections::BTreeMap;
use support::workload::*;
use support::*;

#[test]
fn random_changes_over_several_tables_and_syncs_reach_the_lake_exactly_once() {
    random_changes_reach_the_lake_exactly_once(&Workspace::new(CRM_SCHEMA));
}

#[test]
#[cfg(feature = "adls")]
fn random_changes_reach_an_adls_lake_on_azurite_exactly_once() {
    let azurite = support::azurite::Azurite::start();
    let mut ws = Workspace::new(CRM_SCHEMA);
    support::azurite::use_azurite(&mut ws, &azurite);
    // Live files split after two batches, so that reads, recovery and manifests go across
    // splits.
    if let Some(section) = ws.lake_section.as_mut() {
        section.push_str("split_after_batches = 2\n");
    }
    random_changes_reach_the_lake_exactly_once(&ws);
    // The trickle manifest names every split of a live file, in order.
    let trickle = ws
        .lake_file("Microsoft.Athena.TrickleFeedService/contact-model.json")
        .expect("the trickle manifest");
    let trickle: lakelink_model::cdm::Model = serde_json::from_slice(&trickle).unwrap();
    let locations: Vec<&str> = trickle.entities[0]
        .partitions
        .iter()
        .map(|p| p.location.as_str())
        .collect();
    assert!(
        locations.iter().any(|l| l.ends_with("_001.csv")),
        "{locations:?}"
    );
    let lake = ws.open_lake();
    for location in &locations {
        let path = lake.path_of_location(location).expect("a file of the lake");
        assert!(lake.size(&path).unwrap().is_some(), "{location} exists");
    }
    // Locations are absolute URLs of the lake's filesystem, slashes kept.
    let model = ws.model();
    let endpoint = azurite.endpoint();
    for entity in &model.entities {
        for partition in &entity.partitions {
            assert!(
                partition.location.starts_with(&format!("{endpoint}/lake")),
                "{}",
                partition.location
            );
            assert!(
                !partition.location.contains("%2F"),
                "{}",
                partition.location
            );
        }
    }
}

/// Random changes over several tables and four syncs into the lake of `ws`.
fn random_changes_reach_the_lake_exactly_once(ws: &Workspace) {
    ws.write_config("", CRM_TABLES);
    let mut rng = StdRng::seed_from_u64(20261122);
    let mut conn = ws.source();
    let (mut expected, mut next_id) = prefill(&mut conn, &mut rng, 150);
    for round in 0..4 {
        if round > 0 {
            for _ in 0..300 {
                conn.random_change(&mut rng, &mut next_id, &mut expected);
            }
        }
        let out = ws.sync();
        assert!(
            out.contains(&format!("published generation {}", round + 1)),
            "round {round}: {out}"
        );
        assert_lake_matches_source_by(ws, "account", "accountid", plain, None);
        assert_lake_matches_source_by(ws, "tag", "label", tag_label, None);
        assert_live_files_hold_every_change_once(ws, "account", "accountid", plain, &expected);
        assert_live_files_hold_every_change_once(ws, "contact", "contactid", plain, &expected);
        assert_live_files_hold_every_change_once(ws, "tag", "label", tag_label, &expected);
        // An append-only snapshot is the log itself, up to the cut.
        let (_, contact_rows) = ws.read("contact", None);
        assert_eq!(
            contact_rows.len(),
            expected.live_rows["contact"],
            "round {round}: contact log"
        );
        let model = ws.model();
        assert_eq!(model.generation, round + 1);
        for entity in &model.entities {
            assert_eq!(
                entity.annotation("Athena:InitialSyncState"),
                Some("Completed")
            );
        }
    }
}

#[test]
fn every_sqlite_value_round_trips() {
    let ws = Workspace::new(
        "CREATE TABLE value_matrix (
            id INTEGER PRIMARY KEY, t TEXT, i INTEGER, r REAL, b BLOB, a, d DATETIME,
            n NUMERIC, flag BOOLEAN, v VARCHAR(20));",
    );
    ws.write_config("", "[[table]]\nname = \"value_matrix\"\n");
    let conn = ws.source();
    let big = "x".repeat(1 << 20);
    let rows: Vec<Vec<rusqlite::types::Value>> = {
        use rusqlite::types::Value as V;
        vec![
            vec![
                V::Null,
                V::Text(String::new()),
                V::Integer(i64::MIN),
                V::Real(0.1),
                V::Blob(vec![]),
                V::Null,
                V::Text("2024-05-25 16:21:09".into()),
                V::Integer(42),
                V::Integer(1),
                V::Text("a".into()),
            ],
            vec![
                V::Null,
                V::Text("\"quoted\", comma\nnewline\r\n".into()),
                V::Integer(i64::MAX),
                V::Real(f64::INFINITY),
                V::Blob(vec![0, 1, 2, 255]),
                V::Integer(7),
                V::Text("not a date".into()),
                V::Real(1.5),
                V::Integer(0),
                V::Null,
            ],
            vec![
                V::Null,
                V::Text("Zoë 東京 🦀 \u{0}nul".into()),
                V::Text("abc".into()),
                V::Real(f64::NEG_INFINITY),
                V::Null,
                V::Real(2.5),
                V::Text("2024-05-25T18:21:09.1234567+02:00".into()),
                V::Text("n/a".into()),
                V::Integer(2),
                V::Text("".into()),
            ],
            vec![
                V::Null,
                V::Text(big),
                V::Integer(0),
                V::Real(-0.0),
                V::Blob(vec![b'"'; 10]),
                V::Text("text".into()),
                V::Integer(1_700_000_000),
                V::Null,
                V::Null,
                V::Text("x".into()),
            ],
            vec![
                V::Null,
                V::Null,
                V::Null,
                V::Real(5e-324),
                V::Null,
                V::Blob(vec![9; 3]),
                V::Null,
                V::Real(1e300),
                V::Text("yes".into()),
                V::Null,
            ],
            vec![
                V::Null,
                V::Text("123".into()),
                V::Real(1.5),
                V::Real(f64::MAX),
                V::Text("blob column text".into()),
                V::Text("".into()),
                V::Text("2024-02-30".into()),
                V::Integer(-1),
                V::Real(0.5),
                V::Null,
            ],
        ]
    };
    for row in &rows {
        conn.execute(
            "INSERT INTO value_matrix VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            rusqlite::params_from_iter(row),
        )
        .unwrap();
    }
    ws.sync();
    assert_lake_matches_source(&ws, "value_matrix", "id", None);
    // Trickled values take the same path through the change log: update every row to itself
    // plus one more changed column and compare again.
    conn.execute("UPDATE value_matrix SET v = 'changed'", [])
        .unwrap();
    ws.sync();
    assert_lake_matches_source(&ws, "value_matrix", "id", None);

    // NULL and the empty string stay apart in the files themselves.
    let live = ws.live_files("value_matrix");
    let first = &live["1"][0];
    let model = ws.model();
    let t = attribute_index(&model, "value_matrix", "t");
    let a = attribute_index(&model, "value_matrix", "a");
    assert_eq!(first.get(t), Some(("", true)), "empty string is \"\"");
    assert_eq!(
        first.get(a),
        Some(("", false)),
        "NULL is an empty unquoted field"
    );
    let entity = model.entity("value_matrix").unwrap();
    let types: Vec<(&str, &str)> = entity
        .attributes
        .iter()
        .map(|a| (a.name.as_str(), a.data_type.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("Id", "int64"),
            ("SinkCreatedOn", "dateTime"),
            ("SinkModifiedOn", "dateTime"),
            ("id", "int64"),
            ("t", "string"),
            ("i", "int64"),
            ("r", "double"),
            ("b", "string"),
            ("a", "string"),
            ("d", "dateTime"),
            ("n", "decimal"),
            ("flag", "boolean"),
            ("v", "string"),
            ("versionnumber", "int64"),
            ("IsDelete", "boolean"),
        ]
    );
    let v = &entity.attributes[12];
    assert_eq!(v.max_length, 20);
    assert_eq!(v.traits[0].trait_reference, "is.constrained");
}

#[test]
fn a_column_added_to_a_linked_table_is_appended_without_a_relink() {
    let ws = Workspace::new(
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO item VALUES (1, 'one'), (2, 'two');",
    );
    ws.write_config("", "[[table]]\nname = \"item\"\n");
    ws.sync();
    let conn = ws.source();
    conn.execute_batch(
        "ALTER TABLE item ADD COLUMN price REAL;
         INSERT INTO item VALUES (3, 'three', 3.5);",
    )
    .unwrap();
    ws.sync();
    conn.execute("UPDATE item SET price = 1.25 WHERE id = 1", [])
        .unwrap();
    ws.sync();
    let model = ws.model();
    let names: Vec<&str> = model
        .entity("item")
        .unwrap()
        .attributes
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Id",
            "SinkCreatedOn",
            "SinkModifiedOn",
            "id",
            "name",
            "versionnumber",
            "IsDelete",
            "price"
        ]
    );
    assert_lake_matches_source(&ws, "item", "id", None);
    // Rows written before the column existed are shorter (ragged right).
    let live = &ws.live_files("item")["1"];
    assert_eq!(live[0].len(), 7);
    assert_eq!(live.last().unwrap().len(), 8);
}

#[test]
fn snapshots_rewrite_only_changed_partitions_and_retention_keeps_generations() {
    let ws = Workspace::new(
        "CREATE TABLE event (id INTEGER PRIMARY KEY, what TEXT, createdon DATETIME);
         INSERT INTO event VALUES (1, 'a', '2023-01-01 00:00:00'), (2, 'b', '2024-06-01 00:00:00'),
                                  (3, 'c', '2025-03-01 00:00:00'), (4, 'd', NULL);",
    );
    ws.write_config("keep_generations = 2", "[[table]]\nname = \"event\"\n");
    assert!(ws.sync().contains("published generation 1"));
    assert!(
        ws.sync().contains("nothing changed"),
        "a run without changes publishes nothing"
    );
    assert_eq!(ws.model().generation, 1);

    let conn = ws.source();
    conn.execute("UPDATE event SET what = 'B' WHERE id = 2", [])
        .unwrap();
    assert!(ws.sync().contains("published generation 2"));
    let files = |ws: &Workspace| -> BTreeMap<String, String> {
        ws.model()
            .entity("event")
            .unwrap()
            .partitions
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.location.rsplit('/').next().unwrap().to_string(),
                )
            })
            .collect()
    };
    let g2 = files(&ws);
    assert_eq!(
        g2["2024"], "event-2024-T2.csv",
        "the changed partition gets a new file"
    );
    assert_eq!(
        g2["2023"], "event-2023-T1.csv",
        "unchanged partitions keep theirs"
    );
    assert_eq!(
        g2["1"], "event-1-T1.csv",
        "rows without a usable timestamp go to partition 1"
    );
    let (_, at_g2) = ws.read("event", None);

    conn.execute("DELETE FROM event WHERE id = 3", []).unwrap();
    assert!(ws.sync().contains("published generation 3"));
    conn.execute(
        "INSERT INTO event VALUES (5, 'e', '2023-05-05 05:05:05')",
        [],
    )
    .unwrap();
    assert!(ws.sync().contains("published generation 4"));
    assert_lake_matches_source(&ws, "event", "id", None);

    // keep_generations = 2: manifests 3 and 4 stay, older ones and the files only they named go.
    let mut kept: Vec<String> = std::fs::read_dir(ws.lake.join("_lakelink/models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    kept.sort();
    assert_eq!(kept, ["model-T3.json", "model-T4.json"]);
    assert!(!ws.lake.join("event/Snapshot/event-2024-T1.csv").exists());
    assert!(
        ws.lake.join("event/Snapshot/event-2024-T2.csv").exists(),
        "still named by T3 and T4"
    );
    assert!(
        ws.lake.join("event/Snapshot/event-2023-T1.csv").exists(),
        "replaced at T4 but still named by T3"
    );
    assert!(ws.lake.join("event/Snapshot/event-2023-T4.csv").exists());
    let (_, at_g3) = ws.read("event", Some(3));
    assert_eq!(at_g3.len(), 3, "generation 3 is readable: ids 1, 2, 4");
    assert_eq!(at_g2.len(), 4);
}

#[test]
fn unlinking_removes_capture_and_the_entity_but_keeps_the_folder() {
    let ws = Workspace::new(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT); CREATE TABLE b (id INTEGER PRIMARY KEY, y TEXT);
         INSERT INTO a VALUES (1, 'x'); INSERT INTO b VALUES (1, 'y');",
    );
    ws.write_config("", "[[table]]\nname = \"a\"\n\n[[table]]\nname = \"b\"\n");
    ws.sync();
    let triggers = |conn: &Connection| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let conn = ws.source();
    assert_eq!(triggers(&conn), 6);
    ws.write_config("", "[[table]]\nname = \"a\"\n");
    assert!(
        ws.sync().contains("published generation 2"),
        "unlinking is a change"
    );
    assert_eq!(triggers(&conn), 3);
    let names: Vec<String> = ws.model().entities.iter().map(|e| e.name.clone()).collect();
    assert_eq!(names, ["a"]);
    assert!(ws.lake.join("b/1.csv").exists(), "the folder stays");
    conn.execute("INSERT INTO b VALUES (2, 'z')", []).unwrap();
    let pending: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM {}", change_log(&conn)),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pending, 0, "an unlinked table is no longer captured");
}

#[test]
fn the_agent_trickles_while_an_application_writes_and_stops_cleanly() {
    let ws = Workspace::new(
        "CREATE TABLE reading (id INTEGER PRIMARY KEY, sensor TEXT, value REAL, createdon DATETIME);",
    );
    ws.write_config(
        "poll_interval = \"20ms\"",
        "[[table]]\nname = \"reading\"\ngranularity = \"month\"\n",
    );
    let agent = RunningAgent::start(&ws);
    // Once the table is linked, every change is captured and must reach the lake as a row.
    let linked = ws
        .lake
        .join("Microsoft.Athena.TrickleFeedService/reading-model.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !linked.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not link the table in 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let conn = ws.source();
    let mut rng = StdRng::seed_from_u64(7);
    let mut live_rows = 0;
    for i in 0..600 {
        let tx = conn.unchecked_transaction().unwrap();
        for j in 0..5 {
            let id = i * 5 + j;
            tx.execute(
                "INSERT INTO reading VALUES (?1, ?2, ?3, ?4)",
                params![
                    id,
                    format!("s{}", id % 9),
                    rng.random_range(0.0..100.0),
                    created(&mut rng)
                ],
            )
            .unwrap();
            live_rows += 1;
        }
        if i % 10 == 0 {
            tx.execute("DELETE FROM reading WHERE id = ?1", [i * 5 - 3])
                .unwrap();
            live_rows += if i > 0 { 1 } else { 0 };
        }
        tx.commit().unwrap();
    }
    // Wait until the agent has trickled everything, then stop it with SIGTERM.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let rows = ws.live_row_count("reading");
        if rows >= live_rows {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent trickled {rows} of {live_rows} rows in 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The agent exits 0 on SIGTERM.
    agent.stop_cleanly();
    let rows = ws.live_row_count("reading");
    assert_eq!(rows, live_rows, "every change once");
    ws.sync();
    assert_lake_matches_source(&ws, "reading", "id", None);
}

#[test]
fn on_unlink_delete_removes_the_folder_once_no_kept_manifest_needs_it() {
    let ws = Workspace::new(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT); CREATE TABLE b (id INTEGER PRIMARY KEY, y TEXT);
         INSERT INTO a VALUES (1, 'x'); INSERT INTO b VALUES (1, 'y');",
    );
    let engine = "keep_generations = 2\non_unlink = \"delete\"";
    ws.write_config(
        engine,
        "[[table]]\nname = \"a\"\n\n[[table]]\nname = \"b\"\n",
    );
    ws.sync();
    ws.write_config(engine, "[[table]]\nname = \"a\"\n");
    ws.sync();
    assert!(!ws.lake.join("b/1.csv").exists(), "live files go at once");
    assert!(
        ws.lake.join("b/Snapshot/b-T1.csv").exists(),
        "generation 1, still kept, names b's snapshot"
    );
    assert_eq!(
        ws.read("b", Some(1)).1.len(),
        1,
        "time travel to generation 1 still works"
    );
    ws.source()
        .execute("INSERT INTO a VALUES (2, 'x')", [])
        .unwrap();
    ws.sync();
    assert!(
        !ws.lake.join("b/Snapshot/b-T1.csv").exists(),
        "retention removed it with generation 1"
    );
}

/// On ADLS a long live file is several blobs; unlinking with `on_unlink = "delete"` removes
/// every one of them, not only the first.
#[test]
#[cfg(feature = "adls")]
fn on_unlink_delete_removes_every_split_of_an_adls_live_file() {
    use lakelink_model::lake_path::{LakePath, TableName};
    let azurite = support::azurite::Azurite::start();
    let mut ws = Workspace::new(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT); CREATE TABLE b (id INTEGER PRIMARY KEY, y TEXT);
         INSERT INTO a VALUES (1, 'x'); INSERT INTO b VALUES (1, 'y');",
    );
    support::azurite::use_azurite(&mut ws, &azurite);
    if let Some(section) = ws.lake_section.as_mut() {
        section.push_str("split_after_batches = 2\n");
    }
    let engine = "on_unlink = \"delete\"";
    ws.write_config(
        engine,
        "[[table]]\nname = \"a\"\n\n[[table]]\nname = \"b\"\n",
    );
    ws.sync();
    for id in 2..8 {
        ws.source()
            .execute("INSERT INTO b VALUES (?1, 'y')", [id])
            .unwrap();
        ws.sync();
    }
    let b = TableName::new("b").unwrap();
    let lake = ws.open_lake();
    let live = LakePath::live_file(&b, "1");
    // A lake knows a log's splits once it has looked at the log.
    assert!(lake.size(&live).unwrap().is_some());
    let parts = lake.parts(&live);
    assert!(parts.len() > 2, "the live file was split: {parts:?}");
    ws.write_config(engine, "[[table]]\nname = \"a\"\n");
    ws.sync();
    let lake = ws.open_lake();
    let left: Vec<_> = lake
        .list(&LakePath::table_dir(&b))
        .unwrap()
        .into_iter()
        .filter(|e| !e.is_dir)
        .map(|e| e.path)
        .collect();
    assert!(left.is_empty(), "every split goes: {left:?} is left");
    for part in &parts {
        assert_eq!(lake.size(part).unwrap(), None, "{part} is gone");
    }
}

#[test]
fn a_snapshot_waits_for_every_pending_change_even_past_the_sources_byte_cap() {
    // 120 changes of 1 MiB each: four batches (the source stops a batch at 32 MiB), though
    // each is far short of batch_size. The snapshot must still hold every one.
    let ws = Workspace::new("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body TEXT);");
    ws.write_config("", "[[table]]\nname = \"blobs\"\n");
    ws.sync();
    insert_wide_rows(&ws, "blobs", 120, 1 << 20);
    ws.sync();
    assert_lake_matches_source(&ws, "blobs", "id", None);
}

#[test]
fn the_first_sync_of_a_table_of_wide_rows_keeps_memory_bounded_in_bytes() {
    // 160 rows of 2 MiB (320 MiB): the copy's queue is bounded in bytes, not rows, so the
    // agent never holds more than a few of them at once, whatever the rows' width.
    let ws = Workspace::new("CREATE TABLE wide (id INTEGER PRIMARY KEY, body TEXT);");
    ws.write_config("", "[[table]]\nname = \"wide\"\n");
    insert_wide_rows(&ws, "wide", 160, 2 << 20);
    let (status, peak_mib) = peak_memory_of_lakelink(&ws, &["sync", "--config", "{config}"]);
    eprintln!("first sync of 320 MiB of 2 MiB rows: peak RSS {peak_mib} MiB");
    assert!(status.success());
    // Less than the table: the rows were never all held at once (with a queue bounded in
    // rows, this run peaked at 950 MiB; bounded in bytes, at 190 MiB).
    assert!(
        peak_mib < 300,
        "the first sync of 320 MiB of wide rows peaked at {peak_mib} MiB"
    );
    assert_eq!(ws.read("wide", None).1.len(), 160);
}

/// Inserts `rows` rows `(id, body)` into `table`, each body `bytes` long.
fn insert_wide_rows(ws: &Workspace, table: &str, rows: i64, bytes: usize) {
    let conn = ws.source();
    let body = "w".repeat(bytes);
    for id in 0..rows {
        conn.execute(
            &format!("INSERT INTO {table} VALUES (?1, ?2)"),
            rusqlite::params![id, body],
        )
        .unwrap();
    }
}
