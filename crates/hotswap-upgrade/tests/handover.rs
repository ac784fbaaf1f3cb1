//! The library on its own: this test binary upgrades to itself. The parent
//! is a test; the child is `child`, run by name, whose behaviour the
//! parent picks with `HOTSWAP_TEST_CHILD`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hotswap_upgrade::{Options, UpgradeError, Upgrader};

/// The tests share the environment variable that tells the child what to
/// do, so they run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Answers each connection with `line` and closes it; after `stop` is set,
/// the next connection (the test's own wake-up call) ends the loop and
/// closes this copy of the listener, as an old process stops accepting.
fn answer(listener: TcpListener, line: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let line = line.to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stop.load(Ordering::Acquire) {
                return;
            }
            conn.unwrap().write_all(line.as_bytes()).unwrap();
        }
    })
}

/// The old process's side: listens as `echo` and answers `gen 1 `.
fn serve_old(
    upgrader: &Upgrader,
    stop: Arc<AtomicBool>,
) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = upgrader
        .listen("echo", "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, answer(listener, "gen 1 ", stop))
}

fn ask(addr: SocketAddr) -> std::io::Result<String> {
    let mut conn = TcpStream::connect(addr)?;
    let mut text = String::new();
    conn.read_to_string(&mut text)?;
    Ok(text)
}

fn options(mode: &str) -> (Options, MutexGuard<'static, ()>) {
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("HOTSWAP_TEST_CHILD", mode);
    let options = Options {
        args: Some(
            [
                "--exact",
                "child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ]
            .map(Into::into)
            .to_vec(),
        ),
        ready_timeout: Duration::from_secs(20),
        ..Options::default()
    };
    (options, guard)
}

/// Not a test on its own: the new process. It serves `gen 2 <state>` on
/// the inherited listener, for one connection per connection the parent
/// asks it to, then exits.
#[test]
#[ignore = "run by the other tests, as the process they upgrade to"]
fn child() {
    let upgrader = Upgrader::new(Options::default()).unwrap();
    if !upgrader.has_parent() {
        return; // run by hand: nothing to take over
    }
    match std::env::var("HOTSWAP_TEST_CHILD").as_deref() {
        Ok("exit") => std::process::exit(3),
        Ok("hang") => loop {
            std::thread::park();
        },
        _ => {}
    }
    let listener = upgrader
        .listen("echo", "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let state = upgrader.ready().unwrap();
    let line = format!(
        "gen {} {}",
        upgrader.generation(),
        String::from_utf8_lossy(&state)
    );
    upgrader.serving().unwrap();
    // Serve the test's one question, then exit.
    for conn in listener.incoming().take(1) {
        conn.unwrap().write_all(line.as_bytes()).unwrap();
    }
}

#[test]
fn the_new_process_takes_the_same_listener_and_the_state() {
    let (options, _one) = options("serve");
    let upgrader = Upgrader::new(options).unwrap();
    assert_eq!(upgrader.generation(), 1);
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, old) = serve_old(&upgrader, stop.clone());
    assert_eq!(ask(addr).unwrap(), "gen 1 ");

    let pending = upgrader.upgrade().unwrap();
    assert!(pending.pid() > 0);
    // A second upgrade while this one runs is refused.
    assert!(matches!(upgrader.upgrade(), Err(UpgradeError::InProgress)));
    // The old process stops accepting. The child is not accepting yet (it
    // waits for the hand-over), so the wake-up call reaches the old loop.
    stop.store(true, Ordering::Release);
    assert_eq!(ask(addr).unwrap(), "");
    old.join().unwrap();
    let done = pending.hand_over(b"counters=7").unwrap();
    assert_eq!(done.generation, 2);
    assert!(upgrader.upgraded());
    assert!(matches!(
        upgrader.upgrade(),
        Err(UpgradeError::AlreadyUpgraded)
    ));
    // Our listener is closed; the child's copy of the same socket answers.
    assert_eq!(ask(addr).unwrap(), "gen 2 counters=7");
}

#[test]
fn a_child_that_exits_at_once_is_reported_and_the_old_one_keeps_its_listener() {
    let (options, _one) = options("exit");
    let upgrader = Upgrader::new(options).unwrap();
    let (addr, _old) = serve_old(&upgrader, Arc::default());
    let err = upgrader.upgrade().unwrap_err();
    assert!(
        matches!(err, UpgradeError::ChildExited { ref status, .. } if status == "with status 3"),
        "{err}"
    );
    assert_eq!(ask(addr).unwrap(), "gen 1 ");
    // Not stuck in progress: another attempt runs (and fails the same way).
    assert!(matches!(
        upgrader.upgrade(),
        Err(UpgradeError::ChildExited { .. })
    ));
}

#[test]
fn a_child_that_never_becomes_ready_is_killed_after_the_timeout() {
    let (options, _one) = options("hang");
    let upgrader = Upgrader::new(Options {
        ready_timeout: Duration::from_millis(300),
        ..options
    })
    .unwrap();
    let (addr, _old) = serve_old(&upgrader, Arc::default());
    let err = upgrader.upgrade().unwrap_err();
    let UpgradeError::Timeout { pid, .. } = err else {
        panic!("{err}")
    };
    // Killed and reaped: no such process any more.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(ask(addr).unwrap(), "gen 1 ");
}

#[test]
fn a_missing_binary_is_a_clear_error() {
    let upgrader = Upgrader::new(Options {
        executable: Some("/nonexistent/hotswap".into()),
        ..Options::default()
    })
    .unwrap();
    let err = upgrader.upgrade().unwrap_err().to_string();
    assert!(err.contains("cannot start /nonexistent/hotswap"), "{err}");
}
