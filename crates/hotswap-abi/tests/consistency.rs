//! The tables agree with themselves: unique names, the native binding has
//! one field per host function, codes say what docs/abi.md says.

use hotswap_abi::{code, exports, imports, native::HostTable, IMPORTS, WASM_EXPORTS};

#[test]
fn names_are_unique() {
    for (i, f) in IMPORTS.iter().enumerate() {
        assert!(
            IMPORTS[i + 1..].iter().all(|g| g.name != f.name),
            "{}",
            f.name
        );
    }
    for (i, e) in WASM_EXPORTS.iter().enumerate() {
        assert!(
            WASM_EXPORTS[i + 1..].iter().all(|g| g.name != e.name),
            "{}",
            e.name
        );
    }
}

#[test]
fn every_optional_export_has_a_wasm_type() {
    for name in exports::OPTIONAL {
        let e = WASM_EXPORTS.iter().find(|e| e.name == *name).unwrap();
        assert!(!e.required, "{name}");
    }
    let required: Vec<_> = WASM_EXPORTS
        .iter()
        .filter(|e| e.required)
        .map(|e| e.name)
        .collect();
    assert_eq!(required, [exports::ALLOC, exports::PROCESS]);
}

#[test]
fn the_host_table_has_one_function_per_import() {
    // abi, size, ctx, then one pointer per host function.
    let pointer = std::mem::size_of::<usize>();
    assert_eq!(
        HostTable::SIZE as usize,
        8 + pointer + IMPORTS.len() * pointer
    );
    assert!(imports::find(imports::KV_NEXT).is_some());
    assert!(imports::find("env").is_none());
}

#[test]
fn codes_are_the_documented_ones() {
    assert_eq!(
        (
            code::KV_ABSENT,
            code::KV_TOO_LARGE,
            code::KV_FULL,
            code::KV_STORAGE
        ),
        (-1, -1, -2, -3)
    );
    assert_eq!(
        (code::CALL_OK, code::CALL_ERROR, code::CALL_TRAP),
        (0, 1, 2)
    );
    assert_eq!(code::BAD_ARGUMENT, code::KV_TOO_LARGE);
}
