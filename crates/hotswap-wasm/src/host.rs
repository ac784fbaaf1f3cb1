//! The host side of a plugin's store: its state, its limiter, and the host
//! functions of module `hotswap`. Every guest pointer is untrusted here.

use std::ops::Range;
use std::sync::Arc;

use hotswap_abi::imports::{KV_DELETE, KV_GET, KV_NEXT, KV_PUT, LOG, NOW_NS, RANDOM};
use hotswap_abi::{code, limits};
use hotswap_core::KvStore;
use wasmtime::{Caller, Linker, Memory, ResourceLimiter};

use crate::validate::HOST_MODULE;

/// Why the host failed a call, recorded in the store so the call's error can
/// be typed precisely (a trap's own message cannot tell these apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    MemoryLimit(u64),
    HostCall {
        function: &'static str,
        reason: String,
    },
}

/// What one instance's store carries.
pub(crate) struct HostState {
    pub slot: Arc<str>,
    pub kv: Arc<dyn KvStore>,
    /// The instance's memory, set right after instantiation, so host
    /// functions need no export lookup per call.
    pub memory: Option<Memory>,
    pub memory_cap: u64,
    pub fault: Option<Fault>,
    /// On an instance that runs `hs_migrate`: the last error the plugin
    /// logged, to say why the migration failed.
    pub last_error: Option<Option<String>>,
    /// The WASI sandbox, for instances of modules that import WASI.
    #[cfg(feature = "wasi")]
    pub wasi: Option<wasmtime_wasi::p1::WasiP1Ctx>,
}

impl HostState {
    pub fn new(slot: Arc<str>, kv: Arc<dyn KvStore>, memory_cap: u64) -> HostState {
        HostState {
            slot,
            kv,
            memory: None,
            memory_cap,
            fault: None,
            last_error: None,
            #[cfg(feature = "wasi")]
            wasi: None,
        }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_cap {
            // An error (not `Ok(false)`) makes `memory.grow` trap, so a
            // plugin that asks for too much fails its call with a clear
            // error instead of limping on with a failed allocation.
            self.fault = Some(Fault::MemoryLimit(self.memory_cap));
            return Err(wasmtime::Error::msg("memory cap reached"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Builds the linker with every host function of ABI v1, and WASI preview 1
/// when allowed.
pub(crate) fn linker(engine: &wasmtime::Engine, allow_wasi: bool) -> Linker<HostState> {
    let mut linker = Linker::new(engine);
    add_host_functions(&mut linker).expect("host functions have unique names");
    #[cfg(feature = "wasi")]
    if allow_wasi {
        crate::wasi::add_to_linker(&mut linker).expect("WASI functions have unique names");
    }
    #[cfg(not(feature = "wasi"))]
    let _ = allow_wasi;
    linker
}

fn add_host_functions(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap(
        HOST_MODULE,
        LOG,
        |mut c: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            // The whole range must be valid; only what is logged is copied.
            const MAX: usize = limits::MAX_LOG;
            let range = range(&mut c, LOG, ptr, len)?;
            let shown = range.start..range.end.min(range.start + MAX);
            let bytes = memory(&mut c, LOG)?.data(&c)[shown].to_vec();
            let text = String::from_utf8_lossy(&bytes);
            hotswap_core::plugin_log(&c.data().slot, level, &text);
            if let (code::LOG_ERROR, Some(last)) = (level, &mut c.data_mut().last_error) {
                *last = Some(text.into_owned());
            }
            Ok(())
        },
    )?;
    l.func_wrap(HOST_MODULE, NOW_NS, hotswap_core::now_ns)?;
    l.func_wrap(
        HOST_MODULE,
        RANDOM,
        |mut c: Caller<'_, HostState>, ptr: i32, len: i32| {
            let range = range(&mut c, RANDOM, ptr, len)?;
            let mem = memory(&mut c, RANDOM)?;
            getrandom::fill(&mut mem.data_mut(&mut c)[range])
                .map_err(|e| wasmtime::Error::msg(format!("no system randomness: {e}")))?;
            Ok(code::OK)
        },
    )?;
    l.func_wrap(
        HOST_MODULE,
        KV_GET,
        |mut c: Caller<'_, HostState>, kptr: i32, klen: i32, vptr: i32, vcap: i32| {
            let key = read(&mut c, KV_GET, kptr, klen)?;
            let out = range(&mut c, KV_GET, vptr, vcap)?;
            let value = match c.data().kv.get(&key) {
                Ok(Some(v)) => v,
                Ok(None) => return Ok(code::KV_ABSENT as i64),
                Err(e) => return Ok(e.abi_code() as i64),
            };
            if value.len() <= out.len() {
                let mem = memory(&mut c, KV_GET)?;
                let start = out.start;
                mem.data_mut(&mut c)[start..start + value.len()].copy_from_slice(&value);
            }
            Ok(value.len() as i64)
        },
    )?;
    l.func_wrap(
        HOST_MODULE,
        KV_PUT,
        |mut c: Caller<'_, HostState>, kptr: i32, klen: i32, vptr: i32, vlen: i32| {
            // Sizes are checked before anything is copied, so a plugin
            // cannot make the host copy more than the limits allow.
            let krange = range(&mut c, KV_PUT, kptr, klen)?;
            let vrange = range(&mut c, KV_PUT, vptr, vlen)?;
            let limits = c.data().kv.limits();
            if let Err(e) = limits.check_sizes(krange.len(), Some(vrange.len())) {
                return Ok(e.abi_code());
            }
            let mem = memory(&mut c, KV_PUT)?.data(&c);
            let (key, value) = (mem[krange].to_vec(), mem[vrange].to_vec());
            Ok(match c.data().kv.put(&key, &value) {
                Ok(()) => code::OK,
                Err(e) => e.abi_code(),
            })
        },
    )?;
    l.func_wrap(
        HOST_MODULE,
        KV_DELETE,
        |mut c: Caller<'_, HostState>, kptr: i32, klen: i32| {
            let key = read(&mut c, KV_DELETE, kptr, klen)?;
            Ok(match c.data().kv.delete(&key) {
                Ok(deleted) => deleted as i32,
                Err(e) => e.abi_code(),
            })
        },
    )?;
    l.func_wrap(
        HOST_MODULE,
        KV_NEXT,
        |mut c: Caller<'_, HostState>, fptr: i32, flen: i32, kptr: i32, kcap: i32| {
            let from = read(&mut c, KV_NEXT, fptr, flen)?;
            let out = range(&mut c, KV_NEXT, kptr, kcap)?;
            let key = match c.data().kv.next_key(&from) {
                Ok(Some(k)) => k,
                Ok(None) => return Ok(code::KV_ABSENT as i64),
                Err(e) => return Ok(e.abi_code() as i64),
            };
            if key.len() <= out.len() {
                let mem = memory(&mut c, KV_NEXT)?;
                let start = out.start;
                mem.data_mut(&mut c)[start..start + key.len()].copy_from_slice(&key);
            }
            Ok(key.len() as i64)
        },
    )?;
    Ok(())
}

/// The plugin's memory. It is recorded right after instantiation, and the
/// validator refuses start functions, so no plugin code runs before it is
/// set; should that ever change, the call fails instead of the host.
fn memory(c: &mut Caller<'_, HostState>, function: &'static str) -> wasmtime::Result<Memory> {
    match c.data().memory {
        Some(m) => Ok(m),
        None => {
            let reason = "called before the instance finished starting".to_string();
            c.data_mut().fault = Some(Fault::HostCall {
                function,
                reason: reason.clone(),
            });
            Err(wasmtime::Error::msg(reason))
        }
    }
}

/// `ptr..ptr+len` as a checked range inside the guest's memory, or a fault
/// that fails the call.
fn range(
    c: &mut Caller<'_, HostState>,
    function: &'static str,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<Range<usize>> {
    let size = memory(c, function)?.data_size(&*c);
    match guest_range(size, ptr, len) {
        Ok(r) => Ok(r),
        Err(reason) => {
            c.data_mut().fault = Some(Fault::HostCall {
                function,
                reason: reason.clone(),
            });
            Err(wasmtime::Error::msg(reason))
        }
    }
}

fn read(
    c: &mut Caller<'_, HostState>,
    function: &'static str,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<Vec<u8>> {
    let r = range(c, function, ptr, len)?;
    Ok(memory(c, function)?.data(&*c)[r].to_vec())
}

/// Checks a guest (pointer, length) pair against a memory of `size` bytes.
/// Both are read as unsigned 32-bit numbers, as wasm32 means them.
pub(crate) fn guest_range(size: usize, ptr: i32, len: i32) -> Result<Range<usize>, String> {
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    match start.checked_add(len) {
        Some(end) if end <= size => Ok(start..end),
        _ => Err(format!(
            "pointer {start:#x} with length {len} is outside the plugin's memory of {size} bytes"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::guest_range;

    #[test]
    fn ranges_are_checked() {
        assert_eq!(guest_range(100, 10, 5), Ok(10..15));
        assert_eq!(guest_range(100, 100, 0), Ok(100..100));
        assert!(guest_range(100, 96, 5).is_err());
        assert!(guest_range(100, -1, 1).is_err());
        assert!(guest_range(100, 0, -1).is_err());
        // The end of the largest wasm32 range still has to fit the memory.
        assert!(guest_range(1 << 20, -1, -1).is_err());
    }
}
