//! Each linked table's trickle-feed manifest,
//! `Microsoft.Athena.TrickleFeedService/<table>-model.json` (LAKE_FORMAT §3): one entity whose
//! partitions are the table's live files, for readers that follow the feed between snapshots.
//! It belongs to the live files, so it is written whatever the output format.

use crate::cdm_entity::{common_annotations, entity, partition, to_bytes};
use crate::error::EngineError;
use crate::linked_table::LinkedTable;
use lakelink_model::cdm::Model;
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::LakePath;

/// The one-entity manifest of a table's live files.
pub fn trickle_model(lake: &dyn Lake, table: &LinkedTable) -> Model {
    // A live file stored as several splits (LAKE_FORMAT §6) is one partition per split, in
    // order, each named by its file.
    let partitions = table
        .files()
        .flat_map(|f| {
            let parts = lake.parts(&table.live_path(&f.partition));
            let split = parts.len() > 1;
            parts.into_iter().map(move |part| {
                let name = if split {
                    part.file_name()
                        .strip_suffix(".csv")
                        .unwrap_or(&f.partition)
                        .to_string()
                } else {
                    f.partition.clone()
                };
                (name, part)
            })
        })
        .map(|(name, part)| partition(lake, &name, &part))
        .collect();
    let mut model = Model::new(0);
    model
        .entities
        .push(entity(table, common_annotations(table), partitions));
    model
}

/// Replaces `table`'s trickle manifest with one that names its live files as they are now.
pub fn write(lake: &dyn Lake, table: &LinkedTable) -> Result<(), EngineError> {
    let model = trickle_model(lake, table);
    lake.replace(&LakePath::trickle_manifest(table.name()), &to_bytes(&model))?;
    Ok(())
}
