#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! Streaming redaction and restoring give the whole-text result for any chunking.

use std::collections::HashMap;
use std::sync::LazyLock;

use proptest::prelude::*;
use rampart_sentinel::policy::{CompiledPolicy, Policy};
use rampart_sentinel::scrub::{FingerprintKey, SecretScrubber};
use rampart_sentinel::stream::{StreamRedactor, StreamRestorer};
use rampart_sentinel::transform::{TokenVault, Tokenizer, redact};
use rampart_sentinel::{Channel, Class, Detector};

static DETECTOR: LazyLock<Detector> = LazyLock::new(|| Detector::new().unwrap());
static TEXTS: LazyLock<Vec<String>> = LazyLock::new(|| {
    rampart_sentinel::eval::parse_corpus(include_str!("../corpus/sentinel-corpus.jsonl"))
        .unwrap()
        .into_iter()
        .map(|e| e.text)
        .collect()
});
const LIVE_SECRET: &str = "Zq8-live-secret-Vm3TpLr9";

#[derive(Default)]
struct MemVault(HashMap<String, String>);
impl TokenVault for MemVault {
    type Error = std::convert::Infallible;
    fn seal(&mut self, _: Class, token: &str, value: &str) -> Result<(), Self::Error> {
        self.0.insert(token.to_owned(), value.to_owned());
        Ok(())
    }
}

fn policy() -> CompiledPolicy {
    let p: Policy = serde_json::from_str(
        r#"{"default":{"mode":"reversible","threshold":0.3},
            "rules":[{"class":"PERSON","mode":"strict"},{"class":"HEALTH","mode":"flag"}]}"#,
    )
    .unwrap();
    p.compile().unwrap()
}

fn scrubber() -> SecretScrubber {
    let key = FingerprintKey::new(&[3; 32]).unwrap();
    let fps = key.fingerprints(LIVE_SECRET.as_bytes());
    SecretScrubber::new(FingerprintKey::new(&[3; 32]).unwrap(), fps)
}

/// A document of several corpus sentences (so values sit at every kind of offset), with
/// a live secret and a multi-byte character or two.
fn document() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(0..TEXTS.len(), 1..40),
        proptest::collection::vec(0..4usize, 8),
        any::<bool>(),
    )
        .prop_map(|(picks, seps, secret)| {
            let mut doc = String::new();
            for (i, p) in picks.iter().enumerate() {
                doc.push_str(&TEXTS[*p]);
                doc.push_str(["  ", "\n", " — ", " "][seps[i % seps.len()]]);
            }
            if secret {
                doc.push_str(&format!("leaked {LIVE_SECRET} here and ü"));
            }
            doc
        })
}

fn chunk(text: &str, cuts: &[usize]) -> Vec<String> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| c % (text.len() + 1))
        .filter(|c| text.is_char_boundary(*c))
        .collect();
    points.push(0);
    points.push(text.len());
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| text[w[0]..w[1]].to_owned())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_redacts_exactly_as_the_whole(doc in document(), cuts in proptest::collection::vec(any::<usize>(), 0..60)) {
        let policy = policy();
        let tokenizer = Tokenizer::new(&[1; 32]).unwrap();
        let scrubber = scrubber();
        let whole = redact(&doc, &DETECTOR.scan_with(&doc, Some(&scrubber)), &policy, Channel::Prompt, &tokenizer, &mut MemVault::default()).unwrap();

        let mut vault = MemVault::default();
        let mut s = StreamRedactor::new(&DETECTOR, &policy, Channel::Prompt, &tokenizer, Some(&scrubber));
        let mut out = String::new();
        for c in chunk(&doc, &cuts) {
            out.push_str(&s.push(&c, &mut vault).unwrap());
        }
        let (tail, applied) = s.finish(&mut vault).unwrap();
        out.push_str(&tail);
        prop_assert_eq!(&out, &whole.text);
        prop_assert_eq!(applied, whole.applied);
        prop_assert!(!out.contains(LIVE_SECRET));

        // Restoring the redacted stream, chunked differently, gives back every reversible value.
        let mut r = StreamRestorer::default();
        let mut restored = String::new();
        for c in chunk(&out, &cuts.iter().map(|c| c.wrapping_mul(7)).collect::<Vec<_>>()) {
            restored.push_str(&r.push(&c, |t| vault.0.get(t).cloned()));
        }
        restored.push_str(&r.finish(|t| vault.0.get(t).cloned()));
        let whole_restored = rampart_sentinel::transform::restore(&whole.text, |t| vault.0.get(t).cloned());
        prop_assert_eq!(restored, whole_restored);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary text never panics the detector, and every span is a valid range.
    #[test]
    fn arbitrary_text_is_safe(text in "\\PC{0,200}", ascii in "[ -~\n]{0,300}") {
        for t in [&text, &ascii] {
            for f in DETECTOR.scan(t) {
                prop_assert!(f.start < f.end && f.end <= t.len());
                prop_assert!(t.is_char_boundary(f.start) && t.is_char_boundary(f.end));
            }
        }
    }
}

#[test]
fn a_value_split_at_every_boundary_is_redacted() {
    let policy = policy();
    let tokenizer = Tokenizer::new(&[1; 32]).unwrap();
    let text = "Card 4111 1111 1111 1111, mail jane.doe@example.com, SSN 536-22-1234, key AKIAIOSFODNN7EXAMPLE.";
    let whole = redact(
        text,
        &DETECTOR.scan(text),
        &policy,
        Channel::Prompt,
        &tokenizer,
        &mut MemVault::default(),
    )
    .unwrap();
    for i in 1..text.len() {
        for j in i..text.len() {
            if j != i && (j - i) % 5 != 0 {
                continue;
            }
            let mut vault = MemVault::default();
            let mut s = StreamRedactor::new(&DETECTOR, &policy, Channel::Prompt, &tokenizer, None);
            let mut out = s.push(&text[..i], &mut vault).unwrap();
            out.push_str(&s.push(&text[i..j], &mut vault).unwrap());
            out.push_str(&s.push(&text[j..], &mut vault).unwrap());
            out.push_str(&s.finish(&mut vault).unwrap().0);
            assert_eq!(out, whole.text, "split at {i}, {j}");
        }
    }
}
