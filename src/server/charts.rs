//! Charts drawn here as SVG text so the browser needs no chart code. The model page's: a
//! scatter of production against shadow Dice per case and label, and each label's Dice
//! distribution per version (box and points), also served by `GET /models/evaluation/chart`.
//! The readers' agreement page's: per label, the spread of the mean Dice between readers over
//! cases, and per reader, the spread of their Dice against STAPLE.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::api::{AgreementOverview, PairedDice, PairedEvaluation, Spread};

const PLOT: f64 = 300.0;
const MARGIN: f64 = 44.0;
/// Label colours by label value, cycling.
const PALETTE: [&str; 6] = ["#e4572e", "#2e86ab", "#76b041", "#a23b72", "#f3a712", "#5c5c5c"];

fn colour(label: u8) -> &'static str {
    PALETTE[(label as usize + PALETTE.len() - 1) % PALETTE.len()]
}

/// Text made safe inside an XML element or attribute.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// The `q`-quantile of sorted `values`, linearly interpolated.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (sorted.len() - 1) as f64 * q;
    let (below, above) = (sorted[rank.floor() as usize], sorted[rank.ceil() as usize]);
    below + (above - below) * rank.fract()
}

/// Both charts, or `None` before production and shadow share a scored case.
pub(crate) fn paired_dice_svg(evaluation: &PairedEvaluation) -> Option<String> {
    if evaluation.pairs.is_empty() {
        return None;
    }
    let label_names: BTreeMap<u8, String> = [&evaluation.production, &evaluation.shadow]
        .into_iter()
        .flatten()
        .flat_map(|score| score.labels.iter().map(|l| (l.label, l.name.clone())))
        .collect();
    let labels: Vec<u8> =
        evaluation.pairs.iter().map(|p| p.label).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let name = |label: u8| label_names.get(&label).cloned().unwrap_or_else(|| format!("label {label}"));
    let row_height = 26.0;
    let distribution_top = MARGIN + PLOT + 56.0;
    let height = distribution_top + labels.len() as f64 * 2.0 * row_height + 30.0;
    let width = MARGIN * 2.0 + PLOT + 150.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" data-testid="dice-chart" font-family="sans-serif" font-size="11"><title>Production against shadow Dice on {} paired case labels</title>"#,
        evaluation.pairs.len()
    );
    scatter(&mut svg, &evaluation.pairs, &labels, &name);
    distributions(&mut svg, &evaluation.pairs, &labels, &name, distribution_top, row_height);
    svg.push_str("</svg>");
    Some(svg)
}

fn scatter(svg: &mut String, pairs: &[PairedDice], labels: &[u8], name: &impl Fn(u8) -> String) {
    let x = |dice: f64| MARGIN + dice * PLOT;
    let y = |dice: f64| MARGIN + (1.0 - dice) * PLOT;
    let _ =
        write!(svg, r##"<rect x="{MARGIN}" y="{MARGIN}" width="{PLOT}" height="{PLOT}" fill="none" stroke="#999"/>"##);
    // Above the diagonal, shadow agrees better with people than production does.
    let _ = write!(
        svg,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#bbb" stroke-dasharray="4 3"/>"##,
        x(0.0),
        y(0.0),
        x(1.0),
        y(1.0)
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(svg, r#"<text x="{}" y="{}" text-anchor="middle">{tick}</text>"#, x(tick), MARGIN + PLOT + 14.0);
        let _ = write!(svg, r#"<text x="{}" y="{}" text-anchor="end">{tick}</text>"#, MARGIN - 5.0, y(tick) + 4.0);
    }
    let _ =
        write!(svg, r#"<text x="{}" y="{}" text-anchor="middle">production Dice</text>"#, x(0.5), MARGIN + PLOT + 30.0);
    let _ = write!(
        svg,
        r#"<text transform="translate(12 {}) rotate(-90)" text-anchor="middle">shadow Dice</text>"#,
        y(0.5)
    );
    let _ = write!(
        svg,
        r#"<text x="{MARGIN}" y="{}" font-weight="bold">Dice per case: production against shadow</text>"#,
        MARGIN - 14.0
    );
    for pair in pairs {
        let _ = write!(
            svg,
            r#"<a href="/cases/{}"><circle class="pair" cx="{:.1}" cy="{:.1}" r="4" fill="{}" fill-opacity="0.75"><title>{} · {}: production {:.3}, shadow {:.3}</title></circle></a>"#,
            escape(pair.case_id.as_str()),
            x(pair.production_dice),
            y(pair.shadow_dice),
            colour(pair.label),
            escape(&pair.case_name),
            escape(&name(pair.label)),
            pair.production_dice,
            pair.shadow_dice,
        );
    }
    for (n, &label) in labels.iter().enumerate() {
        let top = MARGIN + 10.0 + n as f64 * 16.0;
        let left = MARGIN + PLOT + 16.0;
        let _ = write!(svg, r#"<circle cx="{left}" cy="{top}" r="4" fill="{}"/>"#, colour(label));
        let _ = write!(svg, r#"<text x="{}" y="{}">{}</text>"#, left + 8.0, top + 4.0, escape(&name(label)));
    }
}

fn distributions(
    svg: &mut String,
    pairs: &[PairedDice],
    labels: &[u8],
    name: &impl Fn(u8) -> String,
    top: f64,
    row_height: f64,
) {
    // Room on the left for "kidney production".
    let x = |dice: f64| MARGIN + 120.0 + dice * (PLOT - 80.0);
    let _ =
        write!(svg, r#"<text x="{MARGIN}" y="{}" font-weight="bold">Dice distribution per label</text>"#, top - 12.0);
    let mut row = 0.0;
    for &label in labels {
        for (version, pick) in [("production", true), ("shadow", false)] {
            let mut values: Vec<f64> = pairs
                .iter()
                .filter(|p| p.label == label)
                .map(|p| if pick { p.production_dice } else { p.shadow_dice })
                .collect();
            values.sort_unstable_by(f64::total_cmp);
            let middle = top + row * row_height + row_height / 2.0;
            let five = [0.0, 0.25, 0.5, 0.75, 1.0].map(|q| quantile(&values, q));
            box_row(svg, &x, middle, &format!("{} {version}", name(label)), colour(label), five);
            row += 1.0;
        }
    }
    let axis = top + row * row_height + 12.0;
    for tick in [0.0, 0.5, 1.0] {
        let _ = write!(svg, r#"<text x="{}" y="{axis}" text-anchor="middle">{tick}</text>"#, x(tick));
    }
}

/// One box of a distribution on the row centred at `middle`: its name, the whisker from least
/// to greatest, the box between the quartiles and the median; `five` is those five values.
fn box_row(svg: &mut String, x: &impl Fn(f64) -> f64, middle: f64, name: &str, colour: &str, five: [f64; 5]) {
    let [low, q1, median, q3, high] = five;
    let _ = write!(svg, r#"<text x="{MARGIN}" y="{}">{}</text>"#, middle + 4.0, escape(name));
    let _ = write!(svg, r##"<line x1="{}" x2="{}" y1="{middle}" y2="{middle}" stroke="#777"/>"##, x(low), x(high));
    let _ = write!(
        svg,
        r#"<rect x="{}" y="{}" width="{}" height="12" fill="{colour}" fill-opacity="0.3" stroke="{colour}"/>"#,
        x(q1),
        middle - 6.0,
        (x(q3) - x(q1)).max(1.0),
    );
    let _ = write!(
        svg,
        r##"<line x1="{m}" x2="{m}" y1="{}" y2="{}" stroke="#000" stroke-width="2"/>"##,
        middle - 6.0,
        middle + 6.0,
        m = x(median)
    );
}

/// The agreement page's chart: a box per label (mean Dice between readers, one value per case)
/// and a box per reader (Dice against STAPLE, one value per case and label); `None` before a
/// case is measured.
pub(crate) fn agreement_svg(overview: &AgreementOverview) -> Option<String> {
    if overview.labels.is_empty() && overview.readers.is_empty() {
        return None;
    }
    let row_height = 26.0;
    let x = |dice: f64| MARGIN + 120.0 + dice * (PLOT - 80.0);
    let five = |s: &Spread| [s.min, s.q1, s.median, s.q3, s.max];
    let readers_top = MARGIN + 20.0 + overview.labels.len() as f64 * row_height + 40.0;
    let axis = readers_top + overview.readers.len() as f64 * row_height + 12.0;
    let (width, height) = (MARGIN * 2.0 + PLOT + 60.0, axis + 20.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" data-testid="agreement-chart" font-family="sans-serif" font-size="11"><title>Readers' agreement on {} cases</title>"#,
        overview.measured
    );
    let _ = write!(
        svg,
        r#"<text x="{MARGIN}" y="{}" font-weight="bold">Mean Dice between readers, per label</text>"#,
        MARGIN
    );
    for (n, label) in overview.labels.iter().enumerate() {
        let middle = MARGIN + 20.0 + n as f64 * row_height + row_height / 2.0;
        box_row(
            &mut svg,
            &x,
            middle,
            &format!("{} {}", label.label, label.name),
            colour(label.label),
            five(&label.mean_dice),
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{MARGIN}" y="{}" font-weight="bold">Each reader's Dice against STAPLE</text>"#,
        readers_top - 8.0
    );
    for (n, reader) in overview.readers.iter().enumerate() {
        let middle = readers_top + n as f64 * row_height + row_height / 2.0;
        box_row(&mut svg, &x, middle, reader.reader.as_str(), PALETTE[1], five(&reader.dice_vs_staple));
    }
    for tick in [0.0, 0.5, 1.0] {
        let _ = write!(svg, r#"<text x="{}" y="{axis}" text-anchor="middle">{tick}</text>"#, x(tick));
    }
    svg.push_str("</svg>");
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{LabelStats, ModelId, ModelScore, ModelState, ModelSummary};

    fn pair(case: &str, label: u8, production: f64, shadow: f64) -> PairedDice {
        PairedDice {
            case_id: crate::api::CaseId::random(),
            case_name: format!("<{case}> & co"),
            label,
            production_dice: production,
            shadow_dice: shadow,
        }
    }

    #[test]
    fn one_point_per_pair_with_escaped_names_and_nothing_without_pairs() {
        let mut evaluation = PairedEvaluation {
            name: "seg".into(),
            paired_cases: 2,
            production: None,
            shadow: None,
            disagreements: Vec::new(),
            pairs: Vec::new(),
            excluded_training_cases: 0,
            pending_cases: 0,
            anchored_cases: Vec::new(),
        };
        assert_eq!(paired_dice_svg(&evaluation), None);
        evaluation.production = Some(ModelScore {
            model: ModelSummary {
                id: ModelId::random(),
                name: "seg".into(),
                version: "1.0.0".into(),
                state: ModelState::Production,
                created_at_ms: 0,
                updated_at_ms: 0,
            },
            labels: vec![LabelStats {
                label: 1,
                name: "liver".into(),
                dice: None,
                hd95_mm: None,
                against_readers: None,
            }],
        });
        evaluation.pairs = vec![pair("a", 1, 0.9, 0.5), pair("b", 1, 0.2, 0.8), pair("b", 2, 1.0, 1.0)];
        let svg = paired_dice_svg(&evaluation).unwrap();
        assert_eq!(svg.matches(r#"class="pair""#).count(), 3);
        assert!(svg.contains("&lt;a&gt; &amp; co · liver: production 0.900, shadow 0.500"));
        assert!(svg.contains("label 2"), "an unnamed label is named by its value");
        // Production 0.9 → x = 44 + 270; shadow 0.5 → y = 44 + 150.
        assert!(svg.contains(r#"cx="314.0" cy="194.0""#), "{svg}");
        assert!(!svg.contains("<a>"), "no raw markup from names");
    }

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile(&[0.0, 1.0], 0.5), 0.5);
        assert_eq!(quantile(&[0.2, 0.4, 0.6, 0.8, 1.0], 0.25), 0.4);
        assert_eq!(quantile(&[0.7], 0.75), 0.7);
    }
}
