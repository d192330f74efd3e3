//! Agent allowlists: which secret paths (and which dynamic engines) an agent may touch. Deny by
//! default — an empty allowlist allows nothing.
//!
//! A pattern has the shape of a secret path whose segments may hold `*`, matching any run of
//! characters inside one segment (`db/*/password`, `api-*`), and whose last segment may be `**`,
//! matching one or more further segments (`db/orders/**`). Nothing else is special, so a
//! pattern reads the way it matches.

use std::fmt;
use std::str::FromStr;

/// Most patterns one allowlist holds. With [`MAX_PATTERN_LEN`] this bounds a profile's audit
/// record well under what one ledger entry holds (64 KiB).
pub const MAX_PATTERNS: usize = 64;
/// Longest pattern, in bytes.
pub const MAX_PATTERN_LEN: usize = 256;

/// One allowlist pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern(String);

/// Why a string is not a [`PathPattern`]. Carries no user input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPattern {
    #[error("a pattern cannot be empty")]
    Empty,
    #[error("a pattern is at most {MAX_PATTERN_LEN} bytes")]
    TooLong,
    #[error("a pattern has no empty segment (no leading, trailing or doubled `/`)")]
    EmptySegment,
    #[error("a pattern has no `.` or `..` segment")]
    DotSegment,
    #[error("`**` stands alone as a pattern's last segment")]
    MisplacedDoubleStar,
    #[error("a pattern holds only ASCII letters, digits, `.`, `_`, `-`, `*` and `/`")]
    BadCharacter,
    #[error("an allowlist holds at most {MAX_PATTERNS} patterns")]
    TooMany,
}

impl FromStr for PathPattern {
    type Err = InvalidPattern;

    fn from_str(s: &str) -> Result<Self, InvalidPattern> {
        if s.is_empty() {
            return Err(InvalidPattern::Empty);
        }
        if s.len() > MAX_PATTERN_LEN {
            return Err(InvalidPattern::TooLong);
        }
        let segments: Vec<&str> = s.split('/').collect();
        let last = segments.len() - 1;
        for (i, segment) in segments.iter().enumerate() {
            if segment.is_empty() {
                return Err(InvalidPattern::EmptySegment);
            }
            if *segment == "." || *segment == ".." {
                return Err(InvalidPattern::DotSegment);
            }
            if segment.contains("**") && (*segment != "**" || i != last) {
                return Err(InvalidPattern::MisplacedDoubleStar);
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'*'))
            {
                return Err(InvalidPattern::BadCharacter);
            }
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PathPattern {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `path` (a valid secret path or engine name) matches.
    #[must_use]
    pub fn matches(&self, path: &str) -> bool {
        let mut pattern = self.0.split('/');
        let mut path = path.split('/');
        loop {
            match (pattern.next(), path.next()) {
                (None, None) => return true,
                (Some("**"), Some(_)) => return true,
                (Some(p), Some(s)) if segment_matches(p.as_bytes(), s.as_bytes()) => {}
                _ => return false,
            }
        }
    }
}

/// Glob match of one segment, `*` matching any run of bytes. Iterative with one backtrack
/// point, so it is linear in practice and never exponential.
fn segment_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// An allowlist: deny by default, allow what any pattern matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist(Vec<PathPattern>);

impl Allowlist {
    /// Parses every pattern; the error names the first bad one's index.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, (usize, InvalidPattern)> {
        if patterns.len() > MAX_PATTERNS {
            return Err((MAX_PATTERNS, InvalidPattern::TooMany));
        }
        patterns
            .iter()
            .enumerate()
            .map(|(i, p)| p.as_ref().parse().map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    #[must_use]
    pub fn allows(&self, path: &str) -> bool {
        self.0.iter().any(|p| p.matches(path))
    }

    #[must_use]
    pub fn patterns(&self) -> &[PathPattern] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn allows(patterns: &[&str], path: &str) -> bool {
        Allowlist::parse(patterns).unwrap().allows(path)
    }

    #[test]
    fn matches_literals_single_segment_globs_and_trailing_double_star() {
        assert!(allows(&["db/orders/password"], "db/orders/password"));
        assert!(!allows(&["db/orders/password"], "db/orders/password2"));
        assert!(!allows(&["db/orders/password"], "db/orders"));
        assert!(allows(&["db/*/password"], "db/orders/password"));
        assert!(!allows(&["db/*/password"], "db/a/b/password"));
        assert!(allows(&["api-*"], "api-stripe"));
        assert!(allows(&["api-*"], "api-"));
        assert!(!allows(&["api-*"], "api"));
        assert!(allows(&["*-key"], "stripe-key"));
        assert!(allows(&["a*b*c"], "aXbYbZc"));
        assert!(!allows(&["a*b*c"], "aXbYbZ"));
        assert!(allows(&["db/**"], "db/x"));
        assert!(allows(&["db/**"], "db/x/y/z"));
        assert!(!allows(&["db/**"], "db"));
        assert!(!allows(&["db/**"], "dbx/y"));
        assert!(allows(&["**"], "anything/at/all"));
        // Deny by default.
        assert!(!allows(&[], "db/orders/password"));
        assert!(allows(&["x", "db/**"], "db/orders/password"));
    }

    #[test]
    fn refuses_malformed_patterns_with_the_index_of_the_first() {
        for (bad, why) in [
            ("", InvalidPattern::Empty),
            ("/db", InvalidPattern::EmptySegment),
            ("db//x", InvalidPattern::EmptySegment),
            ("db/../x", InvalidPattern::DotSegment),
            ("db/**/x", InvalidPattern::MisplacedDoubleStar),
            ("db/x**", InvalidPattern::MisplacedDoubleStar),
            ("db/x y", InvalidPattern::BadCharacter),
            ("db/?", InvalidPattern::BadCharacter),
        ] {
            assert_eq!(Allowlist::parse(&["ok", bad]), Err((1, why)), "{bad:?}");
        }
        let many = vec!["a"; MAX_PATTERNS + 1];
        assert_eq!(
            Allowlist::parse(&many),
            Err((MAX_PATTERNS, InvalidPattern::TooMany))
        );
    }

    /// A regular-expression-free reference: `*` as "any run inside a segment".
    fn reference(pattern: &str, text: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == text,
            Some((head, rest)) => {
                text.starts_with(head)
                    && (0..=text.len() - head.len())
                        .any(|i| reference(rest, &text[head.len() + i..]))
            }
        }
    }

    proptest! {
        #[test]
        fn segment_glob_agrees_with_a_reference(pattern in "[ab*]{0,8}", text in "[ab]{0,10}") {
            prop_assert_eq!(
                segment_matches(pattern.as_bytes(), text.as_bytes()),
                reference(&pattern, &text)
            );
        }

        #[test]
        fn a_literal_path_matches_itself_only(path in "[a-c]{1,3}(/[a-c]{1,3}){0,3}", other in "[a-c]{1,3}(/[a-c]{1,3}){0,3}") {
            let list = Allowlist::parse(&[path.as_str()]).unwrap();
            prop_assert!(list.allows(&path));
            prop_assert_eq!(list.allows(&other), path == other);
        }
    }
}
