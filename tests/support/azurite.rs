//! Azurite, Microsoft's storage emulator, run for the tests: its blob service on a free
//! loopback port with its data in a temporary folder, started per test, killed on drop, and
//! stoppable and restartable on the same port and folder (to play an outage).
//!
//! Installed by `npm ci --prefix tests/azurite` (pinned by `tests/azurite/package-lock.json`);
//! `.ci/run` does it. A test that cannot find it fails and says so.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Azurite's well-known development account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development account key (public, documented by Microsoft).
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The `azurite-blob` program the lock file pins.
fn azurite_bin() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = root.join("tests/azurite/node_modules/.bin/azurite-blob");
    assert!(
        bin.exists(),
        "Azurite is not installed ({} is missing): run `npm ci --prefix tests/azurite` in the repository (Node 20 or later)",
        bin.display()
    );
    bin
}

/// A running Azurite blob service.
pub struct Azurite {
    child: Option<Child>,
    port: u16,
    data: tempfile::TempDir,
}

impl Azurite {
    /// Starts Azurite on a free port and waits until it answers.
    pub fn start() -> Azurite {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().unwrap().port()
        };
        let mut azurite = Azurite {
            child: None,
            port,
            data: tempfile::tempdir().expect("Azurite's folder"),
        };
        azurite.resume();
        azurite
    }

    /// The account's blob endpoint, as `[lake] endpoint` takes it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// Starts Azurite again on the same port and folder after [`Azurite::stop`].
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "Azurite is already running");
        let log = std::fs::File::create(self.data.path().join("azurite.log")).unwrap();
        let child = Command::new(azurite_bin())
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &self.port.to_string(),
                "--location",
                self.data.path().to_str().unwrap(),
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start Azurite (is Node.js installed?)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = std::fs::read_to_string(self.data.path().join("azurite.log"))
                    .unwrap_or_default();
                panic!("Azurite exited with {status} on start: {log}");
            }
            assert!(
                Instant::now() < deadline,
                "timed out after 30 s waiting for Azurite to listen on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops Azurite; its data stays. SIGTERM, so that it saves its metadata first (SIGKILL
    /// would lose the emulator's last writes, which a real service never does); a client
    /// sees connections refused either way.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The `[lake]` section of an ADLS lake in a new filesystem of this Azurite, with `auth`
    /// lines (e.g. from [`Azurite::account_key_auth`]).
    pub fn lake_section(&self, auth: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let filesystem = format!("lake{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.lake_section_in(&filesystem, auth)
    }

    /// [`Azurite::lake_section`] in filesystem `filesystem`.
    pub fn lake_section_in(&self, filesystem: &str, auth: &str) -> String {
        format!(
            "[lake]\nkind = \"adls\"\naccount = \"{ACCOUNT}\"\nfilesystem = \"{filesystem}\"\nendpoint = \"{}\"\n{auth}\n",
            self.endpoint()
        )
    }

    /// `auth` lines for the account key, read from a file.
    pub fn account_key_auth(&self) -> String {
        format!(
            "auth = \"account_key\"\naccount_key_file = \"{}\"",
            self.key_file().display()
        )
    }

    /// An account SAS for the blob service (every permission, valid for years, on resource
    /// `types`: `s`ervice, `c`ontainer, `o`bject) signed with `key`, as the portal's "Shared
    /// access signature" page makes one.
    pub fn account_sas(&self, key: &str, types: &str) -> String {
        let (permissions, services, expiry, version) =
            ("rwdlacup", "b", "2035-01-01T00:00:00Z", "2021-08-06");
        // The account SAS string-to-sign of versions 2020-12-06 and later.
        let string_to_sign = format!(
            "{ACCOUNT}\n{permissions}\n{services}\n{types}\n\n{expiry}\n\nhttp\n{version}\n\n"
        );
        format!(
            "sv={version}&ss={services}&srt={types}&sp={permissions}&se={}&spr=http&sig={}",
            expiry.replace(':', "%3A"),
            sign(key, &string_to_sign)
        )
    }

    /// A service SAS for filesystem `filesystem` alone (read, add, create, write, delete,
    /// list), signed with the account key: it may not create the filesystem.
    pub fn filesystem_sas(&self, filesystem: &str) -> String {
        let (permissions, expiry, version) = ("racwdl", "2035-01-01T00:00:00Z", "2021-08-06");
        // The service SAS string-to-sign of versions 2020-12-06 and later.
        let string_to_sign = format!(
            "{permissions}\n\n{expiry}\n/blob/{ACCOUNT}/{filesystem}\n\n\nhttp\n{version}\nc\n\n\n\n\n\n\n"
        );
        format!(
            "sv={version}&sr=c&sp={permissions}&se={}&spr=http&sig={}",
            expiry.replace(':', "%3A"),
            sign(ACCOUNT_KEY, &string_to_sign)
        )
    }

    /// A file holding the account key, for `account_key_file`.
    pub fn key_file(&self) -> PathBuf {
        let path = self.data.path().join("account-key");
        std::fs::write(&path, ACCOUNT_KEY).unwrap();
        path
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The base64 HMAC-SHA256 of `text` under base64 `key`, percent-encoded for a query.
fn sign(key: &str, text: &str) -> String {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(text.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    signature
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// Points `ws` at a new filesystem of `azurite`, authorized by the account key.
pub fn use_azurite(ws: &mut super::Workspace, azurite: &Azurite) {
    ws.lake_section = Some(azurite.lake_section(&azurite.account_key_auth()));
}
