//! The benchmarks' PNG plots: line charts (frames/s against streams), stacked bars (time per frame by stage)
//! and the DET plot (FNIR against FPIR on a log axis, one curve per list size and rule).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub colour: RGBColor,
    pub dashed: bool,
}

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Gives plotters its one font (it has none built in).
pub fn use_font() -> Result<()> {
    let font =
        std::fs::read(FONT).map_err(|e| anyhow!("{FONT}: {e} (apt install fonts-dejavu-core)"))?;
    // plotters keeps the font for the process; registering it twice is harmless.
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, font).map_err(|_| anyhow!("{FONT}: not a font"))
}

/// A plain line chart on linear axes from zero: one curve per series, points marked.
pub fn lines(path: &Path, title: &str, x_desc: &str, y_desc: &str, curves: &[Curve]) -> Result<()> {
    use_font()?;
    let pts = curves.iter().flat_map(|c| c.points.iter());
    let x_max = pts.clone().map(|p| p.0).fold(1.0, f64::max) * 1.1;
    let y_max = pts.map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let root = BitMapBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0f64..x_max, 0.0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    for c in curves {
        let style = ShapeStyle::from(&c.colour).stroke_width(2);
        let colour = c.colour;
        let series = if c.dashed {
            chart.draw_series(DashedLineSeries::new(c.points.clone(), 6, 4, style))?
        } else {
            chart.draw_series(LineSeries::new(c.points.clone(), style))?
        };
        series
            .label(c.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        chart.draw_series(
            c.points
                .iter()
                .map(|&p| Circle::new(p, 4, ShapeStyle::from(&colour).filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// One bar of a stacked chart: its label and one value per part, bottom up.
pub struct StackedBar {
    pub label: String,
    pub parts: Vec<f64>,
}

/// Colours of the stacked parts, bottom up (matplotlib's tab10).
const PART_COLOURS: [RGBColor; 10] = [
    RGBColor(127, 127, 127),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Stacked bars, one per entry of `bars`, with `parts` naming the stacked pieces in the legend.
pub fn stacked_bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    parts: &[&str],
    bars: &[StackedBar],
) -> Result<()> {
    use_font()?;
    let y_max = bars
        .iter()
        .map(|b| b.parts.iter().sum::<f64>())
        .fold(1.0, f64::max)
        * 1.5;
    let root = BitMapBackend::new(path, (1100, 680)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = bars.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0.0f64..y_max)?;
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .draw()?;
    for (k, name) in parts.iter().enumerate() {
        let colour = PART_COLOURS[k % PART_COLOURS.len()];
        let rects = bars.iter().enumerate().map(|(i, b)| {
            let below: f64 = b.parts.iter().take(k).sum();
            let v = b.parts.get(k).copied().unwrap_or(0.0);
            let x = i as f64;
            Rectangle::new([(x - 0.3, below), (x + 0.3, below + v)], colour.filled())
        });
        chart
            .draw_series(rects)?
            .label(name.to_string())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

pub fn det(path: &Path, title: &str, curves: &[Curve]) -> Result<()> {
    use_font()?;
    let root = BitMapBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((1e-4f64..1.0f64).log_scale(), 0.0f64..0.6f64)?;
    chart
        .configure_mesh()
        .x_desc("FPIR (share of strangers raising a candidate)")
        .y_desc("FNIR (share of listed people missed)")
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .draw()?;
    for c in curves {
        let pts: Vec<(f64, f64)> = c
            .points
            .iter()
            .copied()
            .filter(|(x, _)| *x >= 1e-4)
            .collect();
        let style = ShapeStyle::from(&c.colour).stroke_width(2);
        let series = if c.dashed {
            chart.draw_series(DashedLineSeries::new(pts, 6, 4, style))?
        } else {
            chart.draw_series(LineSeries::new(pts, style))?
        };
        let colour = c.colour;
        series
            .label(c.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
