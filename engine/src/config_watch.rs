//! Watching the config file while the agent runs. The folder is watched rather than the file,
//! so that editors which save by writing a new file and renaming it over the old one are seen
//! too; events are debounced so that one save (often several writes) is one reload.

use notify::{RecursiveMode, Watcher};
use std::ffi::OsString;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the file must stay quiet before a change is acted on.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Reports settled changes of one file.
pub struct ConfigWatcher {
    _watcher: notify::RecommendedWatcher,
    events: mpsc::Receiver<()>,
    changed_at: Option<Instant>,
}

impl ConfigWatcher {
    /// Starts watching `path`.
    pub fn start(path: &Path) -> notify::Result<ConfigWatcher> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => Path::new(".").to_path_buf(),
        };
        let name: Option<OsString> = path.file_name().map(|n| n.to_os_string());
        let (tx, events) = mpsc::channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Opening and reading the file (the agent's own reload, `lakelink status`, an
                // editor, a backup) change nothing: only writes, creates, renames and removals
                // are changes.
                if let Ok(event) = event
                    && !matches!(event.kind, notify::EventKind::Access(_))
                    && event
                        .paths
                        .iter()
                        .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
                {
                    let _ = tx.send(());
                }
            })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(ConfigWatcher {
            _watcher: watcher,
            events,
            changed_at: None,
        })
    }

    /// Whether the file changed and has since been quiet for the debounce time. Each settled
    /// change is reported once.
    pub fn settled_change(&mut self) -> bool {
        while self.events.try_recv().is_ok() {
            self.changed_at = Some(Instant::now());
        }
        match self.changed_at {
            Some(at) if at.elapsed() >= DEBOUNCE => {
                self.changed_at = None;
                true
            }
            _ => false,
        }
    }
}
