//! `tally` v1, state schema 1: counts visits per name. The input is a
//! name; the reply is how often it has been seen. Each count lives in the
//! slot's key-value store under `visits/NAME`, as decimal text.
//!
//! Its v2 (`tally-v2`) keeps the counts as 8-byte integers instead, and
//! converts them when it is deployed over this one (docs/abi.md, "State
//! migration").

use hotswap_guest::kv;

/// Names are counted by their first 256 bytes, so every key fits the
/// store's 1 KiB limit.
const MAX_NAME: usize = 256;

fn process(input: &[u8]) -> Result<Vec<u8>, String> {
    let input = &input[..input.len().min(MAX_NAME)];
    let key = [b"visits/", input].concat();
    let seen = match kv::get(&key) {
        None => 0,
        Some(text) => String::from_utf8_lossy(&text)
            .parse::<u64>()
            .map_err(|e| format!("the count of {} is not a number: {e}", show(input)))?,
    };
    let seen = seen + 1;
    kv::put(&key, seen.to_string()).map_err(|e| e.to_string())?;
    Ok(format!("{} seen {seen} times", show(input)).into_bytes())
}

fn show(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

hotswap_guest::plugin!(process, name = "tally", state_schema = 1);

#[cfg(test)]
mod tests {
    #[test]
    fn counts_as_text() {
        assert_eq!(super::process(b"ann").unwrap(), b"ann seen 1 times");
        assert_eq!(super::process(b"ann").unwrap(), b"ann seen 2 times");
        assert_eq!(hotswap_guest::kv::get("visits/ann").unwrap(), b"2");
    }
}
