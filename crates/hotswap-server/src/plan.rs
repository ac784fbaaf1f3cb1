//! `ReloadPlan`: what a config reload changes, computed from the old and
//! the new config alone, before anything is touched. `hotswap reload
//! --dry-run` shows it; a reload applies it.

use std::path::PathBuf;

use crate::config::{ConfigError, ServerConfig};

pub use hotswap_api::wire::{ReloadPlan, Setting};

/// Why a new config cannot be applied in place. Nothing changes.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The new config is not valid.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The store cannot move while the server runs.
    #[error("data_dir cannot change in place ({} → {}): stop the server, move the store, start it again", .from.display(), .to.display())]
    DataDir {
        /// The store in use.
        from: PathBuf,
        /// The one asked for.
        to: PathBuf,
    },
    /// The eBPF tier's pins cannot move while programs run from them.
    #[error("[ebpf] cannot change in place (its programs are pinned under pin_root): restart the server, or upgrade it")]
    Ebpf,
}

/// The plan that takes a server from `old` to `new`, or why there is none.
/// Pure: it opens nothing and changes nothing (a new listen address is
/// opened when the plan is applied, and may still fail then).
///
/// ```
/// use hotswap_server::{plan, ServerConfig, Setting};
///
/// let old = ServerConfig::default();
/// let new = ServerConfig { max_module_bytes: 1 << 20, ..old.clone() };
/// assert_eq!(plan(&old, &new)?.changed, [Setting::MaxModuleBytes]);
///
/// let moved = ServerConfig { data_dir: "/elsewhere".into(), ..old.clone() };
/// assert!(plan(&old, &moved).is_err());
/// # Ok::<(), hotswap_server::PlanError>(())
/// ```
pub fn plan(old: &ServerConfig, new: &ServerConfig) -> Result<ReloadPlan, PlanError> {
    new.check()?;
    if new.data_dir != old.data_dir {
        return Err(PlanError::DataDir {
            from: old.data_dir.clone(),
            to: new.data_dir.clone(),
        });
    }
    if new.ebpf != old.ebpf {
        return Err(PlanError::Ebpf);
    }
    let mut plan = ReloadPlan::default();
    let mut change = |setting: Setting, differs: bool, note: Option<&str>| {
        if differs {
            plan.changed.push(setting);
            plan.notes.extend(note.map(str::to_string));
        }
    };
    use Setting as S;
    change(S::Listen, new.listen != old.listen, None);
    change(S::Admin, new.admin != old.admin, None);
    change(S::Routes, new.routes != old.routes, None);
    let tls = match (&old.tls, &new.tls) {
        (_, Some(_)) => Some("the certificate and key are read again; connections accepted from now on use them, open ones keep theirs"),
        (Some(_), None) => Some("the data plane serves plain HTTP to connections accepted from now on"),
        (None, None) => None,
    };
    change(S::Tls, tls.is_some(), tls);
    let budget_changed = new.canary.budget() != old.canary.budget();
    change(
        S::Canary,
        new.canary != old.canary,
        budget_changed.then_some(
            "the canary error budget applies to canaries started from now on; one on trial keeps the budget it started with",
        ),
    );
    change(
        S::Limits,
        new.limits != old.limits,
        Some("limits apply to revisions deployed from now on; running revisions keep theirs until replaced"),
    );
    change(S::TrustedKeys, new.trusted_keys != old.trusted_keys, None);
    change(
        S::RequireSignature,
        new.require_signature != old.require_signature,
        None,
    );
    change(S::AdminToken, new.admin_token != old.admin_token, None);
    change(
        S::MaxModuleBytes,
        new.max_module_bytes != old.max_module_bytes,
        None,
    );
    change(S::Upgrade, new.upgrade != old.upgrade, None);
    change(S::Native, new.native != old.native, None);
    change(
        S::ComponentOutgoing,
        new.component.outgoing != old.component.outgoing,
        Some("components' outgoing requests follow the new allow lists from their next request on"),
    );
    let limits = |c: &crate::ComponentSection| (c.deadline_ms, c.memory_cap_mib, c.max_instances);
    change(
        S::ComponentLimits,
        limits(&new.component) != limits(&old.component),
        Some(
            "component limits size the component engine: they apply from the next start or upgrade",
        ),
    );
    change(
        S::DeployExample,
        new.deploy_example != old.deploy_example,
        Some("deploy_example matters only when a server starts with an empty store; nothing changes now"),
    );
    change(
        S::EventRetention,
        new.event_retention != old.event_retention,
        Some("event_retention applies from the next start or upgrade"),
    );
    change(
        S::MigrationPause,
        new.migration_pause_ms != old.migration_pause_ms,
        Some("migration_pause_ms applies from the next start or upgrade"),
    );
    change(
        S::KvSync,
        new.kv_sync != old.kv_sync,
        Some("kv_sync applies from the next start or upgrade"),
    );
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_that_differs_is_in_the_plan_once_with_its_note() {
        let old = ServerConfig::default();
        assert_eq!(plan(&old, &old).unwrap(), ReloadPlan::default());
        let new = ServerConfig {
            listen: "127.0.0.1:9999".parse().unwrap(),
            deploy_example: !old.deploy_example,
            event_retention: 5,
            ..old.clone()
        };
        let p = plan(&old, &new).unwrap();
        assert_eq!(
            p.changed,
            [
                Setting::Listen,
                Setting::DeployExample,
                Setting::EventRetention
            ]
        );
        assert_eq!(p.notes.len(), 2);
        assert_eq!(
            serde_json::to_value(&p.changed).unwrap(),
            serde_json::json!(["listen", "deploy_example", "event_retention"])
        );
    }

    #[test]
    fn what_cannot_change_in_place_is_refused_with_why() {
        let old = ServerConfig::default();
        let ebpf = ServerConfig {
            ebpf: crate::EbpfConfig {
                enabled: !old.ebpf.enabled,
                ..old.ebpf.clone()
            },
            ..old.clone()
        };
        assert!(matches!(plan(&old, &ebpf), Err(PlanError::Ebpf)));
        let bad = ServerConfig {
            require_signature: true,
            trusted_keys: Vec::new(),
            ..old.clone()
        };
        let err = plan(&old, &bad);
        assert!(matches!(err, Err(PlanError::Invalid(_))), "{err:?}");
    }
}
