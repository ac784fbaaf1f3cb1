//! Zero-downtime binary upgrades for Rust servers.
//!
//! A server built on `hotswap-upgrade` replaces its own binary without
//! refusing a connection. Its listening sockets are created through an
//! [`Upgrader`], and an upgrade starts the new binary with those very
//! sockets (inherited at exec, never re-bound with `SO_REUSEPORT`, whose
//! per-socket accept queues drop connections when a socket closes).
//! Connections that arrive while the processes change places wait in the
//! shared accept queue; none is refused.
//!
//! The hand-over, over a private Unix socket pair:
//!
//! 1. the old process calls [`Upgrader::upgrade`]: the new binary starts,
//!    inherits the listeners, and calls [`Upgrader::ready`] once it can serve;
//! 2. the old process stops accepting, drains what it has in flight, lets
//!    go of anything exclusive (a database lock), and calls
//!    [`Pending::hand_over`] with an optional state blob (counters, say);
//! 3. the new process gets the blob from `ready`, starts serving, and
//!    calls [`Upgrader::serving`]; the old process exits.
//!
//! A new process that crashes, exits, or is not ready in time is killed,
//! and the old one carries on as if nothing happened, with an
//! [`UpgradeError`] that says why. One upgrade runs at a time.
//!
//! Under systemd (`Type=notify`) it inherits socket-activated listeners
//! (`LISTEN_FDS`, matched by `FileDescriptorName=` or address) and sends
//! `RELOADING=1`, `MAINPID=` and `READY=1` at the right moments; see
//! `dist/hotswap.service`. With [`Options::pid_file`], the file always
//! names the process that serves.
//!
//! ```no_run
//! use hotswap_upgrade::{Options, Upgrader};
//!
//! # fn serve(_: std::net::TcpListener, _: &[u8]) {}
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let upgrader = Upgrader::new(Options::default())?;
//! // The parent's socket after an upgrade; a fresh one on a first start.
//! let listener = upgrader.listen("http", "127.0.0.1:8080".parse()?)?;
//! // Returns once the parent (if any) has drained, with its state.
//! let state = upgrader.ready()?;
//! serve(listener, &state); // start accepting, in the background
//! upgrader.serving()?;
//!
//! // Later, on SIGUSR2:
//! match upgrader.upgrade() {
//!     Ok(pending) => {
//!         // stop accepting, drain, flush...
//!         let done = pending.hand_over(b"counters")?;
//!         println!("pid {} took over", done.pid);
//!         std::process::exit(0);
//!     }
//!     Err(e) => eprintln!("upgrade failed, still serving: {e}"),
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod inherit;
mod pidfile;
mod spawn;
pub mod systemd;
mod wire;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use error::UpgradeError;
pub use spawn::{Handover, Pending};

use inherit::Inherited;

/// How upgrades run. The defaults suit a server that starts in well under
/// a second.
#[derive(Debug, Clone)]
pub struct Options {
    /// The binary to start; by default the path this process was started
    /// from, so installing a new binary there and signalling upgrades to it.
    pub executable: Option<PathBuf>,
    /// Its arguments; by default this process's own.
    pub args: Option<Vec<OsString>>,
    /// How long the new process may take to call [`Upgrader::ready`].
    pub ready_timeout: Duration,
    /// How long it may take from [`Pending::hand_over`] to
    /// [`Upgrader::serving`].
    pub handover_timeout: Duration,
    /// A file that always holds the pid of the process that serves.
    pub pid_file: Option<PathBuf>,
    /// The accept backlog of listeners this crate creates. Connections
    /// wait here while the processes change places.
    pub backlog: i32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            executable: None,
            args: None,
            ready_timeout: Duration::from_secs(10),
            handover_timeout: Duration::from_secs(30),
            pid_file: None,
            backlog: 1024,
        }
    }
}

/// Creates listeners that survive upgrades, and runs the upgrades.
pub struct Upgrader {
    options: Mutex<Options>,
    /// The binary this process was started from.
    own_executable: PathBuf,
    args: Vec<OsString>,
    generation: u64,
    /// Inherited listeners not yet claimed by [`Upgrader::listen`].
    inherited: Mutex<Vec<Inherited>>,
    /// What the next process inherits: one descriptor per name.
    listeners: Mutex<BTreeMap<String, OwnedFd>>,
    /// The channel to the parent, until the hand-over is done.
    parent: Mutex<Option<UnixStream>>,
    parent_pid: Option<u32>,
    busy: Arc<AtomicBool>,
    upgraded: Arc<AtomicBool>,
}

impl Upgrader {
    /// Takes what this process inherited (from a parent's upgrade, or from
    /// systemd). Call it once, early in `main`.
    pub fn new(options: Options) -> Result<Upgrader, UpgradeError> {
        let inheritance = inherit::take()?;
        // Resolved now: once a new binary is installed over the old one,
        // /proc/self/exe names the old (deleted) file, while this path
        // names the new one.
        let own_executable = std::env::current_exe().map_err(UpgradeError::Executable)?;
        let args = std::env::args_os().skip(1).collect();
        Ok(Upgrader {
            own_executable,
            args,
            generation: inheritance.generation,
            parent_pid: inheritance.parent,
            inherited: Mutex::new(inheritance.listeners),
            listeners: Mutex::new(BTreeMap::new()),
            parent: Mutex::new(inheritance.control),
            busy: Arc::new(AtomicBool::new(false)),
            upgraded: Arc::new(AtomicBool::new(false)),
            options: Mutex::new(options),
        })
    }

    /// Changes the options for upgrades from now on (a config reload).
    pub fn configure(&self, change: impl FnOnce(&mut Options)) {
        change(&mut lock(&self.options));
    }

    /// 1 for a process started by hand (or by systemd), its parent's plus
    /// one for a process started by an upgrade.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether this process was started by an upgrade and has not yet been
    /// handed over to.
    pub fn has_parent(&self) -> bool {
        lock(&self.parent).is_some()
    }

    /// A listener for `addr`, known as `name` to the next process.
    ///
    /// An inherited listener is reused when its name matches (and `addr` is
    /// its address, or asks for any port with port 0), or, for one
    /// systemd passed without a name, when its address is `addr`. Otherwise
    /// a new socket is bound. Listening again under a name that is already
    /// taken replaces what the next process inherits under it (this is how
    /// a new listen address is applied: open the new listener, then stop
    /// accepting on the old one).
    ///
    /// A new listener is in blocking mode; an inherited one shares its
    /// blocking mode with the parent's copy (one open file description), so
    /// a tokio parent hands over a non-blocking one. Call
    /// `set_nonblocking(true)` before handing it to an async runtime; do not
    /// make an inherited one blocking while the parent still accepts on it.
    pub fn listen(&self, name: &str, addr: SocketAddr) -> Result<TcpListener, UpgradeError> {
        let listener = self.open(name, addr)?;
        self.register(name, &listener)
            .map_err(|source| UpgradeError::Listen { addr, source })?;
        Ok(listener)
    }

    /// Like [`Upgrader::listen`], but the next process does not inherit the
    /// listener until [`Upgrader::register`] is called: for trying a new
    /// address and committing to it only if everything else works out.
    pub fn open(&self, name: &str, addr: SocketAddr) -> Result<TcpListener, UpgradeError> {
        inherit::check_name(name)?;
        match self.claim(name, addr) {
            Some(l) => Ok(l),
            None => bind(addr, lock(&self.options).backlog)
                .map_err(|source| UpgradeError::Listen { addr, source }),
        }
    }

    /// The next process inherits `listener` (any listening socket: std's,
    /// tokio's) as `name`, replacing what it would have inherited under
    /// that name.
    pub fn register(&self, name: &str, listener: &impl AsFd) -> std::io::Result<()> {
        let copy = listener.as_fd().try_clone_to_owned()?;
        lock(&self.listeners).insert(name.to_string(), copy);
        Ok(())
    }

    /// Stops passing the listener known as `name` to the next process.
    pub fn forget(&self, name: &str) {
        lock(&self.listeners).remove(name);
    }

    fn claim(&self, name: &str, addr: SocketAddr) -> Option<TcpListener> {
        let mut inherited = lock(&self.inherited);
        let matches = |i: &Inherited| {
            let Some(have) = i.addr() else { return false };
            match &i.name {
                Some(n) if n == name => {
                    have == addr || (addr.port() == 0 && have.ip() == addr.ip())
                }
                Some(_) => false,
                None => have == addr,
            }
        };
        let at = inherited.iter().position(matches)?;
        Some(inherited.swap_remove(at).listener)
    }

    /// Reports that this process is ready to serve, and waits until the
    /// parent (if it was started by an upgrade) has stopped accepting and
    /// drained. Returns the parent's state blob (empty without a parent).
    ///
    /// Inherited listeners nobody claimed are closed here (the parent still
    /// has them until it exits). A server with nothing exclusive to take
    /// over may start accepting before calling this; one that needs what the
    /// parent holds (hotswap's store) starts after.
    ///
    /// [`UpgradeError::ParentGone`] means the parent died first: carry on
    /// without its state.
    pub fn ready(&self) -> Result<Vec<u8>, UpgradeError> {
        for unclaimed in lock(&self.inherited).drain(..) {
            // Still open elsewhere (in the parent, or in systemd), so
            // connections would queue there for nobody: say so.
            tracing::warn!(
                name = unclaimed.name.as_deref().unwrap_or("(unnamed)"),
                addr = ?unclaimed.addr(),
                "an inherited listener was not claimed by any listen(); it is closed here"
            );
        }
        let mut parent = lock(&self.parent);
        let Some(channel) = parent.as_mut() else {
            return Ok(Vec::new());
        };
        let answer = wire::send(channel, wire::READY, &[]).and_then(|()| wire::recv(channel));
        match answer {
            Ok(Some((wire::GO, state))) => Ok(state),
            Ok(Some((tag, _))) => {
                *parent = None;
                Err(UpgradeError::Protocol {
                    pid: std::os::unix::process::parent_id(),
                    reason: format!("expected the go-ahead, got {:?}", tag as char),
                })
            }
            Ok(None) | Err(_) => {
                *parent = None;
                // Alive and closing on us: it gave up (we were too slow, or
                // it failed). Gone: it died, and carrying on keeps serving.
                match self
                    .parent_pid
                    .and_then(|p| rustix::process::Pid::from_raw(p as i32))
                {
                    Some(pid) if rustix::process::test_kill_process(pid).is_ok() => {
                        Err(UpgradeError::Abandoned(pid.as_raw_nonzero().get() as u32))
                    }
                    _ => Err(UpgradeError::ParentGone),
                }
            }
        }
    }

    /// Reports that this process serves: tells the parent to exit, writes
    /// the pid file, and tells systemd (which the parent does on our behalf
    /// after an upgrade).
    pub fn serving(&self) -> Result<(), UpgradeError> {
        // The pid file first: once the parent hears from us, it reports the
        // upgrade done, and whoever reads the file then must find us.
        if let Some(path) = &lock(&self.options).pid_file {
            if let Err(e) = pidfile::write(path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the pid file");
            }
        }
        let parent = lock(&self.parent).take();
        match parent {
            Some(mut channel) => {
                wire::send(&mut channel, wire::SERVING, &[]).map_err(UpgradeError::Channel)?
            }
            None => systemd::ready(),
        }
        Ok(())
    }

    /// Starts the new binary and waits until it is ready to serve. Blocks
    /// for up to [`Options::ready_timeout`]; call it off the async runtime.
    ///
    /// On success, stop accepting, drain, and call [`Pending::hand_over`].
    pub fn upgrade(&self) -> Result<Pending, UpgradeError> {
        if self.upgraded.load(Ordering::Acquire) {
            return Err(UpgradeError::AlreadyUpgraded);
        }
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(UpgradeError::InProgress);
        }
        systemd::reloading();
        let listeners = lock(&self.listeners)
            .iter()
            .map(|(n, fd)| fd.try_clone().map(|fd| (n.clone(), fd)))
            .collect::<Result<Vec<_>, _>>();
        let options = lock(&self.options).clone();
        let launched = listeners
            .map_err(UpgradeError::Channel)
            .and_then(|listeners| {
                spawn::start(
                    spawn::Launch {
                        executable: self.executable(),
                        args: options.args.clone().unwrap_or_else(|| self.args.clone()),
                        generation: self.generation,
                        listeners,
                    },
                    options.ready_timeout,
                    options.handover_timeout,
                    options.pid_file.clone(),
                    self.busy.clone(),
                    self.upgraded.clone(),
                )
            });
        if launched.is_err() {
            // A Pending resets these when dropped; without one, we do.
            self.busy.store(false, Ordering::Release);
            systemd::reloaded();
        }
        launched
    }

    /// Whether this process has handed over to a successor.
    pub fn upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Acquire)
    }

    /// Removes the pid file if it still names this process; call it when
    /// stopping for good (not after an upgrade: the successor's pid is there).
    pub fn stopping(&self) {
        systemd::stopping();
        if let Some(path) = &lock(&self.options).pid_file {
            pidfile::remove_if_ours(path);
        }
    }

    /// The binary an upgrade starts.
    pub fn executable(&self) -> PathBuf {
        lock(&self.options)
            .executable
            .clone()
            .unwrap_or_else(|| self.own_executable.clone())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A listener (close-on-exec, as socket2 makes every socket) with `SO_REUSEADDR` (so a restart can bind while old
/// connections linger in TIME_WAIT) and a deep backlog.
fn bind(addr: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}
