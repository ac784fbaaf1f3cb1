//! `PluginRef`: where a plugin lives, `oci://HOST/REPO:TAG` or
//! `oci://HOST/REPO@sha256:HEX`.

use std::fmt;
use std::str::FromStr;

use hotswap_core::Digest;
use oci_client::Reference;

/// A plugin in a registry, named by tag or pinned by its manifest digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    reference: Reference,
}

/// Why a plugin reference could not be read.
#[derive(Debug, thiserror::Error)]
#[error("`{input}` is not a plugin reference (oci://HOST/REPO:TAG or oci://HOST/REPO@sha256:HEX): {why}")]
pub struct ParseRefError {
    input: String,
    why: String,
}

/// The scheme every plugin reference starts with.
const SCHEME: &str = "oci://";

impl PluginRef {
    /// The registry's host (and port).
    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    /// The repository in it.
    pub fn repository(&self) -> &str {
        self.reference.repository()
    }

    /// The tag, when it names one.
    pub fn tag(&self) -> Option<&str> {
        self.reference.tag()
    }

    /// The manifest's digest, when it is pinned.
    pub fn digest(&self) -> Option<Digest> {
        self.reference.digest().and_then(|d| d.parse().ok())
    }

    /// The same repository, pinned to `digest`.
    pub fn at(&self, digest: Digest) -> PluginRef {
        PluginRef {
            reference: Reference::with_digest(
                self.registry().to_string(),
                self.repository().to_string(),
                format!("sha256:{digest}"),
            ),
        }
    }

    /// The same repository at `tag`.
    pub(crate) fn tagged(&self, tag: &str) -> PluginRef {
        PluginRef {
            reference: Reference::with_tag(
                self.registry().to_string(),
                self.repository().to_string(),
                tag.to_string(),
            ),
        }
    }

    /// Whether the registry is on this machine, the only place plain HTTP
    /// is used. (The OCI reference grammar has no IPv6 literals.)
    pub fn is_loopback(&self) -> bool {
        let host = self.registry();
        let host = match host.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => host,
        };
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    pub(crate) fn oci(&self) -> &Reference {
        &self.reference
    }
}

impl FromStr for PluginRef {
    type Err = ParseRefError;

    fn from_str(s: &str) -> Result<PluginRef, ParseRefError> {
        let error = |why: &str| ParseRefError {
            input: s.to_string(),
            why: why.to_string(),
        };
        let rest = s
            .strip_prefix(SCHEME)
            .ok_or_else(|| error("it must start with oci://"))?;
        // Without a host, the OCI parser would quietly pick Docker Hub.
        let host = rest.split('/').next().unwrap_or_default();
        if !rest.contains('/') || !(host.contains('.') || host.contains(':') || host == "localhost")
        {
            return Err(error(
                "it must name the registry's host, as in oci://HOST/REPO:TAG",
            ));
        }
        let reference: Reference = rest.parse().map_err(|e| error(&format!("{e}")))?;
        if let Some(d) = reference.digest() {
            if !d.starts_with("sha256:") || d.parse::<Digest>().is_err() {
                return Err(error("only sha256 digests are accepted"));
            }
        }
        Ok(PluginRef { reference })
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry(), self.repository())?;
        match (self.tag(), self.reference.digest()) {
            (_, Some(d)) => write!(f, "@{d}"),
            (Some(t), None) => write!(f, ":{t}"),
            (None, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_digests_read_back_as_written() {
        let tag: PluginRef = "oci://127.0.0.1:5000/plugins/greet:v1".parse().unwrap();
        assert_eq!(tag.registry(), "127.0.0.1:5000");
        assert_eq!(tag.repository(), "plugins/greet");
        assert_eq!(tag.tag(), Some("v1"));
        assert_eq!(tag.digest(), None);
        assert!(tag.is_loopback());
        assert_eq!(tag.to_string(), "oci://127.0.0.1:5000/plugins/greet:v1");

        let digest = Digest::of(b"manifest");
        let pinned = tag.at(digest);
        assert_eq!(pinned.digest(), Some(digest));
        let text = format!("oci://127.0.0.1:5000/plugins/greet@sha256:{digest}");
        assert_eq!(pinned.to_string(), text);
        assert_eq!(text.parse::<PluginRef>().unwrap(), pinned);
    }

    #[test]
    fn a_reference_without_scheme_host_or_with_another_digest_is_refused() {
        for bad in [
            "127.0.0.1:5000/greet:v1",
            "oci://greet:v1",
            "oci://plugins/greet:v1",
            "oci://127.0.0.1:5000/greet@sha512:abcd",
            "oci://127.0.0.1:5000/greet@sha256:nothex",
            "oci://127.0.0.1:5000/Greet:v1",
        ] {
            let e = bad.parse::<PluginRef>().unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn only_this_machine_is_loopback() {
        for (r, lo) in [
            ("oci://localhost:5000/a:b", true),
            ("oci://127.0.0.2:5000/a:b", true),
            ("oci://registry.example:5000/a:b", false),
            ("oci://10.0.0.1:5000/a:b", false),
        ] {
            assert_eq!(r.parse::<PluginRef>().unwrap().is_loopback(), lo, "{r}");
        }
    }
}
