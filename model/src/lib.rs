//! lakelink's vocabulary and contracts: what a table, a change, a CSV field, a lake path and a
//! CDM manifest are, and the [`Source`](source::Source) and [`Lake`](lake::Lake) traits every
//! connector implements. Nothing here does I/O; everything else depends on it.

pub mod cdm;
pub mod change;
pub mod column_type;
pub mod csv_row;
pub mod datetime;
pub mod lake;
pub mod lake_path;
pub mod partition;
pub mod schema;
pub mod source;
pub mod table_mode;
pub mod table_ref;
pub mod value;
pub mod value_codec;
pub mod writer_holder;

pub use change::{Change, ChangeBatch, ChangeKind, Position};
pub use column_type::FieldKind;
pub use lake_path::{LakePath, TableName};
pub use schema::{Attribute, AttributeRole, SourceColumn, TableSchema};
pub use value::Value;
