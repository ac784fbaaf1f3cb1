//! `hotswap ebpf ...`: load, replace, list and unload eBPF programs in a
//! running `hotswap serve`, read and write their maps, follow their events.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use hotswap_api::query_string;
use hotswap_api::wire::ebpf::{
    Deleted, DumpQuery, EntryBody, KeyQuery, MapEventsQuery, PlaceExpect, PlaceQuery, Unloaded,
};
use hotswap_ebpf::{as_text, Entry, MapSummary};
use hotswap_server::{PlacedView, ProgramView};
use serde_json::Value;

use crate::client::{finish, follow, read_signature, request, segment, Conn, Reply};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Load a program and attach it to a hook (a first load).
    Load(Load),
    /// Replace a loaded program's running revision, atomically, keeping its maps.
    Replace(Replace),
    /// List the loaded programs (or show one).
    List(List),
    /// Read and write a program's map entries: its live policy and counters.
    #[command(subcommand)]
    Map(MapCommand),
    /// Follow a program's ring-buffer events (one per line; JSON lines with --json).
    Events(EventsArgs),
    /// Detach a program and remove its pins (its maps go with it).
    Unload(Unload),
}

/// The object to load: a file, or one of the built-in examples.
#[derive(clap::Args)]
pub struct Object {
    /// A BPF object (`.o`, built with clang -target bpf -g), or a built-in
    /// example: example:tracer-v1, example:tracer-v2, example:xdp-filter-v1,
    /// example:xdp-filter-v2.
    object: String,
    /// The program in the object, when it has several.
    #[arg(long, value_name = "NAME")]
    program: Option<String>,
    /// The object's signature file (from `hotswap sign`), when the server
    /// requires signatures.
    #[arg(long, value_name = "FILE")]
    signature: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct Load {
    /// The program's name in hotswap (its pin directory).
    name: String,
    #[command(flatten)]
    object: Object,
    /// Where to attach it: tracepoint:CATEGORY:NAME, raw_tracepoint:NAME,
    /// uprobe:/ABSOLUTE/PATH:SYMBOL or xdp:INTERFACE.
    #[arg(long, value_name = "HOOK")]
    attach: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args)]
pub struct Replace {
    /// The loaded program to replace.
    name: String,
    #[command(flatten)]
    object: Object,
    /// Its hook, only for a program hotswap has no record of (pinned by
    /// another tool or an older hotswap); otherwise the running one's.
    #[arg(long, value_name = "HOOK")]
    attach: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args)]
pub struct List {
    /// One program; all of them when left out.
    name: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Subcommand)]
pub enum MapCommand {
    /// Read one entry: KEY as the map's key type says (a number, an IPv4
    /// address, a string, or JSON for a struct).
    Get(MapKey),
    /// Write one entry; the program sees it on its next run.
    Set(MapSet),
    /// Delete one entry.
    Delete(MapKey),
    /// Every entry (up to --limit).
    Dump(MapDump),
}

#[derive(clap::Args)]
pub struct MapKey {
    /// The program.
    name: String,
    /// Its map.
    map: String,
    /// The key.
    #[arg(allow_hyphen_values = true)]
    key: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args)]
pub struct MapSet {
    /// The program.
    name: String,
    /// Its map.
    map: String,
    /// The key.
    #[arg(allow_hyphen_values = true)]
    key: String,
    /// The value, typed as the map's value type says.
    #[arg(allow_hyphen_values = true)]
    value: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args)]
pub struct MapDump {
    /// The program.
    name: String,
    /// Its map.
    map: String,
    /// Most entries to show.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args)]
pub struct EventsArgs {
    /// The program.
    name: String,
    /// The ring buffer, when the program has several.
    #[arg(long)]
    map: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args)]
pub struct Unload {
    /// The program.
    name: String,
    #[command(flatten)]
    conn: Conn,
}

pub fn main(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Load(a) => place(
            &a.name,
            &a.object,
            Some(&a.attach),
            PlaceExpect::New,
            &a.conn,
        ),
        Command::Replace(a) => place(
            &a.name,
            &a.object,
            a.attach.as_deref(),
            PlaceExpect::Existing,
            &a.conn,
        ),
        Command::List(a) => list(a),
        Command::Map(MapCommand::Get(a)) => {
            let path = entry_path(&a.name, &a.map, Some(&a.key));
            let answer = request(&a.conn, "GET", &path, None).and_then(Reply::read);
            finish(&a.conn, answer, entry_line)
        }
        Command::Map(MapCommand::Set(a)) => {
            let body = EntryBody {
                key: a.key.clone().into(),
                value: a.value.clone().into(),
            };
            let body = serde_json::to_string(&body).expect("an entry serialises");
            let path = entry_path(&a.name, &a.map, None);
            let answer =
                request(&a.conn, "PUT", &path, Some(body.as_bytes())).and_then(Reply::read);
            finish(&a.conn, answer, entry_line)
        }
        Command::Map(MapCommand::Delete(a)) => {
            let path = entry_path(&a.name, &a.map, Some(&a.key));
            let answer = request(&a.conn, "DELETE", &path, None).and_then(Reply::read);
            finish(&a.conn, answer, |d: &Deleted| {
                if d.deleted {
                    format!("deleted {} from `{}`", a.key, a.map)
                } else {
                    format!("`{}` had no entry for {}", a.map, a.key)
                }
            })
        }
        Command::Map(MapCommand::Dump(a)) => {
            let query = query_string(&DumpQuery {
                limit: Some(a.limit),
            });
            let path = format!(
                "/v1/ebpf/{}/maps/{}{query}",
                segment(&a.name),
                segment(&a.map)
            );
            let answer = request(&a.conn, "GET", &path, None).and_then(Reply::read);
            finish(&a.conn, answer, dump_table)
        }
        Command::Events(a) => {
            let query = query_string(&MapEventsQuery { map: a.map.clone() });
            let path = format!("/v1/ebpf/{}/events{query}", segment(&a.name));
            let json = a.conn.json;
            follow(&a.conn, &path, |kind, data| {
                Some(match kind {
                    "lagged" if json => format!("{{\"lagged\": {data}}}"),
                    "lagged" => format!("(missed {data} events: this client fell behind)"),
                    _ if json => data.to_string(),
                    _ => event_text(&serde_json::from_str(data).unwrap_or(Value::Null)),
                })
            })
        }
        Command::Unload(a) => {
            let answer = request(
                &a.conn,
                "DELETE",
                &format!("/v1/ebpf/{}", segment(&a.name)),
                None,
            )
            .and_then(Reply::read);
            finish(&a.conn, answer, |_: &Unloaded| {
                format!("unloaded `{}`: detached, its pins and maps removed", a.name)
            })
        }
    }
}

fn place(
    name: &str,
    object: &Object,
    attach: Option<&str>,
    expect: PlaceExpect,
    conn: &Conn,
) -> anyhow::Result<ExitCode> {
    let bytes = read_object(&object.object)?;
    let query = PlaceQuery {
        attach: attach.map(str::to_string),
        program: object.program.clone(),
        expect: Some(expect),
        signature: read_signature(object.signature.as_deref())?,
    };
    let answer = conn.client().place(name, &bytes, &query);
    finish(conn, answer, |p: &PlacedView| {
        let v = &p.program;
        let verb = if p.attached { "attached" } else { "replaced" };
        format!(
            "{verb} `{}` ({}) on {}: revision {}, kernel id {}, sha256:{}; {:.1} ms in all (verifier included), the swap {} µs",
            v.name,
            v.program,
            v.hook,
            v.revision,
            v.kernel_id.map_or("-".into(), |i| i.to_string()),
            &v.sha256[..v.sha256.len().min(12)],
            p.took_us as f64 / 1000.0,
            p.swap_us
        )
    })
}

/// An object file's bytes, or a built-in example's.
fn read_object(spec: &str) -> anyhow::Result<Vec<u8>> {
    use hotswap_ebpf::examples;
    if let Some(name) = spec.strip_prefix("example:") {
        let bytes = match name {
            "tracer-v1" => examples::TRACER_V1,
            "tracer-v2" => examples::TRACER_V2,
            "xdp-filter-v1" => examples::XDP_FILTER_V1,
            "xdp-filter-v2" => examples::XDP_FILTER_V2,
            other => bail!(
                "no example `{other}`: there are tracer-v1, tracer-v2, xdp-filter-v1, xdp-filter-v2"
            ),
        };
        return Ok(bytes.to_vec());
    }
    let bytes = std::fs::read(spec).with_context(|| format!("cannot read {spec}"))?;
    if !bytes.starts_with(b"\x7fELF") {
        bail!("{spec} is not an ELF object: build it with `clang -g -O2 -target bpf -c prog.bpf.c -o prog.o`");
    }
    Ok(bytes)
}

fn list(a: List) -> anyhow::Result<ExitCode> {
    if let Some(name) = &a.name {
        let answer = request(&a.conn, "GET", &format!("/v1/ebpf/{}", segment(name)), None)
            .and_then(Reply::read);
        return finish(&a.conn, answer, |p: &ProgramView| {
            table(std::slice::from_ref(p))
        });
    }
    let answer = request(&a.conn, "GET", "/v1/ebpf", None).and_then(Reply::read);
    finish(&a.conn, answer, |l: &ProgramList| table(&l.programs))
}

type ProgramList = hotswap_api::wire::ebpf::ProgramList<ProgramView>;
type Dump = hotswap_api::wire::ebpf::MapDump<MapSummary, Entry>;

fn table(programs: &[ProgramView]) -> String {
    if programs.is_empty() {
        return "no eBPF programs loaded".into();
    }
    let mut out = format!(
        "{:<16} {:<8} {:<36} {:<4} {:<9} {:<6} MAPS",
        "NAME", "STATE", "HOOK", "REV", "KERNEL_ID", "MISSED"
    );
    for p in programs {
        let maps: Vec<String> = p
            .maps
            .iter()
            .map(|m| format!("{} ({})", m.name, m.kind))
            .collect();
        out.push_str(&format!(
            "\n{:<16} {:<8} {:<36} {:<4} {:<9} {:<6} {}",
            p.name,
            p.state,
            p.hook,
            p.revision,
            p.kernel_id.map_or("-".into(), |i| i.to_string()),
            p.missed,
            maps.join(", ")
        ));
    }
    out
}

fn entry_path(name: &str, map: &str, key: Option<&str>) -> String {
    let query = key.map(|k| KeyQuery { key: k.to_string() });
    let query = query.as_ref().map(query_string).unwrap_or_default();
    format!(
        "/v1/ebpf/{}/maps/{}/entry{query}",
        segment(name),
        segment(map)
    )
}

fn entry_line(e: &Entry) -> String {
    let mut line = format!("{} = {}", as_text(&e.key), as_text(&e.value));
    if let Some(per_cpu) = &e.per_cpu {
        let cpus: Vec<String> = per_cpu.iter().map(as_text).collect();
        line.push_str(&format!("  (per CPU: {})", cpus.join(" ")));
    }
    line
}

fn dump_table(d: &Dump) -> String {
    let m = &d.map;
    let mut out = format!(
        "map `{}`: {}, {} → {}, {} of {} entries",
        m.name,
        m.kind,
        m.key,
        m.value,
        d.entries.len(),
        m.max_entries
    );
    for e in &d.entries {
        out.push_str(&format!("\n  {}", entry_line(e)));
    }
    if d.truncated {
        out.push_str("\n  ... (more: raise --limit)");
    }
    out
}

/// An event as `field=value ...`, or as it is when it is not a struct.
fn event_text(v: &Value) -> String {
    match v {
        Value::Object(fields) => fields
            .iter()
            .map(|(k, v)| format!("{k}={}", as_text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => as_text(other),
    }
}
