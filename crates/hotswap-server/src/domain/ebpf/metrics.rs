//! The eBPF maps on `/metrics`, read at each scrape.

use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::Programs;

/// Entries of one map that `/metrics` exports at most: a map of counters
/// is small; a big one is policy, not a counter.
const METRIC_ENTRIES: usize = 1024;

/// Exports every program's number-valued hash and array maps as
/// `hotswap_ebpf_map_value{program, map, key}` (per-CPU maps summed), and
/// each program's `hotswap_ebpf_missed{program}` (always 0 for XDP, which
/// has no slot to miss), read at each scrape.
#[derive(Clone)]
pub(crate) struct MapCollector(pub(crate) Arc<Programs>);

impl std::fmt::Debug for MapCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MapCollector")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct MapLabels {
    program: String,
    map: String,
    key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ProgramLabels {
    program: String,
}

impl prometheus_client::collector::Collector for MapCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(tier) = self.0.tier() else {
            return Ok(());
        };
        let programs = tier.programs().unwrap_or_default();
        let mut values = Vec::new();
        let mut missed = Vec::new();
        for program in &programs {
            missed.push((program.clone(), tier.missed(program).unwrap_or(0)));
            for map in tier.maps(program).unwrap_or_default() {
                if !map.is_counters() {
                    continue;
                }
                let Ok((entries, _)) = map.dump(METRIC_ENTRIES) else {
                    continue;
                };
                for entry in entries {
                    let Some(v) = entry.value.as_f64() else {
                        continue;
                    };
                    values.push((
                        MapLabels {
                            program: program.clone(),
                            map: map.name().to_string(),
                            key: hotswap_ebpf::as_text(&entry.key),
                        },
                        v,
                    ));
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "ebpf_map_value",
            "Entries of eBPF maps that hold numbers (per-CPU maps summed), by program, map and key",
            None,
            MetricType::Gauge,
        )?;
        for (labels, v) in &values {
            ConstGauge::new(*v).encode(family.encode_family(labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "ebpf_missed",
            "Calls into a dispatched eBPF hook that found its program slot empty",
            None,
            MetricType::Gauge,
        )?;
        for (program, n) in missed {
            ConstGauge::new(n as i64).encode(family.encode_family(&ProgramLabels { program })?)?;
        }
        Ok(())
    }
}
