//! The admin API's client side: `hotswap deploy`, `status`, `rollback`,
//! `canary`, `promote` and `events` talk to a running `hotswap serve`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use hotswap_core::{Event, Kind, RevisionInfo, RevisionState};
use hotswap_server::SlotView;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

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
}

#[derive(clap::Args)]
pub struct Deploy {
    /// The slot to deploy to (created if new).
    slot: String,
    /// The plugin: a WebAssembly module (`.wasm`, or `.wat` text) or a
    /// native shared library (`.so`, when the server enables the native
    /// tier; docs/native.md).
    file: PathBuf,
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
    let bytes = read_module(&args.file)?;
    let mut query = Vec::new();
    if let Some(h) = &args.sha256 {
        query.push(format!("sha256={h}"));
    }
    if let Some(w) = args.canary {
        query.push(format!("canary={w}"));
    }
    query.extend(signature_field(args.signature.as_deref())?);
    let mut path = format!("/v1/slots/{}/revisions", encode(&args.slot));
    if !query.is_empty() {
        path.push_str(&format!("?{}", query.join("&")));
    }
    let role = match args.canary {
        Some(w) => format!(" as a canary taking {w}% of calls"),
        None => String::new(),
    };
    let answer = request(&args.conn, "POST", &path, Some(&bytes))?;
    finish(&args.conn, answer, |a: &RevisionAnswer| {
        let r = &a.revision;
        format!(
            "deployed {} {} ({}, sha256:{}) to slot `{}` as generation {}{role}",
            r.name, r.version, r.kind, r.digest, args.slot, r.generation
        )
    })
}

pub fn status(args: Status) -> anyhow::Result<ExitCode> {
    let path = match &args.slot {
        Some(s) => format!("/v1/slots/{s}"),
        None => "/v1/slots".to_string(),
    };
    let answer = request(&args.conn, "GET", &path, None)?;
    finish(&args.conn, answer, |a: &SlotsAnswer| {
        status_table(a.slots())
    })
}

pub fn canary(args: CanaryWeight) -> anyhow::Result<ExitCode> {
    let body = serde_json::json!({ "weight": args.weight, "expect": args.expect }).to_string();
    let path = format!("/v1/slots/{}/canary", args.slot);
    let answer = request(&args.conn, "POST", &path, Some(body.as_bytes()))?;
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
    let mut path = format!("/v1/slots/{}/promote", args.slot);
    if let Some(expect) = &args.expect {
        path.push_str(&format!("?expect={}", encode(expect)));
    }
    let answer = request(&args.conn, "POST", &path, Some(b""))?;
    finish(&args.conn, answer, |a: &RevisionAnswer| {
        format!(
            "slot `{}`: canary {} promoted to active",
            args.slot, a.revision.version
        )
    })
}

pub fn rollback(args: Rollback) -> anyhow::Result<ExitCode> {
    let mut query = Vec::new();
    if let Some(reason) = &args.reason {
        query.push(format!("reason={}", encode(reason)));
    }
    if let Some(expect) = &args.expect {
        query.push(format!("expect={}", encode(expect)));
    }
    let mut path = format!("/v1/slots/{}/rollback", args.slot);
    if !query.is_empty() {
        path.push_str(&format!("?{}", query.join("&")));
    }
    let answer = request(&args.conn, "POST", &path, Some(b""))?;
    finish(&args.conn, answer, |a: &RevisionAnswer| {
        format!(
            "slot `{}` rolled back to {} (sha256:{})",
            args.slot, a.revision.version, a.revision.digest
        )
    })
}

pub fn events(args: Events) -> anyhow::Result<ExitCode> {
    if !args.follow {
        let answer = request(&args.conn, "GET", "/v1/events", None)?;
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
    let url = url(conn, path);
    let mut response = with_token(agent().get(&url))
        .call()
        .map_err(|e| unreachable(conn, e))?;
    if response.status().as_u16() != 200 {
        let text = response.body_mut().read_to_string().unwrap_or_default();
        return refused(response.status().as_u16(), &text);
    }
    let reader = BufReader::new(response.body_mut().as_reader());
    let mut out = std::io::stdout().lock();
    let mut kind = String::new();
    for sse in reader.lines() {
        let sse = sse.context("the event stream broke")?;
        if let Some(k) = sse.strip_prefix("event:") {
            kind = k.trim().to_string();
            continue;
        }
        let Some(data) = sse.strip_prefix("data:") else {
            if sse.is_empty() {
                kind.clear(); // the end of one event
            }
            continue;
        };
        let Some(text) = line(&kind, data.trim()) else {
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

/// The server's answers, in the types the server built them from.
#[derive(Deserialize)]
pub(crate) struct RevisionAnswer {
    pub(crate) revision: RevisionInfo,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SlotsAnswer {
    All { slots: Vec<SlotView> },
    One(Box<SlotView>),
}

impl SlotsAnswer {
    fn slots(&self) -> &[SlotView] {
        match self {
            SlotsAnswer::All { slots } => slots,
            SlotsAnswer::One(one) => std::slice::from_ref(one.as_ref()),
        }
    }
}

#[derive(Deserialize)]
struct EventsAnswer {
    events: Vec<Event>,
}

fn status_table(slots: &[SlotView]) -> String {
    if slots.is_empty() {
        return "no slots".to_string();
    }
    let mut out = format!(
        "{:<16} {:<10} {:<6} {:<12} {:<6} {:<32} {}",
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
            "\n{:<16} {version:<10} {kind:<6} {digest:<12} {generation:<6} {previous:<32} {canary}",
            s.name
        ));
        if let Some(fault) = &s.fault {
            out.push_str(&format!("\n  fault: {fault}"));
        }
    }
    out
}

/// What the server said: its status and its JSON.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl Answer {
    /// A refusal in one line: the status and the server's `error` (or
    /// its body, when that is not the API's JSON).
    pub(crate) fn refusal(&self) -> String {
        refusal(self.status, &self.body)
    }

    /// The refusal's `kind` (`verifier-rejected`, ...), when it has one.
    pub(crate) fn error_kind(&self) -> Option<String> {
        let body: Value = serde_json::from_str(&self.body).ok()?;
        body["kind"].as_str().map(str::to_string)
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn url(conn: &Conn, path: &str) -> String {
    let base = conn.admin.trim_end_matches('/');
    if base.starts_with("http://") || base.starts_with("https://") {
        format!("{base}{path}")
    } else {
        format!("http://{base}{path}")
    }
}

fn with_token<B>(req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
    match std::env::var("HOTSWAP_TOKEN") {
        Ok(t) if !t.is_empty() => req.header("authorization", format!("Bearer {t}")),
        _ => req,
    }
}

pub(crate) fn request(
    conn: &Conn,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> anyhow::Result<Answer> {
    let url = url(conn, path);
    let agent = agent();
    let kind = |b: &[u8]| match Kind::of(b) {
        _ if b.starts_with(b"{") => "application/json",
        Kind::Native => "application/octet-stream",
        Kind::Wasm => "application/wasm",
    };
    let result = match (method, body) {
        ("POST", Some(b)) => with_token(agent.post(&url))
            .header("content-type", kind(b))
            .send(b),
        ("PUT", Some(b)) => with_token(agent.put(&url))
            .header("content-type", kind(b))
            .send(b),
        ("DELETE", _) => with_token(agent.delete(&url)).call(),
        _ => with_token(agent.get(&url)).call(),
    };
    let mut response = result.map_err(|e| unreachable(conn, e))?;
    Ok(Answer {
        status: response.status().as_u16(),
        body: response
            .body_mut()
            .read_to_string()
            .context("cannot read the server's answer")?,
    })
}

fn unreachable(conn: &Conn, e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe || io.kind() == std::io::ErrorKind::ConnectionReset => anyhow!(
            "the admin API at {} closed the connection before reading the upload: is the token right (HOTSWAP_TOKEN), and the module within max_module_bytes?",
            conn.admin
        ),
        e => anyhow!(
            "cannot reach the admin API at {} ({e}); is `hotswap serve` running? (set --admin or HOTSWAP_ADMIN)",
            conn.admin
        ),
    }
}

/// Prints the answer (JSON as is, or `text` of it) and picks the exit code.
pub(crate) fn finish<T: DeserializeOwned>(
    conn: &Conn,
    answer: Answer,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<ExitCode> {
    if !(200..300).contains(&answer.status) {
        if conn.json {
            println!("{}", answer.body);
            return Ok(ExitCode::FAILURE);
        }
        return refused(answer.status, &answer.body);
    }
    let bad = || {
        format!(
            "the server's answer is not what this client expects: {}",
            answer.body
        )
    };
    if conn.json {
        let value: Value = serde_json::from_str(&answer.body).with_context(bad)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let typed: T = serde_json::from_str(&answer.body).with_context(bad)?;
        println!("{}", text(&typed));
    }
    Ok(ExitCode::SUCCESS)
}

fn refused(status: u16, body: &str) -> anyhow::Result<ExitCode> {
    eprintln!("error: {}", refusal(status, body));
    Ok(ExitCode::FAILURE)
}

fn refusal(status: u16, body: &str) -> String {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    format!("the server refused ({status}): {message}")
}

/// The query field `signature=HEX` from a signature file (`hotswap sign`),
/// when one is given.
pub(crate) fn signature_field(file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    let Some(file) = file else { return Ok(None) };
    let sig = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the signature {}", file.display()))?;
    Ok(Some(format!("signature={}", sig.trim())))
}

/// Percent-encodes a query value.
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
