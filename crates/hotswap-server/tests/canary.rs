//! Canaries through the server: the weight of traffic they take, sticky per
//! client key, promotion, and automatic rollback on a broken error budget.

mod common;

use std::io::{BufRead, BufReader};

use common::*;

fn call_as(http: &ureq::Agent, url: &str, key: &str) -> (u16, String, bool) {
    let mut r = http
        .post(url)
        .header("x-hotswap-key", key)
        .send(&b"c"[..])
        .unwrap();
    let canary = r.headers().get("x-hotswap-canary").is_some();
    (
        r.status().as_u16(),
        r.body_mut().read_to_string().unwrap(),
        canary,
    )
}

/// Calls `url` `n` times with `headers` and counts the canary's answers.
fn canary_share(http: &ureq::Agent, url: &str, n: u32, headers: &[(&str, String)]) -> u32 {
    (0..n)
        .map(|_| {
            let mut req = http.post(url);
            for (name, value) in headers {
                req = req.header(*name, value);
            }
            let r = req.send(&b"c"[..]).unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.headers().get("x-hotswap-canary").is_some() as u32
        })
        .sum()
}

fn deploy_canary(http: &ureq::Agent, admin: &str, weight: u8) {
    let r = post(
        http,
        &format!("{admin}/v1/slots/greet/revisions?canary={weight}"),
        hotswap_examples::GREET_V2,
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn from_one_address_without_a_key_a_canary_still_takes_its_weight() {
    // Every request comes from 127.0.0.1, as from a load balancer. Keyed by
    // that address, a 10 % canary would get all of them or none.
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path()));
    let http = client();
    deploy_canary(&http, &format!("http://{}", server.admin), 10);
    let greet = format!("http://{}/greet", server.data);
    let n = 4000;
    let to_canary = canary_share(&http, &greet, n, &[]);
    // 10 % of 4000 is 400, with a standard deviation of 19: ±100 is 5 of them.
    assert!(
        (300..=500).contains(&to_canary),
        "the canary took {to_canary} of {n} requests"
    );
}

#[test]
fn behind_a_trusted_proxy_each_forwarded_client_sticks_to_its_revision() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(hotswap_server::ServerConfig {
        canary: hotswap_server::CanaryConfig {
            trusted_proxies: vec!["127.0.0.1".into()],
            ..Default::default()
        },
        ..config(dir.path())
    });
    let http = client();
    deploy_canary(&http, &format!("http://{}", server.admin), 30);
    let greet = format!("http://{}/greet", server.data);
    let mut sticky_canaries = 0;
    for i in 0..200u32 {
        let client = format!("192.0.2.{}, 10.0.{}.{}", i % 250, i / 250, i % 250 + 1);
        // The proxy is trusted, the hop before it (10.x) is not: the client
        // is the 10.x address, and each one always lands on one revision.
        let forwarded = [("x-forwarded-for", client)];
        let share = canary_share(&http, &greet, 5, &forwarded);
        assert!(
            share == 0 || share == 5,
            "client {i} moved ({share} of 5 on the canary)"
        );
        sticky_canaries += (share == 5) as u32;
    }
    // 30 % of 200 clients is 60, standard deviation 6.5.
    assert!(
        (30..=90).contains(&sticky_canaries),
        "{sticky_canaries} of 200 clients"
    );

    // The same header from a peer that is not trusted is ignored: with no
    // key, requests split by weight instead of sticking.
    let untrusted = tempfile::tempdir().unwrap();
    let server = start(config(untrusted.path()));
    deploy_canary(&http, &format!("http://{}", server.admin), 50);
    let greet = format!("http://{}/greet", server.data);
    let forged = [("x-forwarded-for", "192.0.2.1".to_string())];
    let share = canary_share(&http, &greet, 400, &forged);
    assert!(
        (100..=300).contains(&share),
        "{share} of 400 forged-header requests on the canary"
    );
}

#[test]
fn a_canary_takes_its_weight_sticks_per_key_and_can_be_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path()));
    let http = client();
    let admin = format!("http://{}", server.admin);
    let greet = format!("http://{}/greet", server.data);
    let r = post(
        &http,
        &format!("{admin}/v1/slots/greet/revisions?canary=20"),
        hotswap_examples::GREET_V2,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["revision"]["state"], "canary");
    let slot = get(&http, &format!("{admin}/v1/slots/greet")).json();
    assert_eq!(slot["active"]["weight"], 80);
    assert_eq!(slot["canary"]["weight"], 20);

    // 20 % ± 4 % over 2000 distinct clients (4 standard deviations).
    let clients = 2000;
    let mut to_canary = 0;
    for i in 0..clients {
        let (status, body, canary) = call_as(&http, &greet, &format!("client-{i}"));
        assert_eq!(status, 200);
        assert_eq!(
            canary,
            body == "HELLO, C!! (v2)",
            "header and reply disagree"
        );
        to_canary += canary as u32;
    }
    let share = to_canary as f64 / clients as f64;
    assert!(
        (0.16..=0.24).contains(&share),
        "the canary took {share:.3} of clients"
    );

    // Each client sticks to its revision.
    for i in 0..50 {
        let key = format!("client-{i}");
        let first = call_as(&http, &greet, &key);
        for _ in 0..10 {
            assert_eq!(call_as(&http, &greet, &key), first, "{key} moved");
        }
    }

    // The weight can change; malformed JSON is refused and changes nothing.
    let bad = http
        .post(&format!("{admin}/v1/slots/greet/canary"))
        .header("content-type", "application/json")
        .send(&b"{\"weight\": \"lots\"}"[..])
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let r = http
        .post(&format!("{admin}/v1/slots/greet/canary"))
        .header("content-type", "application/json")
        .send(&b"{\"weight\": 100}"[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(call_as(&http, &greet, "anyone").1, "HELLO, C!! (v2)");

    // A canary survives a restart, weight and all.
    server.stop();
    let server = start(config(dir.path()));
    let admin = format!("http://{}", server.admin);
    let slot = get(&http, &format!("{admin}/v1/slots/greet")).json();
    assert_eq!(slot["canary"]["weight"], 100, "{slot}");

    let r = post(&http, &format!("{admin}/v1/slots/greet/promote"), b"");
    assert_eq!(r.status, 200, "{}", r.body);
    let slot = get(&http, &format!("{admin}/v1/slots/greet")).json();
    assert_eq!(slot["active"]["version"], "2.0.0");
    assert!(slot["canary"].is_null());
    let r = post(&http, &format!("{admin}/v1/slots/greet/promote"), b"");
    assert_eq!(
        (r.status, r.json()["kind"].as_str().unwrap()),
        (409, "no-canary")
    );
}

#[test]
fn a_canary_over_its_error_budget_is_rolled_back_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(strict_budget(config(dir.path())));
    let http = client();
    let admin = format!("http://{}", server.admin);
    let trapping = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "hs_alloc") (param i32) (result i32) (i32.const 1024))
             (func (export "hs_process") (param i32 i32) (result i64) unreachable)
             (@custom "hotswap.manifest" "{\"name\":\"greet\",\"version\":\"3-broken\",\"abi\":1}"))"#,
    )
    .unwrap();

    // Follow the events before the canary starts, to see the rollback.
    let (tx, rx) = std::sync::mpsc::channel();
    let events = format!("{admin}/v1/events?follow=true");
    let (subscribed_tx, subscribed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = ureq::get(&events).call().unwrap();
        subscribed_tx.send(()).unwrap();
        for line in BufReader::new(r.body_mut().as_reader())
            .lines()
            .map_while(Result::ok)
        {
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let e: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
            if e["transition"] == "rolled-back" {
                let _ = tx.send(e);
                return;
            }
        }
    });
    subscribed_rx.recv().unwrap();

    let r = post(
        &http,
        &format!("{admin}/v1/slots/greet/revisions?canary=50"),
        &trapping,
    );
    assert_eq!(r.status, 201, "{}", r.body);

    // Traffic from many clients (one key each: a single key would stick to
    // one revision) until the budget monitor acts; about half hits the
    // canary. Bounded, so a monitor that never acts fails the test.
    let greet = format!("http://{}/greet", server.data);
    let mut event = None;
    for i in 0..20_000 {
        if let Ok(e) = rx.try_recv() {
            event = Some(e);
            break;
        }
        let (status, _, _) = call_as(&http, &greet, &format!("client-{i}"));
        assert!(status == 200 || status == 502, "unexpected {status}");
    }
    let event = event.expect("the canary was never rolled back");
    assert_eq!(event["version"], "3-broken");
    let reason = event["reason"].as_str().unwrap();
    assert!(reason.contains("error budget exceeded"), "{reason}");

    let slot = get(&http, &format!("{admin}/v1/slots/greet")).json();
    assert!(slot["canary"].is_null(), "{slot}");
    for _ in 0..50 {
        assert_eq!(post(&http, &greet, b"x").body, "hello, x!");
    }
}
