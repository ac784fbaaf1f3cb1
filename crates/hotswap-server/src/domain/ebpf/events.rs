//! One reader per ring buffer, fanned out to every subscriber: a ring
//! buffer has one consumer position, so two readers would split its events
//! between them instead of each seeing all of them.
//!
//! The reader starts with the first subscriber (skipping what waited in the
//! ring before anyone watched), keeps reading across replacements (the ring
//! is a pinned map the revisions share), and stops when the last subscriber
//! leaves or the program is unloaded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hotswap_ebpf::Events;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{broadcast, Notify};

/// Events a slow subscriber may fall behind by before it is told it lagged.
const BACKLOG: usize = 4096;
/// Events decoded per wake-up before the reader yields: a program that
/// writes faster than they are decoded must not hold a runtime thread.
const BURST: usize = 1024;

/// The running readers, by program and ring buffer.
#[derive(Default)]
pub(super) struct Readers {
    running: Arc<Mutex<HashMap<Key, Reader>>>,
}

type Key = (String, String);

/// One event as JSON text: encoded once by the reader, shared by every
/// subscriber (a broadcast clones its value for each).
pub(crate) type EventJson = Arc<str>;

struct Reader {
    events: broadcast::Sender<EventJson>,
    stop: Arc<Notify>,
}

impl Readers {
    /// Subscribes to `(program, map)`, starting its reader with `open` if
    /// none runs. Must be called within the tokio runtime.
    pub(super) fn subscribe(
        &self,
        program: &str,
        map: &str,
        open: impl FnOnce() -> std::io::Result<Events>,
    ) -> std::io::Result<broadcast::Receiver<EventJson>> {
        let key = (program.to_string(), map.to_string());
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = running.get(&key) {
            return Ok(r.events.subscribe());
        }
        let mut ring = open()?;
        // What waited before anyone watched is not news.
        ring.skip_waiting();
        // SAFETY: `Events` owns its ring buffer's fd for as long as it lives
        // and always hands out that same fd; the AsyncFd owns the `Events`.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }?;
        let (events, rx) = broadcast::channel(BACKLOG);
        let stop = Arc::new(Notify::new());
        running.insert(
            key.clone(),
            Reader {
                events: events.clone(),
                stop: stop.clone(),
            },
        );
        tokio::spawn(read(ring, events, stop, self.running.clone(), key));
        Ok(rx)
    }

    /// Ends the streams of `program`'s ring buffers (it is being unloaded).
    pub(super) fn stop(&self, program: &str) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|(p, _), r| {
            if p == program {
                r.stop.notify_one();
            }
            p != program
        });
    }
}

async fn read(
    mut ring: AsyncFd<Events>,
    events: broadcast::Sender<EventJson>,
    stop: Arc<Notify>,
    running: Arc<Mutex<HashMap<Key, Reader>>>,
    key: Key,
) {
    loop {
        tokio::select! {
            _ = stop.notified() => return,
            ready = ring.readable_mut() => {
                let Ok(mut ready) = ready else { break };
                let mut sent = 0;
                for event in ready.get_inner_mut().by_ref().take(BURST) {
                    // A send with no subscriber left fails: checked below.
                    let _ = events.send(event.to_string().into());
                    sent += 1;
                }
                if sent < BURST {
                    // Drained: wait for the kernel's next wake-up.
                    ready.clear_ready();
                } else {
                    // More waiting: still readable, but let others run first.
                    drop(ready);
                    tokio::task::yield_now().await;
                }
            }
        }
        // The last subscriber left: stop, unless one arrives meanwhile
        // (it would find this reader under the same lock).
        let mut map = running.lock().unwrap_or_else(|e| e.into_inner());
        if events.receiver_count() == 0 {
            map.remove(&key);
            return;
        }
    }
    running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&key);
}
