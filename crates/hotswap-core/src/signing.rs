//! Module signatures: ed25519 keys, `.sig` files, and the check a deploy
//! passes before anything is stored or compiled.
//!
//! Keys and signatures are hex text: a secret key file holds 64 hex digits,
//! a public key is 64 hex digits (what `trusted_keys` lists), and a `.sig`
//! file holds the 128 hex digits of an ed25519 signature over the module's
//! bytes.
//!
//! ```
//! use hotswap_core::signing;
//!
//! let key = signing::generate()?;
//! let module = b"\0asm...";
//! let sig = signing::sign(&key, module);
//! let trust = signing::Trust::new(&[signing::public_hex(&key)], true)?;
//! assert!(trust.check(module, Some(&sig)).is_ok());
//! assert!(trust.check(b"other bytes", Some(&sig)).is_err());
//! assert!(trust.check(module, None).is_err()); // required
//! # Ok::<(), signing::SignatureError>(())
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Why a signature (or a key) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The server requires a signature and none came.
    #[error(
        "this server requires signed modules: sign it (hotswap sign) and deploy with --signature"
    )]
    Missing,
    /// A native library came without a signature, and native libraries
    /// must be signed.
    #[error(
        "native libraries run unsandboxed inside the server, so this server requires them to be signed: sign it (hotswap sign) and deploy with --signature, or set [native] require_signature = false"
    )]
    NativeMissing,
    /// A signature came but nothing to check it against.
    #[error(
        "the module is signed, but this server trusts no keys (trusted_keys) to check it against"
    )]
    NoTrustedKeys,
    /// Not a signature or key at all.
    #[error("{0}")]
    Malformed(String),
    /// A well-formed signature no trusted key made for these bytes.
    #[error("the signature does not match the module for any trusted key")]
    Untrusted,
    /// No randomness for a new key.
    #[error("no system randomness for a new key: {0}")]
    Randomness(String),
}

/// A new secret key, from the system's secure randomness.
pub fn generate() -> Result<SigningKey, SignatureError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| SignatureError::Randomness(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The secret key as hex, for its file.
pub fn secret_hex(key: &SigningKey) -> String {
    hex::encode(key.to_bytes())
}

/// The public key as hex, for `trusted_keys`.
pub fn public_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

/// Reads a secret key from its hex text.
pub fn parse_secret(text: &str) -> Result<SigningKey, SignatureError> {
    let bytes: [u8; 32] = decode(text, "a secret key")?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Signs `module`: the hex text of its `.sig` file.
pub fn sign(key: &SigningKey, module: &[u8]) -> String {
    hex::encode(key.sign(module).to_bytes())
}

fn decode<const N: usize>(text: &str, what: &str) -> Result<[u8; N], SignatureError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|_| {
        SignatureError::Malformed(format!("not {what}: expected {} hex digits", 2 * N))
    })?;
    Ok(out)
}

/// The keys a server trusts, and whether it requires a signature.
#[derive(Debug, Clone)]
pub struct Trust {
    keys: Vec<VerifyingKey>,
    required: bool,
    native_required: bool,
}

impl Trust {
    /// From public keys in hex.
    pub fn new(keys: &[String], required: bool) -> Result<Trust, SignatureError> {
        let keys = keys
            .iter()
            .map(|k| {
                let bytes: [u8; 32] = decode(k, "a public key")?;
                VerifyingKey::from_bytes(&bytes).map_err(|_| {
                    SignatureError::Malformed(format!("`{k}` is not an ed25519 public key"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Trust {
            keys,
            required,
            native_required: false,
        })
    }

    /// Also requires a signature on every native plugin (an ELF file),
    /// whether or not other modules need one ([`Trust::check_plugin`]).
    pub fn requiring_native(self, yes: bool) -> Trust {
        Trust {
            native_required: yes,
            ..self
        }
    }

    /// Checks `signature` (hex), if any, over `module`.
    pub fn check(&self, module: &[u8], signature: Option<&str>) -> Result<(), SignatureError> {
        let Some(signature) = signature else {
            return if self.required {
                Err(SignatureError::Missing)
            } else {
                Ok(())
            };
        };
        if self.keys.is_empty() {
            return Err(SignatureError::NoTrustedKeys);
        }
        let signature = Signature::from_bytes(&decode(signature, "a signature")?);
        if self
            .keys
            .iter()
            .any(|k| k.verify_strict(module, &signature).is_ok())
        {
            Ok(())
        } else {
            Err(SignatureError::Untrusted)
        }
    }

    /// Checks a plugin upload: as [`Trust::check`], and a native library
    /// needs a signature whenever [`Trust::requiring_native`] says so.
    pub fn check_plugin(
        &self,
        plugin: &[u8],
        signature: Option<&str>,
    ) -> Result<(), SignatureError> {
        if signature.is_none()
            && self.native_required
            && crate::Kind::of(plugin) == crate::Kind::Native
        {
            return Err(SignatureError::NativeMissing);
        }
        self.check(plugin, signature)
    }
}
