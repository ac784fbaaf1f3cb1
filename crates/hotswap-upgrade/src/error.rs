//! `UpgradeError`: why an upgrade did not happen, in words an operator can act on.

use std::path::PathBuf;
use std::time::Duration;

/// Why an upgrade failed. In every case the current process keeps its
/// listeners and goes on serving; a child that was started has been killed.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// Another upgrade is under way; only one runs at a time.
    #[error("an upgrade is already in progress")]
    InProgress,
    /// This process already handed over to its successor.
    #[error("this process has already been upgraded; it is draining and will exit")]
    AlreadyUpgraded,
    /// The new binary could not be started.
    #[error("cannot start {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The new process exited before it was ready (or before it took over).
    #[error("the new process (pid {pid}) exited {status} before it {stage}")]
    ChildExited {
        /// Its pid.
        pid: u32,
        /// How it ended, e.g. `with status 1` or `by signal 9`.
        status: String,
        /// `was ready` or `took over`.
        stage: &'static str,
    },
    /// The new process did not become ready (or take over) in time; it was killed.
    #[error("the new process (pid {pid}) did not {stage} within {timeout:?}; it was killed")]
    Timeout {
        /// Its pid.
        pid: u32,
        /// `become ready` or `take over`.
        stage: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// The new process broke the hand-over protocol (sent something unexpected).
    #[error("the new process (pid {pid}) broke the hand-over protocol: {reason}")]
    Protocol {
        /// Its pid.
        pid: u32,
        /// What went wrong.
        reason: String,
    },
    /// The parent process went away before it handed over; this process may
    /// carry on alone, without the parent's state.
    #[error("the parent process went away before it handed over")]
    ParentGone,
    /// The parent is still running but gave up on this upgrade (it timed
    /// out, or another step failed): this process must exit.
    #[error("the parent process (pid {0}) gave up on this upgrade and serves on; exiting")]
    Abandoned(u32),
    /// The state blob is over the limit the channel carries.
    #[error("the state blob is {bytes} bytes, over the limit of {limit}")]
    StateTooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// This system lacks something upgrades need.
    #[error("upgrades are not supported here: {0}")]
    Unsupported(String),
    /// This process cannot tell which binary it runs.
    #[error("cannot tell which binary this process runs (an upgrade starts it again): {0}")]
    Executable(std::io::Error),
    /// A listener could not be created or inherited.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A name that cannot be passed on (empty, or containing `=`, `,` or `:`).
    #[error("`{0}` cannot name a listener: use letters, digits, `-`, `_` or `.`")]
    BadName(String),
    /// The environment describes inherited sockets this process cannot use.
    #[error("inherited sockets: {0}")]
    Inherit(String),
    /// Talking to the other process failed.
    #[error("the hand-over channel failed: {0}")]
    Channel(std::io::Error),
}
