//! `KubeApiServer`: a real kube-apiserver (1.20, built from Debian's source
//! by `scripts/kube-apiserver`) on a free loopback port, over an etcd of its
//! own, with a bearer token in the `system:masters` group; stopped when
//! dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::daemon::Daemon;
use crate::Etcd;

/// The API server answers `/readyz` about 4 s after it starts; under load,
/// later.
const READY_WITHIN: Duration = Duration::from_secs(90);

/// A kube-apiserver this test started.
pub struct KubeApiServer {
    daemon: Daemon,
    addr: SocketAddr,
    token: String,
    dir: tempfile::TempDir,
    _etcd: Etcd,
}

impl KubeApiServer {
    /// Starts one, or says why it cannot (see [`crate::cannot_run_here`])
    /// and gives `None`: the binary is not built (scripts/setup builds it
    /// with `scripts/kube-apiserver`), or etcd or openssl is missing.
    pub fn start() -> Option<KubeApiServer> {
        let binary = binary();
        if !binary.is_file() {
            crate::cannot_run_here(format!(
                "{} is not built (scripts/setup builds it with scripts/kube-apiserver)",
                binary.display()
            ));
            return None;
        }
        if Command::new("openssl").arg("version").output().is_err() {
            crate::cannot_run_here("openssl is not installed (it makes the service-account keys)");
            return None;
        }
        let etcd = Etcd::start()?;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key = dir.path().join("sa.key");
        let public = dir.path().join("sa.pub");
        run(Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&key)
            .arg("2048"));
        run(Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&public));
        let token = format!("hotswap-test-{}", std::process::id());
        std::fs::write(
            dir.path().join("tokens.csv"),
            format!("{token},admin,admin,system:masters\n"),
        )
        .expect("the token file");
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port");
        let mut command = Command::new(&binary);
        command
            .arg(format!("--etcd-servers=http://{}", etcd.endpoint()))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={}", addr.port()))
            .arg("--insecure-port=0")
            .arg(format!("--cert-dir={}", dir.path().join("certs").display()))
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg(format!("--service-account-key-file={}", public.display()))
            .arg(format!(
                "--service-account-signing-key-file={}",
                key.display()
            ))
            .arg(format!(
                "--token-auth-file={}",
                dir.path().join("tokens.csv").display()
            ))
            .arg("--authorization-mode=RBAC");
        let mut daemon = Daemon::new("kube-apiserver", dir.path().join("kube-apiserver.log"));
        let probe_token = token.clone();
        daemon.start(&mut command, READY_WITHIN, move || {
            ready(addr, &probe_token)
        });
        let server = KubeApiServer {
            daemon,
            addr,
            token,
            dir,
            _etcd: etcd,
        };
        server.write_kubeconfig();
        Some(server)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A bearer token of a cluster admin.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A kubeconfig for it (context `hotswap-test`), as a user would have.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn write_kubeconfig(&self) {
        // The server's certificate is one it made for itself at start; the
        // tests trust it and nothing else.
        let ca = self.dir.path().join("certs").join("apiserver.crt");
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: hotswap-test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: admin\n  user:\n    token: {}\ncontexts:\n- name: hotswap-test\n  context:\n    cluster: hotswap-test\n    user: admin\n    namespace: default\ncurrent-context: hotswap-test\n",
            self.url(),
            ca.display(),
            self.token
        );
        std::fs::write(self.kubeconfig(), config).expect("the kubeconfig");
    }

    /// Kills it (its etcd keeps running).
    pub fn kill(&mut self) {
        self.daemon.kill();
    }
}

/// Where `scripts/kube-apiserver` keeps the binary (the script is the one
/// place that says).
fn binary() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kube-apiserver");
    let out = Command::new(&script)
        .arg("--path")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn run(command: &mut Command) {
    let out = command.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `/readyz` says ok (through curl, which scripts/setup installs:
/// the server's TLS is self-signed and the test kit has no TLS client).
fn ready(addr: SocketAddr, token: &str) -> bool {
    Command::new("curl")
        .args(["-ksS", "--max-time", "2", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("https://{addr}/readyz"))
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout == b"ok")
}
