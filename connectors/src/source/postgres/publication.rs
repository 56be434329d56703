//! The publication and the logical replication slot lakelink manages, both named by
//! `[source] slot`: created when the first table is linked, the table added to (and removed
//! from) the publication, both dropped when the last table is unlinked, so that an abandoned
//! slot never holds WAL. Also the checks that refuse a table whose changes could not be
//! captured exactly.

use super::lock_wait::execute_ddl;
use postgres::Client;

/// A table's identity in the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedTable {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
}

impl QualifiedTable {
    /// `"schema"."name"`, quoted for SQL.
    pub fn sql(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// `name` quoted as an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the publication (empty) and then the slot, each if missing. The publication comes
/// first: `pgoutput` looks it up as of each decoded change, so it must predate the slot.
/// Returns why the slot cannot be used, when another database holds one of that name.
pub fn ensure_slot(client: &mut Client, slot: &str) -> Result<Option<String>, postgres::Error> {
    let publication_exists = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&slot])?
        .is_some();
    if !publication_exists {
        // A partitioned table's changes then come under its own name, not its partitions'.
        client.batch_execute(&format!(
            "CREATE PUBLICATION {} WITH (publish_via_partition_root = true)",
            quote_ident(slot)
        ))?;
    }
    // Slot names are unique in the whole server, across databases.
    let holder: Option<(Option<String>, bool)> = client
        .query_opt(
            "SELECT database::text, database = current_database() FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )?
        .map(|r| (r.get(0), r.get::<_, Option<bool>>(1).unwrap_or(false)));
    if let Some((database, false)) = &holder {
        return Ok(Some(format!(
            "replication slot {slot:?} already belongs to database {}; name another in source.slot",
            database.as_deref().unwrap_or("(physical)")
        )));
    }
    if holder.is_none() {
        // lakelink empties the publication before it drops the slot: a slot missing while
        // tables are still published was dropped by someone else, and the changes since are
        // gone. A new slot would silently start after them.
        let members: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid WHERE p.pubname = $1",
                &[&slot],
            )?
            .get(0);
        if members > 0 {
            return Ok(Some(format!(
                "replication slot {slot:?} was dropped while tables were linked, so changes since are lost; relink them: unlink them all, sync, and link them again"
            )));
        }
        // Creating a slot waits for every transaction that holds a transaction id to end (no
        // lock_timeout bounds it): say which, so a wait is never silent.
        let open: Vec<String> = client
            .query(
                "SELECT format('pid %s (%s%s for %s s)', pid, coalesce(nullif(application_name, '') || ', ', ''), state,                         coalesce(extract(epoch FROM now() - xact_start)::int8, 0))                  FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()                  ORDER BY xact_start LIMIT 5",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !open.is_empty() {
            tracing::warn!(
                slot, transactions = %open.join("; "),
                "creating the replication slot waits for these transactions to end"
            );
        }
        // Bounded like a lock wait: cancelled past SLOT_TIMEOUT, the link is reported busy
        // and tried again with backoff (PostgreSQL drops the half-made slot).
        client.batch_execute(&format!("SET statement_timeout = '{SLOT_TIMEOUT}'"))?;
        let created = client.execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        );
        client.batch_execute("RESET statement_timeout")?;
        created?;
        tracing::info!(slot, "replication slot created");
    }
    Ok(None)
}

/// The longest creating the slot may wait for the transactions in progress to end.
pub const SLOT_TIMEOUT: &str = "5s";

/// Adds the table to the publication unless it is in it.
pub fn add_table(
    client: &mut Client,
    slot: &str,
    table: &QualifiedTable,
) -> Result<(), postgres::Error> {
    let member = client
        .query_opt(
            "SELECT 1 FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid \
             JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE p.pubname = $1 AND n.nspname = $2 AND c.relname = $3",
            &[&slot, &table.schema, &table.name],
        )?
        .is_some();
    if !member {
        // Under a SHARE lock, so that no transaction has written the table before the ALTER
        // commits and commits after it. Such a transaction would be decoded with the table
        // not yet published, and pgoutput would keep that answer for the rest of the
        // decoding run, dropping the table's later changes too.
        // The lock waits at most DDL_LOCK_TIMEOUT for the table's writers (writers queue
        // behind a waiting SHARE lock); past it the link is reported busy and retried.
        execute_ddl(
            client,
            &format!(
                "LOCK TABLE {} IN SHARE MODE; ALTER PUBLICATION {} ADD TABLE {}",
                table.sql(),
                quote_ident(slot),
                table.sql()
            ),
        )?;
    }
    Ok(())
}

/// Removes the table from the publication (if it is there: by OID when known, so that a
/// renamed table leaves too; else by name, in any schema when the schema is unknown); when
/// no table is left, drops the slot and the publication.
pub fn remove_table(
    client: &mut Client,
    slot: &str,
    schema: Option<&str>,
    table: &str,
    oid: Option<u32>,
) -> Result<(), postgres::Error> {
    let members = client.query(
        "SELECT n.nspname::text, c.relname::text FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid \
         JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE p.pubname = $1 AND (c.oid = $4 OR ($4::oid IS NULL AND c.relname = $2 AND ($3::text IS NULL OR n.nspname = $3)))",
        &[&slot, &table, &schema, &oid],
    )?;
    for row in members {
        let qualified = QualifiedTable {
            schema: row.get(0),
            name: row.get(1),
        };
        execute_ddl(
            client,
            &format!(
                "ALTER PUBLICATION {} DROP TABLE {}",
                quote_ident(slot),
                qualified.sql()
            ),
        )?;
    }
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid WHERE p.pubname = $1",
            &[&slot],
        )?
        .get(0);
    if left == 0 {
        drop_slot(client, slot)?;
    }
    Ok(())
}

/// Drops the slot and the publication, each if present.
pub fn drop_slot(client: &mut Client, slot: &str) -> Result<(), postgres::Error> {
    let dropped = client.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
        &[&slot],
    )?;
    client.batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", quote_ident(slot)))?;
    if dropped > 0 {
        tracing::info!(
            slot,
            "no table left linked; replication slot and publication dropped"
        );
    }
    Ok(())
}

/// Why a table's changes cannot be captured exactly, with what to change; `None` when they
/// can. Sets `REPLICA IDENTITY FULL` on a table that has the default identity and a primary
/// key: with it every update and delete carries the whole old row, which gives the old key
/// and partition of a moved row, and the TOASTed values an update leaves unchanged. A
/// partitioned table's changes come from its partitions, so each of them is checked too.
pub fn prepare_replica_identity(
    client: &mut Client,
    table: &QualifiedTable,
    oid: u32,
) -> Result<Option<String>, postgres::Error> {
    let relations = replica_identities(client, table, oid)?;
    if let Some(problem) = relations.iter().find_map(|r| r.problem.clone()) {
        return Ok(Some(problem));
    }
    for relation in relations.iter().filter(|r| r.needs_full) {
        // ACCESS EXCLUSIVE: waiting for it would queue the application's readers.
        execute_ddl(client, &relation.set_full)?;
        tracing::info!(table = %relation.sql, "REPLICA IDENTITY set to FULL so that updates carry the old row");
    }
    Ok(None)
}

/// [`prepare_replica_identity`]'s verdict without changing anything: for `lakelink link`
/// and a reload, before a link changes anything.
pub fn replica_identity_problem(
    client: &mut Client,
    table: &QualifiedTable,
    oid: u32,
) -> Result<Option<String>, postgres::Error> {
    Ok(replica_identities(client, table, oid)?
        .into_iter()
        .find_map(|r| r.problem))
}

/// One relation whose changes a link reads: the table, or one of its partitions.
struct ReplicaIdentity {
    /// `"schema"."name"`.
    sql: String,
    /// The statement that gives it `REPLICA IDENTITY FULL`.
    set_full: String,
    /// It has the default identity and a primary key: lakelink sets FULL.
    needs_full: bool,
    /// Why its changes cannot be captured, with the statement to run.
    problem: Option<String>,
}

fn replica_identities(
    client: &mut Client,
    table: &QualifiedTable,
    oid: u32,
) -> Result<Vec<ReplicaIdentity>, postgres::Error> {
    let relations = client.query(
        "SELECT n.nspname::text, c.relname::text, c.relkind::text, c.relreplident::text, \
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = $1 OR c.oid IN (SELECT relid FROM pg_partition_tree($1)) \
         ORDER BY c.oid = $1 DESC, c.oid",
        &[&oid],
    )?;
    Ok(relations
        .iter()
        .map(|row| {
            let relation = QualifiedTable {
                schema: row.get(0),
                name: row.get(1),
            }
            .sql();
            let kind: String = row.get(2);
            let identity: String = row.get(3);
            let has_primary_key: bool = row.get(4);
            let full = format!("ALTER TABLE {relation} REPLICA IDENTITY FULL");
            let which = if kind == "p" || relation == table.sql() {
                String::new()
            } else {
                format!("its partition {relation} ")
            };
            let problem = match identity.as_str() {
                "f" => None,
                "d" if has_primary_key => None,
                "d" => Some(format!(
                    "{which}has no primary key, so its updates and deletes carry no old row; run {full}"
                )),
                "n" => Some(format!(
                    "{which}has REPLICA IDENTITY NOTHING, so its updates and deletes carry no old row; run {full}"
                )),
                _ => Some(format!(
                    "{which}has REPLICA IDENTITY USING INDEX, whose updates leave unchanged TOASTed values out; run {full}"
                )),
            };
            ReplicaIdentity {
                needs_full: identity == "d" && has_primary_key,
                set_full: full,
                sql: relation,
                problem,
            }
        })
        .collect())
}
