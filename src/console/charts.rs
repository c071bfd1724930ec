//! Charts drawn on the server as inline SVG: no script, and nothing the CSP refuses (colours come
//! from the stylesheet's classes, never from a `style` attribute).

use maud::{html, Markup};

use super::i18n::Lang;
use crate::domain::report::Target;

const WIDTH: f64 = 560.0;
const LABEL: f64 = 130.0;
const VALUE: f64 = 70.0;
const ROW: f64 = 26.0;
const BAR: f64 = 16.0;

fn plot_width() -> f64 {
    WIDTH - LABEL - VALUE
}

/// One decimal at most: coordinates stay short and the same on every run.
fn n(x: f64) -> String {
    let r = (x * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// A horizontal bar per `(label, value)`, scaled to the largest (an empty chart when all are 0).
pub fn bars(kind: &str, title: &str, items: &[(String, i64)]) -> Markup {
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64;
    let height = ROW * items.len() as f64 + 6.0;
    html! {
        svg.chart data-testid="report-chart" data-chart=(kind) role="img" aria-label=(title)
            viewBox={"0 0 " (n(WIDTH)) " " (n(height))} width=(n(WIDTH)) height=(n(height)) {
            title { (title) }
            @for (i, (label, value)) in items.iter().enumerate() {
                @let y = ROW * i as f64 + 4.0;
                @let w = plot_width() * (*value as f64) / max;
                g.row data-label=(label) data-value=(value) {
                    text.label x=(n(LABEL - 8.0)) y=(n(y + BAR - 3.0)) text-anchor="end" { (label) }
                    rect.track x=(n(LABEL)) y=(n(y)) width=(n(plot_width())) height=(n(BAR)) {}
                    @if *value > 0 { rect.bar x=(n(LABEL)) y=(n(y)) width=(n(w)) height=(n(BAR)) {} }
                    text.value x=(n(LABEL + w + 6.0)) y=(n(y + BAR - 3.0)) { (value) }
                }
            }
        }
    }
}

/// Rates against their targets, each on a 0–100 % scale with its target marked: a bar that meets
/// its target is drawn `met`, one that misses it `missed`; a rate with nothing due has no bar.
pub fn rates(lang: Lang, title: &str, items: &[(String, Option<f64>, Target)]) -> Markup {
    let height = ROW * items.len() as f64 + 22.0;
    let x_of = |rate: f64| LABEL + plot_width() * rate.clamp(0.0, 1.0);
    html! {
        svg.chart data-testid="report-chart" data-chart="targets" role="img" aria-label=(title)
            viewBox={"0 0 " (n(WIDTH)) " " (n(height))} width=(n(WIDTH)) height=(n(height)) {
            title { (title) }
            @for (i, (label, rate, target)) in items.iter().enumerate() {
                @let y = ROW * i as f64 + 4.0;
                @let met = target.met(*rate);
                @let class = match met { Some(true) => "bar met", Some(false) => "bar missed", None => "bar" };
                @let shown = rate.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_else(|| "—".into());
                g.row data-label=(label) data-rate=(rate.map(|r| n(r * 1000.0)).unwrap_or_default())
                    data-met=(match met { Some(true) => "true", Some(false) => "false", None => "" }) {
                    text.label x=(n(LABEL - 8.0)) y=(n(y + BAR - 3.0)) text-anchor="end" { (label) }
                    rect.track x=(n(LABEL)) y=(n(y)) width=(n(plot_width())) height=(n(BAR)) {}
                    @if let Some(r) = rate { @if *r > 0.0 {
                        rect class=(class) x=(n(LABEL)) y=(n(y)) width=(n(x_of(*r) - LABEL)) height=(n(BAR)) {}
                    } }
                    line.target x1=(n(x_of(target.rate))) x2=(n(x_of(target.rate))) y1=(n(y - 2.0)) y2=(n(y + BAR + 2.0)) {}
                    text.value x=(n(WIDTH - VALUE + 6.0)) y=(n(y + BAR - 3.0)) { (shown) }
                }
            }
            @let y = ROW * items.len() as f64 + 14.0;
            text.axis x=(n(LABEL)) y=(n(y)) { "0%" }
            text.axis x=(n(LABEL + plot_width())) y=(n(y)) text-anchor="end" { "100%" }
            text.axis x=(n(WIDTH - VALUE + 6.0)) y=(n(y)) { (lang.t("｜为目标", "| target")) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::report::TARGETS;

    #[test]
    fn bars_are_scaled_to_the_largest_and_carry_no_style() {
        let svg = bars("by_trade", "t", &[("水".into(), 4), ("电".into(), 2), ("燃气".into(), 0)]).into_string();
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 2, "no bar for 0: {svg}");
        assert!(svg.contains(&format!("width=\"{}\"", n(plot_width()))), "the largest fills the plot");
        assert!(svg.contains(&format!("width=\"{}\"", n(plot_width() / 2.0))), "half of it");
        assert!(!svg.contains("style"), "the CSP refuses inline styles");
    }

    #[test]
    fn rates_say_which_met_their_target() {
        let [on_time, rework, callbacks] = TARGETS;
        let items = [
            ("on time".to_owned(), Some(1.0), on_time),
            ("rework".to_owned(), Some(0.5), rework),
            ("callbacks".to_owned(), None, callbacks),
        ];
        let svg = rates(Lang::En, "t", &items).into_string();
        assert!(svg.contains(r#"data-met="true""#) && svg.contains(r#"data-met="false""#), "{svg}");
        assert!(svg.contains(r#"class="bar met""#) && svg.contains(r#"class="bar missed""#));
        assert!(svg.contains("100.0%") && svg.contains("50.0%") && svg.contains("—"));
        assert_eq!(svg.matches("<line").count(), 3, "each target marked");
    }
}
