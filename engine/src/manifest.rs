//! Building the CDM manifests from the linked tables: model.json (entities pointing at
//! snapshot files) and each table's trickle-feed manifest (pointing at its live files).

use crate::state::SyncState;
use crate::table_feed::TableFeed;
use lakelink_model::cdm::{
    self, Annotation, CsvFormatSettings, Entity, Model, Partition, attribute_traits,
    csv_partition_trait,
};
use lakelink_model::change::Position;
use lakelink_model::datetime::parse_datetime;
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::LakePath;
use std::collections::BTreeMap;

/// Which generation's snapshot file each (table, partition) points at.
pub type SnapshotFiles = BTreeMap<(String, String), u64>;

/// The snapshot files the feeds' durable state names, overridden by `overrides`.
pub fn snapshot_files<'a>(
    feeds: impl Iterator<Item = &'a TableFeed>,
    overrides: &SnapshotFiles,
) -> SnapshotFiles {
    let mut files = SnapshotFiles::new();
    for feed in feeds {
        for f in feed.files() {
            if let Some(g) = f.snapshot_generation {
                files.insert((f.table.clone(), f.partition.clone()), g);
            }
        }
    }
    files.extend(overrides.iter().map(|(k, v)| (k.clone(), *v)));
    files
}

/// What the published manifest says about the set of tables: a new publish is due when this
/// changes, even if no row did (a table linked, unlinked, completed or widened).
pub fn signature<'a>(feeds: impl Iterator<Item = &'a TableFeed>) -> String {
    let items: Vec<serde_json::Value> = feeds
        .map(|f| {
            let mut item = serde_json::json!([
                f.name().as_str(),
                f.record.link,
                f.record.state.as_str(),
                f.layout().attributes().len()
            ]);
            // A table that stopped is a change for readers (model.json says so); one that
            // flows keeps the signature it always had.
            if f.record.stopped.is_some()
                && let Some(items) = item.as_array_mut()
            {
                items.push("Stopped".into());
            }
            item
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

fn attributes(feed: &TableFeed) -> Vec<cdm::Attribute> {
    feed.layout()
        .attributes()
        .iter()
        .map(|a| cdm::Attribute {
            name: a.name.clone(),
            data_type: a.kind.cdm_data_type().to_string(),
            max_length: a.max_length.map_or(-1, i64::from),
            traits: attribute_traits(a.max_length, a.precision_scale),
        })
        .collect()
}

fn partition(lake: &dyn Lake, name: &str, path: &LakePath) -> Partition {
    Partition {
        name: name.to_string(),
        location: lake.location(path),
        traits: vec![csv_partition_trait()],
        annotations: vec![Annotation::new("Athena:PartitionYear", name)],
        file_format_settings: CsvFormatSettings::default(),
    }
}

fn entity(feed: &TableFeed, annotations: Vec<Annotation>, partitions: Vec<Partition>) -> Entity {
    let name = feed.name().as_str().to_string();
    Entity {
        kind: "LocalEntity".into(),
        description: name.clone(),
        name,
        annotations,
        attributes: attributes(feed),
        partitions,
    }
}

fn common_annotations(feed: &TableFeed) -> Vec<Annotation> {
    let r = &feed.record;
    let mut out = vec![
        Annotation::new("Athena:PartitionGranularity", r.granularity.athena_name()),
        Annotation::new("Athena:InitialSyncState", r.state.as_str()),
    ];
    if let Some(at) = r.completed_at.as_deref().and_then(parse_datetime) {
        out.push(Annotation::new(
            "Athena:InitialSyncDataCompletedTime",
            at.to_athena_text(),
        ));
    }
    out.push(Annotation::new("lakelink:Mode", r.mode.cdm_name()));
    out
}

/// model.json of generation `generation`, cut at `position`.
pub fn build_model<'a>(
    lake: &dyn Lake,
    feeds: impl Iterator<Item = &'a TableFeed>,
    files: &SnapshotFiles,
    generation: u64,
    position: Position,
) -> Model {
    let mut model = Model::new(generation);
    for feed in feeds {
        let name = feed.name();
        let partitioned = feed.record.schema.partition_column.is_some();
        let mut partitions = Vec::new();
        let mut newest = 0;
        if feed.record.state == SyncState::Completed {
            for f in feed.files() {
                let Some(&g) = files.get(&(f.table.clone(), f.partition.clone())) else {
                    continue;
                };
                newest = newest.max(g);
                let path =
                    LakePath::snapshot_file(name, partitioned.then_some(f.partition.as_str()), g);
                partitions.push(partition(lake, &f.partition, &path));
            }
        }
        let mut annotations = common_annotations(feed);
        // A stopped table's entity stays as it was last published, cut no later than where
        // it stopped; it says why.
        let cut = match &feed.record.stopped {
            Some(_) => position.min(feed.record.position),
            None => position,
        };
        annotations.push(Annotation::new("lakelink:SourcePosition", cut.to_string()));
        if let Some(reason) = &feed.record.stopped {
            annotations.push(Annotation::new("lakelink:Stopped", reason.clone()));
        }
        annotations.push(Annotation::new("lakelink:Generation", newest.to_string()));
        model.entities.push(entity(feed, annotations, partitions));
    }
    model
}

/// The one-entity manifest of a table's live files.
pub fn trickle_model(lake: &dyn Lake, feed: &TableFeed) -> Model {
    // A live file stored as several splits (LAKE_FORMAT §6) is one partition per split, in
    // order, each named by its file.
    let partitions = feed
        .files()
        .flat_map(|f| {
            let parts = lake.parts(&LakePath::live_file(feed.name(), &f.partition, 0));
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
        .push(entity(feed, common_annotations(feed), partitions));
    model
}

/// A manifest as the bytes lakelink writes.
pub fn to_bytes(model: &Model) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(model).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
