//! `hotswap k8s operator`: a kube-rs `Controller` over HotswapPlugins. It
//! gathers what [`reconcile`] needs (the resource, the slot's rollout and
//! reports from etcd, the signature Secret), and carries out what it
//! decides: the finalizer, starting and retiring fleet rollouts through
//! `hotswap_fleet::ops`, the status, Events. It moves no wave itself; the
//! fleet's controller does, and every change in etcd wakes the operator.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hotswap_fleet::{ops, Fleet, FleetError};
use hotswap_oci::{Registry, RegistryOptions};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action as Requeue, Config, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use crate::leader::{Leader, LeaseOptions};
use crate::reconcile::{self, Action, FleetView, KeysTrouble, FINALIZER};
use crate::HotswapPlugin;

/// How an operator runs.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// The fleet's etcd (`etcd://HOST:PORT`).
    pub etcd: String,
    /// Watch only this namespace (otherwise all).
    pub namespace: Option<String>,
    /// The leader election among replicas.
    pub lease: LeaseOptions,
    /// Where plugins pulled to resolve and check them are cached.
    pub cache_dir: Option<std::path::PathBuf>,
}

/// The name the operator writes its status and Events under.
const MANAGER: &str = "hotswap-operator";
/// How long the operator waits before it tries etcd or the API server again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Why the operator could not run.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The Kubernetes API failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// No kubeconfig and not in a cluster.
    #[error("no Kubernetes to talk to: {0} (set KUBECONFIG, or run in a pod)")]
    Config(String),
    /// The fleet failed.
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

/// Runs the operator until `stop` resolves: campaigns for the lease, and
/// while it leads, reconciles every HotswapPlugin.
pub async fn run(
    options: OperatorOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), OperatorError> {
    let client = Client::try_default()
        .await
        .map_err(|e| OperatorError::Config(e.to_string()))?;
    tokio::pin!(stop);
    loop {
        let mut leader = tokio::select! {
            () = &mut stop => return Ok(()),
            leader = Leader::acquire(client.clone(), &options.lease) => leader,
        };
        tracing::info!(identity = %options.lease.identity, "the operator leads");
        tokio::select! {
            () = &mut stop => {
                leader.release().await;
                return Ok(());
            }
            () = leader.hold() => tracing::warn!("the operator lost its lease; it stops reconciling and campaigns again"),
            end = lead(client.clone(), &options) => {
                if let Err(e) = end {
                    tracing::warn!(error = %e, "the operator stopped reconciling; it starts again");
                }
                leader.release().await;
                tokio::time::sleep(RECONNECT_AFTER).await;
            }
        }
    }
}

/// What every reconcile shares.
struct Context {
    client: Client,
    fleet: Fleet,
    registry: Registry,
    /// This replica's name, on its Events.
    identity: String,
}

/// Reconciles while this replica leads.
async fn lead(client: Client, options: &OperatorOptions) -> Result<(), OperatorError> {
    let fleet = Fleet::connect(&options.etcd).await?;
    let plugins: Api<HotswapPlugin> = match &options.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let context = Arc::new(Context {
        client,
        fleet: fleet.clone(),
        registry: Registry::new(RegistryOptions {
            cache_dir: options.cache_dir.clone(),
            ..RegistryOptions::default()
        }),
        identity: options.lease.identity.clone(),
    });
    Controller::new(plugins, watcher::Config::default())
        .with_config(Config::default().debounce(Duration::from_millis(100)))
        .reconcile_all_on(etcd_changes(fleet))
        .run(reconcile_one, retry, context)
        .for_each(|outcome| async move {
            if let Err(e) = outcome {
                tracing::debug!(error = %e, "reconcile");
            }
        })
        .await;
    Ok(())
}

/// A tick for every change in the fleet, so that progress in etcd shows
/// in the resources' status at once.
fn etcd_changes(fleet: Fleet) -> impl futures_util::Stream<Item = ()> + Send {
    let rx = ops::changes(fleet);
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|()| ((), rx)) },
    )
}

fn retry(_: Arc<HotswapPlugin>, error: &OperatorError, _: Arc<Context>) -> Requeue {
    tracing::warn!(%error, "reconcile failed; trying again");
    Requeue::requeue(RECONNECT_AFTER * 5)
}

/// Reconciles one resource: gather, decide, act.
async fn reconcile_one(
    plugin: Arc<HotswapPlugin>,
    cx: Arc<Context>,
) -> Result<Requeue, OperatorError> {
    let ns = plugin.namespace().unwrap_or_default();
    let api: Api<HotswapPlugin> = Api::namespaced(cx.client.clone(), &ns);
    let view = gather(&cx, &plugin, &ns).await?;
    let now = now();
    let mut decision = reconcile::reconcile(&plugin, &view, &now);
    let mut requeue = decision.requeue;
    let actions = std::mem::take(&mut decision.actions);
    for action in actions {
        match action {
            Action::AddFinalizer | Action::RemoveFinalizer => {
                let mut finalizers = plugin.finalizers().to_vec();
                finalizers.retain(|f| f != FINALIZER);
                if matches!(action, Action::AddFinalizer) {
                    finalizers.push(FINALIZER.into());
                }
                let patch = serde_json::json!({"metadata": {
                    "resourceVersion": plugin.resource_version(),
                    "finalizers": finalizers,
                }});
                api.patch(
                    &plugin.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            }
            Action::Start(start) => {
                let started = ops::start(
                    &cx.fleet,
                    &cx.registry,
                    &start.slot,
                    &start.image,
                    start.options,
                )
                .await;
                match started {
                    Ok(r) => {
                        tracing::info!(rollout = %r.id, resource = %plugin.name_any(), "started");
                        publish(
                            &cx,
                            &plugin,
                            &reconcile::Event {
                                warning: false,
                                reason: "RolloutStarted",
                                note: format!(
                                    "rollout {} of {} (module sha256:{})",
                                    r.id, r.to.reference, r.to.module
                                ),
                            },
                        )
                        .await;
                    }
                    // Someone wrote first: the next reconcile sees what.
                    Err(FleetError::Raced(_) | FleetError::InProgress { .. }) => {}
                    Err(e @ (FleetError::Connect { .. } | FleetError::Etcd(_))) => {
                        return Err(e.into())
                    }
                    Err(e) => {
                        let (status, event) =
                            reconcile::start_failed(&plugin, &decision, &e.to_string(), &now);
                        decision.status = Some(status);
                        publish(&cx, &plugin, &event).await;
                        requeue = reconcile::RETRY_START;
                    }
                }
            }
            Action::Retire {
                slot,
                id,
                rollback,
                why,
            } => {
                ops::retire(&cx.fleet, &slot, &id, rollback, &why).await?;
            }
            Action::Event(event) => publish(&cx, &plugin, &event).await,
        }
    }
    if let Some(status) = decision.status {
        if plugin.status.as_ref() != Some(&status) {
            let apply = serde_json::json!({
                "apiVersion": "hotswap.dev/v1alpha1",
                "kind": "HotswapPlugin",
                "status": status,
            });
            api.patch_status(
                &plugin.name_any(),
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&apply),
            )
            .await?;
        }
    }
    Ok(Requeue::requeue(requeue))
}

/// What reconcile needs from etcd and the API server.
async fn gather(
    cx: &Context,
    plugin: &HotswapPlugin,
    ns: &str,
) -> Result<FleetView, OperatorError> {
    let slot = &plugin.spec.slot;
    let rollout = cx.fleet.rollout(slot).await?.map(|v| v.value);
    let members = cx.fleet.members().await?.into_keys().collect();
    let reports = cx.fleet.reports().await?.remove(slot).unwrap_or_default();
    let keys = match plugin
        .spec
        .signatures
        .as_ref()
        .and_then(|s| s.keys_secret.as_deref())
    {
        None => None,
        Some(name) => Some(secret_keys(&cx.client, ns, name).await?),
    };
    Ok(FleetView {
        rollout,
        members,
        reports,
        keys,
    })
}

/// The public keys in Secret `name`: every value, hex text.
async fn secret_keys(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Result<Vec<String>, KeysTrouble>, OperatorError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let Some(secret) = secrets.get_opt(name).await? else {
        return Ok(Err(KeysTrouble::Missing(format!(
            "Secret {ns}/{name}, which signatures.keysSecret names, does not exist"
        ))));
    };
    let data: BTreeMap<_, _> = secret.data.unwrap_or_default();
    let mut keys = Vec::new();
    for (key, value) in data {
        match String::from_utf8(value.0) {
            Ok(text) => keys.push(text.trim().to_string()),
            Err(_) => {
                return Ok(Err(KeysTrouble::Bad(format!(
                    "Secret {ns}/{name}: `{key}` is not text (a hex ed25519 public key)"
                ))))
            }
        }
    }
    Ok(Ok(keys))
}

/// Records `event` on `plugin`. One Event per occurrence, not kube's
/// `Recorder`: it folds every Event of one reason into a series that keeps
/// the first note, and each wave's note says which members it took.
async fn publish(cx: &Context, plugin: &HotswapPlugin, event: &reconcile::Event) {
    let ns = plugin.namespace().unwrap_or_default();
    let events: Api<KubeEvent> = Api::namespaced(cx.client.clone(), &ns);
    let now = k8s_openapi::jiff::Timestamp::now();
    let record = KubeEvent {
        // Named as client-go names them (a 1.20 API server refuses a
        // generateName that ends in a dot).
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", plugin.name_any(), now.as_nanosecond())),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        type_: Some(if event.warning { "Warning" } else { "Normal" }.into()),
        reason: Some(event.reason.into()),
        note: Some(event.note.chars().take(1000).collect()),
        action: Some("Rollout".into()),
        regarding: Some(plugin.object_ref(&())),
        reporting_controller: Some(format!("hotswap.dev/{MANAGER}")),
        reporting_instance: Some(cx.identity.clone()),
        ..KubeEvent::default()
    };
    if let Err(e) = events.create(&PostParams::default(), &record).await {
        tracing::warn!(error = %e, "an Event could not be recorded");
    }
}

/// Now, RFC 3339 to the second.
fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
