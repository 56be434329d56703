//! lakelink's engine: the pipeline from a source to a lake (capture bookkeeping, trickle
//! feed, snapshotter, checkpoints, config) and the commands of the `lakelink` binary.

pub mod agent;
pub mod backoff;
pub mod cdm_entity;
pub mod config;
pub mod config_edit;
pub mod config_watch;
pub mod copy_progress;
pub mod error;
pub mod format;
pub mod http_status;
pub mod id_order;
pub mod linked_table;
pub mod metrics;
pub mod pending_links;
pub mod pipeline;
pub mod recovery;
pub mod row_layout;
pub mod snapshot;
pub mod state;
pub mod status;
pub mod table_feed;
pub mod table_schema;
pub mod trickle_manifest;
