//! The admin API's client side: `hotswap deploy`, `status`, `rollback`,
//! `canary`, `promote` and `events` talk to a running `hotswap serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use hotswap_api::wire::{
    DeployQuery, EventsAnswer, ExpectQuery, RevisionAnswer, RollbackQuery, WeightBody,
};
pub(crate) use hotswap_api::{segment, Answered, Client, ClientError, Reply};
use hotswap_core::{Event, RevisionState, SlotStatus};

use crate::input::read_module;

/// Where the server is and how to prove who we are; shared by every client
/// subcommand.
#[derive(clap::Args)]
pub struct Conn {
    /// The admin API's address.
    #[arg(
        long,
        alias = "server",
        env = "HOTSWAP_ADMIN",
        default_value = "127.0.0.1:8081",
        value_name = "ADDR",
        global = true
    )]
    admin: String,
    /// Print the server's JSON answer instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

impl Conn {
    /// The admin API at `admin`.
    pub(crate) fn to(admin: String, json: bool) -> Conn {
        Conn { admin, json }
    }

    /// A client of the admin API, with the token of `HOTSWAP_TOKEN`.
    pub(crate) fn client(&self) -> Client {
        Client::new(&self.admin).with_token(std::env::var("HOTSWAP_TOKEN").ok())
    }
}

#[derive(clap::Args)]
pub struct Deploy {
    /// The slot to deploy to (created if new).
    slot: String,
    /// The plugin: a WebAssembly module (`.wasm`, or `.wat` text), a
    /// native shared library (`.so`, when the server enables the native
    /// tier; docs/native.md), or a plugin in an OCI registry,
    /// `oci://HOST/REPO@sha256:DIGEST` (a `:TAG` is resolved to its digest
    /// first), pulled with its signature (docs/oci.md).
    plugin: String,
    /// Refuse unless the plugin's sha256 is this.
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
    /// Deploy as a canary taking this percent of calls, beside the active
    /// revision, until promoted or rolled back.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    canary: Option<u8>,
    /// The plugin's signature file (from `hotswap sign`).
    #[arg(long, value_name = "FILE")]
    signature: Option<PathBuf>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args)]
pub struct CanaryWeight {
    /// The slot whose canary to adjust.
    slot: String,
    /// The canary's new share of calls.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    weight: u8,
    /// Act only if the canary is still this revision (its sha256, as
    /// `status --json` shows it); refused if the slot changed meanwhile.
    #[arg(long, value_name = "HEX")]
    expect: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args)]
pub struct Promote {
    /// The slot whose canary becomes the active revision.
    slot: String,
    /// Act only if the canary is still this revision (its sha256, as
    /// `status --json` shows it); refused if the slot changed meanwhile.
    #[arg(long, value_name = "HEX")]
    expect: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args)]
pub struct Status {
    /// One slot; all of them when left out.
    slot: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args)]
pub struct Rollback {
    /// The slot to roll back to its previous revision.
    slot: String,
    /// Why, for the event log.
    #[arg(long)]
    reason: Option<String>,
    /// Act only if the revision to roll back (the canary, if there is one,
    /// else the active revision) is still this one (its sha256, as
    /// `status --json` shows it); refused if the slot changed meanwhile.
    #[arg(long, value_name = "HEX")]
    expect: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args)]
pub struct Events {
    /// Keep following new events as they happen.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    conn: Conn,
}

pub fn deploy(args: Deploy) -> anyhow::Result<ExitCode> {
    let mut signature = read_signature(args.signature.as_deref())?;
    let mut sha256 = args.sha256.clone();
    let bytes = if args.plugin.starts_with("oci://") {
        let reference: hotswap_oci::PluginRef = args.plugin.parse()?;
        let (pinned, pulled) = crate::oci::pull(&reference)?;
        if !args.conn.json {
            eprintln!("pulled {pinned} (module sha256:{})", pulled.digest);
        }
        // The server checks the module against the digest the registry
        // vouched for, and the registry's signature unless one is given.
        sha256.get_or_insert_with(|| pulled.digest.to_string());
        signature = signature.or(pulled.signature);
        pulled.module
    } else {
        read_module(std::path::Path::new(&args.plugin))?
    };
    let query = DeployQuery {
        sha256,
        canary: args.canary,
        signature,
    };
    let role = match args.canary {
        Some(w) => format!(" as a canary taking {w}% of calls"),
        None => String::new(),
    };
    let answer = args.conn.client().deploy(&args.slot, &bytes, &query);
    finish(&args.conn, answer, |a: &RevisionAnswer| {
        let r = &a.revision;
        format!(
            "deployed {} {} ({}, sha256:{}) to slot `{}` as generation {}{role}",
            r.name, r.version, r.kind, r.digest, args.slot, r.generation
        )
    })
}

pub fn status(args: Status) -> anyhow::Result<ExitCode> {
    let client = args.conn.client();
    match &args.slot {
        Some(s) => finish(&args.conn, client.slot(s), |one: &SlotStatus| {
            status_table(std::slice::from_ref(one))
        }),
        None => finish(
            &args.conn,
            client.slots(),
            |all: &hotswap_api::wire::SlotsAnswer| status_table(&all.slots),
        ),
    }
}

pub fn canary(args: CanaryWeight) -> anyhow::Result<ExitCode> {
    let body = WeightBody {
        weight: args.weight,
        expect: args.expect.clone(),
    };
    let answer = args.conn.client().set_canary_weight(&args.slot, &body);
    finish(&args.conn, answer, |a: &RevisionAnswer| {
        format!(
            "slot `{}`: canary {} now takes {}% of calls",
            args.slot,
            a.revision.version,
            a.revision.weight.unwrap_or(0)
        )
    })
}

pub fn promote(args: Promote) -> anyhow::Result<ExitCode> {
    let query = ExpectQuery {
        expect: args.expect.clone(),
    };
    let answer = args.conn.client().promote(&args.slot, &query);
    finish(&args.conn, answer, |a: &RevisionAnswer| {
        format!(
            "slot `{}`: canary {} promoted to active",
            args.slot, a.revision.version
        )
    })
}

pub fn rollback(args: Rollback) -> anyhow::Result<ExitCode> {
    let query = RollbackQuery {
        reason: args.reason.clone(),
        expect: args.expect.clone(),
    };
    let answer = args.conn.client().rollback(&args.slot, &query);
    finish(&args.conn, answer, |a: &RevisionAnswer| {
        format!(
            "slot `{}` rolled back to {} (sha256:{})",
            args.slot, a.revision.version, a.revision.digest
        )
    })
}

pub fn events(args: Events) -> anyhow::Result<ExitCode> {
    if !args.follow {
        let answer = args.conn.client().events();
        return finish(&args.conn, answer, |a: &EventsAnswer| {
            a.events
                .iter()
                .map(event_line)
                .collect::<Vec<_>>()
                .join("\n")
        });
    }
    follow(
        &args.conn,
        "/v1/events?follow=true",
        |kind, data| match kind {
            "lagged" if args.conn.json => Some(format!("{{\"lagged\": {data}}}")),
            "lagged" => Some(format!("(missed {data} events: this client fell behind)")),
            _ if args.conn.json => Some(data.to_string()),
            _ => serde_json::from_str::<Event>(data)
                .ok()
                .map(|e| event_line(&e)),
        },
    )
}

/// Follows a server-sent event stream, printing what `line` makes of each
/// event (its `event:` kind and its `data:`), until the server ends it or
/// whoever reads our output goes away (`| head`).
pub(crate) fn follow(
    conn: &Conn,
    path: &str,
    mut line: impl FnMut(&str, &str) -> Option<String>,
) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let events = match conn.client().stream(path) {
        Ok(events) => events,
        Err(e) => return refused(conn, e),
    };
    let mut out = std::io::stdout().lock();
    for event in events {
        let event = event?;
        let Some(text) = line(&event.kind, &event.data) else {
            continue;
        };
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            break; // the reader of our output is gone: so are we
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn event_line(e: &Event) -> String {
    let mut line = format!(
        "#{} {} {} {}",
        e.seq,
        e.slot,
        e.transition,
        e.version.as_deref().unwrap_or("")
    );
    if let Some(us) = e.duration_us {
        line.push_str(&format!(" in {us} µs"));
    }
    if let Some(reason) = &e.reason {
        line.push_str(&format!(": {reason}"));
    }
    line
}

fn status_table(slots: &[SlotStatus]) -> String {
    if slots.is_empty() {
        return "no slots".to_string();
    }
    let mut out = format!(
        "{:<16} {:<10} {:<9} {:<12} {:<6} {:<32} {}",
        "SLOT", "VERSION", "KIND", "DIGEST", "GEN", "PREVIOUS", "CANARY"
    );
    for s in slots {
        let (version, kind, digest, generation) = match &s.active {
            Some(a) => (
                a.version.as_str(),
                a.kind.to_string(),
                a.digest.short(),
                a.generation.to_string(),
            ),
            None => ("-", "-".to_string(), "-".to_string(), "-".to_string()),
        };
        let generation = match &s.active {
            Some(a) if a.state == RevisionState::Failed => format!("{generation} FAILED"),
            _ => generation,
        };
        let previous = s.previous.as_ref().map_or("-".to_string(), |p| {
            format!("{} ({}, {})", p.version, p.digest.short(), p.state)
        });
        let canary = s.canary.as_ref().map_or("-".to_string(), |c| {
            format!("{} at {}%", c.version, c.weight.unwrap_or(0))
        });
        out.push_str(&format!(
            "\n{:<16} {version:<10} {kind:<9} {digest:<12} {generation:<6} {previous:<32} {canary}",
            s.name
        ));
        if let Some(fault) = &s.fault {
            out.push_str(&format!("\n  fault: {fault}"));
        }
    }
    out
}

/// Any admin API request, unread (for the endpoints without a typed call).
pub(crate) fn request(
    conn: &Conn,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<Reply, ClientError> {
    conn.client().send(method, path, body)
}

/// Prints the answer (the server's JSON, or `text` of it) and picks the
/// exit code; a refusal is printed too, as JSON or as a line on stderr.
pub(crate) fn finish<T>(
    conn: &Conn,
    answer: Result<Answered<T>, ClientError>,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<ExitCode> {
    match answer {
        Ok(answer) if conn.json => {
            println!("{}", serde_json::to_string_pretty(&answer.json)?);
            Ok(ExitCode::SUCCESS)
        }
        Ok(answer) => {
            println!("{}", text(&answer.value));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused(conn, e),
    }
}

/// A refusal printed (as the server's JSON with `--json`), or any other
/// failure returned.
fn refused(conn: &Conn, e: ClientError) -> anyhow::Result<ExitCode> {
    match e {
        ClientError::Refused { problem, .. } if conn.json => {
            println!("{}", serde_json::to_string(&problem)?);
            Ok(ExitCode::FAILURE)
        }
        e @ ClientError::Refused { .. } => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
        e => Err(e.into()),
    }
}

/// The hex signature in a signature file (`hotswap sign`), when one is
/// given.
pub(crate) fn read_signature(file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    let Some(file) = file else { return Ok(None) };
    let sig = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the signature {}", file.display()))?;
    Ok(Some(sig.trim().to_string()))
}
