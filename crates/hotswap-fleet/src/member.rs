//! `Member`: what `hotswap serve --fleet` runs beside the server. It
//! registers under a lease, watches every slot's desired state, and makes
//! its own server serve what the fleet wants of it, through the server's
//! admin API: the same protocol as a deploy by hand (signature, digest,
//! validation, health gate), so the server's policy holds for the fleet too.
//! The server's store stays the last-known-good: with etcd gone the
//! server keeps serving and the member reconnects, then converges.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{PutOptions, WatchOptions};
use hotswap_api::wire::{DeployQuery, ExpectQuery, RollbackQuery, WeightBody};
use hotswap_api::{Client, ClientError};
use hotswap_core::signing::Trust;
use hotswap_core::{Digest, SlotStatus};
use hotswap_oci::{OciError, PluginRef, Registry, RegistryOptions};

use crate::error::FleetError;
use crate::etcd::{decode, encode, Fleet};
use crate::keys;
use crate::lease::Lease;
use crate::record::{MemberRecord, Report, Standing, Target};
use crate::rollout::{Rollout, Want};

/// How a member joins its fleet.
#[derive(Debug, Clone)]
pub struct MemberOptions {
    /// Its name in the fleet (unique).
    pub name: String,
    /// The fleet's etcd (`etcd://HOST:PORT`).
    pub etcd: String,
    /// Its own server's admin API (`HOST:PORT`).
    pub admin: String,
    /// The admin API's token, if it has one.
    pub admin_token: Option<String>,
    /// Its own server's data plane, for the member record.
    pub data: String,
    /// Where pulled plugins are cached by digest.
    pub cache_dir: PathBuf,
    /// How long the member outlives a silence before the fleet forgets it.
    pub lease_ttl: Duration,
    /// How often it reports its slots' calls (and checks they still serve
    /// what they should).
    pub report_every: Duration,
}

impl MemberOptions {
    /// The defaults for member `name` of the fleet at `etcd`, serving admin
    /// API `admin` and data plane `data`.
    pub fn new(
        name: &str,
        etcd: &str,
        admin: &str,
        data: &str,
        cache_dir: PathBuf,
    ) -> MemberOptions {
        MemberOptions {
            name: name.to_string(),
            etcd: etcd.to_string(),
            admin: admin.to_string(),
            admin_token: None,
            data: data.to_string(),
            cache_dir,
            lease_ttl: Duration::from_secs(3),
            report_every: Duration::from_millis(500),
        }
    }
}

/// How long a member waits before it tries etcd again.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// Runs member `options` until `stop` resolves: joins, converges, and
/// rejoins whenever etcd goes away. On stop it leaves (revokes its lease).
pub async fn run(options: MemberOptions, stop: impl std::future::Future<Output = ()>) {
    let mut member = Member::new(options);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => {
                if let Some(lease) = member.lease.take() {
                    lease.revoke().await;
                }
                return;
            }
            end = member.session() => {
                if let Err(e) = end {
                    tracing::warn!(member = %member.options.name, error = %e, "fleet member lost etcd; the server keeps serving, and the member reconnects");
                }
            }
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(RECONNECT_AFTER) => {}
        }
    }
}

/// A member's own bookkeeping: what it last did per slot, so it neither
/// repeats a deploy that failed nor fights its server's own judgement.
struct Member {
    options: MemberOptions,
    client: Client,
    registry: Registry,
    /// Per slot: the rollout and wish it last acted on, and how it ended
    /// (`Err` for a deploy that failed for good).
    done: BTreeMap<String, (String, Want, Result<(), String>)>,
    /// The current session's lease, revoked when the member stops.
    lease: Option<Lease>,
}

/// Whether an apply may succeed if tried again (the registry was not
/// reachable), or failed for good (a bad digest, a refused signature...).
enum Trouble {
    Retry(String),
    Fatal(String),
}

impl Member {
    fn new(options: MemberOptions) -> Member {
        let client = Client::new(&options.admin).with_token(options.admin_token.clone());
        let registry = Registry::new(RegistryOptions {
            cache_dir: Some(options.cache_dir.clone()),
            ..RegistryOptions::default()
        });
        Member {
            options,
            client,
            registry,
            done: BTreeMap::new(),
            lease: None,
        }
    }

    /// One connection to etcd, until it fails.
    async fn session(&mut self) -> Result<(), FleetError> {
        let fleet = Fleet::connect(&self.options.etcd).await?;
        let lease = Lease::grant(&fleet, self.options.lease_ttl).await?;
        let put = PutOptions::new().with_lease(lease.id());
        let mut lost = lease.lost();
        self.lease = Some(lease);
        let record = MemberRecord {
            name: self.options.name.clone(),
            admin: self.options.admin.clone(),
            data: self.options.data.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        fleet
            .client()
            .put(
                keys::member(&self.options.name),
                encode(&record),
                Some(put.clone()),
            )
            .await
            .map_err(|e| fleet.failed(e))?;
        let (desired, revision) = fleet.rollouts().await?;
        let mut watch = fleet
            .client()
            .watch(
                keys::desireds(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await
            .map_err(|e| fleet.failed(e))?;
        let mut tick = tokio::time::interval(self.options.report_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut wanted: BTreeMap<String, Result<Rollout, String>> = desired
            .into_iter()
            .map(|(slot, v)| (slot, v.value))
            .collect();
        loop {
            let changed: Vec<String> = tokio::select! {
                message = watch.message() => {
                    let message = message.map_err(|e| fleet.failed(e))?
                        .ok_or_else(|| FleetError::Interrupted("etcd closed the watch"))?;
                    let mut changed = Vec::new();
                    for event in message.events() {
                        let Some(kv) = event.kv() else { continue };
                        let key = String::from_utf8_lossy(kv.key()).into_owned();
                        let Some(slot) = key.strip_prefix(&keys::desireds()) else { continue };
                        if event.event_type() == etcd_client::EventType::Delete {
                            wanted.remove(slot);
                        } else {
                            wanted.insert(slot.to_string(), decode(&key, kv.value()));
                        }
                        changed.push(slot.to_string());
                    }
                    tracing::debug!(?changed, "desired state changed");
                    changed
                }
                _ = tick.tick() => wanted.keys().cloned().collect(),
                _ = lost.changed() => return Err(FleetError::Interrupted("the member's lease expired")),
            };
            for slot in changed {
                let Some(desire) = wanted.get(&slot) else {
                    continue;
                };
                let report = self.converge(&slot, desire).await;
                fleet
                    .client()
                    .put(
                        keys::report(&self.options.name, &slot),
                        encode(&report),
                        Some(put.clone()),
                    )
                    .await
                    .map_err(|e| fleet.failed(e))?;
            }
        }
    }

    /// Makes `slot` serve what `desire` wants of this member, and says
    /// where it stands.
    async fn converge(&mut self, slot: &str, desire: &Result<Rollout, String>) -> Report {
        let rollout = match desire {
            Ok(r) => r,
            Err(why) => {
                let mut report = self.report(slot, None).await;
                report.state = Standing::Failed;
                report.error = Some(format!(
                    "the desired state is unreadable, so nothing changes: {why}"
                ));
                return report;
            }
        };
        let want = rollout.want(&self.options.name);
        let local = self.local(slot).await;
        if serves(local.as_ref(), &want) {
            self.done
                .insert(slot.to_string(), (rollout.id.clone(), want, Ok(())));
            return self.report(slot, Some(&rollout.id)).await;
        }
        let tried = self
            .done
            .get(slot)
            .filter(|(id, w, _)| *id == rollout.id && *w == want)
            .map(|(_, _, outcome)| outcome.clone());
        let outcome = match tried {
            // It was done, and the slot moved away since: its own canary
            // judge or an operator. The member does not fight it; the
            // fleet hears why.
            Some(Ok(())) => Err("the slot no longer serves what the fleet wants (its canary judge or an operator changed it)".to_string()),
            Some(Err(e)) => Err(e),
            None => match self.apply(slot, &want, local.as_ref(), rollout).await {
                Ok(()) => {
                    tracing::debug!(slot, rollout = %rollout.id, ?want, "applied");
                    Ok(())
                }
                Err(Trouble::Retry(e)) => {
                    let mut report = self.report(slot, Some(&rollout.id)).await;
                    report.state = Standing::Applying;
                    report.error = Some(format!("will retry: {e}"));
                    return report;
                }
                Err(Trouble::Fatal(e)) => Err(e),
            },
        };
        self.done.insert(
            slot.to_string(),
            (rollout.id.clone(), want, outcome.clone()),
        );
        let mut report = self.report(slot, Some(&rollout.id)).await;
        if let Err(e) = outcome {
            report.state = Standing::Failed;
            report.error = Some(e);
        }
        report
    }

    /// Does what `want` needs, from `local`.
    async fn apply(
        &self,
        slot: &str,
        want: &Want,
        local: Option<&SlotStatus>,
        rollout: &Rollout,
    ) -> Result<(), Trouble> {
        let active = local.and_then(|s| s.active.as_ref()).map(|r| r.digest);
        let canary = local.and_then(|s| s.canary.as_ref()).map(|r| r.digest);
        let slot = slot.to_string();
        let reason = format!("fleet rollout {}", rollout.id);
        let target = match want {
            Want::Nothing => return Ok(()),
            Want::Revert { digest } => return self.rollback(&slot, *digest, &reason).await,
            Want::Serve { target, .. } => target,
        };
        // A canary of something else is in the way: take it out first.
        if let Some(other) = canary.filter(|d| *d != target.module) {
            self.rollback(&slot, other, &reason).await?;
        }
        let expect = Some(target.module.to_string());
        match want {
            Want::Serve { canary: None, .. } if canary == Some(target.module) => {
                let query = ExpectQuery { expect };
                self.admin(move |c| c.promote(&slot, &query).map(drop))
                    .await
            }
            Want::Serve { canary: None, .. } if active == Some(target.module) => Ok(()),
            Want::Serve {
                canary: Some(weight),
                ..
            } if canary == Some(target.module) => {
                let body = WeightBody {
                    weight: *weight,
                    expect,
                };
                self.admin(move |c| c.set_canary_weight(&slot, &body).map(drop))
                    .await
            }
            Want::Serve { canary: weight, .. } => {
                let (module, signature) = self.pull(target).await?;
                if !rollout.signers.is_empty() {
                    Trust::new(&rollout.signers, true)
                        .and_then(|t| t.check(&module, signature.as_deref()))
                        .map_err(|e| {
                            Trouble::Fatal(format!(
                                "{}: the rollout's signers refuse it: {e}",
                                target.reference
                            ))
                        })?;
                }
                let query = DeployQuery {
                    sha256: Some(target.module.to_string()),
                    canary: *weight,
                    signature,
                };
                self.admin(move |c| c.deploy(&slot, &module, &query).map(drop))
                    .await
            }
            Want::Nothing | Want::Revert { .. } => unreachable!("handled above"),
        }
    }

    /// Rolls `slot` back from `digest` (its canary, or its active revision).
    async fn rollback(&self, slot: &str, digest: Digest, reason: &str) -> Result<(), Trouble> {
        let slot = slot.to_string();
        let query = RollbackQuery {
            reason: Some(format!("{reason} rolled back")),
            expect: Some(digest.to_string()),
        };
        self.admin(move |c| c.rollback(&slot, &query).map(drop))
            .await
    }

    /// Pulls `target` by digest: the manifest's digest is checked against
    /// the reference, the module's against the manifest and the rollout.
    async fn pull(&self, target: &Target) -> Result<(Vec<u8>, Option<String>), Trouble> {
        let started = std::time::Instant::now();
        let reference: PluginRef = target
            .reference
            .parse()
            .map_err(|e: hotswap_oci::ParseRefError| Trouble::Fatal(e.to_string()))?;
        let pulled = self.registry.pull(&reference).await.map_err(|e| match e {
            OciError::Registry { .. } | OciError::Slow { .. } => Trouble::Retry(e.to_string()),
            e => Trouble::Fatal(e.to_string()),
        })?;
        if pulled.digest != target.module {
            return Err(Trouble::Fatal(format!(
                "{} holds module sha256:{}, but the rollout names sha256:{}",
                target.reference, pulled.digest, target.module
            )));
        }
        tracing::debug!(reference = %target.reference, cached = pulled.cached, took_ms = started.elapsed().as_secs_f64() * 1e3, "pulled");
        Ok((pulled.module, pulled.signature))
    }

    /// Runs a blocking admin call on a blocking thread.
    async fn admin(
        &self,
        call: impl FnOnce(&Client) -> Result<(), ClientError> + Send + 'static,
    ) -> Result<(), Trouble> {
        let client = self.client.clone();
        let started = std::time::Instant::now();
        let done = tokio::task::spawn_blocking(move || call(&client)).await;
        tracing::debug!(
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            "admin call"
        );
        match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e @ ClientError::Unreachable { .. })) => Err(Trouble::Retry(e.to_string())),
            Ok(Err(e)) => Err(Trouble::Fatal(e.to_string())),
            Err(e) => Err(Trouble::Fatal(format!("the admin call panicked: {e}"))),
        }
    }

    /// The slot as the server has it (`None`: it has no such slot).
    async fn local(&self, slot: &str) -> Option<SlotStatus> {
        let client = self.client.clone();
        let slot = slot.to_string();
        tokio::task::spawn_blocking(move || client.slot(&slot).map(|a| a.value))
            .await
            .ok()?
            .ok()
    }

    /// A converged report of `slot` as it is now.
    async fn report(&self, slot: &str, rollout: Option<&str>) -> Report {
        let local = self.local(slot).await;
        let client = self.client.clone();
        let name = slot.to_string();
        let calls = tokio::task::spawn_blocking(move || client.calls(&name).map(|a| a.value))
            .await
            .ok()
            .and_then(Result::ok);
        Report {
            rollout: rollout.map(str::to_string),
            active: local
                .as_ref()
                .and_then(|s| s.active.as_ref())
                .map(|r| r.digest),
            canary: local
                .as_ref()
                .and_then(|s| s.canary.as_ref())
                .map(|r| (r.digest, r.weight.unwrap_or(0))),
            state: Standing::Converged,
            error: None,
            calls: calls.map_or(0, |c| c.calls),
            failed: calls.map_or(0, |c| c.failed),
        }
    }
}

/// Whether `local` already is what `want` asks.
fn serves(local: Option<&SlotStatus>, want: &Want) -> bool {
    let active = local.and_then(|s| s.active.as_ref()).map(|r| r.digest);
    let canary = local
        .and_then(|s| s.canary.as_ref())
        .map(|r| (r.digest, r.weight.unwrap_or(0)));
    want.met_by(active, canary)
}
