//! The slot's key-value store.
//!
//! It belongs to the slot, not to the revision: every instance of every
//! revision of a slot sees the same keys, and a swap never touches them, so
//! this is where state that must be shared or survive a swap lives. Keys are
//! up to 1 KiB, values up to 1 MiB, and a slot holds up to 100 000 keys.
//!
//! ```
//! use hotswap_guest::kv;
//!
//! kv::put("greeting", "hello").unwrap();
//! assert_eq!(kv::get("greeting").as_deref(), Some(&b"hello"[..]));
//! assert_eq!(kv::delete("greeting"), Ok(true));
//! assert_eq!(kv::get("greeting"), None);
//! ```

use core::fmt;

use hotswap_abi::code::{KV_DELETED, KV_FULL, KV_TOO_LARGE, KV_WAS_ABSENT, OK};
use hotswap_abi::limits::MAX_KEY;

/// Why the store refused a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvError {
    /// The key is over 1 KiB or the value over 1 MiB.
    TooLarge,
    /// The slot already holds the maximum number of keys.
    Full,
    /// The host's storage failed.
    Storage,
}

impl KvError {
    fn from_code(code: i32) -> Self {
        match code {
            KV_TOO_LARGE => KvError::TooLarge,
            KV_FULL => KvError::Full,
            _ => KvError::Storage,
        }
    }
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KvError::TooLarge => "key or value too large",
            KvError::Full => "key-value store full",
            KvError::Storage => "key-value storage failed",
        })
    }
}

impl std::error::Error for KvError {}

/// The value stored under `key`, or `None` if there is none.
pub fn get(key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
    let key = key.as_ref();
    // Most values are small: try a stack buffer first, then ask again with
    // the exact size the host reported (in a loop, since another instance
    // may store a larger value in between).
    let mut small = [0u8; 256];
    // SAFETY: key and `small` are valid for the call; the host writes at
    // most `small.len()` bytes.
    let n = unsafe { crate::sys::kv_get(key.as_ptr(), key.len(), small.as_mut_ptr(), small.len()) };
    let mut n = usize::try_from(n).ok()?;
    if n <= small.len() {
        return Some(small[..n].to_vec());
    }
    let mut buf: Vec<u8> = Vec::new();
    loop {
        buf.reserve_exact(n);
        // SAFETY: the host writes at most `capacity` bytes into the spare capacity.
        let got = unsafe {
            crate::sys::kv_get(key.as_ptr(), key.len(), buf.as_mut_ptr(), buf.capacity())
        };
        n = usize::try_from(got).ok()?;
        if n <= buf.capacity() {
            // SAFETY: the host initialized the first `n` bytes.
            unsafe { buf.set_len(n) };
            return Some(buf);
        }
    }
}

/// Stores `value` under `key`, replacing any previous value.
pub fn put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), KvError> {
    let (key, value) = (key.as_ref(), value.as_ref());
    // SAFETY: both slices are valid for the call.
    let code = unsafe { crate::sys::kv_put(key.as_ptr(), key.len(), value.as_ptr(), value.len()) };
    match code {
        OK => Ok(()),
        code => Err(KvError::from_code(code)),
    }
}

/// Removes `key`; `Ok(true)` if it was there, `Ok(false)` if it was absent.
pub fn delete(key: impl AsRef<[u8]>) -> Result<bool, KvError> {
    let key = key.as_ref();
    // SAFETY: the slice is valid for the call.
    let code = unsafe { crate::sys::kv_delete(key.as_ptr(), key.len()) };
    match code {
        KV_DELETED => Ok(true),
        KV_WAS_ABSENT => Ok(false),
        code => Err(KvError::from_code(code)),
    }
}

/// The smallest key that is `>= from`, in byte order, or `None` past the
/// last. [`keys`] walks them all with it.
pub fn next_key(from: impl AsRef<[u8]>) -> Option<Vec<u8>> {
    let from = from.as_ref();
    // Keys are at most 1 KiB, so one buffer of that size always fits.
    let mut buf = vec![0u8; MAX_KEY];
    // SAFETY: `from` and `buf` are valid for the call; the host writes at
    // most `buf.len()` bytes.
    let n = unsafe { crate::sys::kv_next(from.as_ptr(), from.len(), buf.as_mut_ptr(), buf.len()) };
    let n = usize::try_from(n).ok()?;
    buf.truncate(n.min(buf.len()));
    Some(buf)
}

/// Every key of the slot, in byte order: what `hs_migrate` walks to
/// convert the state. Keys written while it walks are seen if they sort
/// after the cursor.
///
/// ```
/// use hotswap_guest::kv;
///
/// kv::put("walk/b", "2").unwrap();
/// kv::put("walk/a", "1").unwrap();
/// let mine: Vec<Vec<u8>> = kv::keys().filter(|k| k.starts_with(b"walk/")).collect();
/// assert_eq!(mine, [b"walk/a".to_vec(), b"walk/b".to_vec()]);
/// ```
pub fn keys() -> impl Iterator<Item = Vec<u8>> {
    let mut from = Some(Vec::new());
    core::iter::from_fn(move || {
        let key = next_key(from.as_ref()?)?;
        let mut after = key.clone();
        after.push(0);
        from = Some(after);
        Some(key)
    })
}

#[cfg(test)]
mod tests {
    use crate::kv;

    #[test]
    fn kv_native() {
        assert_eq!(kv::get("test-absent"), None);
        assert_eq!(kv::delete("test-absent"), Ok(false));
        kv::put("test-small", [7u8; 3]).unwrap();
        assert_eq!(kv::get("test-small"), Some(vec![7; 3]));
        let big = vec![9u8; 1000];
        kv::put("test-big", &big).unwrap();
        assert_eq!(kv::get("test-big"), Some(big));
        kv::put("test-empty", b"").unwrap();
        assert_eq!(kv::get("test-empty"), Some(vec![]));
        assert_eq!(kv::delete("test-small"), Ok(true));
        assert_eq!(kv::get("test-small"), None);
        assert_eq!(kv::put(vec![0u8; 1025], b"x"), Err(kv::KvError::TooLarge));
        assert_eq!(kv::KvError::Full.to_string(), "key-value store full");
    }
}
