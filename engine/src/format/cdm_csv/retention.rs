//! Retention: keep the newest `keep_generations` published manifests and delete the snapshot
//! files none of them names. Manifests go first, so that a crash in between leaves only
//! unreferenced files, which the next run deletes.

use super::manifests::{partition_path, read_model};
use crate::error::EngineError;
use crate::format::Removed;
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::{LAKELINK_DIR, LakePath, TRICKLE_DIR};
use std::collections::HashSet;

/// Applies retention after generation `current` was published.
pub fn apply(lake: &dyn Lake, keep: u32, current: u64) -> Result<Removed, EngineError> {
    let mut removed = Removed::default();
    let mut manifests: Vec<(u64, LakePath)> = lake
        .list(&LakePath::published_models_dir())?
        .into_iter()
        .filter(|e| !e.is_dir)
        .filter_map(|e| e.path.generation().map(|g| (g, e.path)))
        .filter(|(g, _)| *g <= current)
        .collect();
    manifests.sort_by_key(|m| std::cmp::Reverse(m.0));
    let keep = (keep as usize).max(1);
    for (_, path) in manifests.iter().skip(keep) {
        lake.delete(path)?;
        removed.manifests += 1;
    }
    let mut referenced = HashSet::new();
    for (_, path) in manifests.iter().take(keep) {
        let model = read_model(lake, path)?;
        for entity in &model.entities {
            for p in &entity.partitions {
                referenced.insert(partition_path(lake, &entity.name, &p.location));
            }
        }
    }
    for entry in lake.list(&LakePath::from_raw(""))? {
        let name = entry.path.file_name();
        if !entry.is_dir || name == LAKELINK_DIR || name == TRICKLE_DIR {
            continue;
        }
        let dir = LakePath::from_raw(format!(
            "{}/Snapshot",
            entry.path.as_str().trim_start_matches('/')
        ));
        for file in lake.list(&dir)? {
            let stale = file.path.generation().is_some_and(|g| g <= current);
            if !file.is_dir && stale && !referenced.contains(&file.path) {
                lake.delete(&file.path)?;
                removed.files += 1;
            }
        }
    }
    Ok(removed)
}
