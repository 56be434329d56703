//! lakelink's connectors: the sources it captures changes from and the lakes it writes to,
//! each implementing a trait of `lakelink-model`.

pub mod lake;
pub mod source;
