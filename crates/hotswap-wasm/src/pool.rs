//! `WasmCode`: one prepared revision, serving calls from a pool of instances.
//!
//! The call path takes an idle instance from a lock-free queue, runs two
//! calls into it (`hs_alloc`, `hs_process`), and puts it back. No lock is
//! taken unless every instance is busy and the cap is reached.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use hotswap_abi::{code, exports};
use hotswap_core::{CallError, Code, KvStore, SlotContext};
use wasmtime::{Engine, InstancePre, Memory, Store, Trap, TypedFunc};

use crate::host::{Fault, HostState};
use crate::validate::ModuleInfo;
use hotswap_core::PrepareError;

/// A prepared WASM revision. Implements [`Code`] for the slot.
pub struct WasmCode {
    pool: Arc<Pool>,
    resolve_time: Duration,
}

struct Pool {
    /// Counts this revision among the tier's live ones until it is freed.
    _live: LiveRevision,
    pre: InstancePre<HostState>,
    engine: Engine,
    ctx: SlotContext,
    info: Arc<ModuleInfo>,
    memory_cap: u64,
    deadline: Duration,
    deadline_ticks: u64,
    cap: usize,
    idle: ArrayQueue<Box<Instance>>,
    /// Instances that exist, idle or busy.
    live: AtomicUsize,
    /// Callers waiting because every instance is busy and the cap is reached.
    waiting: AtomicUsize,
    wait_lock: Mutex<()>,
    wait_cv: Condvar,
}

/// One instance with its store and the exports the call path needs.
struct Instance {
    store: Store<HostState>,
    instance: wasmtime::Instance,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    process: TypedFunc<(i32, i32), i64>,
    /// How long looking up the exports the call path needs took.
    resolved_in: Duration,
}

/// How a failed run into the plugin is reported: as a call error, and
/// whether the instance may still be trusted.
struct Failure {
    error: CallError,
    poisoned: bool,
}

impl WasmCode {
    /// Builds the pool and proves the revision can serve: one instance is
    /// created (running `hs_init`) and `hs_health` runs on it.
    pub(crate) fn prepare(
        pre: InstancePre<HostState>,
        engine: Engine,
        ctx: SlotContext,
        info: Arc<ModuleInfo>,
        config: &crate::WasmConfig,
        live_revisions: &Arc<AtomicUsize>,
    ) -> Result<WasmCode, PrepareError> {
        let cap = config.instance_cap.max(1);
        let pool = Arc::new(Pool {
            _live: LiveRevision::new(live_revisions),
            pre,
            engine,
            ctx,
            info,
            memory_cap: config.memory_cap,
            deadline: config.deadline,
            deadline_ticks: config.deadline_ticks(),
            cap,
            idle: ArrayQueue::new(cap),
            live: AtomicUsize::new(1),
            waiting: AtomicUsize::new(0),
            wait_lock: Mutex::new(()),
            wait_cv: Condvar::new(),
        });
        let mut first = pool.instantiate()?;
        if pool.info.optional.health {
            let health: TypedFunc<(), i32> = first
                .get_func(exports::HEALTH)
                .map_err(|e| PrepareError::Instantiate(e.to_string()))?;
            first.store.set_epoch_deadline(pool.deadline_ticks);
            match health.call(&mut first.store, ()) {
                Ok(code::OK) => {}
                Ok(code) => return Err(PrepareError::Unhealthy { code }),
                Err(e) => return Err(PrepareError::HealthTrapped(pool.classify(&mut first, e))),
            }
        }
        let resolve_time = first.resolved_in;
        let _ = pool.idle.push(first);
        Ok(WasmCode { pool, resolve_time })
    }

    /// How long looking up the exports the call path needs (`memory`,
    /// `hs_alloc`, `hs_process`) took on the first instance: the WASM
    /// counterpart of resolving a native library's symbols.
    pub fn resolve_time(&self) -> Duration {
        self.resolve_time
    }

    /// How many instances exist right now.
    pub fn instances(&self) -> usize {
        self.pool.live.load(SeqCst)
    }

    /// One call on this thread: take an instance, run, give it back (or
    /// throw it away if it can no longer be trusted).
    #[inline]
    fn call_here(&self, input: &[u8], output: &mut Vec<u8>) -> Result<(), CallError> {
        let pool = &*self.pool;
        let mut instance = pool.checkout()?;
        match pool.run(&mut instance, input, output) {
            Ok(()) => {
                pool.checkin(instance);
                Ok(())
            }
            Err(Failure { error, poisoned }) => {
                if poisoned {
                    pool.discard(instance);
                } else {
                    pool.checkin(instance);
                }
                Err(error)
            }
        }
    }
}

impl Code for WasmCode {
    #[inline]
    fn call(&self, input: &[u8], output: &mut Vec<u8>) -> Result<(), CallError> {
        #[cfg(feature = "wasi")]
        if self.pool.info.uses_wasi {
            return crate::wasi::outside_async(|| self.call_here(input, output));
        }
        self.call_here(input, output)
    }

    fn can_migrate(&self) -> bool {
        self.pool.info.optional.migrate
    }

    /// Runs `hs_migrate(from_schema)` on an instance of its own, whose
    /// key-value calls go to `state`, under `deadline`; the instance is
    /// thrown away afterwards, so nothing it kept in memory serves a call.
    fn migrate(
        &self,
        from_schema: u32,
        state: Arc<dyn KvStore>,
        deadline: Duration,
    ) -> Result<(), CallError> {
        let run = || {
            let pool = &*self.pool;
            let mut instance = pool
                .instantiate_over(state.clone())
                .map_err(|e| CallError::Instantiate(e.to_string()))?;
            let migrate: TypedFunc<i32, i32> = instance
                .get_func(exports::MIGRATE)
                .map_err(|e| CallError::Abi(format!("{e:#}")))?;
            instance
                .store
                .set_epoch_deadline(crate::config::ticks(deadline));
            instance.store.data_mut().last_error = Some(None);
            match migrate.call(&mut instance.store, from_schema as i32) {
                Ok(code::OK) => Ok(()),
                Ok(code) => Err(hotswap_core::migrate_returned(
                    code,
                    instance.store.data_mut().last_error.take().flatten(),
                )),
                Err(e) => Err(match pool.classify(&mut instance, e) {
                    CallError::Deadline(_) => CallError::Deadline(deadline),
                    other => other,
                }),
            }
        };
        #[cfg(feature = "wasi")]
        if self.pool.info.uses_wasi {
            return crate::wasi::outside_async(run);
        }
        run()
    }

    fn shutdown(&self) {
        let pool = &*self.pool;
        if !pool.info.optional.shutdown {
            return;
        }
        // One deadline for all instances together: the cleanup thread is
        // shared by every slot, and one slow plugin must not hold it up for
        // `instances × deadline`.
        let until = Instant::now() + pool.deadline;
        while let Some(mut instance) = pool.idle.pop() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    slot = &*pool.ctx.slot,
                    "hs_shutdown ran out of time; the remaining instances are freed without it"
                );
                break;
            }
            let Ok(f) = instance.get_func::<(), ()>(exports::SHUTDOWN) else {
                continue;
            };
            instance
                .store
                .set_epoch_deadline(crate::config::ticks(left));
            if let Err(e) = f.call(&mut instance.store, ()) {
                let error = pool.classify(&mut instance, e);
                tracing::warn!(slot = &*pool.ctx.slot, %error, "plugin shutdown failed");
            }
        }
    }
}

impl Pool {
    fn checkout(&self) -> Result<Box<Instance>, CallError> {
        // One deadline for the whole wait, however often it is woken.
        let mut until = None;
        loop {
            if let Some(instance) = self.idle.pop() {
                return Ok(instance);
            }
            let live = self.live.load(SeqCst);
            if live < self.cap {
                if self
                    .live
                    .compare_exchange(live, live + 1, SeqCst, SeqCst)
                    .is_ok()
                {
                    // Gives the count back if instantiation fails or panics.
                    let slot = Reserved(self);
                    let instance = self.instantiate().map_err(|e| match e {
                        // Typed as the call error it is (a deadline, a
                        // memory cap...), not as a string.
                        PrepareError::InitTrapped(e) => e,
                        e => CallError::Instantiate(e.to_string()),
                    })?;
                    std::mem::forget(slot);
                    return Ok(instance);
                }
                continue;
            }
            let until = *until.get_or_insert_with(|| Instant::now() + self.deadline);
            self.wait_for_instance(until)?;
        }
    }

    /// Blocks until an instance is idle or may be created, or `until`
    /// passes. The slow path only: the cap is reached.
    fn wait_for_instance(&self, until: Instant) -> Result<(), CallError> {
        self.waiting.fetch_add(1, SeqCst);
        let mut guard = self.wait_lock.lock().unwrap_or_else(|e| e.into_inner());
        let result = loop {
            if !self.idle.is_empty() || self.live.load(SeqCst) < self.cap {
                break Ok(());
            }
            let now = Instant::now();
            if now >= until {
                break Err(CallError::Overloaded { cap: self.cap });
            }
            guard = self
                .wait_cv
                .wait_timeout(guard, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        drop(guard);
        self.waiting.fetch_sub(1, SeqCst);
        result
    }

    fn checkin(&self, instance: Box<Instance>) {
        // The queue holds `cap` and at most `cap` instances exist.
        let _ = self.idle.push(instance);
        self.wake();
    }

    /// Throws away an instance that trapped or broke a limit: its memory may
    /// be in any state.
    fn discard(&self, instance: Box<Instance>) {
        drop(instance);
        self.live.fetch_sub(1, SeqCst);
        self.wake();
    }

    fn wake(&self) {
        // Pushing before reading `waiting` (both SeqCst) and a waiter
        // counting itself before checking under the lock means no wake-up
        // is lost.
        if self.waiting.load(SeqCst) > 0 {
            let _guard = self.wait_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.wait_cv.notify_all();
        }
    }

    fn instantiate(&self) -> Result<Box<Instance>, PrepareError> {
        self.instantiate_over(self.ctx.kv.clone())
    }

    /// An instance whose key-value calls go to `kv`.
    fn instantiate_over(&self, kv: Arc<dyn KvStore>) -> Result<Box<Instance>, PrepareError> {
        let state = HostState::new(self.ctx.slot.clone(), kv, self.memory_cap);
        #[cfg(feature = "wasi")]
        let state = HostState {
            wasi: self
                .info
                .uses_wasi
                .then(|| crate::wasi::context(&self.ctx.slot)),
            ..state
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| s);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.deadline_ticks);
        let inst = match self.pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) => {
                let msg = match store.data_mut().fault.take() {
                    Some(Fault::MemoryLimit(cap)) => {
                        format!("its initial memory is larger than the cap of {cap} bytes")
                    }
                    _ => format!("{e:#}"),
                };
                return Err(PrepareError::Instantiate(msg));
            }
        };
        let abi = |e: wasmtime::Error| PrepareError::Instantiate(format!("{e:#}"));
        let resolving = Instant::now();
        let memory = inst
            .get_memory(&mut store, exports::MEMORY)
            .ok_or_else(|| PrepareError::Instantiate("no memory export".into()))?;
        store.data_mut().memory = Some(memory);
        let alloc = inst
            .get_typed_func(&mut store, exports::ALLOC)
            .map_err(abi)?;
        let process = inst
            .get_typed_func(&mut store, exports::PROCESS)
            .map_err(abi)?;
        let resolved_in = resolving.elapsed();
        let mut instance = Box::new(Instance {
            store,
            instance: inst,
            memory,
            alloc,
            process,
            resolved_in,
        });
        if self.info.optional.init {
            let init: TypedFunc<(), i32> = instance.get_func(exports::INIT).map_err(abi)?;
            match init.call(&mut instance.store, ()) {
                Ok(code::OK) => {}
                Ok(code) => return Err(PrepareError::InitFailed { code }),
                Err(e) => return Err(PrepareError::InitTrapped(self.classify(&mut instance, e))),
            }
        }
        Ok(instance)
    }

    /// One call: input in through `hs_alloc`, `hs_process`, output out.
    #[inline]
    fn run(&self, inst: &mut Instance, input: &[u8], output: &mut Vec<u8>) -> Result<(), Failure> {
        let abi = |msg: String| Failure {
            error: CallError::Abi(msg),
            poisoned: true,
        };
        let len = i32::try_from(input.len()).map_err(|_| Failure {
            error: CallError::Abi(format!("input of {} bytes is over 2 GiB", input.len())),
            poisoned: false,
        })?;
        inst.store.set_epoch_deadline(self.deadline_ticks);
        let ptr = inst
            .alloc
            .call(&mut inst.store, len)
            .map_err(|e| self.fail(inst, e))?;
        if ptr == 0 && len > 0 {
            return Err(abi(format!("hs_alloc({len}) returned 0 (out of memory)")));
        }
        // An empty input is never written, so any pointer will do for it.
        inst.memory
            .write(&mut inst.store, ptr as u32 as usize, input)
            .or_else(|e| if len == 0 { Ok(()) } else { Err(e) })
            .map_err(|_| {
                abi(format!(
                    "hs_alloc({len}) returned {ptr:#x}, outside the plugin's memory"
                ))
            })?;
        let packed = inst
            .process
            .call(&mut inst.store, (ptr, len))
            .map_err(|e| self.fail(inst, e))?;

        let (out_ptr, out_len, is_err) = unpack(packed);
        let data = inst.memory.data(&inst.store);
        // An empty output may point anywhere (docs/abi.md).
        let Some(bytes) = (if out_len == 0 {
            Some(&[][..])
        } else {
            out_ptr
                .checked_add(out_len)
                .and_then(|end| data.get(out_ptr..end))
        }) else {
            return Err(abi(format!(
                "hs_process returned output at {out_ptr:#x}+{out_len}, outside the plugin's memory of {} bytes",
                data.len()
            )));
        };
        if is_err {
            return Err(Failure {
                error: CallError::Plugin(String::from_utf8_lossy(bytes).into_owned()),
                poisoned: false,
            });
        }
        output.extend_from_slice(bytes);
        Ok(())
    }

    fn fail(&self, inst: &mut Instance, e: wasmtime::Error) -> Failure {
        Failure {
            error: self.classify(inst, e),
            poisoned: true,
        }
    }

    /// Turns a wasmtime error into the precise call error: the host's own
    /// record of why it failed the call comes first, then the trap code.
    fn classify(&self, inst: &mut Instance, e: wasmtime::Error) -> CallError {
        match inst.store.data_mut().fault.take() {
            Some(Fault::MemoryLimit(limit)) => CallError::MemoryLimit { limit },
            Some(Fault::HostCall { function, reason }) => CallError::HostCall { function, reason },
            None => match e.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => CallError::Deadline(self.deadline),
                Some(trap) => CallError::Trap(trap.to_string()),
                None => CallError::Trap(format!("{e:#}")),
            },
        }
    }
}

impl Instance {
    /// An export that is not on the call path (init, health, shutdown).
    fn get_func<P, R>(&mut self, name: &str) -> wasmtime::Result<TypedFunc<P, R>>
    where
        P: wasmtime::WasmParams,
        R: wasmtime::WasmResults,
    {
        self.instance.get_typed_func(&mut self.store, name)
    }
}

/// A place in the pool taken for an instance being created; dropped without
/// being forgotten (creation failed or panicked), it gives the place back.
struct Reserved<'a>(&'a Pool);

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, SeqCst);
        self.0.wake();
    }
}

/// One count in the tier's number of live revisions, for as long as it lives.
struct LiveRevision(Arc<AtomicUsize>);

impl LiveRevision {
    fn new(count: &Arc<AtomicUsize>) -> LiveRevision {
        count.fetch_add(1, SeqCst);
        LiveRevision(count.clone())
    }
}

impl Drop for LiveRevision {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// Splits `hs_process`'s result per docs/abi.md ([`hotswap_abi::packed`]):
/// bits 0-31 pointer, 32-62 length, 63 error flag.
#[inline]
pub(crate) fn unpack(packed: i64) -> (usize, usize, bool) {
    let (ptr, len, is_err) = hotswap_abi::packed::unpack(packed);
    (ptr as usize, len as usize, is_err)
}

#[cfg(test)]
mod tests {
    use super::unpack;

    #[test]
    fn unpacks_the_abi_result() {
        assert_eq!(unpack((5i64 << 32) | 0x10), (0x10, 5, false));
        assert_eq!(unpack(((1u64 << 63) | (3 << 32) | 8) as i64), (8, 3, true));
        assert_eq!(unpack(-1), (0xffff_ffff, 0x7fff_ffff, true));
    }
}
