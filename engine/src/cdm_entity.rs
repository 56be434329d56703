//! A linked table described as a CDM entity (LAKE_FORMAT §3): its attributes, annotations and
//! partitions. model.json (the CDM CSV output format) and the trickle feed's one-entity
//! manifests both describe tables this way.

use crate::linked_table::LinkedTable;
use lakelink_model::cdm::{
    self, Annotation, CsvFormatSettings, Entity, Model, Partition, attribute_traits,
    csv_partition_trait,
};
use lakelink_model::datetime::parse_datetime;
use lakelink_model::lake::Lake;
use lakelink_model::lake_path::LakePath;

fn attributes(table: &LinkedTable) -> Vec<cdm::Attribute> {
    table
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

/// A partition named `name`, read from the CSV file at `path`.
pub fn partition(lake: &dyn Lake, name: &str, path: &LakePath) -> Partition {
    Partition {
        name: name.to_string(),
        location: lake.location(path),
        traits: vec![csv_partition_trait()],
        annotations: vec![Annotation::new("Athena:PartitionYear", name)],
        file_format_settings: CsvFormatSettings::default(),
    }
}

/// The entity of `table`, with `annotations` and `partitions`.
pub fn entity(
    table: &LinkedTable,
    annotations: Vec<Annotation>,
    partitions: Vec<Partition>,
) -> Entity {
    let name = table.name().as_str().to_string();
    Entity {
        kind: "LocalEntity".into(),
        description: name.clone(),
        name,
        annotations,
        attributes: attributes(table),
        partitions,
    }
}

/// The annotations every manifest gives a table: its granularity, initial sync state (and
/// when it completed) and snapshot mode.
pub fn common_annotations(table: &LinkedTable) -> Vec<Annotation> {
    let r = &table.record;
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

/// A manifest as the bytes lakelink writes.
pub fn to_bytes(model: &Model) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(model).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
