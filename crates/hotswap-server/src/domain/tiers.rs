//! `Tiers`: the one `Tier` a server's slots run on. Each artifact goes to
//! the WASM, the native or the component tier by its first bytes, so every
//! kind shares the slots, the admin API and the CLI.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hotswap_component::{ComponentCode, ComponentTier};
use hotswap_core::{
    Artifact, CallError, Code, Kind, KvStore, Manifest, SlotContext, Tier, TierError,
};
use hotswap_native::{NativeCode, NativeStats, NativeTier};
use hotswap_wasm::{WasmCode, WasmTier};

/// Native libraries were sent to a server that does not load them.
#[derive(Debug, thiserror::Error)]
#[error("this is a native library, and this server does not load native plugins ([native] enabled = false)")]
pub struct NativeDisabled;

/// The WASM, native and component tiers behind one `Tier`.
pub struct Tiers {
    wasm: Arc<WasmTier>,
    component: ComponentTier,
    native: NativeTier,
    native_enabled: AtomicBool,
}

/// A revision of either kind.
pub enum AnyCode {
    /// A WASM revision.
    Wasm(WasmCode),
    /// A native revision.
    Native(NativeCode),
    /// A wasi:http component revision.
    Component(ComponentCode),
}

impl Tiers {
    /// Every tier; native libraries are loaded only when `native_enabled`.
    pub fn new(wasm: Arc<WasmTier>, component: ComponentTier, native_enabled: bool) -> Tiers {
        Tiers {
            wasm,
            component,
            native: NativeTier::new(),
            native_enabled: AtomicBool::new(native_enabled),
        }
    }

    /// The WASM tier.
    pub fn wasm(&self) -> &WasmTier {
        &self.wasm
    }

    /// The component tier.
    pub fn component(&self) -> &ComponentTier {
        &self.component
    }

    /// What the native tier has loaded and unloaded.
    pub fn native_stats(&self) -> NativeStats {
        self.native.stats()
    }

    /// Turns loading native libraries on or off for deploys from now on;
    /// native revisions already serving keep serving.
    pub fn set_native_enabled(&self, enabled: bool) {
        self.native_enabled.store(enabled, Ordering::SeqCst);
    }

    fn native(&self) -> Result<&NativeTier, TierError> {
        if self.native_enabled.load(Ordering::SeqCst) {
            Ok(&self.native)
        } else {
            Err(NativeDisabled.into())
        }
    }
}

impl Tier for Tiers {
    type Code = AnyCode;

    fn validate(&self, artifact: &Artifact) -> Result<Manifest, TierError> {
        match artifact.kind() {
            Kind::Wasm => self.wasm.validate(artifact),
            Kind::Native => self.native()?.validate(artifact),
            Kind::Component => self.component.validate(artifact),
        }
    }

    fn prepare(
        &self,
        artifact: &Artifact,
        manifest: &Manifest,
        slot: &SlotContext,
    ) -> Result<AnyCode, TierError> {
        Ok(match artifact.kind() {
            Kind::Wasm => AnyCode::Wasm(self.wasm.prepare(artifact, manifest, slot)?),
            Kind::Native => AnyCode::Native(self.native()?.prepare(artifact, manifest, slot)?),
            Kind::Component => {
                AnyCode::Component(self.component.prepare(artifact, manifest, slot)?)
            }
        })
    }
}

impl Code for AnyCode {
    #[inline]
    fn call(&self, input: &[u8], output: &mut Vec<u8>) -> Result<(), CallError> {
        match self {
            AnyCode::Wasm(c) => c.call(input, output),
            AnyCode::Native(c) => c.call(input, output),
            AnyCode::Component(c) => c.call(input, output),
        }
    }

    fn can_migrate(&self) -> bool {
        match self {
            AnyCode::Wasm(c) => c.can_migrate(),
            AnyCode::Native(c) => c.can_migrate(),
            AnyCode::Component(c) => c.can_migrate(),
        }
    }

    fn migrate(
        &self,
        from_schema: u32,
        state: Arc<dyn KvStore>,
        deadline: Duration,
    ) -> Result<(), CallError> {
        match self {
            AnyCode::Wasm(c) => c.migrate(from_schema, state, deadline),
            AnyCode::Native(c) => c.migrate(from_schema, state, deadline),
            AnyCode::Component(c) => c.migrate(from_schema, state, deadline),
        }
    }

    fn shutdown(&self) {
        match self {
            AnyCode::Wasm(c) => c.shutdown(),
            AnyCode::Native(c) => c.shutdown(),
            AnyCode::Component(c) => c.shutdown(),
        }
    }
}
