//! `hello` 1.0.0, a wasi:http handler (see ../../hello.rs).

const GREETING: &str = "hello from v1";

include!("../../hello.rs");
