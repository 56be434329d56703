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
    /// HTTPS with this certificate and key, and bearer tokens accepted (`--oauth basic`).
    tls: Option<(PathBuf, PathBuf)>,
}

/// A free loopback port.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port()
}

/// Waits until something listens on `port`, failing with what `child` logged if it exits.
fn wait_listening(child: &mut Child, port: u16, what: &str, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited with {status} on start: {log}");
        }
        assert!(
            Instant::now() < deadline,
            "timed out after 30 s waiting for {what} to listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Azurite {
    /// Starts Azurite on a free port and waits until it answers.
    pub fn start() -> Azurite {
        let mut azurite = Azurite {
            child: None,
            port: free_port(),
            data: tempfile::tempdir().expect("Azurite's folder"),
            tls: None,
        };
        azurite.resume();
        azurite
    }

    /// Starts Azurite over HTTPS with a certificate of `ca`, accepting bearer tokens.
    pub fn start_with_tokens(ca: &TestCa) -> Azurite {
        let mut azurite = Azurite {
            child: None,
            port: free_port(),
            data: tempfile::tempdir().expect("Azurite's folder"),
            tls: Some((ca.server_cert.clone(), ca.server_key.clone())),
        };
        azurite.resume();
        azurite
    }

    /// The account's blob endpoint, as `[lake] endpoint` takes it.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The loopback port its blob service listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts Azurite again on the same port and folder after [`Azurite::stop`].
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "Azurite is already running");
        let log_path = self.data.path().join("azurite.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new(azurite_bin());
        command.args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &self.port.to_string(),
            "--location",
            self.data.path().to_str().unwrap(),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ]);
        if let Some((cert, key)) = &self.tls {
            command
                .args(["--oauth", "basic", "--cert"])
                .arg(cert)
                .arg("--key")
                .arg(key);
        }
        let mut child = command
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start Azurite (is Node.js installed?)");
        wait_listening(&mut child, self.port, "Azurite", &log_path);
        // Azurite accepts connections a moment before it serves them (answering 404 meanwhile):
        // it says when it is ready.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("successfully listens")
        {
            assert!(
                Instant::now() < deadline,
                "timed out after 30 s waiting for Azurite to say it listens"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
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
        self.lake_section_via(&self.endpoint(), auth)
    }

    /// [`Azurite::lake_section`] reached at `endpoint` instead of Azurite's own (a proxy in
    /// front of it: Shared Key signatures do not cover the host).
    pub fn lake_section_via(&self, endpoint: &str, auth: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let filesystem = format!("lake{}", NEXT.fetch_add(1, Ordering::Relaxed));
        adls_lake_section(endpoint, &filesystem, auth)
    }

    /// [`Azurite::lake_section`] in filesystem `filesystem`.
    pub fn lake_section_in(&self, filesystem: &str, auth: &str) -> String {
        adls_lake_section(&self.endpoint(), filesystem, auth)
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
    /// SIGKILL: at the end of a test nothing of Azurite's needs saving, and a graceful stop
    /// can take seconds.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `[lake]` section of an ADLS lake in `filesystem` of the development account at
/// `endpoint`, with `auth` lines.
fn adls_lake_section(endpoint: &str, filesystem: &str, auth: &str) -> String {
    format!(
        "[lake]\nkind = \"adls\"\naccount = \"{ACCOUNT}\"\nfilesystem = \"{filesystem}\"\nendpoint = \"{endpoint}\"\n{auth}\n"
    )
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

/// A throwaway certificate authority and a certificate it signed for 127.0.0.1, made with the
/// `openssl` command in a temporary folder.
pub struct TestCa {
    /// The CA's certificate, for `SSL_CERT_FILE`.
    pub ca_cert: PathBuf,
    /// The server's certificate.
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    /// Makes the CA and the server certificate (valid for two days).
    pub fn generate() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("run openssl (install the openssl package)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec![
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=lakelink test CA",
        ];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&ca);
        let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(&csr);
        std::fs::write(
            at("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.pem",
            "-extfile",
            "server.ext",
        ]);
        TestCa {
            ca_cert: at("ca.pem"),
            server_cert: at("server.pem"),
            server_key: at("server.key"),
            _dir: dir,
        }
    }
}

/// A Microsoft Entra token endpoint on loopback (`tests/azurite/token-endpoint.js`) for one
/// application, served over HTTPS with a certificate of a [`TestCa`]; killed on drop.
pub struct TokenEndpoint {
    child: Child,
    port: u16,
}

impl TokenEndpoint {
    /// Starts it for application `client_id` with secret `secret`.
    pub fn start(ca: &TestCa, client_id: &str, secret: &str) -> TokenEndpoint {
        let port = free_port();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/azurite/token-endpoint.js");
        let log = ca._dir.path().join(format!("token-endpoint-{port}.log"));
        let mut child = Command::new("node")
            .arg(script)
            .arg(port.to_string())
            .arg(&ca.server_cert)
            .arg(&ca.server_key)
            .args([client_id, secret])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the token endpoint (is Node.js installed?)");
        wait_listening(&mut child, port, "the token endpoint", &log);
        TokenEndpoint { child, port }
    }

    /// Its authority host, for `AZURE_AUTHORITY_HOST`.
    pub fn authority_host(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Its managed identity endpoint, for `IDENTITY_ENDPOINT` (the App Service protocol; the
    /// secret goes in `IDENTITY_HEADER`).
    pub fn identity_endpoint(&self) -> String {
        format!("https://127.0.0.1:{}/msi/token", self.port)
    }
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
