//! One request's store: its WASI and wasi:http contexts, its resource
//! table, its memory limiter, and the slot's key-value state.

use std::sync::Arc;

use hotswap_core::KvStore;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::outgoing::Hooks;

/// The `T` of one request's `Store<T>`. Lives exactly as long as the
/// request: nothing of one request is seen by the next.
pub(crate) struct RequestState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: Hooks,
    pub limiter: Limiter,
    pub kv: Arc<dyn KvStore>,
}

impl RequestState {
    pub fn new(kv: Arc<dyn KvStore>, hooks: Hooks, memory_cap: usize) -> RequestState {
        RequestState {
            table: ResourceTable::new(),
            // No arguments, no environment, stdio to nowhere, and (since
            // only the proxy world is linked) no files and no sockets.
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            hooks,
            limiter: Limiter {
                memory_cap,
                refused: false,
            },
            kv,
        }
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Caps each of the instance's memories, and remembers a refusal, so a
/// trap that follows one is reported as the memory cap it is.
pub(crate) struct Limiter {
    memory_cap: usize,
    pub refused: bool,
}

/// Most table elements one instance may have: tables hold function
/// references, and a handler needs a few thousand at most.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_cap;
        self.refused |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
