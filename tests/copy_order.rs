//! The initial copy of an `in_place` table records how much of each live file it wrote in `Id`
//! order. A table read along its key is then its own first snapshot, byte for byte, and the
//! changes trickled in before that snapshot are merged over the copy's rows. The real binary
//! and the engine in-process, against real SQLite files and a real lake folder.

mod support;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rusqlite::params;
use std::collections::BTreeMap;
use support::*;

const SCHEMA: &str = "CREATE TABLE note (noteid TEXT PRIMARY KEY, body TEXT, createdon DATETIME);
     CREATE TABLE item (id INTEGER PRIMARY KEY, body TEXT, createdon DATETIME);";

/// Ids no sort by their text may get wrong: separators, quotes, newlines, digits that sort
/// differently as text than as numbers, non-ASCII, the empty string.
const ODD_IDS: [&str; 9] = [
    "a,b",
    "q\"uo\"\"te",
    "new\nline",
    "10",
    "9",
    "é",
    "Z",
    "",
    " ",
];

/// `n` random Ids of `hex_digits` hex digits, and the odd ones.
fn note_ids(rng: &mut StdRng, n: usize, hex_digits: usize) -> Vec<String> {
    let mut ids: Vec<String> = (0..n)
        .map(|_| {
            let id = format!("{:032x}", rng.random::<u128>());
            id[..hex_digits].to_string()
        })
        .collect();
    ids.extend(ODD_IDS.iter().map(|s| s.to_string()));
    ids
}

/// Asserts that every snapshot file of `table`'s generation 1 is its live file, byte for byte,
/// and that the state records each live file as wholly in `Id` order.
fn assert_first_snapshot_is_the_live_files(ws: &Workspace, table: &str) {
    let prefixes = ws.id_ordered_prefixes(table);
    assert!(
        prefixes.values().all(|(len, ordered)| len == ordered),
        "{table}: {prefixes:?}"
    );
    let snapshots = snapshot_files(ws, table, 1);
    assert_eq!(snapshots.len(), prefixes.len());
    for (partition, bytes) in snapshots {
        let live = std::fs::read(ws.lake.join(table).join(format!("{partition}.csv"))).unwrap();
        assert!(
            bytes == live,
            "{table} partition {partition}: snapshot differs from its live file"
        );
    }
}

/// Inserts `ids` in the order of their text (the order the copy then reads them in, the
/// table's rowid order) or, with `shuffled`, in a random order; each with a body of
/// `body_bytes` and a createdon in one of four years.
fn insert_notes(
    ws: &Workspace,
    ids: &[String],
    body_bytes: usize,
    shuffled: bool,
    rng: &mut StdRng,
) {
    let mut order: Vec<&String> = ids.iter().collect();
    order.sort();
    if shuffled {
        order.shuffle(rng);
    }
    let mut conn = ws.source();
    let tx = conn.transaction().unwrap();
    for (i, id) in order.into_iter().enumerate() {
        let body: String = (0..body_bytes)
            .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
            .collect();
        tx.execute(
            "INSERT INTO note VALUES (?1, ?2, ?3)",
            params![id, body, format!("{}-03-01 08:00:00", 2020 + i % 4)],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// The Ids of `table`'s live files, per partition, as they stand in each file.
fn live_ids(ws: &Workspace, table: &str) -> BTreeMap<String, Vec<String>> {
    ws.live_files(table)
        .into_iter()
        .map(|(p, rows)| {
            let ids = rows
                .iter()
                .map(|r| r.get(0).unwrap().0.to_string())
                .collect();
            (p, ids)
        })
        .collect()
}

/// The bytes of each partition's snapshot file of `generation`.
fn snapshot_files(ws: &Workspace, table: &str, generation: u64) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let suffix = format!("-T{generation}.csv");
    for entry in std::fs::read_dir(ws.lake.join(table).join("Snapshot")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(stem) = name.strip_suffix(&suffix) {
            let partition = stem.strip_prefix(&format!("{table}-")).unwrap().to_string();
            let path = ws.lake.join(table).join("Snapshot").join(&name);
            out.insert(partition, std::fs::read(path).unwrap());
        }
    }
    out
}

/// Inserts items with integer keys that sort differently as text (9, 10, 100, negative ones)
/// in a random order; a rowid table reads them back in numeric order.
fn insert_items(ws: &Workspace, rng: &mut StdRng) -> usize {
    let mut ids: Vec<i64> = (-50..3_000).chain([i64::MAX, i64::MIN + 1]).collect();
    ids.shuffle(rng);
    let conn = ws.source();
    for (i, id) in ids.iter().enumerate() {
        conn.execute(
            "INSERT INTO item VALUES (?1, ?2, ?3)",
            params![id, format!("item {id}"), format!("{}-07-01", 2020 + i % 3)],
        )
        .unwrap();
    }
    ids.len()
}

#[test]
fn a_copy_read_in_id_order_is_its_first_snapshot_byte_for_byte() {
    let ws = Workspace::new(SCHEMA);
    ws.write_config(
        "",
        "[[table]]\nname = \"note\"\n\n[[table]]\nname = \"item\"\n",
    );
    let mut rng = StdRng::seed_from_u64(16);
    let ids = note_ids(&mut rng, 5_000, 32);
    insert_notes(&ws, &ids, 200, false, &mut rng);
    let items = insert_items(&ws, &mut rng);
    ws.sync();

    // Integer Ids: in numeric order, and the same file as the snapshot.
    let item_ids = live_ids(&ws, "item");
    assert_eq!(item_ids.values().map(Vec::len).sum::<usize>(), items);
    for (partition, ids) in &item_ids {
        let numbers: Vec<i64> = ids.iter().map(|id| id.parse().unwrap()).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "item {partition}");
    }
    assert_first_snapshot_is_the_live_files(&ws, "item");
    assert_lake_matches_source(&ws, "item", "id", None);

    let live = live_ids(&ws, "note");
    assert_eq!(live.len(), 4, "four partitions");
    assert_eq!(live.values().map(Vec::len).sum::<usize>(), ids.len());
    for (partition, ids) in &live {
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "partition {partition}: {pair:?}");
        }
    }
    assert_first_snapshot_is_the_live_files(&ws, "note");
    assert_lake_matches_source(&ws, "note", "noteid", None);
}

#[test]
fn a_copy_in_another_order_records_only_its_ordered_start_and_its_snapshot_is_sorted() {
    let ws = Workspace::new(SCHEMA);
    ws.write_config("", "[[table]]\nname = \"note\"\n");
    let mut rng = StdRng::seed_from_u64(18);
    let ids = note_ids(&mut rng, 3_000, 32);
    insert_notes(&ws, &ids, 50, true, &mut rng);
    ws.sync();
    let prefixes = ws.id_ordered_prefixes("note");
    assert!(
        prefixes.values().all(|(len, ordered)| ordered < len),
        "{prefixes:?}"
    );
    for (partition, bytes) in snapshot_files(&ws, "note", 1) {
        let ids: Vec<String> = parse_csv(&bytes)
            .iter()
            .map(|r| r.get(0).unwrap().0.to_string())
            .collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "snapshot of {partition}: {pair:?}");
        }
    }
    assert_lake_matches_source(&ws, "note", "noteid", None);
}

#[test]
fn changes_between_the_copy_and_the_first_snapshot_are_merged_over_the_ordered_copy() {
    let ws = Workspace::new(SCHEMA);
    ws.write_config("", "[[table]]\nname = \"note\"\n");
    let mut rng = StdRng::seed_from_u64(17);
    let ids = note_ids(&mut rng, 2_000, 16);
    insert_notes(&ws, &ids, 40, false, &mut rng);
    let mut pipeline = ws.pipeline();
    pipeline.reconcile().unwrap();
    let prefixes = ws.id_ordered_prefixes("note");
    assert!(
        prefixes.values().all(|(len, ordered)| len == ordered),
        "{prefixes:?}"
    );
    // The agent restarts between the copy and the first snapshot: the prefix is read back
    // from the checkpoint store.
    drop(pipeline);
    let mut pipeline = ws.pipeline();
    // The changes are written at a later instant than the copy.
    std::thread::sleep(std::time::Duration::from_millis(20));
    // After the copy, before any snapshot: updates (one moving a row to another year), deletes,
    // inserts, an Id deleted and inserted again, and a key changed.
    let conn = ws.source();
    conn.execute_batch(
        "UPDATE note SET body = 'updated' WHERE noteid IN ('10', 'a,b', '');
         UPDATE note SET createdon = '2030-01-01 00:00:00' WHERE noteid = 'Z';
         DELETE FROM note WHERE noteid IN ('9', 'new\nline');
         INSERT INTO note VALUES ('00 new', 'inserted', '2021-05-05 05:05:05');
         DELETE FROM note WHERE noteid = 'é';
         INSERT INTO note VALUES ('é', 'again', '2022-01-01 00:00:00');
         UPDATE note SET noteid = 'zz renamed' WHERE noteid = ' ';",
    )
    .unwrap();
    for id in ids.iter().take(300) {
        conn.execute(
            "UPDATE note SET body = 'bulk' WHERE noteid = ?1",
            params![id],
        )
        .unwrap();
    }
    pipeline.snapshot().unwrap().expect("the first snapshot");
    drop(pipeline);
    assert_lake_matches_source(&ws, "note", "noteid", None);
    // An Id updated after the copy keeps the SinkCreatedOn the copy gave every row; one
    // deleted and inserted again is created anew.
    let (header, rows) = ws.read("note", None);
    let created_at = header.iter().position(|h| h == "SinkCreatedOn").unwrap();
    let modified_at = header.iter().position(|h| h == "SinkModifiedOn").unwrap();
    let row_of = |id: &str| rows.iter().find(|r| r.get(0).unwrap().0 == id).unwrap();
    let copied = row_of(&ids[1_500]).get(created_at);
    for id in ["10", "a,b", "", ids[0].as_str()] {
        let row = row_of(id);
        assert_eq!(
            row.get(created_at),
            copied,
            "{id:?} keeps the copy's SinkCreatedOn"
        );
        assert_ne!(
            row.get(modified_at),
            copied,
            "{id:?} was modified after the copy"
        );
    }
    let again = row_of("é");
    assert_eq!(again.get(created_at), again.get(modified_at));
    assert_ne!(again.get(created_at), copied);
}
