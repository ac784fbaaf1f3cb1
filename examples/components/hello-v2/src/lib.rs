//! `hello` 2.0.0: the same handler as 1.0.0, answering differently, so a
//! swap shows in every reply (see ../../hello.rs).

const GREETING: &str = "HELLO FROM V2";

include!("../../hello.rs");
