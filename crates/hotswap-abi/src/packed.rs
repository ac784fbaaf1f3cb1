//! `hs_process`'s `i64` result, read as unsigned bits: 0–31 the output's
//! address, 32–62 its length, 63 set when the output is an error message.

use crate::limits::MAX_OUTPUT;

/// Packs an `hs_process` result. `len` must be at most
/// [`MAX_OUTPUT`]; a longer one panics (at compile time in a const).
pub const fn pack(ptr: u32, len: u32, is_err: bool) -> i64 {
    assert!(len as usize <= MAX_OUTPUT);
    (ptr as u64 | ((len as u64) << 32) | ((is_err as u64) << 63)) as i64
}

/// The inverse of [`pack`]: `(ptr, len, is_err)`.
pub const fn unpack(packed: i64) -> (u32, u32, bool) {
    let bits = packed as u64;
    (
        bits as u32,
        (bits >> 32) as u32 & MAX_OUTPUT as u32,
        bits >> 63 == 1,
    )
}

#[cfg(test)]
mod tests {
    use super::{pack, unpack};

    #[test]
    fn layout() {
        assert_eq!(pack(0, 0, false), 0);
        assert_eq!(pack(0x1234_5678, 0, false), 0x1234_5678);
        assert_eq!(pack(0, 5, false), 5 << 32);
        assert_eq!(pack(0, 0, true), i64::MIN);
        assert_eq!(pack(u32::MAX, 0x7fff_ffff, true), -1);
        assert_eq!(unpack(-1), (u32::MAX, 0x7fff_ffff, true));
        assert_eq!(unpack((5i64 << 32) | 0x10), (0x10, 5, false));
    }
}
