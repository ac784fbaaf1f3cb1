//! The parent's side of an upgrade: start the new binary with the listeners,
//! wait until it is ready, hand over, and kill it if anything goes wrong.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::{fcntl_setfd, FdFlags};
use rustix::process::{pidfd_open, Pid, PidfdFlags};

use crate::inherit::{self, format_fds};
use crate::{systemd, wire, UpgradeError};

/// What the new process is started with.
pub(crate) struct Launch {
    pub executable: PathBuf,
    pub args: Vec<OsString>,
    pub generation: u64,
    pub listeners: Vec<(String, OwnedFd)>,
}

/// A new process that is ready to serve, waiting for this one to let go.
///
/// Stop accepting, drain, release what the new process needs exclusively,
/// then call [`Pending::hand_over`]. Dropping a `Pending` instead kills the
/// new process: this one carries on as if nothing happened.
#[must_use = "dropping a Pending kills the new process"]
pub struct Pending {
    child: Option<Child>,
    pidfd: OwnedFd,
    control: UnixStream,
    started: Instant,
    ready_after: Duration,
    handover_timeout: Duration,
    generation: u64,
    /// Rewritten with our pid if the hand-over fails: the child may have
    /// written its own already.
    pid_file: Option<PathBuf>,
    busy: Arc<AtomicBool>,
    upgraded: Arc<AtomicBool>,
}

/// The outcome of a successful upgrade.
#[derive(Debug, Clone)]
pub struct Handover {
    /// The new process.
    pub pid: u32,
    /// Its generation.
    pub generation: u64,
    /// From the start of the upgrade until the new process was ready.
    pub ready_after: Duration,
    /// From the start of the upgrade until the new process took over.
    pub took_over_after: Duration,
}

pub(crate) fn start(
    launch: Launch,
    ready_timeout: Duration,
    handover_timeout: Duration,
    pid_file: Option<PathBuf>,
    busy: Arc<AtomicBool>,
    upgraded: Arc<AtomicBool>,
) -> Result<Pending, UpgradeError> {
    let started = Instant::now();
    let (ours, theirs) = UnixStream::pair().map_err(UpgradeError::Channel)?;
    let mut passed: Vec<RawFd> = launch
        .listeners
        .iter()
        .map(|(_, fd)| fd.as_raw_fd())
        .collect();
    passed.push(theirs.as_raw_fd());
    let fds: Vec<(String, RawFd)> = launch
        .listeners
        .iter()
        .map(|(n, fd)| (n.clone(), fd.as_raw_fd()))
        .collect();

    let mut command = Command::new(&launch.executable);
    command
        .args(&launch.args)
        .env(inherit::PARENT, std::process::id().to_string())
        .env(inherit::GENERATION, (launch.generation + 1).to_string())
        .env(inherit::CONTROL, theirs.as_raw_fd().to_string())
        .env(inherit::FDS, format_fds(&fds));
    // SAFETY: the closure runs between fork and exec and only calls fcntl,
    // which is async-signal-safe, on descriptors this process keeps open
    // until `spawn` returns. It clears close-on-exec in the child alone.
    unsafe {
        command.pre_exec(move || {
            for fd in &passed {
                let fd = std::os::fd::BorrowedFd::borrow_raw(*fd);
                fcntl_setfd(fd, FdFlags::empty())?;
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|source| UpgradeError::Spawn {
        path: launch.executable.clone(),
        source,
    })?;
    drop(theirs); // the child has its copy: EOF here means it is gone
    let pid = child.id();
    let pidfd = match Pid::from_raw(pid as i32).map(|p| pidfd_open(p, PidfdFlags::empty())) {
        Some(Ok(fd)) => fd,
        Some(Err(e)) => {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            return Err(if e == rustix::io::Errno::NOSYS {
                UpgradeError::Unsupported(
                    "pidfd_open is missing (Linux 5.3 or later is needed)".into(),
                )
            } else {
                UpgradeError::Channel(e.into())
            });
        }
        None => unreachable!("a child's pid is positive"),
    };
    let mut pending = Pending {
        child: Some(child),
        pidfd,
        control: ours,
        started,
        ready_after: Duration::ZERO,
        handover_timeout,
        generation: launch.generation + 1,
        pid_file,
        busy,
        upgraded,
    };
    pending.expect(wire::READY, ready_timeout, "become ready", "was ready")?;
    pending.ready_after = started.elapsed();
    Ok(pending)
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("pid", &self.pid())
            .field("generation", &self.generation)
            .field("ready_after", &self.ready_after)
            .finish()
    }
}

impl Pending {
    /// The new process's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// How long the new process took to become ready.
    pub fn ready_after(&self) -> Duration {
        self.ready_after
    }

    /// Tells the new process to take over, handing it `state` (which
    /// [`Upgrader::ready`](crate::Upgrader::ready) returns there), and waits
    /// until it serves. On success this process must exit once it has
    /// finished what it still has in flight; on failure the new process has
    /// been killed and this one should resume serving.
    pub fn hand_over(mut self, state: &[u8]) -> Result<Handover, UpgradeError> {
        let result = self.try_hand_over(state);
        if result.is_err() {
            if let Some(path) = &self.pid_file {
                if let Err(e) = crate::pidfile::write(path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot take the pid file back");
                }
            }
        }
        result
    }

    fn try_hand_over(&mut self, state: &[u8]) -> Result<Handover, UpgradeError> {
        let pid = self.pid();
        if state.len() > wire::MAX_PAYLOAD as usize {
            self.kill();
            return Err(UpgradeError::StateTooLarge {
                bytes: state.len(),
                limit: wire::MAX_PAYLOAD as usize,
            });
        }
        if wire::send(&mut self.control, wire::GO, state).is_err() {
            // A broken channel means the child is gone (or going): say how.
            return Err(self.exited("took over"));
        }
        let timeout = self.handover_timeout;
        self.expect(wire::SERVING, timeout, "take over", "took over")?;
        self.upgraded.store(true, Ordering::Release);
        systemd::handed_over(pid);
        // The successor outlives us; it is not ours to wait for.
        self.child = None;
        Ok(Handover {
            pid,
            generation: self.generation,
            ready_after: self.ready_after,
            took_over_after: self.started.elapsed(),
        })
    }

    /// Waits for message `tag`, watching the child's exit and a deadline.
    fn expect(
        &mut self,
        tag: u8,
        timeout: Duration,
        doing: &'static str,
        done: &'static str,
    ) -> Result<Vec<u8>, UpgradeError> {
        let pid = self.pid();
        let deadline = Instant::now() + timeout;
        let mut last_look = false;
        loop {
            if last_look {
                self.kill();
                return Err(UpgradeError::Timeout {
                    pid,
                    stage: doing,
                    timeout,
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // At the deadline, one last poll that does not wait: a message
            // that arrived just in time still counts.
            last_look = left.is_zero();
            let ts = Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            };
            let (control_ready, exited) = {
                let mut fds = [
                    PollFd::new(&self.control, PollFlags::IN),
                    PollFd::from_borrowed_fd(self.pidfd.as_fd(), PollFlags::IN),
                ];
                match poll(&mut fds, Some(&ts)) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(self.failure(e.into(), done)),
                }
                (!fds[0].revents().is_empty(), !fds[1].revents().is_empty())
            };
            if control_ready {
                match wire::recv(&mut self.control) {
                    Ok(Some((t, payload))) if t == tag => return Ok(payload),
                    Ok(Some((t, _))) => {
                        self.kill();
                        return Err(UpgradeError::Protocol {
                            pid,
                            reason: format!(
                                "expected message {:?}, got {:?}",
                                tag as char, t as char
                            ),
                        });
                    }
                    // EOF or a reset: the child closed its end, most
                    // likely by exiting.
                    Ok(None) => return Err(self.exited(done)),
                    Err(e) if e.kind() != std::io::ErrorKind::InvalidData => {
                        return Err(self.exited(done))
                    }
                    Err(e) => return Err(self.failure(e, done)),
                }
            }
            if exited {
                return Err(self.exited(done));
            }
        }
    }

    /// The child is gone or going: reap it (killing it if it lingers) and
    /// say how it ended.
    fn exited(&mut self, stage: &'static str) -> UpgradeError {
        let pid = self.pid();
        let status = self.reap(Duration::from_secs(1));
        UpgradeError::ChildExited { pid, status, stage }
    }

    fn failure(&mut self, e: std::io::Error, stage: &'static str) -> UpgradeError {
        let pid = self.pid();
        self.kill();
        UpgradeError::Protocol {
            pid,
            reason: format!("{e} (before it {stage})"),
        }
    }

    /// Waits up to `grace` for the child to exit on its own, then kills it.
    fn reap(&mut self, grace: Duration) -> String {
        let ts = Timespec {
            tv_sec: grace.as_secs() as _,
            tv_nsec: grace.subsec_nanos() as _,
        };
        let mut fds = [PollFd::from_borrowed_fd(self.pidfd.as_fd(), PollFlags::IN)];
        let _ = poll(&mut fds, Some(&ts));
        let Some(mut child) = self.child.take() else {
            return "already reaped".into();
        };
        if fds[0].revents().is_empty() {
            let _ = child.kill();
        }
        match child.wait() {
            Ok(s) => describe(s),
            Err(e) => format!("(cannot tell how: {e})"),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("with status {code}"),
        (None, Some(sig)) => format!("by signal {sig}"),
        _ => "in an unknown way".into(),
    }
}

impl Drop for Pending {
    /// Not handed over: the new process must not serve beside this one.
    fn drop(&mut self) {
        self.kill();
        self.busy.store(false, Ordering::Release);
        if !self.upgraded.load(Ordering::Acquire) {
            systemd::reloaded();
        }
    }
}
