//! A rollout's knobs read from text, one parser each, for every face of
//! the fleet (`hotswap fleet rollout`'s flags, the HotswapPlugin spec).

use std::time::Duration;

use hotswap_core::ErrorBudget;

/// Why a knob could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Not a wave list.
    #[error(transparent)]
    Waves(#[from] crate::WavesError),
    /// Not a duration.
    #[error("soak `{0}` is not a duration (e.g. 30s, 2m, 1h)")]
    Soak(String),
    /// Not a percent.
    #[error("error budget `{0}` is not a percent from 0% to 100% (e.g. 1%, 0.5%)")]
    Budget(String),
    /// A canary weight out of range.
    #[error("canary weight {0} is not 1 to 100 (percent of the first wave's calls)")]
    CanaryWeight(u64),
}

/// Reads a soak: `30s`, `2m`, `1h 30m`.
pub fn parse_soak(s: &str) -> Result<Duration, SpecError> {
    humantime::parse_duration(s.trim()).map_err(|_| SpecError::Soak(s.to_string()))
}

/// Reads an error budget, `1%` or `0.5%` (or without the sign), as parts
/// per million of calls.
pub fn parse_budget(s: &str) -> Result<u32, SpecError> {
    let bad = || SpecError::Budget(s.to_string());
    let p: f64 = s.trim().trim_end_matches('%').parse().map_err(|_| bad())?;
    if !(0.0..=100.0).contains(&p) {
        return Err(bad());
    }
    Ok((p * 10_000.0).round() as u32)
}

/// Checks a first wave's canary weight.
pub fn canary_weight(w: u64) -> Result<u8, SpecError> {
    match w {
        1..=100 => Ok(w as u8),
        _ => Err(SpecError::CanaryWeight(w)),
    }
}

/// The fleet-wide budget of a rollout: `max_failed_ppm` of the calls over
/// a wave's soak, judged once a wave served `min_calls`.
pub fn budget(max_failed_ppm: u32, soak: Duration, min_calls: u64) -> ErrorBudget {
    ErrorBudget {
        max_failed_ppm,
        window_secs: soak.as_secs().max(1),
        min_calls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knobs_parse_and_bad_ones_say_what_they_expected() {
        assert_eq!(parse_soak("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_budget("0.5%").unwrap(), 5_000);
        assert_eq!(parse_budget("1").unwrap(), 10_000);
        assert_eq!(canary_weight(100).unwrap(), 100);
        for bad in ["101%", "-1%", "lots"] {
            let e = parse_budget(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("0% to 100%"), "{e}");
        }
        assert!(parse_soak("soon").unwrap_err().to_string().contains("30s"));
        assert!(canary_weight(0).is_err());
    }
}
