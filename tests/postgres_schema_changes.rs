//! Schema changes in a PostgreSQL source, end to end: the real `lakelink` binary against a
//! real PostgreSQL server (a throwaway cluster started by `scripts/postgres-test-cluster.sh`;
//! each test has a database of its own) whose application changes its tables under it. Each
//! test says what the application does, and holds lakelink to one rule: either the change
//! reaches the lake exactly once, or lakelink stops that table (`table "<name>" stopped:`
//! with the cause and `relink`, the other tables flowing on), or it refuses the link with one
//! line naming the table; and nothing already delivered is touched.
//!
//! Covered: a linked table renamed or moved to another schema while the agent runs; dropped
//! and created again; columns added with defaults (constant, and volatile, which rewrites
//! the rows without logging changes); a column renamed while the agent runs; a stored
//! generated column, which the lake lacks; and column names that differ only in case.

mod support;

use support::pg::*;
use support::stopped_table::*;
use support::workload::plain;
use support::{RunningAgent, assert_rows_match_source, wait_for};

/// The agent looks for changes often, so that the tests that run it are quick.
const ENGINE: &str = "poll_interval = \"20ms\"";

/// A table `t` with three rows and another table, `other`, that must keep flowing.
const T_AND_OTHER: &str = "
    CREATE TABLE t (id int PRIMARY KEY, v text);
    CREATE TABLE other (id int PRIMARY KEY, x text);
    INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three');
    INSERT INTO other VALUES (1, 'o1');";

/// A workspace over [`T_AND_OTHER`] whose config links both tables.
fn t_and_other() -> PgWorkspace {
    let ws = PgWorkspace::new(T_AND_OTHER);
    ws.write_config(ENGINE, &tables(&["t", "other"]));
    ws
}

/// Runs `sql` as the application, on a connection of its own.
fn application(ws: &PgWorkspace, sql: &str) {
    ws.client()
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("the application's {sql:?}: {e}"));
}

/// The application's n-th change to `other`: one new row.
fn write_other(ws: &PgWorkspace) -> impl FnMut(i64) + '_ {
    move |n| {
        application(
            ws,
            &format!("INSERT INTO other VALUES ({}, 'more')", 100 + n),
        )
    }
}

/// The application runs `sql` while `lakelink run` runs on `ws` (linking `t` and `other`);
/// `t` then stops with one of `causes` while `other` flows on ([`assert_stops_while_running`]).
fn t_stops_while_running_after(ws: &PgWorkspace, sql: &str, causes: &[&str]) {
    assert_stops_while_running(
        ws,
        "t",
        causes,
        "other",
        |_| application(ws, sql),
        write_other(ws),
    );
}

/// The same between two syncs ([`assert_stops_at_sync`]).
fn t_stops_at_sync_after(ws: &PgWorkspace, sql: &str, causes: &[&str]) {
    assert_stops_at_sync(
        ws,
        "t",
        causes,
        "other",
        || application(ws, sql),
        write_other(ws),
    );
}

// A linked table renamed, or moved to another schema, while the agent runs.

#[test]
fn a_table_renamed_while_the_agent_runs_stops_and_the_others_keep_flowing() {
    let ws = t_and_other();
    t_stops_while_running_after(
        &ws,
        "ALTER TABLE t RENAME TO t2;
                 INSERT INTO t2 VALUES (4, 'four');
                 UPDATE t2 SET v = 'uno' WHERE id = 1;",
        &["renamed"],
    );
}

#[test]
fn a_table_moved_to_another_schema_while_the_agent_runs_stops_and_the_others_keep_flowing() {
    let ws = t_and_other();
    t_stops_while_running_after(
        &ws,
        "CREATE SCHEMA archive;
                 ALTER TABLE t SET SCHEMA archive;
                 INSERT INTO archive.t VALUES (4, 'four');
                 UPDATE archive.t SET v = 'uno' WHERE id = 1;",
        &["moved", "renamed"],
    );
}

// A linked table dropped and created again while the agent runs.

#[test]
fn a_table_dropped_and_created_again_while_the_agent_runs_stops_until_it_is_relinked() {
    let ws = t_and_other();
    t_stops_while_running_after(
        &ws,
        "DROP TABLE t;
                 CREATE TABLE t (id int PRIMARY KEY, v text);
                 INSERT INTO t VALUES (1, 'one again'), (7, 'seven');
                 UPDATE t SET v = 'seven, changed' WHERE id = 7;",
        &["dropped"],
    );
    relink(&ws, ENGINE, &tables(&["other"]), &tables(&["t", "other"]));
    assert_lake_matches_source(&ws, "t", "id", plain);
    assert_lake_matches_source(&ws, "other", "id", plain);
}

#[test]
fn a_table_dropped_and_created_again_while_the_agent_was_stopped_stops_at_the_next_sync() {
    // The linked table's OID is recorded: a table of the same name made while no agent ran
    // is another table, never taken for the linked one.
    let ws = t_and_other();
    t_stops_at_sync_after(
        &ws,
        "DROP TABLE t;
                 CREATE TABLE t (id int PRIMARY KEY, v text);
                 INSERT INTO t VALUES (1, 'one again'), (7, 'seven');",
        &["dropped"],
    );
    relink(&ws, ENGINE, &tables(&["other"]), &tables(&["t", "other"]));
    assert_lake_matches_source(&ws, "t", "id", plain);
}

// Columns added with a default.

/// What the application does to `t`: three columns added with defaults (PostgreSQL keeps
/// them in the catalog and rewrites nothing, so the old rows change without a logged
/// change), one new row with its own values, one old row updated.
const ADD_COLUMNS_WITH_DEFAULTS: &str = "
    ALTER TABLE t ADD COLUMN c text DEFAULT 'x';
    ALTER TABLE t ADD COLUMN d text NOT NULL DEFAULT 'y';
    ALTER TABLE t ADD COLUMN n integer DEFAULT 7;
    INSERT INTO t VALUES (4, 'four', 'explicit c', 'explicit d', 44);
    UPDATE t SET v = 'two, updated' WHERE id = 2;";

#[test]
fn columns_added_with_defaults_between_syncs_show_the_defaults_in_the_old_rows() {
    let ws = t_and_other();
    ws.sync();
    application(&ws, ADD_COLUMNS_WITH_DEFAULTS);
    ws.sync();
    // Every row, the untouched ones (1 and 3) included, has the values the source shows.
    assert_lake_matches_source(&ws, "t", "id", plain);
}

#[test]
fn columns_added_with_defaults_while_the_agent_runs_show_the_defaults_in_the_old_rows() {
    let ws = t_and_other();
    let agent = RunningAgent::start(&ws);
    ws.wait_for_publish(60);
    let rows = ws.live_row_count("t");
    application(&ws, ADD_COLUMNS_WITH_DEFAULTS);
    wait_for(
        NOTICE_SECONDS,
        "the insert and the update in t's live files",
        || ws.live_row_count("t") >= rows + 2,
    );
    agent.snapshot_now(&ws);
    assert_lake_matches_source(&ws, "t", "id", plain);
    agent.stop_cleanly();
}

#[test]
fn a_column_added_with_a_volatile_default_stops_the_table_or_reaches_the_lake_with_its_values() {
    let ws = t_and_other();
    ws.sync();
    // A volatile default rewrites every row with its own value, and logical decoding carries
    // none of it: the old rows changed without a logged change.
    application(
        &ws,
        "ALTER TABLE t ADD COLUMN r float8 DEFAULT random();
         INSERT INTO t VALUES (4, 'four', 0.5);
         UPDATE t SET v = 'two, updated' WHERE id = 2;",
    );
    let out = ws.lakelink(&["sync", "--config", "{config}"]);
    if out.status.success() {
        // Either the values reach the lake as the source holds them...
        assert_lake_matches_source(&ws, "t", "id", plain);
    } else {
        // ...or the table stops, saying to relink it; never silently wrong values.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_stop_line(&stderr, "lakelink sync's stderr", "t", &["relink"]);
        ws.assert_status_stopped("t", "after the sync that stopped it");
        assert_lake_matches_source(&ws, "other", "id", plain);
    }
}

// A column renamed while the agent runs.

/// The attributes of the live files of `table`, from its trickle-feed manifest.
fn live_attributes(ws: &PgWorkspace, table: &str) -> Vec<String> {
    let bytes = ws
        .lake_file(&format!(
            "Microsoft.Athena.TrickleFeedService/{table}-model.json"
        ))
        .expect("the trickle-feed manifest");
    let model: lakelink_model::cdm::Model = serde_json::from_slice(&bytes).unwrap();
    model.entities[0]
        .attributes
        .iter()
        .map(|a| a.name.clone())
        .collect()
}

#[test]
fn a_column_renamed_while_the_agent_runs_stops_the_table_and_no_value_is_written_empty() {
    let ws = t_and_other();
    assert_stops_while_running(
        &ws,
        "t",
        &["renamed"],
        "other",
        |agent| {
            let before = ws.live_row_count("t");
            // Three updates and an insert, every one with a value in the renamed column.
            application(
                &ws,
                "ALTER TABLE t RENAME COLUMN v TO w;
                 UPDATE t SET w = 'w' || id;
                 INSERT INTO t VALUES (4, 'w4');",
            );
            wait_for(
                NOTICE_SECONDS,
                "the stop line, or the four changes after the rename in t's live files",
                || stop_line(&agent.log(), "t").is_some() || ws.live_row_count("t") >= before + 4,
            );
            // Whatever reached the lake after the rename holds the value the source held.
            let attributes = live_attributes(&ws, "t");
            let at = |name: &str| attributes.iter().position(|a| a == name);
            let is_delete = at("IsDelete").expect("IsDelete attribute");
            let (v, w) = (at("v").expect("v attribute"), at("w"));
            let rows: Vec<_> = ws.live_files("t").into_values().flatten().collect();
            for row in rows.iter().skip(before) {
                if row.get(is_delete).is_some_and(|(f, _)| f == "True") {
                    continue;
                }
                let value = |i: usize| row.get(i).map_or("", |(f, _)| f);
                let fields: Vec<&str> = (0..row.len()).map(value).collect();
                assert!(
                    !value(v).is_empty() || w.is_some_and(|w| !value(w).is_empty()),
                    "a change after the rename reached the lake with v (and w) empty, where the source row held a value: {fields:?} (attributes {attributes:?})"
                );
            }
        },
        write_other(&ws),
    );
}

// Generated columns.

#[test]
fn a_stored_generated_column_is_reported_when_linking_and_the_rest_reaches_the_lake() {
    let ws = PgWorkspace::new(
        "CREATE TABLE line (id int PRIMARY KEY, qty int, price numeric(10,2),
                            total numeric(12,2) GENERATED ALWAYS AS (qty * price) STORED);
         INSERT INTO line (id, qty, price) VALUES (1, 3, 2.50), (2, 1, 10.00);",
    );
    ws.write_config("", &tables(&["line"]));
    let out = ws.lakelink(&["sync", "--config", "{config}"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "lakelink sync failed: {stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| names(l, "total") && l.contains("generated")),
        "linking should warn that the generated column total is not in the lake; stderr:\n{stderr}"
    );
    let model = ws.model();
    let entity = model.entity("line").expect("entity line");
    assert!(
        !entity.attributes.iter().any(|a| a.name == "total"),
        "the lake lacks the generated column (PostgreSQL does not publish it)"
    );
    application(
        &ws,
        "INSERT INTO line (id, qty, price) VALUES (3, 2, 1.25); UPDATE line SET qty = 4 WHERE id = 1;",
    );
    ws.sync();
    // Every other column as the source holds it.
    let (columns, rows) = source_rows(&mut ws.client(), "line", "id");
    let total = columns.iter().position(|(n, _)| n == "total").unwrap();
    let columns: Vec<_> = columns
        .into_iter()
        .enumerate()
        .filter_map(|(i, c)| (i != total).then_some(c))
        .collect();
    let rows = rows
        .into_iter()
        .map(|(id, mut values)| {
            values.remove(total);
            (id, values)
        })
        .collect();
    let (header, lake_rows) = ws.read("line", None);
    assert_rows_match_source("line", &columns, &rows, &header, &lake_rows, plain);
}

// Names that differ only in case.

#[test]
fn columns_whose_names_differ_only_in_case_are_refused() {
    let ws = PgWorkspace::new(
        "CREATE TABLE person (id int PRIMARY KEY, \"Name\" text, name text);
         INSERT INTO person VALUES (1, 'Display', 'login');",
    );
    ws.write_config("", &tables(&["person"]));
    let line = assert_sync_refuses(&ws, "person", &["differ only in case"]);
    assert!(
        names(&line, "Name") && names(&line, "name"),
        "the line names both columns, Name and name: {line}"
    );
}

#[test]
fn a_column_isdelete_in_another_case_added_while_the_agent_runs_stops_the_table() {
    let ws = t_and_other();
    t_stops_while_running_after(
        &ws,
        "ALTER TABLE t ADD COLUMN \"ISDELETE\" text;
                 UPDATE t SET \"ISDELETE\" = 'no' WHERE id = 1;",
        &["differ only in case"],
    );
}

// Ordinary changes that must not stop a table.

#[test]
fn a_table_named_in_another_case_in_the_config_is_not_taken_for_a_renamed_one() {
    // `Account` in the config finds table `account`, as unquoted SQL would; every later start
    // must see the same table under the OID it was linked with.
    let ws = PgWorkspace::new(
        "CREATE TABLE account (id int PRIMARY KEY, v text); INSERT INTO account VALUES (1, 'one');",
    );
    ws.write_config(ENGINE, &tables(&["Account"]));
    ws.sync();
    application(&ws, "INSERT INTO account VALUES (2, 'two')");
    ws.sync();
    application(&ws, "UPDATE account SET v = 'uno' WHERE id = 1");
    ws.sync();
    let (header, rows) = ws.read("Account", None);
    let v = header.iter().position(|h| h == "v").unwrap();
    let mut values: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0).unwrap().0.to_string(),
                r.get(v).unwrap().0.to_string(),
            )
        })
        .collect();
    values.sort();
    assert_eq!(
        values,
        [
            ("1".to_string(), "uno".to_string()),
            ("2".into(), "two".into())
        ],
        "every sync found the table it linked and kept it flowing"
    );
}

#[test]
fn a_column_dropped_and_added_again_under_its_name_keeps_flowing_into_its_attribute() {
    // A common way to change a column's type: the new column has another attnum but the
    // same name, and its values flow into the attribute the lake has.
    let ws = t_and_other();
    ws.sync();
    application(
        &ws,
        "ALTER TABLE t DROP COLUMN v; ALTER TABLE t ADD COLUMN v text;
         UPDATE t SET v = 'again ' || id; INSERT INTO t VALUES (4, 'four');",
    );
    ws.sync();
    application(&ws, "UPDATE t SET v = 'later' WHERE id = 2");
    ws.sync();
    assert_lake_matches_source(&ws, "t", "id", plain);
}

#[test]
fn the_partition_column_dropped_stops_the_table() {
    let ws = PgWorkspace::new(
        "CREATE TABLE t (id int PRIMARY KEY, createdon timestamptz, v text);
         CREATE TABLE other (id int PRIMARY KEY, x text);
         INSERT INTO t VALUES (1, '2024-05-01', 'one'), (2, '2025-05-01', 'two');
         INSERT INTO other VALUES (1, 'o1');",
    );
    ws.write_config(ENGINE, &tables(&["t", "other"]));
    t_stops_at_sync_after(
        &ws,
        "ALTER TABLE t DROP COLUMN createdon; UPDATE t SET v = 'uno' WHERE id = 1;",
        &["dropped"],
    );
}
