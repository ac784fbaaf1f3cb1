//! What the fleet and Kubernetes tests share: keys, pushes, members on
//! loopback, and the CLI's answers.
#![allow(dead_code)]

use std::path::Path;
use std::process::Output;

use hotswap_testkit::{Etcd, OciRegistry};

use crate::process::{hotswap, Serve};

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    out
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A key pair: (secret key file, public key hex).
pub fn keygen(dir: &Path, name: &str) -> (String, String) {
    let key = dir.join(name);
    let out = ok(hotswap()
        .args(["keygen", "--json", "--out"])
        .arg(&key)
        .output()
        .unwrap());
    let public = json(&out)["public_key"].as_str().unwrap().to_string();
    (key.to_str().unwrap().to_string(), public)
}

/// Pushes `module` to `tag`, signed with `key`; the pinned reference.
pub fn push(dir: &Path, module: &[u8], tag: &str, key: Option<&str>) -> String {
    let file = dir.join("push.wasm");
    std::fs::write(&file, module).unwrap();
    let mut cmd = hotswap();
    cmd.arg("push").arg(&file).arg(tag).arg("--json");
    if let Some(key) = key {
        cmd.args(["--key", key]);
    }
    let out = ok(cmd.output().unwrap());
    json(&out)["reference"].as_str().unwrap().to_string()
}

/// `hotswap fleet ARGS --etcd ...`.
pub fn fleet(etcd: &Etcd, args: &[&str]) -> Output {
    hotswap()
        .arg("fleet")
        .args(args)
        .arg("--etcd")
        .arg(format!("etcd://{}", etcd.endpoint()))
        .output()
        .unwrap()
}

/// A member trusting `keys`, requiring signatures.
pub fn member(root: &Path, etcd: &Etcd, name: &str, keys: &[&str]) -> Serve {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hotswap.toml");
    let keys: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    std::fs::write(
        &config,
        format!(
            "trusted_keys = [{}]\nrequire_signature = true\n",
            keys.join(", ")
        ),
    )
    .unwrap();
    let etcd = format!("etcd://{}", etcd.endpoint());
    let server = Serve::start(
        &dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "--fleet",
            &etcd,
            "--member",
            name,
        ],
    );
    server.wait_for_line(&format!("member `{name}` of the fleet"));
    server
}

/// The digest `server`'s slot `greet` serves as its active revision, and
/// whether it has a canary.
pub fn serving(server: &Serve) -> (String, bool) {
    let v = json(&ok(server.cli(&["status", "greet", "--json"])));
    (
        v["active"]["digest"].as_str().unwrap().to_string(),
        !v["canary"].is_null(),
    )
}

/// Two signers and two revisions of greet in a registry: what the fleet
/// and Kubernetes tests roll out and break.
pub struct Revisions {
    /// Signer A's secret key file and public key (hex).
    pub key_a: String,
    pub public_a: String,
    /// Signer B's.
    pub key_b: String,
    pub public_b: String,
    /// `oci://HOST/plugins/greet`.
    pub repo: String,
    /// greet v2 signed by A, at `:v2`, pinned.
    pub v2: String,
    /// greet v1 signed by B, at `:v1-b`, pinned: the failure injected
    /// where a member trusts only A.
    pub v1_b: String,
}

/// Makes the keys under `dir` and pushes the revisions to `registry`.
pub fn revisions(dir: &Path, registry: &OciRegistry) -> Revisions {
    let (key_a, public_a) = keygen(dir, "a.key");
    let (key_b, public_b) = keygen(dir, "b.key");
    let repo = format!("oci://{}/plugins/greet", registry.host());
    let v2 = push(
        dir,
        hotswap_examples::GREET_V2,
        &format!("{repo}:v2"),
        Some(&key_a),
    );
    let v1_b = push(
        dir,
        hotswap_examples::GREET_V1,
        &format!("{repo}:v1-b"),
        Some(&key_b),
    );
    Revisions {
        key_a,
        public_a,
        key_b,
        public_b,
        repo,
        v2,
        v1_b,
    }
}
