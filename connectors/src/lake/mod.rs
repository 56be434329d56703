//! Lakes: where lakelink writes files.

pub mod local;
