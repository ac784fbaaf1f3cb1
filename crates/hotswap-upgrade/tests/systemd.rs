//! Running under systemd: notifications reach `$NOTIFY_SOCKET`, and
//! socket-activated listeners (`LISTEN_FDS`) are taken instead of bound.
//! Its own test binary, because it sets process-wide environment variables.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::Command;

use hotswap_upgrade::{systemd, Options, Upgrader};

#[test]
fn notifications_reach_the_service_manager() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let manager = UnixDatagram::bind(&path).unwrap();
    std::env::set_var("NOTIFY_SOCKET", &path);
    let recv = || {
        let mut buf = [0u8; 256];
        let n = manager.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };

    let upgrader = Upgrader::new(Options::default()).unwrap();
    upgrader.serving().unwrap(); // no parent: we tell systemd ourselves
    assert_eq!(recv(), format!("MAINPID={}\nREADY=1\n", std::process::id()));
    systemd::reloading();
    let reloading = recv();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    systemd::reloaded();
    assert_eq!(recv(), "READY=1\n");
    // An upgrade: the old main process announces the reload, and once the
    // new one serves, names it as the main process.
    let upgrader = Upgrader::new(Options {
        args: Some(
            ["--exact", "upgraded", "--ignored", "--test-threads=1"]
                .map(Into::into)
                .to_vec(),
        ),
        ..Options::default()
    })
    .unwrap();
    let pending = upgrader.upgrade().unwrap();
    assert!(recv().starts_with("RELOADING=1\n"));
    let done = pending.hand_over(b"").unwrap();
    assert_eq!(recv(), format!("MAINPID={}\nREADY=1\n", done.pid));

    upgrader.stopping();
    assert_eq!(recv(), "STOPPING=1\n");
}

/// Not a test on its own: the new process of the upgrade above.
#[test]
#[ignore = "run by notifications_reach_the_service_manager, as the new process"]
fn upgraded() {
    let upgrader = Upgrader::new(Options::default()).unwrap();
    if upgrader.has_parent() {
        upgrader.ready().unwrap();
        upgrader.serving().unwrap();
    }
}

/// Not a test on its own: the socket-activated service. It takes its
/// listener from systemd's variables and answers one connection.
#[test]
#[ignore = "run by the test below, as a socket-activated process"]
fn activated() {
    if std::env::var_os("LISTEN_FDS").is_none() {
        return;
    }
    let addr = std::env::var("HOTSWAP_TEST_ADDR").unwrap().parse().unwrap();
    let upgrader = Upgrader::new(Options::default()).unwrap();
    let listener = upgrader.listen("data", addr).unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    conn.write_all(b"activated").unwrap();
}

#[test]
fn a_socket_activated_listener_is_taken_not_bound() {
    // systemd's side: it owns the socket and passes it as descriptor 3.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Above 3, so that dup2 onto 3 always makes a new descriptor (and a new
    // one has no close-on-exec).
    let high = rustix::io::fcntl_dupfd_cloexec(&listener, 10).unwrap();
    let fd = high.as_raw_fd();
    let mut service = Command::new("sh");
    service
        .arg("-c")
        // $$ is the shell's pid, which exec hands to the test binary.
        .arg("LISTEN_PID=$$ exec \"$0\" --exact activated --ignored --nocapture --test-threads=1")
        .arg(std::env::current_exe().unwrap())
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "data")
        .env("HOTSWAP_TEST_ADDR", addr.to_string());
    // SAFETY: dup2 is async-signal-safe; it runs in the child between fork
    // and exec, and leaves descriptor 3 without close-on-exec.
    unsafe {
        service.pre_exec(move || {
            if libc_dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = service.spawn().unwrap();
    drop(high);
    // Were the socket bound anew instead of taken, the address would be
    // in use and the child would fail; it answers on systemd's socket.
    let mut answer = String::new();
    let mut conn = TcpStream::connect(addr).unwrap();
    // Our copy of the socket would queue the connection forever if the
    // child never took its own: fail instead of hanging.
    conn.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    conn.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "activated");
    assert!(child.wait().unwrap().success());
}

fn libc_dup2(from: i32, to: i32) -> i32 {
    extern "C" {
        fn dup2(oldfd: i32, newfd: i32) -> i32;
    }
    // SAFETY: plain syscall wrapper on valid descriptor numbers.
    unsafe { dup2(from, to) }
}
