//! The sample CRM schema (accounts and contacts) and the random changes made to it.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::Path;
use std::time::Duration;

const SCHEMA: &str = "
    CREATE TABLE account (
        accountid TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        city TEXT,
        revenue REAL,
        employees INTEGER,
        notes TEXT,
        createdon DATETIME,
        modifiedon DATETIME
    );
    CREATE TABLE contact (
        contactid INTEGER PRIMARY KEY,
        accountid TEXT,
        fullname TEXT,
        email TEXT,
        createdon DATETIME
    );";

const CITIES: [&str; 8] = [
    "Lisboa",
    "München",
    "São Paulo",
    "Tōkyō",
    "Zürich",
    "Kraków",
    "Reykjavík",
    "New York",
];

const NAMES: [&str; 8] = [
    "Ada",
    "Björn",
    "Chloé",
    "Dmitri",
    "Eun-ji",
    "François",
    "Grace",
    "Håkon",
];

/// A UUID v4 in its usual text form.
pub fn uuid(rng: &mut StdRng) -> String {
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn timestamp(rng: &mut StdRng) -> String {
    let year = rng.random_range(2019..=2026);
    timestamp_in(rng, year)
}

/// A `YYYY-MM-DD HH:MM:SS` timestamp in `year`.
pub fn timestamp_in(rng: &mut StdRng, year: i32) -> String {
    format!(
        "{year}-{:02}-{:02} {:02}:{:02}:{:02}",
        rng.random_range(1..=12),
        rng.random_range(1..=28),
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60)
    )
}

/// Free text with the characters CSV writers get wrong: quotes, commas, newlines, Unicode.
fn notes(rng: &mut StdRng) -> Option<String> {
    match rng.random_range(0..6) {
        0 => None,
        1 => Some(String::new()),
        2 => Some("Met at \"Expo\", asked for a quote,\nfollow up next week".into()),
        3 => Some(format!(
            "Prefers {} — 電話 first 📞",
            NAMES[rng.random_range(0..NAMES.len())]
        )),
        _ => Some(format!("Renewal #{}", rng.random_range(1..500))),
    }
}

fn insert_account(conn: &Connection, rng: &mut StdRng) -> rusqlite::Result<String> {
    let id = uuid(rng);
    let created = timestamp(rng);
    conn.execute(
        "INSERT INTO account VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            id,
            format!(
                "{} {} Ltd",
                NAMES[rng.random_range(0..NAMES.len())],
                rng.random_range(1..10_000)
            ),
            CITIES[rng.random_range(0..CITIES.len())],
            (rng.random_range(0.0..5e7f64) * 100.0).round() / 100.0,
            rng.random_range(1..50_000),
            notes(rng),
            created
        ],
    )?;
    Ok(id)
}

fn insert_contact(conn: &Connection, rng: &mut StdRng, account: &str) -> rusqlite::Result<()> {
    let name = NAMES[rng.random_range(0..NAMES.len())];
    conn.execute(
        "INSERT INTO contact (accountid, fullname, email, createdon) VALUES (?1, ?2, ?3, ?4)",
        params![
            account,
            format!("{name} {}", rng.random_range(1..1000)),
            format!("{}@example.com", name.to_lowercase()),
            timestamp(rng)
        ],
    )?;
    Ok(())
}

/// Creates the schema and the rows; `false` if the tables already exist.
pub fn init(db: &Path, accounts: u32, seed: u64) -> rusqlite::Result<bool> {
    if let Some(dir) = db.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut conn = Connection::open(db)?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    let exists: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name = 'account'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_some() {
        return Ok(false);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let tx = conn.transaction()?;
    tx.execute_batch(SCHEMA)?;
    for _ in 0..accounts {
        let id = insert_account(&tx, &mut rng)?;
        for _ in 0..rng.random_range(0..=4) {
            insert_contact(&tx, &mut rng, &id)?;
        }
    }
    tx.commit()?;
    Ok(true)
}

/// Makes random changes, each in its own short transaction.
pub struct Writer {
    conn: Connection,
    rng: StdRng,
}

impl Writer {
    /// Opens the sample database, which must exist already.
    pub fn open(db: &Path, seed: u64) -> rusqlite::Result<Writer> {
        let flags = OpenFlags::default() - OpenFlags::SQLITE_OPEN_CREATE;
        let conn = Connection::open_with_flags(db, flags)?;
        // The agent reads the same file; wait for it instead of failing.
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(Writer {
            conn,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    fn random_account(&mut self) -> rusqlite::Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT accountid FROM account WHERE rowid >= (abs(random()) % (SELECT max(rowid) FROM account)) LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
    }

    /// One change: an insert, an update (sometimes moving the row to another year) or a
    /// delete, of an account or a contact.
    pub fn change(&mut self) -> rusqlite::Result<()> {
        let rng = &mut self.rng;
        match rng.random_range(0..10) {
            0 | 1 => {
                insert_account(&self.conn, rng)?;
            }
            2..=4 => {
                if let Some(id) = self.random_account()? {
                    let rng = &mut self.rng;
                    let moved = rng.random_range(0..5) == 0;
                    self.conn.execute(
                        "UPDATE account SET revenue = ?2, notes = ?3, modifiedon = datetime('now'),
                         createdon = CASE WHEN ?4 THEN ?5 ELSE createdon END WHERE accountid = ?1",
                        params![
                            id,
                            rng.random_range(0.0..5e7f64).round(),
                            notes(rng),
                            moved,
                            timestamp(rng)
                        ],
                    )?;
                }
            }
            5 => {
                if let Some(id) = self.random_account()? {
                    self.conn
                        .execute("DELETE FROM account WHERE accountid = ?1", [id])?;
                }
            }
            6 | 7 => {
                if let Some(id) = self.random_account()? {
                    insert_contact(&self.conn, &mut self.rng, &id)?;
                }
            }
            8 => {
                self.conn.execute(
                    "UPDATE contact SET email = lower(fullname) || '@example.org' WHERE contactid = (SELECT contactid FROM contact ORDER BY random() LIMIT 1)",
                    [],
                )?;
            }
            _ => {
                self.conn.execute(
                    "DELETE FROM contact WHERE contactid = (SELECT contactid FROM contact ORDER BY random() LIMIT 1)",
                    [],
                )?;
            }
        }
        Ok(())
    }
}
