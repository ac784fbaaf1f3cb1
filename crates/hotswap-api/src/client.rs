//! `Client`: the admin API from the other side, blocking (the CLI has no
//! async runtime to spare): typed calls for the slot and process endpoints,
//! raw requests for the rest, and server-sent event streams.

use std::io::{BufRead, BufReader, Read};

use hotswap_core::{Kind, SlotStatus};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::wire::{
    CallsAnswer, DeployQuery, EventsAnswer, ExpectQuery, ProcessInfo, ReloadPlan, ReloadQuery,
    RevisionAnswer, RollbackQuery, SlotsAnswer, UpgradeReport, WeightBody,
};
use crate::{ErrorKind, Problem};

/// Why a call through the client did not get its answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the address.
    #[error("cannot reach the admin API at {admin} ({why}); is `hotswap serve` running? (set --admin or HOTSWAP_ADMIN)")]
    Unreachable {
        /// The address tried.
        admin: String,
        /// What the connection said.
        why: String,
    },
    /// The server closed the connection before it read the upload: what a
    /// server does with a wrong token or an oversize upload on a client
    /// that sends the body without waiting.
    #[error("the admin API at {admin} closed the connection before reading the upload: is the token right (HOTSWAP_TOKEN), and the upload within max_module_bytes?")]
    ClosedEarly {
        /// The address tried.
        admin: String,
    },
    /// The server refused, saying why.
    #[error("the server refused ({status}): {}", .problem.error)]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The refusal's body (a non-JSON body is kept as the message,
        /// with [`ErrorKind::Unknown`]).
        problem: Problem,
    },
    /// The server answered something this client cannot read.
    #[error("the server's answer is not what this client expects ({why}): {body}")]
    BadAnswer {
        /// The answer.
        body: String,
        /// What did not fit.
        why: String,
    },
}

impl ClientError {
    /// The refusal's kind, when the server refused.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Refused { problem, .. } => Some(problem.kind),
            _ => None,
        }
    }
}

/// A typed answer, and the server's JSON as it came (for `--json`).
#[derive(Debug, Clone)]
pub struct Answered<T> {
    /// The answer, read.
    pub value: T,
    /// The answer as the server wrote it.
    pub json: serde_json::Value,
}

/// An answer of any status, unread.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
}

impl Reply {
    /// The answer as `T` if the server accepted the request, else its
    /// refusal.
    pub fn read<T: DeserializeOwned>(self) -> Result<Answered<T>, ClientError> {
        if !(200..300).contains(&self.status) {
            return Err(self.refused());
        }
        let bad = |e: serde_json::Error| ClientError::BadAnswer {
            body: self.body.clone(),
            why: e.to_string(),
        };
        let json: serde_json::Value = serde_json::from_str(&self.body).map_err(bad)?;
        let value = T::deserialize(&json).map_err(bad)?;
        Ok(Answered { value, json })
    }
}

impl Reply {
    /// The answer as a refusal (a body that is not the API's JSON is kept
    /// as the message, with [`ErrorKind::Unknown`]).
    fn refused(self) -> ClientError {
        let problem = serde_json::from_str::<Problem>(&self.body)
            .unwrap_or_else(|_| Problem::new(ErrorKind::Unknown, self.body.trim()));
        ClientError::Refused {
            status: self.status,
            problem,
        }
    }
}

/// One event of a server-sent event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// Its `event:` kind (empty for the default kind).
    pub kind: String,
    /// Its `data:`.
    pub data: String,
}

/// The admin API of one server.
///
/// ```no_run
/// use hotswap_api::Client;
///
/// let admin = Client::new("127.0.0.1:8081").with_token(std::env::var("HOTSWAP_TOKEN").ok());
/// for slot in admin.slots()?.value.slots {
///     println!("{}: {:?}", slot.name, slot.active.map(|a| a.version));
/// }
/// # Ok::<(), hotswap_api::ClientError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    admin: String,
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// The admin API at `admin`: `HOST:PORT`, or a URL.
    pub fn new(admin: &str) -> Client {
        let trimmed = admin.trim_end_matches('/');
        let base = if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
            trimmed.to_string()
        } else {
            format!("http://{trimmed}")
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            admin: admin.to_string(),
            base,
            token: None,
            agent,
        }
    }

    /// Sends `token` as the bearer token (none: no `Authorization`).
    pub fn with_token(mut self, token: Option<String>) -> Client {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// The address it talks to, as given.
    pub fn admin(&self) -> &str {
        &self.admin
    }

    /// Deploys `artifact` to `slot` (`POST /v1/slots/{slot}/revisions`).
    pub fn deploy(
        &self,
        slot: &str,
        artifact: &[u8],
        query: &DeployQuery,
    ) -> Result<Answered<RevisionAnswer>, ClientError> {
        let path = format!(
            "/v1/slots/{}/revisions{}",
            segment(slot),
            query_string(query)
        );
        self.send("POST", &path, Some(artifact))?.read()
    }

    /// Every slot (`GET /v1/slots`).
    pub fn slots(&self) -> Result<Answered<SlotsAnswer>, ClientError> {
        self.send("GET", "/v1/slots", None)?.read()
    }

    /// One slot (`GET /v1/slots/{slot}`).
    pub fn slot(&self, slot: &str) -> Result<Answered<SlotStatus>, ClientError> {
        self.send("GET", &format!("/v1/slots/{}", segment(slot)), None)?
            .read()
    }

    /// One slot's call totals (`GET /v1/slots/{slot}/calls`).
    pub fn calls(&self, slot: &str) -> Result<Answered<CallsAnswer>, ClientError> {
        self.send("GET", &format!("/v1/slots/{}/calls", segment(slot)), None)?
            .read()
    }

    /// Sets the share of calls of `slot`'s canary.
    pub fn set_canary_weight(
        &self,
        slot: &str,
        body: &WeightBody,
    ) -> Result<Answered<RevisionAnswer>, ClientError> {
        let body = serde_json::to_vec(body).expect("a weight serialises");
        let path = format!("/v1/slots/{}/canary", segment(slot));
        self.send("POST", &path, Some(&body))?.read()
    }

    /// Makes `slot`'s canary its active revision.
    pub fn promote(
        &self,
        slot: &str,
        query: &ExpectQuery,
    ) -> Result<Answered<RevisionAnswer>, ClientError> {
        let path = format!("/v1/slots/{}/promote{}", segment(slot), query_string(query));
        self.send("POST", &path, Some(b""))?.read()
    }

    /// Rolls `slot` back: its canary if it has one, else its active
    /// revision.
    pub fn rollback(
        &self,
        slot: &str,
        query: &RollbackQuery,
    ) -> Result<Answered<RevisionAnswer>, ClientError> {
        let path = format!(
            "/v1/slots/{}/rollback{}",
            segment(slot),
            query_string(query)
        );
        self.send("POST", &path, Some(b""))?.read()
    }

    /// The recent events (`GET /v1/events`).
    pub fn events(&self) -> Result<Answered<EventsAnswer>, ClientError> {
        self.send("GET", "/v1/events", None)?.read()
    }

    /// Re-reads the server's config file and applies it (with `dry_run`,
    /// only says what would change).
    pub fn reload(&self, dry_run: bool) -> Result<Answered<ReloadPlan>, ClientError> {
        let path = format!("/v1/reload{}", query_string(&ReloadQuery { dry_run }));
        self.send("POST", &path, Some(b""))?.read()
    }

    /// Upgrades the server to the binary on disk; answers once the new
    /// process serves.
    pub fn upgrade(&self) -> Result<Answered<UpgradeReport>, ClientError> {
        self.send("POST", "/v1/upgrade", Some(b""))?.read()
    }

    /// Which process serves.
    pub fn process(&self) -> Result<Answered<ProcessInfo>, ClientError> {
        self.send("GET", "/v1/process", None)?.read()
    }

    /// Loads or replaces the eBPF program `name` from `object`
    /// (`POST /v1/ebpf/{name}/revisions`), answering the server's view of
    /// the placement.
    pub fn place<T: DeserializeOwned>(
        &self,
        name: &str,
        object: &[u8],
        query: &crate::wire::ebpf::PlaceQuery,
    ) -> Result<Answered<T>, ClientError> {
        let path = format!(
            "/v1/ebpf/{}/revisions{}",
            segment(name),
            query_string(query)
        );
        self.send("POST", &path, Some(object))?.read()
    }

    /// Any request: `method` (`GET`, `POST`, `PUT`, `DELETE`) to `path`
    /// with `body`, whose content type follows from its first bytes (JSON,
    /// a WebAssembly module, or other bytes).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Reply, ClientError> {
        let url = format!("{}{path}", self.base);
        let content_type = |b: &[u8]| match Kind::of(b) {
            _ if b.starts_with(b"{") => "application/json",
            Kind::Native => "application/octet-stream",
            Kind::Wasm | Kind::Component => "application/wasm",
        };
        let result = match (method, body) {
            ("POST", Some(b)) => self
                .authorized(self.agent.post(&url))
                .header("content-type", content_type(b))
                .send(b),
            ("PUT", Some(b)) => self
                .authorized(self.agent.put(&url))
                .header("content-type", content_type(b))
                .send(b),
            ("DELETE", _) => self.authorized(self.agent.delete(&url)).call(),
            _ => self.authorized(self.agent.get(&url)).call(),
        };
        let mut response = result.map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::BadAnswer {
                body: String::new(),
                why: format!("cannot read the answer: {e}"),
            })?;
        Ok(Reply { status, body })
    }

    /// Follows the server-sent event stream at `path` (`?follow=true`
    /// endpoints) until the server ends it.
    pub fn stream(
        &self,
        path: &str,
    ) -> Result<impl Iterator<Item = Result<SseEvent, ClientError>>, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut response = self
            .authorized(self.agent.get(&url))
            .call()
            .map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.body_mut().read_to_string().unwrap_or_default();
            return Err(Reply { status, body }.refused());
        }
        let reader: Box<dyn Read + Send> = Box::new(response.into_body().into_reader());
        Ok(SseEvents {
            lines: BufReader::new(reader).lines(),
            kind: String::new(),
        })
    }

    fn authorized<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    fn unreachable(&self, e: ureq::Error) -> ClientError {
        let admin = self.admin.clone();
        match e {
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                ClientError::ClosedEarly { admin }
            }
            e => ClientError::Unreachable {
                admin,
                why: e.to_string(),
            },
        }
    }
}

/// The events of a server-sent event stream, one per blank-line-ended
/// block with a `data:` line.
struct SseEvents<R> {
    lines: std::io::Lines<R>,
    kind: String,
}

impl<R: BufRead> Iterator for SseEvents<R> {
    type Item = Result<SseEvent, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = match self.lines.next()? {
                Ok(line) => line,
                Err(e) => {
                    return Some(Err(ClientError::BadAnswer {
                        body: String::new(),
                        why: format!("the event stream broke: {e}"),
                    }))
                }
            };
            if let Some(k) = line.strip_prefix("event:") {
                self.kind = k.trim().to_string();
            } else if let Some(data) = line.strip_prefix("data:") {
                return Some(Ok(SseEvent {
                    kind: std::mem::take(&mut self.kind),
                    data: data.trim().to_string(),
                }));
            } else if line.is_empty() {
                self.kind.clear();
            }
        }
    }
}

/// `?a=1&b=x` from a query struct's fields that are set (nothing when
/// none is), encoded: for paths the typed calls do not build.
pub fn query_string(query: &impl Serialize) -> String {
    let value = serde_json::to_value(query).expect("a query serialises");
    let pairs: Vec<String> = value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let v = match v {
                serde_json::Value::Null | serde_json::Value::Bool(false) => return None,
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some(format!("{k}={}", segment(&v)))
        })
        .collect();
    match pairs.is_empty() {
        true => String::new(),
        false => format!("?{}", pairs.join("&")),
    }
}

/// Percent-encodes a path segment or query value.
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_carry_only_what_is_set_and_are_encoded() {
        assert_eq!(query_string(&DeployQuery::default()), "");
        let q = RollbackQuery {
            reason: Some("bad p99 & more".into()),
            expect: None,
        };
        assert_eq!(query_string(&q), "?reason=bad%20p99%20%26%20more");
        let q = DeployQuery {
            canary: Some(10),
            sha256: Some("ab".into()),
            signature: None,
        };
        // Fields in name order (serde_json maps are sorted).
        assert_eq!(query_string(&q), "?canary=10&sha256=ab");
        assert_eq!(
            query_string(&ReloadQuery { dry_run: true }),
            "?dry_run=true"
        );
    }

    #[test]
    fn a_refusal_reads_as_its_kind_whatever_the_body() {
        let r = Reply {
            status: 409,
            body: r#"{"error": "no canary", "kind": "no-canary"}"#.into(),
        };
        let e = r.read::<RevisionAnswer>().unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::NoCanary));
        assert_eq!(e.to_string(), "the server refused (409): no canary");
        let r = Reply {
            status: 502,
            body: "Bad Gateway\n".into(),
        };
        let e = r.read::<RevisionAnswer>().unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::Unknown));
        assert_eq!(e.to_string(), "the server refused (502): Bad Gateway");
    }

    #[test]
    fn server_sent_events_split_into_kind_and_data() {
        let text = "event: lagged\ndata: 3\n\ndata: {\"seq\":1}\n\n: keep-alive\n\n";
        let events: Vec<SseEvent> = SseEvents {
            lines: std::io::Cursor::new(text).lines(),
            kind: String::new(),
        }
        .map(Result::unwrap)
        .collect();
        assert_eq!(
            events,
            [
                SseEvent {
                    kind: "lagged".into(),
                    data: "3".into()
                },
                SseEvent {
                    kind: String::new(),
                    data: "{\"seq\":1}".into()
                },
            ]
        );
    }
}
