//! The lake's writer lock on blob storage: a 60-second lease on `_lakelink/lock`, renewed by a
//! background thread while the guard lives and released when it is dropped. The blob holds
//! who has it, so a refused agent can name the holder; its first line records the holder's
//! host and process id, so that the lease of an agent that died on this same machine
//! (kill -9, a crash) is broken at once instead of making the restart wait up to a minute for
//! it to expire.

use super::blob_store::{BlobStore, PutCondition};
use super::errors::{chain_text, error_code, is_blob_not_found, lake_error};
use azure_core::Bytes;
use lakelink_model::lake::{LakeError, WriterLock};
use lakelink_model::lake_path::LakePath;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use tokio::runtime::Runtime;

/// The lease's length: the longest the service allows short of an infinite lease, which a
/// dead agent would hold forever.
const LEASE_SECONDS: i32 = 60;
/// How long a stopping agent tries to release the lease (retries included) before leaving it
/// to expire: stopping must not wait on an unreachable service for long.
const RELEASE_WITHIN: Duration = Duration::from_secs(15);
/// How often the lease is renewed: four chances before it would expire.
const RENEW_EVERY: Duration = Duration::from_secs(15);
/// Marks the line of the lock blob that says where its holder runs.
const PROCESS_MARK: &str = "lakelink-process ";

/// This machine's name, to tell a holder on this host from one elsewhere.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Whether process `pid` runs on this machine. Only Linux says so reliably without extra
/// dependencies; elsewhere every holder counts as alive and its lease is waited out.
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// The lock blob's content: the process line, then the holder as the caller named it.
fn lock_text(holder: &str) -> String {
    format!(
        "{PROCESS_MARK}{} {}\n{holder}",
        host_name(),
        std::process::id()
    )
}

/// The holder the lock blob names ("another process" when it names none, or cannot be read)
/// and whether it is a dead process of this machine.
async fn read_lock_text(store: &BlobStore, name: &str) -> (String, bool) {
    let text = store
        .download(name, 0, None)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let (named, dead_here) = parse_lock_text(&text);
    match named.is_empty() {
        true => ("another process".to_string(), dead_here),
        false => (named, dead_here),
    }
}

/// The holder line and whether the holder is a dead process of this machine.
fn parse_lock_text(text: &str) -> (String, bool) {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let Some(process) = first.strip_prefix(PROCESS_MARK) else {
        return (text.trim().to_string(), false);
    };
    let holder = lines.collect::<Vec<_>>().join(" ");
    let dead_here = match process.rsplit_once(' ') {
        Some((host, pid)) => {
            host == host_name()
                && pid
                    .parse::<u32>()
                    .is_ok_and(|pid| pid != std::process::id() && !process_alive(pid))
        }
        None => false,
    };
    (holder, dead_here)
}

/// Holds the lease; renews it until dropped.
pub struct BlobWriterLock {
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
    /// Set by the renewer when another writer took the lease.
    lost: Arc<AtomicBool>,
    /// The lock blob's location.
    location: String,
}

impl WriterLock for BlobWriterLock {
    fn verify(&self) -> Result<(), LakeError> {
        // A leased blob cannot be deleted or overwritten without its lease, so the lease
        // can only be lost by lapsing during an outage and being taken by another writer.
        if self.lost.load(Ordering::SeqCst) {
            return Err(LakeError::LockLost {
                lock: self.location.clone(),
                what: "lapsed and was taken by another writer".to_string(),
            });
        }
        Ok(())
    }
}

/// Who holds the lease on the lock blob now, from its lease state and content.
pub fn holder(runtime: &Runtime, store: &BlobStore) -> Result<Option<String>, LakeError> {
    let path = LakePath::writer_lock();
    let name = store.locations().blob_name(&path);
    runtime.block_on(async {
        let leased = match store.lease_state(&name).await {
            Ok(state) => state.as_deref() == Some("leased"),
            Err(e) if is_blob_not_found(&e) => return Ok(None),
            Err(e) => return Err(lake_error("read the lease of", &path, &e)),
        };
        if !leased {
            return Ok(None);
        }
        let (named, _) = read_lock_text(store, &name).await;
        Ok(Some(named))
    })
}

impl Drop for BlobWriterLock {
    fn drop(&mut self) {
        // Closing the channel wakes the renewer, which releases the lease and ends.
        self.stop.take();
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
    }
}

/// Takes the writer lock of the lake `store` serves, as `holder`. `lost` is set when the
/// lease is found taken by another writer after an outage, so that writes stop.
pub fn lock_writer(
    runtime: &Arc<Runtime>,
    store: &BlobStore,
    location: String,
    holder: &str,
    lost: Arc<AtomicBool>,
) -> Result<BlobWriterLock, LakeError> {
    let path = LakePath::writer_lock();
    let name = store.locations().blob_name(&path);
    let lease_id = azure_core::Uuid::new_v4().to_string();
    let text = Bytes::from(lock_text(holder));
    runtime.block_on(async {
        for attempt in 0..3 {
            // The holder is written before the lease is taken, so that an agent killed right
            // after taking it is still named (and found dead) by the next one. A leased blob
            // refuses the write: someone holds the lock.
            let taken = match store.put(&name, text.clone(), PutCondition::Always, None).await {
                Ok(_) => match store.acquire_lease(&name, LEASE_SECONDS, &lease_id).await {
                    Ok(()) => false,
                    Err(e) if error_code(&e) == Some("LeaseAlreadyPresent") => true,
                    Err(e) => return Err(lake_error("lease", &path, &e)),
                },
                Err(e) if error_code(&e) == Some("LeaseIdMissing") => true,
                Err(e) => return Err(lake_error("write the lock", &path, &e)),
            };
            if !taken {
                // Under the lease now; written again in case another candidate's write came
                // between this one's and its lease.
                return store
                    .put(&name, text.clone(), PutCondition::Always, Some(&lease_id))
                    .await
                    .map(|_| ())
                    .map_err(|e| lake_error("write the lock", &path, &e));
            }
            let (named, dead_here) = read_lock_text(store, &name).await;
            if dead_here && attempt < 2 {
                tracing::info!(holder = %named, "breaking the lease of a lakelink process of this machine that is gone");
                store
                    .break_lease(&name)
                    .await
                    .map_err(|e| lake_error("break the dead holder's lease on", &path, &e))?;
                continue;
            }
            return Err(LakeError::Locked {
                holder: named,
                lock: location.clone(),
            });
        }
        Err(LakeError::Locked {
            holder: "another process".to_string(),
            lock: location.clone(),
        })
    })?;

    let lost_flag = Arc::clone(&lost);
    let (stop, stopped) = mpsc::channel::<()>();
    let runtime = Arc::clone(runtime);
    let store = store.clone();
    let renewer = std::thread::Builder::new()
        .name("lakelink-lease".to_string())
        .spawn(move || {
            loop {
                match stopped.recv_timeout(RENEW_EVERY) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    // Dropped: release, so the next agent need not wait for expiry.
                    _ => {
                        // The timer is made inside the runtime, which it needs.
                        let released = runtime.block_on(async {
                            tokio::time::timeout(
                                RELEASE_WITHIN,
                                store.release_lease(&name, &lease_id),
                            )
                            .await
                        });
                        let failure = match released {
                            Ok(Ok(())) => None,
                            Ok(Err(e)) => Some(chain_text(&e)),
                            Err(_) => Some(format!("no answer within {} s", RELEASE_WITHIN.as_secs())),
                        };
                        if let Some(error) = failure {
                            tracing::warn!(
                                lock = %name, %error,
                                "could not release the lake's lease; it expires by itself within {LEASE_SECONDS} s"
                            );
                        }
                        return;
                    }
                }
                let renewed = runtime.block_on(async {
                    match store.renew_lease(&name, &lease_id).await {
                        Ok(()) => Ok(()),
                        // Expired during an outage: take it again with the same id if no one
                        // else has (then nothing was lost).
                        Err(_) => store.acquire_lease(&name, LEASE_SECONDS, &lease_id).await,
                    }
                });
                match renewed {
                    Ok(()) => {}
                    Err(e) if error_code(&e) == Some("LeaseAlreadyPresent") => {
                        tracing::error!("another writer took the lake's lease; this agent stops writing");
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %chain_text(&e), "could not renew the lake's lease; trying again");
                    }
                }
            }
        })
        .map_err(|e| LakeError::io("start the lease renewer for", &path, e))?;
    Ok(BlobWriterLock {
        stop: Some(stop),
        renewer: Some(renewer),
        lost: lost_flag,
        location,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_text_names_the_holder_and_where_it_runs() {
        let text = lock_text("lakelink pid 7 (config /a.toml)");
        let (holder, dead_here) = parse_lock_text(&text);
        assert_eq!(holder, "lakelink pid 7 (config /a.toml)");
        assert!(!dead_here, "this process is alive");
        let dead = format!("{PROCESS_MARK}{} {}\nold agent", host_name(), u32::MAX - 1);
        assert_eq!(
            parse_lock_text(&dead),
            ("old agent".to_string(), cfg!(target_os = "linux"))
        );
        let elsewhere = format!("{PROCESS_MARK}some-other-host {}\nremote", u32::MAX - 1);
        assert_eq!(parse_lock_text(&elsewhere), ("remote".to_string(), false));
        assert_eq!(parse_lock_text("plain"), ("plain".to_string(), false));
    }
}
