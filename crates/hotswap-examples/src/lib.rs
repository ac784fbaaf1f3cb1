//! The example plugins under `examples/plugins`, built from source when this
//! crate builds and embedded as bytes.
//!
//! The demo, the server's defaults, the tests and the benchmarks all use
//! these, so everyone runs exactly the same modules and no binary is ever
//! committed.
//!
//! ```
//! assert_eq!(&hotswap_examples::GREET_V1[..4], b"\0asm");
//! ```

macro_rules! plugin {
    ($file:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $file))
    };
}

/// `greet` 1.0.0 (Rust): `world` → `hello, world!`.
pub const GREET_V1: &[u8] = plugin!("greet_v1.wasm");
/// `greet` 2.0.0 (Rust): `world` → `HELLO, WORLD!! (v2)`.
pub const GREET_V2: &[u8] = plugin!("greet_v2.wasm");
/// `counter` (Rust): counts calls in the slot's key-value store.
pub const COUNTER: &[u8] = plugin!("counter.wasm");
/// `auth` (Rust, serde_json): bearer-token auth on an envelope route.
pub const AUTH: &[u8] = plugin!("auth.wasm");
/// `c-upper` (C): `abc` → `C: ABC`.
pub const C_UPPER: &[u8] = plugin!("c_upper.wasm");

/// A copy of `module` with a custom section appended, so it has its own
/// digest: a revision that has never been compiled, with the same behaviour.
pub fn variant(module: &[u8], n: u32) -> Vec<u8> {
    let name = b"hotswap.variant";
    let payload = n.to_le_bytes();
    let mut out = module.to_vec();
    out.push(0); // custom section
    out.push((1 + name.len() + payload.len()) as u8); // its size: one LEB128 byte
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

/// Every example, by name.
pub const ALL: &[(&str, &[u8])] = &[
    ("greet-v1", GREET_V1),
    ("greet-v2", GREET_V2),
    ("counter", COUNTER),
    ("auth", AUTH),
    ("c-upper", C_UPPER),
];
