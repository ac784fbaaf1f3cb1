//! What one cycle of `hotswap watch` reports: one line a person reads at a
//! glance, or one JSON object with the same facts.

use hotswap_core::Digest;
use serde::Serialize;

/// One cycle: what changed, and what came of it. The field names are the
/// stable keys of `--json`, one object per line.
#[derive(Serialize, Default)]
pub struct Cycle {
    /// The watched source.
    pub source: String,
    /// The file whose change started the cycle, or `start`.
    pub changed: String,
    /// `wasm` (a plugin, deployed to a slot) or `ebpf` (a program).
    pub tier: &'static str,
    /// The slot deployed to, once known (a plugin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// The program replaced or loaded (eBPF).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// How long the build took (0 when a cached build was used).
    pub build_ms: f64,
    /// The build came from the cache: this source was built before.
    pub cached: bool,
    /// Whether it passed validation: the ABI check for a plugin, the
    /// kernel's verifier and the map check for an eBPF program.
    pub valid: bool,
    /// The build's digest is the one already deployed: nothing was swapped.
    pub unchanged: bool,
    /// How long the deploy took, upload to serving.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_ms: Option<f64>,
    /// The plugin's version, from its manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The slot's generation now serving (a plugin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// The program's revision now running (eBPF).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// eBPF: `true` when this cycle attached the program for the first
    /// time, `false` when it replaced the running one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached: Option<bool>,
    /// eBPF: the kernel's part of the swap alone (link update or slot
    /// write), in µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_swap_us: Option<u64>,
    /// eBPF: the program's maps, kept with their entries on a replacement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maps: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// What failed: `build`, `validate` or `deploy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<&'static str>,
    /// Why, in full (the compiler's or validator's own words); what served
    /// before keeps serving.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Cycle {
    /// Records a failure at `stage`; the cycle ends there.
    pub fn fail(&mut self, stage: &'static str, error: impl Into<String>) -> bool {
        self.failed = Some(stage);
        self.error = Some(error.into());
        false
    }

    /// Prints it: one JSON line, or a line (plus the error's lines) for people.
    pub fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string(self).expect("a cycle serialises")
            );
        } else {
            println!("{}", self.text());
        }
    }

    fn text(&self) -> String {
        let digest = self.digest.map(|d| d.short()).unwrap_or_default();
        let target = match (&self.slot, &self.program) {
            (_, Some(p)) => format!("eBPF program `{p}`"),
            (Some(s), None) => format!("slot `{s}`"),
            (None, None) => "the slot".to_string(),
        };
        if let Some(e) = &self.error {
            let mut text = format!(
                "✗ {}: {} failed; {target} keeps running what it ran",
                self.changed,
                self.failed.unwrap_or("cycle")
            );
            for line in e.lines() {
                text.push_str("\n    ");
                text.push_str(line);
            }
            return text;
        }
        if self.unchanged {
            return format!(
                "= {}: same code as deployed (sha256:{digest}); nothing swapped",
                self.changed
            );
        }
        let built = if self.cached {
            "cached build".to_string()
        } else {
            format!("built in {} ms", self.build_ms)
        };
        let swap = self.swap_ms.unwrap_or(0.0);
        match &self.program {
            Some(p) => {
                let (verb, maps) = match self.attached {
                    Some(true) => ("attached", "maps"),
                    _ => ("replaced", "maps kept"),
                };
                let maps = match self.maps.as_deref() {
                    Some([]) | None => String::new(),
                    Some(names) => format!(", {maps}: {}", names.join(", ")),
                };
                format!(
                    "✓ {}: {built}, verified, {verb} in {swap} ms (kernel swap {} µs) → `{p}` revision {}{maps} (sha256:{digest})",
                    self.changed,
                    self.kernel_swap_us.unwrap_or(0),
                    self.revision.unwrap_or(0),
                )
            }
            None => format!(
                "✓ {}: {built}, valid, swapped in {swap} ms → {target} {} (sha256:{digest}, generation {})",
                self.changed,
                self.version.as_deref().unwrap_or("?"),
                self.generation.unwrap_or(0),
            ),
        }
    }
}
