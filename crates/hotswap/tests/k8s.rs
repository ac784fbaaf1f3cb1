//! The Kubernetes operator end to end: a real kube-apiserver (1.20, built
//! by scripts/kube-apiserver) over its own etcd, the fleet's etcd, a real
//! OCI registry, three `hotswap serve --fleet` members on loopback standing
//! for pods, and `hotswap k8s operator` processes, all started here.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod fleetkit;
mod process;

use fleetkit::{fleet, json, member, ok, push, serving};
use hotswap_k8s::{HotswapPlugin, HotswapPluginSpec};
use hotswap_testkit::{Etcd, KubeApiServer, OciRegistry};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, CustomResourceExt};
use process::hotswap;

/// A `hotswap k8s operator` process, killed when dropped.
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    fn start(dir: &Path, name: &str, kube: &KubeApiServer, etcd: &Etcd) -> Operator {
        let log = dir.join(format!("{name}.log"));
        let child = hotswap()
            .env("RUST_LOG", "hotswap_k8s=debug,warn")
            .env("KUBECONFIG", kube.kubeconfig())
            .args(["k8s", "operator", "--identity", name])
            .args(["--lease-namespace", "default", "--lease-ttl", "2s"])
            .arg("--etcd")
            .arg(format!("etcd://{}", etcd.endpoint()))
            .arg("--cache-dir")
            .arg(dir.join(format!("{name}-cache")))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Operator { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Test-side access to the API server.
struct Kube {
    rt: tokio::runtime::Runtime,
    plugins: Api<HotswapPlugin>,
    client: Client,
}

impl Kube {
    fn connect(server: &KubeApiServer) -> Kube {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client = rt.block_on(async {
            let config = kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::read_from(server.kubeconfig()).unwrap(),
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .unwrap();
            Client::try_from(config).unwrap()
        });
        let plugins = Api::namespaced(client.clone(), "default");
        Kube {
            rt,
            plugins,
            client,
        }
    }

    fn create(&self, name: &str, spec: serde_json::Value) {
        let spec: HotswapPluginSpec = serde_json::from_value(spec).unwrap();
        let plugin = HotswapPlugin::new(name, spec);
        self.rt
            .block_on(self.plugins.create(&PostParams::default(), &plugin))
            .unwrap();
    }

    fn patch_spec(&self, name: &str, spec: serde_json::Value) {
        let patch = serde_json::json!({ "spec": spec });
        self.rt
            .block_on(
                self.plugins
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .unwrap();
    }

    fn get(&self, name: &str) -> Option<HotswapPlugin> {
        self.rt.block_on(self.plugins.get_opt(name)).unwrap()
    }

    /// Polls `name` until `done` holds of it (90 s at most), calling
    /// `seen` with every version read.
    fn until(
        &self,
        name: &str,
        what: &str,
        operator: &Operator,
        mut seen: impl FnMut(&HotswapPlugin),
        done: impl Fn(&HotswapPlugin) -> bool,
    ) -> HotswapPlugin {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(p) = self.get(name) {
                seen(&p);
                if done(&p) {
                    return p;
                }
                assert!(
                    Instant::now() < deadline,
                    "{what}: not within 90 s: {:#?}\noperator log:\n{}",
                    p.status,
                    operator.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The reasons of the Events recorded on `name`, oldest first.
    fn events(&self, name: &str) -> Vec<String> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let mut all = self
            .rt
            .block_on(events.list(&Default::default()))
            .unwrap()
            .items;
        all.retain(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name));
        all.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
        all.into_iter().filter_map(|e| e.reason).collect()
    }
}

/// Condition `type_` of `p`: (status, reason, message).
fn condition(p: &HotswapPlugin, type_: &str) -> Option<(String, String, String)> {
    p.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn is(p: &HotswapPlugin, type_: &str, reason: &str) -> bool {
    condition(p, type_).is_some_and(|(s, r, _)| s == "True" && r == reason)
}

fn digest(module: &[u8]) -> String {
    hotswap_core::Digest::of(module).to_string()
}

#[test]
fn the_operator_rolls_a_hotswap_plugin_out_rolls_it_back_survives_its_own_death_and_finalizes() {
    let (Some(etcd), Some(registry), Some(server)) =
        (Etcd::start(), OciRegistry::start(), KubeApiServer::start())
    else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let fleetkit::Revisions {
        key_a,
        public_a,
        public_b,
        repo,
        v2,
        ..
    } = fleetkit::revisions(root.path(), &registry);
    // Another module: a signature belongs to a module, so the same module
    // signed by A would be trusted everywhere.
    push(
        root.path(),
        hotswap_examples::COUNTER,
        &format!("{repo}:v3"),
        Some(&key_a),
    );
    // m3 trusts only key A: a plugin signed by B fails there.
    let members = [
        member(root.path(), &etcd, "m1", &[&public_a, &public_b]),
        member(root.path(), &etcd, "m2", &[&public_a, &public_b]),
        member(root.path(), &etcd, "m3", &[&public_a]),
    ];

    let k = Kube::connect(&server);
    k.rt.block_on(async {
        let crds: Api<CustomResourceDefinition> = Api::all(k.client.clone());
        crds.create(&PostParams::default(), &HotswapPlugin::crd())
            .await
            .unwrap();
        let established = await_condition(
            crds,
            "hotswapplugins.hotswap.dev",
            conditions::is_crd_established(),
        );
        tokio::time::timeout(Duration::from_secs(30), established)
            .await
            .expect("the CRD is established")
            .unwrap();
        let secrets: Api<Secret> = Api::namespaced(k.client.clone(), "default");
        let keys = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("plugin-keys".into()),
                ..Default::default()
            },
            string_data: Some([("release".to_string(), public_a.clone())].into()),
            ..Default::default()
        };
        secrets.create(&PostParams::default(), &keys).await.unwrap();
    });
    let op1 = Operator::start(root.path(), "op-1", &server, &etcd);

    // 1. A tag, resolved once, rolled out wave by wave, signature checked
    //    against the Secret's key.
    k.create(
        "greet",
        serde_json::json!({
            "slot": "greet", "image": format!("{repo}:v2"),
            "waves": ["1", "100%"], "soak": "1s", "canaryWeight": 50,
            "signatures": {"required": true, "keysSecret": "plugin-keys"},
        }),
    );
    let mut waves = Vec::new();
    let done = k.until(
        "greet",
        "the rollout of v2",
        &op1,
        |p| {
            if let Some(s) = &p.status {
                if s.phase.as_deref() == Some("running") && waves.last() != s.wave.as_ref() {
                    waves.extend(s.wave);
                }
            }
        },
        |p| is(p, "Ready", "Succeeded"),
    );
    assert_eq!(waves, [1, 2], "status followed each wave");
    let status = done.status.clone().unwrap();
    assert_eq!(status.resolved_image.as_deref(), Some(v2.as_str()));
    assert_eq!(status.observed_generation, Some(1));
    let first = status.rollout.clone().unwrap();
    for m in ["m1", "m2", "m3"] {
        assert_eq!(
            status.members[m].serving,
            Some(format!("sha256:{}", digest(hotswap_examples::GREET_V2))),
            "{m}"
        );
    }
    for m in &members {
        assert_eq!(serving(m), (digest(hotswap_examples::GREET_V2), false));
    }
    assert!(
        done.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.contains(&hotswap_k8s::reconcile::FINALIZER.to_string())),
        "{:?}",
        done.metadata.finalizers
    );

    // 2. Bad specs: a condition says why, and nothing reaches the fleet.
    k.create(
        "bad-tag",
        serde_json::json!({"slot": "bad1", "image": format!("{repo}:nope")}),
    );
    k.create(
        "bad-ref",
        serde_json::json!({"slot": "bad2", "image": "greet:v2"}),
    );
    k.create(
        "no-secret",
        serde_json::json!({
            "slot": "bad3", "image": format!("{repo}:v2"),
            "signatures": {"required": true, "keysSecret": "missing"},
        }),
    );
    for (name, reason, says) in [
        ("bad-tag", "StartFailed", "nope"),
        ("bad-ref", "InvalidSpec", "greet:v2"),
        ("no-secret", "SecretMissing", "missing"),
    ] {
        let p = k.until(name, name, &op1, |_| {}, |p| is(p, "Degraded", reason));
        let (_, _, message) = condition(&p, "Degraded").unwrap();
        assert!(message.contains(says), "{name}: {message}");
    }
    let fleet_status = json(&ok(fleet(&etcd, &["status", "--json"])));
    for slot in ["bad1", "bad2", "bad3"] {
        assert!(
            fleet_status["rollouts"].get(slot).is_none(),
            "{slot} reached the fleet: {fleet_status:#}"
        );
    }

    // 3. A revision m3 refuses: the fleet rolls back, the resource is
    //    Degraded with the fleet's reason, everyone serves v2 again.
    k.patch_spec(
        "greet",
        serde_json::json!({"image": format!("{repo}:v1-b"), "signatures": null}),
    );
    let back = k.until(
        "greet",
        "the rollback of v1-b",
        &op1,
        |_| {},
        |p| is(p, "Degraded", "RolledBack"),
    );
    let (_, _, why) = condition(&back, "Degraded").unwrap();
    assert!(why.contains("member m3 cannot apply it"), "{why}");
    assert_ne!(back.status.as_ref().unwrap().rollout.as_ref(), Some(&first));
    let v2_everywhere = |p: &HotswapPlugin| {
        let s = p.status.as_ref().unwrap();
        ["m1", "m2", "m3"].iter().all(|m| {
            s.members.get(*m).and_then(|m| m.serving.clone())
                == Some(format!("sha256:{}", digest(hotswap_examples::GREET_V2)))
        })
    };
    k.until(
        "greet",
        "every member back on v2",
        &op1,
        |_| {},
        v2_everywhere,
    );

    // 4. The operator killed mid-wave: another takes over and the same
    //    rollout goes on, started once.
    k.patch_spec(
        "greet",
        serde_json::json!({"image": format!("{repo}:v3"), "soak": "3s"}),
    );
    let mid = k.until(
        "greet",
        "wave 1 of v3",
        &op1,
        |_| {},
        |p| {
            p.status.as_ref().is_some_and(|s| {
                s.phase.as_deref() == Some("running")
                    && s.wave == Some(1)
                    && s.observed_generation == Some(3)
            })
        },
    );
    let third = mid.status.unwrap().rollout.unwrap();
    drop(op1);
    let op2 = Operator::start(root.path(), "op-2", &server, &etcd);
    let done = k.until(
        "greet",
        "v3 after the operator's death",
        &op2,
        |_| {},
        |p| is(p, "Ready", "Succeeded"),
    );
    assert_eq!(done.status.unwrap().rollout, Some(third.clone()));
    let history = json(&ok(fleet(&etcd, &["history", "greet", "--json"])));
    let ids: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "one rollout per spec: {ids:?}");
    assert_eq!(ids[2], third);
    for m in &members {
        assert_eq!(serving(m), (digest(hotswap_examples::COUNTER), false));
    }

    // 5. Deleted with rollbackOnDelete (an edit that starts nothing): the
    //    finalizer rolls the fleet back to v2, then the resource goes.
    k.patch_spec("greet", serde_json::json!({"rollbackOnDelete": true}));
    k.until(
        "greet",
        "generation 4 observed",
        &op2,
        |_| {},
        |p| p.status.as_ref().and_then(|s| s.observed_generation) == Some(4),
    );
    k.rt.block_on(k.plugins.delete("greet", &DeleteParams::default()))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while k.get("greet").is_some() {
        assert!(
            Instant::now() < deadline,
            "the finalizer did not run: {}",
            op2.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let history = json(&ok(fleet(&etcd, &["history", "greet", "--json"])));
    let last = history.as_array().unwrap().last().unwrap();
    assert_eq!(last["id"], third, "no rollout started for generation 4");
    assert_eq!(last["phase"], "rolled-back", "{last:#}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while members
        .iter()
        .any(|m| serving(m).0 != digest(hotswap_examples::GREET_V2))
    {
        assert!(Instant::now() < deadline, "members did not return to v2");
        std::thread::sleep(Duration::from_millis(50));
    }

    let events = k.events("greet");
    for reason in [
        "RolloutStarted",
        "Wave",
        "Succeeded",
        "RolledBack",
        "Deleted",
    ] {
        assert!(
            events.iter().any(|e| e == reason),
            "no {reason} Event: {events:?}\n{}",
            op2.log()
        );
    }
    assert!(
        events.iter().filter(|e| *e == "Wave").count() >= 4,
        "an Event per wave: {events:?}"
    );
}
