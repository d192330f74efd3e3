//! The detector: one multi-pattern regex pass for structured values, one keyword pass for the
//! vocabulary classes, and one token pass for names; then validation, context and overlap
//! resolution.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind as AcMatchKind};
use regex_automata::meta::Regex;
use regex_automata::util::syntax;
use serde::Serialize;

use crate::Class;
use crate::lexicon::{self, LEXICON, cues};
use crate::rule::Rule;
use crate::validate;

/// One detected span. `start` and `end` are byte offsets into the scanned text (end exclusive),
/// always on character boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Finding {
    pub class: Class,
    pub start: usize,
    pub end: usize,
    pub score: f32,
    pub rule: Rule,
}

impl Finding {
    fn new(rule: Rule, start: usize, end: usize) -> Self {
        Finding {
            class: rule.class(),
            start,
            end,
            score: rule.score(),
            rule,
        }
    }
}

/// How far before and after a candidate the detector looks for context words, in bytes. Every
/// decision depends only on text within this radius of the span, which is what lets the
/// streaming scanner promise the same answer for any chunking.
pub const CONTEXT_RADIUS: usize = 48;

#[derive(Debug, Clone, Copy)]
enum Pattern {
    PrivateKey,
    ConnectionString,
    Jwt,
    ProviderKey,
    SecretAssignment,
    PasswordPhrase,
    Email,
    Iban,
    CuedId,
    Date,
    MinorAge,
    StreetAddress,
    ForeignAddress,
    PostBox,
    Nino,
    IndiaPan,
    SpanishDni,
    IcdCode,
    Ipv4,
    Ipv6,
    Number,
}

fn patterns() -> Vec<(Pattern, String)> {
    let month = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)";
    let streets = lexicon::street_types().join("|");
    let ipv4_octet = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
    let h = "[0-9A-Fa-f]{1,4}";
    vec![
        (
            Pattern::PrivateKey,
            r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY-----(?:[A-Za-z0-9+/=\s:,-]*?-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY-----|[A-Za-z0-9+/=\s:,-]*)".into(),
        ),
        (
            Pattern::ConnectionString,
            r#"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/@'"<>]{1,64}:[^\s@/'"<>]{1,128}@[^\s'"<>]{1,255}"#.into(),
        ),
        (
            Pattern::Jwt,
            r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}".into(),
        ),
        (
            Pattern::ProviderKey,
            [
                r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
                r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",
                r"\bgithub_pat_[A-Za-z0-9_]{60,255}\b",
                r"\bglpat-[A-Za-z0-9_-]{20,}\b",
                r"\bxox[abposr]-[A-Za-z0-9-]{10,255}",
                r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,255}\b",
                r"\bsk-(?:proj-|svcacct-|admin-|ant-(?:api|admin)[0-9]{2}-)?[A-Za-z0-9_-]{20,255}",
                r"\bAIza[0-9A-Za-z_-]{35}\b",
                r"\bnpm_[A-Za-z0-9]{36}\b",
                r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b",
                r"\bhf_[A-Za-z]{34}\b",
                r"\bSK[0-9a-f]{32}\b",
                r"\bwhs[ek]_[A-Za-z0-9+/=]{32,}",
                r"\bpypi-[A-Za-z0-9_-]{50,}",
                r"\bdop_v1_[a-f0-9]{64}\b",
                r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b",
            ]
            .join("|"),
        ),
        (
            Pattern::SecretAssignment,
            r#"(?i:\b(?:password|passwd|pwd|passphrase|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?key(?:[_-]?id)?|secret[_-]?(?:access[_-]?)?key|auth[_-]?token|access[_-]?token|refresh[_-]?token|token|private[_-]?key|db[_-]?pass(?:word)?)\b)["']?\s*(?::|=|=>)\s*["']?[^\s"',;<>]{4,200}|(?i:\bauthorization:\s*(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{8,}"#.into(),
        ),
        (
            Pattern::PasswordPhrase,
            r#"(?i:\b(?:password|passcode|passphrase|pin code|pin)\s+(?:is|was)\s*:?\s+)["']?[^\s"',;]{4,64}"#.into(),
        ),
        (
            Pattern::Email,
            r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b".into(),
        ),
        (
            Pattern::Iban,
            r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b".into(),
        ),
        (
            Pattern::CuedId,
            r"(?i:\b(?:passport|driver'?s? licen[cs]e|driving licen[cs]e|dl|licen[cs]e|national id|national identity|id card|identity card|tax id|taxpayer id|tin|itin|nino|ssn|social security|medicare|nhs|aadhaa?r|sin|social insurance|member id)\b(?:\s*(?:no\.?|number|num|#|id))?\s*(?:is|:|#|=|-)?\s*)[A-Z0-9][A-Z0-9 -]{3,18}[A-Z0-9]\b".into(),
        ),
        (
            Pattern::Date,
            format!(
                r"\b(?:[0-9]{{1,2}}[/.-][0-9]{{1,2}}[/.-](?:19|20)[0-9]{{2}}|(?:19|20)[0-9]{{2}}[/.-][0-9]{{1,2}}[/.-][0-9]{{1,2}}|[0-9]{{1,2}}(?:st|nd|rd|th)?(?: of)? {month}\.?,? (?:19|20)[0-9]{{2}}|{month}\.? [0-9]{{1,2}}(?:st|nd|rd|th)?,? (?:19|20)[0-9]{{2}}|[0-9]{{1,2}}/[0-9]{{1,2}}/[0-9]{{2}})\b"
            ),
        ),
        (
            Pattern::MinorAge,
            r"\b(?:[1-9]|1[0-7])[- ](?:years?|yrs?|months?|weeks?)[- ]old\b|(?i:\b(?:aged?|age:)\s*)(?:[1-9]|1[0-7])\b".into(),
        ),
        (
            Pattern::StreetAddress,
            format!(
                r"\b[0-9]{{1,6}}[A-Za-z]?(?:-[0-9]{{1,4}})? (?:(?:[NSEW]|NE|NW|SE|SW|North|South|East|West)\.? )?(?:(?:[A-Z][A-Za-z'-]*|[0-9]{{1,3}}(?:st|nd|rd|th)) ){{1,4}}(?i:{streets})\b\.?(?: (?:[NSEW]|NE|NW|SE|SW)\b\.?)?(?:,? (?:Apt|Apartment|Suite|Ste|Unit|Fl|Floor|Rm|Room|#)\.? ?#?[A-Za-z0-9-]{{1,6}}\b)?(?:,? [A-Z][a-zA-Z]+(?: [A-Z][a-zA-Z]+){{0,2}})?(?:,? [A-Z]{{2}}\b)?(?:,? [0-9]{{5}}(?:-[0-9]{{4}})?\b|,? [A-Z]{{1,2}}[0-9][A-Z0-9]? ?[0-9][A-Z]{{2}}\b)?"
            ),
        ),
        (
            Pattern::ForeignAddress,
            [
                r"\b[A-Z](?:[a-z]|ä|ö|ü|ß)+(?:straße|strasse|str\.|weg|platz|gasse|allee|ring|damm) [0-9]{1,4}[a-z]?\b(?:,? [0-9]{5} [A-Z](?:[a-z]|ä|ö|ü|ß)+)?",
                r"\b[0-9]{1,4}(?: ?(?:bis|ter))?,? (?:rue|avenue|boulevard|bd|place|chemin|allée|impasse|quai) (?:de la |de l'|du |des |de |d')?[A-Z](?:[A-Za-z'-]|é|è|ê|à|ç)+(?: [A-Z](?:[A-Za-z'-]|é|è|ê|à|ç)+){0,3}(?:,? [0-9]{5} [A-Z](?:[A-Za-z-]|é|è|ê|à|ç)+)?",
                r"\b(?:Calle|Avenida|Via|Viale|Piazza|Corso|Rua|Carrer) (?:de la |del |de |della |da |do )?[A-Z](?:[A-Za-z'-]|á|é|í|ó|ú|ñ|à|è|ì|ò|ù)+(?: [A-Z](?:[A-Za-z'-]|á|é|í|ó|ú|ñ|à|è|ì|ò|ù)+){0,3},? (?:n\.?(?:º)? ?)?[0-9]{1,4}\b",
            ]
            .join("|"),
        ),
        (
            Pattern::PostBox,
            r"\b(?:P\.? ?O\.?|Post Office) Box [0-9]{1,6}\b".into(),
        ),
        (
            Pattern::Nino,
            r"\b[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b".into(),
        ),
        (Pattern::IndiaPan, r"\b[A-Z]{3}[PCHFATBLJG][A-Z][0-9]{4}[A-Z]\b".into()),
        (Pattern::SpanishDni, r"\b[0-9]{8}-?[A-Z]\b".into()),
        (
            Pattern::IcdCode,
            r"\b[A-TV-Z][0-9][0-9AB](?:\.[0-9A-TV-Z]{1,4})?\b".into(),
        ),
        (
            Pattern::Ipv4,
            format!(r"\b{ipv4_octet}(?:\.{ipv4_octet}){{3}}\b(?:/[0-9]{{1,2}}\b)?"),
        ),
        (
            Pattern::Ipv6,
            format!(
                r"\b(?:{h}:){{7}}{h}\b|\b(?:{h}:){{1,7}}:(?:{h}(?::{h}){{0,6}})?|::(?:{h}(?::{h}){{0,6}})?(?:%[A-Za-z0-9]+)?"
            ),
        ),
        (
            Pattern::Number,
            r"(?:\+ ?(?:\([0-9]{1,4}\) ?)?|\([0-9]{1,4}\) ?|\b)[0-9](?:(?:[ .-]|\) ?)?[0-9]){5,22}(?:,? ?(?i:x|ext\.?|extension) ?[0-9]{1,6})?\b".into(),
        ),
    ]
}

/// The detector. Build it once ([`Detector::new`]) and share it: scanning takes `&self`.
pub struct Detector {
    regex: Regex,
    kinds: Vec<Pattern>,
    keywords: AhoCorasick,
    keyword_rules: Vec<(Rule, &'static str)>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("patterns", &self.kinds.len())
            .field("keywords", &self.keyword_rules.len())
            .finish()
    }
}

/// The detector could not be built (a bug in a built-in pattern; never bad user input).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the built-in detection patterns did not compile: {0}")]
pub struct BuildError(String);

impl BuildError {
    pub(crate) fn new(message: String) -> Self {
        BuildError(message)
    }
}

impl Detector {
    pub fn new() -> Result<Self, BuildError> {
        let (kinds, sources): (Vec<Pattern>, Vec<String>) = patterns()
            .into_iter()
            // ASCII word boundaries keep the regex on its DFA engines for any input.
            .map(|(k, p)| (k, p.replace(r"\b", r"(?-u:\b)")))
            .unzip();
        // Byte-oriented (ASCII classes, no Unicode case folding) keeps the union small enough for
        // the lazy DFA to stay in its cache; matches that would split a character are dropped in
        // `structured`. Non-ASCII letters in the foreign-address patterns are written as UTF-8
        // alternations.
        let regex = Regex::builder()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .configure(
                Regex::config()
                    .hybrid_cache_capacity(8 << 20)
                    .utf8_empty(false),
            )
            .build_many(&sources)
            .map_err(|e| BuildError(e.to_string()))?;
        let mut keyword_rules = Vec::new();
        for t in lexicon::HEALTH_TERMS {
            keyword_rules.push((Rule::HealthTerm, *t));
        }
        for t in lexicon::BIOMETRIC_TERMS {
            keyword_rules.push((Rule::BiometricTerm, *t));
        }
        for t in lexicon::MINOR_TERMS {
            keyword_rules.push((Rule::MinorTerm, *t));
        }
        let keywords = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(AcMatchKind::LeftmostLongest)
            .kind(Some(AhoCorasickKind::DFA))
            .build(keyword_rules.iter().map(|(_, t)| t))
            .map_err(|e| BuildError(e.to_string()))?;
        // Build the name lists and the number cue index now rather than on the first scan.
        std::sync::LazyLock::force(&LEXICON);
        if let Err(e) = &*NUMBER_CUE_INDEX {
            return Err(e.clone());
        }
        Ok(Detector {
            regex,
            kinds,
            keywords,
            keyword_rules,
        })
    }

    /// Every finding in `text`, ordered by start, none overlapping.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut found = Vec::new();
        self.structured(text, &mut found);
        self.vocabulary(text, &mut found);
        persons(text, &mut found);
        resolve_overlaps(found)
    }

    /// [`Detector::scan`] plus the live secrets `scrubber` finds, which win every overlap.
    pub fn scan_with(
        &self,
        text: &str,
        scrubber: Option<&crate::scrub::SecretScrubber>,
    ) -> Vec<Finding> {
        let findings = self.scan(text);
        let Some(scrubber) = scrubber.filter(|s| !s.is_empty()) else {
            return findings;
        };
        let hits = scrubber.find(text);
        if hits.is_empty() {
            return findings;
        }
        let mut out: Vec<Finding> = findings
            .into_iter()
            .filter(|f| hits.iter().all(|(s, e)| f.end <= *s || f.start >= *e))
            .collect();
        out.extend(
            hits.into_iter()
                .map(|(s, e)| Finding::new(Rule::LiveSecret, s, e)),
        );
        out.sort_by_key(|f| f.start);
        out
    }

    fn structured(&self, text: &str, out: &mut Vec<Finding>) {
        for m in self.regex.find_iter(text) {
            let Some(kind) = self.kinds.get(m.pattern().as_usize()) else {
                continue;
            };
            if !text.is_char_boundary(m.start()) || !text.is_char_boundary(m.end()) {
                continue;
            }
            classify(*kind, text, m.start(), m.end(), out);
        }
    }

    fn vocabulary(&self, text: &str, out: &mut Vec<Finding>) {
        let bytes = text.as_bytes();
        for m in self.keywords.find_iter(text) {
            let (start, end) = (m.start(), m.end());
            if !word_boundary(bytes, start, end) {
                continue;
            }
            let Some(&(rule, term)) = self.keyword_rules.get(m.pattern().as_usize()) else {
                continue;
            };
            let matched = &text[start..end];
            if CASE_SENSITIVE_TERMS.contains(&term)
                && matched.bytes().all(|b| !b.is_ascii_uppercase())
            {
                continue;
            }
            if vetoed_by_next_word(term, next_word(text, end)) {
                continue;
            }
            out.push(Finding::new(rule, start, end));
        }
    }
}

/// Acronyms and short terms that are ordinary words in lower case ("hearing aids", "meal prep").
const CASE_SENSITIVE_TERMS: &[&str] = &[
    "aids", "als", "std", "sti", "ibs", "ocd", "copd", "ptsd", "adhd", "pcos", "ivf", "hpv",
    "prep", "hiv", "chemo", "rehab", "plan b", "teen", "pupil",
];

/// Terms that mean something else before certain words ("child process", "minor version").
fn vetoed_by_next_word(term: &str, next: &str) -> bool {
    let next = next.to_ascii_lowercase();
    let vetoes: &[&str] = match term {
        "child" | "children" => &[
            "process",
            "processes",
            "node",
            "nodes",
            "element",
            "elements",
            "table",
            "tables",
            "thread",
            "threads",
            "pid",
            "span",
            "spans",
            "component",
            "components",
            "class",
            "record",
            "records",
            "row",
            "rows",
            "key",
            "keys",
            "window",
            "task",
            "tasks",
            "object",
            "objects",
            "directory",
            "dir",
            "widget",
            "widgets",
            "entity",
            "entities",
            "item",
            "items",
            "theme",
            "account",
            "accounts",
            "workflow",
        ],
        "minor" | "minors" => &[
            "version",
            "versions",
            "release",
            "releases",
            "update",
            "updates",
            "bug",
            "bugs",
            "issue",
            "issues",
            "change",
            "changes",
            "fix",
            "fixes",
            "revision",
            "detail",
            "details",
            "league",
            "key",
            "third",
            "scale",
            "edit",
            "edits",
            "improvements",
            "tweak",
            "tweaks",
            "typo",
            "typos",
            "number",
            "gc",
            "compaction",
            "outage",
        ],
        "baby" => &["steps", "step", "boomer", "boomers", "monitor", "shark"],
        "kid" | "kids" => &["gloves"],
        "stroke" => &[
            "width", "color", "colour", "style", "linecap", "linejoin", "order",
        ],
        "lithium" => &[
            "battery",
            "batteries",
            "ion",
            "mine",
            "mines",
            "mining",
            "price",
            "prices",
            "carbonate",
            "hydroxide",
            "deposits",
            "cell",
            "cells",
        ],
        "depression" => &["era"],
        "seizures" => &["of"],
        "fingerprint" | "fingerprints" => &[
            "of",
            "mismatch",
            "sha256",
            "sha-256",
            "md5",
            "hash",
            "algorithm",
            "is",
            "for",
        ],
        "biometric" => &["passport"],
        "code" => &["review"],
        _ => return false,
    };
    vetoes.contains(&next.as_str())
}

fn next_word(text: &str, from: usize) -> &str {
    let rest = text.get(from..).unwrap_or("");
    let rest = rest.trim_start_matches([' ', '-', '\t']);
    let end = rest
        .find(|c: char| !c.is_alphanumeric())
        .unwrap_or(rest.len());
    &rest[..end]
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn word_boundary(bytes: &[u8], start: usize, end: usize) -> bool {
    let before = start == 0 || !is_word_byte(bytes[start - 1]);
    let after = end >= bytes.len() || !is_word_byte(bytes[end]);
    before && after
}

/// The lower-cased text up to `radius` bytes before `start`, cut at a character boundary.
fn window_before(text: &str, start: usize, radius: usize) -> String {
    let mut from = start.saturating_sub(radius);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    text[from..start].to_ascii_lowercase()
}

fn window_after(text: &str, end: usize, radius: usize) -> String {
    let mut to = (end + radius).min(text.len());
    while !text.is_char_boundary(to) {
        to -= 1;
    }
    text[end..to].to_ascii_lowercase()
}

/// Whether `hay` holds `needle` as whole words.
fn contains_word(hay: &str, needle: &str) -> bool {
    // Context windows are a few dozen bytes: a direct scan beats setting up a substring
    // searcher per needle. Byte matching is sound on UTF-8: a needle that starts with a lead
    // byte can only match at a character boundary.
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let (Some(&first), Some(&last)) = (n.first(), n.last()) else {
        return false;
    };
    if n.len() > h.len() {
        return false;
    }
    (0..=h.len() - n.len()).any(|s| {
        let e = s + n.len();
        h[s] == first
            && h[e - 1] == last
            && &h[s..e] == n
            && (s == 0 || !h[s - 1].is_ascii_alphanumeric() || !first.is_ascii_alphanumeric())
            && (e == h.len() || !h[e].is_ascii_alphanumeric() || !last.is_ascii_alphanumeric())
    })
}

/// The cue lists a digit run's context is asked about.
#[derive(Debug, Clone, Copy)]
enum NumberCue {
    Ssn,
    Passport,
    Driver,
    National,
    Bank,
    Routing,
    Phone,
}

const NUMBER_CUES: [(NumberCue, &[&str]); 7] = [
    (NumberCue::Ssn, cues::SSN),
    (NumberCue::Passport, cues::PASSPORT),
    (NumberCue::Driver, cues::DRIVER),
    (NumberCue::National, cues::NATIONAL),
    (NumberCue::Bank, cues::BANK),
    (NumberCue::Routing, &["routing", "aba", "rtn"]),
    (NumberCue::Phone, cues::PHONE),
];

/// Every number cue word in one automaton, so a context window is read once per digit run
/// rather than once per word.
struct NumberCueIndex {
    words: AhoCorasick,
    /// Per word: the lists it belongs to, one bit per [`NumberCue`].
    lists: Vec<u8>,
    needles: Vec<&'static str>,
}

impl NumberCueIndex {
    fn build() -> Result<Self, BuildError> {
        let mut needles: Vec<&'static str> = Vec::new();
        let mut lists: Vec<u8> = Vec::new();
        for (cue, words) in NUMBER_CUES {
            for w in words {
                match needles.iter().position(|n| n == w) {
                    Some(i) => lists[i] |= 1 << cue as u8,
                    None => {
                        needles.push(w);
                        lists.push(1 << cue as u8);
                    }
                }
            }
        }
        let words = AhoCorasickBuilder::new()
            .match_kind(AcMatchKind::Standard)
            .build(&needles)
            .map_err(|e| BuildError(e.to_string()))?;
        Ok(NumberCueIndex {
            words,
            lists,
            needles,
        })
    }

    /// The lists with a word in `window` (lower case), as bits; words count only whole, as in
    /// [`contains_word`].
    fn lists_in(&self, window: &str) -> u8 {
        let h = window.as_bytes();
        let mut found = 0;
        for m in self.words.find_overlapping_iter(window) {
            let n = self.needles[m.pattern().as_usize()].as_bytes();
            let (s, e) = (m.start(), m.end());
            let whole =
                (s == 0 || !h[s - 1].is_ascii_alphanumeric() || !n[0].is_ascii_alphanumeric())
                    && (e == h.len()
                        || !h[e].is_ascii_alphanumeric()
                        || !n[n.len() - 1].is_ascii_alphanumeric());
            if whole {
                found |= self.lists[m.pattern().as_usize()];
            }
        }
        found
    }
}

static NUMBER_CUE_INDEX: std::sync::LazyLock<Result<NumberCueIndex, BuildError>> =
    std::sync::LazyLock::new(NumberCueIndex::build);

fn cue(text: &str, start: usize, words: &[&str]) -> bool {
    let before = window_before(text, start, CONTEXT_RADIUS);
    words.iter().any(|w| contains_word(&before, w))
}

fn digits_of(s: &str) -> Vec<u8> {
    s.bytes().filter(u8::is_ascii_digit).collect()
}

fn classify(kind: Pattern, text: &str, start: usize, end: usize, out: &mut Vec<Finding>) {
    let s = &text[start..end];
    match kind {
        Pattern::PrivateKey => out.push(Finding::new(Rule::PrivateKey, start, end)),
        Pattern::ConnectionString => out.push(Finding::new(Rule::ConnectionString, start, end)),
        Pattern::Jwt => {
            if jwt_header_ok(s) {
                out.push(Finding::new(Rule::Jwt, start, end));
            }
        }
        Pattern::ProviderKey => out.push(Finding::new(Rule::ProviderKey, start, end)),
        Pattern::SecretAssignment => {
            if let Some((vs, ve)) = assigned_value(s) {
                let value = &s[vs..ve];
                if !is_placeholder(value) {
                    out.push(Finding::new(Rule::SecretAssignment, start + vs, start + ve));
                }
            }
        }
        Pattern::PasswordPhrase => {
            if let Some((vs, ve)) = phrase_value(s) {
                let value = &s[vs..ve];
                let lower = value.to_ascii_lowercase();
                let wordy = value.bytes().all(|b| b.is_ascii_lowercase())
                    && (LEXICON.common.contains(lower.as_str())
                        || PHRASE_NOT_SECRETS.contains(&lower.as_str()));
                if !wordy && !is_placeholder(value) {
                    out.push(Finding::new(Rule::PasswordPhrase, start + vs, start + ve));
                }
            }
        }
        Pattern::Email => out.push(Finding::new(Rule::Email, start, end)),
        Pattern::Iban => {
            let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
            if validate::iban(&compact) {
                out.push(Finding::new(Rule::Iban, start, end));
            } else {
                // The loose tail may have swallowed a following word: try shorter cuts that end
                // at a space.
                for (i, _) in s.match_indices(' ').collect::<Vec<_>>().into_iter().rev() {
                    let cut: Vec<u8> = s[..i].bytes().filter(|b| *b != b' ').collect();
                    if validate::iban(&cut) {
                        out.push(Finding::new(Rule::Iban, start, start + i));
                        break;
                    }
                }
            }
        }
        Pattern::CuedId => cued_id(text, start, end, out),
        Pattern::Date => {
            let before = window_before(text, start, 32);
            let after = window_after(text, end, 16);
            if cues::DOB.iter().any(|w| contains_word(&before, w))
                || after.starts_with(" (dob")
                || after.starts_with(" (born")
            {
                out.push(Finding::new(Rule::DateOfBirthCue, start, end));
            }
        }
        Pattern::MinorAge => out.push(Finding::new(Rule::MinorAge, start, end)),
        Pattern::StreetAddress => {
            let full = s.bytes().filter(u8::is_ascii_digit).count()
                >= 5 + digits_of(s.split(' ').next().unwrap_or("")).len()
                || s.contains(',');
            let rule = if full {
                Rule::StreetAddressFull
            } else {
                Rule::StreetAddress
            };
            // "3 Main Street" is an address; "3 Big Data Way to scale" mostly is not, but the
            // numbers-then-capitalised-words shape is what the score covers.
            out.push(Finding::new(rule, start, end));
        }
        Pattern::ForeignAddress => out.push(Finding::new(Rule::ForeignAddress, start, end)),
        Pattern::PostBox => out.push(Finding::new(Rule::PostBox, start, end)),
        Pattern::Nino => {
            let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
            if validate::uk_nino(&compact) {
                out.push(Finding::new(Rule::NationalIdChecked, start, end));
            }
        }
        Pattern::IndiaPan => out.push(Finding::new(Rule::NationalIdChecked, start, end)),
        Pattern::SpanishDni => {
            let compact: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
            if validate::spanish_dni(&compact) {
                out.push(Finding::new(Rule::NationalIdChecked, start, end));
            }
        }
        Pattern::IcdCode => {
            if cue(text, start, cues::ICD) {
                out.push(Finding::new(Rule::HealthCode, start, end));
            }
        }
        Pattern::Ipv4 => {
            let before = window_before(text, start, 12);
            let version_like = cues::NOT_IP.iter().any(|w| before.trim_end().ends_with(w));
            if !version_like {
                out.push(Finding::new(Rule::Ipv4, start, end));
            }
        }
        Pattern::Ipv6 => {
            let addr = s.split('%').next().unwrap_or(s);
            let groups = addr.split(':').filter(|g| !g.is_empty()).count();
            if addr.parse::<std::net::Ipv6Addr>().is_ok()
                && (groups >= 3 || addr.contains("::") && groups >= 1)
            {
                out.push(Finding::new(Rule::Ipv6, start, end));
            }
        }
        Pattern::Number => number(text, start, end, out),
    }
}

const PHRASE_NOT_SECRETS: &[&str] = &[
    "incorrect",
    "wrong",
    "invalid",
    "expired",
    "required",
    "missing",
    "correct",
    "strong",
    "weak",
    "reset",
    "changed",
    "empty",
    "blank",
    "hidden",
    "masked",
    "redacted",
    "unknown",
    "set",
    "stored",
    "encrypted",
    "hashed",
    "too",
    "not",
    "being",
    "now",
    "also",
    "still",
];

fn is_placeholder(value: &str) -> bool {
    let v = value.trim_matches(|c: char| c == '"' || c == '\'');
    v.chars()
        .all(|c| c == '*' || c == 'x' || c == 'X' || c == '•' || c == '.')
        || v.starts_with("${")
        || v.starts_with("{{")
        || v.starts_with('<')
        || v.starts_with('[')
        || v.starts_with("%(")
        || (v.starts_with('%') && v.len() <= 3)
        || (v.starts_with('$')
            && v[1..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
        || matches!(
            v.to_ascii_lowercase().as_str(),
            "null"
                | "none"
                | "true"
                | "false"
                | "undefined"
                | "redacted"
                | "required"
                | "string"
                | "example"
                | "placeholder"
                | "your_password"
                | "your-password"
                | "password"
                | "secret"
                | "token"
                | "****"
        )
        || v.ends_with("()")
        || v.contains("env.")
        || v.contains("os.environ")
        || v.contains("getenv")
}

/// Where the value starts and ends in a `key = value` match.
fn assigned_value(s: &str) -> Option<(usize, usize)> {
    let lower = s.to_ascii_lowercase();
    let sep = if lower.starts_with("authorization") {
        let after_colon = s.find(':')? + 1;
        let rest = &s[after_colon..];
        let scheme_end =
            rest.trim_start().find(char::is_whitespace)? + (rest.len() - rest.trim_start().len());
        after_colon + scheme_end
    } else {
        s.find([':', '='])? + 1
    };
    let bytes = s.as_bytes();
    let mut vs = sep;
    while vs < s.len() && matches!(bytes[vs], b' ' | b'\t' | b'"' | b'\'' | b'>' | b'=') {
        vs += 1;
    }
    let mut ve = s.len();
    while ve > vs && matches!(bytes[ve - 1], b'"' | b'\'' | b'.' | b')' | b'}') {
        ve -= 1;
    }
    (ve > vs).then_some((vs, ve))
}

fn phrase_value(s: &str) -> Option<(usize, usize)> {
    let lower = s.to_ascii_lowercase();
    let at = lower.find(" is").or_else(|| lower.find(" was"))?;
    let bytes = s.as_bytes();
    let mut vs = at + 1;
    while vs < s.len() && bytes[vs].is_ascii_alphabetic() {
        vs += 1;
    }
    while vs < s.len() && matches!(bytes[vs], b' ' | b':' | b'"' | b'\'') {
        vs += 1;
    }
    let mut ve = s.len();
    while ve > vs && matches!(bytes[ve - 1], b'"' | b'\'' | b'.' | b'!' | b'?' | b')') {
        ve -= 1;
    }
    (ve > vs).then_some((vs, ve))
}

fn jwt_header_ok(s: &str) -> bool {
    use base64::Engine as _;
    let header = s.split('.').next().unwrap_or("");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|h| h.contains("\"alg\""))
}

/// A number that follows a word saying what it is ("passport no. X1234567").
fn cued_id(text: &str, start: usize, end: usize, out: &mut Vec<Finding>) {
    let s = &text[start..end];
    let lower = s.to_ascii_lowercase();
    // The value is the last whitespace-free run (or the dashed/spaced group) after the cue.
    let value_start = value_start_after_cue(s);
    let value = &s[value_start..];
    let digits = digits_of(value);
    if digits.len() < 4 {
        return;
    }
    let (vs, ve) = (start + value_start, end);
    let cue_word = |w: &str| lower.starts_with(w);
    if cue_word("ssn") || cue_word("social security") {
        if validate::ssn(&digits) {
            out.push(Finding::new(Rule::SsnCue, vs, ve));
        }
        return;
    }
    if cue_word("aadhaar") || cue_word("aadhar") {
        if validate::aadhaar(&digits) {
            out.push(Finding::new(Rule::NationalIdChecked, vs, ve));
        }
        return;
    }
    if cue_word("nhs") {
        if validate::nhs(&digits) {
            out.push(Finding::new(Rule::NationalIdChecked, vs, ve));
        }
        return;
    }
    if cue_word("sin") || cue_word("social insurance") {
        if digits.len() == 9 && validate::luhn(&digits) {
            out.push(Finding::new(Rule::NationalIdChecked, vs, ve));
        }
        return;
    }
    if value.len() > 20
        || (value.contains(' ')
            && !value
                .split(' ')
                .all(|g| g.bytes().all(|b| b.is_ascii_digit())))
    {
        // A sentence went on after the cue; fall back to the first token.
        let first = value.split(' ').next().unwrap_or("");
        if digits_of(first).len() >= 4 {
            out.push(Finding::new(Rule::GovIdCue, vs, vs + first.len()));
        }
        return;
    }
    out.push(Finding::new(Rule::GovIdCue, vs, ve));
}

fn value_start_after_cue(s: &str) -> usize {
    // The value is the first token that contains a digit after the cue words.
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        // Skip a token.
        let tok_start = i;
        while i < s.len() && !matches!(bytes[i], b' ' | b':' | b'#' | b'=') {
            i += 1;
        }
        if s[tok_start..i].bytes().any(|b| b.is_ascii_digit()) {
            return tok_start;
        }
        while i < s.len() && matches!(bytes[i], b' ' | b':' | b'#' | b'=') {
            i += 1;
        }
    }
    s.len()
}

/// Digit runs: cards, SSNs, phone numbers, national ids and account numbers, told apart by
/// shape, checksum and context.
fn number(text: &str, start: usize, end: usize, out: &mut Vec<Finding>) {
    if let Some(at) = extension_start(&text[start..end]) {
        // "555-0187 x12": a phone number's span keeps its extension; anything else found
        // before the `x` keeps its own span.
        let found = out.len();
        if classify_number(text, start, start + at, out) {
            for f in out[found..].iter_mut().filter(|f| f.class == Class::Phone) {
                f.end = end;
            }
        }
        return;
    }
    if classify_number(text, start, end, out) {
        return;
    }
    // The run may join two values ("2024 212-555-0187"); try the space-separated windows,
    // longest first.
    let s = &text[start..end];
    let mut cuts = vec![0];
    cuts.extend(s.match_indices(' ').map(|(i, _)| i + 1));
    let n = cuts.len();
    if !(2..=8).contains(&n) {
        return;
    }
    let ends: Vec<usize> = cuts[1..].iter().map(|c| c - 1).chain([s.len()]).collect();
    for width in (1..n).rev() {
        for i in 0..=(n - width) {
            let (a, b) = (cuts[i], ends[i + width - 1]);
            if classify_number(text, start + a, start + b, out) {
                return;
            }
        }
    }
}

/// Where a phone extension (`x12`, `ext. 12`, `extension 12`) starts in a digit run, with the
/// separators before it.
fn extension_start(s: &str) -> Option<usize> {
    let at = s.find(|c: char| c.is_ascii_alphabetic())?;
    Some(s[..at].trim_end_matches([' ', ',']).len())
}

fn group_lengths(s: &str) -> Vec<usize> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .map(str::len)
        .collect()
}

fn classify_number(text: &str, start: usize, end: usize, out: &mut Vec<Finding>) -> bool {
    let s = &text[start..end];
    let digits = digits_of(s);
    let groups = group_lengths(s);
    let n = digits.len();
    let plus = s.starts_with('+');
    let contiguous = groups.len() == 1;
    // One lower-cased context window for every cue question below.
    let before = window_before(text, start, CONTEXT_RADIUS);
    let in_window = std::cell::OnceCell::new();
    let cue = |c: NumberCue| match &*NUMBER_CUE_INDEX {
        Ok(index) => *in_window.get_or_init(|| index.lists_in(&before)) & (1 << c as u8) != 0,
        // Detector::new refuses to build without the index; this keeps the answer right anyway.
        Err(_) => NUMBER_CUES[c as usize]
            .1
            .iter()
            .any(|w| contains_word(&before, w)),
    };
    let push = |out: &mut Vec<Finding>, rule| {
        out.push(Finding::new(rule, start, end));
        true
    };
    if plus {
        return validate::e164(&digits) && push(out, Rule::PhoneFormatted);
    }
    if groups == [3, 2, 4] && validate::ssn(&digits) {
        let rule = if cue(NumberCue::Ssn) {
            Rule::SsnCue
        } else {
            Rule::Ssn
        };
        return push(out, rule);
    }
    if (12..=19).contains(&n)
        && (contiguous
            || groups.iter().all(|g| *g == 4)
            || groups == [4, 6, 5]
            || groups == [4, 6, 4]
            || (groups.len() == 5 && groups[..4].iter().all(|g| *g == 4)))
        && validate::payment_card(&digits)
    {
        return push(out, Rule::PaymentCard);
    }
    if n == 9 && contiguous && cue(NumberCue::Ssn) && validate::ssn(&digits) {
        return push(out, Rule::SsnCue);
    }
    if groups == [4, 4, 4] && validate::aadhaar(&digits) {
        return push(out, Rule::NationalIdChecked);
    }
    if cue(NumberCue::Bank) {
        if n == 9 && validate::aba_routing(&digits) && cue(NumberCue::Routing) {
            return push(out, Rule::RoutingNumber);
        }
        if (6..=17).contains(&n) && (contiguous || groups.len() <= 3) {
            return push(out, Rule::BankAccountCue);
        }
    }
    if cue(NumberCue::National) || cue(NumberCue::Passport) || cue(NumberCue::Driver) {
        if groups == [3, 3, 4] && validate::nhs(&digits) {
            return push(out, Rule::NationalIdChecked);
        }
        if (6..=14).contains(&n) && !cue(NumberCue::Phone) {
            return push(out, Rule::GovIdCue);
        }
    }
    let formatted_nanp = (n == 10 && (groups == [3, 3, 4] || s.starts_with('(')))
        || (n == 11 && digits[0] == b'1' && groups == [1, 3, 3, 4]);
    if formatted_nanp {
        let national = if n == 11 { &digits[1..] } else { &digits[..] };
        if validate::nanp(national) {
            return push(out, Rule::PhoneFormatted);
        }
    }
    if validate::uk_national(&digits) && !contiguous && groups.len() <= 3 && groups[0] >= 3 {
        return push(out, Rule::PhoneFormatted);
    }
    if n == 10 && contiguous && validate::nanp(&digits) {
        let rule = if cue(NumberCue::Phone) {
            Rule::PhoneCue
        } else {
            Rule::PhoneBare
        };
        return push(out, rule);
    }
    if (7..=15).contains(&n) && cue(NumberCue::Phone) && !s.contains('.') {
        let shape_ok = groups.len() >= 2 || digits[0] == b'0';
        if shape_ok && !looks_like_date_or_time(&groups) {
            return push(out, Rule::PhoneCue);
        }
    }
    false
}

fn looks_like_date_or_time(groups: &[usize]) -> bool {
    groups == [4, 2, 2] || groups == [2, 2, 4]
}

/// Overlapping findings: any other class beats a name; then the higher score wins, then the
/// longer span, then the earlier one.
fn resolve_overlaps(mut found: Vec<Finding>) -> Vec<Finding> {
    if found.len() < 2 {
        return found;
    }
    // Names lose to any other overlapping class: "Victor Hugo" inside "8 avenue Victor Hugo" is
    // part of the address, and a name-shaped run is weaker evidence than a validated value.
    found.sort_by(|a, b| {
        (a.class == Class::Person)
            .cmp(&(b.class == Class::Person))
            .then(b.score.total_cmp(&a.score))
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Finding> = Vec::with_capacity(found.len());
    for f in found {
        if kept.iter().all(|k| f.end <= k.start || f.start >= k.end) {
            kept.push(f);
        }
    }
    kept.sort_by_key(|f| f.start);
    kept
}

// ---------------------------------------------------------------------------------------------
// Names

#[derive(Debug, Clone)]
struct Token {
    start: usize,
    end: usize,
    lower: String,
    /// A single capital and a full stop: "J."
    initial: bool,
    /// A lower-case connecting particle: "van", "de", "bin".
    particle: bool,
}

const PARTICLES: &[&str] = &[
    "van", "von", "der", "den", "de", "da", "das", "do", "dos", "del", "della", "di", "du", "le",
    "la", "bin", "ibn", "al", "el", "ter", "ten", "y",
];

fn persons(text: &str, out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let at_word_start =
            i == 0 || !is_word_byte(bytes[i - 1]) && bytes[i - 1] != b'\'' && bytes[i - 1] != b'-';
        if at_word_start && (b.is_ascii_uppercase() || b >= 0xC0) {
            let run = capitalised_run(text, i);
            if run.is_empty() {
                i += 1;
                while i < bytes.len() && !text.is_char_boundary(i) {
                    i += 1;
                }
                continue;
            }
            let next = run.last().map_or(i + 1, |t| t.end);
            judge_run(text, &run, out);
            i = next.max(i + 1);
        } else {
            i += 1;
        }
        while i < bytes.len() && !text.is_char_boundary(i) {
            i += 1;
        }
    }
}

/// Reads one capitalised word at `at`: letters with inner apostrophes or hyphens.
fn capitalised_word(text: &str, at: usize) -> Option<Token> {
    let rest = &text[at..];
    let mut chars = rest.char_indices();
    let (_, first) = chars.next()?;
    if !first.is_uppercase() {
        return None;
    }
    let mut end = first.len_utf8();
    let mut has_lower = false;
    let mut all_upper = true;
    let mut prev_joiner = false;
    for (idx, c) in chars {
        if c.is_alphabetic() {
            has_lower |= c.is_lowercase();
            all_upper &= c.is_uppercase();
            end = idx + c.len_utf8();
            prev_joiner = false;
        } else if (c == '\'' || c == '’' || c == '-') && !prev_joiner {
            prev_joiner = true;
        } else {
            break;
        }
    }
    let word = &rest[..end];
    let after = rest[end..].chars().next();
    if after.is_some_and(|c| c.is_numeric() || c == '_' || c == '@' || c == '/') {
        return None;
    }
    // "ORD-2026-10172", "Build-42": an identifier, not a word.
    let mut tail = rest[end..].chars();
    if matches!(tail.next(), Some('-' | '_' | '#'))
        && tail.next().is_some_and(|c| c.is_ascii_digit())
    {
        return None;
    }
    let initial = word.chars().count() == 1 && after == Some('.');
    if initial {
        return Some(Token {
            start: at,
            end: at + end + 1,
            lower: word.to_lowercase(),
            initial: true,
            particle: false,
        });
    }
    if !(has_lower || all_upper && word.chars().count() >= 2) {
        return None;
    }
    let lower = word.to_lowercase();
    if !has_lower {
        // Upper-case words count only when the name lists know them ("JOHN SMITH" in a form).
        if !(LEXICON.given.contains(lower.as_str()) || LEXICON.surnames.contains(lower.as_str()))
            || LEXICON.common.contains(lower.as_str())
        {
            return None;
        }
    }
    Some(Token {
        start: at,
        end: at + end,
        lower,
        initial: false,
        particle: false,
    })
}

fn capitalised_run(text: &str, at: usize) -> Vec<Token> {
    let mut run: Vec<Token> = Vec::new();
    let mut pos = at;
    loop {
        if run.len() >= 6 {
            break;
        }
        if let Some(tok) = capitalised_word(text, pos) {
            pos = tok.end;
            run.push(tok);
        } else if !run.is_empty() {
            // A particle between two capitalised words.
            let rest = &text[pos..];
            let word_end = rest
                .find(|c: char| !c.is_ascii_lowercase())
                .unwrap_or(rest.len());
            let word = &rest[..word_end];
            if PARTICLES.contains(&word)
                && rest[word_end..].starts_with(' ')
                && let Some(next) = capitalised_word(text, pos + word_end + 1)
            {
                run.push(Token {
                    start: pos,
                    end: pos + word_end,
                    lower: word.to_owned(),
                    initial: false,
                    particle: true,
                });
                pos = next.end;
                run.push(next);
                if text[pos..].starts_with(' ') {
                    pos += 1;
                    continue;
                }
            }
            break;
        } else {
            break;
        }
        if text[pos..].starts_with(' ')
            && text[pos + 1..].starts_with(|c: char| c.is_uppercase() || c.is_ascii_lowercase())
        {
            pos += 1;
        } else {
            break;
        }
    }
    while run.last().is_some_and(|t| t.particle) {
        run.pop();
    }
    run
}

/// Whether an unknown capitalised word could be a name: English derivational endings ("Annual",
/// "Planning", "Revenue"-like words) are rare at the end of names.
fn name_shaped(t: &Token) -> bool {
    const ENDINGS: &[&str] = &[
        "ly", "ing", "tion", "sion", "ment", "ness", "ity", "al", "ive", "ous", "ics", "ance",
        "ence", "ure", "ship", "ism", "ist", "able", "ible", "ful", "less", "ory", "ary", "ed",
        "ue", "ware", "work", "works", "ware", "book", "base", "flow", "hub", "ops", "net",
    ];
    t.lower.chars().count() >= 2 && !ENDINGS.iter().any(|e| t.lower.ends_with(e))
}

fn is_sentence_start(text: &str, at: usize) -> bool {
    let before = text[..at].trim_end_matches([' ', '\t', '"', '\'', '(', '*', '-', '“']);
    before.is_empty() || before.ends_with(['.', '!', '?', '\n', ':', ';', '>', '|', '#', '`'])
}

/// The alphabetic word `s` ends with.
fn last_word(s: &str) -> &str {
    let start = s
        .char_indices()
        .rev()
        .find(|(_, c)| !c.is_alphabetic())
        .map_or(0, |(i, c)| i + c.len_utf8());
    &s[start..]
}

fn judge_run(text: &str, run: &[Token], out: &mut Vec<Finding>) {
    let lex = &*LEXICON;
    let given = |t: &Token| lex.given.contains(t.lower.as_str());
    let surname = |t: &Token| {
        lex.surnames.contains(t.lower.as_str()) || t.lower.contains('\'') && t.lower.len() > 3
    };
    let common = |t: &Token| {
        lex.common.contains(t.lower.as_str()) || lexicon::TITLES.contains(&t.lower.as_str())
    };
    // A title may sit just before the run, outside it ("Dr. Okafor": "Dr" ended the previous
    // run at the full stop).
    let run_start = run[0].start;
    let before = window_before(text, run_start, CONTEXT_RADIUS);
    let before_trim = before.trim_end_matches([' ', '.', ',', '\t', '\n', '\r']);
    let prev_word = last_word(before_trim);
    let mut title = lexicon::TITLES.contains(&prev_word) && before.ends_with(' ');
    let mut first = 0;
    while first < run.len() {
        let t = &run[first];
        let next = run.get(first + 1);
        if lexicon::TITLES.contains(&t.lower.trim_end_matches('.')) && next.is_some() {
            title = true;
            first += 1;
            continue;
        }
        let keep = given(t) && next.is_some_and(|n| (surname(n) || given(n)) && !common(n))
            || title && surname(t);
        if common(t) && !keep {
            first += 1;
            continue;
        }
        break;
    }
    let mut last = run.len();
    while last > first {
        let t = &run[last - 1];
        if (common(t) && !(surname(t) && (last - first >= 2 || title))) || t.particle {
            last -= 1;
        } else {
            break;
        }
    }
    if last <= first {
        return;
    }
    let toks = &run[first..last];
    if toks.len() > 4 {
        return;
    }
    let start = toks[0].start;
    let end = toks[toks.len() - 1].end;
    let after = window_after(text, end, CONTEXT_RADIUS);
    let next = after.trim_start_matches([' ', ',']);
    let next_word_end = next
        .find(|c: char| !c.is_alphanumeric() && c != '.')
        .unwrap_or(next.len());
    if lexicon::ORGANISATION_SUFFIXES.contains(&&next[..next_word_end]) {
        return;
    }
    let (before, before_trim, prev_word) = if first == 0 {
        (before.clone(), before_trim.to_owned(), prev_word.to_owned())
    } else {
        let b = window_before(text, start, CONTEXT_RADIUS);
        let bt = b
            .trim_end_matches([' ', '.', ',', '\t', '\n', '\r'])
            .to_owned();
        let pw = last_word(&bt).to_owned();
        (b, bt, pw)
    };
    let before_trim = before_trim.as_str();
    let prev_word = prev_word.as_str();
    let _ = &before;
    // Context checks are the costly part; they run only when a rule needs them. Comparing one
    // byte first keeps most cues from reaching a full comparison.
    let last_byte = before_trim.as_bytes().last();
    let cue_before = || {
        title
            || lexicon::PERSON_CUES_BEFORE.iter().any(|c| {
                let c = c.trim_end_matches([',', ':']);
                c.as_bytes().last() == last_byte
                    && before_trim.ends_with(c)
                    && before_trim[..before_trim.len() - c.len()]
                        .chars()
                        .last()
                        .is_none_or(|p| !p.is_alphanumeric())
            })
    };
    let strong_cue = || {
        title
            || lexicon::STRONG_PERSON_CUES.iter().any(|c| {
                c.as_bytes().last() == last_byte
                    && before_trim.ends_with(c)
                    && before_trim[..before_trim.len() - c.len()]
                        .chars()
                        .last()
                        .is_none_or(|p| !p.is_alphanumeric())
            })
    };
    let after_word = after.trim_start_matches(' ');
    let cue_after = || {
        lexicon::PERSON_CUES_AFTER
            .iter()
            .any(|c| after.starts_with(c) || after_word.starts_with(c))
    };
    let names: Vec<&Token> = toks.iter().filter(|t| !t.initial && !t.particle).collect();
    let Some(first_name) = names.first() else {
        return;
    };
    let last_name = names[names.len() - 1];
    let multi = names.len() >= 2;
    let all_common = names.iter().all(|t| common(t));
    let sentence_start = is_sentence_start(text, start);
    // "Lincoln Memorial", "Madison Circle": a place, unless the words are a known given name
    // and surname ("Olga Hill").
    let place_word = lexicon::STREET_TYPES.contains(last_name.lower.as_str())
        || lexicon::ORGANISATION_SUFFIXES.contains(&last_name.lower.as_str());
    if multi && place_word && !(given(first_name) && surname(last_name)) {
        return;
    }
    let place_before = ["in", "at", "near", "into", "of", "across", "around"].contains(&prev_word);
    let rule = if title && names.iter().any(|t| !common(t) || surname(t)) {
        Some(Rule::PersonTitle)
    } else if multi
        && given(first_name)
        && surname(last_name)
        && (!common(first_name) || !common(last_name))
    {
        Some(Rule::PersonFullKnown)
    } else if multi && given(first_name) && !common(last_name) && !common(first_name) {
        Some(Rule::PersonFullGiven)
    } else if multi
        && surname(last_name)
        && !common(first_name)
        && !common(last_name)
        && (cue_before() || cue_after() || !sentence_start || name_shaped(first_name))
    {
        Some(Rule::PersonFullSurname)
    } else if (cue_before() || cue_after())
        && !all_common
        && (given(first_name) || surname(last_name))
        || strong_cue() && names.iter().all(|t| !common(t) && name_shaped(t))
    {
        Some(Rule::PersonCue)
    } else if !multi && given(first_name) && !common(first_name) && !sentence_start && !place_before
    {
        Some(Rule::PersonGiven)
    } else if multi
        && (!sentence_start || cue_after() || cue_before())
        && names.len() <= 3
        && names.iter().all(|t| !common(t) && name_shaped(t))
    {
        Some(Rule::PersonShape)
    } else {
        None
    };
    if let Some(rule) = rule {
        out.push(Finding::new(rule, start, end));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;

    #[test]
    fn the_number_cue_index_agrees_with_asking_each_list() {
        let index = NumberCueIndex::build().unwrap();
        let slow = |w: &str| {
            NUMBER_CUES
                .iter()
                .filter(|(_, words)| words.iter().any(|x| contains_word(w, x)))
                .fold(0u8, |m, (c, _)| m | 1 << *c as u8)
        };
        let corpus = include_str!("../corpus/sentinel-corpus.jsonl");
        let mut windows = 0;
        for line in corpus.lines() {
            let text = serde_json::from_str::<serde_json::Value>(line).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned();
            for (i, _) in text.match_indices(|c: char| c.is_ascii_digit()) {
                let w = window_before(&text, i, CONTEXT_RADIUS);
                assert_eq!(index.lists_in(&w), slow(&w), "{w:?}");
                windows += 1;
            }
        }
        assert!(windows > 10_000, "{windows}");
        for w in [
            "lessnote",
            "my ssn: ",
            "acct no",
            "routing/aba",
            "tel",
            "dl#",
            "",
        ] {
            assert_eq!(index.lists_in(w), slow(w), "{w:?}");
        }
    }

    #[test]
    fn cue_words_match_on_word_boundaries_only() {
        assert!(contains_word("my ssn: ", "ssn"));
        assert!(contains_word("ssn", "ssn"));
        assert!(contains_word("the date of birth is", "date of birth"));
        assert!(!contains_word("lessnote", "ssn"));
        assert!(!contains_word("ssns", "ssn"));
        assert!(!contains_word("ss", "ssn"));
        assert!(!contains_word("anything", ""));
        // A needle ending in punctuation needs no boundary after it; later occurrences count.
        assert!(contains_word("no.5", "no."));
        assert!(contains_word("xacct acct", "acct"));
        assert!(contains_word("née — dob: 1990", "dob"));
    }

    fn classes(text: &str) -> Vec<(Class, String)> {
        let d = Detector::new().unwrap();
        d.scan(text)
            .into_iter()
            .map(|f| (f.class, text[f.start..f.end].to_owned()))
            .collect()
    }

    #[track_caller]
    fn finds(text: &str, class: Class, value: &str) {
        let got = classes(text);
        assert!(
            got.iter().any(|(c, v)| *c == class && v == value),
            "{class} `{value}` not found in {text:?}: {got:?}"
        );
    }

    #[track_caller]
    fn finds_nothing(text: &str) {
        let got = classes(text);
        assert!(got.is_empty(), "{text:?} gave {got:?}");
    }

    #[test]
    fn structured_values() {
        finds(
            "write to jane.doe+x@example.co.uk today",
            Class::Email,
            "jane.doe+x@example.co.uk",
        );
        finds(
            "card 4111 1111 1111 1111 exp 12/27",
            Class::PaymentCard,
            "4111 1111 1111 1111",
        );
        finds("SSN 536-22-1234.", Class::GovId, "536-22-1234");
        finds("call (212) 555-0187 now", Class::Phone, "(212) 555-0187");
        finds("ring +44 20 7946 0958", Class::Phone, "+44 20 7946 0958");
        finds(
            "phone: 212-555-0187x1551.",
            Class::Phone,
            "212-555-0187x1551",
        );
        finds(
            "call +1-212-555-0187 ext. 42 today",
            Class::Phone,
            "+1-212-555-0187 ext. 42",
        );
        finds("cc: 5038 0663 2587", Class::PaymentCard, "5038 0663 2587");
        finds(
            "card 4111 1111 1111 1111 x2 on file",
            Class::PaymentCard,
            "4111 1111 1111 1111",
        );
        finds(
            "ship to 86023 Cynthia Plains Apt. 857, West Tarabury, VA 09989 please",
            Class::Address,
            "86023 Cynthia Plains Apt. 857, West Tarabury, VA 09989",
        );
        finds(
            "IBAN GB82 WEST 1234 5698 7654 32 please",
            Class::BankAccount,
            "GB82 WEST 1234 5698 7654 32",
        );
        finds(
            "from 203.0.113.54 at noon",
            Class::IpAddress,
            "203.0.113.54",
        );
        finds(
            "peer 2001:db8::8a2e:370:7334 up",
            Class::IpAddress,
            "2001:db8::8a2e:370:7334",
        );
        finds(
            "She was born on 14 March 1987.",
            Class::DateOfBirth,
            "14 March 1987",
        );
        finds(
            "ship to 742 Evergreen Terrace, Springfield, IL 62704",
            Class::Address,
            "742 Evergreen Terrace, Springfield, IL 62704",
        );
        finds(
            "passport number X12345678 issued",
            Class::GovId,
            "X12345678",
        );
        finds("NI number AB 12 34 56 C", Class::GovId, "AB 12 34 56 C");
    }

    #[test]
    fn credentials() {
        finds(
            "key AKIAIOSFODNN7EXAMPLE in env",
            Class::Credential,
            "AKIAIOSFODNN7EXAMPLE",
        );
        finds("password=hunter2!", Class::Credential, "hunter2!");
        finds(
            "DATABASE_URL=postgres://app:s3cr3t@db.internal:5432/app",
            Class::Credential,
            "postgres://app:s3cr3t@db.internal:5432/app",
        );
        finds(
            "my password is Tr0ub4dor&3",
            Class::Credential,
            "Tr0ub4dor&3",
        );
        finds(
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXZhbHVl",
            Class::Credential,
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXZhbHVl",
        );
        finds_nothing("the password is incorrect");
        finds_nothing("password: ${DB_PASSWORD}");
    }

    #[test]
    fn vocabulary_classes() {
        finds(
            "she was diagnosed with type 2 diabetes",
            Class::Health,
            "type 2 diabetes",
        );
        finds("takes Metformin daily", Class::Health, "Metformin");
        finds(
            "enrolled with a fingerprint scan",
            Class::Biometric,
            "fingerprint scan",
        );
        finds("my 9-year-old loves it", Class::Minor, "9-year-old");
        finds_nothing("the child process exited with code 0");
        finds_nothing("a minor version bump");
        finds_nothing("a 34-year-old engineer");
    }

    #[test]
    fn names() {
        finds(
            "Please ask Maria Gonzalez about it",
            Class::Person,
            "Maria Gonzalez",
        );
        finds("Dr. Okonkwo will see you", Class::Person, "Okonkwo");
        finds(
            "My name is Priya Venkataraman.",
            Class::Person,
            "Priya Venkataraman",
        );
        finds("Thanks, Daniel", Class::Person, "Daniel");
        finds_nothing("The Quick Brown Fox jumps.");
        finds_nothing("Order Status: Shipped");
    }

    #[test]
    fn hard_negatives() {
        finds_nothing("order #100234 shipped; invoice INV-2024-0042 paid");
        finds_nothing("2024-06-01T10:22:33Z INFO worker=3 took 1234 ms");
        finds_nothing("sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
        finds_nothing("upgrade to version 1.2.3 then restart port 8080");
        finds_nothing("let x = items.len() * 1000;");
    }
}
