//! The benchmark table: a CRM account table as the issue describes it: a UUID key, names,
//! timestamps spread over eight years, a real, an integer, a text that sometimes has quotes,
//! commas, newlines and Unicode, and some NULLs.

use anyhow::Result;
use lakelink_samples::crm::{timestamp_in, uuid};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};
use std::path::Path;

/// The schema.
pub const SCHEMA: &str = "CREATE TABLE account (
    accountid TEXT PRIMARY KEY, name TEXT NOT NULL, city TEXT, revenue REAL,
    employees INTEGER, notes TEXT, createdon DATETIME, modifiedon DATETIME);";

const CITIES: [&str; 6] = [
    "Lisboa",
    "München",
    "São Paulo",
    "Tōkyō",
    "Kraków",
    "New York",
];

fn notes(rng: &mut StdRng) -> Option<String> {
    match rng.random_range(0..10) {
        0 | 1 => None,
        2 => Some("Met at \"Expo\", asked for a quote,\nfollow up next week".into()),
        3 => Some("Prefers Zoë — 電話 first 📞".into()),
        _ => Some(format!("Renewal #{}", rng.random_range(1..500))),
    }
}

/// The statement that inserts one account; its parameters are [`account`]'s values.
pub const INSERT: &str = "INSERT INTO account VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)";

/// The values of the `i`th generated account, in the order of [`INSERT`]'s parameters.
pub fn account(rng: &mut StdRng, i: u64) -> [Value; 7] {
    let year = 2019 + (i % 8) as i32;
    // Drawn in this order, and `employees` as an i32, so that a seed keeps giving the same
    // table.
    let created = timestamp_in(rng, year);
    let id = uuid(rng);
    let revenue = (rng.random_range(0.0..5e7f64) * 100.0).round() / 100.0;
    let employees: i32 = rng.random_range(1..50_000);
    let notes = notes(rng);
    [
        Value::Text(id),
        Value::Text(format!("Account {i}")),
        if i.is_multiple_of(7) {
            Value::Null
        } else {
            Value::Text(CITIES[(i % 6) as usize].to_string())
        },
        Value::Real(revenue),
        Value::Integer(employees.into()),
        notes.map_or(Value::Null, Value::Text),
        Value::Text(created),
    ]
}

/// Creates `rows` accounts in a new database at `path`, in WAL mode.
pub fn create(path: &Path, rows: u64, seed: u64) -> Result<()> {
    let mut conn = Connection::open(path)?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    conn.execute_batch(SCHEMA)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(INSERT)?;
        for i in 0..rows {
            insert.execute(params_from_iter(account(&mut rng, i)))?;
        }
    }
    tx.commit()?;
    Ok(())
}
