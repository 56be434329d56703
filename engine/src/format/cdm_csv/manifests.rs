//! Reading model.json and the kept manifests (`_lakelink/models/model-T<n>.json`) back: which
//! generation readers see, the highest one the lake ever published, and advice that names
//! only files that are there when one is damaged or missing.

use crate::error::EngineError;
use lakelink_model::cdm::Model;
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::LakePath;
use std::path::Path;

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
    let bytes = lake.read_all(path)?;
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
    lake.read_all(path)
        .is_ok_and(|bytes| serde_json::from_slice::<Model>(&bytes).is_ok())
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

/// The generation model.json names, or `None` when there is no model.json.
pub fn published_generation(
    lake: &dyn Lake,
    recorded: Option<u64>,
) -> Result<Option<u64>, EngineError> {
    match lake.size(&LakePath::model())? {
        Some(_) => Ok(Some(read_current_model(lake, recorded)?.generation)),
        None => Ok(None),
    }
}

/// The error for a model.json that names generation `found` (none: missing) where the
/// checkpoint store at `state` published `recorded`.
pub fn disagreement(
    lake: &dyn Lake,
    found: Option<u64>,
    recorded: Option<u64>,
    state: &Path,
) -> Result<EngineError, EngineError> {
    let model_path = LakePath::model();
    Ok(match (found, recorded) {
        (Some(m), None) => EngineError::Manifest {
            path: model_path.to_string(),
            reason: format!(
                "names generation {m} but the checkpoint store has never published; point [engine] state at this lake's checkpoint store"
            ),
        },
        (None, Some(p)) => {
            let kept = LakePath::published_model(p);
            let advice = if lake.size(&kept)?.is_some() {
                format!("restore it by copying {kept} to model.json")
            } else {
                format!(
                    "no manifest is kept in _lakelink/models either, so the lake's files are gone (the lake folder deleted or emptied, or [lake] pointing at another place or at storage that is not mounted). If the lake is elsewhere, fix [lake] or mount its storage, and start again. If it is gone for good, start over: move the checkpoint store {} aside and sync, which copies every table afresh (on SQLite the next start names the old capture triggers to drop)",
                    state.display()
                )
            };
            EngineError::Manifest {
                path: model_path.to_string(),
                reason: format!("is missing but generation {p} was published; {advice}"),
            }
        }
        (m, p) => {
            let (m, p) = (m.unwrap_or(0), p.unwrap_or(0));
            let kept = LakePath::published_model(p);
            // Advice names only a file that is there. Following it is safe: the next publish
            // takes a generation above every one the lake holds, so nothing published is
            // written again.
            let advice = if lake.size(&kept)?.is_some() {
                format!(
                    "if this is the lake's own checkpoint store, restore model.json by copying {kept} to model.json (readers see generation {p} until the next publish); otherwise point [engine] state at the store this lake was written with"
                )
            } else {
                format!(
                    "{kept} is gone too, so point [engine] state at the store this lake was written with"
                )
            };
            EngineError::Manifest {
                path: model_path.to_string(),
                reason: format!(
                    "names generation {m} but the checkpoint store published {p}; {advice}"
                ),
            }
        }
    })
}
