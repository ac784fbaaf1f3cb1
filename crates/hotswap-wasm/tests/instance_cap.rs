//! The instance cap: when every instance is busy, a call waits up to its
//! deadline for one, then fails with `Overloaded`; the busy call is
//! unaffected.

mod common;

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hotswap_core::{CallError, EventBus, KvError, KvStore, MemoryKv, Slot};
use hotswap_wasm::WasmConfig;

/// A store whose first `get` says so and then blocks until released, so a
/// test can hold a call (and its instance) inside a host function, where no
/// deadline interrupts it.
struct GateKv {
    inner: MemoryKv,
    entered: Mutex<Option<Sender<()>>>,
    release: Mutex<Option<Receiver<()>>>,
}

impl KvStore for GateKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        if let Some(entered) = self.entered.lock().unwrap().take() {
            entered.send(()).unwrap();
            let release = self.release.lock().unwrap().take().unwrap();
            release.recv().unwrap();
        }
        self.inner.get(key)
    }
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.inner.put(key, value)
    }
    fn delete(&self, key: &[u8]) -> Result<bool, KvError> {
        self.inner.delete(key)
    }
    fn next_key(&self, from: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.next_key(from)
    }
}

#[test]
fn a_call_beyond_the_cap_waits_its_deadline_then_is_overloaded() {
    let tier = tier(WasmConfig {
        instance_cap: 1,
        deadline: Duration::from_millis(200),
        ..WasmConfig::default()
    });
    let (entered_tx, entered_rx) = channel();
    let (release_tx, release_rx) = channel();
    let kv = Arc::new(GateKv {
        inner: MemoryKv::default(),
        entered: Mutex::new(Some(entered_tx)),
        release: Mutex::new(Some(release_rx)),
    });
    let slot = Arc::new(Slot::new("capped", tier, kv, EventBus::new()));
    slot.deploy(art(hotswap_examples::COUNTER), None).unwrap();

    let first = {
        let slot = slot.clone();
        std::thread::spawn(move || slot.call(b""))
    };
    entered_rx.recv().unwrap(); // the only instance is now busy
    assert_eq!(slot.call(b""), Err(CallError::Overloaded { cap: 1 }));

    release_tx.send(()).unwrap();
    assert_eq!(
        first.join().unwrap().unwrap(),
        b"1",
        "the busy call finished normally"
    );
    assert_eq!(
        slot.call(b"").unwrap(),
        b"2",
        "and its instance serves again"
    );
}
