//! The host's log, with the levels of the ABI.
//!
//! Under hotswap the text goes to the host's log, tagged with the slot.
//! Natively it is printed to stderr.

/// A log level; the discriminant is the number passed to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Something failed.
    Error = 0,
    /// Something looks wrong.
    Warn = 1,
    /// Routine information.
    Info = 2,
    /// Detail for debugging.
    Debug = 3,
    /// Even more detail.
    Trace = 4,
}

/// Logs `msg` at `level`.
pub fn log(level: Level, msg: &str) {
    // SAFETY: the pointer and length describe `msg`, which outlives the call.
    unsafe { crate::sys::log(level as i32, msg.as_ptr(), msg.len()) }
}

/// Logs `msg` at level error.
pub fn error(msg: &str) {
    log(Level::Error, msg)
}

/// Logs `msg` at level warn.
pub fn warn(msg: &str) {
    log(Level::Warn, msg)
}

/// Logs `msg` at level info.
pub fn info(msg: &str) {
    log(Level::Info, msg)
}

/// Logs `msg` at level debug.
pub fn debug(msg: &str) {
    log(Level::Debug, msg)
}

/// Logs `msg` at level trace.
pub fn trace(msg: &str) {
    log(Level::Trace, msg)
}
