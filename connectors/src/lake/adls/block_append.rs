//! Appends as block lists: a batch is staged as new blocks, then the blob's whole block list,
//! old blocks and new, is committed conditioned on the ETag this lake last committed (or, for
//! a new file, on its absence). The commit is the batch's one atomic step: a crash before it
//! leaves only uncommitted blocks, which the service discards, so a batch is visible whole or
//! not at all, and a committed file never ends in a torn row.
//!
//! The committed block list of each file is cached, so an append costs two requests; the
//! cache is refreshed from the service on first use and whenever a condition fails.

use super::blob_store::{BlobStore, CommittedBlocks};
use super::errors::{is_blob_not_found, is_condition_failed, lake_error};
use azure_core::Bytes;
use lakelink_model::lake::LakeError;
use lakelink_model::lake_path::LakePath;
use std::collections::HashMap;
use std::sync::Mutex;

/// The service's limit on committed blocks per blob.
pub const MAX_BLOCKS: usize = 50_000;
/// The largest block staged: a batch bigger than this is staged as several blocks (and
/// committed at once).
const MAX_BLOCK_BYTES: usize = 64 << 20;

/// The cached committed state of the live files.
#[derive(Default)]
pub struct BlockLists {
    files: Mutex<HashMap<String, CommittedBlocks>>,
}

/// A fresh block id: 16 random bytes, the same length for every block as the service requires.
fn new_block_id() -> Vec<u8> {
    azure_core::Uuid::new_v4().as_bytes().to_vec()
}

impl BlockLists {
    /// Forgets what is cached of blob `name` (after a delete or a failed condition).
    pub fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CommittedBlocks>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The committed state of blob `name`, from the cache or the service (`None`: no blob).
    pub async fn committed(
        &self,
        store: &BlobStore,
        name: &str,
        path: &LakePath,
        fresh: bool,
    ) -> Result<Option<CommittedBlocks>, LakeError> {
        if !fresh && let Some(c) = self.lock().get(name) {
            return Ok(Some(c.clone()));
        }
        match store.committed_blocks(name).await {
            // A blob with staged blocks only (a crash before its first commit) lists no
            // committed block and does not exist for reads, though the service may give it
            // an ETag that no condition matches: it does not exist yet.
            Ok(c) if c.blocks.is_empty() => match store.size(name).await {
                Ok(_) => {
                    self.lock().insert(name.to_string(), c.clone());
                    Ok(Some(c))
                }
                Err(e) if is_blob_not_found(&e) => {
                    self.forget(name);
                    Ok(None)
                }
                Err(e) => Err(lake_error("look at", path, &e)),
            },
            Ok(c) => {
                self.lock().insert(name.to_string(), c.clone());
                Ok(Some(c))
            }
            Err(e) if is_blob_not_found(&e) => {
                self.forget(name);
                Ok(None)
            }
            Err(e) => Err(lake_error("read the block list of", path, &e)),
        }
    }

    /// [`lakelink_model::lake::Lake::append`] on blob `name`.
    pub async fn append(
        &self,
        store: &BlobStore,
        path: &LakePath,
        expected_len: u64,
        data: &[u8],
    ) -> Result<u64, LakeError> {
        let name = store.locations().blob_name(path);
        let mismatch = |actual| LakeError::LengthMismatch {
            path: path.clone(),
            expected: expected_len,
            actual,
        };
        let mut current = self.committed(store, &name, path, false).await?;
        if current.as_ref().map_or(0, CommittedBlocks::size) != expected_len {
            // The cache may be behind another process's work: ask the service before refusing.
            current = self.committed(store, &name, path, true).await?;
            let actual = current.as_ref().map_or(0, CommittedBlocks::size);
            if actual != expected_len {
                return Err(mismatch(actual));
            }
        }
        if data.is_empty() && current.is_some() {
            return Ok(expected_len);
        }
        let (mut blocks, mut sizes, etag) = match &current {
            Some(c) => (c.blocks.clone(), c.sizes.clone(), Some(c.etag.clone())),
            None => (Vec::new(), Vec::new(), None),
        };
        // An empty append to a missing file commits an empty block list: the file appears.
        let chunks: Vec<&[u8]> = data.chunks(MAX_BLOCK_BYTES).collect();
        if blocks.len() + chunks.len() > MAX_BLOCKS {
            return Err(LakeError::refused(
                "append to",
                path,
                format!(
                    "the file has {} blocks and blob storage allows {MAX_BLOCKS}",
                    blocks.len()
                ),
            ));
        }
        let mut staged = Vec::new();
        for chunk in chunks {
            let id = new_block_id();
            store
                .stage_block(&name, &id, Bytes::copy_from_slice(chunk))
                .await
                .map_err(|e| lake_error("stage a block of", path, &e))?;
            sizes.push(chunk.len() as u64);
            blocks.push(id.clone());
            staged.push(id);
        }
        let new_len = expected_len + data.len() as u64;
        match store.commit_blocks(&name, &blocks, etag.as_deref()).await {
            Ok(new_etag) => {
                self.lock().insert(
                    name,
                    CommittedBlocks {
                        etag: new_etag,
                        blocks,
                        sizes,
                    },
                );
                Ok(new_len)
            }
            Err(e) if is_condition_failed(&e) => {
                // Either another writer changed the file, or this very commit reached the
                // service and only its answer was lost (then a retry found the ETag moved):
                // the block list tells which.
                let now = self.committed(store, &name, path, true).await?;
                match now {
                    Some(c) if c.blocks.ends_with(&staged) && c.size() == new_len => Ok(new_len),
                    Some(c) => Err(mismatch(c.size())),
                    None => Err(mismatch(0)),
                }
            }
            Err(e) => {
                self.forget(&name);
                Err(lake_error("commit an append to", path, &e))
            }
        }
    }

    /// [`lakelink_model::lake::Lake::discard_tail`] on blob `name`: keeps the committed
    /// blocks that make up the first `len` bytes. Only a block boundary can be cut at; since
    /// every batch is whole blocks, the end of any committed batch is one.
    pub async fn discard_tail(
        &self,
        store: &BlobStore,
        path: &LakePath,
        len: u64,
    ) -> Result<(), LakeError> {
        let name = store.locations().blob_name(path);
        let Some(current) = self.committed(store, &name, path, true).await? else {
            return Err(LakeError::NotFound { path: path.clone() });
        };
        let mut total = 0;
        let mut keep = 0;
        while keep < current.sizes.len() && total < len {
            total += current.sizes[keep];
            keep += 1;
        }
        if total != len {
            return Err(LakeError::refused(
                "cut",
                path,
                format!(
                    "{len} bytes is not a block boundary; blob files are cut only between batches"
                ),
            ));
        }
        if keep == current.blocks.len() {
            return Ok(());
        }
        let blocks = current.blocks[..keep].to_vec();
        let etag = store
            .commit_blocks(&name, &blocks, Some(&current.etag))
            .await
            .map_err(|e| {
                self.forget(&name);
                lake_error("cut", path, &e)
            })?;
        self.lock().insert(
            name,
            CommittedBlocks {
                etag,
                blocks,
                sizes: current.sizes[..keep].to_vec(),
            },
        );
        Ok(())
    }
}
