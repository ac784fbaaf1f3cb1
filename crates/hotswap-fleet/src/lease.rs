//! `Lease`: an etcd lease kept alive in the background; the keys put under
//! it (a member's record and reports, a controller's candidacy) vanish when
//! its holder does.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::FleetError;
use crate::etcd::Fleet;

/// A live lease. Dropping it revokes it (best effort), so a member that
/// stops cleanly leaves the fleet at once, not a TTL later.
pub(crate) struct Lease {
    id: i64,
    fleet: Fleet,
    lost: watch::Receiver<bool>,
    keeper: JoinHandle<()>,
    revoked: bool,
}

impl Lease {
    /// Grants a lease of `ttl` and keeps it alive, renewing three times a TTL.
    pub(crate) async fn grant(fleet: &Fleet, ttl: Duration) -> Result<Lease, FleetError> {
        let secs = ttl.as_secs().max(1) as i64;
        let mut client = fleet.client();
        let granted = client
            .lease_grant(secs, None)
            .await
            .map_err(|e| fleet.failed(e))?;
        let id = granted.id();
        let (mut keeper, mut answers) = client
            .lease_keep_alive(id)
            .await
            .map_err(|e| fleet.failed(e))?;
        let (tell, lost) = watch::channel(false);
        let every = Duration::from_millis((secs as u64 * 1000) / 3);
        let keeper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let alive = match keeper.keep_alive().await {
                    Ok(()) => matches!(answers.message().await, Ok(Some(a)) if a.ttl() > 0),
                    Err(_) => false,
                };
                if !alive {
                    let _ = tell.send(true);
                    return;
                }
            }
        });
        Ok(Lease {
            id,
            fleet: fleet.clone(),
            lost,
            keeper,
            revoked: false,
        })
    }

    /// Its id, for `PutOptions::with_lease` and campaigns.
    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    /// Revokes it now: what is under it vanishes at once.
    pub(crate) async fn revoke(mut self) {
        self.keeper.abort();
        let _ = self.fleet.client().lease_revoke(self.id).await;
        self.revoked = true;
    }

    /// Changes when the lease could not be renewed: what was under it is
    /// gone, or about to be.
    pub(crate) fn lost(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.keeper.abort();
        if self.revoked {
            return;
        }
        let mut client = self.fleet.client();
        let id = self.id;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = client.lease_revoke(id).await;
            });
        }
    }
}
