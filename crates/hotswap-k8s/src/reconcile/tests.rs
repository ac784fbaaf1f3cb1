use super::*;

use hotswap_fleet::record::Target;
use hotswap_fleet::{Plan, Selector};
use kube::api::ObjectMeta;

const NOW: &str = "2026-12-07T20:00:00Z";
const LATER: &str = "2026-12-07T20:05:00Z";

fn digest(n: u8) -> Digest {
    Digest::of(&[n])
}

fn spec() -> HotswapPluginSpec {
    serde_json::from_value(serde_json::json!({
        "slot": "greet",
        "image": "oci://127.0.0.1:5000/plugins/greet:v2",
        "waves": ["1", "100%"],
        "soak": "1s",
        "errorBudget": "1%",
    }))
    .unwrap()
}

fn plugin(spec: HotswapPluginSpec) -> HotswapPlugin {
    let mut p = HotswapPlugin::new("greet", spec);
    p.metadata = ObjectMeta {
        name: Some("greet".into()),
        namespace: Some("default".into()),
        uid: Some("u-1".into()),
        generation: Some(1),
        finalizers: Some(vec![FINALIZER.into()]),
        ..ObjectMeta::default()
    };
    p
}

/// The rollout the operator would have started for `p`.
fn rollout_of(p: &HotswapPlugin) -> Rollout {
    let d = reconcile(p, &FleetView::default(), NOW);
    let Some(Action::Start(start)) = d.actions.into_iter().next() else {
        panic!("expected a start")
    };
    let o = start.options;
    let plan = Plan {
        slot: start.slot,
        to: Target {
            reference: format!("oci://127.0.0.1:5000/plugins/greet@sha256:{}", digest(9)),
            module: digest(2),
        },
        members: o.members,
        signers: o.signers,
        origin: o.origin,
        waves: o.waves,
        canary_weight: o.canary_weight,
        soak_ms: o.soak.as_millis() as u64,
        budget: o.budget,
    };
    Rollout::new(plan, None, 0)
}

fn report(r: &Rollout, serving: u8, state: Standing) -> Report {
    Report {
        rollout: Some(r.id.clone()),
        active: Some(digest(serving)),
        canary: None,
        state,
        error: (state == Standing::Failed).then(|| "the signature is not trusted".into()),
        calls: 0,
        failed: 0,
    }
}

fn view(r: &Rollout, reports: &[(&str, Report)]) -> FleetView {
    FleetView {
        rollout: Some(Ok(r.clone())),
        members: reports.iter().map(|(m, _)| m.to_string()).collect(),
        reports: reports
            .iter()
            .map(|(m, rep)| (m.to_string(), rep.clone()))
            .collect(),
        keys: None,
    }
}

fn condition<'a>(d: &'a Decision, type_: &str) -> &'a Condition {
    d.status
        .as_ref()
        .expect("a status")
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

fn events(d: &Decision) -> Vec<&Event> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// `p` after the operator wrote `d`'s status.
fn with_status(mut p: HotswapPlugin, d: &Decision) -> HotswapPlugin {
    p.status = d.status.clone();
    p
}

#[test]
fn the_finalizer_comes_first() {
    let mut p = plugin(spec());
    p.metadata.finalizers = None;
    let d = reconcile(&p, &FleetView::default(), NOW);
    assert!(
        matches!(d.actions[..], [Action::AddFinalizer]),
        "{:?}",
        d.actions
    );
    assert!(d.status.is_none());
}

#[test]
fn a_new_spec_starts_one_rollout_named_after_it() {
    let mut s = spec();
    s.members = Some(Selector {
        names: Vec::new(),
        name_prefix: Some("greeter-".into()),
    });
    let p = plugin(s);
    let d = reconcile(&p, &FleetView::default(), NOW);
    let [Action::Start(start)] = &d.actions[..] else {
        panic!("{:?}", d.actions)
    };
    assert_eq!(start.slot, "greet");
    assert_eq!(
        start.image.tag(),
        Some("v2"),
        "the tag is resolved by the start, once"
    );
    assert_eq!(start.options.origin.as_deref(), Some(origin(&p).as_str()));
    assert_eq!(
        start.options.members.name_prefix.as_deref(),
        Some("greeter-")
    );
    assert_eq!(start.options.budget.max_failed_ppm, 10_000);
    assert_eq!(condition(&d, "Progressing").reason, "Starting");
    assert_eq!(condition(&d, "Ready").status, "False");

    // Only what the rollout is made of names it.
    let mut edited = p.clone();
    edited.spec.rollback_on_delete = true;
    assert_eq!(origin(&edited), origin(&p));
    edited.spec.soak = "2s".into();
    assert_ne!(origin(&edited), origin(&p));
}

#[test]
fn bad_specs_are_degraded_and_start_nothing() {
    type Edit = fn(&mut HotswapPluginSpec);
    let cases: Vec<(Edit, &str, &str)> = vec![
        (
            |s| s.waves = vec!["1".into(), "50%".into()],
            "InvalidSpec",
            "last wave must be 100%",
        ),
        (|s| s.image = "greet:v2".into(), "InvalidSpec", "image"),
        (|s| s.soak = "soon".into(), "InvalidSpec", "not a duration"),
        (
            |s| s.error_budget = "200%".into(),
            "InvalidSpec",
            "0% to 100%",
        ),
        (|s| s.canary_weight = 0, "InvalidSpec", "canary weight"),
        (|s| s.slot = " ".into(), "InvalidSpec", "slot is empty"),
        (
            |s| {
                s.signatures = Some(crate::Signatures {
                    required: true,
                    keys_secret: None,
                })
            },
            "InvalidSpec",
            "needs signatures.keysSecret",
        ),
    ];
    for (edit, reason, says) in cases {
        let mut s = spec();
        edit(&mut s);
        let d = reconcile(&plugin(s), &FleetView::default(), NOW);
        assert!(
            !d.actions.iter().any(|a| matches!(a, Action::Start(_))),
            "{reason}: {:?}",
            d.actions
        );
        let c = condition(&d, "Degraded");
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", reason));
        assert!(c.message.contains(says), "{}", c.message);
        assert_eq!(events(&d)[0].reason, "Invalid");
        assert!(events(&d)[0].warning);
    }
}

#[test]
fn the_signature_secret_gives_the_signers_or_a_reason() {
    let mut s = spec();
    s.signatures = Some(crate::Signatures {
        required: true,
        keys_secret: Some("keys".into()),
    });
    let p = plugin(s);
    let key = hotswap_core::signing::public_hex(&hotswap_core::signing::generate().unwrap());
    let with = |keys| FleetView {
        keys: Some(keys),
        ..FleetView::default()
    };
    let d = reconcile(&p, &with(Ok(vec![key.clone()])), NOW);
    let [Action::Start(start)] = &d.actions[..] else {
        panic!("{:?}", d.actions)
    };
    assert_eq!(start.options.signers, vec![key]);
    for (keys, reason) in [
        (
            Err(KeysTrouble::Missing("Secret keys not found".into())),
            "SecretMissing",
        ),
        (
            Err(KeysTrouble::Bad("Secret keys: `k` is not UTF-8".into())),
            "BadSecret",
        ),
        (Ok(vec!["not hex".into()]), "BadSecret"),
        (Ok(vec![]), "BadSecret"),
    ] {
        let d = reconcile(&p, &with(keys), NOW);
        assert!(d.actions.iter().all(|a| !matches!(a, Action::Start(_))));
        assert_eq!(condition(&d, "Degraded").reason, reason);
    }
}

#[test]
fn a_running_rollout_is_mirrored_wave_by_wave_with_an_event_each() {
    let p = plugin(spec());
    let mut r = rollout_of(&p);
    r.assigned = vec![vec!["m1".into()]];
    let v = view(
        &r,
        &[
            ("m1", report(&r, 2, Standing::Converged)),
            ("m2", report(&r, 1, Standing::Converged)),
        ],
    );
    let d = reconcile(&p, &v, NOW);
    let s = d.status.as_ref().unwrap();
    assert_eq!(s.rollout.as_deref(), Some(r.id.as_str()));
    assert_eq!(s.resolved_image.as_deref(), Some(r.to.reference.as_str()));
    assert_eq!((s.phase.as_deref(), s.wave), (Some("running"), Some(1)));
    assert_eq!(
        s.members["m1"].serving,
        Some(format!("sha256:{}", digest(2)))
    );
    assert_eq!(s.members["m2"].state, "converged");
    let c = condition(&d, "Progressing");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Wave"));
    assert!(
        c.message.starts_with("wave 1 of 2 (1): m1"),
        "{}",
        c.message
    );
    assert_eq!(events(&d)[0].reason, "Wave");
    assert!(
        d.actions.iter().all(|a| matches!(a, Action::Event(_))),
        "nothing else to do"
    );

    // The same again: no new event.
    let p = with_status(p, &d);
    assert!(events(&reconcile(&p, &v, LATER)).is_empty());
    // Wave 2 is news.
    r.wave = 1;
    r.assigned.push(vec!["m2".into()]);
    let d2 = reconcile(
        &p,
        &view(&r, &[("m1", report(&r, 2, Standing::Converged))]),
        LATER,
    );
    assert_eq!(d2.status.as_ref().unwrap().wave, Some(2));
    assert_eq!(events(&d2)[0].reason, "Wave");
    assert_eq!(
        condition(&d2, "Progressing").last_transition_time,
        NOW,
        "still progressing: the transition time stays"
    );
}

#[test]
fn a_succeeded_rollout_is_ready_once_every_selected_member_serves_it() {
    let p = plugin(spec());
    let mut r = rollout_of(&p);
    r.phase = Phase::Succeeded;
    r.wave = 2;
    r.assigned = vec![vec!["m1".into()], vec!["m2".into()]];
    let behind = view(
        &r,
        &[
            ("m1", report(&r, 2, Standing::Converged)),
            ("m2", report(&r, 1, Standing::Applying)),
        ],
    );
    let d = reconcile(&p, &behind, NOW);
    assert_eq!(condition(&d, "Progressing").reason, "Settling");
    assert!(condition(&d, "Progressing").message.contains("m2"));
    assert_eq!(condition(&d, "Ready").status, "False");
    let all = view(
        &r,
        &[
            ("m1", report(&r, 2, Standing::Converged)),
            ("m2", report(&r, 2, Standing::Converged)),
        ],
    );
    let d = reconcile(&with_status(p, &d), &all, LATER);
    let c = condition(&d, "Ready");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "Succeeded")
    );
    assert_eq!(d.status.as_ref().unwrap().wave, Some(2));
    assert_eq!(events(&d)[0].reason, "Succeeded");
    assert_eq!(d.requeue, WHILE_SETTLED);
}

#[test]
fn a_rollback_is_degraded_with_the_fleets_reason() {
    let p = plugin(spec());
    let mut r = rollout_of(&p);
    r.assigned = vec![vec!["m1".into()]];
    r.halt(
        5,
        "member m1 cannot apply it: the signature is not trusted".into(),
    );
    let d = reconcile(
        &p,
        &view(&r, &[("m1", report(&r, 1, Standing::Failed))]),
        NOW,
    );
    let c = condition(&d, "Degraded");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "RolledBack")
    );
    assert!(c.message.contains("m1 cannot apply it"), "{}", c.message);
    assert_eq!(d.status.as_ref().unwrap().members["m1"].state, "failed");
    let e = events(&d);
    assert!(e[0].warning && e[0].reason == "RolledBack");
    assert!(
        !d.actions.iter().any(|a| matches!(a, Action::Start(_))),
        "no retry of the same spec"
    );
}

#[test]
fn paused_and_stopped_rollouts_say_so() {
    let p = plugin(spec());
    let mut r = rollout_of(&p);
    r.phase = Phase::Paused;
    let d = reconcile(&p, &view(&r, &[]), NOW);
    assert_eq!(condition(&d, "Progressing").reason, "Paused");
    r.stop(5, "by hand".into());
    let d = reconcile(&p, &view(&r, &[]), NOW);
    assert_eq!(condition(&d, "Degraded").reason, "Stopped");
}

#[test]
fn another_rollout_of_the_slot_is_waited_for_or_left_alone() {
    let p = plugin(spec());
    let mut theirs = rollout_of(&p);
    theirs.origin = None;
    theirs.id = "greet-7".into();
    let d = reconcile(&p, &view(&theirs, &[]), NOW);
    let c = condition(&d, "Progressing");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "SlotBusy")
    );
    assert!(c.message.contains("by hand (greet-7)"), "{}", c.message);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    // Once it ends, this spec's rollout starts.
    theirs.phase = Phase::Succeeded;
    let d = reconcile(&p, &view(&theirs, &[]), NOW);
    assert!(matches!(d.actions[..], [Action::Start(_)]));

    // This spec's rollout, replaced by hand since: not started again.
    let mut done = with_status(p.clone(), &d);
    let status = done.status.as_mut().unwrap();
    status.rollout = Some("greet-1".into());
    let d = reconcile(&done, &view(&theirs, &[]), NOW);
    assert!(d.actions.iter().all(|a| !matches!(a, Action::Start(_))));
    assert_eq!(condition(&d, "Degraded").reason, "Replaced");
}

#[test]
fn a_spec_changed_mid_rollout_stops_the_old_one_then_starts() {
    let p = plugin(spec());
    let old = rollout_of(&p);
    let mut p2 = p.clone();
    p2.spec.image = "oci://127.0.0.1:5000/plugins/greet:v3".into();
    p2.metadata.generation = Some(2);
    let d = reconcile(&p2, &view(&old, &[]), NOW);
    let [Action::Retire { id, rollback, .. }, ..] = &d.actions[..] else {
        panic!("{:?}", d.actions)
    };
    assert_eq!((id.as_str(), *rollback), (old.id.as_str(), false));
    let mut stopped = old.clone();
    stopped.stop(5, "its HotswapPlugin's spec changed".into());
    let d = reconcile(&p2, &view(&stopped, &[]), NOW);
    assert!(
        matches!(d.actions[..], [Action::Start(_)]),
        "{:?}",
        d.actions
    );
}

#[test]
fn deleting_stops_or_rolls_back_then_lets_go() {
    let mut p = plugin(spec());
    let running = rollout_of(&p);
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-12-07T20:00:00Z".parse().unwrap(),
    ));
    let mut succeeded = running.clone();
    succeeded.phase = Phase::Succeeded;
    let mut rolled_back = running.clone();
    rolled_back.halt(1, "breach".into());
    let retire = |d: &Decision| {
        d.actions.iter().find_map(|a| match a {
            Action::Retire { rollback, .. } => Some(*rollback),
            _ => None,
        })
    };
    for (rollback_on_delete, r, expect) in [
        (false, &running, Some(false)),
        (true, &running, Some(true)),
        (false, &succeeded, None),
        (true, &succeeded, Some(true)),
        (true, &rolled_back, None),
    ] {
        p.spec.rollback_on_delete = rollback_on_delete;
        let d = reconcile(&p, &view(r, &[]), NOW);
        assert_eq!(retire(&d), expect, "{:?} {rollback_on_delete}", r.phase);
        assert!(matches!(d.actions.last(), Some(Action::RemoveFinalizer)));
        assert!(d.status.is_none(), "a resource going away keeps its status");
        if expect.is_some() {
            assert_eq!(events(&d)[0].reason, "Deleted");
        }
    }
    // Someone else's rollout is left alone.
    let mut theirs = running.clone();
    theirs.origin = Some("HotswapPlugin default/other (uid u-2) spec 0".into());
    let d = reconcile(&p, &view(&theirs, &[]), NOW);
    assert!(matches!(d.actions[..], [Action::RemoveFinalizer]));
    // Without the finalizer there is nothing left to do.
    p.metadata.finalizers = None;
    assert!(reconcile(&p, &view(&running, &[]), NOW).actions.is_empty());
}

#[test]
fn a_failed_start_is_degraded_and_retried() {
    let p = plugin(spec());
    let d = reconcile(&p, &FleetView::default(), NOW);
    let (status, event) = start_failed(&p, &d, "tag v2 not found in plugins/greet", NOW);
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "StartFailed")
    );
    assert!(c.message.contains("tag v2 not found") && c.message.contains("every 10s"));
    assert!(event.warning && event.reason == "StartFailed");
    // The next reconcile tries again.
    let again = reconcile(
        &with_status(
            p,
            &Decision {
                status: Some(status),
                ..d
            },
        ),
        &FleetView::default(),
        LATER,
    );
    assert!(matches!(again.actions[..], [Action::Start(_)]));
}
