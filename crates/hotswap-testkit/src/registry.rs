//! `OciRegistry`: a real OCI registry (Debian's `docker-registry`) on a
//! free loopback port, with storage of its own, for the tests that push
//! and pull plugins; it can be killed and resumed on the same port and
//! storage (a registry that is down), and is stopped when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::daemon::{http_get, Daemon};

/// How long a registry may take to answer its first request.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// Where Debian installs the registry.
const BINARY: &str = "docker-registry";

/// A registry this test started.
pub struct OciRegistry {
    daemon: Daemon,
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
        // Its log (a line per 404 at level `error`, which tests ask for on
        // purpose) goes to a file, shown if it fails to start.
        let log = storage.path().join("registry.log");
        let mut registry = OciRegistry {
            daemon: Daemon::new(BINARY, log),
            addr,
            storage,
        };
        registry.resume();
        Some(registry)
    }

    /// Kills it: pulls fail until [`OciRegistry::resume`].
    pub fn kill(&mut self) {
        self.daemon.kill();
    }

    /// Starts it (again) on the same port and storage, and waits until it
    /// answers.
    pub fn resume(&mut self) {
        let mut command = Command::new(BINARY);
        command
            .arg("serve")
            .arg(self.storage.path().join("config.yml"));
        // It has no other sign of being ready than answering `GET /v2/`.
        let addr = self.addr;
        let ready = move || http_get(addr, "/v2/").is_some_and(|a| a.starts_with("HTTP/1.1 200"));
        self.daemon.start(&mut command, READY_WITHIN, ready);
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
}

/// Filesystem storage in `dir`, deletes enabled, no auth, on `addr`: not
/// the package's own config (htpasswd on :5000).
fn config_yml(dir: &Path, addr: SocketAddr) -> String {
    format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
        dir.join("data").display()
    )
}
