//! Outgoing HTTP from a component: refused unless the slot's config lists
//! the host. This is the `send_request` hook of wasi:http; the default hook
//! would reach anything the host can.

use std::future::Future;
use std::sync::Arc;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// The hosts a slot's components may send requests to. The default allows
/// none.
///
/// ```
/// use hotswap_component::Outgoing;
///
/// let allowed = Outgoing::to(["api.example.com", "127.0.0.1:8080"])?;
/// assert!(allowed.allows("API.example.com:443"));
/// assert!(allowed.allows("127.0.0.1:8080"));
/// assert!(!allowed.allows("127.0.0.1:9090"));
/// // A port in a rule is also matched by the scheme's own.
/// let tls_only = Outgoing::to(["api.example.com:443"])?;
/// assert!(tls_only.allows_request(true, "api.example.com"));
/// assert!(!tls_only.allows_request(false, "api.example.com"));
/// assert!(!Outgoing::default().allows("api.example.com"));
/// # Ok::<(), hotswap_component::OutgoingError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outgoing {
    hosts: Vec<Rule>,
}

/// One allowed host: any port, or one port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    host: String,
    port: Option<u16>,
}

/// An entry of an outgoing allow list that is not `host` or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a host or host:port (outgoing hosts are names or addresses, without a scheme or path)")]
pub struct OutgoingError(String);

impl Outgoing {
    /// Allows requests to each of `hosts`: `name` (any port: for a name
    /// this host also listens on, such as `127.0.0.1`, that includes its
    /// admin API, so name the port) or `name:port`. IPv6 addresses are
    /// written in brackets.
    pub fn to<S: AsRef<str>>(
        hosts: impl IntoIterator<Item = S>,
    ) -> Result<Outgoing, OutgoingError> {
        let hosts = hosts
            .into_iter()
            .map(|h| {
                let h = h.as_ref();
                let bad = || OutgoingError(h.to_string());
                if h.is_empty() || h.contains(['/', '@', ' ']) {
                    return Err(bad());
                }
                let authority: http::uri::Authority = h.parse().map_err(|_| bad())?;
                Ok(Rule {
                    host: authority.host().to_ascii_lowercase(),
                    port: authority.port_u16(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Outgoing { hosts })
    }

    /// Whether a request to `authority` (`host` or `host:port`) is allowed;
    /// without a port, `host:port` rules match the port of `https`.
    pub fn allows(&self, authority: &str) -> bool {
        self.allows_request(true, authority)
    }

    /// Whether a request to `authority` over TLS (`https`) or not is
    /// allowed: a request without a port goes to its scheme's (443 or 80).
    pub fn allows_request(&self, tls: bool, authority: &str) -> bool {
        let Ok(authority) = authority.parse::<http::uri::Authority>() else {
            return false;
        };
        let host = authority.host().to_ascii_lowercase();
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        self.hosts
            .iter()
            .any(|r| r.host == host && r.port.is_none_or(|p| p == port))
    }

    /// Whether any host is allowed at all.
    pub fn is_none(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// The hooks one request's store runs with: who it is, and what it may
/// reach.
pub(crate) struct Hooks {
    pub slot: Arc<str>,
    pub outgoing: Arc<Outgoing>,
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> ResponseFuture {
        drop(fut);
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        // wasi:http defaults a request without a scheme to https.
        let tls = request.uri().scheme() != Some(&http::uri::Scheme::HTTP);
        if !self.outgoing.allows_request(tls, &authority) {
            tracing::warn!(
                slot = &*self.slot,
                to = authority,
                "refused an outgoing request from a component: the host is not in the slot's allow list"
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}
