//! The Kubernetes API server the tests start: it serves, its admin token
//! is a cluster admin, a wrong token is refused, and its kubeconfig names it.

use std::process::Command;

use hotswap_testkit::KubeApiServer;

/// `GET path` with `token`: the HTTP status curl saw.
fn status(server: &KubeApiServer, path: &str, token: &str) -> String {
    let out = Command::new("curl")
        .args(["-ks", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{}{path}", server.url()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_api_server_serves_its_admin_and_refuses_strangers() {
    let Some(server) = KubeApiServer::start() else {
        return;
    };
    assert_eq!(status(&server, "/api/v1/namespaces", server.token()), "200");
    assert_eq!(
        status(
            &server,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            server.token()
        ),
        "200"
    );
    assert_eq!(status(&server, "/api/v1/namespaces", "wrong"), "401");

    // A CustomResourceDefinition is taken and served: the apiextensions
    // controllers run (with the reflect2 of Go 1.17 they crash here).
    let crd = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
      "metadata":{"name":"probes.test.hotswap.dev"},
      "spec":{"group":"test.hotswap.dev","scope":"Namespaced",
        "names":{"plural":"probes","singular":"probe","kind":"Probe"},
        "versions":[{"name":"v1","served":true,"storage":true,
          "schema":{"openAPIV3Schema":{"type":"object"}}}]}}"#;
    let out = Command::new("curl")
        .args(["-ks", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", "Content-Type: application/json", "-H"])
        .arg(format!("Authorization: Bearer {}", server.token()))
        .args(["-d", crd])
        .arg(format!(
            "{}/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            server.url()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "201");
    let served = (0..200).any(|_| {
        let ok = status(
            &server,
            "/apis/test.hotswap.dev/v1/namespaces/default/probes",
            server.token(),
        ) == "200";
        if !ok {
            // The API appears once the CRD is established; nothing to wait on but the server.
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        ok
    });
    assert!(served, "the custom resource's API never appeared");
    let config = std::fs::read_to_string(server.kubeconfig()).unwrap();
    assert!(config.contains(&server.url()) && config.contains(server.token()));
}
