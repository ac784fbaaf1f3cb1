//! `Hook`: where a program is attached, and how a replacement reaches it.

use std::fmt;
use std::str::FromStr;

/// Where a program runs. Written on the command line as `xdp:IFACE`,
/// `tracepoint:CATEGORY:NAME` or `raw_tracepoint:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// XDP on a network interface. Replaced by updating the link.
    Xdp {
        /// The interface, e.g. `eth0`.
        interface: String,
    },
    /// A tracepoint. Replaced through hotswap's dispatcher.
    Tracepoint {
        /// E.g. `raw_syscalls`.
        category: String,
        /// E.g. `sys_enter`.
        name: String,
    },
    /// A raw tracepoint. Replaced through hotswap's dispatcher.
    RawTracepoint {
        /// E.g. `sys_enter`.
        name: String,
    },
}

impl Hook {
    /// Whether a replacement goes through the dispatcher's tail-call slot
    /// (the kernel cannot update these links) rather than a link update.
    pub fn dispatched(&self) -> bool {
        !matches!(self, Hook::Xdp { .. })
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hook::Xdp { interface } => write!(f, "xdp:{interface}"),
            Hook::Tracepoint { category, name } => write!(f, "tracepoint:{category}:{name}"),
            Hook::RawTracepoint { name } => write!(f, "raw_tracepoint:{name}"),
        }
    }
}

/// Why a hook was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a hook: use xdp:IFACE, tracepoint:CATEGORY:NAME or raw_tracepoint:NAME")]
pub struct BadHook(String);

impl FromStr for Hook {
    type Err = BadHook;
    fn from_str(s: &str) -> Result<Hook, BadHook> {
        let bad = || BadHook(s.to_string());
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["xdp", iface] if ok(iface) => Ok(Hook::Xdp {
                interface: iface.to_string(),
            }),
            ["tracepoint", cat, name] if ok(cat) && ok(name) => Ok(Hook::Tracepoint {
                category: cat.to_string(),
                name: name.to_string(),
            }),
            ["raw_tracepoint", name] if ok(name) => Ok(Hook::RawTracepoint {
                name: name.to_string(),
            }),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_parse_and_print_the_same() {
        for text in [
            "xdp:veth0",
            "tracepoint:raw_syscalls:sys_enter",
            "raw_tracepoint:sys_enter",
        ] {
            assert_eq!(text.parse::<Hook>().unwrap().to_string(), text);
        }
        for bad in ["xdp", "xdp:", "kprobe:x", "tracepoint:a", "xdp:a/b"] {
            assert!(bad.parse::<Hook>().is_err(), "{bad}");
        }
    }
}
