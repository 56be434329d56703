//! Sources: databases lakelink captures changes from.

#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;
