//! The SVG that `hotswap bench compare --plot` draws: the load and call
//! latency distributions of both tiers, as cumulative curves on log axes.

use std::path::Path;

use plotters::prelude::*;

use super::compare::Distributions;

const WASM: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const NATIVE: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// Draws two panels side by side, load latency (µs) and call latency (ns),
/// each with one cumulative curve per tier.
pub(super) fn draw(
    path: &Path,
    wasm: &Distributions,
    native: &Distributions,
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1200, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    panel(
        &left,
        "load: bytes on disk → ready to call",
        "µs (log)",
        &wasm.load_us,
        &native.load_us,
    )?;
    panel(
        &right,
        "call: 64-byte input, one thread",
        "ns (log)",
        &wasm.call_ns,
        &native.call_ns,
    )?;
    root.present()?;
    Ok(())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    unit: &str,
    wasm: &[f64],
    native: &[f64],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let (wasm, native) = (cdf(wasm), cdf(native));
    let values = || wasm.iter().chain(&native).map(|p| p.0);
    let lo = values().fold(f64::INFINITY, f64::min).max(1e-3);
    let hi = values().fold(0.0, f64::max).max(lo * 10.0);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo * 0.8..hi * 1.25).log_scale(), 0.0..100.0)?;
    chart
        .configure_mesh()
        .x_desc(unit)
        .y_desc("% of samples at or below")
        .draw()?;
    for (points, color, name) in [(wasm, WASM, "WASM"), (native, NATIVE, "native")] {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    Ok(())
}

/// The cumulative distribution of `samples` as (value, percent) points, at
/// most ~500 of them.
fn cdf(samples: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let step = (sorted.len() / 500).max(1);
    let n = sorted.len() as f64;
    sorted
        .iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i + 1 == sorted.len())
        .map(|(i, v)| (*v, (i + 1) as f64 / n * 100.0))
        .collect()
}
