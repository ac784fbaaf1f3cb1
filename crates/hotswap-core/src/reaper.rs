//! The cleanup thread: drained revisions are shut down and freed here, never
//! on a caller's thread.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

static REAPER: OnceLock<Sender<Job>> = OnceLock::new();

/// Hands `job` to the process-wide cleanup thread, starting it on first use.
pub(crate) fn retire(job: Job) {
    let sender = REAPER.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name("hotswap-reaper".into())
            .spawn(move || {
                for job in rx {
                    // A panicking `shutdown` must not stop all future cleanup.
                    // Jobs catch their own panics; this is the last line of
                    // defence so that one bad job never ends all cleanup.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                        tracing::error!("a cleanup job panicked");
                    }
                }
            })
            .expect("cannot start the hotswap cleanup thread");
        tx
    });
    // The receiver lives for the whole process, so send cannot fail.
    let _ = sender.send(job);
}

/// A one-shot flag a thread can wait on: set when a revision is fully retired.
#[derive(Default)]
pub(crate) struct Latch {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Latch {
    pub fn open(&self) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    pub fn is_open(&self) -> bool {
        *self.done.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until open or `timeout` passes; true if open.
    pub fn wait(&self, timeout: Duration) -> bool {
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let (done, _) = self
            .cv
            .wait_timeout_while(done, timeout, |d| !*d)
            .unwrap_or_else(|e| e.into_inner());
        *done
    }
}
