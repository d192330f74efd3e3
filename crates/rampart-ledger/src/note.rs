//! C2SP signed notes with Ed25519 signatures, and verifier keys in the `<name>+<id>+<key>` form.
//!
//! A note is a text ending in a newline, a blank line, and signature lines
//! `— <name> base64(key id ‖ signature)`. The key id is the first four bytes (big-endian) of
//! `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rampart_crypto::{SigningKey, VerifyingKey, sha256_concat};

/// The signature type byte of Ed25519.
pub const ED25519: u8 = 0x01;
/// Notes larger than this are refused before parsing.
pub const MAX_NOTE_LEN: usize = 64 * 1024;
const MAX_SIGNATURES: usize = 100;
const SIG_PREFIX: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("invalid key name: must be non-empty, without spaces or `+`")]
    BadName,
    #[error("malformed verifier key")]
    BadVerifierKey,
    #[error("note text must be non-empty, end in a newline, and contain no control characters")]
    BadText,
    #[error("malformed note")]
    Malformed,
    #[error("the note is not signed by the expected key")]
    NoKnownSignature,
    #[error("the note's signature by the expected key is invalid")]
    BadSignature,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c == '+' || c.is_whitespace())
}

fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let h = sha256_concat(&[name.as_bytes(), b"\n", &[ED25519], public]);
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

fn valid_text(text: &str) -> bool {
    !text.is_empty() && text.ends_with('\n') && !text.chars().any(|c| c < ' ' && c != '\n')
}

/// Signs notes as `name`.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    id: u32,
}

impl NoteSigner {
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadName);
        }
        let id = key_id(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key,
            id,
        })
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    #[must_use]
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// The signed note of `text`.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if !valid_text(text) {
            return Err(NoteError::BadText);
        }
        let sig = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(4 + sig.len());
        blob.extend_from_slice(&self.id.to_be_bytes());
        blob.extend_from_slice(&sig);
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        ))
    }
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({}+{:08x})", self.name, self.id)
    }
}

/// Verifies notes signed by one Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses `<name>+<8 hex digits>+<base64(0x01 ‖ 32-byte key)>`, checking the id matches.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::BadVerifierKey);
        };
        if !valid_name(name) || id_hex.len() != 8 {
            return Err(NoteError::BadVerifierKey);
        }
        let id = u32::from_str_radix(id_hex, 16).map_err(|_| NoteError::BadVerifierKey)?;
        let raw = STANDARD
            .decode(key_b64)
            .map_err(|_| NoteError::BadVerifierKey)?;
        if raw.len() != 33 || raw[0] != ED25519 {
            return Err(NoteError::BadVerifierKey);
        }
        let key = VerifyingKey::from_bytes(&raw[1..]).map_err(|_| NoteError::BadVerifierKey)?;
        if key_id(name, key.as_bytes()) != id {
            return Err(NoteError::BadVerifierKey);
        }
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// The `<name>+<id>+<key>` form.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut raw = vec![ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, STANDARD.encode(raw))
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The text of `note` if this key signed it. Signatures by other keys are ignored; a signature
    /// that claims this key but does not verify rejects the note.
    pub fn verify<'n>(&self, note: &'n [u8]) -> Result<&'n str, NoteError> {
        if note.len() > MAX_NOTE_LEN {
            return Err(NoteError::Malformed);
        }
        let note = std::str::from_utf8(note).map_err(|_| NoteError::Malformed)?;
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::Malformed);
        }
        let split = note.rfind("\n\n").ok_or(NoteError::Malformed)?;
        let text = &note[..=split];
        let sigs = &note[split + 2..];
        if text.is_empty() || !sigs.ends_with('\n') {
            return Err(NoteError::Malformed);
        }
        let mut verified = false;
        for (n, line) in sigs[..sigs.len() - 1].split('\n').enumerate() {
            if n >= MAX_SIGNATURES {
                return Err(NoteError::Malformed);
            }
            let line = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed)?;
            let (name, b64) = line.split_once(' ').ok_or(NoteError::Malformed)?;
            if !valid_name(name) {
                return Err(NoteError::Malformed);
            }
            let blob = STANDARD.decode(b64).map_err(|_| NoteError::Malformed)?;
            if blob.len() < 5 {
                return Err(NoteError::Malformed);
            }
            let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
            if name != self.name || id != self.id {
                continue;
            }
            self.key
                .verify(text.as_bytes(), &blob[4..])
                .map_err(|_| NoteError::BadSignature)?;
            verified = true;
        }
        if verified {
            Ok(text)
        } else {
            Err(NoteError::NoKnownSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_crypto::Secret;

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_seed(&Secret::new([seed; 32]))).unwrap()
    }

    #[test]
    fn sign_then_verify_and_round_trip_the_verifier_key() {
        let s = signer("example.com/log", 1);
        let note = s.sign("hello\nworld\n").unwrap();
        assert!(note.starts_with("hello\nworld\n\n\u{2014} example.com/log "));
        let v = NoteVerifier::parse(&s.verifier().encode()).unwrap();
        assert_eq!(v.verify(note.as_bytes()).unwrap(), "hello\nworld\n");
    }

    #[test]
    fn foreign_and_forged_signatures() {
        let s = signer("log", 1);
        let other = signer("log", 2);
        let note = s.sign("text\n").unwrap();
        // Another key's verifier sees no known signature.
        assert_eq!(
            other.verifier().verify(note.as_bytes()),
            Err(NoteError::NoKnownSignature)
        );
        // A changed text fails the signature.
        let forged = note.replacen("text", "texT", 1);
        assert_eq!(
            s.verifier().verify(forged.as_bytes()),
            Err(NoteError::BadSignature)
        );
        // An extra unknown signature line is ignored.
        let cosigned = format!(
            "{note}{}",
            &other.sign("text\n").unwrap()["text\n\n".len()..]
        );
        assert_eq!(s.verifier().verify(cosigned.as_bytes()).unwrap(), "text\n");
    }

    #[test]
    fn malformed_inputs() {
        let s = signer("log", 1);
        let v = s.verifier();
        for bad in [
            "",
            "text\n",
            "text\n\n",
            "text\n\nno dash\n",
            "te\u{7}xt\n\n— log AAAA\n",
        ] {
            assert!(v.verify(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(s.sign("no newline").is_err());
        assert!(
            NoteSigner::new("has space", SigningKey::from_seed(&Secret::new([1; 32]))).is_err()
        );
        assert!(NoteSigner::new("a+b", SigningKey::from_seed(&Secret::new([1; 32]))).is_err());
        let vkey = v.encode();
        assert!(NoteVerifier::parse(&vkey.replacen('+', "-", 1)).is_err());
        // A verifier key whose id does not match its key is refused.
        let (name, rest) = vkey.split_once('+').unwrap();
        let (_, key) = rest.split_once('+').unwrap();
        assert!(NoteVerifier::parse(&format!("{name}+00000000+{key}")).is_err());
    }
}
