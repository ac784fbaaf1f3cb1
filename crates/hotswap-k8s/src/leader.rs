//! One leader among the operator's replicas, through a
//! `coordination.k8s.io/v1` Lease, the way Kubernetes' own controllers
//! elect theirs: the holder renews it; another replica takes it over only
//! once it has seen the lease unchanged for its whole duration (by its own
//! clock, so the replicas' clocks need not agree). Every write carries the
//! resourceVersion it read, so two replicas never both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// Which Lease, and who this replica is.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// The Lease's namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a holder that stopped renewing keeps it.
    pub ttl: Duration,
}

/// Leadership held: renewed by [`Leader::hold`] until it is lost.
pub struct Leader {
    api: Api<Lease>,
    options: LeaseOptions,
    lease: Lease,
}

impl Leader {
    /// Waits until this replica holds the lease.
    pub async fn acquire(client: Client, options: &LeaseOptions) -> Leader {
        let api: Api<Lease> = Api::namespaced(client, &options.namespace);
        let mut observed: Option<(String, Instant)> = None;
        loop {
            match try_acquire(&api, options, &mut observed).await {
                Ok(Some(lease)) => {
                    return Leader {
                        api,
                        options: options.clone(),
                        lease,
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, lease = %options.name, "cannot read the leader lease; trying again")
                }
            }
            tokio::time::sleep(options.ttl / 4).await;
        }
    }

    /// Renews the lease every third of its duration; returns when it is
    /// lost (another replica holds it, or no renewal got through for its
    /// whole duration).
    pub async fn hold(&mut self) {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.options.ttl / 3).await;
            let mut lease = self.lease.clone();
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.renew_time = Some(now());
            match self
                .api
                .replace(&self.options.name, &PostParams::default(), &lease)
                .await
            {
                Ok(lease) => {
                    self.lease = lease;
                    renewed = Instant::now();
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    tracing::warn!(lease = %self.options.name, "another replica took the leader lease");
                    return;
                }
                Err(e) if renewed.elapsed() >= self.options.ttl => {
                    tracing::warn!(error = %e, lease = %self.options.name, "the leader lease could not be renewed in time");
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "renewing the leader lease failed; trying again")
                }
            }
        }
    }

    /// Gives the lease up, so another replica leads without waiting for it
    /// to expire.
    pub async fn release(mut self) {
        let spec = self.lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = None;
        spec.renew_time = Some(now());
        let _ = self
            .api
            .replace(&self.options.name, &PostParams::default(), &self.lease)
            .await;
    }
}

/// One attempt: the lease when this replica holds it now.
async fn try_acquire(
    api: &Api<Lease>,
    options: &LeaseOptions,
    observed: &mut Option<(String, Instant)>,
) -> Result<Option<Lease>, kube::Error> {
    let ttl_secs = options.ttl.as_secs().max(1) as i32;
    let Some(lease) = api.get_opt(&options.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(options.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(options.identity.clone()),
                lease_duration_seconds: Some(ttl_secs),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return written(api.create(&PostParams::default(), &lease).await);
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let version = lease.metadata.resource_version.clone().unwrap_or_default();
    let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
    let ours = holder == Some(options.identity.as_str());
    let expired = match observed {
        Some((seen, since)) if *seen == version => {
            let ttl = spec
                .lease_duration_seconds
                .map_or(options.ttl, |s| Duration::from_secs(s.max(1) as u64));
            since.elapsed() >= ttl
        }
        _ => {
            *observed = Some((version, Instant::now()));
            false
        }
    };
    if !(ours || holder.is_none() || expired) {
        return Ok(None);
    }
    let mut taken = lease;
    let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
    taken.spec = Some(LeaseSpec {
        holder_identity: Some(options.identity.clone()),
        lease_duration_seconds: Some(ttl_secs),
        acquire_time: if ours { spec.acquire_time } else { Some(now()) },
        renew_time: Some(now()),
        lease_transitions: Some(transitions),
        ..spec
    });
    written(
        api.replace(&options.name, &PostParams::default(), &taken)
            .await,
    )
}

/// A write's lease, `None` when another replica wrote first.
fn written(result: Result<Lease, kube::Error>) -> Result<Option<Lease>, kube::Error> {
    match result {
        Ok(lease) => Ok(Some(lease)),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
        Err(e) => Err(e),
    }
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}
