//! `Daemon`: a server process a test starts on loopback (etcd, a
//! registry): spawned with its log in a file, waited for until a probe says
//! it serves, killed when asked or when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One server process, running or not.
pub(crate) struct Daemon {
    name: &'static str,
    log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// `name` (for messages), logging to `log` (appended to, run after run).
    pub(crate) fn new(name: &'static str, log: PathBuf) -> Daemon {
        Daemon {
            name,
            log,
            child: None,
        }
    }

    /// Spawns `command` with stderr to the log, and waits up to `within`
    /// until `ready` says it serves. Panics, showing the log, if it exits
    /// first or takes longer.
    pub(crate) fn start(
        &mut self,
        command: &mut Command,
        within: Duration,
        ready: impl Fn() -> bool,
    ) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("a log file");
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", self.name));
        let child = self.child.insert(child);
        let until = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("the process's status") {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("{} exited before it was ready ({status}): {log}", self.name);
            }
            if ready() {
                return;
            }
            assert!(
                Instant::now() < until,
                "{} was not ready within {within:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it (as a crash would) and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The whole answer to `GET path` at `addr`, or `None` if nothing answered.
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    Some(answer)
}
