//! The catalog entry of one linked table: its link, its lake name, its attributes and the
//! durable state of its live files. Snapshots and output formats read tables through this;
//! only the trickle feed ([`crate::table_feed::TableFeed`]) changes it.

use crate::state::{LinkRecord, LiveFile};
use lakelink_model::lake_path::{LakePath, TableName};
use lakelink_model::schema::{Attribute, AttributeRole, TableSchema};
use std::collections::BTreeMap;

/// A linked table as the lake holds it durably.
#[derive(Clone)]
pub struct LinkedTable {
    /// The table's link.
    pub record: LinkRecord,
    name: TableName,
    attributes: Vec<Attribute>,
    /// Each live file's durable state, by partition.
    files: BTreeMap<String, LiveFile>,
}

impl LinkedTable {
    /// The table of `record`, over its durable live files.
    pub fn new(record: LinkRecord, name: TableName, files: Vec<LiveFile>) -> LinkedTable {
        LinkedTable {
            attributes: record.schema.attributes(),
            files: files
                .into_iter()
                .map(|f| (f.partition.clone(), f))
                .collect(),
            record,
            name,
        }
    }

    /// The table's name in the lake.
    pub fn name(&self) -> &TableName {
        &self.name
    }

    /// The table's attributes, in row order (LAKE_FORMAT §5).
    pub fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }

    /// The index of the field of `role` in a row, or `usize::MAX` (a field no row has) when
    /// the table has no such attribute.
    pub fn field_index(&self, role: AttributeRole) -> usize {
        self.attributes
            .iter()
            .position(|a| a.role == role)
            .unwrap_or(usize::MAX)
    }

    /// Whether the table's files are split by partition (it has a partition column).
    pub fn is_partitioned(&self) -> bool {
        self.record.schema.partition_column.is_some()
    }

    /// The durable state of each live file, by partition.
    pub fn files(&self) -> impl Iterator<Item = &LiveFile> {
        self.files.values()
    }

    /// The durable state of one partition's live file.
    pub fn file(&self, partition: &str) -> Option<&LiveFile> {
        self.files.get(partition)
    }

    /// The live file of `partition`, as the append log it is.
    pub fn live_path(&self, partition: &str) -> LakePath {
        LakePath::live_file(&self.name, partition)
    }

    /// Whether the table flows into the lake: its initial copy completed and it is not
    /// stopped.
    pub fn is_flowing(&self) -> bool {
        self.record.state == crate::state::SyncState::Completed && self.record.stopped.is_none()
    }

    /// Records that a published snapshot covers `partition` up to `cut` bytes.
    pub fn mark_snapshot(&mut self, partition: &str, cut: u64, generation: u64) {
        if let Some(f) = self.files.get_mut(partition) {
            f.snapshot_len = cut;
            f.snapshot_generation = Some(generation);
        }
    }

    /// The durable state of `partition`'s live file, created empty if the table has none.
    pub(crate) fn file_mut(&mut self, partition: &str) -> &mut LiveFile {
        let table = self.name.as_str();
        self.files
            .entry(partition.to_string())
            .or_insert_with(|| LiveFile::empty(table, partition))
    }

    /// Replaces the schema after columns were added.
    pub(crate) fn widen(&mut self, schema: TableSchema) {
        self.record.schema = schema;
        self.attributes = self.record.schema.attributes();
    }
}
