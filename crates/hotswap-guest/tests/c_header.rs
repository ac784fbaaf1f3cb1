//! `include/hotswap.h` against hotswap-abi: every `#define`d number, log
//! level, host import, export prototype, and the manifest macros' section
//! and ABI version. C cannot depend on the Rust definition, so this is what
//! keeps the header from drifting silently.
//!
//! The parsing is plain text, for the shapes the header uses:
//! `#define HOTSWAP_X N`, `HOTSWAP_LOG_X = N,`, `HOTSWAP_IMPORT("name")`
//! followed by a prototype, `HOTSWAP_EXPORT("name") prototype;`. C types
//! map to wasm32 types: pointers, `size_t` and 32-bit integers are `i32`,
//! 64-bit integers `i64`.

use hotswap_abi::{code, imports, limits, ValType, IMPORTS, WASM_EXPORTS};
use hotswap_guest::c_sdk::HEADER;

#[test]
fn the_header_matches_hotswap_abi() {
    let problems = problems(HEADER);
    assert!(
        problems.is_empty(),
        "include/hotswap.h disagrees with hotswap-abi:\n  {}",
        problems.join("\n  ")
    );
}

/// The check itself must be able to fail: each change below is one kind of
/// drift, and each must be reported.
#[test]
fn drift_is_caught() {
    for (from, to) in [
        (
            "#define HOTSWAP_KV_FULL (-2)",
            "#define HOTSWAP_KV_FULL (-4)",
        ),
        (
            "#define HOTSWAP_MAX_KEY 1024",
            "#define HOTSWAP_MAX_KEY 2048",
        ),
        (
            "#define HOTSWAP_ABI_VERSION 1",
            "#define HOTSWAP_ABI_VERSION 2",
        ),
        (
            "#define HOTSWAP_KV_STORAGE (-3)\n",
            "#define HOTSWAP_KV_GONE (-4)\n",
        ),
        ("HOTSWAP_LOG_DEBUG = 3", "HOTSWAP_LOG_DEBUG = 5"),
        ("int64_t hotswap_kv_get(", "int32_t hotswap_kv_get("),
        (
            "void hotswap_log(int32_t level",
            "void hotswap_log(int64_t level",
        ),
        ("HOTSWAP_IMPORT(\"kv_next\")", "HOTSWAP_IMPORT(\"kv_scan\")"),
        ("import_module(\"hotswap\")", "import_module(\"env\")"),
        ("int32_t hs_health(void)", "void hs_health(void)"),
        ("HOTSWAP_EXPORT(\"hs_migrate\") ", ""),
        (r#"\\\"abi\\\":1}"#, r#"\\\"abi\\\":3}"#),
        (
            "custom_section.hotswap.manifest",
            "custom_section.hotswap.meta",
        ),
    ] {
        assert!(HEADER.contains(from), "the header no longer has `{from}`");
        let drifted = HEADER.replacen(from, to, 1);
        assert!(
            !problems(&drifted).is_empty(),
            "`{from}` → `{to}` went unnoticed"
        );
    }
}

/// Everything in `header` that disagrees with hotswap-abi, in words.
fn problems(header: &str) -> Vec<String> {
    let mut out = Vec::new();
    check_numbers(header, &mut out);
    check_imports(header, &mut out);
    check_exports(header, &mut out);
    check_manifest(header, &mut out);
    out
}

/// Every number the header names, and what hotswap-abi says it is.
fn expected_numbers() -> Vec<(&'static str, i64)> {
    vec![
        ("HOTSWAP_ABI_VERSION", hotswap_abi::ABI_VERSION.into()),
        ("HOTSWAP_KV_ABSENT", code::KV_ABSENT.into()),
        ("HOTSWAP_KV_TOO_LARGE", code::KV_TOO_LARGE.into()),
        ("HOTSWAP_KV_FULL", code::KV_FULL.into()),
        ("HOTSWAP_KV_STORAGE", code::KV_STORAGE.into()),
        ("HOTSWAP_MAX_KEY", limits::MAX_KEY as i64),
        ("HOTSWAP_MAX_VALUE", limits::MAX_VALUE as i64),
        ("HOTSWAP_MAX_KEYS", limits::MAX_KEYS as i64),
        ("HOTSWAP_LOG_ERROR", code::LOG_ERROR.into()),
        ("HOTSWAP_LOG_WARN", code::LOG_WARN.into()),
        ("HOTSWAP_LOG_INFO", code::LOG_INFO.into()),
        ("HOTSWAP_LOG_DEBUG", code::LOG_DEBUG.into()),
        ("HOTSWAP_LOG_TRACE", code::LOG_TRACE.into()),
    ]
}

/// `#define HOTSWAP_X N` and enumerators `HOTSWAP_X = N,`: each must be
/// expected, with its value, and each expected one must be there.
fn check_numbers(header: &str, out: &mut Vec<String>) {
    let mut found: Vec<(String, i64)> = Vec::new();
    for line in header.lines().map(str::trim) {
        let (name, value) = if let Some(rest) = line.strip_prefix("#define ") {
            match rest.split_once(char::is_whitespace) {
                Some((name, value)) => (name, value.trim()),
                None => continue,
            }
        } else if let Some((name, value)) = line.split_once(" = ") {
            (name.trim(), value.trim_end_matches(',').trim())
        } else {
            continue;
        };
        // Only numbers: macros with arguments and guards are not constants.
        if let (true, Some(n)) = (name.starts_with("HOTSWAP_"), number(value)) {
            found.push((name.to_string(), n));
        }
    }
    let expected = expected_numbers();
    for (name, value) in &found {
        match expected.iter().find(|(n, _)| n == name) {
            Some((_, want)) if want == value => {}
            Some((_, want)) => out.push(format!("{name} is {value}, hotswap-abi says {want}")),
            None => out.push(format!(
                "{name} = {value} is not checked: add it to expected_numbers() in tests/c_header.rs"
            )),
        }
    }
    for (name, _) in &expected {
        if !found.iter().any(|(n, _)| n == name) {
            out.push(format!("{name} is missing"));
        }
    }
}

/// A C integer literal, maybe negative, maybe in parentheses.
fn number(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(text);
    text.trim().parse().ok()
}

/// The host imports: `HOTSWAP_IMPORT` must name module `hotswap`, and each
/// `HOTSWAP_IMPORT("name")` must be followed by a prototype of the ABI's
/// type; every host function must be declared.
fn check_imports(header: &str, out: &mut Vec<String>) {
    match between(header, "import_module(\"", "\"") {
        Some(m) if m == hotswap_abi::HOST_MODULE => {}
        other => out.push(format!(
            "HOTSWAP_IMPORT imports from {other:?}, not `{}`",
            hotswap_abi::HOST_MODULE
        )),
    }
    let lines: Vec<&str> = header.lines().map(str::trim).collect();
    let mut seen = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line
            .strip_prefix("HOTSWAP_IMPORT(\"")
            .and_then(|r| r.strip_suffix("\")"))
        else {
            continue;
        };
        seen.push(name.to_string());
        let Some(f) = imports::find(name) else {
            out.push(format!(
                "the header imports `{name}`, which the host does not have"
            ));
            continue;
        };
        match lines.get(i + 1).map(|l| prototype(l)) {
            Some(Ok((params, results))) if params == f.params && results == f.results => {}
            Some(Ok((params, results))) => out.push(format!(
                "`{name}` is declared {params:?} -> {results:?}, the host's is {}",
                f.signature()
            )),
            Some(Err(e)) => out.push(format!("`{name}`: {e}")),
            None => out.push(format!("`{name}` has no prototype")),
        }
    }
    for f in IMPORTS {
        if !seen.iter().any(|s| s == f.name) {
            out.push(format!("host function `{}` is not declared", f.name));
        }
    }
}

/// `HOTSWAP_EXPORT("name") prototype;`: each must be an ABI export of its
/// type, and every ABI function export must be declared.
fn check_exports(header: &str, out: &mut Vec<String>) {
    let mut seen = Vec::new();
    for line in header.lines().map(str::trim) {
        let Some((name, decl)) = line
            .strip_prefix("HOTSWAP_EXPORT(\"")
            .and_then(|r| r.split_once("\")"))
        else {
            continue;
        };
        seen.push(name.to_string());
        let Some(e) = WASM_EXPORTS.iter().find(|e| e.name == name) else {
            out.push(format!(
                "the header exports `{name}`, which is not an ABI export"
            ));
            continue;
        };
        match prototype(decl) {
            Ok((params, results)) if params == e.params && results == e.results => {}
            Ok((params, results)) => out.push(format!(
                "`{name}` is declared {params:?} -> {results:?}, the ABI says {}",
                e.signature()
            )),
            Err(err) => out.push(format!("`{name}`: {err}")),
        }
    }
    for e in WASM_EXPORTS {
        if !seen.iter().any(|s| s == e.name) {
            out.push(format!("export `{}` has no prototype", e.name));
        }
    }
}

/// Both manifest macros write the ABI's section and version.
fn check_manifest(header: &str, out: &mut Vec<String>) {
    let sections: Vec<&str> = header
        .split(".section .custom_section.")
        .skip(1)
        .map(|rest| rest.split(',').next().unwrap_or(""))
        .collect();
    let versions: Vec<&str> = header
        .split(r#"\\\"abi\\\":"#)
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap_or("")
        })
        .collect();
    if sections.len() != 2 || versions.len() != 2 {
        out.push(format!(
            "expected two manifest macros, found {} sections and {} ABI versions",
            sections.len(),
            versions.len()
        ));
    }
    for s in sections {
        if s != hotswap_abi::MANIFEST_SECTION {
            out.push(format!(
                "a manifest macro writes section `{s}`, not `{}`",
                hotswap_abi::MANIFEST_SECTION
            ));
        }
    }
    for v in versions {
        if v != hotswap_abi::ABI_VERSION.to_string() {
            out.push(format!(
                "a manifest macro writes abi {v}, not {}",
                hotswap_abi::ABI_VERSION
            ));
        }
    }
}

/// The text between the first `start` and the `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &text[text.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// `ret name(type a, type b);` as wasm32 parameter and result types.
fn prototype(decl: &str) -> Result<(Vec<ValType>, Vec<ValType>), String> {
    let decl = decl.trim().trim_end_matches(';').trim();
    let not_one = || format!("`{decl}` is not a prototype");
    let (head, params) = decl.split_once('(').ok_or_else(not_one)?;
    let params = params.strip_suffix(')').ok_or_else(not_one)?;
    // The return type is everything before the function's name; a pointer
    // is an i32 whatever it points to.
    let results = if head.contains('*') {
        vec![ValType::I32]
    } else {
        match head.trim().rsplit_once(' ').ok_or_else(not_one)?.0.trim() {
            "void" => Vec::new(),
            ty => vec![wasm_type(ty)?],
        }
    };
    let params = match params.trim() {
        "" | "void" => Vec::new(),
        list => list
            .split(',')
            .map(|p| {
                let p = p.trim();
                if p.contains('*') {
                    return Ok(ValType::I32);
                }
                // `type name`: drop the name.
                wasm_type(p.rsplit_once(' ').map_or(p, |(ty, _)| ty))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok((params, results))
}

/// A C scalar type's wasm32 type.
fn wasm_type(ty: &str) -> Result<ValType, String> {
    match ty.trim().trim_start_matches("const ").trim() {
        "int32_t" | "uint32_t" | "size_t" | "int" | "unsigned" | "uintptr_t" => Ok(ValType::I32),
        "int64_t" | "uint64_t" | "long long" => Ok(ValType::I64),
        other => Err(format!("cannot map C type `{other}` to a wasm32 type")),
    }
}
