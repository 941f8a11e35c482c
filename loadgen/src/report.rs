//! A run's summary for people: a table of its latency percentiles and of each second's
//! throughput and p99, and an SVG plot of the same seconds (no plotting dependency: the SVG is
//! written as text).

use std::fmt::Write;

use hdrhistogram::Histogram;

use crate::driver::Summary;

const PERCENTILES: [(&str, f64); 4] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];

fn millis(micros: u64) -> String {
    format!("{:.2}", micros as f64 / 1000.0)
}

/// One row of latency: its label, then each percentile and the maximum, in ms.
fn latency_row(out: &mut String, label: &str, histogram: &Histogram<u64>) {
    let _ = write!(out, "{label:<14}");
    for (_, q) in PERCENTILES {
        let _ = write!(out, "{:>10}", millis(histogram.value_at_quantile(q)));
    }
    let _ = writeln!(out, "{:>10}", millis(histogram.max()));
}

/// The latency percentiles and the seconds of the run, as aligned text.
pub fn table(summary: &Summary) -> String {
    let mut out = String::new();
    let _ = write!(out, "{:<14}", "latency ms");
    for (name, _) in PERCENTILES {
        let _ = write!(out, "{name:>10}");
    }
    let _ = writeln!(out, "{:>10}", "max");
    latency_row(&mut out, "requests", &summary.latency);
    if summary.open_loop_rate.is_some() {
        latency_row(&mut out, "send lag", &summary.send_lag);
    }
    let _ = writeln!(out, "{:<14}{:>12}{:>10}", "second", "messages", "p99 ms");
    for (second, (messages, p99)) in summary
        .per_second
        .iter()
        .zip(&summary.p99_per_second)
        .enumerate()
    {
        let _ = writeln!(out, "{second:<14}{messages:>12}{:>10}", millis(*p99));
    }
    out
}

/// Throughput per second as bars (left axis) and each second's p99 latency as a line (right
/// axis).
pub fn plot_svg(summary: &Summary, title: &str) -> String {
    let (width, height, pad) = (720.0, 300.0, 56.0);
    let rates = &summary.per_second;
    let top_rate = rates.iter().copied().max().unwrap_or(0).max(1) as f64;
    let top_ms = summary
        .p99_per_second
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64
        / 1000.0;
    let step = (width - 2.0 * pad) / rates.len().max(1) as f64;
    let plot_height = height - 2.0 * pad;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{pad}" y="18" font-size="13">{}</text>"#,
        escape(title)
    );
    let _ = writeln!(
        out,
        r##"<line x1="{pad}" y1="{0}" x2="{1}" y2="{0}" stroke="#333"/>"##,
        height - pad,
        width - pad
    );
    let _ = writeln!(out, r#"<text x="4" y="{pad}">{top_rate:.0}/s</text>"#);
    let _ = writeln!(out, r#"<text x="4" y="{}">0</text>"#, height - pad);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}">seconds</text>"#,
        width / 2.0 - 20.0,
        height - 15.0
    );
    for (i, rate) in rates.iter().enumerate() {
        let bar = plot_height * *rate as f64 / top_rate;
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bar:.1}" fill="#7aa6d8"/>"##,
            pad + i as f64 * step,
            height - pad - bar,
            (step - 1.0).max(1.0)
        );
    }
    let points: Vec<String> = summary
        .p99_per_second
        .iter()
        .enumerate()
        .map(|(i, p99)| {
            let y = height - pad - plot_height * (*p99 as f64 / 1000.0) / top_ms;
            format!("{:.1},{y:.1}", pad + (i as f64 + 0.5) * step)
        })
        .collect();
    if !points.is_empty() {
        let _ = writeln!(
            out,
            r##"<polyline points="{}" fill="none" stroke="#c0392b" stroke-width="2"/>"##,
            points.join(" ")
        );
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{pad}" fill="#c0392b" text-anchor="end">{top_ms:.1} ms</text>"##,
            width - 4.0
        );
        let _ = writeln!(
            out,
            r##"<text x="{}" y="36" fill="#c0392b">line: p99 latency (right axis)</text>"##,
            pad + 150.0
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{pad}" y="36" fill="#4a76a8">bars: messages/s</text>"##
    );
    out.push_str("</svg>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        let mut latency = Histogram::<u64>::new(3).expect("histogram");
        for micros in [1_000, 2_000, 3_000, 50_000] {
            latency.record(micros).expect("recorded");
        }
        Summary {
            messages: 30,
            accepted: 30,
            other: 0,
            seconds: 2.0,
            latency,
            send_lag: Histogram::new(3).expect("histogram"),
            per_second: vec![10, 20],
            p99_per_second: vec![3_000, 50_000],
            open_loop_rate: None,
            first_not_accepted: None,
        }
    }

    #[test]
    fn the_table_lists_the_percentiles_and_every_second() {
        let table = table(&summary());
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("p99.9"), "{table}");
        assert!(lines[1].starts_with("requests"), "{table}");
        assert!(lines[1].contains(" 50.0"), "the max, in ms: {table}");
        assert!(!table.contains("send lag"), "closed loop: no send lag");
        assert_eq!(
            lines.len(),
            2 + 1 + 2,
            "header, requests, seconds header, two seconds"
        );
        assert!(
            lines[4].contains("20") && lines[4].trim_end().ends_with("50.00"),
            "{table}"
        );
    }

    #[test]
    fn the_plot_has_a_bar_per_second_scaled_to_the_busiest_and_the_p99_line() {
        let svg = plot_svg(&summary(), "run <1>");
        assert_eq!(svg.matches("<rect").count(), 2);
        // The busiest second's bar is the plot's full height (300 - 2 * 56), the other half.
        assert!(svg.contains(r#"height="188.0""#), "{svg}");
        assert!(svg.contains(r#"height="94.0""#), "{svg}");
        assert!(svg.contains("<polyline"), "{svg}");
        assert!(svg.contains("run &lt;1&gt;"), "the title is escaped");
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
