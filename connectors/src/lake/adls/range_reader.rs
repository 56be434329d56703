//! Reading a blob as a stream: ranged downloads of [`CHUNK_BYTES`] at a time, fetched as the
//! reader consumes them, so reading a large live file never holds it whole in memory.

use super::blob_store::BlobStore;
use super::errors::{is_blob_not_found, lake_error, status};
use azure_core::Bytes;
use azure_core::http::StatusCode;
use lakelink_model::lake::LakeError;
use lakelink_model::lake_path::LakePath;
use std::io::{self, BufRead, Read};
use std::sync::Arc;
use tokio::runtime::Runtime;

/// Bytes per ranged download.
const CHUNK_BYTES: u64 = 8 << 20;

/// Streams bytes `next..end` of a blob.
pub struct RangeReader {
    runtime: Arc<Runtime>,
    store: BlobStore,
    path: LakePath,
    name: String,
    next: u64,
    end: Option<u64>,
    chunk: Bytes,
    at: usize,
    done: bool,
}

impl RangeReader {
    /// Opens `path` for reading `start..end`, failing with [`LakeError::NotFound`] when it
    /// does not exist (the first chunk is fetched here, so that the error comes now).
    pub fn open(
        runtime: Arc<Runtime>,
        store: BlobStore,
        path: &LakePath,
        start: u64,
        end: Option<u64>,
    ) -> Result<RangeReader, LakeError> {
        let name = store.locations().blob_name(path);
        let mut reader = RangeReader {
            runtime,
            store,
            path: path.clone(),
            name,
            next: start,
            end,
            chunk: Bytes::new(),
            at: 0,
            done: false,
        };
        if end.is_some_and(|end| end <= start) {
            // An empty range: still say whether the file exists.
            reader.check_exists()?;
            reader.done = true;
        } else {
            reader.fetch()?;
        }
        Ok(reader)
    }

    /// Downloads the next chunk.
    fn fetch(&mut self) -> Result<(), LakeError> {
        let until = match self.end {
            Some(end) => end.min(self.next + CHUNK_BYTES),
            None => self.next + CHUNK_BYTES,
        };
        if until <= self.next {
            self.done = true;
            self.chunk = Bytes::new();
            self.at = 0;
            return Ok(());
        }
        let result = self
            .runtime
            .block_on(self.store.download(&self.name, self.next, Some(until)));
        match result {
            Ok(bytes) => {
                self.done = (bytes.len() as u64) < until - self.next;
                self.next += bytes.len() as u64;
                self.chunk = bytes;
                self.at = 0;
                Ok(())
            }
            Err(e) if is_blob_not_found(&e) => Err(LakeError::NotFound {
                path: self.path.clone(),
            }),
            // Starting at or past the end: nothing more to read.
            Err(e) if status(&e) == Some(StatusCode::RequestedRangeNotSatisfiable) => {
                self.done = true;
                self.chunk = Bytes::new();
                self.at = 0;
                Ok(())
            }
            Err(e) => Err(lake_error("read", &self.path, &e)),
        }
    }

    fn check_exists(&self) -> Result<(), LakeError> {
        match self.runtime.block_on(self.store.size(&self.name)) {
            Ok(_) => Ok(()),
            Err(e) if is_blob_not_found(&e) => Err(LakeError::NotFound {
                path: self.path.clone(),
            }),
            Err(e) => Err(lake_error("read", &self.path, &e)),
        }
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for RangeReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.at >= self.chunk.len() && !self.done {
            self.fetch().map_err(io::Error::other)?;
        }
        Ok(&self.chunk[self.at..])
    }

    fn consume(&mut self, amount: usize) {
        self.at = (self.at + amount).min(self.chunk.len());
    }
}
