//! The XDP filter on one end of a veth pair whose other end is in a network
//! namespace: replaced 200 times while sequence-numbered UDP packets cross,
//! and its blocklist changed live.

mod common;

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotswap_ebpf::{examples, EbpfTier, Hook};
use serde_json::json;

const HOST: &str = "10.199.0.1";
const PEER: &str = "10.199.0.2";

/// A veth pair: `host` here, its peer in namespace `ns`. Removed on drop.
struct Veth {
    host: String,
    ns: String,
}

impl Veth {
    /// `None` (after saying why) where `ip` is missing; under `CI=true`
    /// that is a failure.
    fn new() -> Option<Veth> {
        if Command::new("ip").arg("-V").output().is_err() {
            let why = "`ip` (iproute2) is not installed; scripts/setup installs it";
            hotswap_testkit::cannot_run_here(why);
            return None;
        }
        let id = std::process::id() % 100_000;
        let veth = Veth {
            host: format!("hsx{id}"),
            ns: format!("hotswap-test-{id}"),
        };
        let peer = format!("hsy{id}");
        ip(&["netns", "add", &veth.ns]);
        ip(&[
            "link", "add", &veth.host, "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["link", "set", &peer, "netns", &veth.ns]);
        ip(&["addr", "add", &format!("{HOST}/24"), "dev", &veth.host]);
        ip(&["link", "set", &veth.host, "up"]);
        ip(&[
            "-n",
            &veth.ns,
            "addr",
            "add",
            &format!("{PEER}/24"),
            "dev",
            &peer,
        ]);
        ip(&["-n", &veth.ns, "link", "set", &peer, "up"]);
        Some(veth)
    }

    /// A UDP socket inside the namespace, bound to the peer's address.
    fn peer_socket(&self) -> UdpSocket {
        let ns = File::open(format!("/run/netns/{}", self.ns)).unwrap();
        // A thread of its own enters the namespace; the socket keeps it.
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on this thread only, with a valid netns fd.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                UdpSocket::bind(format!("{PEER}:0")).unwrap()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The filter's per-action counters: (passed, dropped).
fn stats(tier: &EbpfTier) -> (i64, i64) {
    let stats = tier.map("fw", "stats").unwrap();
    let get = |k: &str| stats.get(k).unwrap().unwrap().value.as_i64().unwrap();
    (get("0"), get("1"))
}

/// Waits, bounded, until the filter has counted `want`: XDP runs in the
/// receiving side's softirq, after `send` returns.
fn wait_for_stats(tier: &EbpfTier, want: (i64, i64)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats(tier) != want {
        assert!(
            Instant::now() < deadline,
            "counters {:?}, want {want:?}",
            stats(tier)
        );
        std::thread::yield_now();
    }
}

#[test]
fn packets_are_counted_exactly_while_the_filter_is_replaced_and_the_blocklist_acts_at_once() {
    let Some(tier) = common::tier() else { return };
    let Some(veth) = Veth::new() else { return };
    let hook: Hook = format!("xdp:{}", veth.host).parse().unwrap();
    tier.load("fw", examples::XDP_FILTER_V1, None, &hook)
        .unwrap();

    let receiver = UdpSocket::bind(format!("{HOST}:0")).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let to: SocketAddr = receiver.local_addr().unwrap();
    let sender = veth.peer_socket();

    // Sender and receiver run in step (at most a window apart), so no
    // packet is lost to a full socket buffer: every loss would be the filter's.
    const WINDOW: u64 = 64;
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    // How many the sender sent in all, set before its last packet leaves.
    let total = Arc::new(AtomicU64::new(u64::MAX));
    let sent = {
        let (received, done, total) = (received.clone(), done.clone(), total.clone());
        std::thread::spawn(move || {
            // At least 2000 packets, and on until the replacements are done.
            for seq in 0.. {
                while seq - received.load(Ordering::SeqCst) >= WINDOW {
                    std::thread::yield_now();
                }
                let last = seq + 1 >= 2000 && done.load(Ordering::SeqCst);
                if last {
                    total.store(seq + 1, Ordering::SeqCst);
                }
                sender.send_to(&seq.to_be_bytes(), to).unwrap();
                if last {
                    return sender;
                }
            }
            unreachable!()
        })
    };
    let replacer = {
        let done = done.clone();
        let tier_root = tier.root.clone();
        let hook = hook.clone();
        std::thread::spawn(move || {
            let tier = EbpfTier::new(tier_root).unwrap();
            let mut swaps = Vec::new();
            for i in 0..200 {
                let object = if i % 2 == 0 {
                    examples::XDP_FILTER_V2
                } else {
                    examples::XDP_FILTER_V1
                };
                let placed = tier.load("fw", object, None, &hook).unwrap();
                assert!(!placed.attached, "a replacement, not a new attachment");
                swaps.push(placed.swap);
            }
            done.store(true, Ordering::SeqCst);
            swaps
        })
    };
    let mut next = 0u64;
    while next != total.load(Ordering::SeqCst) {
        let mut buf = [0u8; 8];
        let (n, from) = receiver
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("packet {next} did not arrive: {e}"));
        assert_eq!((n, from.ip().to_string()), (8, PEER.to_string()));
        assert_eq!(
            u64::from_be_bytes(buf),
            next,
            "in order, none lost, none twice"
        );
        next += 1;
        received.store(next, Ordering::SeqCst);
    }
    let m = next;
    let swaps = replacer.join().unwrap();
    let sender = sent.join().unwrap();
    assert_eq!(swaps.len(), 200);
    assert_eq!(
        stats(&tier),
        (m as i64, 0),
        "the filter counted each of the {m} packets once"
    );

    // Block the peer: its very next packets are dropped (counted), and
    // none arrives; unblock: the next one arrives.
    let blocklist = tier.map("fw", "blocklist").unwrap();
    assert_eq!(blocklist.summary().key, "IPv4 address");
    let entry = blocklist.set(PEER, "1").unwrap();
    assert_eq!(entry.key, json!(PEER));
    for seq in m..m + 10 {
        sender.send_to(&seq.to_be_bytes(), to).unwrap();
    }
    wait_for_stats(&tier, (m as i64, 10));
    assert!(blocklist.delete(PEER).unwrap());
    sender.send_to(&(m + 10).to_be_bytes(), to).unwrap();
    let mut buf = [0u8; 8];
    receiver.recv_from(&mut buf).unwrap();
    assert_eq!(
        u64::from_be_bytes(buf),
        m + 10,
        "none of the 10 blocked packets got through"
    );
    wait_for_stats(&tier, (m as i64 + 1, 10));
}
