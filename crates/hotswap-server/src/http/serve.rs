//! Serving HTTP connections from our own accept loops, so that the server
//! can stop accepting and drain on its own terms.
//!
//! Each listener speaks HTTP/1.1 and HTTP/2 (prior knowledge, or chosen by
//! ALPN under TLS) on the same port, and TLS when its [`Surface`] has a
//! rustls config; a reload swaps that config for connections accepted
//! after it.
//!
//! A drain (before an upgrade hands over, or at shutdown) must finish every
//! request in flight and close keep-alive connections without cutting a
//! request a client has just sent. So, once draining:
//! - every HTTP/1 response carries `Connection: close`, and the connection
//!   closes after it: a busy client learns to reconnect (to the new
//!   process) from its next answer; an HTTP/2 connection gets a GOAWAY at
//!   once, which lets its open streams finish and tells the client to open
//!   new ones elsewhere;
//! - a connection that has sent nothing for `idle_grace` is closed (a
//!   client that idle rarely sends at that very moment, and then only on a
//!   connection it must already be ready to find closed);
//! - whatever is still open at the deadline is dropped.
//!
//! Requests are routed through whatever [`Router`] is current when they
//! arrive, so a config reload applies to connections already open.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use axum::http::{header, HeaderName, HeaderValue, Request, Version};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tower::ServiceExt;

/// Every response carries this header: the generation of the process that
/// answered (1 for a process started by hand, +1 per upgrade).
pub const PROCESS_HEADER: HeaderName = HeaderName::from_static(hotswap_api::headers::PROCESS);

/// How long a client may take over its TLS handshake before the connection
/// is dropped (so that a silent one does not hold a drain).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What one listener serves: the current router, and the current TLS
/// config (none: plain HTTP). A reload replaces either in place.
#[derive(Clone)]
pub(crate) struct Surface {
    pub router: Arc<ArcSwap<Router>>,
    pub tls: Arc<ArcSwapOption<rustls::ServerConfig>>,
}

impl Surface {
    pub(crate) fn new(router: Router, tls: Option<Arc<rustls::ServerConfig>>) -> Surface {
        Surface {
            router: Arc::new(ArcSwap::from_pointee(router)),
            tls: Arc::new(ArcSwapOption::new(tls)),
        }
    }
}

/// How a drain treats connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DrainTiming {
    /// Close a connection that has been idle this long.
    pub idle_grace: Duration,
    /// Drop whatever is still open this long after the drain began.
    pub deadline: Duration,
}

impl From<&crate::ServerConfig> for DrainTiming {
    fn from(config: &crate::ServerConfig) -> DrainTiming {
        DrainTiming {
            idle_grace: Duration::from_millis(config.upgrade.drain_idle_ms),
            deadline: Duration::from_millis(config.upgrade.drain_timeout_ms),
        }
    }
}

/// The open connections of one process, across all its listeners.
pub(crate) struct Connections {
    /// Connections that a drain waits for.
    open: AtomicUsize,
    /// Connections a handler exempted from drains (see [`ConnectionHandle`]).
    exempt: AtomicUsize,
    closed: Notify,
    /// `Some` while draining.
    draining: watch::Sender<Option<Drain>>,
    /// Whether `draining` is `Some`, for every answer to read without the
    /// watch's lock.
    is_draining: AtomicBool,
    generation: HeaderValue,
}

/// A drain under way, as every connection sees it.
#[derive(Debug, Clone, Copy)]
struct Drain {
    /// Connections still idle by then are closed.
    close_idle: Instant,
    /// Whatever is still open then is dropped.
    deadline: Instant,
}

impl Connections {
    pub(crate) fn new(generation: u64) -> Arc<Connections> {
        Arc::new(Connections {
            open: AtomicUsize::new(0),
            exempt: AtomicUsize::new(0),
            closed: Notify::new(),
            draining: watch::Sender::new(None),
            is_draining: AtomicBool::new(false),
            generation: HeaderValue::from(generation),
        })
    }

    /// Starts draining every connection (accept loops are stopped
    /// separately) and waits until all of them, except exempt ones, closed.
    pub(crate) async fn drain(&self, timing: DrainTiming) {
        self.start_draining(timing);
        self.drained().await
    }

    /// From now on answers say `Connection: close`, idle connections get
    /// `idle_grace`, and everything is cut at the deadline.
    pub(crate) fn start_draining(&self, timing: DrainTiming) {
        let now = Instant::now();
        self.is_draining.store(true, Ordering::Relaxed);
        self.draining.send_replace(Some(Drain {
            close_idle: now + timing.idle_grace,
            deadline: now + timing.deadline,
        }));
    }

    /// Waits until every connection, except exempt ones, closed.
    pub(crate) async fn drained(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }

    /// Waits until the exempt connections closed too: the upgrade request
    /// has its answer before this process exits.
    pub(crate) async fn wait_exempt(&self) {
        loop {
            let closed = self.closed.notified();
            if self.exempt.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }

    /// Back to normal after a drain whose upgrade failed.
    pub(crate) fn resume(&self) {
        self.is_draining.store(false, Ordering::Relaxed);
        self.draining.send_replace(None);
    }

    fn opened(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

    fn close(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.closed.notify_waiters();
        }
    }
}

/// Handed to every request (one shared handle per connection, the only
/// extension a request gets): who the peer is, and a way for a handler to
/// take its own connection out of the drain's count, because it drives the
/// drain (the upgrade request waits for the drain, which must not wait for
/// it).
#[derive(Clone)]
pub(crate) struct ConnectionHandle(Arc<Connection>);

struct Connection {
    peer: SocketAddr,
    /// Whether it came over TLS.
    secure: bool,
    /// Set once a handler exempted it from drains.
    exempt: AtomicBool,
    /// Set by the first HTTP/2 request: such a connection drains by GOAWAY.
    h2: AtomicBool,
    connections: Arc<Connections>,
}

impl ConnectionHandle {
    /// The address the connection came from.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.0.peer
    }

    /// Whether the connection is over TLS.
    pub(crate) fn secure(&self) -> bool {
        self.0.secure
    }

    /// Resolves when the process starts draining: endless answers (event
    /// streams) end there, or they would hold the drain to its deadline.
    pub(crate) fn draining(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.0.connections.draining.subscribe();
        async move {
            let _ = rx.wait_for(Option::is_some).await;
        }
    }

    /// Drains stop waiting for this connection.
    pub(crate) fn exempt_from_drain(&self) {
        let this = &*self.0;
        if !this.exempt.swap(true, Ordering::AcqRel) {
            this.connections.exempt.fetch_add(1, Ordering::AcqRel);
            this.connections.close();
        }
    }
}

/// Accepts on `listener` until `stop` turns true, serving each connection
/// with what `surface` holds when it is accepted.
pub(crate) async fn accept(
    listener: Arc<TcpListener>,
    surface: Surface,
    connections: Arc<Connections>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                connections.opened();
                let (router, tls) = (surface.router.clone(), surface.tls.load_full());
                let connections = connections.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve(stream, peer, false, router, &connections).await,
                        Some(tls) => {
                            let handshake = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                                Ok(Ok(stream)) => {
                                    serve(stream, peer, true, router, &connections).await
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    connections.close();
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    connections.close();
                                }
                            }
                        }
                    }
                });
            }
            // Out of descriptors and the like: back off briefly rather than
            // spin; connections wait in the backlog meanwhile.
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// How every listener speaks HTTP: HTTP/1.1 and HTTP/2 on one port, with
/// hyper's timeouts on a Tokio timer (an HTTP/1 client that sends its
/// headers too slowly is cut off). Public so that `hotswap bench http`'s
/// bare server is the same server without hotswap.
pub fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    builder
}

/// One connection, from its first byte to close.
async fn serve<I>(
    stream: I,
    peer: SocketAddr,
    secure: bool,
    router: Arc<ArcSwap<Router>>,
    connections: &Arc<Connections>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handle = ConnectionHandle(Arc::new(Connection {
        peer,
        secure,
        exempt: AtomicBool::new(false),
        h2: AtomicBool::new(false),
        connections: connections.clone(),
    }));
    let draining = connections.draining.subscribe();
    let service = {
        let handle = handle.clone();
        hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            let is_h2 = request.version() == Version::HTTP_2;
            if is_h2 {
                handle.0.h2.store(true, Ordering::Relaxed);
            }
            let handle = handle.clone();
            request.extensions_mut().insert(handle.clone());
            let router = Router::clone(&router.load());
            async move {
                let mut response = router.oneshot(request).await?;
                let connections = &handle.0.connections;
                let headers = response.headers_mut();
                headers.insert(PROCESS_HEADER, connections.generation.clone());
                // HTTP/2 has no `Connection` header (GOAWAY does its work).
                if !is_h2 && connections.is_draining.load(Ordering::Relaxed) {
                    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    let builder = connection_builder();
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut draining = draining;
    let drain = tokio::select! {
        biased;
        _ = connection.as_mut() => None,
        d = draining.wait_for(Option::is_some) => d.ok().and_then(|d| *d),
    };
    if let Some(Drain {
        close_idle,
        deadline,
    }) = drain
    {
        // A busy HTTP/1 connection ends after its next response (it says
        // `Connection: close`); give an idle one the grace period. HTTP/2
        // gets its GOAWAY now.
        let ended = !handle.0.h2.load(Ordering::Relaxed)
            && tokio::select! {
                _ = connection.as_mut() => true,
                _ = tokio::time::sleep_until(close_idle) => false,
            };
        if !ended {
            // Closes it now if idle, else after the response in progress.
            connection.as_mut().graceful_shutdown();
            if handle.0.exempt.load(Ordering::Acquire) {
                let _ = connection.as_mut().await;
            } else {
                tokio::select! {
                    _ = connection.as_mut() => {}
                    _ = tokio::time::sleep_until(deadline) => {
                        tracing::warn!(%peer, "dropped a connection still busy at the drain deadline");
                    }
                }
            }
        }
    }
    if handle.0.exempt.swap(true, Ordering::AcqRel) {
        connections.exempt.fetch_sub(1, Ordering::AcqRel);
        connections.closed.notify_waiters();
    } else {
        connections.close();
    }
}
