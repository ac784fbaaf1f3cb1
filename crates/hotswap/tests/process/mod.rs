//! A `hotswap serve` whose process changes under the test: found through
//! its pid file, its stderr read line by line, and stopped at the end
//! whichever generation is serving by then.
//!
//! Shared by several test binaries, each using part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{kill_process, pidfd_open, Pid, PidfdFlags, Signal};

pub struct Serve {
    pub data: SocketAddr,
    pub admin: SocketAddr,
    pub pid_file: PathBuf,
    /// Every line any generation wrote to stderr (they share it).
    pub stderr: Mutex<Receiver<String>>,
}

/// The data plane's and the admin API's addresses, from the line
/// `hotswap serve` prints first.
pub fn addresses(line: &str) -> (SocketAddr, SocketAddr) {
    let addrs: Vec<SocketAddr> = line
        .split("http://")
        .skip(1)
        .map(|s| s.split([',', ' ', '\n']).next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(addrs.len(), 2, "unexpected first line: {line}");
    (addrs[0], addrs[1])
}

pub fn hotswap() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hotswap"));
    c.env("RUST_LOG", "off")
        .env_remove("HOTSWAP_TOKEN")
        .env_remove("HOTSWAP_ADMIN");
    c
}

impl Serve {
    /// Starts `hotswap serve ARGS --pid-file DIR/pid` on free ports.
    pub fn start(dir: &Path, args: &[&str]) -> Serve {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Serve::spawn(dir, &all)
    }

    /// Starts it with the data plane's address from `config` alone.
    pub fn start_with_config(dir: &Path, config: &Path) -> Serve {
        Serve::spawn(dir, &["--config", config.to_str().unwrap()])
    }

    fn spawn(dir: &Path, args: &[&str]) -> Serve {
        let pid_file = dir.join("hotswap.pid");
        let mut child = hotswap()
            .args(["serve", "--admin", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.join("store"))
            .arg("--pid-file")
            .arg(&pid_file)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        // Later generations print their own line here: keep the pipe drained.
        std::thread::spawn(move || for _ in stdout.lines() {});
        let (tx, stderr) = channel();
        let err = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        // The first process is reaped by us when it exits; later ones by init.
        std::thread::spawn(move || child.wait());
        let (data, admin) = addresses(&line);
        Serve {
            data,
            admin,
            pid_file,
            stderr: Mutex::new(stderr),
        }
    }

    /// The pid the pid file names now.
    pub fn pid(&self) -> u32 {
        std::fs::read_to_string(&self.pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// SIGKILL: no drain, no flush. Returns once the process is gone.
    pub fn kill(&self) {
        let raw = self.pid();
        let _ = kill_process(Pid::from_raw(raw as i32).unwrap(), Signal::KILL);
        assert!(exits_within(raw, 10), "pid {raw} outlived SIGKILL");
    }

    /// Waits (up to a minute) for a stderr line containing `text`, and returns it.
    pub fn wait_for_line(&self, text: &str) -> String {
        loop {
            match self
                .stderr
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(60))
            {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(e) => panic!("no stderr line with `{text}`: {e}"),
            }
        }
    }

    /// Runs a `hotswap` client subcommand against it.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        hotswap()
            .args(args)
            .env("HOTSWAP_ADMIN", self.admin.to_string())
            .output()
            .unwrap()
    }

    /// Runs a client subcommand that must succeed.
    pub fn cli_ok(&self, args: &[&str]) -> std::process::Output {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "hotswap {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `POST /{slot}` with `body`, on a connection of its own.
    pub fn call(&self, slot: &str, body: &str) -> Answer {
        post(&agent(false), &format!("http://{}/{slot}", self.data), body).unwrap()
    }

    /// `hotswap upgrade`, which must fail (exit code 1); returns its stderr.
    pub fn upgrade_fails(&self) -> String {
        let out = self.cli(&["upgrade"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{err}");
        err
    }

    /// `POST /v1/upgrade`, returning the report's JSON (panics on failure).
    pub fn upgrade(&self) -> serde_json::Value {
        let out = self.cli(&["upgrade", "--json"]);
        assert!(
            out.status.success(),
            "upgrade failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// Waits up to `secs` for process `pid` to exit; whether it did.
pub fn exits_within(pid: u32, secs: i64) -> bool {
    let Some(pid) = Pid::from_raw(pid as i32) else {
        return true;
    };
    let Ok(fd) = pidfd_open(pid, PidfdFlags::empty()) else {
        return true; // no such process
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&timeout)).unwrap_or(0) == 1
}

impl Drop for Serve {
    /// Stops whichever generation serves now, and waits until it is gone.
    fn drop(&mut self) {
        let Ok(pid) = std::fs::read_to_string(&self.pid_file) else {
            return;
        };
        let Some(raw) = pid.trim().parse::<u32>().ok() else {
            return;
        };
        let Some(pid) = Pid::from_raw(raw as i32) else {
            return;
        };
        let _ = kill_process(pid, Signal::TERM);
        if !exits_within(raw, 10) {
            let _ = kill_process(pid, Signal::KILL);
        }
    }
}

/// What one request got: its status, body and the process that answered.
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// Every `x-hotswap-process` header of the answer (exactly one expected).
    pub processes: Vec<u64>,
}

pub fn post(agent: &ureq::Agent, url: &str, body: &str) -> Result<Answer, ureq::Error> {
    let mut r = agent.post(url).send(body.as_bytes())?;
    let processes = r
        .headers()
        .get_all(hotswap_server::PROCESS_HEADER)
        .iter()
        .map(|v| v.to_str().unwrap().parse().unwrap())
        .collect();
    Ok(Answer {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string()?,
        processes,
    })
}

/// An agent that keeps its connection alive between requests, or one that
/// opens a new connection for each.
pub fn agent(keep_alive: bool) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder().http_status_as_error(false);
    if !keep_alive {
        config = config.max_idle_connections(0);
    }
    config.build().into()
}

/// Clients calling all the while, half on keep-alive connections and half
/// on a new connection per request, counting everything. Each call must be
/// answered by greet (v1 or v2).
pub struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<(Mutex<u64>, Condvar)>,
    threads: Vec<std::thread::JoinHandle<Tally>>,
}

/// What the clients saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    /// Connections refused: the kernel found nothing listening.
    pub refused: u64,
    /// Any other failure: a transport error, a non-200, a wrong body, or
    /// not exactly one process header.
    pub failed: u64,
    pub errors: Vec<String>,
    /// Answers from a generation older than one this client saw before.
    pub went_back: u64,
}

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

impl Load {
    pub fn start(url: String, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new((Mutex::new(0u64), Condvar::new()));
        let threads = (0..clients)
            .map(|i| {
                let (stop, seen, url) = (stop.clone(), seen.clone(), url.clone());
                std::thread::spawn(move || client(i, &url, &stop, &seen))
            })
            .collect();
        Load {
            stop,
            seen,
            threads,
        }
    }

    /// Waits until some client was answered by generation `g` (or later).
    pub fn wait_for_generation(&self, g: u64) {
        let (lock, cv) = &*self.seen;
        let guard = lock.lock().unwrap();
        let (_seen, timeout) = cv
            .wait_timeout_while(guard, Duration::from_secs(60), |seen| *seen < g)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "no answer from generation {g} within a minute"
        );
    }

    pub fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Release);
        let mut total = Tally::default();
        for t in self.threads {
            let t = t.join().unwrap();
            total.ok += t.ok;
            total.refused += t.refused;
            total.failed += t.failed;
            total.went_back += t.went_back;
            total.errors.extend(t.errors);
        }
        total
    }
}

/// Whether `body` is how greet v1 or v2 answers `name`.
fn greets(body: &str, name: &str) -> bool {
    body == format!("hello, {name}!") || body == format!("HELLO, {}!! (v2)", name.to_uppercase())
}

fn client(i: usize, url: &str, stop: &AtomicBool, seen: &(Mutex<u64>, Condvar)) -> Tally {
    let agent = agent(i.is_multiple_of(2));
    let mut tally = Tally::default();
    let mut last = 0;
    let mut n = 0u64;
    while !stop.load(Ordering::Acquire) {
        n += 1;
        let name = format!("c{i}-{n}");
        let fail = |tally: &mut Tally, why: String| {
            tally.failed += 1;
            if tally.errors.len() < 5 {
                tally.errors.push(why);
            }
        };
        match post(&agent, url, &name) {
            Ok(a) if a.status == 200 && greets(&a.body, &name) && a.processes.len() == 1 => {
                tally.ok += 1;
                let g = a.processes[0];
                if g < last {
                    tally.went_back += 1;
                }
                if g > last {
                    last = g;
                    let (lock, cv) = seen;
                    let mut max = lock.lock().unwrap();
                    if g > *max {
                        *max = g;
                        cv.notify_all();
                    }
                }
            }
            Ok(a) => fail(
                &mut tally,
                format!("{}: {:?} from {:?}", a.status, a.body, a.processes),
            ),
            Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tally.refused += 1
            }
            Err(e) => fail(&mut tally, e.to_string()),
        }
    }
    tally
}
