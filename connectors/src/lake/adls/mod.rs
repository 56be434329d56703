//! The ADLS Gen2 lake, over the account's Blob endpoint (which hierarchical-namespace
//! accounts serve beside DFS) with Microsoft's official `azure_storage_blob` SDK.
//!
//! How each [`Lake`] guarantee holds on blob storage:
//! - `append`: a block list committed with If-Match on the ETag last committed
//!   ([`block_append`]); the commit is atomic, so a batch is visible whole or not at all.
//! - `create`: blocks staged, then committed with If-None-Match: * ([`new_file`]).
//! - `replace`: one Put Blob conditioned on the ETag last published (If-None-Match: * for a
//!   new file), atomic to readers.
//! - `remove_abandoned`: nothing to do: interrupted writes leave only uncommitted blocks,
//!   which no listing or read shows and the service discards.
//! - `discard_tail`: cuts at a block boundary; batches are whole blocks, so a committed file
//!   never ends in a torn row and recovery never needs to cut inside one.
//! - `lock_writer`: a renewed blob lease ([`writer_lease`]).
//!
//! The trait is synchronous; the lake owns a small Tokio runtime and blocks on the SDK.

pub mod blob_store;
pub mod block_append;
pub mod config;
pub mod credentials;
pub mod errors;
pub mod live_splits;
pub mod locations;
pub mod new_file;
pub mod range_reader;
pub mod shared_key;
pub mod writer_lease;

use azure_core::Bytes;
use azure_core::http::StatusCode;
use blob_store::{BlobStore, PutCondition};
use block_append::BlockLists;
use config::AdlsLakeConfig;
use credentials::Authorization;
use errors::{
    chain_text, is_blob_not_found, is_condition_failed, is_unknown_host, lake_error, status,
};
use lakelink_model::lake::{Lake, LakeEntry, LakeError, NewFile, WriterLock};
use lakelink_model::lake_path::LakePath;
use locations::BlobLocations;
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::runtime::Runtime;

/// A lake in an ADLS Gen2 filesystem (or any blob container).
pub struct AdlsLake {
    runtime: Arc<Runtime>,
    store: BlobStore,
    account: String,
    filesystem: String,
    block_lists: BlockLists,
    live: live_splits::LiveSplits,
    /// The ETag this lake last published of each replaced file (model.json).
    published: Mutex<HashMap<String, String>>,
    /// Set when another writer took the lease after an outage: every write is refused.
    lease_lost: Arc<AtomicBool>,
}

/// A one-line error about opening the lake, not transient: it needs a person.
fn open_error(what: impl std::fmt::Display, message: String) -> LakeError {
    LakeError::refused("open", what, message)
}

impl AdlsLake {
    /// Opens the lake `config` describes: reads the secret, checks that the account answers,
    /// the credential is accepted and the filesystem exists (creating it when missing and the
    /// credential may). A wrong account, filesystem or credential fails here with one line
    /// naming which; an unreachable service is a transient error.
    pub fn open(config: &AdlsLakeConfig) -> Result<AdlsLake, LakeError> {
        let locations = BlobLocations::new(
            &config.account,
            &config.filesystem,
            config.prefix(),
            config.endpoint.as_deref(),
        );
        let describe = format!("ADLS lake {}", locations.location(&LakePath::from_raw("")));
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(open_error(&describe, problems.join("; ")));
        }
        let authorization =
            Authorization::from_config(config).map_err(|m| open_error(&describe, m))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lakelink-adls")
            .enable_all()
            .build()
            .map_err(|e| LakeError::io("start the I/O runtime for", &describe, e))?;
        let lake = AdlsLake {
            runtime: Arc::new(runtime),
            store: BlobStore::new(locations, authorization),
            account: config.account.clone(),
            filesystem: config.filesystem.clone(),
            block_lists: BlockLists::default(),
            live: live_splits::LiveSplits::new(config.split_after()),
            published: Mutex::new(HashMap::new()),
            lease_lost: Arc::new(AtomicBool::new(false)),
        };
        lake.check_access(config, &describe)?;
        Ok(lake)
    }

    /// The probe of [`AdlsLake::open`].
    fn check_access(&self, config: &AdlsLakeConfig, describe: &str) -> Result<(), LakeError> {
        let auth = format!("lake.auth = \"{}\"", config.auth);
        let account = &self.account;
        let filesystem = &self.filesystem;
        let refused = |e: &azure_core::Error| {
            open_error(
                describe,
                format!(
                    "the storage account {account} refused the credential of {auth} ({}); check the secret and that it belongs to this account",
                    chain_text(e)
                ),
            )
        };
        match self.runtime.block_on(self.store.probe()) {
            Ok(()) => Ok(()),
            Err(e) if errors::error_code(&e) == Some("ContainerNotFound") => {
                match self.runtime.block_on(self.store.create_filesystem()) {
                    Ok(()) => {
                        tracing::info!(filesystem = %filesystem, "created the lake's filesystem");
                        Ok(())
                    }
                    Err(e) if errors::error_code(&e) == Some("ContainerAlreadyExists") => Ok(()),
                    Err(e) => Err(open_error(
                        describe,
                        format!(
                            "lake.filesystem {filesystem} does not exist in account {account}, and the credential of {auth} may not create it ({}); create it or grant the right",
                            chain_text(&e)
                        ),
                    )),
                }
            }
            Err(e)
                if matches!(
                    status(&e),
                    Some(StatusCode::Forbidden | StatusCode::Unauthorized)
                ) =>
            {
                Err(refused(&e))
            }
            Err(e) if status(&e).is_some() && !errors::is_retryable(&e) => Err(open_error(
                describe,
                format!(
                    "the storage account {account} refused the request ({}); check lake.account, lake.endpoint and lake.filesystem",
                    chain_text(&e)
                ),
            )),
            Err(e) if is_unknown_host(&e) => Err(open_error(
                describe,
                format!(
                    "lake.account {account}: no such storage account (its host name does not resolve); check lake.account and lake.endpoint"
                ),
            )),
            Err(e) if matches!(e.kind(), azure_core::error::ErrorKind::Credential) => {
                Err(open_error(
                    describe,
                    format!("{auth}: no token could be had: {}", chain_text(&e)),
                ))
            }
            // Unreachable for now (a network outage): worth trying again.
            Err(e) => Err(lake_error("reach", describe, &e)),
        }
    }

    /// Refuses writes once another writer holds the lease.
    fn check_lease(&self) -> Result<(), LakeError> {
        if self.lease_lost.load(Ordering::SeqCst) {
            return Err(LakeError::Locked {
                holder: "another agent (this agent's lease lapsed and was taken)".to_string(),
                lock: self.location(&LakePath::writer_lock()),
            });
        }
        Ok(())
    }

    fn name(&self, path: &LakePath) -> String {
        self.store.locations().blob_name(path)
    }
}

impl Lake for AdlsLake {
    fn describe(&self) -> String {
        format!(
            "ADLS lake {}",
            self.store.locations().location(&LakePath::from_raw(""))
        )
    }

    fn location(&self, path: &LakePath) -> String {
        self.store.locations().location(path)
    }

    fn path_of_location(&self, location: &str) -> Option<LakePath> {
        self.store.locations().path_of_location(location)
    }

    fn size(&self, path: &LakePath) -> Result<Option<u64>, LakeError> {
        if path.is_append_log() {
            return self
                .runtime
                .block_on(self.live.size(&self.store, &self.block_lists, path));
        }
        match self.runtime.block_on(self.store.size(&self.name(path))) {
            Ok(size) => Ok(Some(size)),
            Err(e) if is_blob_not_found(&e) => Ok(None),
            Err(e) => Err(lake_error("look at", path, &e)),
        }
    }

    fn append(&self, path: &LakePath, expected_len: u64, data: &[u8]) -> Result<u64, LakeError> {
        self.check_lease()?;
        if path.is_append_log() {
            return self.runtime.block_on(self.live.append(
                &self.store,
                &self.block_lists,
                path,
                expected_len,
                data,
            ));
        }
        self.runtime.block_on(
            self.block_lists
                .append(&self.store, path, expected_len, data),
        )
    }

    fn discard_tail(&self, path: &LakePath, len: u64) -> Result<(), LakeError> {
        self.check_lease()?;
        if path.is_append_log() {
            return self.runtime.block_on(self.live.discard_tail(
                &self.store,
                &self.block_lists,
                path,
                len,
            ));
        }
        self.runtime
            .block_on(self.block_lists.discard_tail(&self.store, path, len))
    }

    fn read(
        &self,
        path: &LakePath,
        start: u64,
        end: Option<u64>,
    ) -> Result<Box<dyn BufRead + Send>, LakeError> {
        if path.is_append_log() {
            return self.live.read(
                &self.runtime,
                &self.store,
                &self.block_lists,
                path,
                start,
                end,
            );
        }
        Ok(Box::new(range_reader::RangeReader::open(
            Arc::clone(&self.runtime),
            self.store.clone(),
            path,
            start,
            end,
        )?))
    }

    fn create(&self, path: &LakePath) -> Result<Box<dyn NewFile>, LakeError> {
        self.check_lease()?;
        // Fail early rather than after writing the whole file; commit checks again.
        if self.size(path)?.is_some() {
            return Err(LakeError::AlreadyExists { path: path.clone() });
        }
        Ok(Box::new(new_file::BlobNewFile::new(
            Arc::clone(&self.runtime),
            self.store.clone(),
            path.clone(),
        )))
    }

    fn replace(&self, path: &LakePath, data: &[u8]) -> Result<(), LakeError> {
        self.check_lease()?;
        let name = self.name(path);
        let known = self
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&name)
            .cloned();
        // On the first publish since start, the ETag found is the one to replace: this agent
        // holds the writer lease, so no one else publishes meanwhile.
        let etag = match known {
            Some(etag) => Some(etag),
            None => match self.runtime.block_on(self.store.committed_blocks(&name)) {
                Ok(c) if !c.etag.is_empty() => Some(c.etag),
                Ok(_) => None,
                Err(e) if is_blob_not_found(&e) => None,
                Err(e) => return Err(lake_error("look at", path, &e)),
            },
        };
        let body = Bytes::copy_from_slice(data);
        let condition = match &etag {
            Some(etag) => PutCondition::Matches(etag),
            None => PutCondition::Absent,
        };
        let result = self
            .runtime
            .block_on(self.store.put(&name, body, condition, None));
        let new_etag = match result {
            Ok(etag) => etag,
            Err(e) if is_condition_failed(&e) => {
                // The PUT may have landed with only its answer lost: then the file holds
                // exactly these bytes.
                let now = self.runtime.block_on(self.store.download(&name, 0, None));
                match now {
                    Ok(bytes) if bytes.as_ref() == data => self
                        .runtime
                        .block_on(self.store.committed_blocks(&name))
                        .map(|c| c.etag)
                        .map_err(|e| lake_error("look at", path, &e))?,
                    _ => {
                        self.published
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&name);
                        return Err(LakeError::refused(
                            "replace",
                            path,
                            "the file was changed by another writer since this agent last published it",
                        ));
                    }
                }
            }
            Err(e) => {
                // The PUT may have landed with its answer lost, and what is retried next may
                // be other bytes (a manifest that gained a partition meanwhile): the ETag this
                // agent knows is then stale. The next replace looks the current one up, as on
                // the first publish since start; the writer lease keeps other writers out.
                self.published
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&name);
                return Err(lake_error("replace", path, &e));
            }
        };
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, new_etag);
        Ok(())
    }

    fn list(&self, dir: &LakePath) -> Result<Vec<LakeEntry>, LakeError> {
        let prefix = self.store.locations().folder_prefix(dir);
        let blobs = self
            .runtime
            .block_on(self.store.list(&prefix))
            .map_err(|e| lake_error("list", dir, &e))?;
        let folder = match dir.as_str() {
            "" => String::new(),
            d => format!("{d}/"),
        };
        // Blob storage has no folders: a folder is the common prefix of the names below it.
        // (A hierarchical-namespace account also lists a folder as a blob of its own name;
        // the folder wins.)
        let mut entries: BTreeMap<String, bool> = BTreeMap::new();
        for blob in blobs {
            let Some(rest) = blob.name.strip_prefix(prefix.as_str()) else {
                continue;
            };
            let (first, is_dir) = match rest.split_once('/') {
                Some((first, _)) => (first, true),
                None => (rest, false),
            };
            if first.is_empty() || first.starts_with('.') {
                continue;
            }
            *entries.entry(first.to_string()).or_insert(is_dir) |= is_dir;
        }
        // An append log's later splits (`<partition>_001.csv`, ...) are part of it, not files
        // of their own: a split is never there without the log's first file.
        let splits: Vec<String> = entries
            .iter()
            .filter(|(name, is_dir)| {
                !**is_dir
                    && live_splits::split_base(name)
                        .is_some_and(|base| entries.get(&base) == Some(&false))
            })
            .map(|(name, _)| name.clone())
            .collect();
        for split in splits {
            entries.remove(&split);
        }
        Ok(entries
            .into_iter()
            .map(|(name, is_dir)| LakeEntry {
                path: LakePath::from_raw(format!("{folder}{name}")),
                is_dir,
            })
            .collect())
    }

    fn delete(&self, path: &LakePath) -> Result<(), LakeError> {
        self.check_lease()?;
        if path.is_append_log() {
            return self
                .runtime
                .block_on(self.live.delete(&self.store, &self.block_lists, path));
        }
        let name = self.name(path);
        self.block_lists.forget(&name);
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
        match self.runtime.block_on(self.store.delete(&name)) {
            Ok(()) => Ok(()),
            Err(e) if is_blob_not_found(&e) => Ok(()),
            Err(e) => Err(lake_error("delete", path, &e)),
        }
    }

    fn remove_abandoned(&self, _dir: &LakePath) -> Result<usize, LakeError> {
        // Interrupted writes leave only uncommitted blocks: invisible, and discarded by the
        // service (at the next commit of that blob, or after a week).
        Ok(0)
    }

    fn parts(&self, path: &LakePath) -> Vec<LakePath> {
        if path.is_append_log() {
            self.live.parts(path)
        } else {
            vec![path.clone()]
        }
    }

    fn lock_writer(&self, holder: &str) -> Result<Box<dyn WriterLock>, LakeError> {
        Ok(Box::new(writer_lease::lock_writer(
            &self.runtime,
            &self.store,
            self.location(&LakePath::writer_lock()),
            holder,
            Arc::clone(&self.lease_lost),
        )?))
    }

    fn writer_holder(&self) -> Result<Option<String>, LakeError> {
        writer_lease::holder(&self.runtime, &self.store)
    }
}
