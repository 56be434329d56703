//! model.json of a generation (LAKE_FORMAT §3): one entity per linked table, whose partitions
//! are its snapshot files, and its publish: the kept copy `_lakelink/models/model-T<n>.json`
//! written create-only, then model.json replaced atomically, the commit point.

use super::snapshot_file::create_unpublished;
use crate::cdm_entity::{common_annotations, entity, partition, to_bytes};
use crate::error::EngineError;
use crate::format::SnapshotFiles;
use crate::linked_table::LinkedTable;
use crate::state::SyncState;
use lakelink_model::cdm::{Annotation, Model};
use lakelink_model::change::Position;
use lakelink_model::lake::{Lake, LakeError};
use lakelink_model::lake_path::LakePath;
use std::io::Write;

/// model.json of generation `generation`, cut at `position`.
pub fn build_model(
    lake: &dyn Lake,
    tables: &[&LinkedTable],
    files: &SnapshotFiles,
    generation: u64,
    position: Position,
) -> Model {
    let mut model = Model::new(generation);
    for table in tables {
        let name = table.name();
        let partitioned = table.is_partitioned();
        let mut partitions = Vec::new();
        let mut newest = 0;
        if table.record.state == SyncState::Completed {
            for f in table.files() {
                let Some(&g) = files.get(&(f.table.clone(), f.partition.clone())) else {
                    continue;
                };
                newest = newest.max(g);
                let path =
                    LakePath::snapshot_file(name, partitioned.then_some(f.partition.as_str()), g);
                partitions.push(partition(lake, &f.partition, &path));
            }
        }
        let mut annotations = common_annotations(table);
        // A stopped table's entity stays as it was last published, cut no later than where
        // it stopped; it says why.
        let cut = match &table.record.stopped {
            Some(_) => position.min(table.record.position),
            None => position,
        };
        annotations.push(Annotation::new("lakelink:SourcePosition", cut.to_string()));
        if let Some(reason) = &table.record.stopped {
            annotations.push(Annotation::new("lakelink:Stopped", reason.clone()));
        }
        annotations.push(Annotation::new("lakelink:Generation", newest.to_string()));
        model.entities.push(entity(table, annotations, partitions));
    }
    model
}

/// Publishes generation `generation`: its kept manifest, then model.json.
pub fn publish(
    lake: &dyn Lake,
    tables: &[&LinkedTable],
    files: &SnapshotFiles,
    generation: u64,
    position: Position,
) -> Result<(), EngineError> {
    let model = build_model(lake, tables, files, generation, position);
    let bytes = to_bytes(&model);
    let kept_path = LakePath::published_model(generation);
    let mut kept = create_unpublished(lake, &kept_path)?;
    kept.write_all(&bytes)
        .map_err(|e| LakeError::io("write", &kept_path, e))?;
    kept.commit()?;
    lake.replace(&LakePath::model(), &bytes)?;
    Ok(())
}
