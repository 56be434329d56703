//! Following the application's schema changes: after one, every linked table is described
//! again and compared with what its lake entity holds. Added columns are captured from then
//! on (existing rows filled where the source says how); what the entity cannot follow (a
//! rename, a dropped key or partition column, a table gone or replaced) stops that table.

use super::Pipeline;
use crate::error::EngineError;
use crate::table_schema;
use lakelink_model::schema::ColumnFill;
use lakelink_model::source::{CaptureSpec, ExistingRows, SourceError};

impl Pipeline {
    /// Looks at every linked table after a schema change: a table whose capture broke
    /// (dropped, recreated, renamed) or that changed in a way its lake entity cannot follow
    /// is stopped; columns added are picked up.
    pub fn check_schemas(&mut self) -> Result<(), EngineError> {
        let version = self.source.schema_version()?;
        if self.schema_version == Some(version) {
            return Ok(());
        }
        let tables: Vec<String> = self
            .feeds
            .values()
            .filter(|f| f.table().is_flowing())
            .map(|f| f.record().table.clone())
            .collect();
        for table in tables {
            if let Some(reason) = self.check_schema(&table)? {
                self.stop_table(&table, reason)?;
            }
        }
        // Only once every table was looked at: a look that failed (the source unreachable
        // midway) is done again in full, so no table misses a change (a column added, which
        // the next batch would otherwise write without its values).
        self.schema_version = Some(version);
        Ok(())
    }

    /// One table of [`Pipeline::check_schemas`]: `Some(reason)` when it must stop.
    fn check_schema(&mut self, table: &str) -> Result<Option<String>, EngineError> {
        let source_table = self.source_table(table);
        let link = self.feeds[table].record().link;
        let spec = CaptureSpec {
            link,
            table: source_table.clone(),
            schema: self.feeds[table].record().schema.clone(),
            added_from: None,
        };
        if let Some(reason) = self.source.capture_broken(&spec)? {
            return Ok(Some(reason));
        }
        let described = match self.source.describe_table(&source_table) {
            Ok(d) => d,
            Err(SourceError::TableNotFound { .. }) => {
                return Ok(Some(format!(
                    "{source_table:?} is gone from the source (dropped or renamed)"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let known = self.feeds[table].record().schema.columns.clone();
        let mut drift = table_schema::compare(&known, &described.columns);
        if let Some((old, new)) = drift.renamed.first() {
            // SQLite would go on under the old name only until capture is installed again,
            // which then makes the application's own writes fail; PostgreSQL sends the column
            // under a name the lake does not know. Neither can be followed.
            return Ok(Some(format!(
                "column {old:?} was renamed to {new:?}, which its lake entity cannot follow"
            )));
        }
        let mut schema = self.feeds[table].record().schema.clone();
        let mut reshaped = false;
        // Links recorded before columns had numbers and tables an identity get them now.
        if schema.table_id.is_none() && described.id.is_some() {
            schema.table_id = described.id.clone();
            reshaped = true;
        }
        for c in schema.columns.iter_mut().filter(|c| c.number.is_none()) {
            if let Some(now) = described
                .columns
                .iter()
                .find(|d| d.name == c.name && d.number.is_some())
            {
                c.number = now.number;
                reshaped = true;
            }
        }
        // A column dropped and added again under its own name (a way to change its type) is
        // the same attribute, and its values flow into it again.
        let mut readded = Vec::new();
        drift.added.retain(|added| {
            let Some(k) = schema
                .columns
                .iter()
                .position(|c| c.name == added.name && drift.dropped.contains(&c.name))
            else {
                return true;
            };
            schema.columns[k].number = added.number;
            readded.push(added.name.clone());
            false
        });
        drift.dropped.retain(|d| !readded.contains(d));
        if !readded.is_empty() {
            reshaped = true;
            tracing::warn!(
                table, columns = ?readded,
                "columns were dropped and added again; their values flow into the same attributes, in the type they were linked with"
            );
        }
        let key_or_partition: Vec<&str> = schema
            .key
            .iter()
            .copied()
            .chain(schema.partition_column)
            .map(|i| schema.columns[i].name.as_str())
            .collect();
        if let Some(gone) = drift
            .dropped
            .iter()
            .find(|d| key_or_partition.contains(&d.as_str()))
        {
            return Ok(Some(format!(
                "column {gone:?}, which identifies its rows or picks their partition, was dropped"
            )));
        }
        if !drift.retyped.is_empty() || !drift.dropped.is_empty() {
            tracing::warn!(
                table, retyped = ?drift.retyped, dropped = ?drift.dropped,
                "columns were dropped or retyped; new rows keep the linked columns (a dropped one written empty); relink the table to take the new shape"
            );
        }
        if drift.added.is_empty() {
            if reshaped {
                let feed = self.feeds.get_mut(table).expect("a linked table");
                feed.widen(schema);
                self.state.put_link(feed.record())?;
            }
            return Ok(None);
        }
        let mut candidate = schema.columns.clone();
        candidate.extend(drift.added.iter().cloned());
        if let Err(reason) = table_schema::check_names(&candidate) {
            return Ok(Some(format!("a column was added: {reason}")));
        }
        for column in &drift.added {
            let index = schema.columns.len();
            match self.source.existing_rows(&source_table, &column.name)? {
                ExistingRows::Null => {}
                ExistingRows::Value(value) => schema.fills.push(ColumnFill {
                    column: index,
                    value,
                }),
                ExistingRows::Unknown(reason) => {
                    return Ok(Some(format!(
                        "column {:?} was added: {reason}",
                        column.name
                    )));
                }
            }
            schema.columns.push(column.clone());
        }
        let added: Vec<String> = drift.added.iter().map(|c| c.name.clone()).collect();
        self.source.install_capture(&CaptureSpec {
            link,
            table: source_table,
            schema: schema.clone(),
            added_from: Some(known.len()),
        })?;
        let feed = self.feeds.get_mut(table).expect("a linked table");
        feed.widen(schema);
        self.state.put_link(feed.record())?;
        let feed = &self.feeds[table];
        self.write_trickle_manifest(feed)?;
        tracing::info!(
            table,
            ?added,
            "columns added; they are captured from now on"
        );
        Ok(None)
    }
}
