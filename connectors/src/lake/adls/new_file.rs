//! A file written by [`lakelink_model::lake::Lake::create`] on blob storage: its bytes are
//! staged as blocks while it is written (so a large snapshot file never sits whole in
//! memory), and [`NewFile::commit`] commits the block list with If-None-Match: *, so the file
//! appears whole, once, and never replaces another. Abandoned staged blocks are discarded by
//! the service.

use super::blob_store::BlobStore;
use super::errors::{is_condition_failed, lake_error};
use azure_core::Bytes;
use lakelink_model::lake::{LakeError, NewFile};
use lakelink_model::lake_path::LakePath;
use std::io::{self, Write};
use std::sync::Arc;
use tokio::runtime::Runtime;

/// Bytes gathered before a block is staged: large enough that a snapshot file of a few GiB
/// stays far below the 50,000-block limit, small enough to hold in memory.
const STAGE_BYTES: usize = 8 << 20;

/// A file being written as staged blocks.
pub struct BlobNewFile {
    runtime: Arc<Runtime>,
    store: BlobStore,
    path: LakePath,
    name: String,
    pending: Vec<u8>,
    blocks: Vec<Vec<u8>>,
}

impl BlobNewFile {
    /// A new file at `path`.
    pub fn new(runtime: Arc<Runtime>, store: BlobStore, path: LakePath) -> BlobNewFile {
        let name = store.locations().blob_name(&path);
        BlobNewFile {
            runtime,
            store,
            path,
            name,
            pending: Vec::with_capacity(STAGE_BYTES),
            blocks: Vec::new(),
        }
    }

    /// Stages what is pending as one block.
    fn stage(&mut self) -> Result<(), LakeError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let id = azure_core::Uuid::new_v4().as_bytes().to_vec();
        let data = Bytes::from(std::mem::take(&mut self.pending));
        self.runtime
            .block_on(self.store.stage_block(&self.name, &id, data))
            .map_err(|e| lake_error("stage a block of", &self.path, &e))?;
        self.blocks.push(id);
        self.pending.reserve(STAGE_BYTES);
        Ok(())
    }
}

impl Write for BlobNewFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= STAGE_BYTES {
            self.stage().map_err(io::Error::other)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl NewFile for BlobNewFile {
    fn commit(mut self: Box<Self>) -> Result<(), LakeError> {
        self.stage()?;
        let result =
            self.runtime
                .block_on(self.store.commit_blocks(&self.name, &self.blocks, None));
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => {
                // This commit may have landed with only its answer lost: then the blob holds
                // exactly these blocks.
                let theirs = self
                    .runtime
                    .block_on(self.store.committed_blocks(&self.name))
                    .map(|c| c.blocks);
                match theirs {
                    Ok(blocks) if blocks == self.blocks => Ok(()),
                    _ => Err(LakeError::AlreadyExists {
                        path: self.path.clone(),
                    }),
                }
            }
            Err(e) => Err(lake_error("publish", &self.path, &e)),
        }
    }
}
