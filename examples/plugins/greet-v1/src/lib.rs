//! `greet` 1.0.0: the smallest useful hotswap plugin. It replies
//! `hello, <input>!` (the input read as UTF-8, lossily; empty input greets the
//! world), keeps no state and has no lifecycle hooks: one function and one
//! `plugin!` line. `greet-v2` is the next version of the same plugin (same
//! `name = "greet"`), so the pair shows a hot swap whose replies visibly change.

fn process(input: &[u8]) -> Result<Vec<u8>, String> {
    let name = if input.is_empty() {
        "world".into()
    } else {
        String::from_utf8_lossy(input)
    };
    Ok(format!("hello, {name}!").into_bytes())
}

hotswap_guest::plugin!(process, name = "greet");

#[cfg(test)]
mod tests {
    #[test]
    fn greets() {
        assert_eq!(super::process(b"ada").unwrap(), b"hello, ada!");
        assert_eq!(super::process(b"").unwrap(), b"hello, world!");
    }
}
