//! Evaluation against a labelled corpus: precision, recall and F1 per class, per-rule precision
//! (the calibration), and the expected calibration error of the scores.
//!
//! A predicted span is right when a labelled span of the same class overlaps it; each labelled
//! span can be claimed once. Offsets in the corpus are Unicode code points, end exclusive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Class, CodePoints, Detector, Finding, Rule};

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LabelledSpan {
    pub class: Class,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Example {
    pub text: String,
    #[serde(default)]
    pub spans: Vec<LabelledSpan>,
    #[serde(default)]
    pub split: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    pub tp: u64,
    pub fp: u64,
    pub r#fn: u64,
}

impl Counts {
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.r#fn)
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    fn add(&mut self, o: Counts) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.r#fn += o.r#fn;
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// A predicted span in code points, for comparing with labels (from any detector).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Predicted {
    pub class: Class,
    pub start: usize,
    pub end: usize,
    pub score: f32,
    pub rule: Option<Rule>,
}

/// Findings of [`Detector::scan`] converted to code points.
pub fn predicted(text: &str, findings: &[Finding]) -> Vec<Predicted> {
    let at = CodePoints::new(text, findings.iter().flat_map(|f| [f.start, f.end]));
    findings
        .iter()
        .map(|f| Predicted {
            class: f.class,
            start: at.of(f.start),
            end: at.of(f.end),
            score: f.score,
            rule: Some(f.rule),
        })
        .collect()
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub examples: u64,
    pub per_class: BTreeMap<Class, Counts>,
    pub micro: Counts,
    /// Per rule: predictions and how many were right.
    pub per_rule: BTreeMap<Rule, Counts>,
    /// Expected calibration error over ten score bins.
    pub ece: f64,
    /// (bin lower bound, predictions, mean score, share right)
    pub reliability: Vec<(f64, u64, f64, f64)>,
}

/// Scores one example's predictions against its labels; returns per-class counts and, per
/// prediction, whether it was right.
pub fn score_example(
    labels: &[LabelledSpan],
    predicted: &[Predicted],
) -> (BTreeMap<Class, Counts>, Vec<bool>) {
    let mut claimed = vec![false; labels.len()];
    let mut counts: BTreeMap<Class, Counts> = BTreeMap::new();
    let mut right = Vec::with_capacity(predicted.len());
    for p in predicted {
        let hit = labels.iter().enumerate().position(|(i, l)| {
            !claimed[i] && l.class == p.class && p.start < l.end && l.start < p.end
        });
        let c = counts.entry(p.class).or_default();
        match hit {
            Some(i) => {
                claimed[i] = true;
                c.tp += 1;
                right.push(true);
            }
            None => {
                c.fp += 1;
                right.push(false);
            }
        }
    }
    for (i, l) in labels.iter().enumerate() {
        if !claimed[i] {
            counts.entry(l.class).or_default().r#fn += 1;
        }
    }
    (counts, right)
}

/// Evaluates `detector` on the examples whose split is `split` (all of them when `None`).
pub fn evaluate(
    detector: &Detector,
    examples: &[Example],
    split: Option<&str>,
    classes: Option<&[Class]>,
) -> Report {
    let mut report = Report::default();
    let mut bins = [(0u64, 0f64, 0u64); 10];
    for ex in examples {
        if split.is_some() && ex.split.as_deref() != split {
            continue;
        }
        report.examples += 1;
        let findings = detector.scan(&ex.text);
        let mut preds = predicted(&ex.text, &findings);
        let mut labels = ex.spans.clone();
        if let Some(keep) = classes {
            preds.retain(|p| keep.contains(&p.class));
            labels.retain(|l| keep.contains(&l.class));
        }
        let (counts, right) = score_example(&labels, &preds);
        for (class, c) in counts {
            report.per_class.entry(class).or_default().add(c);
            report.micro.add(c);
        }
        for (p, ok) in preds.iter().zip(right) {
            if let Some(rule) = p.rule {
                let c = report.per_rule.entry(rule).or_default();
                if ok { c.tp += 1 } else { c.fp += 1 }
            }
            let b = ((p.score * 10.0) as usize).min(9);
            bins[b].0 += 1;
            bins[b].1 += f64::from(p.score);
            bins[b].2 += u64::from(ok);
        }
    }
    let total: u64 = bins.iter().map(|b| b.0).sum();
    for (i, (n, sum, ok)) in bins.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let conf = sum / *n as f64;
        let acc = *ok as f64 / *n as f64;
        report.ece += (*n as f64 / total.max(1) as f64) * (conf - acc).abs();
        report.reliability.push((i as f64 / 10.0, *n, conf, acc));
    }
    report
}

/// Parses a JSON-lines corpus.
pub fn parse_corpus(text: &str) -> Result<Vec<Example>, serde_json::Error> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect()
}
