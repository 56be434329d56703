//! End-to-end tests of the PostgreSQL source: the real `lakelink` binary against a real
//! PostgreSQL server (a throwaway cluster started by `scripts/postgres-test-cluster.sh`; each
//! test has a database of its own) and a real lake folder.

mod support;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::time::Duration;
use support::pg::*;
use support::workload::{
    BackgroundWriter, CRM_TABLES, Expected, assert_live_files_hold_every_change_once, plain,
    prefill, tag_label,
};
use support::{Application, RunningAgent, attribute_index, lakelink_bin, wait_for};

#[test]
fn random_changes_over_several_tables_and_syncs_reach_the_lake_exactly_once() {
    let ws = PgWorkspace::new(CRM_SCHEMA);
    ws.write_config("", CRM_TABLES);
    let mut rng = StdRng::seed_from_u64(20261124);
    let mut client = ws.client();
    let (mut expected, mut next_id) = prefill(&mut client, &mut rng, 150);
    for round in 0..4 {
        if round > 0 {
            for _ in 0..300 {
                client.random_change(&mut rng, &mut next_id, &mut expected);
            }
        }
        let out = ws.sync();
        assert!(
            out.contains(&format!("published generation {}", round + 1)),
            "round {round}: {out}"
        );
        assert_lake_matches_source(&ws, "account", "accountid", plain);
        assert_lake_matches_source(&ws, "tag", "label", tag_label);
        assert_live_files_hold_every_change_once(&ws, "account", "accountid", plain, &expected);
        assert_live_files_hold_every_change_once(&ws, "contact", "contactid", plain, &expected);
        assert_live_files_hold_every_change_once(&ws, "tag", "label", tag_label, &expected);
        let (_, contact_rows) = ws.read("contact", None);
        assert_eq!(
            contact_rows.len(),
            expected.live_rows["contact"],
            "round {round}: contact log"
        );
    }
    // One transaction's changes share a versionnumber: its commit LSN.
    client
        .batch_execute(
            "BEGIN; INSERT INTO tag VALUES ('tx', 'one', 1); INSERT INTO tag VALUES ('tx', 'two', 2); COMMIT;",
        )
        .unwrap();
    ws.sync();
    let (header, rows) = ws.read("tag", None);
    let version = header.iter().position(|h| h == "versionnumber").unwrap();
    let versions: Vec<&str> = rows
        .iter()
        .filter(|r| r.get(0).unwrap().0.starts_with("[\"tx\""))
        .map(|r| r.get(version).unwrap().0)
        .collect();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0], versions[1], "one transaction, one position");
}

#[test]
fn every_type_maps_to_its_cdm_type_and_round_trips() {
    let ws = PgWorkspace::new(
        "CREATE TYPE mood AS ENUM ('happy', 'sad');
         CREATE TABLE value_matrix (
            id bigint PRIMARY KEY, small smallint, i integer, n numeric(12,3), nn numeric,
            f double precision, r real, b boolean, t text, v varchar(40), c char(3), u uuid,
            d date, ts timestamp, tz timestamptz, j json, jb jsonb, by bytea, arr integer[],
            m mood);
         INSERT INTO value_matrix VALUES
            (1, -32768, 2147483647, 123456789.125, 1e-20, 1.5e300, 0.25, true, 'quote \" comma , newline\nend',
             'Zoë · 東京 · 🦀', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29',
             '2024-12-31 23:59:59.123456', '2024-06-01 12:00:00+02', '{\"a\": [1, 2]}', '{\"b\": null}',
             '\\x00ff10', '{1,2,3}', 'sad'),
            (2, NULL, NULL, NULL, NULL, 'NaN', '-Infinity', false, '', NULL, NULL, NULL, NULL, NULL,
             NULL, NULL, NULL, '\\x', '{}', NULL);",
    );
    ws.write_config("", "[[table]]\nname = \"value_matrix\"\n");
    ws.sync();
    let mut client = ws.client();
    client
        .batch_execute("INSERT INTO value_matrix (id, t, by) SELECT 3, 'streamed', '\\xdeadbeef'")
        .unwrap();
    ws.sync();
    assert_lake_matches_source(&ws, "value_matrix", "id", plain);
    let model = ws.model();
    let entity = model.entity("value_matrix").unwrap();
    let type_of = |name: &str| {
        let a = entity.attributes.iter().find(|a| a.name == name).unwrap();
        serde_json::to_value(a).unwrap()
    };
    for (column, data_type) in [
        ("small", "int64"),
        ("n", "decimal"),
        ("f", "double"),
        ("b", "boolean"),
        ("v", "string"),
        ("u", "guid"),
        ("d", "date"),
        ("ts", "dateTime"),
        ("tz", "dateTime"),
        ("j", "json"),
        ("jb", "json"),
        ("by", "string"),
        ("arr", "string"),
        ("m", "string"),
    ] {
        assert_eq!(
            type_of(column)["dataType"],
            data_type,
            "{column}: {}",
            type_of(column)
        );
    }
    let n = type_of("n").to_string();
    assert!(
        n.contains("12") && n.contains('3'),
        "numeric(12,3) keeps its shape: {n}"
    );
    let v = type_of("v").to_string();
    assert!(v.contains("40"), "varchar(40) keeps its length: {v}");
}

/// Columns of every type the binary copy decodes, domains over them, and types it reads
/// through `::text`.
const EVERY_TYPE_COLUMNS: &str = "id bigint PRIMARY KEY, i2 smallint, i4 integer, i8 bigint,
    o oid, f8 double precision, f4 real, b boolean, t text, v varchar(40), c char(5), nm name,
    u uuid, by bytea, j json, jb jsonb, n numeric, n2 numeric(12,3), d date, ts timestamp,
    tz timestamptz, fl flag, fl2 flag2, am amount, arr integer[], m mood, iv interval, tm time,
    nt note2, ia ints, pr pair, rg int4range, ttz timetz, mn money, fa real[]";

/// Rows of `EVERY_TYPE_COLUMNS`: each type's limits, NULLs, infinities, NaNs, BC and
/// six-digit years, fractions with trailing zeros, escapes; then random values.
const EVERY_TYPE_ROWS: &str = r#"
    (1, -32768, -2147483648, -9223372036854775808, 0, -1.7976931348623157e308, -3.4e38, false,
     '', '', '', '', '00000000-0000-0000-0000-000000000000', '\x', '[]', '{}', -0.000001,
     -999999999.999, '4714-11-24 BC', '4714-11-24 00:00:00 BC', '4714-11-24 00:00:00+00 BC',
     false, false, -99999999.99, '{}', 'happy', '-178000000 years', '00:00',
     '', '{}', '(,)', 'empty', '00:00+14', '-92233720368547758.08', '{NaN,-Infinity}'),
    (2, 32767, 2147483647, 9223372036854775807, 4294967295, 5e-324, 1.4e-45, true,
     E'tab\there\nnewline \\ back "quote", comma\r', 'Zoë · 東京 · 🦀', 'ab', 'a name',
     'ffffffff-ffff-ffff-ffff-ffffffffffff', '\x00ff5c0a0d09', '{"a": [1, "\u00e9"]}',
     '{"b": null, "a": 1.50}', 123456789012345678901234567890.123456789012345678901234567890,
     999999999.999, '5874897-12-31', '294276-12-31 23:59:59.999999',
     '294276-12-31 23:59:59.999999+00', true, true, 99999999.99, '{1,NULL,3}', 'sad',
     '1 day 02:03:04.5', '24:00', E'a\\b\tc', '{1,NULL}', '(1,"a, \"b\"")', '[1,10)',
     '24:00-15:59', '92233720368547758.07', '{0.1,3.4e38}'),
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL),
    (4, 0, 0, 0, 1, 'NaN', 'NaN', true, '\N', 'NULL', '  ', 'x', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
     '\x00', 'null', 'null', 'NaN', 0, 'infinity', 'infinity', 'infinity', true, false, 0,
     '{{1,2},{3,4}}', 'happy', '0', '23:59:59.999999', 'x', '{{1},{2}}', '(,"")', '(,5]',
     '12:00:00.5+05:30', 0, '{NULL}'),
    (5, 1, 1, 1, 2, 'Infinity', '-Infinity', false, '🦀', 'x', 'x', 'x',
     'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12', '\xdeadbeef', '  {"spaced" : true}  ', '[1, 2.0, "x"]',
     'Infinity', 0.5, '-infinity', '-infinity', '-infinity', false, true, 0.01, '{-1}', 'sad',
     '-1 mons +2 days -00:00:01', '12:00:00.5', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (6, -1, -1, -1, 3, '-0', '-0', true, 'x', 'x', 'x', 'x',
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13', '\x5c', '{}', '{}', '-Infinity', -0.5,
     '0044-03-15 BC', '0044-03-15 12:00:00.5 BC', '2024-06-01 12:00:00.120+02', true, true,
     -0.01, '{2147483647}', 'happy', '1 year', '00:00:00.000001', 'y', '{}', '(2,)', '[,)',
     '01:02:03-00:30', -0.01, '{-0}'),
    (7, 7, 7, 7, 7, 0.1, 0.1, true, 'x', 'x', 'x', 'x', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a14',
     '\x', '1', '1', 0.000, 1e-20, '0001-01-01', '0001-01-01 00:00:00', '0001-01-01 00:00:00+00',
     true, true, 1, NULL, 'sad', '1 microsecond', '01:02:03', 'z', NULL, NULL, '[-5,-5]',
     NULL, NULL, NULL),
    (8, 8, 8, 8, 8, '-NaN', '-NaN', true, 'x', 'x', 'x', 'x', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a15',
     '\x', '1', '1', 1, 1, '1999-12-31', '1999-12-31 23:59:59.5', '1999-12-31 23:59:59.5+00',
     true, true, 1, NULL, 'sad', '1 day', '01:02:03', 'z', NULL, NULL, NULL, NULL, NULL, NULL)"#;

/// Random rows of `EVERY_TYPE_COLUMNS` from id 100 on, after `setseed`.
const EVERY_TYPE_RANDOM_ROWS: &str = "
    SELECT 100 + g, (random() * 65535 - 32768)::int2, (random() * 4e9 - 2e9)::int4,
        (random() * 9e18 - 4.5e18)::int8, (random() * 4e9)::int8::oid,
        (random() - 0.5) * power(10::float8, (random() * 600 - 300)::int),
        ((random() - 0.5) * power(10::float8, (random() * 70 - 35)::int))::real, random() < 0.5,
        md5(g::text) || chr(1 + (random() * 1200)::int) || E'\\t\\\\\\n' || chr(1 + (random() * 130)::int),
        left(md5((g * 7)::text), (random() * 40)::int), left(md5(g::text), (random() * 5)::int),
        md5((g * 3)::text), md5((g * 11)::text)::uuid, decode(md5(g::text), 'hex'),
        json_build_object('g', g, 'r', random())::json, jsonb_build_object('g', g, 's', md5(g::text)),
        round(((random() - 0.5) * 1e15)::numeric / power(10::numeric, (random() * 30)::int), (random() * 40)::int),
        round((random() * 1e8)::numeric, (random() * 3)::int),
        date '4000-01-01 BC' + (random() * 4.5e6)::int,
        timestamp '4000-01-01 BC' + random() * (timestamp '9999-12-31' - timestamp '4000-01-01 BC'),
        timestamptz '1900-01-01 00:00+00' + random() * interval '200 years',
        random() < 0.5, random() < 0.5, round((random() * 1e7)::numeric, 2),
        ARRAY[(random() * 100)::int, g], CASE WHEN random() < 0.5 THEN 'happy' ELSE 'sad' END::mood,
        random() * interval '1000 days', time '00:00' + random() * interval '24 hours',
        md5((g * 13)::text), ARRAY[g, -g], ROW(g, md5(g::text))::pair,
        int4range(g, g + (random() * 100)::int), timetz '00:00+00' + random() * interval '24 hours',
        (random() * 1e6)::numeric::money, ARRAY[random()::real, (random() * 1e-30)::real]
    FROM generate_series(1, 2000) g";

/// `lakelink read` of `table`, without the columns whose value depends on when a row reached
/// the lake.
fn rows_as_written(ws: &PgWorkspace, table: &str) -> Vec<Vec<(String, bool)>> {
    let (header, rows) = ws.read(table, None);
    let kept: Vec<usize> = (0..header.len())
        .filter(|&i| !header[i].starts_with("Sink") && header[i] != "versionnumber")
        .collect();
    rows.iter()
        .map(|row| {
            kept.iter()
                .map(|&i| {
                    let (text, quoted) = row.get(i).unwrap();
                    (text.to_string(), quoted)
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_initial_copy_writes_every_value_as_the_stream_writes_it() {
    // `copied` is read by the initial copy (binary), `streamed` gets the same rows from the
    // stream (pgoutput's text form). `inet_copied` has an inet column, whose own cast to text
    // is not its text output, and a domain over a domain over boolean (inspected as text), so
    // the copy reads it in COPY's text form.
    let ws = PgWorkspace::new(&format!(
        "CREATE TYPE mood AS ENUM ('happy', 'sad');
         CREATE DOMAIN flag AS boolean;
         CREATE DOMAIN flag2 AS varchar(5);
         CREATE DOMAIN nested_flag AS flag;
         CREATE DOMAIN note AS text;
         CREATE DOMAIN note2 AS note;
         CREATE DOMAIN ints AS integer[];
         CREATE TYPE pair AS (a integer, b text);
         CREATE DOMAIN amount AS numeric(10, 2);
         CREATE TABLE copied ({EVERY_TYPE_COLUMNS});
         CREATE TABLE streamed ({EVERY_TYPE_COLUMNS});
         INSERT INTO copied VALUES {EVERY_TYPE_ROWS};
         SELECT setseed(0.42);
         INSERT INTO copied {EVERY_TYPE_RANDOM_ROWS};
         CREATE TABLE inet_copied (id bigint PRIMARY KEY, addr inet, tz timestamptz, n numeric,
             nf nested_flag);
         CREATE TABLE inet_streamed (LIKE inet_copied INCLUDING ALL);
         INSERT INTO inet_copied VALUES (1, '10.0.0.1', '0044-03-15 12:00:00.5 BC', 'NaN', true),
             (2, '10.0.0.0/8', 'infinity', 1.50, false), (3, '::1', NULL, NULL, NULL);"
    ));
    ws.write_config(
        "",
        "[[table]]\nname = \"copied\"\n[[table]]\nname = \"streamed\"\n\
         [[table]]\nname = \"inet_copied\"\n[[table]]\nname = \"inet_streamed\"\n",
    );
    let out = std::process::Command::new(lakelink_bin())
        .args(["sync", "--config", ws.config.to_str().unwrap()])
        .env("RUST_LOG", "lakelink_connectors=debug")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let text_form = |table: &str| {
        log.lines().any(|l| {
            l.contains("reads the table in COPY's text form") && l.contains(&format!("\"{table}\""))
        })
    };
    let binary_form = |table: &str| {
        log.lines().any(|l| {
            l.contains("reads the table in COPY's binary form")
                && l.contains(&format!("\"{table}\""))
        })
    };
    assert!(
        binary_form("copied") && !text_form("copied"),
        "copied is read binary: {log}"
    );
    assert!(
        text_form("inet_copied"),
        "inet_copied is read as text: {log}"
    );

    ws.client()
        .batch_execute(
            "INSERT INTO streamed SELECT * FROM copied; \
             INSERT INTO inet_streamed SELECT * FROM inet_copied;",
        )
        .unwrap();
    ws.sync();
    let copied = rows_as_written(&ws, "copied");
    assert_eq!(copied.len(), 2008);
    let streamed = rows_as_written(&ws, "streamed");
    for (copy, stream) in copied.iter().zip(&streamed) {
        assert_eq!(copy, stream, "row {} as copied and as streamed", copy[0].0);
    }
    assert_eq!(copied.len(), streamed.len());
    assert_eq!(
        rows_as_written(&ws, "inet_copied"),
        rows_as_written(&ws, "inet_streamed")
    );
    // And the source's own text output is what the lake holds.
    assert_lake_matches_source(&ws, "copied", "id", plain);
    // Domains are typed by their base type, however deep.
    let model = ws.model();
    let type_of = |table: &str, column: &str| {
        let entity = model.entity(table).unwrap();
        let a = entity.attributes.iter().find(|a| a.name == column).unwrap();
        serde_json::to_value(a).unwrap()["dataType"].clone()
    };
    assert_eq!(type_of("inet_copied", "nf"), "boolean");
    assert_eq!(type_of("copied", "fl"), "boolean");
    assert_eq!(type_of("copied", "nt"), "string");
    assert_eq!(type_of("copied", "am"), "decimal");
}

#[test]
fn a_row_the_copy_read_binary_keeps_its_id_when_the_stream_updates_and_deletes_it() {
    // A key of the types whose text the binary copy writes itself: an Id that differed by a
    // character from the stream's would leave the copied row beside its update, and a delete
    // would miss it.
    let ws = PgWorkspace::new(
        "CREATE TYPE mood AS ENUM ('happy', 'sad');
         CREATE TABLE keyed (tz timestamptz, n numeric, u uuid, m mood, d date, f float8,
             payload text, PRIMARY KEY (tz, n, u, m, d, f));
         INSERT INTO keyed VALUES
             ('4714-11-24 00:00:00+00 BC', -0.000001, '00000000-0000-0000-0000-000000000000',
              'happy', '4714-11-24 BC', -1.7976931348623157e308, 'a'),
             ('infinity', 'NaN', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'sad', 'infinity', 'NaN', 'b'),
             ('-infinity', 'Infinity', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'sad', '-infinity',
              '-Infinity', 'c'),
             ('0044-03-15 12:00:00.5+00 BC', 123456789012345678901234567890.1234567890,
              'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', 'happy', '0044-03-15 BC', 5e-324, 'd'),
             ('294276-12-31 23:59:59.999999+00', 0.10, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13',
              'happy', '5874897-12-31', 0.1, 'e');
         SELECT setseed(0.7);
         INSERT INTO keyed SELECT
             timestamptz '1900-01-01 00:00+00' + random() * interval '300 years',
             round(((random() - 0.5) * 1e12)::numeric / power(10::numeric, (random() * 20)::int), (random() * 25)::int),
             md5(g::text)::uuid, CASE WHEN g % 2 = 0 THEN 'happy' ELSE 'sad' END::mood,
             date '1000-01-01 BC' + (random() * 1.2e6)::int,
             (random() - 0.5) * power(10::float8, (random() * 600 - 300)::int), 'r' || g
         FROM generate_series(1, 995) g;",
    );
    ws.write_config("", "[[table]]\nname = \"keyed\"\n");
    ws.sync();
    assert_eq!(ws.read("keyed", None).1.len(), 1000);
    ws.client()
        .batch_execute(
            "UPDATE keyed SET payload = payload || ' updated'; \
             DELETE FROM keyed WHERE payload LIKE 'r%5 updated' OR payload = 'b updated';",
        )
        .unwrap();
    ws.sync();
    let (header, rows) = ws.read("keyed", None);
    let payload = header.iter().position(|h| h == "payload").unwrap();
    let id = header.iter().position(|h| h == "Id").unwrap();
    let ids: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.get(id).unwrap().0).collect();
    assert_eq!(ids.len(), rows.len(), "each Id once");
    // 100 random rows end in 5 (5, 15, ..., 995) and `b` is deleted.
    assert_eq!(rows.len(), 1000 - 100 - 1);
    for row in &rows {
        assert!(
            row.get(payload).unwrap().0.ends_with(" updated"),
            "a copied row the stream's update did not replace: {:?}",
            row.iter().collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_large_transaction_reaches_the_lake_whole_at_one_position() {
    let ws = PgWorkspace::new(
        "CREATE TABLE reading (id bigint PRIMARY KEY, sensor text, value double precision);",
    );
    ws.write_config("batch_size = 1000", "[[table]]\nname = \"reading\"\n");
    ws.sync();
    let mut client = ws.client();
    client
        .batch_execute(
            "INSERT INTO reading SELECT g, 's' || (g % 9), g / 7.0 FROM generate_series(1, 60000) g;",
        )
        .unwrap();
    client
        .batch_execute("UPDATE reading SET value = -value WHERE id % 3 = 0")
        .unwrap();
    ws.sync();
    assert_lake_matches_source(&ws, "reading", "id", plain);
    let rows = ws.live_row_count("reading");
    assert_eq!(rows, 80000, "every change once");
    // Each transaction is larger than a batch: its rows came in several batches, all at its
    // one position.
    // Id, SinkCreatedOn, SinkModifiedOn, id, sensor, value, versionnumber, IsDelete.
    let positions: std::collections::BTreeSet<String> = ws
        .live_files("reading")
        .values()
        .flatten()
        .map(|row| row.get(6).expect("versionnumber").0.to_string())
        .collect();
    assert_eq!(
        positions.len(),
        2,
        "two transactions, two positions: {positions:?}"
    );
    // One rolled back leaves nothing.
    client
        .batch_execute(
            "BEGIN; INSERT INTO reading SELECT g, 'never', 0 FROM generate_series(100001, 160000) g; ROLLBACK;
             INSERT INTO reading VALUES (200000, 'after', 1);",
        )
        .unwrap();
    ws.sync();
    assert_eq!(
        ws.live_row_count("reading"),
        80001,
        "only the committed change"
    );
    assert_lake_matches_source(&ws, "reading", "id", plain);
}

#[test]
fn an_update_that_leaves_a_toasted_value_unchanged_keeps_it() {
    let ws = PgWorkspace::new(
        "CREATE TABLE document (id integer PRIMARY KEY, title text, body text, attachment bytea);
         ALTER TABLE document ALTER COLUMN body SET STORAGE EXTERNAL;
         ALTER TABLE document ALTER COLUMN attachment SET STORAGE EXTERNAL;",
    );
    ws.write_config("", "[[table]]\nname = \"document\"\n");
    ws.sync();
    let mut client = ws.client();
    // Stored out of line (EXTERNAL: TOASTed, not compressed) and larger than a page.
    client
        .batch_execute(
            "INSERT INTO document SELECT 1, 'first', repeat('long body ', 20000), decode(repeat('ab01', 30000), 'hex');
             INSERT INTO document SELECT 2, 'second', repeat('other ', 30000), NULL;",
        )
        .unwrap();
    ws.sync();
    client
        .batch_execute(
            "UPDATE document SET title = 'retitled' WHERE id = 1;
             UPDATE document SET title = 'again' WHERE id = 2;
             UPDATE document SET title = 'and again' WHERE id = 2;",
        )
        .unwrap();
    ws.sync();
    assert_lake_matches_source(&ws, "document", "id", plain);
    for records in ws.live_files("document").values() {
        for r in records {
            let body = r.get(5).unwrap().0;
            assert!(
                body.len() > 100_000,
                "a live row lost its body: {:?}",
                r.get(0)
            );
        }
    }
}

#[test]
fn a_key_update_writes_a_delete_for_the_old_id() {
    let ws = PgWorkspace::new(
        "CREATE TABLE account (accountid text PRIMARY KEY, name text, createdon timestamp);
         INSERT INTO account VALUES ('a-1', 'one', '2020-01-01'), ('a-2', 'two', '2021-01-01');",
    );
    ws.write_config("", "[[table]]\nname = \"account\"\n");
    ws.sync();
    ws.client()
        .batch_execute(
            "UPDATE account SET accountid = 'a-9' WHERE accountid = 'a-1';
             UPDATE account SET accountid = 'a-8', createdon = '2024-05-05' WHERE accountid = 'a-2';",
        )
        .unwrap();
    ws.sync();
    assert_lake_matches_source(&ws, "account", "accountid", plain);
    let files = ws.live_files("account");
    let model = ws.model();
    let is_delete = attribute_index(&model, "account", "IsDelete");
    let deletes: Vec<String> = files
        .values()
        .flatten()
        .filter(|r| r.get(is_delete).is_some_and(|(t, _)| t == "True"))
        .map(|r| r.get(0).unwrap().0.to_string())
        .collect();
    assert_eq!(deletes.len(), 2, "{files:?}");
    assert!(deletes.contains(&"a-1".to_string()) && deletes.contains(&"a-2".to_string()));
    assert!(
        files.contains_key("2024"),
        "the moved row is in its new partition"
    );
}

#[test]
fn a_column_added_while_streaming_becomes_a_new_attribute_and_a_dropped_one_is_written_empty() {
    let ws = PgWorkspace::new(
        "CREATE TABLE reading (id bigint PRIMARY KEY, sensor text, gone text);
         INSERT INTO reading VALUES (1, 'a', 'x');",
    );
    ws.write_config(
        "poll_interval = \"20ms\"",
        "[[table]]\nname = \"reading\"\n",
    );
    let agent = RunningAgent::start(&ws);
    wait_for(30, "the initial copy", || ws.live_row_count("reading") == 1);
    let mut client = ws.client();
    client
        .batch_execute(
            "INSERT INTO reading VALUES (2, 'b', 'y');
             ALTER TABLE reading ADD COLUMN unit text;
             INSERT INTO reading VALUES (3, 'c', 'z', 'kPa');
             UPDATE reading SET unit = 'bar' WHERE id = 1;",
        )
        .unwrap();
    wait_for(30, "the changes after the new column", || {
        ws.live_row_count("reading") == 4
    });
    client
        .batch_execute(
            "ALTER TABLE reading DROP COLUMN gone;
             INSERT INTO reading VALUES (4, 'd', 'Pa');",
        )
        .unwrap();
    wait_for(30, "the change after the dropped column", || {
        ws.live_row_count("reading") == 5
    });
    agent.stop_cleanly();
    ws.sync();
    let model = ws.model();
    let unit = attribute_index(&model, "reading", "unit");
    let gone = attribute_index(&model, "reading", "gone");
    let (_, rows) = ws.read("reading", None);
    let by_id = |id: &str| rows.iter().find(|r| r.get(0).unwrap().0 == id).unwrap();
    assert_eq!(
        by_id("3").get(unit).unwrap().0,
        "kPa",
        "the new column's value is kept"
    );
    assert_eq!(by_id("1").get(unit).unwrap().0, "bar");
    assert_eq!(by_id("2").get(unit).unwrap().0, "");
    assert_eq!(by_id("2").get(gone).unwrap().0, "y");
    assert_eq!(
        by_id("4").get(gone),
        Some(("", false)),
        "a dropped column is written empty"
    );
    assert_eq!(by_id("4").get(unit).unwrap().0, "Pa");
}

/// How long the application pauses after each change.
fn writer_pause(rng: &mut StdRng) -> Duration {
    Duration::from_micros(rng.random_range(0..2000))
}

/// The live rows of each CRM table now.
fn live_rows(ws: &PgWorkspace) -> Expected {
    let mut counted = Expected::default();
    for table in ["account", "contact", "tag"] {
        counted.add(table, ws.live_row_count(table));
    }
    counted
}

#[test]
fn the_initial_copy_hands_off_exactly_while_the_application_writes() {
    let ws = PgWorkspace::new(CRM_SCHEMA);
    ws.write_config("poll_interval = \"20ms\"\nbatch_size = 200", CRM_TABLES);
    let mut rng = StdRng::seed_from_u64(98);
    let (_, next_id) = prefill(&mut ws.client(), &mut rng, 300);
    // The application writes while the tables are linked and copied: every change is either
    // in a copy or streamed after it, never both, never neither.
    let writer = BackgroundWriter::start(ws.client(), 97, next_id, writer_pause);
    let agent = RunningAgent::start(&ws);
    wait_for(60, "the initial sync", || {
        ws.lake.join("model.json").exists()
    });
    std::thread::sleep(Duration::from_millis(300));
    writer.finish();
    agent.stop_cleanly();
    ws.sync();
    assert_lake_matches_source(&ws, "account", "accountid", plain);
    assert_lake_matches_source(&ws, "tag", "label", tag_label);
}

#[test]
fn the_agent_stopped_during_writes_catches_up_with_nothing_lost() {
    let ws = PgWorkspace::new(CRM_SCHEMA);
    ws.write_config("poll_interval = \"20ms\"\nbatch_size = 200", CRM_TABLES);
    let mut rng = StdRng::seed_from_u64(99);
    let (_, next_id) = prefill(&mut ws.client(), &mut rng, 300);
    ws.sync();
    let mut expected = live_rows(&ws);
    // The application writes all along, through a stop and a restart of the agent.
    let writer = BackgroundWriter::start(ws.client(), 100, next_id, writer_pause);
    let agent = RunningAgent::start(&ws);
    std::thread::sleep(Duration::from_millis(700));
    agent.stop_cleanly();
    // Stopped for a while: the slot keeps every change.
    std::thread::sleep(Duration::from_millis(1500));
    let agent = RunningAgent::start(&ws);
    std::thread::sleep(Duration::from_millis(700));
    let written = writer.finish();
    for (table, n) in written.live_rows {
        expected.add(table, n);
    }
    agent.stop_cleanly();
    ws.sync();
    assert_live_files_hold_every_change_once(&ws, "account", "accountid", plain, &expected);
    assert_live_files_hold_every_change_once(&ws, "contact", "contactid", plain, &expected);
    assert_live_files_hold_every_change_once(&ws, "tag", "label", tag_label, &expected);
    assert_lake_matches_source(&ws, "account", "accountid", plain);
    assert_lake_matches_source(&ws, "tag", "label", tag_label);
}

#[test]
fn unlinking_the_last_table_drops_the_slot_and_the_publication() {
    let ws = PgWorkspace::new(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);",
    );
    ws.write_config_with(
        "slot = \"lake_one\"",
        "",
        "[[table]]\nname = \"a\"\n\n[[table]]\nname = \"b\"\n",
    );
    ws.sync();
    assert_eq!(ws.slots(), vec!["lake_one".to_string()]);
    let publication_tables = |ws: &PgWorkspace| -> i64 {
        ws.client()
            .query_one(
                "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'lake_one'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(publication_tables(&ws), 2);
    let out = ws.lakelink(&["unlink", "--config", "{config}", "a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ws.sync();
    assert_eq!(publication_tables(&ws), 1);
    assert_eq!(
        ws.slots(),
        vec!["lake_one".to_string()],
        "b still needs the slot"
    );
    let out = ws.lakelink(&["unlink", "--config", "{config}", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ws.sync();
    assert!(ws.slots().is_empty(), "no slot is left holding WAL");
    let publications: i64 = ws
        .client()
        .query_one("SELECT count(*) FROM pg_publication", &[])
        .unwrap()
        .get(0);
    assert_eq!(publications, 0);
}

#[test]
fn a_table_without_a_usable_replica_identity_is_refused_with_what_to_run() {
    let ws = PgWorkspace::new("CREATE TABLE note (owner text, body text);");
    ws.write_config("", "[[table]]\nname = \"note\"\nkey = [\"owner\"]\n");
    let line = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        line.contains("ALTER TABLE \"public\".\"note\" REPLICA IDENTITY FULL"),
        "{line}"
    );
    ws.client()
        .batch_execute(
            "ALTER TABLE note REPLICA IDENTITY FULL; INSERT INTO note VALUES ('o', 'b');",
        )
        .unwrap();
    ws.sync();
    assert_lake_matches_source(&ws, "note", "owner", plain);
}

#[test]
fn wrong_settings_get_one_line_errors_naming_what_to_change() {
    let ws = PgWorkspace::new("CREATE TABLE a (id int PRIMARY KEY);");
    let tables = "[[table]]\nname = \"a\"\n";
    // A wrong password for a user that must give one.
    ws.write_config_with(
        "password_env = \"LAKELINK_TEST_WRONG_PASSWORD\"",
        "",
        tables,
    );
    let text = std::fs::read_to_string(&ws.config).unwrap().replace(
        &format!("user = \"{}\"", server_setting("user")),
        "user = \"lakelink_password_user\"",
    );
    std::fs::write(&ws.config, &text).unwrap();
    let out = std::process::Command::new(lakelink_bin())
        .args(["sync", "--config", ws.config.to_str().unwrap()])
        .env("LAKELINK_TEST_WRONG_PASSWORD", "not-the-password")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.trim().lines().last().unwrap();
    assert!(
        line.contains("refused the login") && line.contains("password_env"),
        "{line}"
    );
    assert!(
        !err.contains("not-the-password"),
        "the password is never logged"
    );
    // The right one works.
    let out = std::process::Command::new(lakelink_bin())
        .args(["sync", "--config", ws.config.to_str().unwrap()])
        .env("LAKELINK_TEST_WRONG_PASSWORD", "lakelink-test-secret")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The password variable not set.
    let line = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        line.contains("LAKELINK_TEST_WRONG_PASSWORD") && line.contains("not set"),
        "{line}"
    );
    // A database that does not exist.
    ws.write_config("", tables);
    let text = std::fs::read_to_string(&ws.config).unwrap().replace(
        &format!("database = \"{}\"", ws.database),
        "database = \"no_such_db\"",
    );
    std::fs::write(&ws.config, text).unwrap();
    let line = ws.failure(&["sync", "--config", "{config}"]);
    assert!(line.contains("source.database"), "{line}");
    // A root certificate that would not be used, and a slot name PostgreSQL would refuse.
    ws.write_config_with(
        "sslmode = \"require\"\nsslrootcert = \"ca.pem\"\nslot = \"Bad-Name\"",
        "",
        tables,
    );
    let line = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        line.contains("source.sslrootcert") && line.contains("source.slot"),
        "{line}"
    );
}

#[test]
fn a_table_is_looked_up_in_the_schema_its_config_names() {
    let ws = PgWorkspace::new(
        "CREATE SCHEMA sales;
         CREATE TABLE account (id int PRIMARY KEY, name text);
         CREATE TABLE sales.account (id int PRIMARY KEY, name text, region text);
         INSERT INTO account VALUES (1, 'public one');
         INSERT INTO sales.account VALUES (7, 'sales seven', 'north');",
    );
    ws.write_config("", "[[table]]\nname = \"account\"\nschema = \"sales\"\n");
    ws.sync();
    ws.client()
        .batch_execute(
            "INSERT INTO sales.account VALUES (8, 'sales eight', 'south');
             INSERT INTO account VALUES (2, 'public two');
             UPDATE sales.account SET region = 'east' WHERE id = 7;",
        )
        .unwrap();
    ws.sync();
    let (header, rows) = ws.read("account", None);
    assert!(header.contains(&"region".to_string()), "{header:?}");
    let mut seen: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0).unwrap().0.to_string(),
                r.get(4).unwrap().0.to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("7".to_string(), "sales seven".to_string()),
            ("8".to_string(), "sales eight".to_string())
        ]
    );
    // Unlinking finds the table in its schema.
    let out = ws.lakelink(&["unlink", "--config", "{config}", "--all"]);
    assert!(out.status.success());
    ws.sync();
    assert!(ws.slots().is_empty());
}

#[test]
fn a_server_without_logical_decoding_gets_a_one_line_error_saying_what_to_set() {
    let ws = PgWorkspace::new("CREATE TABLE a (id int PRIMARY KEY);");
    let replica = std::env::var("LAKELINK_TEST_POSTGRES_WAL_REPLICA").expect(
        "LAKELINK_TEST_POSTGRES_WAL_REPLICA is not set: run the tests with scripts/test.sh",
    );
    let setting = |key: &str| {
        replica
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap()
            .to_string()
    };
    ws.write_config("", "[[table]]\nname = \"a\"\n");
    let text = std::fs::read_to_string(&ws.config)
        .unwrap()
        .replace(
            &format!("port = {}", server_setting("port")),
            &format!("port = {}", setting("port")),
        )
        .replace(
            &format!("database = \"{}\"", ws.database),
            "database = \"postgres\"",
        );
    std::fs::write(&ws.config, text).unwrap();
    let line = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        line.contains("wal_level is replica; set wal_level = logical"),
        "{line}"
    );
}

#[test]
fn a_dropped_connection_is_retried_and_nothing_is_lost() {
    let ws = PgWorkspace::new("CREATE TABLE reading (id bigint PRIMARY KEY, value int);");
    ws.write_config(
        "poll_interval = \"20ms\"",
        "[[table]]\nname = \"reading\"\n",
    );
    let agent = RunningAgent::start(&ws);
    let linked = ws
        .lake
        .join("Microsoft.Athena.TrickleFeedService/reading-model.json");
    wait_for(30, "the table to be linked", || linked.exists());
    let mut client = ws.client();
    for i in 0..300i64 {
        client
            .execute("INSERT INTO reading VALUES ($1, 1)", &[&i])
            .unwrap();
        if i % 100 == 50 {
            // What a server restart or a network failure does to the agent's connection.
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND application_name = 'lakelink'",
                    &[],
                )
                .unwrap();
        }
        if i % 100 == 80 {
            // The replication session alone, as a server ending walsenders does.
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND backend_type = 'walsender'",
                    &[],
                )
                .unwrap();
        }
    }
    wait_for(60, "every insert in the lake", || {
        ws.live_row_count("reading") == 300
    });
    let log = agent.log();
    assert!(log.contains("failed; retrying"), "{log}");
    assert!(log.contains("reconnected"), "{log}");
    agent.stop_cleanly();
    ws.sync();
    assert_eq!(ws.live_row_count("reading"), 300, "every change once");
    assert_lake_matches_source(&ws, "reading", "id", plain);
}

#[test]
fn a_retyped_column_is_reported_and_its_values_keep_flowing() {
    let ws = PgWorkspace::new(
        "CREATE TABLE reading (id bigint PRIMARY KEY, value integer);
         INSERT INTO reading VALUES (1, 10);",
    );
    ws.write_config(
        "poll_interval = \"20ms\"",
        "[[table]]\nname = \"reading\"\n",
    );
    let agent = RunningAgent::start(&ws);
    wait_for(30, "the initial copy", || ws.live_row_count("reading") == 1);
    ws.client()
        .batch_execute(
            "ALTER TABLE reading ALTER COLUMN value TYPE text;
             INSERT INTO reading VALUES (2, 'twenty');",
        )
        .unwrap();
    wait_for(30, "the change after the new type", || {
        ws.live_row_count("reading") == 2
    });
    wait_for(30, "the warning", || {
        agent.log().contains("relink the table")
    });
    agent.stop_cleanly();
}

#[test]
fn tls_encrypts_the_connection_and_verify_full_checks_the_certificate() {
    let ws = PgWorkspace::new(
        "CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a VALUES (1, 'x');",
    );
    let ca = std::env::var("LAKELINK_TEST_POSTGRES_CA")
        .expect("LAKELINK_TEST_POSTGRES_CA is not set: run the tests with scripts/test.sh");
    let tables = "[[table]]\nname = \"a\"\n";
    // The server lets this user in over TLS only.
    let as_tls_user = |source_extra: &str| {
        ws.write_config_with(source_extra, "", tables);
        let text = std::fs::read_to_string(&ws.config).unwrap().replace(
            &format!("user = \"{}\"", server_setting("user")),
            "user = \"lakelink_tls_user\"",
        );
        std::fs::write(&ws.config, text).unwrap();
    };
    as_tls_user("sslmode = \"require\"");
    ws.sync();
    ws.client()
        .batch_execute("INSERT INTO a VALUES (2, 'y')")
        .unwrap();
    as_tls_user(&format!(
        "sslmode = \"verify-full\"\nsslrootcert = \"{ca}\""
    ));
    ws.sync();
    assert_lake_matches_source(&ws, "a", "id", plain);
    // Without TLS the server refuses this user; with the public roots the self-signed
    // certificate does not check out.
    as_tls_user("sslmode = \"disable\"");
    let line = ws.failure(&["sync", "--config", "{config}"]);
    assert!(line.contains("no encryption"), "{line}");
    as_tls_user("sslmode = \"verify-full\"");
    let line = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        line.contains("certificate") && line.contains("source.sslrootcert"),
        "{line}"
    );
}

#[test]
fn a_partitioned_table_is_captured_under_its_own_name() {
    let ws = PgWorkspace::new(
        "CREATE TABLE event (id bigint, at date, what text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE event_2024 PARTITION OF event FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE event_2025 PARTITION OF event FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         INSERT INTO event VALUES (1, '2024-03-01', 'copied');",
    );
    ws.write_config("", "[[table]]\nname = \"event\"\n");
    ws.sync();
    ws.client()
        .batch_execute(
            "INSERT INTO event VALUES (2, '2025-03-01', 'streamed');
             UPDATE event SET at = '2025-06-01' WHERE id = 1;",
        )
        .unwrap();
    ws.sync();
    // The Id of a composite key is the JSON array of its values; ids are unique here.
    let first_of_key = |id: &str| -> String {
        let key: Vec<serde_json::Value> = serde_json::from_str(id).expect("a JSON array");
        key[0].to_string()
    };
    assert_lake_matches_source(&ws, "event", "id", first_of_key);
    // The copy's row, the insert, and the key change's delete and insert.
    assert_eq!(ws.live_row_count("event"), 4);
    let full: i64 = ws
        .client()
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'event%' AND relreplident = 'f'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(full, 3, "the table and each partition carry whole old rows");
}

#[test]
fn a_slot_dropped_behind_the_agents_back_is_reported_not_silently_recreated() {
    let ws = PgWorkspace::new("CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1);");
    let tables = "[[table]]\nname = \"a\"\n";
    ws.write_config("", tables);
    ws.sync();
    let mut client = ws.client();
    client
        .batch_execute(&format!(
            "SELECT pg_drop_replication_slot('{}'); INSERT INTO a VALUES (2);",
            ws.database
        ))
        .unwrap();
    let line = ws.failure(&["sync", "--config", "{config}"]);
    assert!(
        line.contains("was dropped while tables were linked"),
        "{line}"
    );
    // The way out the message gives: unlink, sync, link again.
    let out = ws.lakelink(&["unlink", "--config", "{config}", "--all"]);
    assert!(out.status.success());
    ws.sync();
    ws.write_config("", tables);
    ws.sync();
    assert_lake_matches_source(&ws, "a", "id", plain);
}

#[test]
fn a_table_linked_while_the_agent_streams_another_hands_off_exactly() {
    let ws = PgWorkspace::new(CRM_SCHEMA);
    ws.write_config(
        "poll_interval = \"20ms\"\nbatch_size = 200",
        "[[table]]\nname = \"contact\"\nmode = \"append_only\"\n",
    );
    let mut rng = StdRng::seed_from_u64(96);
    let (_, next_id) = prefill(&mut ws.client(), &mut rng, 200);
    let agent = RunningAgent::start(&ws);
    wait_for(60, "the first table", || {
        ws.lake.join("model.json").exists()
    });
    let writer = BackgroundWriter::start(ws.client(), 95, next_id, writer_pause);
    std::thread::sleep(Duration::from_millis(300));
    // `lakelink link` edits the config; the running agent links the table while the
    // application writes to it and to the table already streaming.
    let out = ws.lakelink(&["link", "--config", "{config}", "account"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let linked = ws
        .lake
        .join("Microsoft.Athena.TrickleFeedService/account-model.json");
    wait_for(60, "the table linked while running", || linked.exists());
    std::thread::sleep(Duration::from_millis(300));
    writer.finish();
    agent.stop_cleanly();
    ws.sync();
    assert_lake_matches_source(&ws, "account", "accountid", plain);
}

#[test]
fn linking_a_table_an_application_holds_waits_without_blocking_its_readers_or_the_other_tables() {
    let ws = PgWorkspace::new(
        "CREATE TABLE a (id int PRIMARY KEY, x text); INSERT INTO a VALUES (1, 'one');
         CREATE TABLE b (id int PRIMARY KEY, y text); INSERT INTO b VALUES (1, 'b1');",
    );
    ws.write_config("poll_interval = \"20ms\"", "[[table]]\nname = \"a\"\n");
    let agent = RunningAgent::start(&ws);
    wait_for(60, "the first snapshot", || {
        ws.lake.join("model.json").exists()
    });
    // A report holds b open in a transaction: only an ACCESS SHARE lock, which the ALTER
    // TABLE ... REPLICA IDENTITY FULL lakelink needs must wait for.
    let mut report = ws.client();
    report
        .batch_execute("SET application_name = 'monthly_report'; BEGIN; SELECT count(*) FROM b;")
        .unwrap();
    let out = ws.lakelink(&["link", "--config", "{config}", "b"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(60, "the wait to be logged", || {
        agent.log().contains("the table waits to be linked")
    });
    let log = agent.log();
    let line = log
        .lines()
        .find(|l| l.contains("the table waits to be linked"))
        .unwrap();
    assert!(
        line.contains("table=\"b\"")
            && line.contains("REPLICA IDENTITY FULL")
            && line.contains("was not granted within 1s")
            && line.contains("monthly_report")
            && line.contains("AccessShareLock"),
        "names the lock and what holds it: {line}"
    );
    // The application's readers of b are not queued behind a waiting ALTER for long, and
    // table a keeps flowing while b waits.
    let mut reader = ws.client();
    reader
        .batch_execute("SET statement_timeout = '3s'")
        .unwrap();
    let mut app = ws.client();
    for i in 2..12 {
        reader.query_one("SELECT count(*) FROM b", &[]).unwrap();
        app.execute("INSERT INTO a VALUES ($1, 'more')", &[&i])
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for(60, "a's rows while b waits", || {
        ws.live_row_count("a") == 11
    });
    assert!(
        !agent.log().contains("initial copy completed table=b"),
        "b waited for the report"
    );
    // The report ends: b is linked, and everything is in the lake.
    report.batch_execute("COMMIT").unwrap();
    // The copy's line comes first, then (once the link is whole) the one that ends the wait.
    wait_for(60, "b to be linked", || {
        agent.log().contains("linked after waiting for the source")
    });
    assert!(agent.log().contains("initial copy completed table=b"));
    agent.stop_cleanly();
    ws.sync();
    assert_lake_matches_source(&ws, "a", "id", plain);
    assert_lake_matches_source(&ws, "b", "id", plain);
}

#[test]
fn a_table_whose_changes_cannot_be_captured_is_refused_by_link_and_alone_at_start() {
    let ws = PgWorkspace::new(
        "CREATE TABLE good (id int PRIMARY KEY, x text); INSERT INTO good VALUES (1, 'one');
         CREATE TABLE quiet (id int PRIMARY KEY, y text); ALTER TABLE quiet REPLICA IDENTITY NOTHING;",
    );
    ws.write_config("", "[[table]]\nname = \"good\"\n");
    let before = std::fs::read_to_string(&ws.config).unwrap();
    let err = ws.failure(&["link", "--config", "{config}", "quiet"]);
    assert!(
        err.contains("REPLICA IDENTITY NOTHING")
            && err.contains("ALTER TABLE \"public\".\"quiet\" REPLICA IDENTITY FULL")
            && err.contains("is unchanged"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&ws.config).unwrap(), before);
    // Named in the config by hand: refused alone, the other table synced, nothing of the
    // refused one left in the publication.
    ws.write_config(
        "",
        "[[table]]\nname = \"good\"\n\n[[table]]\nname = \"quiet\"\n",
    );
    let out = ws.lakelink(&["sync", "--config", "{config}"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("table \"quiet\" is not linked"), "{err}");
    assert_lake_matches_source(&ws, "good", "id", plain);
    let published: Vec<String> = ws
        .client()
        .query(
            "SELECT tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[&ws.database],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(published, ["good"]);
}

/// A statement_timeout set for the database (as managed servers often do) does not cut the
/// initial copy short: the copy is one COPY statement, which lakelink runs without a timeout,
/// and the link's lock waits (here behind a lock such as autovacuum takes) end only at
/// lakelink's own lock_timeout.
#[test]
fn a_database_statement_timeout_does_not_cut_the_initial_copy_short() {
    let ws = PgWorkspace::new(
        "CREATE TABLE big (id bigint PRIMARY KEY, body text);
         INSERT INTO big SELECT g, repeat('x', 400) FROM generate_series(1, 400000) g;",
    );
    let mut client = ws.client();
    // The copy's COPY takes longer than this; no other statement of the sync comes near it.
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} SET statement_timeout = '150ms'",
            ws.database
        ))
        .unwrap();
    let timed_out = client
        .batch_execute(
            "SET statement_timeout = '150ms'; SELECT count(*) FROM big, big b2 WHERE b2.id < 3",
        )
        .is_err();
    assert!(
        timed_out,
        "the server must enforce the timeout for this test to mean anything"
    );
    ws.write_config("", "[[table]]\nname = \"big\"\n");
    // A lock autovacuum would take (and yield only after deadlock_timeout), held for longer
    // than the timeout: the link's lock waits are bounded by lakelink's lock_timeout alone.
    let mut vacuum = ws.client();
    vacuum
        .batch_execute("BEGIN; LOCK TABLE big IN SHARE UPDATE EXCLUSIVE MODE")
        .unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        vacuum.batch_execute("COMMIT").unwrap();
    });
    ws.sync();
    release.join().unwrap();
    let (_, rows) = ws.read("big", None);
    assert_eq!(rows.len(), 400_000, "every row of the table");
}

/// The WAL the slot keeps on the server is a metric, and a line warns (once, naming the oldest
/// open transaction) when it passes `retained_wal_warning_mb`.
#[test]
fn the_wal_the_slot_keeps_is_measured_and_warned_about_past_its_limit() {
    let ws = PgWorkspace::new(
        "CREATE TABLE a (id int PRIMARY KEY, x text); CREATE TABLE filler (x text);",
    );
    ws.write_config_with(
        "retained_wal_warning_mb = 1",
        "poll_interval = \"20ms\"",
        "[[table]]\nname = \"a\"\n",
    );
    let agent = RunningAgent::start(&ws);
    wait_for(30, "the first snapshot", || {
        ws.lake.join("model.json").exists()
    });
    // A session that keeps a transaction open, as a forgotten psql would: the slot cannot
    // move its restart position past the transaction's start.
    let mut idle = ws.client();
    idle.batch_execute(
        "SET application_name = 'forgotten_session'; BEGIN; INSERT INTO filler VALUES ('held')",
    )
    .unwrap();
    // Other tables' writes go on meanwhile: WAL the server must keep for the slot.
    let mut client = ws.client();
    for _ in 0..4 {
        client
            .batch_execute(
                "INSERT INTO filler SELECT repeat('f', 1000) FROM generate_series(1, 1000)",
            )
            .unwrap();
    }
    client
        .batch_execute("INSERT INTO a VALUES (1, 'x')")
        .unwrap();
    wait_for(60, "the retained-WAL warning", || {
        agent.log().contains("retained_wal_warning_mb = 1")
    });
    let log = agent.log();
    assert!(
        log.contains("forgotten_session"),
        "the warning names the open transaction: {log}"
    );
    assert_eq!(
        log.matches("retained_wal_warning_mb = 1").count(),
        1,
        "one warning while it stays over the limit"
    );
    wait_for(30, "the lock to name the status endpoint", || {
        support::agent_http::address(&ws).is_some()
    });
    let address = support::agent_http::address(&ws).expect("the agent's status address");
    let metrics = support::agent_http::get(&address, "/metrics");
    let retained = support::agent_http::sample(&metrics, "lakelink_source_retained_wal_bytes")
        .expect("the retained-WAL gauge");
    assert!(retained > 1e6, "more than the 1 MB limit: {retained}");
    idle.batch_execute("ROLLBACK").unwrap();
    agent.stop_cleanly();
}

/// While the linked tables are idle and other tables write, the agent's one replication
/// session still moves the slot on (the server's keepalives say how far it has decoded), so
/// the server can remove that WAL instead of keeping it for lakelink.
#[test]
fn the_slot_moves_on_while_the_linked_tables_are_idle_and_other_tables_write() {
    let ws = PgWorkspace::new(
        "CREATE TABLE a (id int PRIMARY KEY, x text); CREATE TABLE filler (x text);",
    );
    ws.write_config("", "[[table]]\nname = \"a\"\n");
    let agent = RunningAgent::start(&ws);
    wait_for(30, "the first snapshot", || {
        ws.lake.join("model.json").exists()
    });
    let mut client = ws.client();
    client
        .batch_execute("INSERT INTO a VALUES (1, 'x')")
        .unwrap();
    let streaming = |client: &mut postgres::Client| {
        client
            .query_one(
                "SELECT count(*) FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid \
                 WHERE s.database = current_database() AND r.application_name = 'lakelink'",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
    };
    wait_for(30, "a replication session streaming the slot", || {
        streaming(&mut client) == 1
    });
    for _ in 0..10 {
        client
            .batch_execute(
                "INSERT INTO filler SELECT repeat('f', 1000) FROM generate_series(1, 10000)",
            )
            .unwrap();
    }
    let lsn = |client: &mut postgres::Client, sql: &str| -> i64 {
        client.query_one(sql, &[]).unwrap().get(0)
    };
    let written = lsn(&mut client, "SELECT (pg_current_wal_lsn() - '0/0')::int8");
    assert!(
        written > 100 << 20,
        "the other table wrote over 100 MB of WAL"
    );
    wait_for(60, "the slot to move past the other table's writes", || {
        lsn(
            &mut client,
            "SELECT (confirmed_flush_lsn - '0/0')::int8 FROM pg_replication_slots WHERE database = current_database()",
        ) >= written
    });
    // The restart position follows once the server has logged which transactions run (a
    // checkpoint does) and the agent confirmed past that.
    let mut retained = i64::MAX;
    wait_for(60, "the WAL kept for the slot to fall under 64 MB", || {
        client.batch_execute("CHECKPOINT").unwrap();
        retained = lsn(
            &mut client,
            "SELECT (pg_current_wal_lsn() - restart_lsn)::int8 FROM pg_replication_slots WHERE database = current_database()",
        );
        retained < 64 << 20
    });
    assert_eq!(streaming(&mut client), 1, "still the one session");
    agent.stop_cleanly();
}

/// A transaction left open whose last WAL record the server has flushed only in part (the
/// WAL writer flushes whole pages) leaves the flush position inside a record the server
/// cannot decode yet. A sync still ends once the server has sent all it can, with the
/// changes committed before it in the lake, instead of waiting for a position the server
/// cannot reach.
#[test]
fn a_sync_ends_while_an_open_transaction_leaves_a_record_half_flushed() {
    let ws = PgWorkspace::new(
        "CREATE TABLE a (id int PRIMARY KEY, x text); CREATE TABLE filler (x text);
         ALTER TABLE filler ALTER x SET STORAGE EXTERNAL;",
    );
    ws.write_config("", "[[table]]\nname = \"a\"\n");
    ws.sync();
    let mut client = ws.client();
    client
        .batch_execute("INSERT INTO a VALUES (1, 'committed')")
        .unwrap();
    let mut open = ws.client();
    let flush = |client: &mut postgres::Client| -> i64 {
        client
            .query_one(
                "SELECT (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::int8",
                &[],
            )
            .unwrap()
            .get(0)
    };
    let before = flush(&mut client);
    // Uncompressed chunks of a large value, written but not committed: the WAL writer
    // flushes the full pages of them and leaves the last one.
    open.batch_execute(
        "BEGIN; INSERT INTO filler SELECT repeat(md5(g::text), 20000) FROM generate_series(1, 4) g",
    )
    .unwrap();
    wait_for(
        30,
        "the WAL writer to flush part of the open transaction",
        || flush(&mut client) > before,
    );
    let log = ws.dir.path().join("sync.log");
    let mut sync = std::process::Command::new(lakelink_bin())
        .args(["sync", "--config"])
        .arg(&ws.config)
        .env("RUST_LOG", "warn,lakelink_connectors=debug")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut status = None;
    wait_for(120, "the sync to end", || {
        status = sync.try_wait().unwrap();
        status.is_some()
    });
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.unwrap().success(), "the sync succeeded: {log}");
    assert_eq!(
        ws.live_row_count("a"),
        1,
        "the committed change is in the lake"
    );
    // It never waited out a read for a position the server could not reach.
    assert!(
        !log.contains("has not sent everything yet"),
        "no read waited for the half-flushed record: {log}"
    );
    open.batch_execute("ROLLBACK").unwrap();
}

/// A transaction larger than a batch, with the agent killed (SIGKILL) each time part of it is
/// in the lake: every restart reads the transaction again from its first change, the lake's
/// de-duplication skips what was written, and in the end each of its changes is there once.
#[test]
fn an_agent_killed_inside_a_transaction_larger_than_a_batch_writes_it_exactly_once() {
    let ws = PgWorkspace::new(
        "CREATE TABLE reading (id bigint PRIMARY KEY, sensor text, value double precision);",
    );
    ws.write_config(
        "batch_size = 500\npoll_interval = \"10ms\"",
        "[[table]]\nname = \"reading\"\n",
    );
    ws.sync();
    let mut client = ws.client();
    client
        .batch_execute(
            "INSERT INTO reading SELECT g, 's' || (g % 9), g / 7.0 FROM generate_series(1, 50000) g;",
        )
        .unwrap();
    // Read while the agent appends: whole lines only (these rows hold no line breaks).
    let lines = || -> usize {
        std::fs::read_dir(ws.lake.join("reading"))
            .map(|dir| {
                dir.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "csv"))
                    .map(|e| {
                        std::fs::read(e.path())
                            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
                            .unwrap_or(0)
                    })
                    .sum()
            })
            .unwrap_or(0)
    };
    let mut kills = 0;
    let mut seen = Vec::new();
    while kills < 4 {
        let before = lines();
        let mut agent = support::crash::start_agent(&ws.config);
        wait_for(60, "more of the transaction in the lake", || {
            lines() > before
        });
        support::crash::kill(&mut agent);
        let now = lines();
        seen.push(now);
        if now >= 50000 {
            break;
        }
        kills += 1;
    }
    assert!(
        seen.iter().any(|&n| n > 0 && n < 50000),
        "a kill landed inside the transaction: {seen:?}"
    );
    ws.sync();
    assert_eq!(
        ws.live_row_count("reading"),
        50000,
        "every change once: {seen:?}"
    );
    assert_lake_matches_source(&ws, "reading", "id", plain);
}
