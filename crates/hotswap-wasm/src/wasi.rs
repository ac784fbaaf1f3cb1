//! WASI preview 1 for plugins whose host allows it: wasmtime-wasi's own
//! implementation, in a sandbox with no files, no network, no environment and
//! no arguments. What a plugin prints goes to the host's log, line by line.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hotswap_core::CallError;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::WasiCtxBuilder;

/// A fresh sandbox for one instance. wasmtime-wasi's defaults already deny
/// everything that reaches outside (no preopened directories, no sockets,
/// no name lookups, closed stdin); only the output streams are set.
pub(crate) fn context(slot: &Arc<str>) -> WasiP1Ctx {
    WasiCtxBuilder::new()
        .stdout(LogStream::new(slot, "stdout"))
        .stderr(LogStream::new(slot, "stderr"))
        .build_p1()
}

/// WASI's "function not supported" errno.
const ENOSYS: i32 = 52;

/// Adds the `wasi_snapshot_preview1` functions to the linker.
///
/// `poll_oneoff` is replaced by one that answers ENOSYS: wasmtime-wasi
/// implements a clock wait as a plain thread sleep, which epoch
/// interruption cannot end, so a plugin could hold a call (and its
/// revision's drain) far past its deadline. Plugins serve calls; they have
/// nothing to wait for.
pub(crate) fn add_to_linker(
    linker: &mut wasmtime::Linker<crate::host::HostState>,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_sync(linker, |s| {
        s.wasi
            .as_mut()
            .expect("a WASI context is made for every instance of a WASI module")
    })?;
    linker.allow_shadowing(true);
    linker.func_wrap(
        crate::WASI_MODULE,
        "poll_oneoff",
        |_in: i32, _out: i32, _n: i32, _events: i32| -> i32 { ENOSYS },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Runs `call` where wasmtime-wasi's synchronous functions can work. They
/// block on a tokio runtime, which panics on a runtime's worker thread; from
/// a multi-threaded runtime the call steps out with `block_in_place`, and a
/// single-threaded runtime cannot host it at all.
pub(crate) fn outside_async<R>(
    call: impl FnOnce() -> Result<R, CallError>,
) -> Result<R, CallError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => call(),
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(call),
        Ok(_) => Err(CallError::Host(
            "WASI plugins cannot be called on a current-thread tokio runtime; use a multi-threaded one or spawn_blocking".into(),
        )),
    }
}

/// A plugin's stdout or stderr, written to the log as `plugin` events.
#[derive(Clone)]
struct LogStream {
    slot: Arc<str>,
    stream: &'static str,
}

impl LogStream {
    fn new(slot: &Arc<str>, stream: &'static str) -> LogStream {
        LogStream {
            slot: slot.clone(),
            stream,
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            to: self.clone(),
            line: Vec::new(),
        })
    }
}

/// Collects bytes into lines; a line is logged when it ends, when it grows
/// past [`MAX_LINE`], or on flush.
struct LineWriter {
    to: LogStream,
    line: Vec<u8>,
}

const MAX_LINE: usize = 4096;

impl LineWriter {
    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches('\n');
        tracing::info!(target: "plugin", slot = &*self.to.slot, stream = self.to.stream, "{text}");
        self.line.clear();
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        for &b in buf {
            self.line.push(b);
            if b == b'\n' || self.line.len() >= MAX_LINE {
                self.emit();
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.emit();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.emit();
    }
}
