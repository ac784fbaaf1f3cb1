//! `hotswap bench`: measurements printed as a table, or as JSON for scripts.

mod swap;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Swap latency, call latency, throughput, and caller latency while swapping.
    Swap(swap::Args),
}

pub fn main(cmd: Command) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        Command::Swap(args) => swap::main(args),
    }
}

/// Prints rows of (what, measured, target) as an aligned table.
pub(crate) fn print_table(title: &str, rows: &[(&str, String, &str)]) {
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(8);
    println!("{title}");
    println!("  {:<w0$}  {:>w1$}  target", "metric", "measured");
    println!(
        "  {}  {}  {}",
        "-".repeat(w0),
        "-".repeat(w1),
        "-".repeat(12)
    );
    for (what, value, target) in rows {
        println!("  {what:<w0$}  {value:>w1$}  {target}");
    }
}
