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

/// The slot `hotswap serve` deploys [`GREET_V1`] to on a first start.
pub const GREET_SLOT: &str = "greet";

/// `greet` 1.0.0 (Rust): `world` → `hello, world!`.
pub const GREET_V1: &[u8] = plugin!("greet_v1.wasm");
/// `greet` 2.0.0 (Rust): `world` → `HELLO, WORLD!! (v2)`.
pub const GREET_V2: &[u8] = plugin!("greet_v2.wasm");
/// `counter` (Rust): counts calls in the slot's key-value store.
pub const COUNTER: &[u8] = plugin!("counter.wasm");
/// `auth` (Rust, serde_json): bearer-token auth on an envelope route.
pub const AUTH: &[u8] = plugin!("auth.wasm");
/// `tally` 1.0.0 (Rust), state schema 1: visits per name, kept as text.
pub const TALLY_V1: &[u8] = plugin!("tally_v1.wasm");
/// `tally` 2.0.0 (Rust), state schema 2: kept as integers; `hs_migrate`
/// converts v1's state.
pub const TALLY_V2: &[u8] = plugin!("tally_v2.wasm");
/// `c-upper` (C): `abc` → `C: ABC`.
pub const C_UPPER: &[u8] = plugin!("c_upper.wasm");

/// `hello` 1.0.0, a wasi:http component (examples/components):
/// `hello from v1`, a `/count` kept in the slot's state, `/echo`, `/fetch`,
/// and the hostile `/trap`, `/loop` and `/eat`.
pub const HELLO_V1: &[u8] = plugin!("hello_v1_component.wasm");
/// `hello` 2.0.0: the same handler, answering `HELLO FROM V2`.
pub const HELLO_V2: &[u8] = plugin!("hello_v2_component.wasm");

/// `greet` 1.0.0 from the same source as [`GREET_V1`], as a native library
/// for this machine.
pub const GREET_V1_NATIVE: &[u8] = plugin!("libgreet_v1.so");
/// `greet` 2.0.0, native.
pub const GREET_V2_NATIVE: &[u8] = plugin!("libgreet_v2.so");
/// `counter`, native.
pub const COUNTER_NATIVE: &[u8] = plugin!("libcounter.so");
/// `tally` 1.0.0, native.
pub const TALLY_V1_NATIVE: &[u8] = plugin!("libtally_v1.so");
/// `tally` 2.0.0, native.
pub const TALLY_V2_NATIVE: &[u8] = plugin!("libtally_v2.so");

/// A copy of `module` (WASM or native) with its own digest and the same
/// behaviour: a revision that has never been compiled or loaded.
///
/// A WASM module gets a custom section appended; a native library gets
/// bytes after its end, which neither the ELF reader nor the loader looks at.
pub fn variant(module: &[u8], n: u32) -> Vec<u8> {
    let name = b"hotswap.variant";
    let payload = n.to_le_bytes();
    let mut out = module.to_vec();
    if !module.starts_with(b"\0asm") {
        out.extend_from_slice(name);
        out.extend_from_slice(&payload);
        return out;
    }
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
    ("tally-v1", TALLY_V1),
    ("tally-v2", TALLY_V2),
    ("c-upper", C_UPPER),
];

/// Every native example, by name.
pub const ALL_NATIVE: &[(&str, &[u8])] = &[
    ("greet-v1", GREET_V1_NATIVE),
    ("greet-v2", GREET_V2_NATIVE),
    ("counter", COUNTER_NATIVE),
    ("tally-v1", TALLY_V1_NATIVE),
    ("tally-v2", TALLY_V2_NATIVE),
];
