use std::fmt;
use std::str::FromStr;

/// Longest secret path, in bytes.
pub const MAX_PATH_LEN: usize = 512;

/// The name of a secret: segments of ASCII letters, digits, `.`, `_` and `-`, joined by `/`
/// (`db/orders/password`). No empty segment, no `.` or `..` segment, no leading or trailing `/`,
/// at most [`MAX_PATH_LEN`] bytes. Paths are case-sensitive. Because no path holds a NUL byte,
/// NUL-separated associated data built from one is unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretPath(String);

/// Why a string is not a [`SecretPath`]. Carries no user input: callers quote it themselves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPath {
    #[error("a secret path cannot be empty")]
    Empty,
    #[error("a secret path is at most {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error("a secret path has no empty segment (no leading, trailing or doubled `/`)")]
    EmptySegment,
    #[error("a secret path has no `.` or `..` segment")]
    DotSegment,
    #[error("a secret path holds only ASCII letters, digits, `.`, `_`, `-` and `/`")]
    BadCharacter,
}

impl SecretPath {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SecretPath {
    type Err = InvalidPath;

    fn from_str(s: &str) -> Result<Self, InvalidPath> {
        if s.is_empty() {
            return Err(InvalidPath::Empty);
        }
        if s.len() > MAX_PATH_LEN {
            return Err(InvalidPath::TooLong);
        }
        for segment in s.split('/') {
            if segment.is_empty() {
                return Err(InvalidPath::EmptySegment);
            }
            if segment == "." || segment == ".." {
                return Err(InvalidPath::DotSegment);
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(InvalidPath::BadCharacter);
            }
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_and_refuses_everything_else_with_a_reason() {
        for ok in [
            "a",
            "db/orders/password",
            "A.b_c-d/1",
            &"x".repeat(MAX_PATH_LEN),
        ] {
            assert_eq!(ok.parse::<SecretPath>().unwrap().as_str(), ok);
        }
        let cases = [
            ("", InvalidPath::Empty),
            ("/a", InvalidPath::EmptySegment),
            ("a/", InvalidPath::EmptySegment),
            ("a//b", InvalidPath::EmptySegment),
            ("a/../b", InvalidPath::DotSegment),
            ("./a", InvalidPath::DotSegment),
            ("a b", InvalidPath::BadCharacter),
            ("a\0b", InvalidPath::BadCharacter),
            ("ä", InvalidPath::BadCharacter),
            ("a?b", InvalidPath::BadCharacter),
        ];
        for (bad, why) in cases {
            assert_eq!(bad.parse::<SecretPath>(), Err(why), "{bad:?}");
        }
        assert_eq!(
            "x".repeat(MAX_PATH_LEN + 1).parse::<SecretPath>(),
            Err(InvalidPath::TooLong)
        );
    }
}
