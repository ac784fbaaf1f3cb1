//! The fleet's etcd side against a real etcd: compare-and-swap writes,
//! operators racing, and controllers campaigning.

use std::time::Duration;

use hotswap_core::ErrorBudget;
use hotswap_fleet::controller::{self, ControllerOptions};
use hotswap_fleet::ops::{self, RolloutOptions};
use hotswap_fleet::{parse_waves, Fleet, FleetError, Phase};
use hotswap_oci::{PluginRef, Registry, RegistryOptions};
use hotswap_testkit::{Etcd, OciRegistry};

fn options() -> RolloutOptions {
    RolloutOptions {
        waves: parse_waves("1,100%").unwrap(),
        canary_weight: 10,
        soak: Duration::from_millis(100),
        budget: ErrorBudget {
            max_failed_ppm: 10_000,
            window_secs: 1,
            min_calls: 10,
        },
        ..RolloutOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_racing_on_one_slot_start_one_rollout_and_phases_are_enforced() {
    let (Some(etcd), Some(server)) = (Etcd::start(), OciRegistry::start()) else {
        return;
    };
    let registry = Registry::new(RegistryOptions::default());
    let tag: PluginRef = format!("oci://{}/plugins/p:v1", server.host())
        .parse()
        .unwrap();
    registry.push(b"\0asm\x01\0\0\0", &tag, None).await.unwrap();
    let fleet = Fleet::connect(&format!("etcd://{}", etcd.endpoint()))
        .await
        .unwrap();

    let starts = (0..4).map(|_| {
        let (fleet, tag) = (fleet.clone(), tag.clone());
        tokio::spawn(async move {
            let registry = Registry::new(RegistryOptions::default());
            ops::start(&fleet, &registry, "greet", &tag, options()).await
        })
    });
    let mut started = 0;
    for start in starts {
        match start.await.unwrap() {
            Ok(_) => started += 1,
            Err(FleetError::InProgress { .. } | FleetError::Raced(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(started, 1, "exactly one of the racing starts wins");

    // Phases: a running rollout can be paused, not resumed; a paused one
    // resumed; an aborted one neither.
    let e = ops::resume(&fleet, "greet").await.unwrap_err();
    assert!(
        e.to_string()
            .contains("only a paused rollout can be resumed"),
        "{e}"
    );
    assert_eq!(
        ops::pause(&fleet, "greet").await.unwrap().phase,
        Phase::Paused
    );
    assert_eq!(
        ops::resume(&fleet, "greet").await.unwrap().phase,
        Phase::Running
    );
    let aborted = ops::abort(&fleet, "greet", "testing").await.unwrap();
    assert_eq!(aborted.phase, Phase::RolledBack);
    assert!(aborted
        .reason
        .unwrap()
        .contains("aborted by an operator: testing"));
    assert!(ops::pause(&fleet, "greet").await.is_err());
    assert!(matches!(
        ops::pause(&fleet, "other").await,
        Err(FleetError::NoRollout(_))
    ));

    // A new rollout may follow an ended one; the old goes to the history.
    ops::start(&fleet, &registry, "greet", &tag, options())
        .await
        .unwrap();
    let history = ops::history(&fleet, "greet").await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].phase, Phase::RolledBack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_controllers_one_leads_and_the_other_takes_over_when_it_stops() {
    let Some(etcd) = Etcd::start() else {
        return;
    };
    let endpoint = format!("etcd://{}", etcd.endpoint());
    let fleet = Fleet::connect(&endpoint).await.unwrap();
    let (stop_a, a) = tokio::sync::oneshot::channel::<()>();
    let (_stop_b, b) = tokio::sync::oneshot::channel::<()>();
    let run_a = tokio::spawn(controller::run(
        ControllerOptions::new("a", &endpoint),
        async {
            let _ = a.await;
        },
    ));
    let leader = until(&fleet, |l| l.is_some()).await.unwrap();
    tokio::spawn(controller::run(
        ControllerOptions::new("b", &endpoint),
        async {
            let _ = b.await;
        },
    ));
    assert_eq!(leader, "a", "the first candidate leads");
    // b campaigns but does not lead while a does.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fleet.leader().await.unwrap().as_deref(), Some("a"));
    // a stops (and resigns by revoking its lease): b leads at once.
    stop_a.send(()).unwrap();
    run_a.await.unwrap();
    let leader = until(&fleet, |l| l.as_deref() == Some("b")).await;
    assert_eq!(leader.as_deref(), Some("b"));
}

/// Waits (10 s at most) until the leader satisfies `done`.
async fn until(fleet: &Fleet, done: impl Fn(&Option<String>) -> bool) -> Option<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let leader = fleet.leader().await.unwrap();
        if done(&leader) {
            return leader;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "leader stays {leader:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
