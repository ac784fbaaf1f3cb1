//! `greet` 2.0.0: the second version of the `greet` plugin (same
//! `name = "greet"` as `greet-v1`, version from Cargo.toml). It shouts,
//! `HELLO, <INPUT>!! (v2)`, so that after a hot swap from 1.0.0 every reply
//! shows which revision served it.

fn process(input: &[u8]) -> Result<Vec<u8>, String> {
    let name = if input.is_empty() {
        "world".into()
    } else {
        String::from_utf8_lossy(input)
    };
    Ok(format!("HELLO, {}!! (v2)", name.to_uppercase()).into_bytes())
}

hotswap_guest::plugin!(process, name = "greet");

#[cfg(test)]
mod tests {
    #[test]
    fn shouts() {
        assert_eq!(super::process(b"ada").unwrap(), b"HELLO, ADA!! (v2)");
        assert_eq!(super::process(b"").unwrap(), b"HELLO, WORLD!! (v2)");
    }
}
