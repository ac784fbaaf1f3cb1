//! The swap protocol's promises, checked with a toy tier whose calls can be
//! held open: in-flight calls finish on their revision, teardown happens on
//! the cleanup thread after the last call, never more than two live
//! revisions, and an event for every transition.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hotswap_core::*;

/// Artifacts are `name` or `name:hold`; a call to a `hold` revision says so
/// on `entered` once it is running on that revision, then blocks until the
/// test sends on the gate.
struct Toy {
    gate: Mutex<Option<Receiver<()>>>,
    entered: Sender<()>,
    retired: Sender<(String, String)>,
}

struct ToyCode {
    name: String,
    /// `ok` (prefixes every value with the name), `fail` or `slow`.
    migrate: Option<String>,
    hold: Option<Mutex<Receiver<()>>>,
    entered: Sender<()>,
    retired: Sender<(String, String)>,
}

impl Tier for Toy {
    type Code = ToyCode;

    fn validate(&self, a: &Artifact) -> Result<Manifest, TierError> {
        let text = std::str::from_utf8(a.bytes())?;
        if text.starts_with("bad") {
            return Err("toy artifacts must not start with `bad`".into());
        }
        let name = text.split(':').next().unwrap().to_string();
        let schema = text.split(':').find_map(|p| p.strip_prefix("schema="));
        Ok(Manifest {
            name: "toy".into(),
            version: name,
            abi: 1,
            state_schema: schema.map_or(0, |s| s.parse().unwrap()),
        })
    }

    fn prepare(&self, a: &Artifact, m: &Manifest, _: &SlotContext) -> Result<ToyCode, TierError> {
        if m.version == "unready" {
            return Err("toy refuses to start".into());
        }
        let hold = a.bytes().ends_with(b":hold");
        let text = std::str::from_utf8(a.bytes())?;
        let migrate = text.split(':').find_map(|p| p.strip_prefix("migrate="));
        Ok(ToyCode {
            migrate: migrate.map(str::to_string),
            name: m.version.clone(),
            hold: hold.then(|| Mutex::new(self.gate.lock().unwrap().take().expect("one gate"))),
            entered: self.entered.clone(),
            retired: self.retired.clone(),
        })
    }
}

impl Code for ToyCode {
    fn call(&self, _input: &[u8], out: &mut Vec<u8>) -> Result<(), CallError> {
        if let Some(gate) = &self.hold {
            let _ = self.entered.send(());
            gate.lock().unwrap().recv().ok();
        }
        if self.name.starts_with("failing") {
            return Err(CallError::Plugin("this revision fails every call".into()));
        }
        out.extend_from_slice(self.name.as_bytes());
        Ok(())
    }

    fn can_migrate(&self) -> bool {
        self.migrate.is_some()
    }

    fn migrate(
        &self,
        _from: u32,
        state: Arc<dyn KvStore>,
        deadline: Duration,
    ) -> Result<(), CallError> {
        match self.migrate.as_deref() {
            Some("fail") => Err(CallError::Plugin("cannot read this state".into())),
            // Like native code, which no deadline interrupts: it finishes,
            // too late.
            Some("slow") => {
                std::thread::sleep(deadline + Duration::from_millis(20));
                Ok(())
            }
            _ => {
                for key in keys(&*state).collect::<Result<Vec<_>, _>>().unwrap() {
                    let old = state.get(&key).unwrap().unwrap();
                    let new = [self.name.as_bytes(), b":", &old].concat();
                    state.put(&key, &new).unwrap();
                }
                Ok(())
            }
        }
    }

    fn shutdown(&self) {
        if self.name == "panicky" {
            panic!("a shutdown hook that panics");
        }
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        // The test may be done listening; that is not this revision's problem.
        let _ = self.retired.send((self.name.clone(), thread));
    }
}

struct Harness {
    slot: Arc<Slot<Toy>>,
    gate: Sender<()>,
    entered: Receiver<()>,
    retired: Receiver<(String, String)>,
}

fn toy_slot(options: SlotOptions) -> Harness {
    let (gate_tx, gate_rx) = channel();
    let (entered_tx, entered_rx) = channel();
    let (retired_tx, retired_rx) = channel();
    let tier = Arc::new(Toy {
        gate: Mutex::new(Some(gate_rx)),
        entered: entered_tx,
        retired: retired_tx,
    });
    let slot = Slot::with_options(
        "toy",
        tier,
        Arc::new(MemoryKv::default()),
        EventBus::new(),
        options,
    );
    Harness {
        slot: Arc::new(slot),
        gate: gate_tx,
        entered: entered_rx,
        retired: retired_rx,
    }
}

/// Starts a call on the active (holding) revision and returns once it is
/// running there.
fn hold_a_call(h: &Harness) -> std::thread::JoinHandle<Result<Vec<u8>, CallError>> {
    let slot = h.slot.clone();
    let call = std::thread::spawn(move || slot.call(b""));
    h.entered.recv_timeout(WAIT).expect("the held call started");
    call
}

fn art(s: &str) -> Artifact {
    Artifact::new(s.as_bytes().to_vec())
}

/// The digest of `art(s)`: how a caller names the revision it means.
fn d(s: &str) -> Digest {
    art(s).digest()
}

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn an_in_flight_call_finishes_on_its_revision_and_teardown_waits_for_it() {
    let h = toy_slot(SlotOptions::default());
    let (slot, gate, retired) = (&h.slot, &h.gate, &h.retired);
    slot.deploy(art("v1:hold"), None).unwrap();
    let held = hold_a_call(&h);
    slot.deploy(art("v2"), None).unwrap();
    assert_eq!(
        slot.call(b"").unwrap(),
        b"v2",
        "new calls go to the new revision at once"
    );
    assert_eq!(
        slot.status().previous.unwrap().state,
        RevisionState::Draining
    );
    assert!(
        !slot.wait_drained(Duration::from_millis(50)),
        "v1 cannot retire while its call runs"
    );
    assert!(
        retired.try_recv().is_err(),
        "v1 was shut down under a running call"
    );

    gate.send(()).unwrap();
    assert_eq!(
        held.join().unwrap().unwrap(),
        b"v1",
        "the call finished on the revision it started on"
    );
    assert!(slot.wait_drained(WAIT));
    let (name, thread) = retired.recv_timeout(WAIT).unwrap();
    assert_eq!(name, "v1");
    assert_eq!(
        thread, "hotswap-reaper",
        "teardown ran on the cleanup thread, not the caller's"
    );
    assert_eq!(
        slot.status().previous.unwrap().state,
        RevisionState::Retired
    );
}

#[test]
fn a_third_live_revision_is_refused_until_the_oldest_drains() {
    let h = toy_slot(SlotOptions {
        drain_timeout: Duration::from_millis(100),
        ..SlotOptions::default()
    });
    let (slot, gate) = (&h.slot, &h.gate);
    slot.deploy(art("v1:hold"), None).unwrap();
    let held = hold_a_call(&h);
    slot.deploy(art("v2"), None).unwrap();
    let err = slot.deploy(art("v3"), None).unwrap_err();
    assert!(matches!(err, DeployError::StillDraining { .. }), "{err}");
    assert_eq!(
        slot.call(b"").unwrap(),
        b"v2",
        "the refused deploy changed nothing"
    );
    gate.send(()).unwrap();
    assert_eq!(held.join().unwrap().unwrap(), b"v1");
    slot.deploy(art("v3"), None)
        .expect("allowed once v1 has drained");
    assert_eq!(slot.call(b"").unwrap(), b"v3");
}

#[test]
fn every_transition_is_an_event() {
    let h = toy_slot(SlotOptions::default());
    let slot = &h.slot;
    let mut events = slot.events().subscribe();
    slot.deploy(art("v1"), None).unwrap();
    slot.deploy(art("v2"), None).unwrap();
    assert!(slot.deploy(art("bad"), None).is_err());
    assert!(slot.deploy(art("unready"), None).is_err());
    assert!(slot.deploy(art("v3"), Some(Digest::of(b"other"))).is_err());
    slot.rollback(&d("v2"), "operator said so").unwrap();
    assert!(slot.wait_drained(WAIT));

    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    let kinds: Vec<_> = seen
        .iter()
        .map(|e| (e.transition, e.version.as_deref().unwrap_or("-")))
        .collect();
    use Transition::*;
    let expected = [
        (Staged, "-"),
        (Validated, "v1"),
        (Prepared, "v1"),
        (Activated, "v1"),
        (Staged, "-"),
        (Validated, "v2"),
        (Prepared, "v2"),
        (Activated, "v2"),
        (Draining, "v1"),
        (Retired, "v1"),
        (Staged, "-"),
        (Failed, "-"),
        (Staged, "-"),
        (Validated, "unready"),
        (Failed, "unready"),
        (Staged, "-"),
        (Failed, "-"),
        (Prepared, "v1"),
        (Activated, "v1"),
        (RolledBack, "v2"),
        (Retired, "v2"),
    ];
    // Retirement runs on another thread, so its event may come a little
    // later than the deploy that caused it; compare without the retirements'
    // exact positions, then check they came after their draining.
    let without_retired: Vec<_> = kinds.iter().filter(|k| k.0 != Retired).cloned().collect();
    let expected_without: Vec<_> = expected
        .iter()
        .filter(|k| k.0 != Retired)
        .cloned()
        .collect();
    assert_eq!(without_retired, expected_without);
    assert_eq!(kinds.iter().filter(|k| k.0 == Retired).count(), 2);
    // A revision retires only after it was announced as draining or rolled back.
    for (i, e) in seen
        .iter()
        .enumerate()
        .filter(|(_, e)| e.transition == Retired)
    {
        assert!(
            seen[..i]
                .iter()
                .any(|d| d.generation == e.generation
                    && matches!(d.transition, Draining | RolledBack)),
            "{e:?} came before its revision was replaced"
        );
    }

    let failed: Vec<_> = seen.iter().filter(|e| e.transition == Failed).collect();
    assert_eq!(failed[0].phase, Phase::Validate);
    assert!(failed[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("must not start with `bad`"));
    assert_eq!(failed[1].phase, Phase::Prepare);
    assert!(failed[1]
        .reason
        .as_deref()
        .unwrap()
        .contains("refuses to start"));
    assert_eq!(failed[2].phase, Phase::Stage);
    assert!(failed[2]
        .reason
        .as_deref()
        .unwrap()
        .contains("digest mismatch"));
    let rolled = seen.iter().find(|e| e.transition == RolledBack).unwrap();
    assert_eq!(rolled.reason.as_deref(), Some("operator said so"));
    for e in &seen {
        assert_eq!(e.slot, "toy");
        if matches!(e.transition, Validated | Prepared | Activated) {
            assert!(e.duration_us.is_some(), "{e:?} has no duration");
        }
        if e.transition != Staged {
            assert!(e.digest.is_some(), "{e:?} has no digest");
        }
    }
    assert!(
        seen.windows(2).all(|w| w[0].seq < w[1].seq),
        "events are numbered in order"
    );
    assert_eq!(slot.events().recent().len(), seen.len());
}

#[test]
fn a_panicking_shutdown_does_not_wedge_the_slot() {
    let h = toy_slot(SlotOptions {
        drain_timeout: Duration::from_secs(5),
        ..SlotOptions::default()
    });
    let slot = &h.slot;
    slot.deploy(art("panicky"), None).unwrap();
    slot.deploy(art("v2"), None).unwrap();
    assert!(
        slot.wait_drained(WAIT),
        "the panicking revision was still counted live"
    );
    slot.deploy(art("v3"), None)
        .expect("deploys go on after a shutdown panicked");
    assert_eq!(slot.call(b"").unwrap(), b"v3");
}

#[test]
fn with_no_call_in_flight_the_swapping_thread_retires_the_old_revision() {
    let h = toy_slot(SlotOptions::default());
    h.slot.deploy(art("v1"), None).unwrap();
    assert_eq!(h.slot.call(b"").unwrap(), b"v1");
    h.slot.deploy(art("v2"), None).unwrap();
    // Already retired when the deploy returns: nothing to wait for.
    assert_eq!(
        h.slot.status().previous.unwrap().state,
        RevisionState::Retired
    );
    let (name, thread) = h
        .retired
        .try_recv()
        .expect("v1 was shut down during the deploy");
    assert_eq!(name, "v1");
    let me = std::thread::current().name().unwrap().to_string();
    assert_eq!(thread, me, "retired by the thread that swapped it out");
}

#[test]
fn a_canary_takes_its_weight_of_calls_and_keys_stick() {
    let h = toy_slot(SlotOptions::default());
    let slot = &h.slot;
    slot.deploy(art("v1"), None).unwrap();
    let info = slot.deploy_canary(art("v2"), None, 20, None).unwrap();
    assert_eq!(info.state, RevisionState::Canary);
    assert_eq!(info.weight, Some(20));
    let status = slot.status();
    assert_eq!(status.active.as_ref().unwrap().weight, Some(80));
    assert_eq!(status.canary.as_ref().unwrap().version, "v2");

    // Keyless calls split by weight: 20 % ± 2 % over 20 000 calls (the
    // standard deviation is 0.28 %, so this fails only if the split is wrong).
    let mut out = Vec::new();
    let calls = 20_000;
    let to_canary = (0..calls)
        .filter(|_| {
            out.clear();
            slot.call_routed(b"", &mut out, None).unwrap().canary
        })
        .count();
    let share = to_canary as f64 / calls as f64;
    assert!(
        (0.18..=0.22).contains(&share),
        "canary took {share:.3} of calls"
    );

    // Keyed calls stick: each key always lands on the same revision.
    for key in 0..500u64 {
        out.clear();
        let first = slot.call_routed(b"", &mut out, Some(key)).unwrap();
        for _ in 0..5 {
            out.clear();
            assert_eq!(slot.call_routed(b"", &mut out, Some(key)).unwrap(), first);
        }
    }
    let stats = slot.canary_stats().unwrap();
    assert_eq!(stats.weight, 20);
    assert_eq!(stats.errors, 0);
    assert!(stats.calls >= to_canary as u64);

    slot.set_canary_weight(&d("v2"), 100).unwrap();
    assert_eq!(
        slot.call(b"").unwrap(),
        b"v2",
        "weight 100 sends every call to the canary"
    );
    slot.set_canary_weight(&d("v2"), 0).unwrap();
    assert_eq!(slot.call(b"").unwrap(), b"v1", "weight 0 sends none");
}

#[test]
fn promote_and_rollback_end_a_canary() {
    let h = toy_slot(SlotOptions::default());
    let slot = &h.slot;
    slot.deploy(art("v1"), None).unwrap();

    // While a canary is on trial, the primary does not change underneath it.
    slot.deploy_canary(art("v2"), None, 50, None).unwrap();
    assert!(matches!(
        slot.deploy(art("v3"), None),
        Err(DeployError::Refused(StateError::CanaryInProgress))
    ));
    assert!(matches!(
        slot.deploy_canary(art("v3"), None, 5, None),
        Err(DeployError::Refused(StateError::CanaryInProgress))
    ));

    // Rolling back a canary takes it out; the primary never stopped.
    let active = slot.rollback(&d("v2"), "canary looked bad").unwrap();
    assert_eq!(active.version, "v1");
    assert!(slot.status().canary.is_none());
    assert_eq!(slot.call(b"").unwrap(), b"v1");
    assert!(slot.canary_stats().is_none());

    // Promoting makes the canary the primary; the old one is the previous.
    slot.deploy_canary(art("v4"), None, 10, None).unwrap();
    let promoted = slot.promote(&d("v4")).unwrap();
    assert_eq!(promoted.version, "v4");
    assert!(slot.wait_drained(WAIT));
    let status = slot.status();
    assert_eq!(status.active.unwrap().version, "v4");
    assert_eq!(status.previous.unwrap().version, "v1");
    assert!(status.canary.is_none());
    for _ in 0..100 {
        assert_eq!(slot.call(b"").unwrap(), b"v4");
    }
    assert!(matches!(
        slot.promote(&d("v4")),
        Err(DeployError::Refused(StateError::Stale { .. }))
    ));
    assert!(matches!(
        slot.promote(&d("v9")),
        Err(DeployError::Refused(StateError::NoCanary))
    ));
    assert!(matches!(
        slot.set_canary_weight(&d("v9"), 5),
        Err(DeployError::Refused(StateError::NoCanary))
    ));
}

#[test]
fn a_canary_needs_an_active_revision_and_counts_its_errors() {
    let h = toy_slot(SlotOptions::default());
    let slot = &h.slot;
    assert!(matches!(
        slot.deploy_canary(art("v1"), None, 10, None),
        Err(DeployError::Refused(StateError::NoActive))
    ));
    slot.deploy(art("v1"), None).unwrap();
    slot.deploy_canary(art("failing"), None, 100, None).unwrap();
    for _ in 0..10 {
        assert!(slot.call(b"").is_err());
    }
    let stats = slot.canary_stats().unwrap();
    assert_eq!((stats.calls, stats.errors), (10, 10));
}

#[test]
fn promotion_announces_before_it_retires() {
    let h = toy_slot(SlotOptions::default());
    let mut events = h.slot.events().subscribe();
    h.slot.deploy(art("v1"), None).unwrap();
    h.slot.deploy_canary(art("v2"), None, 10, None).unwrap();
    h.slot.promote(&d("v2")).unwrap();
    let mut order = Vec::new();
    while let Ok(e) = events.try_recv() {
        order.push((e.transition, e.version.unwrap_or_default()));
    }
    let tail: Vec<_> = order.iter().rev().take(3).rev().cloned().collect();
    use Transition::*;
    assert_eq!(
        tail,
        [
            (Activated, "v2".into()),
            (Draining, "v1".into()),
            (Retired, "v1".into())
        ],
        "{order:?}"
    );
}

/// A journal that keeps what it is given, as the store does, and can be
/// told to refuse.
#[derive(Default)]
struct Books {
    commits: Mutex<Vec<(String, SlotState, Vec<Event>)>>,
    /// The one slot's state it changes, as the store changes its own.
    kv: Option<Arc<MemoryKv>>,
    snapshot: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
    appended: Mutex<Vec<Event>>,
    refuse: std::sync::atomic::AtomicBool,
}

impl Journal for Books {
    fn commit(
        &self,
        slot: &str,
        state: &SlotState,
        events: &[Event],
        change: KvChange<'_>,
    ) -> Result<(), JournalError> {
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(JournalError("the disk is full".into()));
        }
        if let (Some(kv), KvChange::Migrate { writes, .. }) = (&self.kv, change) {
            let all = keys(&**kv).map(Result::unwrap);
            let before = all
                .map(|k| (k.clone(), kv.get(&k).unwrap().unwrap()))
                .collect();
            *self.snapshot.lock().unwrap() = before;
            for (k, v) in writes {
                match v {
                    Some(v) => kv.put(k, v).unwrap(),
                    None => drop(kv.delete(k).unwrap()),
                }
            }
        }
        if let (Some(kv), KvChange::Restore { .. }) = (&self.kv, change) {
            for k in keys(&**kv).collect::<Vec<_>>() {
                kv.delete(&k.unwrap()).unwrap();
            }
            for (k, v) in self.snapshot.lock().unwrap().drain(..) {
                kv.put(&k, &v).unwrap();
            }
        }
        let entry = (slot.to_string(), state.clone(), events.to_vec());
        self.commits.lock().unwrap().push(entry);
        Ok(())
    }

    fn append(&self, events: &[Event]) {
        self.appended.lock().unwrap().extend_from_slice(events);
    }
}

impl Books {
    /// Every event it holds, in order.
    fn history(&self) -> Vec<Event> {
        let mut all = self.appended.lock().unwrap().clone();
        for (_, _, events) in self.commits.lock().unwrap().iter() {
            all.extend_from_slice(events);
        }
        all.sort_by_key(|e| e.seq);
        all
    }
}

/// A toy tier nobody listens to.
fn toy() -> Arc<Toy> {
    let (_, gate) = channel();
    Arc::new(Toy {
        gate: Mutex::new(Some(gate)),
        entered: channel().0,
        retired: channel().0,
    })
}

fn restored(state: SlotState, have: &[&str], bus: EventBus) -> Slot<Toy> {
    let artifacts: Vec<Artifact> = have.iter().map(|n| art(n)).collect();
    Slot::restore(
        "toy",
        toy(),
        Arc::new(MemoryKv::default()),
        bus,
        SlotOptions::default(),
        state,
        |digest| {
            let found = artifacts.iter().find(|a| a.digest() == *digest);
            found.cloned().ok_or_else(|| "not on disk".to_string())
        },
    )
}

#[test]
fn a_slot_restores_as_it_was_with_one_event() {
    let books = Arc::new(Books::default());
    let slot = Slot::new(
        "toy",
        toy(),
        Arc::new(MemoryKv::default()),
        EventBus::with_journal(books.clone(), Vec::new()),
    );
    slot.deploy(art("v1"), None).unwrap();
    slot.deploy(art("v2"), None).unwrap();
    slot.rollback(&d("v2"), "v2 is slow").unwrap();
    assert!(slot.wait_drained(WAIT));
    slot.deploy_canary(art("v3"), None, 30, None).unwrap();
    let (before, state) = (slot.status(), slot.state());
    // The journal holds exactly what the slot shows.
    let last = books.commits.lock().unwrap().last().unwrap().1.clone();
    assert_eq!(last, state);
    assert_eq!(state.last_generation, 4);
    drop(slot);

    let history = books.history();
    let again = Arc::new(Books::default());
    let bus = EventBus::with_journal(again.clone(), history.clone());
    let slot = restored(state.clone(), &["v1", "v2", "v3"], bus);
    assert_eq!(
        slot.status(),
        before,
        "the same revisions, generations, canary"
    );
    assert_eq!(slot.state(), state);
    assert!(slot.status().fault.is_none());

    // Nothing re-enacted: the old history, then one `restored` event.
    let recent = slot.events().recent();
    assert_eq!(&recent[..history.len()], &history[..]);
    let new: Vec<_> = recent[history.len()..].to_vec();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0].transition, Transition::Restored);
    assert_eq!(new[0].seq, history.last().unwrap().seq + 1);
    assert_eq!(new[0].generation, Some(3));
    assert!(again.commits.lock().unwrap().is_empty());
    assert_eq!(again.appended.lock().unwrap().as_slice(), &new[..]);

    // It serves as before: the canary at its weight, the rest on v1.
    let mut out = Vec::new();
    let to_canary = (0..1000u64)
        .filter(|k| {
            out.clear();
            slot.call_routed(b"", &mut out, Some(*k)).unwrap().canary
        })
        .count();
    assert!((200..400).contains(&to_canary), "{to_canary} of 1000");
    // And the next change numbers on from the books.
    let promoted = slot.promote(&d("v3")).unwrap();
    assert_eq!(promoted.generation, 4);
    assert_eq!(slot.deploy(art("v5"), None).unwrap().generation, 5);
}

#[test]
fn a_revision_that_cannot_be_restored_leaves_the_slot_visibly_at_fault() {
    let books = Arc::new(Books::default());
    let slot = Slot::new(
        "toy",
        toy(),
        Arc::new(MemoryKv::default()),
        EventBus::with_journal(books.clone(), Vec::new()),
    );
    slot.deploy(art("v1"), None).unwrap();
    slot.deploy(art("v2"), None).unwrap();
    let state = slot.state();
    drop(slot);

    // v2's artifact is gone: v1 serves in its place, and everyone can see.
    let slot = restored(state.clone(), &["v1"], EventBus::new());
    let status = slot.status();
    assert_eq!(status.active.unwrap().state, RevisionState::Failed);
    assert_eq!(status.previous.unwrap().state, RevisionState::Active);
    let fault = status.fault.unwrap();
    assert!(
        fault.contains("v2") && fault.contains("not on disk"),
        "{fault}"
    );
    assert_eq!(slot.call(b"").unwrap(), b"v1");
    let event = slot.events().recent().pop().unwrap();
    assert_eq!(event.transition, Transition::Restored);
    assert!(event.reason.unwrap().contains("not on disk"));
    // Its books are untouched: the fault is not a transition.
    assert_eq!(slot.state(), state);
    // Rolling the broken revision back is the operator's way out: v1
    // activates properly, as a new generation, and the fault is over.
    let back = slot.rollback(&d("v2"), "v2 is damaged").unwrap();
    assert_eq!((back.version.as_str(), back.generation), ("v1", 3));
    assert!(slot.status().fault.is_none());
    assert_eq!(slot.call(b"").unwrap(), b"v1");
    // Rolling forward again to the missing bytes says why it cannot.
    assert!(matches!(
        slot.rollback(&d("v1"), "x"),
        Err(DeployError::ArtifactUnavailable { .. })
    ));
    slot.deploy(art("v3"), None).unwrap();
    assert!(slot.status().fault.is_none());

    // Nothing can serve: calls fail with the reason, not as "no revision".
    let slot = restored(state, &[], EventBus::new());
    match slot.call(b"") {
        Err(CallError::Unavailable { reason, .. }) => assert!(reason.contains("v2"), "{reason}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[test]
fn a_change_the_journal_cannot_record_changes_nothing() {
    let books = Arc::new(Books::default());
    let (retired_tx, retired) = channel();
    let tier = Arc::new(Toy {
        gate: Mutex::new(None),
        entered: channel().0,
        retired: retired_tx,
    });
    let bus = EventBus::with_journal(books.clone(), Vec::new());
    let slot = Slot::new("toy", tier, Arc::new(MemoryKv::default()), bus);
    slot.deploy(art("v1"), None).unwrap();
    let (before, state) = (slot.status(), slot.state());
    books
        .refuse
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let err = slot.deploy(art("v2"), None).unwrap_err();
    assert!(matches!(err, DeployError::Journal(_)), "{err}");
    assert_eq!(slot.status(), before);
    assert_eq!(slot.state(), state);
    assert_eq!(slot.call(b"").unwrap(), b"v1");
    // The prepared v2 was shut down, not leaked.
    assert_eq!(retired.recv_timeout(WAIT).unwrap().0, "v2");
    let last = slot.events().recent().pop().unwrap();
    assert_eq!(last.transition, Transition::Failed);
    assert!(last.reason.unwrap().contains("the disk is full"));
    // Once the journal works again, so do changes, numbered without a gap.
    books
        .refuse
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(slot.deploy(art("v2"), None).unwrap().generation, 2);
}

/// A slot over `kv` whose books apply migrations to it.
fn migrating_slot(kv: Arc<MemoryKv>, options: SlotOptions) -> (Arc<Slot<Toy>>, Arc<Books>) {
    let books = Arc::new(Books {
        kv: Some(kv.clone()),
        ..Books::default()
    });
    let bus = EventBus::with_journal(books.clone(), Vec::new());
    let slot = Slot::with_options("toy", toy(), kv, bus, options);
    (Arc::new(slot), books)
}

fn value(kv: &MemoryKv, key: &str) -> String {
    String::from_utf8(kv.get(key.as_bytes()).unwrap().unwrap()).unwrap()
}

#[test]
fn a_higher_schema_migrates_the_state_once_and_a_rollback_restores_it() {
    let kv = Arc::new(MemoryKv::default());
    let (slot, books) = migrating_slot(kv.clone(), SlotOptions::default());
    slot.deploy(art("v1:schema=1"), None).unwrap();
    kv.put(b"a", b"1").unwrap();
    kv.put(b"b", b"2").unwrap();
    slot.deploy(art("v2:schema=2:migrate=ok"), None).unwrap();
    assert_eq!(
        (value(&kv, "a"), value(&kv, "b")),
        ("v2:1".into(), "v2:2".into())
    );
    assert_eq!(slot.call(b"").unwrap(), b"v2");
    let migrated = books.history();
    let migrated = migrated
        .iter()
        .find(|e| e.transition == Transition::Migrated);
    let reason = migrated.expect("a migrated event").reason.clone().unwrap();
    assert!(
        reason.contains("from schema 1 to 2") && reason.contains("2 keys written"),
        "{reason}"
    );

    // Writes after the migration are v2's; a rollback returns to v1's state
    // as it was, byte for byte.
    kv.put(b"c", b"v2 only").unwrap();
    slot.rollback(&d("v2:schema=2:migrate=ok"), "v2 misreads")
        .unwrap();
    assert_eq!((value(&kv, "a"), value(&kv, "b")), ("1".into(), "2".into()));
    assert_eq!(kv.get(b"c").unwrap(), None);
    assert_eq!(slot.call(b"").unwrap(), b"v1");
}

#[test]
fn a_failed_migration_writes_nothing_and_the_old_revision_serves_on() {
    let kv = Arc::new(MemoryKv::default());
    let options = SlotOptions {
        pause_limit: Duration::from_millis(50),
        ..SlotOptions::default()
    };
    let (slot, _books) = migrating_slot(kv.clone(), options);
    slot.deploy(art("v1:schema=1"), None).unwrap();
    kv.put(b"a", b"1").unwrap();
    for (artifact, why) in [
        ("v2:schema=2:migrate=fail", "cannot read this state"),
        ("v2:schema=2:migrate=slow", "pause limit"),
        ("v2:schema=2", "does not export `hs_migrate`"),
    ] {
        let err = slot.deploy(art(artifact), None).unwrap_err();
        assert!(matches!(err, DeployError::Migrate(_)), "{err}");
        assert!(
            error_chain(&err).contains(why),
            "{artifact}: {}",
            error_chain(&err)
        );
        assert_eq!(slot.call(b"").unwrap(), b"v1", "after {artifact}");
        assert_eq!(value(&kv, "a"), "1");
        assert_eq!(slot.active().unwrap().version, "v1");
    }
}

#[test]
fn a_migration_without_books_is_refused() {
    let slot = Slot::new("toy", toy(), Arc::new(MemoryKv::default()), EventBus::new());
    slot.deploy(art("v1:schema=1"), None).unwrap();
    let err = slot
        .deploy(art("v2:schema=2:migrate=ok"), None)
        .unwrap_err();
    assert!(matches!(err, DeployError::Journal(_)), "{err}");
    assert_eq!(slot.call(b"").unwrap(), b"v1");
}

#[test]
fn calls_during_a_migration_wait_and_none_fails() {
    let kv = Arc::new(MemoryKv::default());
    let (slot, _books) = migrating_slot(kv.clone(), SlotOptions::default());
    slot.deploy(art("v1:schema=1"), None).unwrap();
    for i in 0..200u32 {
        kv.put(&i.to_be_bytes(), b"x").unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (slot, stop) = (slot.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u64, 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match slot.call(b"") {
                        Ok(_) => ok += 1,
                        Err(_) => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let mut schema = 1;
    for round in 0..20 {
        schema += 1;
        let name = format!("v{round}:schema={schema}:migrate=ok");
        slot.deploy(art(&name), None).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for c in callers {
        let (o, f) = c.join().unwrap();
        ok += o;
        failed += f;
    }
    assert_eq!(failed, 0, "{ok} calls succeeded");
    assert!(ok > 0);
    // Twenty migrations, each prefixing every value once.
    assert_eq!(value(&kv, "\0\0\0\0").matches(':').count(), 20);
}
