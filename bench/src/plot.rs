//! The fan-out plot (`--plot FILE`): p99 latency and server CPU against the number of clients
//! at 1 Mbit/s, one line per server, as a small SVG written by hand (two panels, log-scale
//! clients, log-scale latency, linear CPU, a legend). Pure: it turns points into text; `main`
//! writes the file.

use std::fmt::Write as _;

/// One measured step of one server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Clients in the step.
    pub clients: usize,
    /// p99 latency, ms.
    pub p99_ms: f64,
    /// Server CPU, % of one core.
    pub cpu_pct: f64,
    /// Met the step's target (p99 ≤ 50 ms, no loss): drawn filled, else hollow.
    pub ok: bool,
}

/// One server's line.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Stroke and fill colour (SVG colour syntax).
    pub color: &'static str,
    /// Its steps, in any order.
    pub points: Vec<Point>,
}

/// The latency the capacity rows are judged on, drawn as a dashed line.
const P99_LIMIT_MS: f64 = 50.0;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 330.0;
/// Each panel's plot area.
const PANEL_W: f64 = 290.0;
const PANEL_H: f64 = 200.0;
const TOP: f64 = 78.0;
const LEFT: [f64; 2] = [70.0, 440.0];

/// Maps a data interval onto a pixel interval, linearly or on a log scale.
#[derive(Debug, Clone, Copy)]
struct Scale {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
    log: bool,
}

impl Scale {
    fn map(&self, v: f64) -> f64 {
        let f = |x: f64| {
            if self.log {
                x.max(f64::MIN_POSITIVE).ln()
            } else {
                x
            }
        };
        let span = f(self.d1) - f(self.d0);
        if span == 0.0 {
            return (self.r0 + self.r1) / 2.0;
        }
        self.r0 + (f(v) - f(self.d0)) / span * (self.r1 - self.r0)
    }
}

/// The powers of ten from the one at or below `lo` to the one at or above `hi`.
fn decades(lo: f64, hi: f64) -> Vec<f64> {
    let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    (a..=b.max(a + 1)).map(|e| 10f64.powi(e)).collect()
}

/// A round upper bound for the CPU axis: a multiple of 50 %, at least 100 %.
fn cpu_top(max: f64) -> f64 {
    ((max / 50.0).ceil() * 50.0).max(100.0)
}

/// A tick label: no trailing zeros.
fn num(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG text of the plot, headed by `title` and `subtitle` (e.g. the date and machine).
pub fn svg(title: &str, subtitle: &str, series: &[Series]) -> String {
    let all: Vec<&Point> = series.iter().flat_map(|s| &s.points).collect();
    let clients = |f: fn(usize, usize) -> usize| all.iter().map(|p| p.clients).reduce(f);
    let (c0, c1) = (
        clients(usize::min).unwrap_or(100) as f64,
        clients(usize::max).unwrap_or(3200) as f64,
    );
    let p99s = all.iter().map(|p| p.p99_ms).filter(|v| *v > 0.0);
    let p99_lo = p99s.clone().fold(f64::INFINITY, f64::min).min(1.0);
    let p99_hi = p99s.fold(P99_LIMIT_MS * 2.0, f64::max);
    let p99_ticks = decades(p99_lo, p99_hi);
    let cpu_hi = cpu_top(all.iter().map(|p| p.cpu_pct).fold(0.0, f64::max));
    let x = |panel: usize| Scale {
        d0: c0,
        d1: c1,
        r0: LEFT[panel],
        r1: LEFT[panel] + PANEL_W,
        log: true,
    };
    let y_p99 = Scale {
        d0: p99_ticks[0],
        d1: *p99_ticks.last().expect("at least two decades"),
        r0: TOP + PANEL_H,
        r1: TOP,
        log: true,
    };
    let y_cpu = Scale {
        d0: 0.0,
        d1: cpu_hi,
        r0: TOP + PANEL_H,
        r1: TOP,
        log: false,
    };
    let cpu_ticks: Vec<f64> = (0..=(cpu_hi / 50.0) as usize)
        .map(|i| i as f64 * 50.0)
        .collect();
    let mut steps: Vec<usize> = all.iter().map(|p| p.clients).collect();
    steps.sort_unstable();
    steps.dedup();

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>
<text x="{}" y="20" text-anchor="middle" font-size="15" font-weight="bold">{}</text>
<text x="{}" y="38" text-anchor="middle" fill="#555">{}</text>"##,
        WIDTH / 2.0,
        escape(title),
        WIDTH / 2.0,
        escape(subtitle)
    );
    let panels = [
        ("p99 latency (ms, log scale)", y_p99, &p99_ticks),
        ("server CPU (% of one core)", y_cpu, &cpu_ticks),
    ];
    for (i, (name, y, ticks)) in panels.iter().enumerate() {
        let x = x(i);
        let (l, r, b) = (LEFT[i], LEFT[i] + PANEL_W, TOP + PANEL_H);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{name}</text>"#,
            l + PANEL_W / 2.0,
            TOP - 8.0
        );
        for t in ticks.iter() {
            let ty = y.map(*t);
            let _ = writeln!(
                s,
                r##"<line x1="{l}" y1="{ty:.1}" x2="{r}" y2="{ty:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                l - 5.0,
                ty + 4.0,
                num(*t)
            );
        }
        for c in &steps {
            let tx = x.map(*c as f64);
            let _ = writeln!(
                s,
                r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{b}" stroke="#eee"/><text x="{tx:.1}" y="{}" text-anchor="middle">{c}</text>"##,
                b + 16.0
            );
        }
        let _ = writeln!(
            s,
            r#"<rect x="{l}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">clients at 1 Mbit/s (log scale)</text>"#,
            l + PANEL_W / 2.0,
            b + 34.0
        );
        if i == 0 {
            let ly = y.map(P99_LIMIT_MS);
            let _ = writeln!(
                s,
                r##"<line x1="{l}" y1="{ly:.1}" x2="{r}" y2="{ly:.1}" stroke="#c00" stroke-dasharray="5,4"/><text x="{}" y="{:.1}" fill="#c00">{} ms</text>"##,
                l + 4.0,
                ly - 4.0,
                num(P99_LIMIT_MS)
            );
        }
        for se in series {
            let mut pts: Vec<&Point> = se.points.iter().collect();
            pts.sort_by_key(|p| p.clients);
            let value = |p: &Point| if i == 0 { p.p99_ms } else { p.cpu_pct };
            let coords: Vec<String> = pts
                .iter()
                .map(|p| format!("{:.1},{:.1}", x.map(p.clients as f64), y.map(value(p))))
                .collect();
            if coords.len() > 1 {
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
                    coords.join(" "),
                    se.color
                );
            }
            for p in pts {
                let fill = if p.ok { se.color } else { "white" };
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{fill}" stroke="{}" stroke-width="2"/>"#,
                    x.map(p.clients as f64),
                    y.map(value(p)),
                    se.color
                );
            }
        }
    }
    let mut lx = LEFT[0];
    for se in series {
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="48" width="14" height="4" fill="{}"/><text x="{}" y="54">{}</text>"#,
            se.color,
            lx + 20.0,
            escape(&se.label)
        );
        lx += 30.0 + 8.0 * se.label.chars().count() as f64;
    }
    let _ = writeln!(
        s,
        r##"<text x="{}" y="54" text-anchor="end" fill="#555">hollow: loss, or p99 over {} ms</text>"##,
        LEFT[1] + PANEL_W,
        num(P99_LIMIT_MS)
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_scale_puts_the_geometric_mean_in_the_middle() {
        let s = Scale {
            d0: 100.0,
            d1: 3200.0,
            r0: 0.0,
            r1: 500.0,
            log: true,
        };
        assert!((s.map(100.0) - 0.0).abs() < 1e-9);
        assert!((s.map(3200.0) - 500.0).abs() < 1e-9);
        assert!((s.map((100.0f64 * 3200.0).sqrt()) - 250.0).abs() < 1e-9);
    }

    #[test]
    fn linear_scale_can_run_downwards_as_svg_y_does() {
        let s = Scale {
            d0: 0.0,
            d1: 200.0,
            r0: 300.0,
            r1: 100.0,
            log: false,
        };
        assert_eq!(s.map(0.0), 300.0);
        assert_eq!(s.map(100.0), 200.0);
        assert_eq!(s.map(200.0), 100.0);
    }

    #[test]
    fn axes_round_out_to_decades_and_half_cores() {
        assert_eq!(decades(0.3, 60.0), vec![0.1, 1.0, 10.0, 100.0]);
        assert_eq!(decades(1.0, 1.0), vec![1.0, 10.0]);
        assert_eq!(cpu_top(12.0), 100.0);
        assert_eq!(cpu_top(130.0), 150.0);
        assert_eq!(num(0.1), "0.1");
        assert_eq!(num(100.0), "100");
    }

    #[test]
    fn draws_one_line_per_server_with_its_legend() {
        let point = |clients, p99_ms, cpu_pct, ok| Point {
            clients,
            p99_ms,
            cpu_pct,
            ok,
        };
        let series = [
            Series {
                label: "voyandz".into(),
                color: "#1f77b4",
                points: vec![point(400, 2.0, 40.0, true), point(100, 0.5, 10.0, true)],
            },
            Series {
                label: "icecast <2.4>".into(),
                color: "#ff7f0e",
                points: vec![point(100, 12.0, 5.0, true), point(3200, 80.0, 90.0, false)],
            },
        ];
        let text = svg("fan-out", "2026-12-04, 2 cores", &series);
        assert!(text.starts_with("<svg ") && text.ends_with("</svg>\n"));
        assert_eq!(text.matches("<polyline").count(), 4, "2 servers × 2 panels");
        assert_eq!(text.matches("<circle").count(), 8);
        assert_eq!(
            text.matches(r##"fill="white" stroke="#ff7f0e""##).count(),
            2
        );
        assert!(text.contains("icecast &lt;2.4&gt;"));
        assert!(text.contains(">3200</text>") && text.contains(">50 ms</text>"));
        // The x axis spans the steps measured: the smallest at the left edge of each panel.
        assert!(text.contains(r#"<text x="70.0" y="294" text-anchor="middle">100</text>"#));
    }
}
