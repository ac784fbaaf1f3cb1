//! The component tier end to end, below the server: real components (the
//! `hello` examples, built from source), real requests, real swaps.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hotswap_component::{
    ComponentCode, ComponentConfig, ComponentRejection, ComponentTier, Outcome, Outgoing,
    RequestBody, Scheme,
};
use hotswap_core::{Artifact, CallError, Digest, EventBus, Lease, MemoryKv, Slot};
use hotswap_examples::{HELLO_V1, HELLO_V2};
use http_body_util::{BodyExt, Full, StreamBody};

const MEMORY_CAP: u64 = 16 << 20;

fn slot(deadline: Duration) -> Arc<Slot<ComponentTier>> {
    serving(ComponentConfig {
        memory_cap: MEMORY_CAP,
        deadline,
        max_instances: 64,
        ..ComponentConfig::default()
    })
    .1
}

/// A tier with `config`, and a slot on it serving `hello` v1.
fn serving(config: ComponentConfig) -> (Arc<ComponentTier>, Arc<Slot<ComponentTier>>) {
    let tier = Arc::new(ComponentTier::new(config).unwrap());
    let slot = Slot::new(
        "hello",
        tier.clone(),
        Arc::new(MemoryKv::default()),
        EventBus::new(),
    );
    slot.deploy(Artifact::new(HELLO_V1.to_vec()), None).unwrap();
    (tier, Arc::new(slot))
}

fn body(bytes: impl Into<Bytes>) -> RequestBody {
    Full::new(bytes.into())
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

fn get(path: &str) -> http::Request<RequestBody> {
    http::Request::get(format!("http://localhost{path}"))
        .body(body(Bytes::new()))
        .unwrap()
}

/// Keeps the revision until the request is over, as the gateway does.
fn hold(lease: &Lease<ComponentCode>) -> impl FnOnce(&Outcome) + Send + 'static {
    let lease = lease.clone();
    move |_| drop(lease)
}

/// One request through the slot as the gateway sends it: routed, leased,
/// handled; the body read to its end.
async fn send(
    slot: &Slot<ComponentTier>,
    request: http::Request<RequestBody>,
) -> Result<(u16, http::HeaderMap, Bytes), CallError> {
    let lease = slot.lease(None)?;
    let answer = lease
        .code()
        .handle_whole(request, Scheme::Http, hold(&lease))
        .await?;
    Ok((answer.status, answer.headers, answer.body))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_swap_changes_the_answer_and_keeps_the_state() {
    let slot = slot(Duration::from_secs(5));
    assert_eq!(slot.kind(), Some(hotswap_core::Kind::Component));
    let rt = runtime();
    rt.block_on(async {
        let mut probe = get("/");
        probe.headers_mut().insert("x-probe", "42".parse().unwrap());
        let (status, headers, text) = send(&slot, probe).await.unwrap();
        assert_eq!((status, &text[..]), (200, &b"hello from v1\n"[..]));
        assert_eq!(headers["x-probe"], "42");
        assert_eq!(
            send(&slot, get("/count")).await.unwrap().2,
            "count 1, hello from v1\n"
        );

        slot.deploy(Artifact::new(HELLO_V2.to_vec()), None).unwrap();
        assert_eq!(send(&slot, get("/")).await.unwrap().2, "HELLO FROM V2\n");
        assert_eq!(
            send(&slot, get("/count")).await.unwrap().2,
            "count 2, HELLO FROM V2\n"
        );

        slot.rollback(&Digest::of(HELLO_V2), "back to v1").unwrap();
        assert_eq!(
            send(&slot, get("/count")).await.unwrap().2,
            "count 3, hello from v1\n"
        );
    });
}

#[test]
fn a_body_larger_than_the_memory_cap_streams_through_with_its_trailers() {
    let slot = slot(Duration::from_secs(30));
    let rt = runtime();
    rt.block_on(async {
        const CHUNK: usize = 64 << 10;
        let chunks = 3 * MEMORY_CAP as usize / CHUNK;
        let frames = tokio_stream::iter((0..chunks).map(|i| {
            Ok::<_, wasmtime_wasi_http::Error>(http_body::Frame::data(Bytes::from(vec![
                (i % 251)
                    as u8;
                CHUNK
            ])))
        }));
        let request = http::Request::post("http://localhost/echo")
            .body(StreamBody::new(frames).boxed_unsync())
            .unwrap();
        let lease = slot.lease(None).unwrap();
        let response = lease
            .code()
            .handle(request, Scheme::Http, hold(&lease))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let (mut seen, mut trailers) = (0usize, None);
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap();
            if let Some(data) = frame.data_ref() {
                // Every byte comes back in order.
                for (k, b) in data.iter().enumerate() {
                    assert_eq!(*b, (((seen + k) / CHUNK) % 251) as u8);
                }
                seen += data.len();
            } else if let Ok(t) = frame.into_trailers() {
                trailers = Some(t);
            }
        }
        assert_eq!(seen, chunks * CHUNK);
        let trailers = trailers.expect("the echo ends with its trailers");
        assert_eq!(trailers["x-echo-bytes"], (chunks * CHUNK).to_string());
    });
}

#[test]
fn a_handler_that_traps_fails_its_request_only() {
    let slot = slot(Duration::from_secs(5));
    let rt = runtime();
    rt.block_on(async {
        let e = send(&slot, get("/trap")).await.unwrap_err();
        assert!(matches!(e, CallError::Trap(_)), "{e:?}");
        assert_eq!(send(&slot, get("/")).await.unwrap().2, "hello from v1\n");
    });
}

#[test]
fn a_handler_that_loops_is_ended_at_its_deadline_and_holds_no_worker() {
    let deadline = Duration::from_millis(300);
    let slot = slot(deadline);
    let rt = runtime();
    rt.block_on(async {
        // More loops than the runtime has workers: if a loop held its
        // worker, the plain request below could not be answered until the
        // loops ended.
        let loops: Vec<_> = (0..4)
            .map(|_| {
                let slot = slot.clone();
                tokio::spawn(async move { send(&slot, get("/loop")).await })
            })
            .collect();
        assert_eq!(send(&slot, get("/")).await.unwrap().2, "hello from v1\n");
        // Answered while the loops still ran, not after they ended.
        assert!(loops.iter().all(|l| !l.is_finished()), "a loop ended first");
        for l in loops {
            assert_eq!(l.await.unwrap().unwrap_err(), CallError::Deadline(deadline));
        }
    });
}

#[test]
fn a_handler_that_eats_memory_fails_at_the_cap() {
    let slot = slot(Duration::from_secs(5));
    let rt = runtime();
    rt.block_on(async {
        let e = send(&slot, get("/eat")).await.unwrap_err();
        assert_eq!(e, CallError::MemoryLimit { limit: MEMORY_CAP });
        assert_eq!(send(&slot, get("/count")).await.unwrap().0, 200);
    });
}

/// A plain HTTP server on loopback that answers `upstream says hi`.
async fn upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"upstream says hi",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[test]
fn outgoing_requests_reach_allowed_hosts_only() {
    let (tier, slot) = serving(ComponentConfig {
        max_instances: 16,
        ..ComponentConfig::default()
    });
    let rt = runtime();
    rt.block_on(async {
        let addr = upstream().await;
        let fetch = || get(&format!("/fetch?to=http://{addr}/"));

        let (status, _, text) = send(&slot, fetch()).await.unwrap();
        assert_eq!(status, 502, "{text:?}");
        assert!(
            String::from_utf8_lossy(&text).contains("HttpRequestDenied"),
            "{text:?}"
        );

        tier.set_all_outgoing([("hello".into(), Outgoing::to([addr.to_string()]).unwrap())]);
        let (status, _, text) = send(&slot, fetch()).await.unwrap();
        assert_eq!(
            (status, &text[..]),
            (200, &b"fetched 200: upstream says hi"[..])
        );

        // Another port of the same host is another host.
        tier.set_all_outgoing([("hello".into(), Outgoing::to(["127.0.0.1:1"]).unwrap())]);
        assert_eq!(send(&slot, fetch()).await.unwrap().0, 502);
    });
}

#[test]
fn swaps_under_load_fail_no_request() {
    let slot = slot(Duration::from_secs(5));
    let rt = runtime();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, v2) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (slot, stop) = (slot.clone(), stop.clone());
            let (ok, failed, v2) = (ok.clone(), failed.clone(), v2.clone());
            rt.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match send(&slot, get("/")).await {
                        Ok((200, _, text)) if text == "hello from v1\n" => {
                            ok.fetch_add(1, Ordering::Relaxed)
                        }
                        Ok((200, _, text)) if text == "HELLO FROM V2\n" => {
                            v2.fetch_add(1, Ordering::Relaxed);
                            ok.fetch_add(1, Ordering::Relaxed)
                        }
                        other => {
                            eprintln!("failed: {other:?}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    // Swaps while the clients run: v1 → v2 → back, ten times.
    let served = |n: u64| {
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while ok.load(Ordering::Relaxed) < n {
            assert!(std::time::Instant::now() < until, "the clients stalled");
            std::thread::yield_now();
        }
    };
    for round in 0..10 {
        served(round * 200 + 100);
        slot.deploy(Artifact::new(HELLO_V2.to_vec()), None).unwrap();
        served(round * 200 + 200);
        slot.rollback(&Digest::of(HELLO_V2), "back to v1").unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        rt.block_on(c).unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) >= 2000);
    assert!(
        v2.load(Ordering::Relaxed) > 0,
        "v2 served none of the calls"
    );
}

fn inspect(bytes: &[u8]) -> Result<hotswap_component::ComponentInfo, ComponentRejection> {
    hotswap_component::validate(bytes)
}

/// A component that imports `import` and does nothing.
fn importing(import: &str) -> Vec<u8> {
    wat::parse_str(format!(r#"(component (import "{import}" (instance)))"#)).unwrap()
}

fn assert_refused_import(import: &str, says: &str) {
    let e = inspect(&importing(import)).unwrap_err();
    assert!(
        matches!(&e, ComponentRejection::ForbiddenImport { name, .. } if name == import),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains(says) && text.contains(import), "{text}");
}

#[test]
fn a_core_module_is_not_a_component() {
    assert_eq!(
        inspect(hotswap_examples::GREET_V1).unwrap_err(),
        ComponentRejection::CoreModule
    );
}

#[test]
fn a_component_without_the_handler_export_is_refused() {
    match inspect(&importing("wasi:io/poll@0.2.0")) {
        Err(ComponentRejection::NoHandler { found }) => assert_eq!(found, "nothing"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_component_that_imports_files_is_refused() {
    assert_refused_import("wasi:filesystem/preopens@0.2.0", "files are refused");
}

#[test]
fn a_component_that_imports_sockets_is_refused() {
    assert_refused_import("wasi:sockets/tcp@0.2.0", "sockets are refused");
}

#[test]
fn a_component_that_imports_anything_else_is_refused() {
    assert_refused_import("acme:secrets/vault", "outside the `wasi:http/proxy` world");
}

#[test]
fn a_valid_component_reports_its_manifest_and_imports() {
    let info = inspect(HELLO_V1).unwrap();
    assert_eq!(
        (info.manifest.name.as_str(), info.manifest.version.as_str()),
        ("hello", "1.0.0")
    );
    assert!(info.has_manifest);
    assert!(
        info.imports
            .iter()
            .any(|i| i.starts_with("hotswap:plugin/kv@")),
        "{:?}",
        info.imports
    );
}

#[test]
fn past_the_instance_limit_a_request_is_refused_as_overloaded() {
    let (_, slot) = serving(ComponentConfig {
        max_instances: 1,
        ..ComponentConfig::default()
    });
    let rt = runtime();
    rt.block_on(async {
        // An echo whose body stays open holds the one instance: its answer
        // has begun (the signal that the instance runs), its body has not
        // ended.
        let (tx, request) = open_echo();
        let lease = slot.lease(None).unwrap();
        let open = lease
            .code()
            .handle(request, Scheme::Http, hold(&lease))
            .await
            .unwrap();
        drop(lease);
        let e = send(&slot, get("/")).await.unwrap_err();
        assert_eq!(e, CallError::Overloaded { cap: 1 });

        // The request that holds it is unharmed.
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"bye"))))
            .await
            .unwrap();
        drop(tx);
        let echoed = open.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&echoed[..], b"bye");
    });
}

/// A POST to `/echo` whose body stays open until `tx` sends its last chunk
/// and is dropped: its answer has begun, its body has not ended.
fn open_echo() -> (
    tokio::sync::mpsc::Sender<Result<http_body::Frame<Bytes>, wasmtime_wasi_http::Error>>,
    http::Request<RequestBody>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let request = http::Request::post("http://localhost/echo")
        .body(StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed_unsync())
        .unwrap();
    (tx, request)
}

#[test]
fn a_revision_retires_only_after_the_last_body_it_streams_is_written() {
    use hotswap_core::{RevisionState, Transition};
    let slot = slot(Duration::from_secs(10));
    let rt = runtime();
    rt.block_on(async {
        let mut events = slot.events().subscribe();
        let (tx, request) = open_echo();
        let lease = slot.lease(None).unwrap();
        let open = lease
            .code()
            .handle(request, Scheme::Http, hold(&lease))
            .await
            .unwrap();
        drop(lease);

        // v2 serves new requests; v1 drains while its body is open.
        slot.deploy(Artifact::new(HELLO_V2.to_vec()), None).unwrap();
        assert_eq!(send(&slot, get("/")).await.unwrap().2, "HELLO FROM V2\n");
        let previous = slot.status().previous.unwrap();
        assert_eq!(
            (previous.generation, previous.state),
            (1, RevisionState::Draining)
        );
        while let Ok(e) = events.try_recv() {
            assert_ne!(
                e.transition,
                Transition::Retired,
                "v1 retired with a body open"
            );
        }

        tx.send(Ok(http_body::Frame::data(Bytes::from_static(
            b"last words",
        ))))
        .await
        .unwrap();
        drop(tx);
        let echoed = open.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&echoed[..], b"last words");
        let retired = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let e = events.recv().await.unwrap();
                if e.transition == Transition::Retired {
                    return e;
                }
            }
        })
        .await
        .expect("v1 retires once its body is written");
        assert_eq!(retired.generation, Some(1));
    });
}

/// Handles `request` and returns what `finished` was told, checking that
/// it was told exactly once.
async fn outcome_of(slot: &Slot<ComponentTier>, request: http::Request<RequestBody>) -> Outcome {
    let (tx, rx) = std::sync::mpsc::channel();
    let lease = slot.lease(None).unwrap();
    let answer = lease
        .code()
        .handle(request, Scheme::Http, move |o: &Outcome| {
            tx.send(o.clone()).unwrap()
        })
        .await;
    if let Ok(response) = answer {
        let _ = response.into_body().collect().await;
    }
    let outcome = tokio::task::spawn_blocking(move || {
        let first = rx.recv().expect("finished is called");
        assert!(rx.recv().is_err(), "finished is called once");
        first
    })
    .await
    .unwrap();
    outcome
}

#[test]
fn the_outcome_of_a_request_counts_its_whole_body() {
    let slot = slot(Duration::from_secs(5));
    let rt = runtime();
    rt.block_on(async {
        assert_eq!(outcome_of(&slot, get("/")).await, Ok(200));
        assert!(matches!(
            outcome_of(&slot, get("/trap")).await,
            Err(CallError::Trap(_))
        ));
        // The answer began well, then the handler failed mid-body (the
        // client's body broke): the request failed.
        let (tx, request) = open_echo();
        let sent = tokio::spawn(async move {
            tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"half"))))
                .await
                .unwrap();
            tx.send(Err(wasmtime_wasi_http::Error::ConnectionTerminated))
                .await
                .unwrap();
        });
        assert!(outcome_of(&slot, request).await.is_err());
        sent.await.unwrap();
    });
}

#[test]
fn a_component_is_compiled_once_per_digest_then_loaded_from_the_cache_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = || ComponentConfig {
        max_instances: 2,
        cache_dir: Some(dir.path().to_path_buf()),
        ..ComponentConfig::default()
    };
    let (tier, slot) = serving(config());
    slot.deploy(Artifact::new(HELLO_V2.to_vec()), None).unwrap();
    slot.rollback(&Digest::of(HELLO_V2), "back").unwrap();
    let stats = tier.cache_stats();
    assert_eq!((stats.compiles, stats.disk_hits), (2, 0), "{stats:?}");
    assert!(
        stats.memory_hits >= 1,
        "the rollback compiled again: {stats:?}"
    );

    // A new process: the same digest comes from disk, compiled by none.
    let (again, slot) = serving(config());
    let stats = again.cache_stats();
    assert_eq!((stats.compiles, stats.disk_hits), (0, 1), "{stats:?}");
    let rt = runtime();
    assert_eq!(
        rt.block_on(send(&slot, get("/"))).unwrap().2,
        "hello from v1\n"
    );
}
