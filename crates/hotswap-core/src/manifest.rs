//! `Manifest`: what a revision says about itself, read without running it.

use serde::{Deserialize, Serialize};

/// The identity a plugin declares: its name, its own version, and the ABI it
/// was built against. Every tier reads one during validation, before any of
/// the plugin's code runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The plugin's name, e.g. `greet`.
    pub name: String,
    /// The plugin's own version, e.g. `1.2.0`. Free-form; shown to operators.
    pub version: String,
    /// The ABI version the plugin was built for.
    pub abi: u32,
    /// The shape of the slot state this revision reads and writes. A
    /// revision with a higher schema than the active one converts the state
    /// when it is activated (`hs_migrate`, docs/abi.md); 0 when not declared.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub state_schema: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

use hotswap_abi::limits::{MAX_NAME, MAX_VERSION};

/// The ABI versions this host runs (docs/abi.md). Every tier accepts exactly
/// these, so a plugin is valid for all of them or for none.
pub const SUPPORTED_ABI: &[u32] = &[hotswap_abi::ABI_VERSION];

/// The section that holds a plugin's manifest, in every tier (a WASM
/// custom section, an ELF section of a native library).
pub use hotswap_abi::MANIFEST_SECTION;

/// Why a plugin has no valid manifest. The same rules, and words, in every
/// tier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// No manifest section.
    #[error("no `{MANIFEST_SECTION}` section: build with `hotswap_guest::plugin!` (Rust) or `HOTSWAP_MANIFEST` (C)")]
    Missing,
    /// More than one manifest section.
    #[error("found {0} `{MANIFEST_SECTION}` sections; there must be exactly one")]
    Several(usize),
    /// Not JSON of the right shape, or a field breaks its rule.
    #[error("bad manifest in `{MANIFEST_SECTION}`: {0}")]
    Malformed(String),
    /// Built for an ABI version this host does not run.
    #[error(
        "the plugin is built for ABI v{found}; this host runs ABI {}",
        SUPPORTED_ABI.iter().map(|v| format!("v{v}")).collect::<Vec<_>>().join(", ")
    )]
    UnsupportedAbi {
        /// The plugin's ABI version.
        found: u32,
    },
}

impl Manifest {
    /// Reads the manifest from the payloads of a plugin's
    /// `hotswap.manifest` sections, of which there must be exactly one.
    ///
    /// ```
    /// use hotswap_core::{Manifest, ManifestError};
    ///
    /// let one: &[u8] = br#"{"name":"greet","version":"1.0.0","abi":1}"#;
    /// assert_eq!(Manifest::from_sections([one])?.name, "greet");
    /// assert_eq!(Manifest::from_sections([]), Err(ManifestError::Missing));
    /// assert_eq!(Manifest::from_sections([one, one]), Err(ManifestError::Several(2)));
    /// # Ok::<(), ManifestError>(())
    /// ```
    pub fn from_sections<'a>(
        sections: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Manifest, ManifestError> {
        let sections: Vec<&[u8]> = sections.into_iter().collect();
        match sections.as_slice() {
            [] => Err(ManifestError::Missing),
            [one] => Manifest::parse(one),
            more => Err(ManifestError::Several(more.len())),
        }
    }

    /// Reads a manifest from the payload of its `hotswap.manifest` section:
    /// UTF-8 JSON `{"name", "version", "abi"}` (and optionally
    /// `"state_schema"`) by the rules of docs/abi.md.
    ///
    /// ```
    /// use hotswap_core::{Manifest, ManifestError};
    ///
    /// let m = Manifest::parse(br#"{"name":"greet","version":"1.0.0","abi":1}"#)?;
    /// assert_eq!((m.name.as_str(), m.abi, m.state_schema), ("greet", 1, 0));
    /// let m = Manifest::parse(br#"{"name":"greet","version":"2","abi":1,"state_schema":2}"#)?;
    /// assert_eq!(m.state_schema, 2);
    /// assert!(matches!(
    ///     Manifest::parse(br#"{"name":"greet","version":"1.0.0","abi":2}"#),
    ///     Err(ManifestError::UnsupportedAbi { found: 2 })
    /// ));
    /// # Ok::<(), ManifestError>(())
    /// ```
    pub fn parse(data: &[u8]) -> Result<Manifest, ManifestError> {
        let bad = |m: String| ManifestError::Malformed(m);
        let text = std::str::from_utf8(data).map_err(|e| bad(format!("not UTF-8: {e}")))?;
        let raw: Manifest = serde_json::from_str(text).map_err(|e| {
            bad(format!(
                "{e}; expected {{\"name\": ..., \"version\": ..., \"abi\": 1}}"
            ))
        })?;
        let name_ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if raw.name.is_empty() || raw.name.len() > MAX_NAME || !raw.name.chars().all(name_ok) {
            return Err(bad(format!(
                "name `{}` must be 1-{MAX_NAME} characters from a-z A-Z 0-9 - _ .",
                raw.name.escape_debug()
            )));
        }
        // No quotes or backslashes: the manifest is JSON, and SDKs write it
        // without escaping.
        let version_ok = |c: char| c.is_ascii_graphic() && c != '"' && c != '\\';
        if raw.version.is_empty()
            || raw.version.len() > MAX_VERSION
            || !raw.version.chars().all(version_ok)
        {
            return Err(bad(format!(
                "version `{}` must be 1-{MAX_VERSION} printable ASCII characters, without spaces, quotes or backslashes",
                raw.version.escape_debug()
            )));
        }
        if !SUPPORTED_ABI.contains(&raw.abi) {
            return Err(ManifestError::UnsupportedAbi { found: raw.abi });
        }
        Ok(raw)
    }
}
