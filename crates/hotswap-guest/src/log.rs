//! The host's log, with the levels of the ABI.
//!
//! Under hotswap the text goes to the host's log, tagged with the slot.
//! Natively it is printed to stderr.

/// A log level; the discriminant is the number passed to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Something failed.
    Error = hotswap_abi::code::LOG_ERROR as isize,
    /// Something looks wrong.
    Warn = hotswap_abi::code::LOG_WARN as isize,
    /// Routine information.
    Info = hotswap_abi::code::LOG_INFO as isize,
    /// Detail for debugging.
    Debug = hotswap_abi::code::LOG_DEBUG as isize,
    /// Even more detail.
    Trace = hotswap_abi::code::LOG_TRACE as isize,
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
