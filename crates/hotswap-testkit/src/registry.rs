//! `OciRegistry`: a real OCI registry (Debian's `docker-registry`) on a
//! free loopback port, with storage of its own, for the tests that push
//! and pull plugins; it can be killed and resumed on the same port and
//! storage (a registry that is down), and is stopped when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a registry may take to answer its first request.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// Where Debian installs the registry.
const BINARY: &str = "docker-registry";

/// A registry this test started.
pub struct OciRegistry {
    child: Option<Child>,
    addr: SocketAddr,
    storage: tempfile::TempDir,
}

impl OciRegistry {
    /// Starts one, or says why it cannot (see [`crate::cannot_run_here`])
    /// and gives `None`: the binary is missing (scripts/setup installs it).
    pub fn start() -> Option<OciRegistry> {
        if Command::new(BINARY).arg("--version").output().is_err() {
            crate::cannot_run_here(format!(
                "{BINARY} is not installed (scripts/setup installs Debian's docker-registry)"
            ));
            return None;
        }
        let storage = tempfile::tempdir().expect("a temporary directory");
        // The port is free now; another process taking it before the
        // registry binds would make the registry exit, which `ready` sees.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port");
        let config = storage.path().join("config.yml");
        std::fs::write(&config, config_yml(storage.path(), addr)).expect("the registry's config");
        let mut registry = OciRegistry {
            child: None,
            addr,
            storage,
        };
        registry.resume();
        Some(registry)
    }

    /// Kills it: pulls fail until [`OciRegistry::resume`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port and storage, and waits until it
    /// answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the registry is already running");
        // Its log (a line per 404 at level `error`, which tests ask for on
        // purpose) goes to a file, shown if it fails to start.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.storage.path().join("registry.log"))
            .expect("a log file");
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(self.storage.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        self.child = Some(child);
        self.ready();
    }

    /// `HOST:PORT`, as a plugin reference names it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Where the registry keeps the blob `sha256:hex` on disk, for tests
    /// that tamper with what it serves.
    pub fn blob_path(&self, hex: &str) -> std::path::PathBuf {
        self.storage
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Waits until `GET /v2/` answers 200 (the registry has no other sign
    /// of being ready).
    fn ready(&mut self) {
        let until = Instant::now() + READY_WITHIN;
        loop {
            let child = self.child.as_mut().expect("the registry runs");
            if let Some(status) = child.try_wait().expect("the registry's status") {
                let log = std::fs::read_to_string(self.storage.path().join("registry.log"));
                panic!(
                    "docker-registry exited before it was ready ({status}): {}",
                    log.unwrap_or_default()
                );
            }
            if answers_v2(self.addr) {
                return;
            }
            assert!(
                Instant::now() < until,
                "docker-registry was not ready within {READY_WITHIN:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Filesystem storage in `dir`, deletes enabled, no auth, on `addr`: not
/// the package's own config (htpasswd on :5000).
fn config_yml(dir: &Path, addr: SocketAddr) -> String {
    format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
        dir.join("data").display()
    )
}

fn answers_v2(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}
