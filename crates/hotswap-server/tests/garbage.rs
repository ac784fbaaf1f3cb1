//! Garbage never takes the server down: random bytes as modules, random
//! paths and methods, and raw bytes that are not HTTP at all, on both
//! listeners. Afterwards it serves exactly as before.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;

/// A small deterministic generator: the same garbage every run, so a
/// failure can be reproduced.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() as usize) % max;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn garbage_on_every_listener_changes_nothing_and_stops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path()));
    let http = client();
    let admin = format!("http://{}", server.admin);
    let before = get(&http, &format!("{admin}/v1/slots")).json();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);

    // Random modules, half of them starting like WebAssembly.
    for i in 0..200 {
        let mut body = rng.bytes(4096);
        if i % 2 == 0 {
            let mut wasm = b"\0asm\x01\0\0\0".to_vec();
            wasm.append(&mut body);
            body = wasm;
        }
        let r = post(&http, &format!("{admin}/v1/slots/greet/revisions"), &body);
        assert!(
            (400..500).contains(&r.status),
            "module {i}: {} {}",
            r.status,
            r.body
        );
    }
    // Random paths, methods and JSON on the admin API.
    let paths = [
        "/v1/slots/greet/canary",
        "/v1/slots/greet/promote",
        "/v1/slots/%00/rollback",
        "/v1/x",
        "/v2",
        "/",
    ];
    for i in 0..200 {
        let path = paths[(rng.next() as usize) % paths.len()];
        let body = rng.bytes(256);
        // A fresh connection each: an endpoint that takes no body answers
        // without reading one, and then closes a keep-alive connection.
        let r = post(&client(), &format!("{admin}{path}?sha256={}", i), &body);
        assert!(
            (400..500).contains(&r.status),
            "{path}: {} {}",
            r.status,
            r.body
        );
    }
    // Query strings that do not parse: the API's JSON error, not plain text.
    for (method, path) in [
        ("GET", "/v1/events?follow=maybe"),
        ("POST", "/v1/slots/greet/revisions?canary=lots"),
        ("GET", "/v1/ebpf/x/maps/y?limit=-1"),
        ("GET", "/v1/ebpf/x/maps/y/entry"),
        ("GET", "/v1/ebpf/x/maps/y/entry?keys=1"),
    ] {
        let url = format!("{admin}{path}");
        let r = match method {
            "GET" => get(&client(), &url),
            _ => post(&client(), &url, b"\0asm"),
        };
        assert_eq!(r.status, 400, "{method} {path}: {}", r.body);
        assert_eq!(
            r.json()["kind"],
            "bad-request",
            "{method} {path}: {}",
            r.body
        );
    }
    // Raw bytes that are not HTTP, on both listeners.
    for addr in [server.admin, server.data] {
        for _ in 0..50 {
            let mut tcp = std::net::TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = tcp.write_all(&rng.bytes(2048));
            let _ = tcp.shutdown(std::net::Shutdown::Write);
            let mut answer = Vec::new();
            let _ = tcp.read_to_end(&mut answer); // a 400, or a closed connection
            assert!(
                answer.is_empty() || answer.starts_with(b"HTTP/1.1 4"),
                "{}",
                String::from_utf8_lossy(&answer)
            );
        }
    }
    // Random inputs to the plugin are its business, never the server's.
    for _ in 0..200 {
        let r = post(
            &http,
            &format!("http://{}/greet", server.data),
            &rng.bytes(512),
        );
        assert_eq!(r.status, 200);
    }

    assert_eq!(
        get(&http, &format!("{admin}/v1/slots")).json(),
        before,
        "garbage changed a slot"
    );
    assert_eq!(
        post(&http, &format!("http://{}/greet", server.data), b"still").body,
        "hello, still!"
    );
    assert_eq!(get(&http, &format!("{admin}/v1/health")).status, 200);
}
