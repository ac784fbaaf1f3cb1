//! The one load generator of `hotswap bench http`, and the bare server it
//! is compared against: keep-alive connections on hyper's client, speaking
//! HTTP/1.1 or HTTP/2, in clear or over TLS, each posting one request after
//! another; and a bare hyper server on the same connection builder and
//! rustls config as `hotswap serve`, with no plugin behind it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::tally::Tally;

/// How a client talks to a server.
#[derive(Clone)]
pub(super) struct Proto {
    /// HTTP/2 (prior knowledge in clear, ALPN under TLS) rather than 1.1.
    pub h2: bool,
    /// TLS, trusting this config's roots.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A self-signed certificate for 127.0.0.1, written where `hotswap serve`
/// reads it, and a client config that trusts it.
pub(super) struct TestCert {
    pub server: hotswap_server::TlsConfig,
    pub client: Arc<rustls::ClientConfig>,
}

impl TestCert {
    pub fn new(dir: &std::path::Path) -> anyhow::Result<TestCert> {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
            .context("cannot make a test certificate")?;
        let server = hotswap_server::TlsConfig {
            cert: dir.join("bench.crt"),
            key: dir.join("bench.key"),
        };
        std::fs::write(&server.cert, made.cert.pem())?;
        std::fs::write(&server.key, made.signing_key.serialize_pem())?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(made.cert.der().clone())?;
        let mut client =
            rustls::ClientConfig::builder_with_provider(hotswap_server::crypto_provider())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
        client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TestCert {
            server,
            client: Arc::new(client),
        })
    }
}

/// A bare hyper server on loopback answering `POST /greet` with greet's
/// bytes, over HTTP/1.1 and HTTP/2, with TLS when `tls` is set: the same
/// connection builder and rustls config as `hotswap serve`, no plugin.
pub(super) async fn bare_server(
    listen: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/greet",
        axum::routing::post(|body: Bytes| async move {
            drop(body);
            "hello, world!"
        }),
    );
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (app, tls) = (app.clone(), tls.clone());
            tokio::spawn(async move {
                let service = hyper_util::service::TowerToHyperService::new(app);
                let builder = hotswap_server::connection_builder();
                match tls {
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    Some(tls) => {
                        if let Ok(s) = tokio_rustls::TlsAcceptor::from(tls).accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(s), service).await;
                        }
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// `clients` connections speaking `proto` to `addr`, each posting "world"
/// to `/greet` one request after another for `duration`. An answer that is
/// not `200` with greet's reply (v1's `hello, world!` or v2's) counts as
/// failed, as does a connection that cannot be opened.
pub(super) fn load(
    runtime: &tokio::runtime::Runtime,
    addr: SocketAddr,
    proto: &Proto,
    clients: usize,
    duration: Duration,
) -> Tally {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| runtime.spawn(client(addr, proto.clone(), stop.clone())))
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::default();
    for task in tasks {
        total.add(runtime.block_on(task).unwrap_or_default());
    }
    total.elapsed = started.elapsed();
    total
}

/// One client connection's requests until `stop`.
async fn client(addr: SocketAddr, proto: Proto, stop: Arc<AtomicBool>) -> Tally {
    let mut hist = super::hist();
    let (mut ok, mut failed) = (0, 0);
    let mut sender = match connect(addr, &proto).await {
        Ok(sender) => sender,
        Err(e) => {
            tracing::warn!(error = %e, "bench client cannot connect");
            let mut tally = Tally::default();
            tally.fail(|| format!("cannot connect: {e}"));
            return tally;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let good = sender.post().await;
        hist.saturating_record(t.elapsed().as_nanos() as u64);
        if good {
            ok += 1
        } else {
            failed += 1
        }
    }
    Tally {
        ok,
        failed,
        hist: Some(hist),
        ..Tally::default()
    }
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    /// One `POST /greet "world"`: whether it got greet's answer.
    async fn post(&mut self) -> bool {
        let request = Request::post("/greet")
            .header(hyper::header::HOST, "127.0.0.1")
            .body(Full::new(Bytes::from_static(b"world")))
            .expect("a valid request");
        let response = match self {
            Sender::H1(s) => s.send_request(request).await,
            Sender::H2(s) => s.send_request(request).await,
        };
        let Ok(response) = response else {
            return false;
        };
        if response.status() != 200 {
            return false;
        }
        let body = response.into_body().collect().await;
        body.is_ok_and(|b| {
            let b = b.to_bytes();
            b == "hello, world!" || b == "HELLO, WORLD!! (v2)"
        })
    }
}

async fn connect(addr: SocketAddr, proto: &Proto) -> anyhow::Result<Sender> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    match &proto.tls {
        None => handshake(TokioIo::new(tcp), proto.h2).await,
        Some(tls) => {
            let mut config = rustls::ClientConfig::clone(tls);
            let alpn: &[u8] = if proto.h2 { b"h2" } else { b"http/1.1" };
            config.alpn_protocols = vec![alpn.to_vec()];
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await?;
            handshake(TokioIo::new(stream), proto.h2).await
        }
    }
}

async fn handshake<I>(io: I, h2: bool) -> anyhow::Result<Sender>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    if h2 {
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(connection);
        Ok(Sender::H2(sender))
    } else {
        let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(connection);
        Ok(Sender::H1(sender))
    }
}
