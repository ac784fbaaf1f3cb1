//! `ErrorKind`: every way the admin API refuses a request, each with its
//! HTTP status and a stable machine-readable code; `Problem`, the body of
//! a refusal; and `CallErrorKind`, the same for a failed call through the
//! gateway (its `x-hotswap-error` header).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Defines a kind enum from one table, so that a kind's variant, code and
/// status are written once.
macro_rules! kinds {
    (
        $(#[$enum_doc:meta])* enum $name:ident;
        $( $(#[$doc:meta])* $variant:ident = $code:literal, $status:literal; )*
    ) => {
        $(#[$enum_doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$doc])* $variant, )*
            /// A code this client does not know.
            Unknown,
        }

        impl $name {
            /// Every kind this version knows.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The stable code, as `kind` in the JSON body.
            pub fn code(self) -> &'static str {
                match self {
                    $( $name::$variant => $code, )*
                    $name::Unknown => "unknown",
                }
            }

            /// The HTTP status the server answers this kind with.
            pub fn status(self) -> u16 {
                match self {
                    $( $name::$variant => $status, )*
                    $name::Unknown => 500,
                }
            }

            /// The kind of `code`, or `Unknown`.
            pub fn from_code(code: &str) -> $name {
                match code {
                    $( $code => $name::$variant, )*
                    _ => $name::Unknown,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.code())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let code = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Ok($name::from_code(&code))
            }
        }
    };
}

kinds! {
    /// Why the admin API refused a request. The code (`kind` in the JSON
    /// body) is stable: scripts may match on it. A kind this version does
    /// not know (from a newer server) reads as [`ErrorKind::Unknown`].
    enum ErrorKind;

    /// No such endpoint.
    NotFound = "not-found", 404;
    /// The bearer token is missing or wrong.
    Unauthorized = "unauthorized", 401;
    /// The request is malformed (a bad query, a body that is not the
    /// expected JSON).
    BadRequest = "bad-request", 400;
    /// The upload is larger than `max_module_bytes`.
    TooLarge = "too-large", 413;
    /// The server requires a signature and none came.
    SignatureRequired = "signature-required", 403;
    /// The signature is not a trusted key's signature of these bytes.
    BadSignature = "bad-signature", 403;
    /// Something failed that the request could not have prevented.
    Internal = "internal", 500;
    /// No slot of that name.
    UnknownSlot = "unknown-slot", 404;
    /// The slot name is not allowed.
    BadSlotName = "bad-slot-name", 400;
    /// The artifact's sha256 is not the expected one.
    DigestMismatch = "digest-mismatch", 400;
    /// The artifact breaks the plugin contract.
    InvalidModule = "invalid-module", 422;
    /// Compiling, starting or health-checking the revision failed.
    PrepareFailed = "prepare-failed", 422;
    /// The previous revision is still draining.
    StillDraining = "still-draining", 409;
    /// The revision the caller expected is no longer there.
    Stale = "stale", 409;
    /// There is no previous revision to roll back to.
    NoPrevious = "no-previous", 409;
    /// A canary is on trial: promote or roll it back first.
    CanaryInProgress = "canary-in-progress", 409;
    /// The slot has no active revision.
    NoActive = "no-active", 409;
    /// The slot has no canary.
    NoCanary = "no-canary", 409;
    /// The revision reads an older state schema than the slot holds.
    SchemaDowngrade = "schema-downgrade", 409;
    /// A canary cannot read another state schema than the active revision.
    CanaryAcrossSchemas = "canary-across-schemas", 409;
    /// A canary must be of the same kind (plugin or component) as the
    /// active revision.
    CanaryAcrossKinds = "canary-across-kinds", 409;
    /// A revision's artifact cannot be had from the store.
    Unavailable = "unavailable", 409;
    /// The state migration failed; the old revision serves on.
    MigrateFailed = "migrate-failed", 422;
    /// The store failed; nothing changed.
    StoreFailed = "store-failed", 500;
    /// The binary upgrade failed; this process serves on.
    UpgradeFailed = "upgrade-failed", 409;
    /// The config reload was refused; nothing changed.
    ReloadRejected = "reload-rejected", 409;
    /// An upgrade is under way.
    UpgradeInProgress = "upgrade-in-progress", 409;
    /// The server is stopping.
    Stopping = "stopping", 503;
    /// The eBPF tier cannot run here (not root, no bpffs, turned off).
    EbpfUnavailable = "ebpf-unavailable", 503;
    /// The eBPF program name is not allowed.
    BadName = "bad-name", 400;
    /// The eBPF object cannot be read.
    InvalidObject = "invalid-object", 422;
    /// The object has no such program.
    NoProgram = "no-program", 422;
    /// The program's type does not fit its hook.
    WrongProgramType = "wrong-program-type", 422;
    /// A pinned map of the program is not compatible with the new one's.
    IncompatibleMap = "incompatible-map", 409;
    /// The kernel's verifier refused the program.
    VerifierRejected = "verifier-rejected", 422;
    /// The program could not be attached.
    AttachFailed = "attach-failed", 422;
    /// No eBPF program of that name is loaded.
    NotLoaded = "not-loaded", 404;
    /// The program is attached to another hook.
    OtherHook = "other-hook", 409;
    /// A map read or write the map cannot take.
    BadMapRequest = "bad-map-request", 400;
    /// The program is loaded already.
    AlreadyLoaded = "already-loaded", 409;
    /// The hook is missing or malformed.
    BadHook = "bad-hook", 400;
    /// The map has no such entry.
    NoEntry = "no-entry", 404;
}

kinds! {
    /// Why a call through the gateway failed: the `x-hotswap-error` header
    /// of its answer, and the `outcome` label of its metrics. The answer's
    /// body is a short message that reveals nothing of the plugin.
    enum CallErrorKind;
    /// No slot of that name.
    UnknownSlot = "unknown-slot", 404;
    /// The slot has no revision to serve.
    NoRevision = "no-revision", 503;
    /// The slot's revisions could not be restored after a restart.
    Unavailable = "unavailable", 503;
    /// The plugin ran past its deadline.
    Deadline = "deadline", 504;
    /// Every instance is busy.
    Overloaded = "overloaded", 503;
    /// The plugin answered with an error of its own.
    PluginError = "plugin-error", 500;
    /// The plugin hit its memory cap.
    MemoryLimit = "memory-limit", 502;
    /// The plugin trapped.
    Trap = "trap", 502;
    /// The plugin broke the ABI.
    Abi = "abi", 502;
    /// The host could not run the call (an instance failed to start).
    Host = "host", 502;
    /// An envelope route's plugin answered a malformed response envelope.
    BadEnvelope = "bad-envelope", 502;
}

/// The body of every refusal: `{"error": "what went wrong", "kind": "code"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}")]
pub struct Problem {
    /// What went wrong, for a person.
    pub error: String,
    /// What went wrong, for a program.
    pub kind: ErrorKind,
}

impl Problem {
    /// A refusal of `kind`, saying `error`.
    pub fn new(kind: ErrorKind, error: impl Into<String>) -> Problem {
        Problem {
            error: error.into(),
            kind,
        }
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_read_back() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            assert!(seen.insert(kind.code()), "{} twice", kind.code());
            assert_eq!(ErrorKind::from_code(kind.code()), *kind);
            assert!((400..600).contains(&kind.status()), "{kind}");
        }
        let mut seen = std::collections::HashSet::new();
        for kind in CallErrorKind::ALL {
            assert!(seen.insert(kind.code()), "{} twice", kind.code());
            assert_eq!(CallErrorKind::from_code(kind.code()), *kind);
            assert!((400..600).contains(&kind.status()), "{kind}");
        }
    }

    #[test]
    fn a_problem_is_the_json_the_api_documents() {
        let p = Problem::new(ErrorKind::NoCanary, "slot `greet` has no canary");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": "slot `greet` has no canary", "kind": "no-canary"})
        );
        // A newer server's kind still reads.
        let newer: Problem =
            serde_json::from_str(r#"{"error": "x", "kind": "from-the-future"}"#).unwrap();
        assert_eq!(newer.kind, ErrorKind::Unknown);
    }
}
