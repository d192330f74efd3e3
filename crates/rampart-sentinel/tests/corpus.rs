#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! The labelled corpus: quality floors, so a change that costs accuracy fails loudly, and the
//! calibration table stays honest.

use rampart_sentinel::eval::{evaluate, parse_corpus};
use rampart_sentinel::{Class, Detector};

fn corpus() -> Vec<rampart_sentinel::eval::Example> {
    parse_corpus(include_str!("../corpus/sentinel-corpus.jsonl")).unwrap()
}

#[test]
fn every_class_is_found_on_the_evaluation_half() {
    let d = Detector::new().unwrap();
    let report = evaluate(&d, &corpus(), Some("evaluation"), None);
    for class in Class::ALL {
        let c = report.per_class.get(&class).copied().unwrap_or_default();
        eprintln!(
            "{class:14} p={:.3} r={:.3} f1={:.3} (tp {} fp {} fn {})",
            c.precision(),
            c.recall(),
            c.f1(),
            c.tp,
            c.fp,
            c.r#fn
        );
    }
    eprintln!("micro f1={:.3} ece={:.3}", report.micro.f1(), report.ece);
    for class in Class::ALL {
        let c = report.per_class[&class];
        assert!(c.f1() >= 0.80, "{class} F1 {:.3} below the floor", c.f1());
    }
    assert!(
        report.micro.f1() >= 0.93,
        "micro F1 {:.3}",
        report.micro.f1()
    );
    assert!(report.ece <= 0.05, "calibration error {:.3}", report.ece);
}

#[test]
fn rule_scores_match_their_measured_precision() {
    let d = Detector::new().unwrap();
    let report = evaluate(&d, &corpus(), Some("calibration"), None);
    for (rule, c) in &report.per_rule {
        let n = c.tp + c.fp;
        if n < 30 {
            continue; // too few to say
        }
        let measured = c.precision();
        assert!(
            (f64::from(rule.score()) - measured).abs() <= 0.1,
            "{} scores {} but was right {:.3} of {n} times; rerun `rampart sentinel eval --calibrate`",
            rule.id(),
            rule.score(),
            measured
        );
    }
}

/// `SENTINEL_DUMP=1 cargo test -p rampart-sentinel --test corpus dump -- --nocapture` lists the
/// misses and false alarms, for working on the detector.
#[test]
fn dump() {
    if std::env::var_os("SENTINEL_DUMP").is_none() {
        return;
    }
    let d = Detector::new().unwrap();
    for ex in corpus() {
        let preds = rampart_sentinel::eval::predicted(&ex.text, &d.scan(&ex.text));
        let (_, right) = rampart_sentinel::eval::score_example(&ex.spans, &preds);
        let chars: Vec<char> = ex.text.chars().collect();
        let cut = |s: usize, e: usize| chars[s..e].iter().collect::<String>();
        for (p, ok) in preds.iter().zip(&right) {
            if !ok {
                println!(
                    "FP {:?} {} `{}` in {:?}",
                    p.rule,
                    p.class,
                    cut(p.start, p.end),
                    ex.text
                );
            }
        }
        for l in &ex.spans {
            if !preds
                .iter()
                .any(|p| p.class == l.class && p.start < l.end && l.start < p.end)
            {
                println!("FN {} `{}` in {:?}", l.class, cut(l.start, l.end), ex.text);
            }
        }
    }
}

#[test]
fn print_calibration() {
    if std::env::var_os("SENTINEL_DUMP").is_none() {
        return;
    }
    let d = Detector::new().unwrap();
    let report = evaluate(&d, &corpus(), Some("calibration"), None);
    for (rule, c) in &report.per_rule {
        println!(
            "{:32} n={:5} precision={:.3} (score {})",
            rule.id(),
            c.tp + c.fp,
            c.precision(),
            rule.score()
        );
    }
}
