//! `Etcd`: a real etcd (Debian's `etcd-server`) on free loopback ports,
//! with a data dir of its own, for the fleet tests; it can be stopped and
//! started again on the same ports and data (etcd restarted), and is
//! stopped when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to answer `/health` after it starts.
const READY_WITHIN: Duration = Duration::from_secs(30);

const BINARY: &str = "etcd";

/// An etcd this test started.
pub struct Etcd {
    child: Option<Child>,
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
        let mut etcd = Etcd {
            child: None,
            client: free_port(),
            peer: free_port(),
            dir: tempfile::tempdir().expect("a temporary directory"),
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
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and data, and waits until it is
    /// healthy.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "etcd is already running");
        let url = |a: SocketAddr| format!("http://{a}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("a log file");
        let child = Command::new(BINARY)
            .arg("--name=default")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={}", url(self.client)))
            .arg(format!("--advertise-client-urls={}", url(self.client)))
            .arg(format!("--listen-peer-urls={}", url(self.peer)))
            .arg(format!("--initial-advertise-peer-urls={}", url(self.peer)))
            .arg(format!("--initial-cluster=default={}", url(self.peer)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd starts");
        self.child = Some(child);
        self.ready();
    }

    /// Waits until `GET /health` says `"health":"true"`.
    fn ready(&mut self) {
        let until = Instant::now() + READY_WITHIN;
        loop {
            let child = self.child.as_mut().expect("etcd runs");
            if let Some(status) = child.try_wait().expect("etcd's status") {
                let log = std::fs::read_to_string(self.dir.path().join("etcd.log"));
                panic!(
                    "etcd exited before it was ready ({status}): {}",
                    log.unwrap_or_default()
                );
            }
            if healthy(self.client) {
                return;
            }
            assert!(
                Instant::now() < until,
                "etcd was not healthy within {READY_WITHIN:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port free now. Another process taking it before etcd binds makes
/// etcd exit, which `ready` reports.
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.contains("\"health\":\"true\"")
}
