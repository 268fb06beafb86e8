//! A drill report as one self-contained HTML page: inline CSS, an inline SVG timeline
//! (fault, detected, each step, first success, in time order, labelled in ms after the
//! fault) and an inline SVG chart of the canary's write latency with failed writes
//! marked. Nothing is fetched: no script, font, image, stylesheet or link. Every text
//! taken from the report is escaped.

use std::fmt::Write;

use crate::drill::{DrillReport, LatencySummary, Objective, SampleTime, TimelineEvent};

/// Width of both charts, in SVG units.
const WIDTH: f64 = 900.0;
/// Where the timeline's plot starts: labels sit to its left.
const PLOT_LEFT: f64 = 300.0;
const PLOT_RIGHT: f64 = WIDTH - 30.0;
const ROW: f64 = 22.0;
const CHART_HEIGHT: f64 = 260.0;

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:960px;\
color:#1d2330;background:#fff}h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em}\
.sub{color:#556}table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #cdd3dc;padding:.3em .7em;\
text-align:left}th{background:#f2f4f7}.met{color:#146c2e;font-weight:600}.missed{color:#b3261e;font-weight:600}\
svg{display:block;margin:.5em 0;font-size:12px}svg text{fill:#1d2330}svg .axis{stroke:#9aa3b0}\
svg .grid{stroke:#e6e9ee}svg .milestone{fill:#2f5fb3}svg .fault{fill:#b3261e}svg .span{fill:#6fa36f}\
svg .ack{fill:#2f5fb3}svg .failed{stroke:#b3261e;stroke-width:1.5}svg .mark{stroke:#b3261e;stroke-dasharray:4 3}\
svg .ms{fill:#556}";

/// `text` made safe inside HTML and SVG text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl DrillReport {
    /// The report as one HTML page that needs nothing else to render.
    pub fn to_html(&self) -> String {
        let ms = |v: Option<u64>| v.map_or_else(|| "—".to_string(), |v| format!("{v} ms"));
        let met = |o: &Objective| {
            if o.met { r#"<span class="met">met</span>"# } else { r#"<span class="missed">MISSED</span>"# }
        };
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>\
             <title>Drill report: {plan}</title><style>{STYLE}</style></head><body>\n\
             <h1>Drill report: {plan}</h1>\n\
             <p class=\"sub\">Fault <code>{fault}</code>, {repl} replication, {from} → {to}, run <code>{run}</code> ({state}).</p>\n\
             <table><tr><th>measure</th><th>value</th><th>objective</th></tr>\
             <tr><td>RTO (client-observed)</td><td>{rto}</td><td>{rto_t} ms ({rto_met})</td></tr>\
             <tr><td>RPO</td><td>{rpo} ms</td><td>{rpo_t} ms ({rpo_met})</td></tr>\
             <tr><td>lost acknowledged writes</td><td>{lost}</td><td>0</td></tr>\
             <tr><td>writes attempted / acknowledged</td><td>{att} / {ack}</td><td></td></tr></table>\n",
            plan = escape(&self.plan),
            fault = escape(&self.fault),
            repl = escape(&self.replication),
            from = escape(&self.from),
            to = escape(&self.to),
            run = escape(self.run_id.as_deref().unwrap_or("none")),
            state = escape(&self.run_state),
            rto = ms(self.rto_ms),
            rto_t = self.objectives.rto.target_ms,
            rto_met = met(&self.objectives.rto),
            rpo = self.rpo_ms,
            rpo_t = self.objectives.rpo.target_ms,
            rpo_met = met(&self.objectives.rpo),
            lost = self.lost_acknowledged_writes,
            att = self.writes.attempted,
            ack = self.writes.acknowledged,
        );
        out.push_str("<h2>Timeline (ms after the fault)</h2>\n");
        out.push_str(&timeline_svg(&self.timeline_events()));
        out.push_str("<h2>Canary write latency</h2>\n");
        match LatencySummary::of(&self.samples) {
            Some(l) => {
                let _ = writeln!(
                    out,
                    "<p>{} writes sent, {} failed (marked ×); acknowledged in {} ms median, {} ms at the 99th \
                     percentile, {} ms at most.</p>",
                    self.samples.len(),
                    l.failed,
                    l.p50_ms,
                    l.p99_ms,
                    l.max_ms
                );
                out.push_str(&latency_svg(&self.samples, self.timeline.first_success));
            }
            None => out.push_str("<p>No write of the canary was recorded as acknowledged.</p>\n"),
        }
        if !self.lost_sequences.is_empty() {
            let seqs: Vec<String> = self.lost_sequences.iter().map(u64::to_string).collect();
            let _ = writeln!(out, "<h2>Lost writes</h2>\n<p>Sequence numbers: {}</p>", seqs.join(", "));
        }
        if !self.scale_restored.is_empty() {
            out.push_str("<h2>Compute set back</h2>\n<ul>");
            for line in &self.scale_restored {
                let _ = write!(out, "<li>{}</li>", escape(line));
            }
            out.push_str("</ul>\n");
        }
        out.push_str("</body></html>\n");
        out
    }
}

/// Where `t` falls on an axis from `lo` to `hi` drawn from `left` to `right`.
fn scale(t: f64, lo: f64, hi: f64, left: f64, right: f64) -> f64 {
    if hi <= lo { left } else { left + (t - lo) * (right - left) / (hi - lo) }
}

/// One row per event, in time order: its label and time at the left, a marker (a
/// milestone) or a bar (a step, from its start to its end) on a shared ms axis.
fn timeline_svg(events: &[TimelineEvent]) -> String {
    let end = events.iter().map(|e| e.until_ms.unwrap_or(e.at_ms).max(e.at_ms)).max().unwrap_or(0).max(1) as f64;
    let top = 24.0;
    let height = top + ROW * events.len() as f64 + 12.0;
    let x = |t: u64| scale(t as f64, 0.0, end, PLOT_LEFT, PLOT_RIGHT);
    let mut svg = format!(
        "<svg class=\"timeline\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"drill timeline\">\n"
    );
    for tick in ticks(0.0, end) {
        let tx = scale(tick, 0.0, end, PLOT_LEFT, PLOT_RIGHT);
        let _ = writeln!(
            svg,
            "<line class=\"grid\" x1=\"{tx:.1}\" y1=\"{top}\" x2=\"{tx:.1}\" y2=\"{}\"/>\
             <text class=\"ms\" x=\"{tx:.1}\" y=\"14\" text-anchor=\"middle\">{tick}</text>",
            height - 8.0
        );
    }
    for (row, event) in events.iter().enumerate() {
        let y = top + ROW * row as f64 + ROW / 2.0;
        let kind = if event.milestone { "milestone" } else { "step" };
        let _ = write!(
            svg,
            "<g class=\"event {kind}\" data-at-ms=\"{at}\"><text x=\"8\" y=\"{ty:.1}\">{label}</text>\
             <text class=\"ms\" x=\"{msx}\" y=\"{ty:.1}\" text-anchor=\"end\">+{at} ms</text>",
            at = event.at_ms,
            ty = y + 4.0,
            label = escape(&event.label),
            msx = PLOT_LEFT - 10.0,
        );
        let from = x(event.at_ms);
        match event.until_ms {
            Some(until) if !event.milestone => {
                let w = (x(until) - from).max(2.0);
                let _ = write!(
                    svg,
                    "<rect class=\"span\" x=\"{from:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"10\"/>",
                    y - 5.0
                );
            }
            _ => {
                let class = if event.label == "fault" { "fault" } else { "milestone" };
                let _ = write!(svg, "<path class=\"{class}\" d=\"M{from:.1} {:.1} l6 6 l-6 6 l-6 -6 z\"/>", y - 6.0);
            }
        }
        svg.push_str("</g>\n");
    }
    svg.push_str("</svg>\n");
    svg
}

/// Latency (y) of each write against when it was sent (x, ms after the fault): a dot per
/// acknowledged write, a cross at the top per failed one, dashed lines at the fault and
/// at the first success.
fn latency_svg(samples: &[SampleTime], first_success: Option<u64>) -> String {
    let (left, right, top, bottom) = (60.0, WIDTH - 20.0, 16.0, CHART_HEIGHT - 30.0);
    let lo = samples.iter().map(|s| s.sent_ms).min().unwrap_or(0).min(0) as f64;
    let hi = samples.iter().map(|s| s.sent_ms).max().unwrap_or(0).max(1) as f64;
    let worst = samples.iter().filter_map(|s| s.latency_ms).max().unwrap_or(1).max(1) as f64;
    let x = |t: f64| scale(t, lo, hi, left, right);
    // Failed writes sit in a band above the highest acknowledged one, the marks' labels
    // between the two.
    let y = |ms: f64| scale(ms, 0.0, worst, bottom, top + 30.0);
    let mut svg = format!(
        "<svg class=\"latency\" width=\"{WIDTH}\" height=\"{CHART_HEIGHT}\" viewBox=\"0 0 {WIDTH} {CHART_HEIGHT}\" \
         role=\"img\" aria-label=\"canary write latency\">\n\
         <line class=\"axis\" x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\"/>\
         <line class=\"axis\" x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\"/>\n"
    );
    for tick in ticks(lo, hi) {
        let _ = writeln!(
            svg,
            "<text class=\"ms\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{tick}</text>",
            x(tick),
            bottom + 16.0
        );
    }
    for tick in ticks(0.0, worst) {
        let _ = writeln!(
            svg,
            "<line class=\"grid\" x1=\"{left}\" y1=\"{ty:.1}\" x2=\"{right}\" y2=\"{ty:.1}\"/>\
             <text class=\"ms\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{tick}</text>",
            left - 6.0,
            y(tick) + 4.0,
            ty = y(tick)
        );
    }
    let _ = writeln!(
        svg,
        "<text class=\"ms\" x=\"{right}\" y=\"{}\" text-anchor=\"end\">ms after the fault</text>\
         <text class=\"ms\" x=\"{left}\" y=\"10\">latency (ms)</text>",
        CHART_HEIGHT - 2.0
    );
    for (label, at) in [("fault", Some(0)), ("first success", first_success)] {
        let Some(at) = at else { continue };
        let mx = x(at as f64);
        let _ = writeln!(
            svg,
            "<line class=\"mark\" x1=\"{mx:.1}\" y1=\"{top}\" x2=\"{mx:.1}\" y2=\"{bottom}\"/>\
             <text class=\"ms\" x=\"{:.1}\" y=\"{}\">{label}</text>",
            mx + 4.0,
            top + 22.0
        );
    }
    for s in samples {
        let sx = x(s.sent_ms as f64);
        match s.latency_ms {
            Some(latency) => {
                let _ = writeln!(
                    svg,
                    "<circle class=\"ack\" cx=\"{sx:.1}\" cy=\"{:.1}\" r=\"1.8\" data-sent-ms=\"{}\"/>",
                    y(latency as f64),
                    s.sent_ms
                );
            }
            None => {
                let _ = writeln!(
                    svg,
                    "<path class=\"failed\" d=\"M{:.1} {t:.1} l6 6 m0 -6 l-6 6\" data-sent-ms=\"{}\"/>",
                    sx - 3.0,
                    s.sent_ms,
                    t = top
                );
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// About five round ticks from `lo` to `hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1.0);
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(magnitude * 10.0);
    let mut out = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi {
        // `+ 0.0` turns -0 (the first tick of a range starting below zero) into 0.
        out.push(t + 0.0);
        t += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::{DrillObjectives, StepTime, Timeline, Writes};

    fn report(plan: &str) -> DrillReport {
        let step = |run: &str, step: &str, started: u64, finished: u64| StepTime {
            run: run.into(),
            step: step.into(),
            state: "applied".into(),
            started_ms: Some(started),
            finished_ms: Some(finished),
        };
        DrillReport {
            plan: plan.into(),
            fault: "blackout:east".into(),
            replication: "synchronous".into(),
            run_id: Some("r1-a".into()),
            from: "east".into(),
            to: "west".into(),
            fault_at_ms: 1_000_000,
            rto_ms: Some(4_100),
            rpo_ms: 0,
            lost_acknowledged_writes: 0,
            lost_sequences: vec![],
            writes: Writes { attempted: 6, acknowledged: 4, failed: 2, acknowledged_before_fault: 2 },
            timeline: Timeline {
                fault: 0,
                detected: Some(2_900),
                fenced: Some(3_100),
                promoted: Some(3_400),
                switched: Some(3_600),
                verified: Some(3_900),
                first_success: Some(4_100),
            },
            objectives: DrillObjectives {
                rto: Objective { target_ms: 60_000, measured_ms: Some(4_100), met: true },
                rpo: Objective { target_ms: 0, measured_ms: Some(0), met: true },
            },
            run_state: "completed".into(),
            scale_restored: vec![],
            // Out of order on purpose: the timeline orders them.
            steps: vec![
                step("failover", "verify", 3_600, 3_900),
                step("failover", "fence", 2_950, 3_100),
                step("failover", "promote", 3_100, 3_400),
                step("failover", "switch", 3_400, 3_600),
            ],
            samples: vec![
                SampleTime { sent_ms: -100, latency_ms: Some(8), acknowledged: true },
                SampleTime { sent_ms: -50, latency_ms: Some(9), acknowledged: true },
                SampleTime { sent_ms: 0, latency_ms: None, acknowledged: false },
                SampleTime { sent_ms: 1_000, latency_ms: None, acknowledged: false },
                SampleTime { sent_ms: 4_050, latency_ms: Some(50), acknowledged: true },
                SampleTime { sent_ms: 4_100, latency_ms: Some(7), acknowledged: true },
            ],
            canary: None,
        }
    }

    /// The `<svg>` elements of a page, parsed as XML: malformed markup fails here.
    fn svgs(html: &str) -> Vec<String> {
        html.match_indices("<svg ")
            .map(|(start, _)| {
                let end = html[start..].find("</svg>").unwrap() + start + "</svg>".len();
                html[start..end].to_string()
            })
            .collect()
    }

    #[test]
    fn the_timeline_lists_every_event_in_time_order_in_ms_after_the_fault() {
        let html = report("shop").to_html();
        let svgs = svgs(&html);
        assert_eq!(svgs.len(), 2, "a timeline and a latency chart");
        let doc = roxmltree::Document::parse(&svgs[0]).expect("the timeline is well-formed");
        let events: Vec<(u64, String, f64)> = doc
            .descendants()
            .filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("event")))
            .map(|g| {
                let at: u64 = g.attribute("data-at-ms").unwrap().parse().unwrap();
                let texts: Vec<&str> =
                    g.children().filter(|c| c.has_tag_name("text")).filter_map(|t| t.text()).collect();
                assert_eq!(texts[1], format!("+{at} ms"), "each event is labelled in ms after the fault");
                let y: f64 =
                    g.children().find(|c| c.has_tag_name("text")).unwrap().attribute("y").unwrap().parse().unwrap();
                (at, texts[0].to_string(), y)
            })
            .collect();
        let labels: Vec<&str> = events.iter().map(|(_, l, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            [
                "fault",
                "detected",
                "failover: fence (applied)",
                "fenced",
                "failover: promote (applied)",
                "promoted",
                "failover: switch (applied)",
                "switched",
                "failover: verify (applied)",
                "verified",
                "first success"
            ]
        );
        assert!(events.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].2 < w[1].2), "in time order, top to bottom");
    }

    #[test]
    fn the_latency_chart_marks_every_failed_write_and_plots_every_acknowledged_one() {
        let html = report("shop").to_html();
        let chart = &svgs(&html)[1];
        let doc = roxmltree::Document::parse(chart).expect("the chart is well-formed");
        let class = |c: &str| doc.descendants().filter(|n| n.attribute("class") == Some(c)).count();
        assert_eq!((class("ack"), class("failed")), (4, 2));
        // Later writes sit further right.
        let xs: Vec<f64> = doc
            .descendants()
            .filter(|n| n.has_tag_name("circle"))
            .map(|n| n.attribute("cx").unwrap().parse().unwrap())
            .collect();
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "{xs:?}");
        // The axis starts before the fault: its zero tick reads 0, not -0.
        assert!(chart.contains(">0</text>") && !chart.contains(">-0</text>"), "{chart}");
    }

    #[test]
    fn nothing_is_fetched_and_every_text_is_escaped() {
        let html = report("<script>alert('x')</script> & \"co\"").to_html();
        for external in
            ["http:", "https:", "//", "<script", "<link", "<img", "src=", "href", "url(", "@import", "@font-face"]
        {
            let found = html.replace("</", "").contains(external);
            assert!(!found, "the page references {external}:\n{html}");
        }
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;"));
        for svg in svgs(&html) {
            roxmltree::Document::parse(&svg).expect("well-formed");
        }
    }
}
