//! A library that registers a thread-local destructor cannot be unmapped by
//! dlclose while that thread lives; the tier notices and says so.

mod common;

use std::sync::mpsc;

use common::*;

/// Registers a thread-local destructor on every call, as C++ `thread_local`
/// objects and Rust `thread_local!` values with `Drop` do.
const PINS_ITSELF: &str = r#"
MANIFEST("{\"name\":\"pinned\",\"version\":\"1.0.0\",\"abi\":1}");
extern int __cxa_thread_atexit_impl(void (*dtor)(void *), void *obj, void *dso);
extern void *__dso_handle;
static void forget(void *obj) { (void)obj; }
int32_t hs_bind(const void *host) { return 0; }
int32_t hs_call(const uint8_t *in, size_t len, void *sink, hs_sink write) {
    __cxa_thread_atexit_impl(forget, 0, &__dso_handle);
    write(sink, in, len);
    return 0;
}
"#;

#[test]
fn a_thread_local_destructor_pins_the_library_and_is_reported() {
    let tier = tier();
    let slot = slot(&tier, "pinned");
    slot.deploy(art(&build_c("pinned", PINS_ITSELF)), None)
        .unwrap();

    // A thread calls (registering the destructor) and stays alive.
    let (called, wait) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let slot = std::sync::Arc::new(slot);
    let caller = {
        let slot = slot.clone();
        std::thread::spawn(move || {
            assert_eq!(slot.call(b"hi").unwrap(), b"hi");
            called.send(()).unwrap();
            released.recv().unwrap();
        })
    };
    wait.recv().unwrap();

    // Swap it out: the call has returned, so the swap retires it at once.
    slot.deploy(art(&build_c("echo", ECHO)), None).unwrap();
    assert!(slot.wait_drained(std::time::Duration::from_secs(30)));
    let stats = tier.stats();
    assert_eq!(
        stats.pinned, 1,
        "the pinned library was not reported: {stats:?}"
    );
    assert_eq!(stats.unloaded, 0, "{stats:?}");

    // Without the destructor, the next swap unloads cleanly.
    slot.deploy(
        art(&build_c("echo2", &ECHO.replace("1.0.0", "2.0.0"))),
        None,
    )
    .unwrap();
    assert!(slot.wait_drained(std::time::Duration::from_secs(30)));
    assert_eq!(tier.stats().unloaded, 1, "{:?}", tier.stats());

    release.send(()).unwrap();
    caller.join().unwrap();
}
