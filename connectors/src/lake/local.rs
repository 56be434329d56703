//! The local-folder lake: files on a filesystem, with durability from fsync (of the file, and
//! of the directory whenever a name appears, changes or goes away) and atomicity from
//! rename and hard links.

use lakelink_model::lake::{Lake, LakeEntry, LakeError, NewFile, WriterLock};
use lakelink_model::lake_path::LakePath;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes the temporary files of one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

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
        let root = root
            .canonicalize()
            .map_err(|e| LakeError::io("resolve the lake folder", root.display(), e))?;
        Ok(LocalLake {
            root,
            base_url: base_url.map(|u| u.trim_end_matches('/').to_string()),
        })
    }

    /// The lake's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full(&self, path: &LakePath) -> PathBuf {
        if path.as_str().is_empty() {
            self.root.clone()
        } else {
            self.root.join(path.as_str())
        }
    }

    /// Creates the folders above `file`, fsyncing each parent that gained an entry so the new
    /// folders survive a power loss.
    fn ensure_parent(&self, file: &Path, path: &LakePath) -> Result<(), LakeError> {
        let Some(parent) = file.parent() else {
            return Ok(());
        };
        if parent.is_dir() {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut dir = parent;
        while !dir.is_dir() {
            missing.push(dir.to_path_buf());
            match dir.parent() {
                Some(up) => dir = up,
                None => break,
            }
        }
        for d in missing.iter().rev() {
            match fs::create_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(LakeError::io("create the folder of", path, e)),
            }
            if let Some(up) = d.parent() {
                sync_dir(up).map_err(|e| LakeError::io("sync the folder of", path, e))?;
            }
        }
        Ok(())
    }
}

/// fsyncs a directory, which makes the names in it (created, renamed, removed) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn temp_name(file: &Path) -> PathBuf {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    file.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
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
            None => Path::new(location)
                .strip_prefix(&self.root)
                .ok()?
                .to_string_lossy()
                .into_owned(),
        };
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
        let created = !full.exists();
        if created {
            if expected_len != 0 {
                return Err(LakeError::LengthMismatch {
                    path: path.clone(),
                    expected: expected_len,
                    actual: 0,
                });
            }
            self.ensure_parent(&full, path)?;
        }
        let mut file = OpenOptions::new()
            .append(true)
            .create(created)
            .open(&full)
            .map_err(|e| LakeError::io("open for appending", path, e))?;
        let actual = file
            .metadata()
            .map_err(|e| LakeError::io("look at", path, e))?
            .len();
        if actual != expected_len {
            return Err(LakeError::LengthMismatch {
                path: path.clone(),
                expected: expected_len,
                actual,
            });
        }
        file.write_all(data)
            .map_err(|e| LakeError::io("append to", path, e))?;
        // fdatasync: the data and the new length are durable; the batch is committed when
        // the caller records this length.
        file.sync_data()
            .map_err(|e| LakeError::io("sync", path, e))?;
        if created && let Some(parent) = full.parent() {
            sync_dir(parent).map_err(|e| LakeError::io("sync the folder of", path, e))?;
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
        if full.exists() {
            return Err(LakeError::AlreadyExists { path: path.clone() });
        }
        self.ensure_parent(&full, path)?;
        let temp = temp_name(&full);
        let file = File::create(&temp).map_err(|e| LakeError::io("create", path, e))?;
        Ok(Box::new(LocalNewFile {
            path: path.clone(),
            target: full,
            temp,
            file: Some(file),
        }))
    }

    fn replace(&self, path: &LakePath, data: &[u8]) -> Result<(), LakeError> {
        let full = self.full(path);
        self.ensure_parent(&full, path)?;
        let temp = temp_name(&full);
        let result = (|| {
            let mut file = File::create(&temp)?;
            file.write_all(data)?;
            file.sync_all()?;
            // rename() swaps the name atomically: a reader opens the old file or the new one.
            fs::rename(&temp, &full)?;
            if let Some(parent) = full.parent() {
                sync_dir(parent)?;
            }
            Ok(())
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
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| LakeError::io("list", dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let is_dir = entry
                .file_type()
                .map_err(|e| LakeError::io("list", dir, e))?
                .is_dir();
            let path = if dir.as_str().is_empty() {
                name
            } else {
                format!("{}/{name}", dir.as_str())
            };
            out.push(LakeEntry {
                path: LakePath::from_raw(path),
                is_dir,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn delete(&self, path: &LakePath) -> Result<(), LakeError> {
        let full = self.full(path);
        match fs::remove_file(&full) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(LakeError::io("delete", path, e)),
        }
        if let Some(parent) = full.parent() {
            sync_dir(parent).map_err(|e| LakeError::io("sync the folder of", path, e))?;
        }
        Ok(())
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
        // so a crashed agent never leaves a stale lock behind.
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = text.trim();
                return Err(LakeError::Locked {
                    holder: if holder.is_empty() {
                        "another process".into()
                    } else {
                        holder.to_string()
                    },
                    lock: full.display().to_string(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(LakeError::io("lock", &path, e)),
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(holder.as_bytes()))
            .and_then(|()| file.sync_all());
        written.map_err(|e| LakeError::io("write the lock", &path, e))?;
        Ok(Box::new(LocalWriterLock { _file: file }))
    }
}

/// A file being written under a temporary name.
struct LocalNewFile {
    path: LakePath,
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
}

impl Write for LocalNewFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("file already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl NewFile for LocalNewFile {
    fn commit(mut self: Box<Self>) -> Result<(), LakeError> {
        let path = self.path.clone();
        let file = self.file.take().ok_or_else(|| {
            LakeError::io("commit", &path, io::Error::other("file already committed"))
        })?;
        file.sync_all()
            .map_err(|e| LakeError::io("sync", &path, e))?;
        drop(file);
        // link() fails if the name exists, so the file appears whole under its name, or not
        // at all, and never replaces another: create-only, atomically.
        match fs::hard_link(&self.temp, &self.target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(LakeError::AlreadyExists { path });
            }
            Err(e) => return Err(LakeError::io("publish", &path, e)),
        }
        let _ = fs::remove_file(&self.temp);
        if let Some(parent) = self.target.parent() {
            sync_dir(parent).map_err(|e| LakeError::io("sync the folder of", &path, e))?;
        }
        Ok(())
    }
}

impl Drop for LocalNewFile {
    fn drop(&mut self) {
        // Committed or abandoned, the temporary name goes.
        let _ = fs::remove_file(&self.temp);
    }
}

/// Holds the lake's lock file open (and locked) for as long as it lives.
struct LocalWriterLock {
    _file: File,
}

impl WriterLock for LocalWriterLock {}

#[cfg(test)]
mod tests {
    use super::*;

    fn lake() -> (tempfile::TempDir, LocalLake) {
        let dir = tempfile::tempdir().unwrap();
        let lake = LocalLake::open(&dir.path().join("lake"), None).unwrap();
        (dir, lake)
    }

    fn read_all(lake: &LocalLake, path: &LakePath, start: u64, end: Option<u64>) -> String {
        let mut s = String::new();
        lake.read(path, start, end)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    #[test]
    fn append_checks_the_expected_length() {
        let (_d, lake) = lake();
        let p = LakePath::from_raw("t/2024.csv");
        assert_eq!(lake.append(&p, 0, b"a\n").unwrap(), 2);
        assert_eq!(lake.append(&p, 2, b"b\n").unwrap(), 4);
        let err = lake.append(&p, 2, b"c\n").unwrap_err();
        assert!(
            matches!(
                err,
                LakeError::LengthMismatch {
                    expected: 2,
                    actual: 4,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(read_all(&lake, &p, 0, None), "a\nb\n");
        assert_eq!(read_all(&lake, &p, 2, Some(3)), "b");
        let missing = LakePath::from_raw("t/none.csv");
        assert!(matches!(
            lake.append(&missing, 5, b"x"),
            Err(LakeError::LengthMismatch { .. })
        ));
        assert!(matches!(
            lake.read(&missing, 0, None),
            Err(LakeError::NotFound { .. })
        ));
        lake.discard_tail(&p, 2).unwrap();
        assert_eq!(read_all(&lake, &p, 0, None), "a\n");
    }

    #[test]
    fn create_is_create_only_and_leaves_nothing_when_abandoned() {
        let (_d, lake) = lake();
        let p = LakePath::from_raw("t/Snapshot/t-T1.csv");
        let mut f = lake.create(&p).unwrap();
        f.write_all(b"row\n").unwrap();
        assert_eq!(lake.size(&p).unwrap(), None, "invisible until committed");
        f.commit().unwrap();
        assert_eq!(read_all(&lake, &p, 0, None), "row\n");
        assert!(matches!(
            lake.create(&p),
            Err(LakeError::AlreadyExists { .. })
        ));
        let q = LakePath::from_raw("t/Snapshot/t-T2.csv");
        let mut g = lake.create(&q).unwrap();
        g.write_all(b"x").unwrap();
        drop(g);
        assert_eq!(lake.size(&q).unwrap(), None);
        let names: Vec<_> = fs::read_dir(lake.root().join("t/Snapshot"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }

    #[test]
    fn replace_list_and_delete() {
        let (_d, lake) = lake();
        let m = LakePath::model();
        lake.replace(&m, b"{1}").unwrap();
        lake.replace(&m, b"{2}").unwrap();
        assert_eq!(read_all(&lake, &m, 0, None), "{2}");
        lake.append(&LakePath::from_raw("a/1.csv"), 0, b"x\n")
            .unwrap();
        let root: Vec<_> = lake.list(&LakePath::from_raw("")).unwrap();
        assert_eq!(
            root,
            [
                LakeEntry {
                    path: LakePath::from_raw("a"),
                    is_dir: true
                },
                LakeEntry {
                    path: LakePath::from_raw("model.json"),
                    is_dir: false
                },
            ]
        );
        assert!(lake.list(&LakePath::from_raw("none")).unwrap().is_empty());
        lake.delete(&m).unwrap();
        lake.delete(&m).unwrap();
        assert_eq!(lake.size(&m).unwrap(), None);
    }

    #[test]
    fn one_writer_at_a_time() {
        let (d, lake) = lake();
        let guard = lake.lock_writer("agent one").unwrap();
        let other = LocalLake::open(&d.path().join("lake"), None).unwrap();
        match other.lock_writer("agent two") {
            Err(LakeError::Locked { holder, .. }) => assert_eq!(holder, "agent one"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a second writer got the lock"),
        }
        drop(guard);
        other.lock_writer("agent two").unwrap();
    }

    #[test]
    fn locations_round_trip() {
        let (_d, lake) = lake();
        let p = LakePath::from_raw("t/Snapshot/t-T1.csv");
        let loc = lake.location(&p);
        assert!(loc.starts_with('/'));
        assert_eq!(lake.path_of_location(&loc), Some(p.clone()));
        let published =
            LocalLake::open(lake.root(), Some("https://files.example.com/lake/".into())).unwrap();
        let loc = published.location(&p);
        assert_eq!(loc, "https://files.example.com/lake/t/Snapshot/t-T1.csv");
        assert_eq!(published.path_of_location(&loc), Some(p));
        assert_eq!(published.path_of_location("https://elsewhere/x"), None);
    }
}
