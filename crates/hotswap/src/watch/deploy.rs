//! One cycle's work for one source: build (or take the cached build),
//! validate, and hand the result to the server through its admin API, which
//! swaps it in place.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hotswap_core::{Artifact, Digest};
use hotswap_server::PlacedView;
use hotswap_wasm::WasmTier;

use super::build::{Scratch, Source};
use super::cycle::Cycle;
use hotswap_api::wire::ebpf::PlaceQuery;
use hotswap_api::wire::DeployQuery;
use hotswap_api::ErrorKind;

use crate::client::Conn;

/// How many builds each source keeps.
const KEPT_BUILDS: usize = 16;

/// A source and what was last deployed from it.
pub struct Watched {
    pub source: Source,
    /// The slot (or eBPF program) it goes to; a plugin's is learnt from its
    /// manifest on the first build when not given.
    pub target: Option<String>,
    /// Where an eBPF program goes.
    placement: Placement,
    deployed: Option<Digest>,
    /// The latest builds, oldest first, by the source's fingerprint: a
    /// save without a real change, or a change undone, builds nothing.
    built: VecDeque<(Digest, Artifact)>,
}

/// An eBPF program's hook (for its first load) and its name in the
/// object (when it has several); the server's defaults otherwise.
#[derive(Default)]
pub struct Placement {
    pub attach: Option<String>,
    pub program: Option<String>,
}

/// What a cycle needs besides its source.
pub struct Context<'a> {
    /// Validates plugins before they are sent.
    pub validator: &'a WasmTier,
    pub scratch: &'a Scratch,
    pub conn: &'a Conn,
}

impl Watched {
    pub fn new(source: Source, target: Option<String>, placement: Placement) -> Watched {
        let target = target.or_else(|| source.is_ebpf().then(|| source.program_name()));
        Watched {
            source,
            target,
            placement,
            deployed: None,
            built: VecDeque::new(),
        }
    }

    /// Builds, validates and deploys, prints the cycle's line, and says
    /// whether it ended with this source's code running.
    pub fn cycle(&mut self, changed: &str, cx: &Context) -> bool {
        let mut c = Cycle {
            source: self.source.path().display().to_string(),
            changed: changed.to_string(),
            ..Cycle::default()
        };
        if self.source.is_ebpf() {
            c.tier = "ebpf";
            c.program = self.target.clone();
        } else {
            c.tier = "wasm";
            c.slot = self.target.clone();
        }
        let ok = self.run(cx, &mut c);
        c.print(cx.conn.json);
        ok
    }

    fn run(&mut self, cx: &Context, c: &mut Cycle) -> bool {
        let Some(artifact) = self.artifact(cx.scratch, c) else {
            return false;
        };
        c.digest = Some(artifact.digest());
        if !self.source.is_ebpf() {
            // The ABI check runs here, before anything is sent.
            let info = match cx.validator.inspect(&artifact) {
                Ok(info) => info,
                Err(e) => return c.fail("validate", e.to_string()),
            };
            c.valid = true;
            c.version = Some(info.manifest.version.clone());
            let slot = self
                .target
                .get_or_insert_with(|| info.manifest.name.clone());
            c.slot = Some(slot.clone());
        }
        if self.deployed == Some(artifact.digest()) {
            c.unchanged = true;
            c.valid = true;
            return true;
        }
        let started = Instant::now();
        let deployed = if self.source.is_ebpf() {
            self.place(&artifact, cx.conn, c)
        } else {
            self.deploy(&artifact, cx.conn, c)
        };
        if deployed {
            c.swap_ms = Some(ms(started.elapsed()));
            self.deployed = Some(artifact.digest());
        }
        deployed
    }

    /// The eBPF program this watch placed, if it did.
    pub fn placed_program(&self) -> Option<&str> {
        if self.source.is_ebpf() && self.deployed.is_some() {
            self.target.as_deref()
        } else {
            None
        }
    }

    /// The build for the source as it is now: cached, or built and cached.
    fn artifact(&mut self, scratch: &Scratch, c: &mut Cycle) -> Option<Artifact> {
        let fingerprint = match self.source.fingerprint() {
            Ok(f) => f,
            Err(e) => {
                c.fail("build", format!("cannot read the source: {e}"));
                return None;
            }
        };
        if let Some((_, a)) = self.built.iter().find(|(f, _)| *f == fingerprint) {
            c.cached = true;
            return Some(a.clone());
        }
        // Failures are not cached: a build can fail for a reason outside
        // the source (a missing tool, the network), which a retry fixes.
        let started = Instant::now();
        let built = self.source.build(scratch);
        c.build_ms = ms(started.elapsed());
        match built {
            Ok(bytes) => {
                let artifact = Artifact::new(bytes);
                // Cached only if the source did not change while it built:
                // the compiler may have read the newer files, and the
                // change's own cycle (queued) builds them again anyway.
                if self.source.fingerprint().ok() == Some(fingerprint) {
                    if self.built.len() >= KEPT_BUILDS {
                        self.built.pop_front();
                    }
                    self.built.push_back((fingerprint, artifact.clone()));
                }
                Some(artifact)
            }
            Err(e) => {
                c.fail("build", format!("{e:#}"));
                None
            }
        }
    }

    /// A plugin: a new revision of its slot.
    fn deploy(&self, artifact: &Artifact, conn: &Conn, c: &mut Cycle) -> bool {
        let slot = self
            .target
            .as_deref()
            .expect("the slot is known once validated");
        let answer = conn
            .client()
            .deploy(slot, artifact.bytes(), &DeployQuery::default());
        match answer {
            Ok(a) => c.generation = Some(a.value.revision.generation),
            Err(e) => return c.fail("deploy", e.to_string()),
        }
        true
    }

    /// An eBPF program: loaded on its first cycle, replaced after, its maps
    /// kept. The kernel's verifier is its validation, so a refusal for what
    /// the object is counts as `validate`, not `deploy`.
    fn place(&self, artifact: &Artifact, conn: &Conn, c: &mut Cycle) -> bool {
        let name = self.target.as_deref().expect("an eBPF program is named");
        let query = PlaceQuery {
            attach: self.placement.attach.clone(),
            program: self.placement.program.clone(),
            ..PlaceQuery::default()
        };
        let placed: PlacedView = match conn.client().place(name, artifact.bytes(), &query) {
            Ok(a) => a.value,
            Err(e) => {
                use ErrorKind as K;
                let stage = match e.kind() {
                    Some(
                        K::InvalidObject
                        | K::NoProgram
                        | K::WrongProgramType
                        | K::VerifierRejected
                        | K::IncompatibleMap,
                    ) => "validate",
                    _ => "deploy",
                };
                return c.fail(stage, e.to_string());
            }
        };
        c.valid = true;
        c.attached = Some(placed.attached);
        c.revision = Some(placed.program.revision);
        c.kernel_swap_us = Some(placed.swap_us);
        c.maps = Some(placed.program.maps.iter().map(|m| m.name.clone()).collect());
        true
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}
