//! `ComponentCode`: one revision of a component, ready to answer requests,
//! each on a fresh instance from its pre-instantiated handler.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotswap_core::{CallError, Code, KvStore};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::outgoing::Hooks;
use crate::request::RequestState;
use crate::Policies;

/// What a handler answers: a response whose body streams from the handler
/// while it runs.
pub type Response = http::Response<HyperOutgoingBody>;

/// The body of a request handed to a component.
pub type RequestBody = wasmtime_wasi_http::WasiBody;

/// Any request body (a server's), as a component reads it: streamed, and
/// an error of the client's (a reset, a timeout) is the body's error.
pub fn request_body<B>(body: B) -> RequestBody
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    use http_body_util::BodyExt;
    body.map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string())))
        .boxed_unsync()
}

/// A prepared component revision. Calls go through [`ComponentCode::handle`];
/// [`Code::call`] (bytes in, bytes out) is not how components are called.
pub struct ComponentCode {
    pub(crate) pre: ProxyPre<RequestState>,
    pub(crate) slot: Arc<str>,
    pub(crate) kv: Arc<dyn KvStore>,
    pub(crate) policies: Arc<Policies>,
    pub(crate) memory_cap: u64,
    pub(crate) deadline: Duration,
    pub(crate) max_instances: u32,
}

/// Raised by the epoch callback once a request is past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("past its deadline")]
struct PastDeadline;

impl ComponentCode {
    /// Answers `request` on a fresh instance. Returns once the handler has
    /// set its response (status and headers); the body streams from the
    /// handler, which goes on running in a task of its own until it has
    /// written the body or its deadline passes.
    ///
    /// `finished` is called exactly once, when the request is over: with
    /// the status the handler answered and wrote the whole body for, or
    /// with why it failed (before or after its answer began). It is kept
    /// until then: give it the slot's [`Lease`](hotswap_core::Lease), so
    /// that the revision drains only after the body is written, and record
    /// the outcome there.
    ///
    /// Must be called within a Tokio runtime.
    pub async fn handle(
        &self,
        request: http::Request<RequestBody>,
        scheme: Scheme,
        finished: impl FnOnce(&Outcome) + Send + 'static,
    ) -> Result<Response, CallError> {
        let (rx, task) = match self.start(request, scheme, finished) {
            Ok(started) => started,
            Err((e, finished)) => {
                finished(&Err(e.clone()));
                return Err(e);
            }
        };
        match rx.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(CallError::Plugin(format!(
                "the handler answered with an error: {code:?}"
            ))),
            // The handler ended (or failed) without setting a response:
            // its task's outcome says why.
            Err(_) => match task.await {
                Ok(outcome) => Err(outcome
                    .err()
                    .unwrap_or_else(|| CallError::Host("the handler's answer was lost".into()))),
                Err(e) => Err(CallError::Host(format!("the handler's task failed: {e}"))),
            },
        }
    }

    /// Makes the request's store and starts its handler in a task: the
    /// channel its answer comes on, and the task, which ends with the
    /// request. On an error, `finished` comes back uncalled.
    fn start<F: FnOnce(&Outcome) + Send + 'static>(
        &self,
        request: http::Request<RequestBody>,
        scheme: Scheme,
        finished: F,
    ) -> Result<(Answer, tokio::task::JoinHandle<Outcome>), (CallError, F)> {
        let hooks = Hooks {
            slot: self.slot.clone(),
            outgoing: self.policies.outgoing(&self.slot),
        };
        let cap = usize::try_from(self.memory_cap).unwrap_or(usize::MAX);
        let mut store = Store::new(
            self.pre.engine(),
            RequestState::new(self.kv.clone(), hooks, cap),
        );
        store.limiter(|s| &mut s.limiter);
        let deadline = Instant::now() + self.deadline;
        // Checked at every epoch tick while the handler runs: until the
        // deadline it yields to the runtime (so a busy handler never holds a
        // worker thread), and then it traps.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(PastDeadline))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let req = match store
            .data_mut()
            .http()
            .new_incoming_request(scheme, request)
        {
            Ok(req) => req,
            Err(e) => return Err((CallError::Host(format!("{e:#}")), finished)),
        };
        // The status the handler answers, seen on its way to the caller.
        let status = Arc::new(AtomicU16::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let answered = status.clone();
        let out = store
            .data_mut()
            .http()
            .new_response_outparam_from_callback(move |answer| {
                if let Ok(response) = &answer {
                    answered.store(response.status().as_u16(), Ordering::Relaxed);
                }
                let _ = tx.send(answer);
            });
        let out = match out {
            Ok(out) => out,
            Err(e) => return Err((CallError::Host(format!("{e:#}")), finished)),
        };
        let pre = self.pre.clone();
        let (limit, budget, max) = (self.memory_cap, self.deadline, self.max_instances);
        let task = tokio::spawn(async move {
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            // The epoch ends a handler that computes; this ends one that
            // waits (on a slow client, or an outgoing request).
            let result = tokio::time::timeout_at(deadline.into(), run).await;
            let refused = store.data().limiter.refused;
            // The instance goes back to the pool before the caller hears.
            drop(store);
            let outcome = match result {
                Ok(Ok(())) => match status.load(Ordering::Relaxed) {
                    0 => Err(CallError::Plugin(
                        "the handler returned without setting a response".into(),
                    )),
                    answered => Ok(answered),
                },
                Ok(Err(e)) => Err(failure(e, refused, limit, budget, max)),
                Err(_) => Err(CallError::Deadline(budget)),
            };
            finished(&outcome);
            outcome
        });
        Ok((rx, task))
    }
}

/// A whole answer, read to its end: for callers that stream nothing (the
/// CLI, benchmarks, tests).
#[derive(Debug, Clone)]
pub struct Whole {
    /// Its status.
    pub status: u16,
    /// Its headers.
    pub headers: http::HeaderMap,
    /// Its body.
    pub body: bytes::Bytes,
    /// Its trailers, if it sent any.
    pub trailers: Option<http::HeaderMap>,
}

impl ComponentCode {
    /// [`ComponentCode::handle`], then the body read to its end.
    pub async fn handle_whole(
        &self,
        request: http::Request<RequestBody>,
        scheme: Scheme,
        finished: impl FnOnce(&Outcome) + Send + 'static,
    ) -> Result<Whole, CallError> {
        use http_body_util::BodyExt;
        let response = self.handle(request, scheme, finished).await?;
        let (parts, body) = response.into_parts();
        let collected = body
            .collect()
            .await
            .map_err(|e| CallError::Plugin(format!("the answer's body failed: {e}")))?;
        Ok(Whole {
            status: parts.status.as_u16(),
            headers: parts.headers,
            trailers: collected.trailers().cloned(),
            body: collected.to_bytes(),
        })
    }
}

/// How a request ended: the status the handler answered (its body written
/// whole), or why it failed.
pub type Outcome = Result<u16, CallError>;

/// Where the handler's answer (or its error code) arrives.
type Answer = tokio::sync::oneshot::Receiver<
    Result<Response, wasmtime_wasi_http::p2::bindings::http::types::ErrorCode>,
>;

/// What a failed instantiation or handler call means for the caller.
fn failure(
    e: wasmtime::Error,
    memory_refused: bool,
    limit: u64,
    budget: Duration,
    max_instances: u32,
) -> CallError {
    if e.downcast_ref::<PastDeadline>().is_some() {
        return CallError::Deadline(budget);
    }
    if memory_refused {
        return CallError::MemoryLimit { limit };
    }
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return CallError::Trap(trap.to_string());
    }
    // The pool is full: as many requests run as the tier allows.
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return CallError::Overloaded {
            cap: max_instances as usize,
        };
    }
    CallError::Trap(format!("{e:#}"))
}

impl Code for ComponentCode {
    /// Components answer HTTP requests ([`ComponentCode::handle`]); a
    /// bytes-in, bytes-out call has no request to give them.
    fn call(&self, _input: &[u8], _output: &mut Vec<u8>) -> Result<(), CallError> {
        Err(CallError::Host(
            "this slot serves a wasi:http component, which answers HTTP requests: send it one through a route".into(),
        ))
    }
}
