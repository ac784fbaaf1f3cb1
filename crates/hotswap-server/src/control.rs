//! `Controller`: how the admin API and signal handlers ask a running server
//! to upgrade its binary or reload its config, and what they hear back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hotswap_upgrade::Upgrader;
use tokio::sync::{mpsc, oneshot};

/// What a server can be asked to do while it runs.
pub(crate) enum Command {
    Upgrade(oneshot::Sender<Result<UpgradeReport, String>>),
    Reload {
        dry_run: bool,
        reply: oneshot::Sender<Result<ReloadReport, String>>,
    },
}

/// Asks the running server to upgrade or reload. Cheap to clone.
#[derive(Clone)]
pub struct Controller {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) upgrader: Arc<Upgrader>,
    /// Set while an upgrade runs: other commands are refused rather than
    /// queued (a queued one would hold its connection, and so the drain).
    pub(crate) upgrading: Arc<AtomicBool>,
}

pub use hotswap_api::wire::{ProcessInfo, UpgradeReport};

/// A config reload that was applied (or, for a dry run, would be): its
/// plan.
pub type ReloadReport = crate::ReloadPlan;

/// Why a command could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The server is stopping (or stopped) and takes no more commands.
    #[error("the server is stopping")]
    Stopping,
    /// An upgrade is under way; try again once it is over.
    #[error("an upgrade is in progress; try again once it is over")]
    Busy,
    /// The command ran and failed; the server serves as before.
    #[error("{0}")]
    Failed(String),
}

impl Controller {
    /// Which process this is.
    pub fn process(&self) -> ProcessInfo {
        ProcessInfo {
            pid: std::process::id(),
            generation: self.upgrader.generation(),
            binary: self.upgrader.executable().display().to_string(),
        }
    }

    /// Upgrades to the binary on disk, and returns once the new process
    /// serves (this one then exits), or with why it did not (this one
    /// serves on). Refused while another upgrade runs.
    pub async fn upgrade(&self) -> Result<UpgradeReport, ControlError> {
        if self.upgrading.swap(true, Ordering::AcqRel) {
            return Err(ControlError::Busy);
        }
        let result = self.ask(Command::Upgrade).await;
        if result.is_err() {
            self.upgrading.store(false, Ordering::Release);
        }
        result
    }

    /// Re-reads the config and applies it in place, or says why not (the
    /// old config stays in force). Refused while an upgrade runs.
    pub async fn reload(&self) -> Result<ReloadReport, ControlError> {
        if self.upgrading.load(Ordering::Acquire) {
            return Err(ControlError::Busy);
        }
        hotswap_upgrade::systemd::reloading();
        let result = self
            .ask(|reply| Command::Reload {
                dry_run: false,
                reply,
            })
            .await;
        hotswap_upgrade::systemd::reloaded();
        result
    }

    /// Re-reads the config and says what a reload would change, or why it
    /// would be refused; changes nothing.
    pub async fn plan_reload(&self) -> Result<ReloadReport, ControlError> {
        self.ask(|reply| Command::Reload {
            dry_run: true,
            reply,
        })
        .await
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Command,
    ) -> Result<T, ControlError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(command(tx))
            .await
            .map_err(|_| ControlError::Stopping)?;
        rx.await
            .map_err(|_| ControlError::Stopping)?
            .map_err(ControlError::Failed)
    }
}
