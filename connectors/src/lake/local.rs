//! The local-folder lake: files on a filesystem, with durability from fsync (of the file, and
//! of the directory whenever a name appears, changes or goes away) and atomicity from
//! rename and hard links.

use lakelink_model::lake::{Lake, LakeEntry, LakeError, NewFile, WriterLock};
use lakelink_model::lake_path::LakePath;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes the temporary files of one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// `[lake] kind = "local"`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalLakeConfig {
    /// The lake folder.
    pub path: PathBuf,
    /// When set, model.json locations are this URL plus the path inside the lake (for a
    /// folder published elsewhere) instead of absolute file paths.
    pub base_url: Option<String>,
}

impl LocalLakeConfig {
    /// The config with a relative folder made relative to `base`.
    pub fn resolve_paths(self, base: &Path) -> LocalLakeConfig {
        LocalLakeConfig {
            path: crate::registry::relative_to(base, &self.path),
            ..self
        }
    }

    /// Every problem with the settings.
    pub fn problems(&self) -> Vec<String> {
        match &self.base_url {
            Some(url)
                if !(url.starts_with("https://")
                    || url.starts_with("http://")
                    || url.starts_with("file://")) =>
            {
                vec![format!(
                    "lake.base_url {url:?} must be an http(s):// or file:// URL"
                )]
            }
            _ => Vec::new(),
        }
    }
}

/// A lake in a local folder.
pub struct LocalLake {
    root: PathBuf,
    base_url: Option<String>,
}

impl LocalLake {
    /// Opens the lake at `root`, creating the folder if needed. `base_url`, when given,
    /// replaces the absolute file path in locations (for a folder published elsewhere).
    pub fn open(root: &Path, base_url: Option<String>) -> Result<LocalLake, LakeError> {
        fs::create_dir_all(root)
            .map_err(|e| LakeError::io("create the lake folder", root.display(), e))?;
        // Canonical, so that locations are absolute and path_of_location can recognise them.
        let root = root
            .canonicalize()
            .map_err(|e| LakeError::io("resolve the lake folder", root.display(), e))?;
        Ok(LocalLake {
            root,
            base_url: base_url.map(|u| u.trim_end_matches('/').to_string()),
        })
    }

    /// The lake's folder (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The filesystem path of `path`, joined segment by segment so the separator is the
    /// platform's; the empty path is the root.
    fn full(&self, path: &LakePath) -> PathBuf {
        let mut full = self.root.clone();
        full.extend(path.as_str().split('/').filter(|s| !s.is_empty()));
        full
    }

    /// Creates the missing folders above `file`, fsyncing the folder each one was made in so
    /// that they survive a power loss along with the file about to be put there.
    fn ensure_parent(&self, file: &Path, path: &LakePath) -> Result<(), LakeError> {
        let missing: Vec<&Path> = file
            .ancestors()
            .skip(1)
            .take_while(|d| !d.is_dir())
            .collect();
        for dir in missing.into_iter().rev() {
            if let Err(e) = fs::create_dir(dir)
                && e.kind() != io::ErrorKind::AlreadyExists
            {
                return Err(LakeError::io("create the folder of", path, e));
            }
            sync_parent(dir, path)?;
        }
        Ok(())
    }
}

/// fsyncs a directory. fsync of a file makes its content durable but not its name: the
/// entry lives in the directory, so a created, renamed or removed name survives a power loss
/// only once the directory itself is synced.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// fsyncs the folder holding `full` (the file system path of lake path `path`).
fn sync_parent(full: &Path, path: &LakePath) -> Result<(), LakeError> {
    match full.parent() {
        Some(parent) => sync_dir(parent).map_err(|e| LakeError::io("sync the folder of", path, e)),
        None => Ok(()),
    }
}

/// A temporary name beside `file`, unique within this process and across processes.
/// Marks the names of temporary files: `.<name>.tmp-<pid>-<n>`.
const TEMP_MARK: &str = ".tmp-";

fn temp_name(file: &Path) -> PathBuf {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    // The leading '.' hides it from `list` and from readers (LAKE_FORMAT §1).
    file.with_file_name(format!(".{name}{TEMP_MARK}{}-{n}", std::process::id()))
}

/// Creates a temporary file, refusing to reuse a name that some other write still holds.
fn create_temp(temp: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(temp)
}

impl Lake for LocalLake {
    fn describe(&self) -> String {
        format!("local lake {}", self.root.display())
    }

    fn location(&self, path: &LakePath) -> String {
        match &self.base_url {
            Some(base) => format!("{base}/{path}"),
            None => self.full(path).to_string_lossy().into_owned(),
        }
    }

    fn path_of_location(&self, location: &str) -> Option<LakePath> {
        let inside = match &self.base_url {
            Some(base) => location
                .strip_prefix(base.as_str())?
                .strip_prefix('/')?
                .to_string(),
            None => {
                let rest = Path::new(location).strip_prefix(&self.root).ok()?;
                let segments: Option<Vec<&str>> = rest
                    .components()
                    .map(|c| match c {
                        Component::Normal(s) => s.to_str(),
                        _ => None,
                    })
                    .collect();
                segments?.join("/")
            }
        };
        // `<root>/../x` starts with the root but is not in the lake.
        if inside.split('/').any(|s| s == "." || s == "..") {
            return None;
        }
        Some(LakePath::from_raw(inside))
    }

    fn size(&self, path: &LakePath) -> Result<Option<u64>, LakeError> {
        match fs::metadata(self.full(path)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LakeError::io("look at", path, e)),
        }
    }

    fn append(&self, path: &LakePath, expected_len: u64, data: &[u8]) -> Result<u64, LakeError> {
        let full = self.full(path);
        let mismatch = |actual| LakeError::LengthMismatch {
            path: path.clone(),
            expected: expected_len,
            actual,
        };
        let opening = |e| LakeError::io("open for appending", path, e);
        if expected_len == 0 {
            self.ensure_parent(&full, path)?;
        }
        // Only an append at length 0 may create the file. create_new, rather than a check
        // beforehand, says reliably whether this call made the name, which must then be
        // made durable too.
        let open = |create_new| {
            OpenOptions::new()
                .append(true)
                .create_new(create_new)
                .open(&full)
        };
        let (mut file, created) = match open(expected_len == 0) {
            Ok(file) => (file, expected_len == 0),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                (open(false).map_err(opening)?, false)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && expected_len > 0 => {
                return Err(mismatch(0));
            }
            Err(e) => return Err(opening(e)),
        };
        let actual = file
            .metadata()
            .map_err(|e| LakeError::io("look at", path, e))?
            .len();
        if actual != expected_len {
            return Err(mismatch(actual));
        }
        // fdatasync: the data and the new length are durable; the batch is committed when
        // the caller records this length.
        if let Err(e) = file.write_all(data).and_then(|()| file.sync_data()) {
            // Take back whatever part of the batch reached the file (a full disk), so that a
            // retry finds the recorded length instead of a mismatch it can never get past.
            let _ = file.set_len(expected_len);
            return Err(LakeError::io("append to", path, e));
        }
        if created {
            sync_parent(&full, path)?;
        }
        Ok(expected_len + data.len() as u64)
    }

    fn discard_tail(&self, path: &LakePath, len: u64) -> Result<(), LakeError> {
        let file = OpenOptions::new()
            .write(true)
            .open(self.full(path))
            .map_err(|e| LakeError::io("open for repair", path, e))?;
        file.set_len(len)
            .and_then(|()| file.sync_all())
            .map_err(|e| LakeError::io("cut the torn end of", path, e))
    }

    fn read(
        &self,
        path: &LakePath,
        start: u64,
        end: Option<u64>,
    ) -> Result<Box<dyn BufRead + Send>, LakeError> {
        let mut file = match File::open(self.full(path)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LakeError::NotFound { path: path.clone() });
            }
            Err(e) => return Err(LakeError::io("open", path, e)),
        };
        file.seek(SeekFrom::Start(start))
            .map_err(|e| LakeError::io("seek in", path, e))?;
        let limit = end.map_or(u64::MAX, |end| end.saturating_sub(start));
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            file.take(limit),
        )))
    }

    fn create(&self, path: &LakePath) -> Result<Box<dyn NewFile>, LakeError> {
        let full = self.full(path);
        // Fail early rather than after writing the whole file; commit checks again.
        if full.exists() {
            return Err(LakeError::AlreadyExists { path: path.clone() });
        }
        self.ensure_parent(&full, path)?;
        let temp = temp_name(&full);
        let file = create_temp(&temp).map_err(|e| LakeError::io("create", path, e))?;
        Ok(Box::new(LocalNewFile {
            path: path.clone(),
            target: full,
            temp,
            file,
        }))
    }

    fn replace(&self, path: &LakePath, data: &[u8]) -> Result<(), LakeError> {
        let full = self.full(path);
        self.ensure_parent(&full, path)?;
        let temp = temp_name(&full);
        let result = (|| {
            let mut file = create_temp(&temp)?;
            file.write_all(data)?;
            file.sync_all()?;
            // rename() swaps the name atomically: a reader opens the old file or the new one,
            // and the new one is whole because it was synced first.
            fs::rename(&temp, &full)?;
            sync_dir(full.parent().unwrap_or(&full))
        })();
        result.map_err(|e| {
            let _ = fs::remove_file(&temp);
            LakeError::io("replace", path, e)
        })
    }

    fn list(&self, dir: &LakePath) -> Result<Vec<LakeEntry>, LakeError> {
        let entries = match fs::read_dir(self.full(dir)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(LakeError::io("list", dir, e)),
        };
        let prefix = match dir.as_str() {
            "" => String::new(),
            d => format!("{d}/"),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| LakeError::io("list", dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let kind = entry
                .file_type()
                .map_err(|e| LakeError::io("list", dir, e))?;
            out.push(LakeEntry {
                path: LakePath::from_raw(format!("{prefix}{name}")),
                is_dir: kind.is_dir(),
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn delete(&self, path: &LakePath) -> Result<(), LakeError> {
        let full = self.full(path);
        match fs::remove_file(&full) {
            Ok(()) => sync_parent(&full, path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LakeError::io("delete", path, e)),
        }
    }

    fn remove_abandoned(&self, dir: &LakePath) -> Result<usize, LakeError> {
        let full = self.full(dir);
        let entries = match fs::read_dir(&full) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(LakeError::io("list", dir, e)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|e| LakeError::io("list", dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(TEMP_MARK) {
                fs::remove_file(entry.path())
                    .map_err(|e| LakeError::io("remove an abandoned temporary file in", dir, e))?;
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&full).map_err(|e| LakeError::io("sync", dir, e))?;
        }
        Ok(removed)
    }

    fn lock_writer(&self, holder: &str) -> Result<Box<dyn WriterLock>, LakeError> {
        let path = LakePath::writer_lock();
        let full = self.full(&path);
        self.ensure_parent(&full, &path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&full)
            .map_err(|e| LakeError::io("open the lock", &path, e))?;
        // An advisory lock held by the open file: the kernel drops it when the process dies,
        // so a crashed agent never leaves a stale lock behind (unlike a lock file's mere
        // existence).
        // `lakelink status` tests the lock by taking a shared one for an instant: a few
        // short retries tell that from a writer holding it.
        let mut tries = 0;
        let taken = loop {
            match file.try_lock() {
                Err(fs::TryLockError::WouldBlock) if tries < 10 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                taken => break taken,
            }
        };
        match taken {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(LakeError::Locked {
                    holder: recorded_holder(&mut file),
                    lock: full.display().to_string(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(LakeError::io("lock", &path, e)),
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(holder.as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(|e| LakeError::io("write the lock", &path, e))?;
        let identity = file
            .metadata()
            .map_err(|e| LakeError::io("read the lock's metadata", &path, e))?;
        Ok(Box::new(LocalWriterLock {
            identity: FileIdentity::of(&identity),
            holder: holder.to_string(),
            path: full,
            _file: file,
        }))
    }

    fn writer_holder(&self) -> Result<Option<String>, LakeError> {
        let path = LakePath::writer_lock();
        let full = self.full(&path);
        let mut file = match File::open(&full) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LakeError::io("open the lock", &path, e)),
        };
        // A shared lock is refused while a writer holds its exclusive one; taken, it is
        // dropped with the file at once.
        match file.try_lock_shared() {
            Ok(()) => Ok(None),
            Err(fs::TryLockError::WouldBlock) => Ok(Some(recorded_holder(&mut file))),
            Err(fs::TryLockError::Error(e)) => Err(LakeError::io("test the lock", &path, e)),
        }
    }
}

/// Who the lock file says holds it ("another process" when it says nothing).
fn recorded_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    match text.trim() {
        "" => "another process".to_string(),
        named => named.to_string(),
    }
}

/// A file being written under a temporary name until [`NewFile::commit`].
struct LocalNewFile {
    path: LakePath,
    target: PathBuf,
    temp: PathBuf,
    file: File,
}

impl Write for LocalNewFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl NewFile for LocalNewFile {
    fn commit(mut self: Box<Self>) -> Result<(), LakeError> {
        let path = &self.path;
        // The content must be durable before the name points at it, or a power loss could
        // publish an empty or partial file under its final name.
        self.file
            .flush()
            .and_then(|()| self.file.sync_all())
            .map_err(|e| LakeError::io("sync", path, e))?;
        // link() fails if the name exists, so the file appears whole under its name, or not
        // at all, and never replaces another: create-only, atomically. (rename() would
        // silently overwrite.)
        match fs::hard_link(&self.temp, &self.target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(LakeError::AlreadyExists { path: path.clone() });
            }
            Err(e) => return Err(LakeError::io("publish", path, e)),
        }
        // Remove the temporary name before syncing the folder, so both changes are durable.
        let _ = fs::remove_file(&self.temp);
        sync_parent(&self.target, path)
    }
}

impl Drop for LocalNewFile {
    fn drop(&mut self) {
        // Committed or abandoned, the temporary name goes (a no-op after a commit).
        let _ = fs::remove_file(&self.temp);
    }
}

/// Holds the lake's lock file open (and locked) for as long as it lives.
struct LocalWriterLock {
    /// The locked file's identity, to tell it from a file put at its name later.
    identity: FileIdentity,
    /// What this writer wrote into it (its pid and start time make it unique).
    holder: String,
    /// Where the lock file is.
    path: PathBuf,
    _file: File,
}

impl WriterLock for LocalWriterLock {
    fn verify(&self) -> Result<(), LakeError> {
        // The lock is the open file, not the name: if a person deletes `_lakelink/lock` (or the
        // whole lake), a second agent makes a new file there and locks that. The name must
        // still lead to the file this agent locked.
        let what = match fs::metadata(&self.path) {
            Ok(found) if FileIdentity::of(&found) == self.identity => return Ok(()),
            // Some filesystems (FUSE mounts without stable inodes, CIFS with noserverino) may
            // report another inode for the same file. It is this writer's file if it holds
            // what this writer wrote and is locked (a copy of it, say from a restored backup,
            // holds the same text but no one's lock).
            Ok(_) if self.holds_this_writers_lock() => return Ok(()),
            Ok(_) => "was replaced",
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match self.path.parent().and_then(Path::parent) {
                    Some(root) if !root.exists() => "was deleted along with the whole lake folder",
                    _ => "was deleted",
                }
            }
            Err(e) => {
                return Err(LakeError::io("check the lock", LakePath::writer_lock(), e));
            }
        };
        Err(LakeError::LockLost {
            lock: self.path.display().to_string(),
            what: what.to_string(),
        })
    }
}

impl LocalWriterLock {
    /// Whether the file at the lock's name holds this writer's text and an exclusive lock.
    fn holds_this_writers_lock(&self) -> bool {
        let Ok(mut file) = File::open(&self.path) else {
            return false;
        };
        let mut text = String::new();
        if file.read_to_string(&mut text).is_err() || text != self.holder {
            return false;
        }
        matches!(file.try_lock_shared(), Err(fs::TryLockError::WouldBlock))
    }
}

/// What tells one file from another at the same name: its device and inode.
#[derive(Debug, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
}

impl FileIdentity {
    #[cfg(unix)]
    fn of(metadata: &fs::Metadata) -> FileIdentity {
        use std::os::unix::fs::MetadataExt as _;
        FileIdentity {
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }

    /// Without inodes, only a deleted lock is noticed (every file that is there looks the
    /// same).
    #[cfg(not(unix))]
    fn of(_metadata: &fs::Metadata) -> FileIdentity {
        FileIdentity {
            device: 0,
            inode: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lake() -> (tempfile::TempDir, LocalLake) {
        let dir = tempfile::tempdir().unwrap();
        let lake = LocalLake::open(&dir.path().join("lake"), None).unwrap();
        (dir, lake)
    }

    fn p(path: &str) -> LakePath {
        LakePath::from_raw(path)
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    // Appends with their expected length and ranged reads are checked by the lake contract
    // suite (tests/lake_contract.rs), which runs on this lake; what follows is particular to
    // a folder on disk.

    #[test]
    fn a_write_in_progress_is_a_temporary_file_that_listings_skip_and_drop_removes() {
        let (_d, lake) = lake();
        lake.append(&p("a/1.csv"), 0, b"x\n").unwrap();
        let mut pending = lake.create(&p("a/2.csv")).unwrap();
        pending.write_all(b"row\n").unwrap();
        assert_eq!(
            names_in(&lake.root().join("a")).len(),
            2,
            "1.csv and a temporary file"
        );
        let listed: Vec<_> = lake
            .list(&p("a"))
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(listed, [p("a/1.csv")]);
        // Abandoned without a commit: dropping it takes its temporary file away.
        drop(pending);
        assert_eq!(lake.size(&p("a/2.csv")).unwrap(), None);
        assert_eq!(
            names_in(&lake.root().join("a")),
            ["1.csv"],
            "no temporary file left"
        );
    }

    #[test]
    fn a_lock_file_replaced_by_a_copy_of_itself_is_not_this_writers_lock() {
        let (_d, lake) = lake();
        let lock = lake.lock_writer("agent one").unwrap();
        lock.verify().unwrap();
        let path = lake.root().join("_lakelink").join("lock");
        // What a restore from a backup does: the same text, another file, no one's lock.
        let text = std::fs::read(&path).unwrap();
        std::fs::rename(&path, lake.root().join("_lakelink").join("lock.old")).unwrap();
        std::fs::write(&path, text).unwrap();
        match lock.verify() {
            Err(LakeError::LockLost { what, .. }) => assert_eq!(what, "was replaced"),
            other => panic!("expected the lock to be lost, got {other:?}"),
        }
        std::fs::remove_file(&path).unwrap();
        match lock.verify() {
            Err(LakeError::LockLost { what, .. }) => assert_eq!(what, "was deleted"),
            other => panic!("expected the lock to be lost, got {other:?}"),
        }
    }

    #[test]
    fn abandoned_temporary_files_are_removed() {
        let (_d, lake) = lake();
        let p = LakePath::from_raw("t/Snapshot/t-T1.csv");
        let mut f = lake.create(&p).unwrap();
        f.write_all(b"x").unwrap();
        // A crash: the process dies before commit or drop.
        std::mem::forget(f);
        let dir = LakePath::from_raw("t/Snapshot");
        assert!(
            lake.list(&dir).unwrap().is_empty(),
            "temporary files are not listed"
        );
        assert_eq!(lake.remove_abandoned(&dir).unwrap(), 1);
        assert_eq!(
            fs::read_dir(lake.root().join("t/Snapshot"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(
            lake.remove_abandoned(&LakePath::from_raw("missing"))
                .unwrap(),
            0
        );
    }

    #[test]
    fn locations_round_trip() {
        let (_d, lake) = lake();
        let f = p("t/Snapshot/t-T1.csv");
        let loc = lake.location(&f);
        assert_eq!(
            loc,
            lake.root()
                .join("t/Snapshot/t-T1.csv")
                .display()
                .to_string()
        );
        assert!(Path::new(&loc).is_absolute());
        // The lock a second writer is refused on is named by this path (the contract suite
        // checks the refusal).
        assert_eq!(
            lake.location(&LakePath::writer_lock()),
            lake.root().join("_lakelink/lock").display().to_string()
        );
        assert_eq!(lake.path_of_location(&loc), Some(f.clone()));
        let root = lake.root().display().to_string();
        assert_eq!(lake.path_of_location(&format!("{root}-other/x.csv")), None);
        assert_eq!(lake.path_of_location(&format!("{root}/../x.csv")), None);
        let base = Some("https://files.example.com/lake/".to_string());
        let published = LocalLake::open(lake.root(), base).unwrap();
        let loc = published.location(&f);
        assert_eq!(loc, "https://files.example.com/lake/t/Snapshot/t-T1.csv");
        assert_eq!(published.path_of_location(&loc), Some(f));
        for outside in ["https://elsewhere/x", "https://files.example.com/lake2/x"] {
            assert_eq!(published.path_of_location(outside), None);
        }
        assert_eq!(
            published.path_of_location("https://files.example.com/lake/../x"),
            None
        );
        assert_eq!(published.describe(), format!("local lake {root}"));
    }
}
