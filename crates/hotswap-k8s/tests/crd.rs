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
    apply_the_deploy_manifests(&server);
}

/// Every object in deploy/ (in the order docs/kubernetes.md applies them)
/// is one the API server takes: right kinds, right versions, valid fields.
fn apply_the_deploy_manifests(server: &KubeApiServer) {
    use kube::api::{DynamicObject, PostParams};
    use kube::discovery::{pinned_kind, Scope};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(server.kubeconfig()).unwrap(),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        for file in [
            "namespace.yaml",
            "rbac.yaml",
            "etcd.yaml",
            "operator.yaml",
            "members.yaml",
            "example.yaml",
        ] {
            let path = format!("{}/../../deploy/{file}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let object: DynamicObject = serde::Deserialize::deserialize(doc).unwrap();
                let types = object.types.clone().expect("apiVersion and kind");
                let gvk = kube::api::GroupVersionKind::try_from(&types).unwrap();
                let (resource, caps) = pinned_kind(&client, &gvk)
                    .await
                    .unwrap_or_else(|e| panic!("{file}: {} is not served: {e}", types.kind));
                let api: kube::Api<DynamicObject> = match caps.scope {
                    Scope::Cluster => kube::Api::all_with(client.clone(), &resource),
                    Scope::Namespaced => kube::Api::namespaced_with(
                        client.clone(),
                        object.metadata.namespace.as_deref().unwrap_or("default"),
                        &resource,
                    ),
                };
                api.create(&PostParams::default(), &object)
                    .await
                    .unwrap_or_else(|e| panic!("{file}: {} refused: {e}", types.kind));
            }
        }
    });
}
