//! Safe wrappers for the host's clock and random-number functions.

/// A monotonic clock in nanoseconds from an arbitrary origin (the host's
/// `now_ns`). Only differences between two readings mean anything.
pub fn now_ns() -> u64 {
    // SAFETY: no arguments.
    unsafe { crate::sys::now_ns() as u64 }
}

/// Fills `buf` with cryptographically secure random bytes from the host.
///
/// # Panics
/// If the host reports a failure (a panic is a trap, which fails the call:
/// there is no safe fallback for missing randomness), and always when not
/// running under hotswap.
pub fn random(buf: &mut [u8]) {
    if buf.is_empty() {
        return;
    }
    // SAFETY: the pointer and length describe `buf`, writable for the call.
    let code = unsafe { crate::sys::random(buf.as_mut_ptr(), buf.len()) };
    if code != 0 {
        panic!("hotswap: the host's random failed with code {code}");
    }
}
