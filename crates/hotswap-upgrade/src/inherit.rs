//! What a process inherits at start: listening sockets from its parent (an
//! upgrade) or from systemd (socket activation), and the hand-over channel.
//!
//! The environment names the descriptors. It is trusted only when it was
//! meant for this very process: `HOTSWAP_UPGRADE_PARENT` must be our parent's
//! pid (as `LISTEN_PID` must be ours), so a variable leaked into an
//! unrelated process's environment is ignored.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use rustix::io::{fcntl_setfd, FdFlags};

use crate::UpgradeError;

pub(crate) const PARENT: &str = "HOTSWAP_UPGRADE_PARENT";
pub(crate) const GENERATION: &str = "HOTSWAP_UPGRADE_GENERATION";
pub(crate) const CONTROL: &str = "HOTSWAP_UPGRADE_CONTROL";
pub(crate) const FDS: &str = "HOTSWAP_UPGRADE_FDS";

/// One inherited listening socket.
pub(crate) struct Inherited {
    /// The name it was passed under (systemd's `FileDescriptorName=`, or
    /// the name the parent listened with), if any.
    pub name: Option<String>,
    pub listener: TcpListener,
}

impl Inherited {
    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }
}

/// Everything inherited at start.
pub(crate) struct Inheritance {
    pub generation: u64,
    /// The parent's pid, when started by an upgrade.
    pub parent: Option<u32>,
    pub listeners: Vec<Inherited>,
    pub control: Option<UnixStream>,
}

/// Reads the environment, once per process: the descriptors it names can
/// be owned only once. Later calls inherit nothing.
pub(crate) fn take() -> Result<Inheritance, UpgradeError> {
    static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if TAKEN.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return Ok(Inheritance {
            generation: GENERATION_SEEN.load(std::sync::atomic::Ordering::Acquire),
            parent: None,
            listeners: Vec::new(),
            control: None,
        });
    }
    let taken = take_once()?;
    GENERATION_SEEN.store(taken.generation, std::sync::atomic::Ordering::Release);
    Ok(taken)
}

/// The generation the first `take` found, for later upgraders.
static GENERATION_SEEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn take_once() -> Result<Inheritance, UpgradeError> {
    let mut listeners = Vec::new();
    // systemd socket activation (checks LISTEN_PID itself).
    let activated =
        sd_notify::listen_fds_with_names().map_err(|e| UpgradeError::Inherit(e.to_string()))?;
    for (fd, name) in activated {
        let name = (!name.is_empty() && name != "unknown").then_some(name);
        listeners.push(Inherited {
            name,
            listener: listener(fd)?,
        });
    }

    let parent = std::env::var(PARENT)
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    let from_parent = parent.is_some()
        && parent == rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32);
    if !from_parent {
        return Ok(Inheritance {
            generation: 1,
            parent: None,
            listeners,
            control: None,
        });
    }
    let generation = var(GENERATION)?
        .parse()
        .map_err(|_| UpgradeError::Inherit(format!("{GENERATION} is not a number")))?;
    let control = fd_var(CONTROL)?;
    fcntl_setfd(own(control), FdFlags::CLOEXEC).map_err(|e| inherit_err(CONTROL, e.into()))?;
    // SAFETY: the parent passed this descriptor to us alone, as its end of
    // a socket pair, and nothing else in this process owns it.
    let control = unsafe { UnixStream::from_raw_fd(control) };
    for (name, fd) in parse_fds(&var(FDS)?)? {
        listeners.push(Inherited {
            name: Some(name),
            listener: listener(fd)?,
        });
    }
    Ok(Inheritance {
        generation,
        parent,
        listeners,
        control: Some(control),
    })
}

fn var(name: &str) -> Result<String, UpgradeError> {
    std::env::var(name).map_err(|_| UpgradeError::Inherit(format!("{name} is missing")))
}

fn fd_var(name: &str) -> Result<RawFd, UpgradeError> {
    var(name)?
        .parse()
        .ok()
        .filter(|fd| *fd > 2)
        .ok_or_else(|| UpgradeError::Inherit(format!("{name} is not a descriptor number")))
}

fn inherit_err(what: &str, e: std::io::Error) -> UpgradeError {
    UpgradeError::Inherit(format!("{what}: {e}"))
}

/// Borrows a raw descriptor for one `fcntl`.
fn own(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used for descriptors the environment hands to this
    // process, which stay open for the duration of the call.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Takes ownership of an inherited descriptor after checking it is a
/// listening TCP socket; marks it close-on-exec, so it does not leak into
/// unrelated children (an upgrade passes it on explicitly).
fn listener(fd: RawFd) -> Result<TcpListener, UpgradeError> {
    fcntl_setfd(own(fd), FdFlags::CLOEXEC).map_err(|e| inherit_err("descriptor", e.into()))?;
    // SAFETY: the environment hands this descriptor to this process alone.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let socket = socket2::Socket::from(owned);
    let listening = socket.is_listener().unwrap_or(false);
    let tcp = matches!(socket.local_addr().map(|a| a.as_socket()), Ok(Some(_)));
    if !listening || !tcp {
        return Err(UpgradeError::Inherit(format!(
            "descriptor {fd} is not a listening TCP socket"
        )));
    }
    Ok(socket.into())
}

/// `name=fd,name=fd`.
pub(crate) fn format_fds(fds: &[(String, RawFd)]) -> String {
    fds.iter()
        .map(|(n, fd)| format!("{n}={fd}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_fds(text: &str) -> Result<Vec<(String, RawFd)>, UpgradeError> {
    text.split(',')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, fd) = pair
                .split_once('=')
                .ok_or_else(|| UpgradeError::Inherit(format!("{FDS}: `{pair}` is not name=fd")))?;
            let fd = fd
                .parse()
                .ok()
                .filter(|fd: &RawFd| *fd > 2)
                .ok_or_else(|| {
                    UpgradeError::Inherit(format!("{FDS}: `{fd}` is not a descriptor"))
                })?;
            Ok((name.to_string(), fd))
        })
        .collect()
}

/// A name that survives `name=fd,...`.
pub(crate) fn check_name(name: &str) -> Result<(), UpgradeError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if name.is_empty() || !name.chars().all(ok) {
        return Err(UpgradeError::BadName(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_lists_round_trip_and_garbage_is_refused() {
        let fds = vec![("data".to_string(), 7), ("admin".to_string(), 9)];
        assert_eq!(parse_fds(&format_fds(&fds)).unwrap(), fds);
        assert!(parse_fds("data").is_err());
        assert!(parse_fds("data=1").is_err(), "stdio is never a listener");
        assert!(parse_fds("data=x").is_err());
        assert!(check_name("data-plane_1.v4").is_ok());
        assert!(check_name("a=b").is_err() && check_name("").is_err());
    }
}
