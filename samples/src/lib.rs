//! The sample CRM data shared by `lakelink-sample` and the benchmarks: the schema, and the
//! values a CRM holds (UUID keys, timestamps, free text with the characters CSV writers get
//! wrong).

pub mod crm;
