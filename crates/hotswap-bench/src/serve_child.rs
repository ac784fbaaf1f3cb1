//! A `hotswap serve` child of this very binary on free ports, clients that
//! call it under load counting every wrong answer, and its stop: what
//! `bench upgrade` and `bench fleet` drive.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context};

pub(crate) use crate::tally::Tally;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{kill_process, pidfd_open, Pid, PidfdFlags, Signal};

/// Where a started server listens.
pub(crate) struct Started {
    pub(crate) data: SocketAddr,
    pub(crate) admin: SocketAddr,
}

/// Starts this very binary as `hotswap serve ARGS` on free ports, with its
/// store under `dir`.
pub(crate) fn start(
    dir: &std::path::Path,
    pid_file: &std::path::Path,
    args: &[&str],
) -> anyhow::Result<Started> {
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let mut child = Process::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("store"))
        .arg("--pid-file")
        .arg(pid_file)
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start hotswap serve")?;
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    // Each generation prints a line here; keep the pipe drained.
    std::thread::spawn(move || for _ in stdout.lines() {});
    std::thread::spawn(move || child.wait());
    let addrs: Vec<SocketAddr> = line
        .split("http://")
        .skip(1)
        .filter_map(|s| s.split([',', ' ', '\n']).next()?.parse().ok())
        .collect();
    match addrs[..] {
        [data, admin] => Ok(Started { data, admin }),
        _ => bail!("hotswap serve did not start: {line:?}"),
    }
}

pub(crate) fn read_pid(pid_file: &std::path::Path) -> anyhow::Result<Pid> {
    let text = std::fs::read_to_string(pid_file).context("cannot read the pid file")?;
    text.trim()
        .parse()
        .ok()
        .and_then(Pid::from_raw)
        .context("the pid file holds no pid")
}

/// SIGTERM to whichever generation serves, and wait for it to go.
pub(crate) fn stop_server(pid_file: &std::path::Path) {
    let Ok(pid) = read_pid(pid_file) else { return };
    let Ok(fd) = pidfd_open(pid, PidfdFlags::empty()) else {
        return;
    };
    let _ = kill_process(pid, Signal::TERM);
    if !exits_within(&fd, 10) {
        let _ = kill_process(pid, Signal::KILL);
    }
}

/// Waits up to `secs` for the process behind `pidfd` to exit; whether it did.
pub(crate) fn exits_within(pidfd: &std::os::fd::OwnedFd, secs: i64) -> bool {
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&timeout)).unwrap_or(0) > 0
}

/// Calls until `stop`, counting answers that are not exactly right: a
/// 200 from one process whose body `right` accepts for input `bench`.
/// With `pace`, it waits that long after each call (a steady load, not
/// the most the machine can do).
pub(crate) fn client(
    url: &str,
    keep_alive: bool,
    stop: &AtomicBool,
    right: fn(&str) -> bool,
    pace: Option<std::time::Duration>,
) -> Tally {
    let mut config = ureq::Agent::config_builder().http_status_as_error(false);
    if !keep_alive {
        config = config.max_idle_connections(0);
    }
    let agent = config.build().new_agent();
    let mut tally = Tally::default();
    while !stop.load(Ordering::Acquire) {
        if let Some(pace) = pace {
            std::thread::sleep(pace);
        }
        let result = agent.post(url).send(b"bench" as &[u8]).and_then(|mut r| {
            let status = r.status().as_u16();
            let one_process = r
                .headers()
                .get_all(hotswap_server::PROCESS_HEADER)
                .iter()
                .count()
                == 1;
            Ok((status, one_process, r.body_mut().read_to_string()?))
        });
        match result {
            Ok((200, true, body)) if right(&body) => tally.ok += 1,
            Ok(other) => tally.fail(|| format!("{other:?}")),
            Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tally.refused += 1
            }
            Err(e) => tally.fail(|| e.to_string()),
        }
    }
    tally
}
