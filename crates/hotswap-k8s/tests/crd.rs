//! The HotswapPlugin CRD: the copy in deploy/ is what the types generate,
//! and a real Kubernetes 1.20 API server takes it (a structural schema).

use std::process::Command;

use hotswap_testkit::KubeApiServer;

const IN_REPO: &str = include_str!("../../../deploy/crd.yaml");

#[test]
fn deploy_crd_yaml_is_what_the_types_generate() {
    assert!(
        IN_REPO == hotswap_k8s::crd_yaml(),
        "deploy/crd.yaml is stale: run `hotswap k8s crd > deploy/crd.yaml`"
    );
}

#[test]
fn a_real_api_server_takes_the_crd_and_serves_the_resource() {
    let Some(server) = KubeApiServer::start() else {
        return;
    };
    let auth = format!("Authorization: Bearer {}", server.token());
    let out = Command::new("curl")
        .args([
            "-ks",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/yaml",
            "-H",
        ])
        .arg(&auth)
        .args(["--data-binary", IN_REPO])
        .arg(format!(
            "{}/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            server.url()
        ))
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(answer.ends_with("\n201"), "{answer}");
    let served = (0..200).any(|_| {
        let out = Command::new("curl")
            .args(["-ks", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
            .arg(&auth)
            .arg(format!(
                "{}/apis/hotswap.dev/v1alpha1/namespaces/default/hotswapplugins",
                server.url()
            ))
            .output()
            .unwrap();
        let ok = out.stdout == b"200";
        if !ok {
            // The API appears once the CRD is established.
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        ok
    });
    assert!(served, "hotswapplugins were never served");
}
