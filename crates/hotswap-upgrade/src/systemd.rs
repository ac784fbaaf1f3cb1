//! Telling systemd what is happening, when running under it (`Type=notify`).
//! Every function is a no-op without `$NOTIFY_SOCKET`.

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// This process serves: `READY=1`, with its pid.
pub fn ready() {
    send(&[NotifyState::MainPid(std::process::id()), NotifyState::Ready]);
}

/// A reload (or an upgrade) started: `RELOADING=1` with the monotonic
/// timestamp systemd asks for.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// The reload is over (applied or rejected): `READY=1` again.
pub fn reloaded() {
    send(&[NotifyState::Ready]);
}

/// The process `pid` took over: `MAINPID=pid`, `READY=1`. Sent by the old
/// main process, which systemd still listens to with `NotifyAccess=main`.
pub(crate) fn handed_over(pid: u32) {
    send(&[NotifyState::MainPid(pid), NotifyState::Ready]);
}

/// The process is stopping: `STOPPING=1`.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}
