//! Every error kind the docs list, with its status, is the one
//! `ErrorKind` defines: a row of a docs table `| 409 | `stale` | ... |`
//! that names a wrong status or an unknown kind fails here.

use hotswap_api::{CallErrorKind, ErrorKind};

#[test]
fn the_documented_error_kinds_and_statuses_are_the_defined_ones() {
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs");
    let mut rows = 0;
    for file in ["admin-api.md", "ebpf.md"] {
        let text = std::fs::read_to_string(format!("{docs}/{file}")).unwrap();
        for line in text.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // `| 409 | `stale` | why |` splits into ["", "409", "`stale`", "why", ""].
            let [_, status, kind, ..] = cells[..] else {
                continue;
            };
            let Ok(status) = status.parse::<u16>() else {
                continue;
            };
            // One cell may list several: `trap`, `memory-limit`.
            let codes: Option<Vec<&str>> = kind
                .split(',')
                .map(|k| k.trim().strip_prefix('`')?.strip_suffix('`'))
                .collect();
            let Some(codes) = codes else { continue };
            for code in codes {
                // Admin API kinds, or the gateway's (`unavailable` is both,
                // with two statuses: either may be the row's).
                let statuses: Vec<u16> = [
                    (ErrorKind::from_code(code) != ErrorKind::Unknown)
                        .then(|| ErrorKind::from_code(code).status()),
                    (CallErrorKind::from_code(code) != CallErrorKind::Unknown)
                        .then(|| CallErrorKind::from_code(code).status()),
                ]
                .into_iter()
                .flatten()
                .collect();
                assert!(!statuses.is_empty(), "{file}: `{code}` is no error kind");
                assert!(
                    statuses.contains(&status),
                    "{file}: `{code}` is answered with {statuses:?}, not {status}"
                );
            }
            rows += 1;
        }
    }
    assert!(
        rows >= 20,
        "only {rows} documented kinds found: did the tables move?"
    );
}
