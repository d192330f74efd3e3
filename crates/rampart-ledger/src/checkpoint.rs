//! C2SP tlog-checkpoint: the note text `<origin>\n<size>\n<base64 root>\n` of a log's tree head.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::hash::Hash;
use crate::note::{NoteError, NoteSigner, NoteVerifier};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    #[error("checkpoint signature: {0}")]
    Note(#[from] NoteError),
    #[error("the checkpoint is for origin `{found}`, not `{expected}`")]
    WrongOrigin { expected: String, found: String },
}

/// A tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note text.
    #[must_use]
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root.0)
        )
    }

    /// Parses a note text; extension lines must be non-empty and are ignored.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::Malformed("no final newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        let size = lines.next().ok_or(CheckpointError::Malformed("no size"))?;
        let root = lines
            .next()
            .ok_or(CheckpointError::Malformed("no root hash"))?;
        if origin.is_empty() {
            return Err(CheckpointError::Malformed("empty origin"));
        }
        if size.is_empty()
            || (size.len() > 1 && size.starts_with('0'))
            || !size.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(CheckpointError::Malformed("size is not a decimal number"));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| CheckpointError::Malformed("size out of range"))?;
        let root = STANDARD
            .decode(root)
            .ok()
            .and_then(|b| Hash::from_slice(&b))
            .ok_or(CheckpointError::Malformed(
                "root hash is not base64 of 32 bytes",
            ))?;
        if lines.any(str::is_empty) {
            return Err(CheckpointError::Malformed("empty extension line"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Signs the checkpoint; the signer's name must be the origin.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, CheckpointError> {
        if signer.name() != self.origin {
            return Err(CheckpointError::WrongOrigin {
                expected: signer.name().to_owned(),
                found: self.origin.clone(),
            });
        }
        Ok(signer.sign(&self.to_text())?)
    }

    /// Verifies a signed checkpoint note and parses it; its origin must be the verifier's name.
    pub fn open(verifier: &NoteVerifier, note: &[u8]) -> Result<Self, CheckpointError> {
        let text = verifier.verify(note)?;
        let cp = Self::parse(text)?;
        if cp.origin != verifier.name() {
            return Err(CheckpointError::WrongOrigin {
                expected: verifier.name().to_owned(),
                found: cp.origin,
            });
        }
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::EMPTY_ROOT;
    use rampart_crypto::{Secret, SigningKey};

    #[test]
    fn the_spec_example_parses() {
        let text =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let cp = Checkpoint::parse(text).unwrap();
        assert_eq!(cp.origin, "example.com/behind-the-sofa");
        assert_eq!(cp.size, 20_852_163);
        assert_eq!(cp.to_text(), text);
    }

    #[test]
    fn strict_parsing() {
        let root = STANDARD.encode([0u8; 32]);
        for bad in [
            String::new(),
            format!("o\n1\n{root}"),
            format!("\n1\n{root}\n"),
            format!("o\n01\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            "o\n1\nAAAA\n".to_owned(),
            format!("o\n1\n{root}\n\n"),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "{bad:?}");
        }
        assert!(Checkpoint::parse(&format!("o\n0\n{root}\next\n")).is_ok());
    }

    #[test]
    fn sign_and_open() {
        let signer =
            NoteSigner::new("rampart/test", SigningKey::from_seed(&Secret::new([3; 32]))).unwrap();
        let cp = Checkpoint {
            origin: "rampart/test".into(),
            size: 0,
            root: EMPTY_ROOT,
        };
        let note = cp.sign(&signer).unwrap();
        assert_eq!(
            Checkpoint::open(&signer.verifier(), note.as_bytes()).unwrap(),
            cp
        );
        let other = Checkpoint {
            origin: "elsewhere".into(),
            ..cp
        };
        assert!(other.sign(&signer).is_err());
    }
}
