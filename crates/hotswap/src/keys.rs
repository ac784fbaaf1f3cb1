//! `hotswap keygen` and `hotswap sign`: ed25519 keys and module signatures.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use hotswap_server::signing;
use serde_json::json;

#[derive(clap::Args)]
pub struct Keygen {
    /// Where to write the secret key (never overwritten).
    #[arg(long, default_value = "hotswap.key", value_name = "FILE")]
    out: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct Sign {
    /// The plugin to sign: a WebAssembly module or a native shared library.
    file: PathBuf,
    /// The secret key file (from `hotswap keygen`).
    #[arg(
        long,
        env = "HOTSWAP_KEY",
        default_value = "hotswap.key",
        value_name = "FILE"
    )]
    key: PathBuf,
    /// Where to write the signature [default: FILE.sig].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn keygen(args: Keygen) -> anyhow::Result<ExitCode> {
    if args.out.exists() {
        bail!(
            "{} exists; keygen never overwrites a key (choose another --out)",
            args.out.display()
        );
    }
    let key = signing::generate()?;
    write_private(&args.out, &signing::secret_hex(&key))?;
    let public = signing::public_hex(&key);
    if args.json {
        println!(
            "{}",
            json!({"public_key": public, "secret_key_file": args.out})
        );
    } else {
        println!(
            "secret key written to {} (keep it private)",
            args.out.display()
        );
        println!("public key: {public}");
        println!("trust it in the server's config:  trusted_keys = [\"{public}\"]");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn sign(args: Sign) -> anyhow::Result<ExitCode> {
    let secret = std::fs::read_to_string(&args.key).with_context(|| {
        format!(
            "cannot read the key {} (make one with hotswap keygen)",
            args.key.display()
        )
    })?;
    let key = signing::parse_secret(&secret).with_context(|| format!("{}", args.key.display()))?;
    let module = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let signature = signing::sign(&key, &module);
    let out = args.out.unwrap_or_else(|| {
        let mut name = args.file.clone().into_os_string();
        name.push(".sig");
        PathBuf::from(name)
    });
    std::fs::write(&out, format!("{signature}\n"))
        .with_context(|| format!("cannot write {}", out.display()))?;
    if args.json {
        println!(
            "{}",
            json!({"signature": signature, "signature_file": out, "public_key": signing::public_hex(&key)})
        );
    } else {
        println!("signed {} -> {}", args.file.display(), out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates the file readable by its owner only, and refuses to replace one.
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{text}")?;
    Ok(())
}
