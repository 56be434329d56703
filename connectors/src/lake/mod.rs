//! Lakes: where lakelink writes files.

#[cfg(feature = "adls")]
pub mod adls;
pub mod local;
