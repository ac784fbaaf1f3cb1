//! The gateway speaks what clients speak: HTTP/1.1 and HTTP/2 (prior
//! knowledge, and ALPN under TLS) on one listener, checked with real
//! clients (curl and h2load); TLS certificates read at start and again at
//! every reload, a bad one refused with the reason while the old one serves.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use hotswap_server::{Server, ServerConfig, TlsConfig};

/// `program` with `args`, or `None` where it is not installed (a failure
/// under CI, where scripts/setup installs it).
fn run(program: &str, args: &[&str]) -> Option<Output> {
    match Command::new(program).args(args).output() {
        Ok(out) => Some(out),
        Err(e) => {
            let why = format!("{program} not found (scripts/setup installs it): {e}");
            hotswap_testkit::cannot_run_here(why);
            None
        }
    }
}

/// curl's body and the HTTP version it used (`1.1`, `2`), after `args`.
fn curl(args: &[&str]) -> Option<(String, String)> {
    let mut all = vec![
        "-sS",
        "-X",
        "POST",
        "--data-binary",
        "hi",
        "-w",
        "\n%{http_version}",
    ];
    all.extend_from_slice(args);
    let out = run("curl", &all)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, version) = text.rsplit_once('\n').expect("curl printed the version");
    Some((body.to_string(), version.to_string()))
}

/// A self-signed certificate for 127.0.0.1 whose subject is `CN=name`.
fn certificate(dir: &Path, name: &str) -> Option<TlsConfig> {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let subject = format!("/CN={name}");
    let out = run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &subject,
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            k,
            "-out",
            c,
        ],
    )?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(TlsConfig { cert, key })
}

/// The subject of the certificate the server at `addr` presents.
fn served_subject(addr: std::net::SocketAddr, ca: &Path) -> String {
    let url = format!("https://{addr}/greet");
    let out = run(
        "curl",
        &[
            "-sS",
            "-v",
            "-o",
            "/dev/null",
            "--cacert",
            ca.to_str().unwrap(),
            "-d",
            "x",
            &url,
        ],
    )
    .expect("curl was found before");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = said.lines().find(|l| l.contains("subject:"));
    line.unwrap_or_else(|| panic!("no subject in: {said}"))
        .trim()
        .to_string()
}

fn reload(admin: std::net::SocketAddr) -> Reply {
    post(&client(), &format!("http://{admin}/v1/reload"), b"")
}

#[test]
fn http1_and_http2_with_prior_knowledge_share_the_plain_listener() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path()));
    let url = format!("http://{}/greet", server.data);
    let Some(h1) = curl(&["--http1.1", &url]) else {
        return;
    };
    assert_eq!(h1, ("hello, hi!".to_string(), "1.1".to_string()));
    let h2 = curl(&["--http2-prior-knowledge", &url]).unwrap();
    assert_eq!(h2, ("hello, hi!".to_string(), "2".to_string()));

    // Real HTTP/2 load: 4 connections, 10 streams each in flight, and
    // every one of 4 000 requests answered 200.
    let body = dir.path().join("body");
    std::fs::write(&body, "h2").unwrap();
    let Some(out) = run(
        "h2load",
        &[
            "-n",
            "4000",
            "-c",
            "4",
            "-m",
            "10",
            "-d",
            body.to_str().unwrap(),
            &url,
        ],
    ) else {
        return;
    };
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("4000 succeeded, 0 failed, 0 errored") && report.contains("4000 2xx"),
        "{report}"
    );
}

#[test]
fn tls_offers_http2_by_alpn_and_a_reload_reads_the_certificate_again() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let Some(first) = certificate(&certs, "first") else {
        return;
    };
    // The config names fixed paths; rotating writes new files there.
    let tls = TlsConfig {
        cert: certs.join("live.crt"),
        key: certs.join("live.key"),
    };
    std::fs::copy(&first.cert, &tls.cert).unwrap();
    std::fs::copy(&first.key, &tls.key).unwrap();
    let config = ServerConfig {
        tls: Some(tls.clone()),
        ..config(&dir.path().join("data"))
    };
    let source = config.clone();
    let server = start_with(config, Some(Box::new(move || Ok(source.clone()))));
    let url = format!("https://{}/greet", server.data);
    let ca = first.cert.to_str().unwrap();

    let h2 = curl(&["--cacert", ca, "--http2", &url]).unwrap();
    assert_eq!(
        h2,
        ("hello, hi!".to_string(), "2".to_string()),
        "ALPN chose h2"
    );
    let h1 = curl(&["--cacert", ca, "--http1.1", &url]).unwrap();
    assert_eq!(h1, ("hello, hi!".to_string(), "1.1".to_string()));
    assert!(served_subject(server.data, &first.cert).contains("CN=first"));

    // A bad certificate at a reload: refused, saying why; the old one serves.
    std::fs::write(&tls.cert, "not a certificate\n").unwrap();
    let r = reload(server.admin);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body.contains("tls.cert") && r.body.contains("holds no PEM certificate"),
        "{}",
        r.body
    );
    assert!(served_subject(server.data, &first.cert).contains("CN=first"));

    // A rotated certificate applies at the next reload, to new connections.
    let second = certificate(&certs, "second").unwrap();
    std::fs::copy(&second.cert, &tls.cert).unwrap();
    std::fs::copy(&second.key, &tls.key).unwrap();
    let r = reload(server.admin);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["changed"],
        serde_json::json!(["tls"]),
        "{}",
        r.body
    );
    assert!(served_subject(server.data, &second.cert).contains("CN=second"));
    let h2 = curl(&["--cacert", second.cert.to_str().unwrap(), "--http2", &url]).unwrap();
    assert_eq!(h2.1, "2");
}

#[test]
fn a_missing_or_bad_certificate_is_an_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = ServerConfig {
        tls: Some(TlsConfig {
            cert: PathBuf::from("/nonexistent/cert.pem"),
            key: PathBuf::from("/nonexistent/key.pem"),
        }),
        ..config(dir.path())
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(Server::bind(missing, None))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("tls.cert `/nonexistent/cert.pem`") && err.contains("cannot read it"),
        "{err}"
    );

    // A key that is not the certificate's.
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let (Some(a), Some(b)) = (certificate(&certs, "a"), certificate(&certs, "b")) else {
        return;
    };
    let mismatched = ServerConfig {
        tls: Some(TlsConfig {
            cert: a.cert,
            key: b.key,
        }),
        ..config(&dir.path().join("data"))
    };
    let err = rt
        .block_on(Server::bind(mismatched, None))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("cannot be used together"), "{err}");
}
