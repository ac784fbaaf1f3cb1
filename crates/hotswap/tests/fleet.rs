//! Fleets end to end: several `hotswap serve --fleet` members on loopback,
//! a real etcd and a real OCI registry, rollouts driven by `hotswap fleet`,
//! and load against every member throughout, every request counted.

mod fleetkit;
mod process;

use fleetkit::{fleet, json, keygen, member, ok, push, serving, stderr};
use hotswap_testkit::{Etcd, OciRegistry};
use process::{Load, Serve};

#[test]
fn a_fleet_rolls_out_wave_by_wave_and_rolls_back_everyone_when_a_member_cannot_apply() {
    let (Some(etcd), Some(registry)) = (Etcd::start(), OciRegistry::start()) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    // v1-b is the same module as v1, signed with a key m2 does not
    // trust: the failure injected into wave 2.
    let fleetkit::Revisions {
        public_a,
        public_b,
        repo,
        v2,
        v1_b,
        ..
    } = fleetkit::revisions(root.path(), &registry);
    let v2_digest = hotswap_core::Digest::of(hotswap_examples::GREET_V2).to_string();

    let members: Vec<Serve> = (1..=4)
        .map(|i| {
            let keys: &[&str] = if i == 2 {
                &[&public_a]
            } else {
                &[&public_a, &public_b]
            };
            member(root.path(), &etcd, &format!("m{i}"), keys)
        })
        .collect();
    let loads: Vec<Load> = members
        .iter()
        .map(|m| Load::start(format!("http://{}/greet", m.data), 2))
        .collect();

    // 1: to 100%, by tag (resolved once, now).
    let tag_v2 = format!("{repo}:v2");
    let out = ok(fleet(
        &etcd,
        &[
            "rollout",
            "greet",
            &tag_v2,
            "--waves",
            "1,50%,100%",
            "--soak",
            "300ms",
            "--json",
        ],
    ));
    let done = json(&out);
    assert_eq!(done["phase"], "succeeded", "{done:#}");
    assert_eq!(
        done["to"]["reference"],
        v2.as_str(),
        "the tag was pinned to its digest"
    );
    assert_eq!(
        done["assigned"],
        serde_json::json!([["m1"], ["m2"], ["m3", "m4"]])
    );
    for m in &members {
        assert_eq!(serving(m), (v2_digest.clone(), false));
    }

    // 2: m2 cannot apply it (an untrusted signature) in wave 2: the whole
    // fleet goes back to v2, with the reason recorded.
    let out = fleet(
        &etcd,
        &[
            "rollout",
            "greet",
            &v1_b,
            "--waves",
            "1,50%,100%",
            "--soak",
            "300ms",
            "--json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a rolled back rollout fails: {}",
        stderr(&out)
    );
    let back = json(&out);
    assert_eq!(back["phase"], "rolled-back", "{back:#}");
    let reason = back["reason"].as_str().unwrap();
    assert!(
        reason.contains("member m2 cannot apply it") && reason.contains("signature"),
        "{reason}"
    );
    assert_eq!(
        back["assigned"],
        serde_json::json!([["m1"], ["m2"]]),
        "wave 3 never started"
    );
    for m in &members {
        assert_eq!(
            serving(m),
            (v2_digest.clone(), false),
            "every member is back on v2"
        );
    }
    // m1 took v1-b in wave 1 (as canary, promoted when wave 2 began),
    // then went back: its events say so, after its first start's v1.
    let events = String::from_utf8_lossy(&ok(members[0].cli(&["events"])).stdout).into_owned();
    let took: Vec<&str> = events
        .lines()
        .filter(|l| l.contains("activated 1.0.0"))
        .collect();
    assert_eq!(took.len(), 3, "{events}");
    assert!(
        took[1].ends_with("canary, 10% of calls") && took[2].ends_with("promoted from canary"),
        "{events}"
    );

    // 3: aborted by an operator while wave 1's member serves it as a
    // canary: the canary is taken out, the active revision never moved.
    let out = ok(fleet(
        &etcd,
        &[
            "rollout", "greet", &v1_b, "--soak", "1h", "--detach", "--json",
        ],
    ));
    let id = json(&out)["id"].as_str().unwrap().to_string();
    status_until(&etcd, "wave 1's member takes the canary", |s| {
        s["reports"]["greet"]["m1"]["rollout"] == id.as_str()
            && s["reports"]["greet"]["m1"]["state"] == "converged"
            && s["reports"]["greet"]["m1"]["canary"][1] == 10
    });
    ok(fleet(&etcd, &["abort", "greet", "--reason", "seen enough"]));
    status_until(&etcd, "wave 1's member drops the canary", |s| {
        s["reports"]["greet"]["m1"]["state"] == "converged"
            && s["reports"]["greet"]["m1"]["canary"].is_null()
    });
    for m in &members {
        assert_eq!(serving(m), (v2_digest.clone(), false));
    }

    // The status and the history say what happened.
    let status = json(&ok(fleet(&etcd, &["status", "--json"])));
    assert_eq!(status["members"].as_object().unwrap().len(), 4);
    assert!(status["controller"].as_str().unwrap().starts_with('m'));
    let current = &status["rollouts"]["greet"]["Ok"];
    assert_eq!(current["phase"], "rolled-back");
    assert_eq!(current["reason"], "aborted by an operator: seen enough");
    let history = json(&ok(fleet(&etcd, &["history", "greet", "--json"])));
    let phases: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["succeeded", "rolled-back", "rolled-back"]);

    for (m, load) in members.iter().zip(loads) {
        let tally = load.stop();
        assert!(tally.ok > 0, "no call reached {}", m.data);
        assert_eq!((tally.failed, tally.refused), (0, 0), "{:?}", tally.errors);
    }
}

/// Puts `value` under `key` through etcd's JSON gateway, as any other
/// client of the fleet's etcd could.
fn etcd_put(etcd: &Etcd, key: &str, value: &[u8]) {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let body = serde_json::json!({"key": b64(key.as_bytes()), "value": b64(value)});
    let agent = process::agent(true);
    let mut answer = agent
        .post(format!("http://{}/v3/kv/put", etcd.endpoint()))
        .send(body.to_string().as_bytes())
        .unwrap();
    assert_eq!(
        answer.status(),
        200,
        "{}",
        answer.body_mut().read_to_string().unwrap()
    );
}

/// Polls `hotswap fleet status --json` until `done` holds (a minute at most).
fn status_until(
    etcd: &Etcd,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = fleet(etcd, &["status", "--json"]);
        if out.status.success() {
            let status = json(&out);
            if done(&status) {
                return status;
            }
            assert!(
                std::time::Instant::now() < until,
                "{what}: not within a minute: {status:#}"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn garbage_a_moved_tag_a_killed_controller_a_registry_down_and_a_restarted_etcd_leave_every_member_serving(
) {
    let (Some(mut etcd), Some(mut registry)) = (Etcd::start(), OciRegistry::start()) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (key, public) = keygen(root.path(), "a.key");
    let repo = format!("oci://{}/plugins/greet", registry.host());
    let v1_digest = hotswap_core::Digest::of(hotswap_examples::GREET_V1).to_string();
    let v2_digest = hotswap_core::Digest::of(hotswap_examples::GREET_V2).to_string();
    let mut members: Vec<Option<Serve>> = (1..=3)
        .map(|i| Some(member(root.path(), &etcd, &format!("m{i}"), &[&public])))
        .collect();
    let load = |m: &Serve| Load::start(format!("http://{}/greet", m.data), 2);
    let mut loads: Vec<Load> = members.iter().flatten().map(load).collect();
    let no_failures = |load: Load| {
        let tally = load.stop();
        assert!(tally.ok > 0, "no call was answered");
        assert_eq!((tally.failed, tally.refused), (0, 0), "{:?}", tally.errors);
    };

    // Garbage where the desired state belongs: every member says so and
    // keeps serving what it served.
    etcd_put(&etcd, "/hotswap/desired/greet", b"{not a rollout");
    let status = status_until(&etcd, "members report the garbage", |s| {
        (1..=3).all(|i| s["reports"]["greet"][format!("m{i}")]["state"] == "failed")
    });
    let why = status["reports"]["greet"]["m1"]["error"].as_str().unwrap();
    assert!(
        why.contains("desired state is unreadable") && why.contains("/hotswap/desired/greet"),
        "{why}"
    );
    for m in members.iter().flatten() {
        assert_eq!(serving(m), (v1_digest.clone(), false));
    }

    // A rollout replaces the garbage. Its tag moves right after it was
    // created: members still get what the tag named then. Mid-wave, the
    // controller is killed; another member's controller goes on.
    push(
        root.path(),
        hotswap_examples::GREET_V2,
        &format!("{repo}:stable"),
        Some(&key),
    );
    let out = ok(fleet(
        &etcd,
        &[
            "rollout",
            "greet",
            &format!("{repo}:stable"),
            "--waves",
            "1,100%",
            "--soak",
            "4s",
            "--detach",
            "--json",
        ],
    ));
    let id = json(&out)["id"].as_str().unwrap().to_string();
    push(
        root.path(),
        hotswap_examples::GREET_V1,
        &format!("{repo}:stable"),
        Some(&key),
    );
    let status = status_until(&etcd, "wave 1 soaks", |s| {
        s["rollouts"]["greet"]["Ok"]["soak"].is_object() && s["controller"].is_string()
    });
    let leader = status["controller"].as_str().unwrap().to_string();
    let index: usize = leader[1..].parse::<usize>().unwrap() - 1;
    // Its clients stop first: calls to a killed process fail, by design.
    no_failures(loads.remove(index));
    let killed = members[index].take().unwrap();
    let killed_dir = killed.pid_file.parent().unwrap().to_path_buf();
    killed.kill();
    drop(killed);
    let done = status_until(&etcd, "another controller finishes the rollout", |s| {
        s["rollouts"]["greet"]["Ok"]["phase"] == "succeeded"
    });
    assert_ne!(
        done["controller"].as_str(),
        Some(leader.as_str()),
        "{done:#}"
    );
    assert_eq!(done["rollouts"]["greet"]["Ok"]["id"], id.as_str());
    for m in members.iter().flatten() {
        assert_eq!(
            serving(m),
            (v2_digest.clone(), false),
            "the pin, not the moved tag"
        );
    }
    // The killed member comes back and converges.
    let config = killed_dir.join("hotswap.toml");
    let back = Serve::start(
        &killed_dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "--fleet",
            &format!("etcd://{}", etcd.endpoint()),
            "--member",
            &leader,
        ],
    );
    status_until(&etcd, "the killed member converges", |s| {
        s["reports"]["greet"][&leader]["rollout"] == id.as_str()
            && s["reports"]["greet"][&leader]["state"] == "converged"
    });
    assert_eq!(serving(&back), (v2_digest.clone(), false));
    loads.push(load(&back));
    members[index] = Some(back);

    // The registry is down when a new member joins: it cannot pull what
    // the fleet serves, says it will retry, and serves its own store's
    // revision meanwhile; once the registry is back, it converges.
    registry.kill();
    let late = member(root.path(), &etcd, "m4", &[&public]);
    let status = status_until(&etcd, "the new member waits for the registry", |s| {
        s["reports"]["greet"]["m4"]["state"] == "applying"
    });
    let why = status["reports"]["greet"]["m4"]["error"].as_str().unwrap();
    assert!(why.starts_with("will retry: the registry"), "{why}");
    loads.push(load(&late));
    registry.resume();
    status_until(&etcd, "the new member converges", |s| {
        s["reports"]["greet"]["m4"]["state"] == "converged"
    });
    assert_eq!(serving(&late), (v2_digest.clone(), false));
    members.push(Some(late));

    // etcd dies: members serve on; the CLI says what is wrong. It comes
    // back: a new rollout reaches every member.
    etcd.kill();
    let down = fleet(&etcd, &["status"]);
    assert_eq!(down.status.code(), Some(1));
    assert!(
        stderr(&down).contains("cannot reach etcd"),
        "{}",
        stderr(&down)
    );
    for m in members.iter().flatten() {
        assert_eq!(serving(m), (v2_digest.clone(), false));
    }
    etcd.resume();
    let v1 = push(
        root.path(),
        hotswap_examples::GREET_V1,
        &format!("{repo}:v1"),
        Some(&key),
    );
    let out = ok(fleet(
        &etcd,
        &[
            "rollout", "greet", &v1, "--waves", "100%", "--soak", "100ms", "--json",
        ],
    ));
    assert_eq!(json(&out)["phase"], "succeeded");
    for m in members.iter().flatten() {
        assert_eq!(serving(m), (v1_digest.clone(), false));
    }

    // An unsigned plugin where signatures are required: refused by the
    // first member, rolled back everywhere. (Not greet: a module pushed
    // signed before keeps its signature, since the manifest is the same.)
    let unsigned = push(
        root.path(),
        hotswap_examples::COUNTER,
        &format!("{repo}:unsigned"),
        None,
    );
    let out = fleet(
        &etcd,
        &[
            "rollout", "greet", &unsigned, "--waves", "1,100%", "--soak", "100ms", "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let r = json(&out);
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("requires signed modules"),
        "{r:#}"
    );
    for m in members.iter().flatten() {
        assert_eq!(serving(m), (v1_digest.clone(), false));
    }

    loads.into_iter().for_each(no_failures);
}

#[test]
fn deploy_takes_a_plugin_from_a_registry_by_digest_with_its_signature() {
    let Some(registry) = OciRegistry::start() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (key, public) = keygen(root.path(), "a.key");
    let repo = format!("oci://{}/plugins/greet", registry.host());
    let v2 = push(
        root.path(),
        hotswap_examples::GREET_V2,
        &format!("{repo}:v2"),
        Some(&key),
    );
    let config = root.path().join("hotswap.toml");
    std::fs::write(
        &config,
        format!("trusted_keys = [{public:?}]\nrequire_signature = true\n"),
    )
    .unwrap();
    let server = Serve::start(root.path(), &["--config", config.to_str().unwrap()]);

    let out = ok(server.cli(&["deploy", "greet", &v2]));
    assert!(
        stderr(&out).contains(&format!("pulled {v2}")),
        "{}",
        stderr(&out)
    );
    let v2_digest = hotswap_core::Digest::of(hotswap_examples::GREET_V2).to_string();
    assert_eq!(serving(&server), (v2_digest, false));
    assert_eq!(server.call("greet", "ada").body, "HELLO, ADA!! (v2)");

    // A tag is resolved first, and the answer names the digest.
    let v1 = push(
        root.path(),
        hotswap_examples::GREET_V1,
        &format!("{repo}:v1"),
        Some(&key),
    );
    let out = ok(server.cli(&["deploy", "greet", &format!("{repo}:v1")]));
    assert!(
        stderr(&out).contains(&format!("pulled {v1}")),
        "{}",
        stderr(&out)
    );

    // Unsigned in the registry, where signatures are required: refused.
    let unsigned = push(
        root.path(),
        hotswap_examples::COUNTER,
        &format!("{repo}:counter"),
        None,
    );
    let out = server.cli(&["deploy", "counter", &unsigned]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("requires signed modules"),
        "{}",
        stderr(&out)
    );
    // A digest the caller pinned wins over the registry's.
    let out = server.cli(&["deploy", "greet", &v1, "--sha256", &"0".repeat(64)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // No registry there: a clear error.
    let out = server.cli(&["deploy", "greet", "oci://127.0.0.1:1/plugins/greet:v1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot resolve oci://127.0.0.1:1/plugins/greet:v1"),
        "{}",
        stderr(&out)
    );
}
