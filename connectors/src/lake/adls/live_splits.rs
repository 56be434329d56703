//! Long append logs on blob storage, split: a file the engine appends to (a path that
//! [`LakePath::is_append_log`], the live files `<table>/<partition>.csv`) whose block list has
//! reached [`AdlsLakeConfig::split_after_batches`](super::config::AdlsLakeConfig)
//! blocks goes on in `<partition>_001.csv`, then `_002.csv`, ... (LAKE_FORMAT §6), well
//! before blob storage's limit of 50,000 committed blocks, and before the block list, which
//! every append re-sends whole, grows large. To the engine a live file stays one file, the
//! concatenation of its splits: lengths, appends, reads and cuts are all in that one byte
//! space, and [`lakelink_model::lake::Lake::parts`] names the splits for the manifest.

use super::blob_store::BlobStore;
use super::block_append::BlockLists;
use super::errors::{is_blob_not_found, lake_error};
use super::range_reader::RangeReader;
use lakelink_model::lake::LakeError;
use lakelink_model::lake_path::LakePath;
use std::collections::HashMap;
use std::io::{self, BufRead, Read};
use std::sync::{Arc, Mutex};
use tokio::runtime::Runtime;

/// The file name of the append log that `file` (a file name) would be a later split of:
/// `<stem>_NNN.<ext>` (NNN from 001) is a split of `<stem>.<ext>`.
pub fn split_base(file: &str) -> Option<String> {
    let (stem, ext) = file.rsplit_once('.')?;
    let (base, n) = stem.rsplit_once('_')?;
    let numbered = n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()) && n != "000";
    (numbered && !base.is_empty()).then(|| format!("{base}.{ext}"))
}

/// Split `n` of append log `path` (split 0 is the file itself): `<stem>_NNN.<ext>`.
pub fn split_path(path: &LakePath, n: usize) -> LakePath {
    if n == 0 {
        return path.clone();
    }
    let text = path.as_str();
    let (stem, ext) = match text.rsplit_once('.') {
        Some((stem, ext)) if !ext.contains('/') => (stem, format!(".{ext}")),
        _ => (text, String::new()),
    };
    LakePath::from_raw(format!("{stem}_{n:03}{ext}"))
}

/// The splits of the live files this lake has seen.
pub struct LiveSplits {
    /// Per live file, each split's size, in order (empty: the file does not exist).
    sizes: Mutex<HashMap<LakePath, Vec<u64>>>,
    /// Blocks a split takes before the next one starts.
    split_after: usize,
}

impl LiveSplits {
    /// Splits of `split_after` blocks.
    pub fn new(split_after: usize) -> LiveSplits {
        LiveSplits {
            sizes: Mutex::new(HashMap::new()),
            split_after,
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<LakePath, Vec<u64>>> {
        self.sizes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sizes of `path`'s splits, from the cache or (when `fresh` or unknown) the service.
    async fn sizes(
        &self,
        store: &BlobStore,
        blocks: &BlockLists,
        path: &LakePath,
        fresh: bool,
    ) -> Result<Vec<u64>, LakeError> {
        if !fresh && let Some(sizes) = self.cache().get(path) {
            return Ok(sizes.clone());
        }
        let mut sizes = Vec::new();
        loop {
            let split = split_path(path, sizes.len());
            let name = store.locations().blob_name(&split);
            match blocks.committed(store, &name, &split, true).await? {
                Some(c) => sizes.push(c.size()),
                None => break,
            }
        }
        self.cache().insert(path.clone(), sizes.clone());
        Ok(sizes)
    }

    /// The files `path` is stored as, as far as known.
    pub fn parts(&self, path: &LakePath) -> Vec<LakePath> {
        let count = self.cache().get(path).map_or(1, |s| s.len().max(1));
        (0..count).map(|n| split_path(path, n)).collect()
    }

    /// The live file's size, or `None` when it does not exist.
    pub async fn size(
        &self,
        store: &BlobStore,
        blocks: &BlockLists,
        path: &LakePath,
    ) -> Result<Option<u64>, LakeError> {
        let sizes = self.sizes(store, blocks, path, true).await?;
        Ok((!sizes.is_empty()).then(|| sizes.iter().sum()))
    }

    /// [`lakelink_model::lake::Lake::append`] to a live file: to its last split, or to a new
    /// one when the last is full.
    pub async fn append(
        &self,
        store: &BlobStore,
        blocks: &BlockLists,
        path: &LakePath,
        expected_len: u64,
        data: &[u8],
    ) -> Result<u64, LakeError> {
        let mut sizes = self.sizes(store, blocks, path, false).await?;
        if sizes.iter().sum::<u64>() != expected_len {
            // The cache may be behind: ask the service before refusing.
            sizes = self.sizes(store, blocks, path, true).await?;
            let actual = sizes.iter().sum();
            if actual != expected_len {
                return Err(LakeError::LengthMismatch {
                    path: path.clone(),
                    expected: expected_len,
                    actual,
                });
            }
        }
        let mut last = sizes.len().saturating_sub(1);
        let mut start = expected_len - sizes.last().copied().unwrap_or(0);
        if let Some(&size) = sizes.last() {
            let split = split_path(path, last);
            let name = store.locations().blob_name(&split);
            let full = blocks
                .committed(store, &name, &split, false)
                .await?
                .is_some_and(|c| c.blocks.len() >= self.split_after);
            if full && size > 0 {
                last += 1;
                start = expected_len;
                tracing::info!(file = %path, split = %split_path(path, last), "live file split: its block list is full");
            }
        }
        let split = split_path(path, last);
        match blocks
            .append(store, &split, expected_len - start, data)
            .await
        {
            Ok(len) => {
                let mut cache = self.cache();
                let sizes = cache.entry(path.clone()).or_default();
                sizes.resize(last + 1, 0);
                sizes[last] = len;
                Ok(start + len)
            }
            Err(LakeError::LengthMismatch { actual, .. }) => {
                self.cache().remove(path);
                Err(LakeError::LengthMismatch {
                    path: path.clone(),
                    expected: expected_len,
                    actual: start + actual,
                })
            }
            Err(e) => {
                self.cache().remove(path);
                Err(e)
            }
        }
    }

    /// [`lakelink_model::lake::Lake::read`] of a live file: its splits, one after the other.
    pub fn read(
        &self,
        runtime: &Arc<Runtime>,
        store: &BlobStore,
        blocks: &BlockLists,
        path: &LakePath,
        start: u64,
        end: Option<u64>,
    ) -> Result<Box<dyn BufRead + Send>, LakeError> {
        let sizes = runtime.block_on(self.sizes(store, blocks, path, false))?;
        if sizes.len() <= 1 {
            return Ok(Box::new(RangeReader::open(
                Arc::clone(runtime),
                store.clone(),
                path,
                start,
                end,
            )?));
        }
        let mut readers: Vec<Box<dyn BufRead + Send>> = Vec::new();
        let mut offset = 0;
        for (n, size) in sizes.iter().enumerate() {
            let is_last = n + 1 == sizes.len();
            let (from, until) = (offset, offset + size);
            offset = until;
            if !is_last && (start >= until || end.is_some_and(|e| e <= from)) {
                continue;
            }
            let local_start = start.saturating_sub(from);
            // The last split is read to its end as it is now, even if it grew.
            let local_end = match end {
                Some(e) => Some(e.saturating_sub(from)),
                None if is_last => None,
                None => Some(*size),
            };
            if is_last && end.is_some_and(|e| e <= from) {
                break;
            }
            readers.push(Box::new(RangeReader::open(
                Arc::clone(runtime),
                store.clone(),
                &split_path(path, n),
                local_start,
                local_end,
            )?));
        }
        // One reader after the other: std's chain is a BufRead when both sides are.
        Ok(readers
            .into_iter()
            .reduce(|first, next| Box::new(first.chain(next)))
            .unwrap_or_else(|| Box::new(io::empty())))
    }

    /// [`lakelink_model::lake::Lake::discard_tail`] of a live file: cut in the split that
    /// holds byte `len`, and remove the splits after it.
    pub async fn discard_tail(
        &self,
        store: &BlobStore,
        blocks: &BlockLists,
        path: &LakePath,
        len: u64,
    ) -> Result<(), LakeError> {
        let sizes = self.sizes(store, blocks, path, true).await?;
        let mut from = 0;
        for (n, size) in sizes.iter().enumerate() {
            if len <= from + size {
                blocks
                    .discard_tail(store, &split_path(path, n), len - from)
                    .await?;
                // Last first, as delete does: a crash midway leaves a shorter file, never a
                // gap that a later split could be read across.
                for later in (n + 1..sizes.len()).rev() {
                    self.delete_split(store, blocks, &split_path(path, later))
                        .await?;
                }
                self.cache().remove(path);
                return Ok(());
            }
            from += size;
        }
        Err(LakeError::LengthMismatch {
            path: path.clone(),
            expected: len,
            actual: from,
        })
    }

    /// [`lakelink_model::lake::Lake::delete`] of a live file: every split, last first (so a
    /// crash midway leaves a shorter file, never a gap).
    pub async fn delete(
        &self,
        store: &BlobStore,
        blocks: &BlockLists,
        path: &LakePath,
    ) -> Result<(), LakeError> {
        let sizes = self.sizes(store, blocks, path, true).await?;
        for n in (0..sizes.len().max(1)).rev() {
            self.delete_split(store, blocks, &split_path(path, n))
                .await?;
        }
        self.cache().remove(path);
        Ok(())
    }

    async fn delete_split(
        &self,
        store: &BlobStore,
        blocks: &BlockLists,
        split: &LakePath,
    ) -> Result<(), LakeError> {
        let name = store.locations().blob_name(split);
        blocks.forget(&name);
        match store.delete(&name).await {
            Ok(()) => Ok(()),
            Err(e) if is_blob_not_found(&e) => Ok(()),
            Err(e) => Err(lake_error("delete", split, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_named_after_their_append_log() {
        let p = LakePath::from_raw;
        assert_eq!(split_base("2024_001.csv").as_deref(), Some("2024.csv"));
        assert_eq!(
            split_base("2024-12_010.csv").as_deref(),
            Some("2024-12.csv")
        );
        assert_eq!(
            split_base("2024_000.csv"),
            None,
            "split 0 is the file itself"
        );
        assert_eq!(split_base("2024_01.csv"), None);
        assert_eq!(split_base("_001.csv"), None);
        assert_eq!(split_base("2024.csv"), None);
        assert_eq!(split_path(&p("a/2024.csv"), 0), p("a/2024.csv"));
        assert_eq!(split_path(&p("a/2024.csv"), 2), p("a/2024_002.csv"));
        assert_eq!(
            split_base(split_path(&p("a/2024.csv"), 2).file_name()).as_deref(),
            Some("2024.csv")
        );
    }
}
