//! `Hook`: where a program is attached, and how a replacement reaches it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a program runs. Written on the command line as `xdp:IFACE`,
/// `tracepoint:CATEGORY:NAME`, `raw_tracepoint:NAME` or
/// `uprobe:/ABSOLUTE/PATH:SYMBOL`.
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
    /// A uprobe on a function of an executable or library, in every
    /// process that runs it. Replaced through hotswap's dispatcher.
    Uprobe {
        /// The binary, as an absolute path.
        target: std::path::PathBuf,
        /// The function's symbol.
        symbol: String,
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
            Hook::Uprobe { target, symbol } => write!(f, "uprobe:{}:{symbol}", target.display()),
        }
    }
}

/// Why a hook was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a hook: use xdp:IFACE, tracepoint:CATEGORY:NAME, raw_tracepoint:NAME or uprobe:/PATH:SYMBOL")]
pub struct BadHook(String);

/// A hook travels as the text `--attach` takes (`xdp:eth0`, ...).
impl Serialize for Hook {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hook {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hook, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for Hook {
    type Err = BadHook;
    fn from_str(s: &str) -> Result<Hook, BadHook> {
        let bad = || BadHook(s.to_string());
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        // A path may hold colons: the symbol is after the last one.
        if let Some(rest) = s.strip_prefix("uprobe:") {
            let (target, symbol) = rest.rsplit_once(':').ok_or_else(bad)?;
            let symbol_ok = !symbol.is_empty()
                && symbol
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.$@".contains(c));
            if !target.starts_with('/') || !symbol_ok {
                return Err(bad());
            }
            return Ok(Hook::Uprobe {
                target: target.into(),
                symbol: symbol.to_string(),
            });
        }
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
            "uprobe:/usr/lib/x86_64-linux-gnu/libc.so.6:malloc",
        ] {
            assert_eq!(text.parse::<Hook>().unwrap().to_string(), text);
        }
        for bad in [
            "xdp",
            "xdp:",
            "kprobe:x",
            "tracepoint:a",
            "xdp:a/b",
            "uprobe:relative:f",
            "uprobe:/bin/x",
            "uprobe:/bin/x:",
        ] {
            assert!(bad.parse::<Hook>().is_err(), "{bad}");
        }
    }
}
