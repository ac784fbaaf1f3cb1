//! `tally` v2, state schema 2: as v1, with each count kept as an 8-byte
//! little-endian integer under `visits/NAME`. Deployed over v1, its
//! `migrate` converts every count v1 wrote; a count it cannot read fails
//! the migration, and v1 serves on with its state untouched.

use hotswap_guest::kv;

const PREFIX: &[u8] = b"visits/";

/// Names are counted by their first 256 bytes, as in v1.
const MAX_NAME: usize = 256;

fn process(input: &[u8]) -> Result<Vec<u8>, String> {
    let input = &input[..input.len().min(MAX_NAME)];
    let key = [PREFIX, input].concat();
    let seen = match kv::get(&key) {
        None => 0,
        Some(bytes) => {
            count(&bytes).ok_or_else(|| format!("the count of {} is damaged", show(input)))?
        }
    };
    let seen = seen + 1;
    kv::put(&key, seen.to_le_bytes()).map_err(|e| e.to_string())?;
    Ok(format!("{}: visit {seen}", show(input)).into_bytes())
}

fn count(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Schema 1 → 2: every `visits/` value from decimal text to 8 bytes.
fn migrate(from: u32) -> Result<(), String> {
    if from != 1 {
        return Err(format!("tally v2 converts schema 1, not {from}"));
    }
    for key in kv::keys().filter(|k| k.starts_with(PREFIX)) {
        let text = kv::get(&key).unwrap_or_default();
        let n: u64 = String::from_utf8_lossy(&text)
            .parse()
            .map_err(|e| format!("{} holds {:?}: {e}", show(&key), show(&text)))?;
        kv::put(&key, n.to_le_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

hotswap_guest::plugin!(process, name = "tally", state_schema = 2, migrate = migrate);

#[cfg(test)]
mod tests {
    use hotswap_guest::kv;

    #[test]
    fn migrates_text_counts_and_refuses_garbage() {
        kv::put("visits/bob", "41").unwrap();
        super::migrate(1).unwrap();
        assert_eq!(super::process(b"bob").unwrap(), b"bob: visit 42");
        // Converted state is not schema 1 any more; start over with garbage.
        kv::delete("visits/bob").unwrap();
        kv::put("visits/eve", "many").unwrap();
        assert!(super::migrate(1).unwrap_err().contains("visits/eve"));
        assert!(super::migrate(3).is_err());
    }
}
