//! Sources: databases lakelink captures changes from.

pub mod sqlite;
