//! The CDM `model.json` manifest as lakelink writes and reads it (LAKE_FORMAT §3). Fields
//! lakelink does not know are ignored on read, so a manifest from a newer version still
//! reads.

use serde::{Deserialize, Serialize};

/// Root of a `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Always `cdm`.
    pub name: String,
    /// Always `cdm`.
    pub description: String,
    /// Always `1.0`.
    pub version: String,
    /// The snapshot generation this manifest publishes.
    #[serde(rename = "lakelink:generation", default)]
    pub generation: u64,
    /// One entity per linked table.
    pub entities: Vec<Entity>,
}

impl Model {
    /// An empty manifest of generation `generation`.
    pub fn new(generation: u64) -> Model {
        Model {
            name: "cdm".into(),
            description: "cdm".into(),
            version: "1.0".into(),
            generation,
            entities: Vec::new(),
        }
    }

    /// The entity named `name`.
    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name == name)
    }
}

/// One table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// Always `LocalEntity`.
    #[serde(rename = "$type")]
    pub kind: String,
    /// The table name.
    pub name: String,
    /// The table name.
    pub description: String,
    /// Athena and lakelink annotations.
    #[serde(default)]
    pub annotations: Vec<Annotation>,
    /// Columns in row order.
    pub attributes: Vec<Attribute>,
    /// Data files; only tables whose initial sync completed have any.
    #[serde(default)]
    pub partitions: Vec<Partition>,
}

impl Entity {
    /// The value of annotation `name`.
    pub fn annotation(&self, name: &str) -> Option<&str> {
        self.annotations
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }
}

/// A name/value pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    /// The annotation's name.
    pub name: String,
    /// Its value, always text.
    pub value: String,
}

impl Annotation {
    /// An annotation.
    pub fn new(name: &str, value: impl Into<String>) -> Annotation {
        Annotation {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// One column of an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    /// The column name.
    pub name: String,
    /// The CDM data type.
    #[serde(rename = "dataType")]
    pub data_type: String,
    /// Declared length, or -1.
    #[serde(rename = "maxLength", default = "no_length")]
    pub max_length: i64,
    /// `is.constrained` or `is.dataFormat.numeric.shaped`, when they apply.
    #[serde(rename = "cdm:traits", default, skip_serializing_if = "Vec::is_empty")]
    pub traits: Vec<TraitReference>,
}

fn no_length() -> i64 {
    -1
}

/// A CDM trait applied to an attribute or partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraitReference {
    /// The trait's name.
    #[serde(rename = "traitReference")]
    pub trait_reference: String,
    /// Its arguments.
    #[serde(default)]
    pub arguments: Vec<TraitArgument>,
}

/// One argument of a trait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraitArgument {
    /// The argument's name.
    pub name: String,
    /// Its value.
    pub value: serde_json::Value,
}

/// One data file of an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partition {
    /// The partition name (`2024`, `2024-12`, `1`).
    pub name: String,
    /// Absolute location of the snapshot file.
    pub location: String,
    /// `is.partition.format.CSV` with `raggedRight`.
    #[serde(rename = "cdm:traits", default, skip_serializing_if = "Vec::is_empty")]
    pub traits: Vec<TraitReference>,
    /// `Athena:PartitionYear`.
    #[serde(default)]
    pub annotations: Vec<Annotation>,
    /// How the file is written.
    #[serde(rename = "fileFormatSettings")]
    pub file_format_settings: CsvFormatSettings,
}

/// The `fileFormatSettings` of every partition, exactly as LAKE_FORMAT §3 gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvFormatSettings {
    /// `CsvFormatSettings`.
    #[serde(rename = "$type")]
    pub kind: String,
    /// `false`: files have no header row.
    #[serde(rename = "columnHeaders")]
    pub column_headers: bool,
    /// `,`.
    pub delimiter: String,
    /// `QuoteStyle.Csv`.
    #[serde(rename = "quoteStyle")]
    pub quote_style: String,
    /// `CsvStyle.QuoteAlways`.
    #[serde(rename = "csvStyle")]
    pub csv_style: String,
    /// `UTF-8`.
    pub encoding: String,
}

impl Default for CsvFormatSettings {
    fn default() -> Self {
        CsvFormatSettings {
            kind: "CsvFormatSettings".into(),
            column_headers: false,
            delimiter: ",".into(),
            quote_style: "QuoteStyle.Csv".into(),
            csv_style: "CsvStyle.QuoteAlways".into(),
            encoding: "UTF-8".into(),
        }
    }
}

/// The trait every partition carries: CSV, and rows may be shorter than the attribute list.
pub fn csv_partition_trait() -> TraitReference {
    TraitReference {
        trait_reference: "is.partition.format.CSV".into(),
        arguments: vec![
            TraitArgument {
                name: "columnHeaders".into(),
                value: "false".into(),
            },
            TraitArgument {
                name: "delimiter".into(),
                value: ",".into(),
            },
            TraitArgument {
                name: "raggedRight".into(),
                value: "true".into(),
            },
        ],
    }
}

/// Attribute traits for a declared length or a decimal shape.
pub fn attribute_traits(
    max_length: Option<u32>,
    precision_scale: Option<(u8, u8)>,
) -> Vec<TraitReference> {
    let mut traits = Vec::new();
    if let Some(len) = max_length {
        traits.push(TraitReference {
            trait_reference: "is.constrained".into(),
            arguments: vec![TraitArgument {
                name: "maximumLength".into(),
                value: len.into(),
            }],
        });
    }
    if let Some((precision, scale)) = precision_scale {
        traits.push(TraitReference {
            trait_reference: "is.dataFormat.numeric.shaped".into(),
            arguments: vec![
                TraitArgument {
                    name: "precision".into(),
                    value: precision.into(),
                },
                TraitArgument {
                    name: "scale".into(),
                    value: scale.into(),
                },
            ],
        });
    }
    traits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_format_settings_are_exact() {
        let json = serde_json::to_string(&CsvFormatSettings::default()).unwrap();
        assert_eq!(
            json,
            r#"{"$type":"CsvFormatSettings","columnHeaders":false,"delimiter":",","quoteStyle":"QuoteStyle.Csv","csvStyle":"CsvStyle.QuoteAlways","encoding":"UTF-8"}"#
        );
    }

    #[test]
    fn unknown_fields_are_ignored_on_read() {
        let text = r#"{"name":"cdm","description":"cdm","version":"1.0","lakelink:generation":4,
            "future":1,"entities":[]}"#;
        let model: Model = serde_json::from_str(text).unwrap();
        assert_eq!(model.generation, 4);
    }
}
