//! `Etcd`: a real etcd (Debian's `etcd-server`) on free loopback ports,
//! with a data dir of its own, for the fleet tests; it can be stopped and
//! started again on the same ports and data (etcd restarted), and is
//! stopped when dropped.

use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::Duration;

use crate::daemon::{http_get, Daemon};

/// How long etcd may take to answer `/health` after it starts.
const READY_WITHIN: Duration = Duration::from_secs(30);

const BINARY: &str = "etcd";

/// An etcd this test started.
pub struct Etcd {
    daemon: Daemon,
    client: SocketAddr,
    peer: SocketAddr,
    dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts one, or says why it cannot (see [`crate::cannot_run_here`])
    /// and gives `None`: the binary is missing (scripts/setup installs it).
    pub fn start() -> Option<Etcd> {
        if Command::new(BINARY).arg("--version").output().is_err() {
            crate::cannot_run_here(format!(
                "{BINARY} is not installed (scripts/setup installs Debian's etcd-server)"
            ));
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut etcd = Etcd {
            daemon: Daemon::new(BINARY, dir.path().join("etcd.log")),
            client: free_port(),
            peer: free_port(),
            dir,
        };
        etcd.resume();
        Some(etcd)
    }

    /// `HOST:PORT` of its client URL, as `--fleet etcd://HOST:PORT` names it.
    pub fn endpoint(&self) -> String {
        self.client.to_string()
    }

    /// Kills it (as a crash would): clients see it gone.
    pub fn kill(&mut self) {
        self.daemon.kill();
    }

    /// Starts it again on the same ports and data, and waits until it is
    /// healthy.
    pub fn resume(&mut self) {
        let url = |a: SocketAddr| format!("http://{a}");
        let mut command = Command::new(BINARY);
        command
            .arg("--name=default")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={}", url(self.client)))
            .arg(format!("--advertise-client-urls={}", url(self.client)))
            .arg(format!("--listen-peer-urls={}", url(self.peer)))
            .arg(format!("--initial-advertise-peer-urls={}", url(self.peer)))
            .arg(format!("--initial-cluster=default={}", url(self.peer)));
        let client = self.client;
        let ready = move || {
            http_get(client, "/health")
                .is_some_and(|a| a.starts_with("HTTP/1.1 200") && a.contains("\"health\":\"true\""))
        };
        self.daemon.start(&mut command, READY_WITHIN, ready);
    }
}

/// A port free now. Another process taking it before etcd binds makes
/// etcd exit, which `ready` reports.
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}
