//! `rampart sentinel scan|redact|eval`: the Sentinel over JSON lines, offline.
//!
//! Input is one JSON object per line with a string `text`; output is one JSON line per input
//! line, in order. Offsets are Unicode code points, end exclusive. A line that is not valid
//! input gets `{"error": "…"}` in its place and the command exits 1 at the end, so output lines
//! stay aligned with input lines.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use rampart_sentinel::eval::{evaluate, parse_corpus};
use rampart_sentinel::policy::Policy;
use rampart_sentinel::transform::{NoVault, Tokenizer, redact};
use rampart_sentinel::{Channel, Class, CodePoints, Detector, Rule};
use serde::Deserialize;
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum SentinelCommand {
    /// Find sensitive spans: `{"text": …}` in, `{"spans": [{class, start, end, score}]}` out.
    Scan {
        /// Read from this file instead of standard input.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Also report the rule behind each span.
        #[arg(long)]
        rules: bool,
    },
    /// Apply a policy: `{"text": …}` in, `{"text": redacted, "spans": […]}` out.
    Redact {
        #[arg(long)]
        input: Option<PathBuf>,
        /// A policy document (JSON, as `PUT /v1/sentinel/policy` takes). Default: every class
        /// strict at a threshold of 0.5.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The channel the text is leaving on.
        #[arg(long, default_value = "prompt")]
        channel: String,
        /// A file with the token key (at least 32 bytes). Without it a random key is used, so
        /// tokens only match within one run.
        #[arg(long, env = "RAMPART_SENTINEL_KEY_FILE")]
        key_file: Option<PathBuf>,
    },
    /// Precision, recall and F1 per class on a labelled corpus (JSON lines with `text` and
    /// `spans`), the calibration error, and with `--calibrate` the per-rule score table.
    Eval {
        #[arg(long)]
        corpus: PathBuf,
        /// Only the examples of this split (`calibration` or `evaluation`).
        #[arg(long)]
        split: Option<String>,
        /// Print the rule table measured on this corpus, for `rule.rs`.
        #[arg(long)]
        calibrate: bool,
    },
}

#[derive(Deserialize)]
struct Input {
    text: String,
}

pub fn run(cmd: SentinelCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SentinelCommand::Scan { input, rules } => {
            let detector = Detector::new()?;
            each_line(input, |text| {
                let findings = detector.scan(text);
                let spans = spans_json(text, &findings, rules);
                Ok(json!({ "spans": spans }))
            })
        }
        SentinelCommand::Redact {
            input,
            policy,
            channel,
            key_file,
        } => {
            let channel: Channel = channel.parse()?;
            let policy = match policy {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading `{}`", path.display()))?;
                    serde_json::from_str::<Policy>(&text)
                        .with_context(|| format!("`{}` is not a policy", path.display()))?
                }
                None => Policy::default(),
            };
            let compiled = policy.compile()?;
            if compiled.needs_vault(channel) {
                anyhow::bail!(
                    "the policy makes some classes `reversible` on `{}`; reversible tokens are sealed in a tenant vault, which the offline CLI does not have (use `strict` or `flag`)",
                    channel.as_str()
                );
            }
            let key = match key_file {
                Some(path) => {
                    let k = zeroize::Zeroizing::new(
                        std::fs::read(&path)
                            .with_context(|| format!("reading `{}`", path.display()))?,
                    );
                    anyhow::ensure!(
                        k.len() >= 32,
                        "the key in `{}` is shorter than 32 bytes",
                        path.display()
                    );
                    k
                }
                None => zeroize::Zeroizing::new(rampart_crypto::random_array::<32>()?.to_vec()),
            };
            let tokenizer = Tokenizer::new(&key)?;
            let detector = Detector::new()?;
            each_line(input, |text| {
                let findings = detector.scan(text);
                let r = redact(
                    text,
                    &findings,
                    &compiled,
                    channel,
                    &tokenizer,
                    &mut NoVault,
                )?;
                let at = CodePoints::new(text, r.applied.iter().flat_map(|a| [a.start, a.end]));
                let spans: Vec<_> = r
                    .applied
                    .iter()
                    .map(|a| {
                        let mut v = json!({"class": a.class, "start": at.of(a.start), "end": at.of(a.end), "score": round(a.score), "mode": a.mode});
                        if let Some(t) = &a.token {
                            v["token"] = json!(t);
                        }
                        v
                    })
                    .collect();
                Ok(json!({ "text": r.text, "spans": spans }))
            })
        }
        SentinelCommand::Eval {
            corpus,
            split,
            calibrate,
        } => {
            let text = std::fs::read_to_string(&corpus)
                .with_context(|| format!("reading `{}`", corpus.display()))?;
            let examples =
                parse_corpus(&text).context("the corpus is not JSON lines of {text, spans}")?;
            let detector = Detector::new()?;
            let report = evaluate(&detector, &examples, split.as_deref(), None);
            println!(
                "{} examples{}",
                report.examples,
                split
                    .as_deref()
                    .map(|s| format!(" (split {s})"))
                    .unwrap_or_default()
            );
            println!(
                "{:14} {:>9} {:>7} {:>7} {:>6} {:>6} {:>6}",
                "class", "precision", "recall", "f1", "tp", "fp", "fn"
            );
            for class in Class::ALL {
                let c = report.per_class.get(&class).copied().unwrap_or_default();
                println!(
                    "{:14} {:>9.3} {:>7.3} {:>7.3} {:>6} {:>6} {:>6}",
                    class.as_str(),
                    c.precision(),
                    c.recall(),
                    c.f1(),
                    c.tp,
                    c.fp,
                    c.r#fn
                );
            }
            let m = report.micro;
            println!(
                "{:14} {:>9.3} {:>7.3} {:>7.3} {:>6} {:>6} {:>6}",
                "micro",
                m.precision(),
                m.recall(),
                m.f1(),
                m.tp,
                m.fp,
                m.r#fn
            );
            println!("expected calibration error: {:.3}", report.ece);
            for (lo, n, conf, acc) in &report.reliability {
                println!(
                    "  scores {lo:.1}–{:.1}: {n} spans, mean score {conf:.3}, right {acc:.3}",
                    lo + 0.1
                );
            }
            if calibrate {
                println!(
                    "\n// per-rule scores: (right + 1) / (predictions + 2); rules seen fewer than 10 times keep their prior"
                );
                for rule in Rule::ALL {
                    let c = report.per_rule.get(rule).copied().unwrap_or_default();
                    let n = c.tp + c.fp;
                    let score = if n < 10 {
                        f64::from(rule.score())
                    } else {
                        ((c.tp + 1) as f64 / (n + 2) as f64).min(0.99)
                    };
                    println!(
                        "{:?} => (\"{}\", {:?}, {:.2}), // n={n}",
                        rule,
                        rule.id(),
                        rule.class(),
                        score
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn round(x: f32) -> f64 {
    (f64::from(x) * 1000.0).round() / 1000.0
}

fn spans_json(
    text: &str,
    findings: &[rampart_sentinel::Finding],
    rules: bool,
) -> Vec<serde_json::Value> {
    let predicted = rampart_sentinel::eval::predicted(text, findings);
    predicted
        .iter()
        .map(|p| {
            let mut v =
                json!({"class": p.class, "start": p.start, "end": p.end, "score": round(p.score)});
            if rules && let Some(r) = p.rule {
                v["rule"] = json!(r.id());
            }
            v
        })
        .collect()
}

fn each_line(
    input: Option<PathBuf>,
    mut f: impl FnMut(&str) -> anyhow::Result<serde_json::Value>,
) -> anyhow::Result<ExitCode> {
    let reader: Box<dyn BufRead> = match &input {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening `{}`", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut failed = false;
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let value = match serde_json::from_str::<Input>(&line) {
            Ok(input) => f(&input.text).unwrap_or_else(|e| {
                failed = true;
                json!({ "error": format!("line {}: {e}", i + 1) })
            }),
            Err(e) => {
                failed = true;
                json!({ "error": format!("line {}: expected an object with a string `text` ({e})", i + 1) })
            }
        };
        serde_json::to_writer(&mut out, &value)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
