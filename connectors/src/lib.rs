//! lakelink's connectors: the sources it captures changes from and the lakes it writes to,
//! each implementing a trait of `lakelink-model`, and the registry that lists every kind.

pub mod lake;
pub mod registry;
pub mod source;
