//! `hotswap upgrade` and `hotswap reload`: replace a running server's
//! binary, or apply its changed config, without refusing a connection.

use std::process::ExitCode;

use hotswap_server::{ReloadReport, UpgradeReport};

use crate::client::{finish, Conn};

#[derive(clap::Args)]
pub struct Upgrade {
    #[command(flatten)]
    conn: Conn,
}

#[derive(clap::Args)]
pub struct Reload {
    /// Only show what a reload would change (or why it would be refused);
    /// change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    conn: Conn,
}

pub fn upgrade(args: Upgrade) -> anyhow::Result<ExitCode> {
    let answer = args.conn.client().upgrade();
    finish(&args.conn, answer, |r: &UpgradeReport| {
        format!(
            "upgraded: pid {} took over from pid {} as generation {} (ready after {:.1} ms, drained in {:.1} ms, handed over after {:.1} ms)",
            r.new_pid, r.old_pid, r.generation, r.ready_ms, r.drain_ms, r.handover_ms
        )
    })
}

pub fn reload(args: Reload) -> anyhow::Result<ExitCode> {
    let answer = args.conn.client().reload(args.dry_run);
    finish(&args.conn, answer, |r: &ReloadReport| {
        let mut text = match args.dry_run {
            true => format!("a reload would change: {}", r.changed_names()),
            false => format!("reloaded: {} changed", r.changed_names()),
        };
        for note in &r.notes {
            text.push_str(&format!("\nnote: {note}"));
        }
        text
    })
}
