//! The [`Lake`] trait: what the engine needs from a place that stores files, and what each
//! operation guarantees.

use crate::lake_path::LakePath;
use std::io::{self, BufRead, Read, Write};

/// A store of files addressed by [`LakePath`].
///
/// # Contract
/// - [`Lake::append`] is durable when it returns, and a batch is visible whole or not at all
///   to a reader that honours the store's commit (a blob block list, a local fsync followed
///   by a recorded length). It appends only if the file is exactly `expected_len` bytes long,
///   so two writers can never interleave.
/// - [`Lake::create`] writes a new file that appears whole and durable at
///   [`NewFile::commit`], or fails with [`LakeError::AlreadyExists`] rather than overwrite.
/// - [`Lake::replace`] swaps a file's content atomically: a reader sees the old content or
///   the new, whole, and the new is durable when it returns.
/// - [`Lake::delete`] of a missing file succeeds (retention may repeat after a crash).
/// - What an interrupted `create` or `replace` leaves is invisible to [`Lake::list`] and
///   removed by [`Lake::remove_abandoned`].
/// - [`Lake::lock_writer`] makes the caller the lake's only writer until the returned guard
///   is dropped or the process dies.
/// - Errors say which path failed; [`LakeError::is_transient`] says whether trying again
///   later can succeed.
pub trait Lake: Send + Sync {
    /// One line naming the lake for messages, e.g. `local lake /data/lake`.
    fn describe(&self) -> String;

    /// The absolute location readers use for `path` (LAKE_FORMAT §3).
    fn location(&self, path: &LakePath) -> String;

    /// The lake path a location made by [`Lake::location`] points at.
    fn path_of_location(&self, location: &str) -> Option<LakePath>;

    /// The file's size, or `None` if it does not exist.
    fn size(&self, path: &LakePath) -> Result<Option<u64>, LakeError>;

    /// Appends `data` to the file (created if `expected_len` is 0 and it is missing) if its
    /// size is `expected_len`. Returns the new size.
    fn append(&self, path: &LakePath, expected_len: u64, data: &[u8]) -> Result<u64, LakeError>;

    /// Cuts the file back to `len` bytes. Only for recovery: removing the torn end of a write
    /// that a crash interrupted, which was never part of a committed batch.
    fn discard_tail(&self, path: &LakePath, len: u64) -> Result<(), LakeError>;

    /// Streams bytes `start..end` of the file (`end` = `None`: to its end).
    fn read(
        &self,
        path: &LakePath,
        start: u64,
        end: Option<u64>,
    ) -> Result<Box<dyn BufRead + Send>, LakeError>;

    /// The whole file, in memory: for the small files that are read whole (manifests, Delta
    /// commits and checkpoints, Parquet files of a bounded size).
    fn read_all(&self, path: &LakePath) -> Result<Vec<u8>, LakeError> {
        let mut bytes = Vec::new();
        self.read(path, 0, None)?
            .read_to_end(&mut bytes)
            .map_err(|e| LakeError::io("read", path, e))?;
        Ok(bytes)
    }

    /// Starts a new file that must not exist yet.
    fn create(&self, path: &LakePath) -> Result<Box<dyn NewFile>, LakeError>;

    /// Replaces (or creates) the file's whole content atomically.
    fn replace(&self, path: &LakePath, data: &[u8]) -> Result<(), LakeError>;

    /// The entries directly inside folder `dir` (an empty list when it does not exist).
    fn list(&self, dir: &LakePath) -> Result<Vec<LakeEntry>, LakeError>;

    /// Removes a file; succeeds if it is already gone.
    fn delete(&self, path: &LakePath) -> Result<(), LakeError>;

    /// Removes what writes interrupted by a crash left in folder `dir` (temporary files of
    /// [`Lake::create`] and [`Lake::replace`]); returns how many. Called on start, while the
    /// caller holds the writer lock, so no write of its own is in flight.
    fn remove_abandoned(&self, dir: &LakePath) -> Result<usize, LakeError>;

    /// Takes the lake's writer lock, recording `holder` for whoever is refused next.
    fn lock_writer(&self, holder: &str) -> Result<Box<dyn WriterLock>, LakeError>;

    /// Who holds the writer lock now, as the holder recorded itself, or `None` when no one
    /// does. Only looks: it never takes the lock, so `lakelink status` can ask beside a
    /// running agent (and learn that one holds the lake even when it does not answer).
    fn writer_holder(&self) -> Result<Option<String>, LakeError>;

    /// The files an append log ([`LakePath::is_append_log`]) is stored as, in order: the file
    /// itself, or, on a store that splits long logs (a blob's block limit), `<partition>.csv`,
    /// `<partition>_001.csv`, ... as far as this lake has seen them. Every other method treats
    /// an append log as one file, the splits' concatenation, and lists it once. A lake tells
    /// append logs from other files by the path it is handed ([`LakePath::is_append_log`]),
    /// never by the file's name; only in a listing does it know a later split by the name it
    /// gave it, beside its log's first file.
    fn parts(&self, path: &LakePath) -> Vec<LakePath> {
        vec![path.clone()]
    }
}

/// One entry of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeEntry {
    /// Its path.
    pub path: LakePath,
    /// Whether it is a folder.
    pub is_dir: bool,
}

/// A file being written by [`Lake::create`]; nothing is visible until [`NewFile::commit`].
pub trait NewFile: Write + Send {
    /// Makes the file durable and visible under its name, failing with
    /// [`LakeError::AlreadyExists`] if another file took the name meanwhile.
    fn commit(self: Box<Self>) -> Result<(), LakeError>;
}

/// Proof of being the lake's only writer; released when dropped.
pub trait WriterLock: Send {
    /// Checks that the lock is still this writer's: a lock a person deleted or replaced by
    /// hand, or a lease another writer took, fails with [`LakeError::LockLost`], and the
    /// caller must stop writing. Called before every batch, so that the one-writer rule
    /// never rests on a file staying where it was.
    fn verify(&self) -> Result<(), LakeError>;
}

/// What a lake operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LakeError {
    /// An append found the file at another length than the writer recorded: something
    /// else wrote to it, or it was damaged.
    #[error(
        "{path}: the writer recorded {expected} bytes but the file holds {actual}; another process wrote to the lake or the file was damaged"
    )]
    LengthMismatch {
        /// The file.
        path: LakePath,
        /// The length the writer recorded.
        expected: u64,
        /// The length found.
        actual: u64,
    },
    /// A create-only write found the file already there.
    #[error("{path} already exists and lakelink never overwrites a published file")]
    AlreadyExists {
        /// The file.
        path: LakePath,
    },
    /// The file is not there.
    #[error("{path} does not exist in the lake")]
    NotFound {
        /// The file.
        path: LakePath,
    },
    /// Another writer holds the lake.
    #[error(
        "the lake is in use by {holder} (lock {lock}); stop that agent first, or point this one at another lake"
    )]
    Locked {
        /// Who holds it, as it recorded itself.
        holder: String,
        /// The lock's location.
        lock: String,
    },
    /// The writer lock stopped being this writer's while it wrote.
    #[error(
        "the lake's writer lock {lock} {what} while this agent held it, so another agent may be writing to the lake; this agent stops writing. Make sure no other agent runs on this lake, then start this one again"
    )]
    LockLost {
        /// The lock's location.
        lock: String,
        /// What happened to it (`was deleted`, `was replaced`, `was taken by another writer`).
        what: String,
    },
    /// The store failed in a way that can pass: a full disk, a dropped connection,
    /// throttling, a permission a person may fix meanwhile. Worth trying again.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// To which file.
        path: String,
        /// The store's error.
        #[source]
        source: io::Error,
    },
    /// The store refused in a way that trying again cannot change (a bad request, data that
    /// is not what was expected, an unsupported operation, a refused credential, a missing
    /// filesystem): it needs a person.
    #[error("{operation} {path}: {reason}")]
    Refused {
        /// What was being done.
        operation: &'static str,
        /// To which file.
        path: String,
        /// What the store said, and what to do.
        reason: String,
    },
}

impl LakeError {
    /// An I/O failure of `operation` on `path`: [`LakeError::Refused`] for what the
    /// operating system says no retry can change (invalid input or data, an unsupported
    /// operation), else [`LakeError::Io`].
    pub fn io(operation: &'static str, path: impl ToString, source: io::Error) -> LakeError {
        if matches!(
            source.kind(),
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::Unsupported
        ) {
            return LakeError::refused(operation, path, source.to_string());
        }
        LakeError::Io {
            operation,
            path: path.to_string(),
            source,
        }
    }

    /// A refusal of `operation` on `path` that needs a person.
    pub fn refused(
        operation: &'static str,
        path: impl ToString,
        reason: impl ToString,
    ) -> LakeError {
        LakeError::Refused {
            operation,
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Whether trying again later can succeed: [`LakeError::Io`] only. The variant says so,
    /// decided where the error is made, by the lake that knows its store.
    pub fn is_transient(&self) -> bool {
        matches!(self, LakeError::Io { .. })
    }
}
