//! `counter`: a stateful plugin. Instances come and go and a swap replaces
//! the code, so the count does not live in the plugin's memory but in the
//! slot's key-value store, under the key `count` (a `u64`, 8 bytes little
//! endian), which every instance of every revision shares. Each call adds one
//! and replies with the new count in decimal; the input `reset` sets it to 0
//! and replies `0`. It also shows an `init` hook.

use hotswap_guest::kv;

const KEY: &str = "count";

fn process(input: &[u8]) -> Result<Vec<u8>, String> {
    let count = if input == b"reset" {
        0
    } else {
        read()?.wrapping_add(1)
    };
    kv::put(KEY, count.to_le_bytes()).map_err(|e| format!("storing {KEY}: {e}"))?;
    Ok(count.to_string().into_bytes())
}

/// The stored count; 0 when none was stored yet.
fn read() -> Result<u64, String> {
    match kv::get(KEY) {
        None => Ok(0),
        Some(bytes) => bytes
            .try_into()
            .map(u64::from_le_bytes)
            .map_err(|bytes: Vec<u8>| format!("{KEY} holds {} bytes, not 8", bytes.len())),
    }
}

fn init() -> Result<(), String> {
    hotswap_guest::log::info("counter ready");
    Ok(())
}

hotswap_guest::plugin!(process, init = init);

#[cfg(test)]
mod tests {
    #[test]
    fn counts_and_resets() {
        assert_eq!(super::process(b"reset").unwrap(), b"0");
        assert_eq!(super::process(b"").unwrap(), b"1");
        assert_eq!(super::process(b"anything").unwrap(), b"2");
        assert_eq!(super::process(b"reset").unwrap(), b"0");
        assert_eq!(super::process(b"").unwrap(), b"1");
    }
}
