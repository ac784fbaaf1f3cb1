//! Loading a revision of a program, and putting it in its place: a new
//! attachment the first time, then a link update (XDP) or a write to the
//! dispatcher's slot (tracepoints), which the kernel performs atomically.

use std::path::Path;
use std::time::{Duration, Instant};

use aya::maps::{Map, MapData, ProgramArray};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::uprobe::UProbeScope;
use aya::programs::xdp::XdpLink;
use aya::programs::XdpMode;
use aya::programs::{ProgramError, RawTracePoint, TracePoint, UProbe, Xdp};

use crate::pins::{check_compatible, pinnable_maps, Namespace};
use crate::{EbpfError, Hook};

/// What a load or a replacement did.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The program's name in the object.
    pub program: String,
    /// From the object's bytes to the program serving (parse, maps,
    /// verifier, swap).
    pub took: Duration,
    /// The swap alone: the link update or the slot write.
    pub swap: Duration,
    /// Whether this attached it for the first time (else it replaced).
    pub attached: bool,
}

/// Loads `object`'s program `program` (or its only one) for `hook` in
/// namespace `ns`, reusing pinned maps, and puts it in place.
pub(crate) fn place(
    ns: &Namespace,
    object: &[u8],
    program: Option<&str>,
    hook: &Hook,
) -> Result<Placed, EbpfError> {
    let started = Instant::now();
    let parsed = aya_obj::Object::parse(object).map_err(|e| EbpfError::BadObject(e.to_string()))?;
    let maps = pinnable_maps(&parsed);
    check_compatible(ns, &maps)?;
    let name = pick_program(&parsed, program)?;
    ns.create()?;

    // Maps this revision pins for the first time are removed again if it
    // fails, so a failed revision leaves the namespace as it was.
    let new_pins: Vec<_> = maps
        .keys()
        .map(|m| ns.map(m))
        .filter(|p| !p.exists())
        .collect();
    let result = load_and_swap(ns, object, &maps, &name, hook);
    if result.is_err() {
        for pin in new_pins {
            let _ = std::fs::remove_file(pin);
        }
    }
    let (swap, attached) = result?;
    Ok(Placed {
        program: name,
        took: started.elapsed(),
        swap,
        attached,
    })
}

/// A hook reached through the dispatcher: load the revision as `$ty`, then
/// put it in the slot, attaching the dispatcher's `$dispatch` program with
/// `$attach` the first time. One sequence for every such hook; only the
/// program type and the attach call differ, and aya has no trait over them.
macro_rules! dispatched {
    ($ctx:expr, $program:expr, $ty:ty, $wants:literal, $dispatch:literal, |$p:ident| $attach:expr) => {{
        let (ns, name, hook) = $ctx;
        let prog: &mut $ty = $program
            .try_into()
            .map_err(|_| wrong_type(name, hook, $wants))?;
        prog.load().map_err(|e| verifier(name, e))?;
        let fd = prog.fd().map_err(|e| attach_err(name, hook, e))?;
        through_dispatcher(
            ns,
            hook,
            || fill_slot(ns, fd, name, hook),
            |d| {
                let $p: &mut $ty = d
                    .program_mut($dispatch)
                    .expect("the dispatcher has it")
                    .try_into()
                    .expect($wants);
                $p.load().map_err(|e| verifier($dispatch, e))?;
                let id = $attach.map_err(|e| attach_err($dispatch, hook, e))?;
                let link = $p
                    .take_link(id)
                    .map_err(|e| attach_err($dispatch, hook, e))?;
                fd_link(link).map_err(|e| attach_err_s($dispatch, hook, e))
            },
        )
    }};
}

/// A program's link as a kernel link, which can be pinned.
fn fd_link<L: TryInto<FdLink>>(link: L) -> Result<FdLink, String>
where
    L::Error: std::fmt::Display,
{
    link.try_into().map_err(|e| e.to_string())
}

fn load_and_swap(
    ns: &Namespace,
    object: &[u8],
    maps: &std::collections::BTreeMap<String, &aya_obj::Map>,
    name: &str,
    hook: &Hook,
) -> Result<(Duration, bool), EbpfError> {
    let paths: Vec<(String, std::path::PathBuf)> =
        maps.keys().map(|m| (m.clone(), ns.map(m))).collect();
    let mut revision =
        crate::loader::load(object, &paths).map_err(|e| EbpfError::BadObject(error_chain(&e)))?;
    let program = revision
        .program_mut(name)
        .ok_or_else(|| EbpfError::NoProgram(format!("no program `{name}` in the object")))?;
    match hook {
        Hook::Xdp { interface } => {
            let xdp: &mut Xdp = program
                .try_into()
                .map_err(|_| wrong_type(name, hook, "an XDP program (SEC(\"xdp\"))"))?;
            xdp.load().map_err(|e| verifier(name, e))?;
            place_xdp(ns, xdp, interface, name, hook)
        }
        Hook::Tracepoint { category, name: tp } => dispatched!(
            (ns, name, hook),
            program,
            TracePoint,
            "a tracepoint program (SEC(\"tracepoint\"))",
            "hs_dispatch_tracepoint",
            |p| p.attach(category, tp)
        ),
        Hook::Uprobe { target, symbol } => dispatched!(
            (ns, name, hook),
            program,
            UProbe,
            "a uprobe program (SEC(\"uprobe\"))",
            "hs_dispatch_uprobe",
            |p| p.attach(symbol.as_str(), target, UProbeScope::AllProcesses)
        ),
        Hook::RawTracepoint { name: tp } => dispatched!(
            (ns, name, hook),
            program,
            RawTracePoint,
            "a raw tracepoint program (SEC(\"raw_tracepoint\"))",
            "hs_dispatch_raw_tracepoint",
            |p| p.attach(tp)
        ),
    }
}

/// XDP: the first revision attaches and pins the link; later ones update it.
fn place_xdp(
    ns: &Namespace,
    xdp: &mut Xdp,
    interface: &str,
    name: &str,
    hook: &Hook,
) -> Result<(Duration, bool), EbpfError> {
    let link_path = ns.link();
    if link_path.exists() {
        let pinned = PinnedLink::from_pin(&link_path)
            .map_err(|e| attach_err_s(name, hook, format!("cannot open the pinned link: {e}")))?;
        let link = XdpLink::try_from(FdLink::from(pinned))
            .map_err(|e| attach_err_s(name, hook, format!("the pinned link is not XDP: {e}")))?;
        let started = Instant::now();
        let id = xdp
            .attach_to_link(link)
            .map_err(|e| attach_err(name, hook, e))?;
        let swap = started.elapsed();
        // The link stays pinned; this revision's handle on it may go.
        let _ = xdp.take_link(id);
        return Ok((swap, false));
    }
    let started = Instant::now();
    let id = xdp
        .attach(interface, XdpMode::default())
        .map_err(|e| attach_err(name, hook, e))?;
    let swap = started.elapsed();
    let link: FdLink = xdp
        .take_link(id)
        .map_err(|e| attach_err(name, hook, e))?
        .try_into()
        .map_err(|e| {
            attach_err_s(
                name,
                hook,
                format!("not a kernel link (netlink XDP cannot be updated atomically): {e}"),
            )
        })?;
    link.pin(&link_path)
        .map_err(|e| attach_err_s(name, hook, format!("cannot pin the link: {e}")))?;
    Ok((swap, true))
}

/// Puts a revision in the dispatcher's slot with `fill`, attaching
/// hotswap's dispatcher for `hook` first if it is not attached yet: loaded
/// with its slot and miss counter pinned, filled, and only then attached
/// (so not one call finds the slot empty), its link pinned. Returns the
/// slot write's duration and whether it attached the dispatcher now.
fn through_dispatcher(
    ns: &Namespace,
    hook: &Hook,
    fill: impl FnOnce() -> Result<Duration, EbpfError>,
    attach: impl FnOnce(&mut aya::Ebpf) -> Result<FdLink, EbpfError>,
) -> Result<(Duration, bool), EbpfError> {
    if ns.link().exists() && ns.slot().exists() {
        return Ok((fill()?, false));
    }
    let slot = ns.slot();
    let missed = ns.missed();
    let pins = [
        ("hs_slot".to_string(), slot.clone()),
        ("hs_missed".to_string(), missed.clone()),
    ];
    let attached = crate::loader::load(crate::objects::DISPATCH, &pins)
        .map_err(|e| EbpfError::BadObject(format!("hotswap's dispatcher: {}", error_chain(&e))))
        .and_then(|mut dispatcher| {
            let swap = fill()?;
            let link = attach(&mut dispatcher)?;
            link.pin(ns.link()).map_err(|e| {
                attach_err_s("hs_dispatch", hook, format!("cannot pin the link: {e}"))
            })?;
            Ok(swap)
        });
    match attached {
        Ok(swap) => Ok((swap, true)),
        Err(e) => {
            for pin in [slot, missed] {
                let _ = std::fs::remove_file(pin);
            }
            Err(e)
        }
    }
}

/// Puts the program in the dispatcher's slot: one map update, atomic.
fn fill_slot(
    ns: &Namespace,
    fd: &aya::programs::ProgramFd,
    name: &str,
    hook: &Hook,
) -> Result<Duration, EbpfError> {
    let data = MapData::from_pin(ns.slot()).map_err(|e| {
        attach_err_s(
            name,
            hook,
            format!("cannot open the dispatcher's slot: {e}"),
        )
    })?;
    let map = Map::from_map_data(data)
        .map_err(|e| attach_err_s(name, hook, format!("the dispatcher's slot: {e}")))?;
    let mut slot: ProgramArray<MapData> = ProgramArray::try_from(map)
        .map_err(|e| attach_err_s(name, hook, format!("the dispatcher's slot: {e}")))?;
    let started = Instant::now();
    slot.set(0, fd, 0).map_err(|e| {
        attach_err_s(
            name,
            hook,
            format!("the kernel refused it for the slot: {e}"),
        )
    })?;
    Ok(started.elapsed())
}

/// The program to load: the one named, or the object's only one.
fn pick_program(object: &aya_obj::Object, wanted: Option<&str>) -> Result<String, EbpfError> {
    let names: Vec<&String> = object.programs.keys().collect();
    match wanted {
        Some(w) if names.iter().any(|n| *n == w) => Ok(w.to_string()),
        Some(w) => Err(EbpfError::NoProgram(format!(
            "no program `{w}` in the object; it has {}",
            list(&names)
        ))),
        None if names.len() == 1 => Ok(names[0].clone()),
        None => Err(EbpfError::NoProgram(format!(
            "the object has {} programs ({}); name one with --program",
            names.len(),
            list(&names)
        ))),
    }
}

fn list(names: &[&String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn wrong_type(program: &str, hook: &Hook, wants: &'static str) -> EbpfError {
    EbpfError::WrongType {
        program: program.to_string(),
        kind: "different".into(),
        hook: hook.to_string(),
        wants,
    }
}

/// A load failure: the verifier's log when there is one (its tail holds
/// the reason), else the error.
fn verifier(program: &str, e: ProgramError) -> EbpfError {
    match e {
        ProgramError::LoadError { verifier_log, .. } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            EbpfError::Verifier {
                program: program.to_string(),
                log: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            }
        }
        other => EbpfError::Verifier {
            program: program.to_string(),
            log: error_chain(&other),
        },
    }
}

fn attach_err(program: &str, hook: &Hook, e: ProgramError) -> EbpfError {
    attach_err_s(program, hook, error_chain(&e))
}

fn attach_err_s(program: &str, hook: &Hook, reason: String) -> EbpfError {
    EbpfError::Attach {
        program: program.to_string(),
        hook: hook.to_string(),
        reason,
    }
}

/// An error and its sources, one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Reads a pinned program-array slot's miss counter.
pub(crate) fn missed(ns: &Namespace) -> Result<u64, EbpfError> {
    let path = ns.missed();
    let err = |e: &dyn std::fmt::Display| EbpfError::Map {
        map: "hs_missed".into(),
        reason: e.to_string(),
    };
    let data = MapData::from_pin(&path).map_err(|e| err(&e))?;
    let map = Map::from_map_data(data).map_err(|e| err(&e))?;
    let array: aya::maps::Array<MapData, u64> =
        aya::maps::Array::try_from(map).map_err(|e| err(&e))?;
    array.get(&0, 0).map_err(|e| err(&e))
}

/// Whether `path` is on a bpffs mount.
pub(crate) fn on_bpffs(path: &Path) -> bool {
    const BPF_FS_MAGIC: i64 = 0xcafe4a11;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid C string and `st` a zeroed struct statfs that
    // the call fills in.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}

/// The kernel id of the program namespace `ns` runs now: the one in the
/// dispatcher's slot, or the one its XDP link runs.
pub(crate) fn running(ns: &Namespace) -> std::io::Result<u32> {
    use std::os::fd::AsFd;
    if ns.slot().exists() {
        let slot = crate::sys::obj_get(&ns.slot())?;
        let mut id = [0u8; 4];
        crate::sys::lookup(slot.as_fd(), &0u32.to_ne_bytes(), &mut id)?;
        return Ok(u32::from_ne_bytes(id));
    }
    crate::sys::link_program(crate::sys::obj_get(&ns.link())?.as_fd())
}
