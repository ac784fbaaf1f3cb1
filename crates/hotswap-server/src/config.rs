//! `ServerConfig`: everything `hotswap serve` can be told, from one TOML file
//! and flags, with defaults that work on a laptop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The server's settings. Every field has a default; a config file names
/// only what it changes.
///
/// ```toml
/// listen = "127.0.0.1:8080"      # the data plane: plugins answer here
/// admin = "127.0.0.1:8081"       # the admin API and /metrics
/// data_dir = ".hotswap"          # the store: artifacts, slots, kv, compiled code
/// # admin_token = "..."          # required when `admin` is not loopback
/// max_module_bytes = 33554432
/// deploy_example = true          # deploy the example plugin to slot `greet` on first start
/// event_retention = 10000        # events the persisted event log keeps
/// migration_pause_ms = 250       # longest calls wait while a slot's state migrates
/// kv_sync = "interval"           # plugin kv writes reach the disk within 100 ms; "always": before they return
/// trusted_keys = []              # ed25519 public keys (hex) whose signatures are accepted
/// require_signature = false      # refuse unsigned modules
///
/// [canary]
/// key_header = "x-hotswap-key"  # keeps a client on one revision
/// trusted_proxies = ["10.0.0.0/8"]  # read the client's address from these peers' Forwarded
/// key_by_peer = false            # true: a direct peer's address keeps it on one revision
/// error_budget = 0.05            # a canary failing more than this share of calls...
/// window_secs = 30               # ...over this window (once it served min_calls)...
/// min_calls = 20                 # ...is rolled back automatically
///
/// [upgrade]                      # `hotswap upgrade`, SIGUSR2
/// # binary = "/usr/local/bin/hotswap"  # the binary to start [default: this one's path]
/// ready_timeout_ms = 10000       # the new process must be ready within this...
/// handover_timeout_ms = 30000    # ...and serving this long after the old one let go
/// drain_timeout_ms = 10000       # requests still running after this are cut
/// drain_idle_ms = 200            # keep-alive connections idle this long are closed
///
/// [native]                       # native plugins (cdylibs): not sandboxed, see docs/native.md
/// enabled = true                 # off: native libraries are refused
/// require_signature = true       # refuse native libraries without a trusted signature
///
/// [ebpf]                         # the eBPF tier (`hotswap ebpf ...`): root and BPF needed
/// enabled = true                 # off: the eBPF endpoints answer 503
/// pin_root = "/sys/fs/bpf/hotswap"  # where programs and maps are pinned (on bpffs)
///
/// [limits]
/// deadline_ms = 1000
/// memory_cap_mib = 64
/// instance_cap = 16
///
/// [component]                    # wasi:http components (docs/components.md)
/// deadline_ms = 10000            # a request's whole life, to its last body byte
/// memory_cap_mib = 64            # per instance: one per request
/// max_instances = 256            # component requests at once, across slots
///
/// [component.outgoing]           # per slot, the hosts its components may call
/// hello = ["api.example.com", "127.0.0.1:8080"]
///
/// [tls]                          # the data plane over HTTPS (HTTP/2 and HTTP/1.1 by ALPN)
/// cert = "/etc/hotswap/cert.pem" # certificate chain, PEM; read again at every reload
/// key = "/etc/hotswap/key.pem"   # its private key, PEM
///
/// [[routes]]
/// path = "/hello"
/// slot = "greet"
///
/// [[routes]]
/// path = "/private"
/// slot = "auth"
/// envelope = true                # the plugin sees method, path, query, headers, body
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where the data plane listens.
    pub listen: SocketAddr,
    /// Where the admin API listens.
    pub admin: SocketAddr,
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// The bearer token the admin API requires. Required when `admin` is
    /// not a loopback address; also read from `HOTSWAP_TOKEN`.
    pub admin_token: Option<String>,
    /// Largest module the admin API accepts, in bytes.
    pub max_module_bytes: usize,
    /// Deploy the example `greet` plugin to slot `greet` when the store is
    /// empty, so a first start has something to answer.
    pub deploy_example: bool,
    /// How many events the persisted event log keeps (the newest; older
    /// ones are dropped as new ones come).
    pub event_retention: usize,
    /// How long calls may wait while a slot's state is converted to a new
    /// schema (drain and `hs_migrate`), in milliseconds; a migration that
    /// would take longer is aborted and the old revision serves on.
    pub migration_pause_ms: u64,
    /// When a plugin's key-value write reaches the disk.
    pub kv_sync: hotswap_store::KvSync,
    /// Limits every plugin runs under.
    pub limits: Limits,
    /// HTTP paths mapped to slots. Without routes, `POST /{slot}` calls the
    /// slot of that name.
    pub routes: Vec<Route>,
    /// How canaries are routed and judged.
    pub canary: CanaryConfig,
    /// Public keys (hex) whose signatures this server accepts.
    pub trusted_keys: Vec<String>,
    /// Refuse modules that carry no signature by a trusted key.
    pub require_signature: bool,
    /// How binary upgrades and drains run.
    pub upgrade: UpgradeConfig,
    /// Native plugins.
    pub native: NativeConfig,
    /// The eBPF tier.
    pub ebpf: EbpfConfig,
    /// wasi:http components.
    pub component: ComponentSection,
    /// The data plane over HTTPS; without it, plain HTTP. Either way
    /// HTTP/1.1 and HTTP/2 are served on the one listener.
    pub tls: Option<crate::http::tls::TlsConfig>,
}

/// Native plugins: shared libraries that run unsandboxed in the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NativeConfig {
    /// Whether to load native libraries at all.
    pub enabled: bool,
    /// Refuse native libraries that carry no signature by a trusted key,
    /// whatever `require_signature` says. On by default: a native library
    /// runs with the server's privileges, in its address space.
    pub require_signature: bool,
}

impl Default for NativeConfig {
    fn default() -> Self {
        NativeConfig {
            enabled: true,
            require_signature: true,
        }
    }
}

/// wasi:http components (docs/components.md): the limits each request runs
/// under, and where each slot's components may send requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComponentSection {
    /// Longest one request may run, from its instance's start to its last
    /// body byte (504 if it has not answered by then).
    pub deadline_ms: u64,
    /// Most memory one request's instance may have.
    pub memory_cap_mib: u64,
    /// Most component requests served at once, across all slots.
    pub max_instances: u32,
    /// Per slot, the hosts (`name` or `name:port`) its components may send
    /// requests to. A slot not listed may send none.
    pub outgoing: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for ComponentSection {
    fn default() -> Self {
        let d = hotswap_component::ComponentConfig::default();
        ComponentSection {
            deadline_ms: d.deadline.as_millis() as u64,
            memory_cap_mib: d.memory_cap >> 20,
            max_instances: d.max_instances,
            outgoing: Default::default(),
        }
    }
}

impl ComponentSection {
    /// The tier's settings these mean.
    pub fn tier(&self) -> hotswap_component::ComponentConfig {
        hotswap_component::ComponentConfig {
            deadline: Duration::from_millis(self.deadline_ms),
            memory_cap: self.memory_cap_mib << 20,
            max_instances: self.max_instances,
            ..hotswap_component::ComponentConfig::default()
        }
    }

    /// Each slot's outgoing policy, checked.
    pub fn outgoing(&self) -> Result<Vec<(String, hotswap_component::Outgoing)>, ConfigError> {
        self.outgoing
            .iter()
            .map(|(slot, hosts)| {
                hotswap_component::Outgoing::to(hosts)
                    .map(|o| (slot.clone(), o))
                    .map_err(|e| ConfigError::Invalid(format!("component.outgoing.{slot}: {e}")))
            })
            .collect()
    }
}

/// The eBPF tier: where its programs are pinned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EbpfConfig {
    /// Whether to offer it at all. When it is on but this process cannot
    /// use BPF (not root, no bpffs), the eBPF endpoints say why.
    pub enabled: bool,
    /// The directory on bpffs where each program gets its namespace.
    pub pin_root: PathBuf,
}

impl Default for EbpfConfig {
    fn default() -> Self {
        EbpfConfig {
            enabled: true,
            pin_root: PathBuf::from(hotswap_ebpf::DEFAULT_ROOT),
        }
    }
}

/// How binary upgrades (and the drain at shutdown) run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpgradeConfig {
    /// The binary an upgrade starts; by default the path this one was
    /// started from (install the new binary there, then upgrade).
    pub binary: Option<PathBuf>,
    /// How long the new process may take to be ready, in milliseconds.
    pub ready_timeout_ms: u64,
    /// How long it may take to serve once the old one let go, in milliseconds
    /// (it opens the store and restores the slots in that time).
    pub handover_timeout_ms: u64,
    /// How long requests in flight get to finish before they are cut, in
    /// milliseconds.
    pub drain_timeout_ms: u64,
    /// Keep-alive connections idle this long during a drain are closed, in
    /// milliseconds; busy ones close after their next response.
    pub drain_idle_ms: u64,
}

impl Default for UpgradeConfig {
    fn default() -> Self {
        UpgradeConfig {
            binary: None,
            ready_timeout_ms: 10_000,
            handover_timeout_ms: 30_000,
            drain_timeout_ms: 10_000,
            drain_idle_ms: 200,
        }
    }
}

/// How canaries are routed and judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanaryConfig {
    /// The request header whose value keeps a client on one revision.
    /// Without it, the client's address does when it is known (see
    /// `trusted_proxies` and `key_by_peer`); otherwise each request is
    /// routed by the canary's weight on its own.
    pub key_header: String,
    /// Peers (addresses or CIDR networks) that are proxies of this server:
    /// from them, and only from them, the client's address is read from
    /// `Forwarded` or `X-Forwarded-For`.
    pub trusted_proxies: Vec<String>,
    /// Whether a peer that is not a trusted proxy is itself the client, so
    /// that its address keeps it on one revision. Off by default: behind a
    /// load balancer every request would have one key, and go to one
    /// revision.
    pub key_by_peer: bool,
    /// The share of a canary's calls that may fail (0.0–1.0) over `window_secs`
    /// before it is rolled back automatically.
    pub error_budget: f64,
    /// The window the error rate is measured over, in seconds.
    pub window_secs: u64,
    /// Calls the canary must have served in the window before it is judged.
    pub min_calls: u64,
}

impl CanaryConfig {
    /// How requests are keyed for routing, as these settings say.
    pub(crate) fn key_policy(&self) -> Result<crate::http::client_key::KeyPolicy, ConfigError> {
        let header = axum::http::HeaderName::try_from(self.key_header.as_str()).map_err(|_| {
            ConfigError::Invalid(format!(
                "canary.key_header `{}` is not a header name",
                self.key_header
            ))
        })?;
        let trusted = self
            .trusted_proxies
            .iter()
            .map(|p| {
                let net = p.parse::<ipnet::IpNet>();
                net.or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::Invalid(format!(
                            "canary.trusted_proxies: `{p}` is neither an address nor a network like 10.0.0.0/8"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(crate::http::client_key::KeyPolicy::new(
            header,
            trusted,
            self.key_by_peer,
        ))
    }

    /// The error budget a canary started now is judged against, for the
    /// canary's state.
    pub fn budget(&self) -> hotswap_core::ErrorBudget {
        hotswap_core::ErrorBudget {
            max_failed_ppm: (self.error_budget.clamp(0.0, 1.0) * 1e6).round() as u32,
            window_secs: self.window_secs,
            min_calls: self.min_calls,
        }
    }
}

impl Default for CanaryConfig {
    fn default() -> Self {
        CanaryConfig {
            key_header: "x-hotswap-key".into(),
            trusted_proxies: Vec::new(),
            key_by_peer: false,
            error_budget: 0.05,
            window_secs: 30,
            min_calls: 20,
        }
    }
}

/// Limits WASM plugins run under (docs/abi.md). Native code cannot be
/// interrupted or fenced, so none of them applies to it (docs/native.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest one call may run, in milliseconds.
    pub deadline_ms: u64,
    /// Most memory one instance may have, in MiB.
    pub memory_cap_mib: u64,
    /// Most concurrent calls one revision serves.
    pub instance_cap: usize,
}

/// One HTTP path served by one slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The exact path, e.g. `/hello`.
    pub path: String,
    /// The slot that answers it.
    pub slot: String,
    /// Hand the plugin the whole request and read a status and headers from
    /// its answer (docs/abi.md, "Envelopes"); any method is routed. Without
    /// it, `POST` only, body in and body out.
    #[serde(default)]
    pub envelope: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: ([127, 0, 0, 1], 8080).into(),
            admin: ([127, 0, 0, 1], 8081).into(),
            data_dir: PathBuf::from(".hotswap"),
            admin_token: None,
            max_module_bytes: 32 << 20,
            deploy_example: true,
            event_retention: hotswap_store::DEFAULT_EVENT_RETENTION,
            migration_pause_ms: 250,
            kv_sync: hotswap_store::KvSync::default(),
            limits: Limits::default(),
            routes: Vec::new(),
            canary: CanaryConfig::default(),
            trusted_keys: Vec::new(),
            require_signature: false,
            upgrade: UpgradeConfig::default(),
            native: NativeConfig::default(),
            ebpf: EbpfConfig::default(),
            component: ComponentSection::default(),
            tls: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline_ms: 1000,
            memory_cap_mib: 64,
            instance_cap: 16,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The settings do not make sense.
    #[error("invalid setting: {0}")]
    Invalid(String),
    /// The certificate or key of `[tls]` cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::http::tls::TlsError),
}

impl ServerConfig {
    /// Reads a TOML file; what it does not name keeps its default.
    pub fn from_file(path: &std::path::Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// What the gateway's books and slots are opened with.
    pub fn gateway_options(&self) -> crate::GatewayOptions {
        crate::GatewayOptions {
            event_retention: self.event_retention,
            slots: hotswap_core::SlotOptions {
                pause_limit: std::time::Duration::from_millis(self.migration_pause_ms),
                ..hotswap_core::SlotOptions::default()
            },
            components: self.component.tier(),
        }
    }

    /// Checks the settings together.
    pub fn check(&self) -> Result<(), ConfigError> {
        if !(1..=10_000).contains(&self.migration_pause_ms) {
            return Err(ConfigError::Invalid(format!(
                "migration_pause_ms is {}; it must be 1-10000 (calls wait this long during a migration)",
                self.migration_pause_ms
            )));
        }
        if !self.admin.ip().is_loopback() && self.admin_token.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::Invalid(format!(
                "the admin API listens on {}, beyond loopback: set admin_token (or HOTSWAP_TOKEN)",
                self.admin
            )));
        }
        for r in &self.routes {
            if !r.path.starts_with('/') {
                return Err(ConfigError::Invalid(format!(
                    "route path `{}` must start with /",
                    r.path
                )));
            }
            hotswap_store::check_slot_name(&r.slot)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        self.wasm()
            .check()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        self.component
            .tier()
            .check()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for (slot, _) in self.component.outgoing()? {
            hotswap_store::check_slot_name(&slot)
                .map_err(|e| ConfigError::Invalid(format!("component.outgoing: {e}")))?;
        }
        if self.require_signature && self.trusted_keys.is_empty() {
            return Err(ConfigError::Invalid(
                "require_signature is set but trusted_keys is empty: no module could ever be deployed".into(),
            ));
        }
        self.trust()?;
        let u = &self.upgrade;
        if [
            u.ready_timeout_ms,
            u.handover_timeout_ms,
            u.drain_timeout_ms,
        ]
        .contains(&0)
        {
            return Err(ConfigError::Invalid(
                "upgrade timeouts must be above 0 ms".into(),
            ));
        }
        let c = &self.canary;
        if !(0.0..=1.0).contains(&c.error_budget) || c.window_secs == 0 {
            return Err(ConfigError::Invalid(
                "canary.error_budget must be within 0.0-1.0 and canary.window_secs above 0".into(),
            ));
        }
        c.key_policy()?;
        Ok(())
    }

    /// The signature policy these settings mean.
    pub fn trust(&self) -> Result<crate::domain::signing::Trust, ConfigError> {
        crate::domain::signing::Trust::new(&self.trusted_keys, self.require_signature)
            .map(|t| t.requiring_native(self.native.require_signature))
            .map_err(|e| ConfigError::Invalid(format!("trusted_keys: {e}")))
    }

    /// The WASM tier's settings these limits mean.
    pub fn wasm(&self) -> hotswap_wasm::WasmConfig {
        hotswap_wasm::WasmConfig {
            deadline: Duration::from_millis(self.limits.deadline_ms),
            memory_cap: self.limits.memory_cap_mib << 20,
            instance_cap: self.limits.instance_cap,
            ..hotswap_wasm::WasmConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example at the top of this file, as a user would copy it.
    fn documented() -> String {
        let source = include_str!("config.rs");
        let start = source
            .find("/// ```toml\n")
            .expect("the documented example")
            + 12;
        let end = start + source[start..].find("/// ```\n").expect("its end");
        source[start..end]
            .lines()
            .map(|l| l.strip_prefix("///").unwrap_or(l).trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_documented_example_parses_and_checks() {
        let config: ServerConfig = toml::from_str(&documented()).unwrap();
        config.check().unwrap();
        assert_eq!(config.component.deadline_ms, 10_000);
        let outgoing = config.component.outgoing().unwrap();
        assert_eq!(outgoing.len(), 1);
        assert!(outgoing[0].1.allows("127.0.0.1:8080"));
    }

    /// Every config snippet in docs/ is one a server would take.
    #[test]
    fn every_toml_block_in_the_docs_parses_and_checks() {
        let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs");
        let mut blocks = 0;
        for entry in std::fs::read_dir(docs).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for block in text.split("```toml\n").skip(1) {
                let block = block.split("```").next().unwrap();
                let config: ServerConfig = toml::from_str(block)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{block}", path.display()));
                config
                    .check()
                    .unwrap_or_else(|e| panic!("{}: {e}\n{block}", path.display()));
                blocks += 1;
            }
        }
        assert!(blocks >= 7, "found only {blocks} toml blocks in docs/");
    }

    #[test]
    fn a_bad_outgoing_host_is_an_error_that_names_it() {
        let config: ServerConfig = toml::from_str(
            r#"
            [component.outgoing]
            hello = ["http://api.example.com/path"]
            "#,
        )
        .unwrap();
        let e = config.check().unwrap_err().to_string();
        assert!(e.contains("component.outgoing.hello"), "{e}");
        assert!(e.contains("http://api.example.com/path"), "{e}");
    }
}
