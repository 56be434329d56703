//! Retention: keep the newest `keep_generations` published manifests and delete the snapshot
//! files none of them names. Manifests go first, so that a crash in between leaves only
//! unreferenced files, which the next run deletes.

use crate::error::EngineError;
use lakelink_model::cdm::Model;
use lakelink_model::lake::{Lake, LakeError};
use lakelink_model::lake_path::{LAKELINK_DIR, LakePath, TRICKLE_DIR};
use std::collections::HashSet;
use std::io::Read;

/// What retention removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Published manifests deleted.
    pub manifests: usize,
    /// Snapshot files deleted.
    pub files: usize,
}

/// Reads a manifest from the lake. A manifest that is not one (cut short, overwritten with
/// other bytes, not even text) is an error that says which kept file to restore it from.
pub fn read_model(lake: &dyn Lake, path: &LakePath) -> Result<Model, EngineError> {
    read_model_advising(lake, path, None)
}

/// Reads model.json; if it is damaged, the advice names the kept manifest of generation
/// `published` (what the checkpoint store says readers last saw), when it is whole.
pub fn read_current_model(lake: &dyn Lake, published: Option<u64>) -> Result<Model, EngineError> {
    read_model_advising(lake, &LakePath::model(), published)
}

fn read_model_advising(
    lake: &dyn Lake,
    path: &LakePath,
    published: Option<u64>,
) -> Result<Model, EngineError> {
    let bytes = read_bytes(lake, path)?;
    serde_json::from_slice(&bytes).map_err(|e| EngineError::Manifest {
        path: path.to_string(),
        reason: format!(
            "not a valid manifest ({e}); {}",
            damaged_manifest_advice(lake, path, published)
        ),
    })
}

/// What to do about a damaged manifest, naming only files the lake holds.
fn damaged_manifest_advice(lake: &dyn Lake, path: &LakePath, published: Option<u64>) -> String {
    if *path != LakePath::model() {
        return "restore it from a backup of the lake, or delete it: only `lakelink read --generation` uses it, model.json does not".into();
    }
    // The kept manifest of the generation the checkpoint store published is what model.json
    // held; past it may lie one a failed publish wrote and never made current.
    let newest = lake
        .list(&LakePath::published_models_dir())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !e.is_dir)
        .filter_map(|e| e.path.generation())
        .filter(|g| published.is_none_or(|p| *g <= p))
        .filter(|g| is_whole_manifest(lake, &LakePath::published_model(*g)))
        .max();
    match newest {
        Some(g) => format!(
            "restore it by copying {} to model.json",
            LakePath::published_model(g)
        ),
        None => "no whole manifest is kept in _lakelink/models to restore it from; restore model.json from a backup of the lake".into(),
    }
}

/// Whether the manifest at `path` parses (for advice, which must not name a damaged file).
fn is_whole_manifest(lake: &dyn Lake, path: &LakePath) -> bool {
    read_bytes(lake, path).is_ok_and(|bytes| serde_json::from_slice::<Model>(&bytes).is_ok())
}

/// The whole file at `path`.
fn read_bytes(lake: &dyn Lake, path: &LakePath) -> Result<Vec<u8>, LakeError> {
    let mut bytes = Vec::new();
    lake.read(path, 0, None)?
        .read_to_end(&mut bytes)
        .map_err(|e| LakeError::io("read", path, e))?;
    Ok(bytes)
}

/// The lake path of a partition's file, from its location; falls back to the lake layout
/// (`<table>/Snapshot/<file>`) for a lake that was moved since the manifest was written.
pub fn partition_path(lake: &dyn Lake, entity: &str, location: &str) -> LakePath {
    lake.path_of_location(location).unwrap_or_else(|| {
        let file = location.rsplit(['/', '\\']).next().unwrap_or(location);
        LakePath::from_raw(format!("{entity}/Snapshot/{file}"))
    })
}

/// The highest generation the lake has published: model.json's and the kept manifests'.
/// A new generation must lie above it, whatever the checkpoint store says: a store restored
/// from an older copy (or a model.json put back from a kept manifest, as lakelink's own
/// advice says) must never make a publish write over a published file. A snapshot file is
/// published only once a manifest of its generation or a later one is written, and retention
/// deletes a file only after every manifest that names it; so snapshot files of a higher
/// generation than every manifest were never published (a publish that failed before its
/// manifest), and the retried publish may replace them.
pub fn highest_generation(lake: &dyn Lake) -> Result<u64, EngineError> {
    let mut highest = 0;
    if lake.size(&LakePath::model())?.is_some() {
        // A model.json that does not parse is refused on start; here it adds nothing.
        if let Ok(model) = read_model(lake, &LakePath::model()) {
            highest = model.generation;
        }
    }
    for entry in lake.list(&LakePath::published_models_dir())? {
        highest = highest.max(entry.path.generation().unwrap_or(0));
    }
    Ok(highest)
}

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
