use super::*;

fn digest(n: u8) -> Digest {
    Digest::of(&[n])
}

fn target(n: u8) -> Target {
    Target {
        reference: format!("oci://127.0.0.1:1/p@sha256:{}", digest(n + 100)),
        module: digest(n),
    }
}

/// Serve target `n` as the active revision.
fn active(n: u8) -> Want {
    Want::Serve {
        target: target(n),
        canary: None,
    }
}

fn plan(waves: &str) -> Plan {
    Plan {
        slot: "greet".into(),
        to: target(2),
        members: Selector::default(),
        signers: Vec::new(),
        origin: None,
        waves: parse_waves(waves).unwrap(),
        canary_weight: 10,
        soak_ms: 1000,
        budget: ErrorBudget {
            max_failed_ppm: 10_000,
            window_secs: 1,
            min_calls: 10,
        },
    }
}

fn fleet(n: usize) -> BTreeSet<String> {
    (1..=n).map(|i| format!("m{i}")).collect()
}

/// What a member that did as told reports.
fn obeyed(r: &Rollout, member: &str, calls: u64, failed: u64) -> Report {
    let (active, canary) = match r.want(member) {
        Want::Serve {
            target,
            canary: Some(w),
        } => (Some(digest(1)), Some((target.module, w))),
        Want::Serve {
            target,
            canary: None,
        } => (Some(target.module), None),
        Want::Revert { .. } | Want::Nothing => (Some(digest(1)), None),
    };
    Report {
        rollout: Some(r.id.clone()),
        active,
        canary,
        state: Standing::Converged,
        error: None,
        calls,
        failed,
    }
}

fn seen(r: &Rollout, members: &BTreeSet<String>, now_ms: u64, calls: u64, failed: u64) -> Observed {
    Observed {
        now_ms,
        members: members.clone(),
        reports: members
            .iter()
            .map(|m| (m.clone(), obeyed(r, m, calls, failed)))
            .collect(),
    }
}

/// Steps until nothing changes at `now_ms`.
fn settle(
    mut r: Rollout,
    members: &BTreeSet<String>,
    now_ms: u64,
    calls: u64,
    failed: u64,
) -> Rollout {
    while let Some(next) = r.step(&seen(&r, members, now_ms, calls, failed)) {
        r = next;
    }
    r
}

#[test]
fn waves_parse_and_the_last_must_be_everyone() {
    assert_eq!(
        parse_waves("1, 25%,100%").unwrap(),
        vec![Wave::Members(1), Wave::Percent(25), Wave::Percent(100)]
    );
    for bad in ["", "1,50%", "0,100%", "101%", "x,100%", "1,-5%,100%"] {
        assert!(parse_waves(bad).is_err(), "{bad:?} should be refused");
    }
    let json = serde_json::to_string(&parse_waves("2,100%").unwrap()).unwrap();
    assert_eq!(json, r#"["2","100%"]"#);
}

#[test]
fn a_rollout_goes_wave_by_wave_after_each_soak() {
    let members = fleet(4);
    let r = Rollout::new(plan("1,50%,100%"), None, 0);
    let r = settle(r, &members, 0, 0, 0);
    // Wave 1: one member, as a canary; the others keep what they have.
    assert_eq!(r.assigned, vec![vec!["m1".to_string()]]);
    assert_eq!(
        r.want("m1"),
        Want::Serve {
            target: target(2),
            canary: Some(10)
        }
    );
    assert_eq!(r.want("m2"), Want::Nothing);
    assert!(r.soak.is_some(), "all healthy: the soak started");
    // Not before the soak is over.
    assert!(r.step(&seen(&r, &members, 999, 0, 0)).is_none());
    let r = settle(r, &members, 1000, 0, 0);
    assert_eq!(r.wave, 1);
    assert_eq!(
        r.assigned[1],
        vec!["m2".to_string()],
        "50% of 4 is 2 in all"
    );
    assert_eq!(r.want("m1"), active(2), "the canary is promoted");
    let r = settle(r, &members, 2000, 0, 0);
    let r = settle(r, &members, 3000, 0, 0);
    assert_eq!(r.phase, Phase::Succeeded, "{:#?}", r.log);
    for m in &members {
        assert_eq!(r.want(m), active(2));
    }
}

#[test]
fn a_member_that_cannot_apply_rolls_the_fleet_back() {
    let members = fleet(3);
    let first = Rollout::new(plan("1,100%"), None, 0);
    let mut done = first.clone();
    done.phase = Phase::Succeeded;
    let r = Rollout::new(
        Plan {
            to: target(3),
            ..plan("1,100%")
        },
        Some(&done),
        5,
    );
    assert_eq!(
        r.from,
        Some(target(2)),
        "it returns to what the fleet served"
    );
    let r = settle(r, &members, 10, 0, 0);
    let r = settle(r, &members, 2000, 0, 0);
    assert_eq!(r.wave, 1);
    let mut s = seen(&r, &members, 2001, 0, 0);
    let m3 = s.reports.get_mut("m3").unwrap();
    m3.state = Standing::Failed;
    m3.error = Some("the signature is not trusted".into());
    let r = r.step(&s).expect("a failure halts it");
    assert_eq!(r.phase, Phase::RolledBack);
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .contains("m3 cannot apply it: the signature"),
        "{:?}",
        r.reason
    );
    for m in &members {
        assert_eq!(r.want(m), active(2));
    }
    assert!(r.step(&s).is_none(), "a rolled back rollout does not move");
}

#[test]
fn a_broken_budget_halts_and_a_first_rollout_reverts_locally() {
    let members = fleet(2);
    let r = settle(Rollout::new(plan("1,100%"), None, 0), &members, 0, 100, 0);
    assert!(r.soak.is_some());
    // 5 of 100 new calls failed, over a 1% budget.
    let r = r
        .step(&seen(&r, &members, 500, 200, 5))
        .expect("the budget breaks");
    assert_eq!(r.phase, Phase::RolledBack);
    assert!(r.reason.unwrap().contains("5 of 100 calls failed"));
    let back = Rollout {
        phase: Phase::RolledBack,
        ..Rollout::new(plan("1,100%"), None, 0)
    };
    let back = Rollout {
        assigned: vec![vec!["m1".into()]],
        ..back
    };
    assert_eq!(back.want("m1"), Want::Revert { digest: digest(2) });
    assert_eq!(back.want("m2"), Want::Nothing);
}

#[test]
fn an_unhealthy_member_restarts_the_soak_and_a_dead_one_is_not_waited_for() {
    let members = fleet(2);
    let r = settle(Rollout::new(plan("1,100%"), None, 0), &members, 0, 0, 0);
    let mut s = seen(&r, &members, 600, 0, 0);
    s.reports.get_mut("m1").unwrap().state = Standing::Applying;
    let r = r.step(&s).expect("the soak is reset");
    assert!(r.soak.is_none());
    // m1 dies: wave 1 has no live member left to wait for.
    let only_m2: BTreeSet<String> = ["m2".to_string()].into();
    let r = settle(r, &only_m2, 700, 0, 0);
    let r = settle(r, &only_m2, 1700, 0, 0);
    assert_eq!(r.wave, 1);
    assert_eq!(r.assigned[1], vec!["m2".to_string()]);
}

#[test]
fn paused_and_final_rollouts_do_not_move() {
    let members = fleet(1);
    let mut r = Rollout::new(plan("100%"), None, 0);
    r.phase = Phase::Paused;
    assert!(r.step(&seen(&r, &members, 0, 0, 0)).is_none());
    r.phase = Phase::Running;
    let r = settle(r, &members, 0, 0, 0);
    let r = settle(r, &members, 5000, 0, 0);
    assert_eq!(r.phase, Phase::Succeeded);
    assert!(r.phase.is_final());
}

#[test]
fn a_selector_limits_the_waves_and_the_wishes_to_its_members() {
    let members: BTreeSet<String> = ["core-1", "edge-1", "edge-2", "edge-3"]
        .into_iter()
        .map(String::from)
        .collect();
    let edges = Selector {
        names: Vec::new(),
        name_prefix: Some("edge-".into()),
    };
    let named = Selector {
        names: vec!["core-1".into()],
        name_prefix: None,
    };
    assert!(Selector::default().selects("anyone"));
    assert!(edges.selects("edge-3") && !edges.selects("core-1"));
    assert!(named.selects("core-1") && !named.selects("edge-1"));
    let r = Rollout::new(
        Plan {
            members: edges,
            ..plan("1,100%")
        },
        None,
        0,
    );
    let r = settle(r, &members, 0, 0, 0);
    assert_eq!(
        r.assigned,
        vec![vec!["edge-1".to_string()]],
        "core-1 sorts first but is not selected"
    );
    let r = settle(r, &members, 1000, 0, 0);
    assert_eq!(r.assigned[1].len(), 2, "100% of the three edges");
    let r = settle(r, &members, 2000, 0, 0);
    assert_eq!(r.phase, Phase::Succeeded, "{:#?}", r.log);
    assert_eq!(r.want("core-1"), Want::Nothing, "not selected");
    assert_eq!(r.want("edge-2"), active(2));
}

#[test]
fn a_stopped_rollout_leaves_every_member_where_it_is() {
    let members = fleet(3);
    let r = settle(Rollout::new(plan("1,100%"), None, 0), &members, 0, 0, 0);
    let mut stopped = r.clone();
    stopped.stop(5, "its resource was deleted".into());
    assert!(stopped.phase.is_final());
    assert_eq!(stopped.reason.as_deref(), Some("its resource was deleted"));
    for m in &members {
        assert_eq!(stopped.want(m), Want::Nothing, "{m} keeps what it serves");
    }
    assert!(stopped
        .step(&seen(&stopped, &members, 9000, 0, 0))
        .is_none());
    let next = Rollout::new(plan("100%"), Some(&stopped), 10);
    assert_eq!(
        next.from, None,
        "a stopped rollout left no fleet-wide revision"
    );
}
