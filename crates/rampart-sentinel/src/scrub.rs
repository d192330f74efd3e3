//! Live-secret scrubbing by fingerprint: the scrubber never holds a secret value, only a keyed
//! fingerprint of each form the value can take (raw, base64, base64url, URL-encoded, hex), and
//! removes every exact occurrence of any of them.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use rampart_crypto::{DerivedKey, HmacKey, ct_eq};
use zeroize::Zeroizing;

/// Forms shorter than this are not scrubbed: too many innocent strings would match.
pub const MIN_FORM_LEN: usize = 8;
/// What replaces a scrubbed secret.
pub const SCRUBBED: &str = "[SECRET_SCRUBBED]";

/// The key fingerprints are made with. The secrets service and the scrubber share it; without
/// it a fingerprint reveals nothing about a low-entropy value.
pub struct FingerprintKey {
    mac: HmacKey,
    /// The base of the rolling hash, odd and secret.
    base: Zeroizing<u64>,
}

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey(..)")
    }
}

/// One form of one secret: its length, its rolling hash and its keyed MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    pub len: usize,
    pub rolling: u64,
    pub mac: [u8; 32],
}

impl Fingerprint {
    /// Bytes per fingerprint in [`Fingerprint::encode`]'s output.
    pub const ENCODED_LEN: usize = 48;

    /// Fingerprints as stored: for each, length and rolling hash (little-endian u64) and MAC.
    pub fn encode(fps: &[Fingerprint]) -> Vec<u8> {
        let mut out = Vec::with_capacity(fps.len() * Self::ENCODED_LEN);
        for f in fps {
            out.extend_from_slice(&(f.len as u64).to_le_bytes());
            out.extend_from_slice(&f.rolling.to_le_bytes());
            out.extend_from_slice(&f.mac);
        }
        out
    }

    /// Reads [`Fingerprint::encode`]'s output; `None` if it is not a whole number of them.
    pub fn decode(bytes: &[u8]) -> Option<Vec<Fingerprint>> {
        if !bytes.len().is_multiple_of(Self::ENCODED_LEN) {
            return None;
        }
        bytes
            .chunks_exact(Self::ENCODED_LEN)
            .map(|c| {
                Some(Fingerprint {
                    len: usize::try_from(u64::from_le_bytes(c[..8].try_into().ok()?)).ok()?,
                    rolling: u64::from_le_bytes(c[8..16].try_into().ok()?),
                    mac: c[16..].try_into().ok()?,
                })
            })
            .collect()
    }
}

impl FingerprintKey {
    pub fn new(material: &[u8]) -> Result<Self, rampart_crypto::CryptoError> {
        let base_bytes =
            DerivedKey::from_secret_material(material, "rampart sentinel rolling base v1")?;
        let mut b = Zeroizing::new([0u8; 8]);
        b.copy_from_slice(&base_bytes.expose()[..8]);
        Ok(FingerprintKey {
            mac: DerivedKey::from_secret_material(material, "rampart sentinel fingerprint v1")?
                .into_hmac()?,
            base: Zeroizing::new(u64::from_le_bytes(*b) | 1),
        })
    }

    fn rolling(&self, bytes: &[u8]) -> u64 {
        bytes.iter().fold(0u64, |h, b| {
            h.wrapping_mul(*self.base).wrapping_add(u64::from(*b) + 1)
        })
    }

    fn fingerprint(&self, form: &[u8]) -> Fingerprint {
        Fingerprint {
            len: form.len(),
            rolling: self.rolling(form),
            mac: self.mac.sign(&[form]),
        }
    }

    /// The fingerprints of every form of `value` long enough to scrub.
    pub fn fingerprints(&self, value: &[u8]) -> Vec<Fingerprint> {
        let mut out: Vec<Fingerprint> = forms(value)
            .iter()
            .filter(|f| f.len() >= MIN_FORM_LEN)
            .map(|f| self.fingerprint(f))
            .collect();
        out.sort_by_key(|f| (f.len, f.rolling));
        out.dedup();
        out
    }
}

/// The encodings a secret is commonly leaked in. Base64 also in its three alignments inside a
/// longer base64 string: the characters that depend only on the secret's bytes.
fn forms(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64np = base64::engine::general_purpose::STANDARD_NO_PAD;
    let url = base64::engine::general_purpose::URL_SAFE;
    let urlnp = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut out: Vec<Zeroizing<Vec<u8>>> = vec![
        Zeroizing::new(value.to_vec()),
        Zeroizing::new(b64.encode(value).into_bytes()),
        Zeroizing::new(b64np.encode(value).into_bytes()),
        Zeroizing::new(url.encode(value).into_bytes()),
        Zeroizing::new(urlnp.encode(value).into_bytes()),
        Zeroizing::new(percent_encode(value)),
        Zeroizing::new(crate::hex(value, crate::LOWER_HEX).into_bytes()),
        Zeroizing::new(crate::hex(value, crate::UPPER_HEX).into_bytes()),
    ];
    for offset in 1..3usize {
        let mut padded = Zeroizing::new(vec![0u8; offset]);
        padded.extend_from_slice(value);
        padded.extend_from_slice(&[0, 0]);
        let enc = Zeroizing::new(b64np.encode(&*padded).into_bytes());
        // Character i covers bits [6i, 6i + 6); the secret occupies bits [8·offset, 8·(offset+len)).
        let first = (8 * offset).div_ceil(6);
        let last = (8 * (offset + value.len())) / 6;
        if last > first && last <= enc.len() {
            out.push(Zeroizing::new(enc[first..last].to_vec()));
            let urlish: Vec<u8> = enc[first..last]
                .iter()
                .map(|c| match c {
                    b'+' => b'-',
                    b'/' => b'_',
                    c => *c,
                })
                .collect();
            out.push(Zeroizing::new(urlish));
        }
    }
    // The aligned form without its last, padding-dependent characters.
    let aligned = b64np.encode(value).into_bytes();
    let stable = (value.len() * 8) / 6;
    if stable < aligned.len() {
        out.push(Zeroizing::new(aligned[..stable].to_vec()));
    }
    out
}

fn percent_encode(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 3);
    for &b in value {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b);
        } else {
            out.push(b'%');
            out.extend_from_slice(crate::hex(&[b], crate::UPPER_HEX).as_bytes());
        }
    }
    out
}

/// Finds fingerprinted forms in text.
pub struct SecretScrubber {
    key: FingerprintKey,
    /// Per length: rolling hash → fingerprints with that hash.
    by_len: HashMap<usize, HashMap<u64, Vec<[u8; 32]>>>,
    /// base^(len-1) per length, to slide the window.
    powers: HashMap<usize, u64>,
}

impl std::fmt::Debug for SecretScrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretScrubber")
            .field("lengths", &self.by_len.len())
            .finish()
    }
}

impl SecretScrubber {
    pub fn new(key: FingerprintKey, fingerprints: impl IntoIterator<Item = Fingerprint>) -> Self {
        let mut by_len: HashMap<usize, HashMap<u64, Vec<[u8; 32]>>> = HashMap::new();
        for f in fingerprints {
            by_len
                .entry(f.len)
                .or_default()
                .entry(f.rolling)
                .or_default()
                .push(f.mac);
        }
        let powers = by_len
            .keys()
            .map(|&len| {
                let p = (1..len).fold(1u64, |p, _| p.wrapping_mul(*key.base));
                (len, p)
            })
            .collect();
        SecretScrubber {
            key,
            by_len,
            powers,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_len.is_empty()
    }

    /// The longest form, which bounds how far back a streaming scrubber must look.
    pub fn longest(&self) -> usize {
        self.by_len.keys().copied().max().unwrap_or(0)
    }

    /// Byte ranges of every occurrence, merged where they overlap.
    pub fn find(&self, text: &str) -> Vec<(usize, usize)> {
        let bytes = text.as_bytes();
        let mut hits: Vec<(usize, usize)> = Vec::new();
        for (&len, table) in &self.by_len {
            if bytes.len() < len {
                continue;
            }
            let top = self.powers.get(&len).copied().unwrap_or(1);
            let mut h = self.key.rolling(&bytes[..len]);
            let mut i = 0;
            loop {
                if let Some(macs) = table.get(&h) {
                    let mac = self.key.mac.sign(&[&bytes[i..i + len]]);
                    if macs.iter().any(|m| ct_eq(m, &mac)) {
                        hits.push((i, i + len));
                    }
                }
                if i + len >= bytes.len() {
                    break;
                }
                h = h
                    .wrapping_sub((u64::from(bytes[i]) + 1).wrapping_mul(top))
                    .wrapping_mul(*self.key.base)
                    .wrapping_add(u64::from(bytes[i + len]) + 1);
                i += 1;
            }
        }
        hits.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(hits.len());
        for (s, e) in hits {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        // Widen to character boundaries (a form always starts and ends on one when the text
        // holds it, but a MAC match on bytes must never split a character).
        merged
            .into_iter()
            .map(|(mut s, mut e)| {
                while !text.is_char_boundary(s) {
                    s -= 1;
                }
                while !text.is_char_boundary(e) {
                    e += 1;
                }
                (s, e)
            })
            .collect()
    }

    /// `text` with every occurrence replaced by [`SCRUBBED`], and how many there were.
    pub fn scrub(&self, text: &str) -> (String, usize) {
        let hits = self.find(text);
        if hits.is_empty() {
            return (text.to_owned(), 0);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (s, e) in &hits {
            out.push_str(&text[at..*s]);
            out.push_str(SCRUBBED);
            at = *e;
        }
        out.push_str(&text[at..]);
        (out, hits.len())
    }
}

/// A set of distinct fingerprints, for callers that collect them from many secrets.
pub fn distinct(fps: impl IntoIterator<Item = Fingerprint>) -> Vec<Fingerprint> {
    let set: HashSet<Fingerprint> = fps.into_iter().collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn scrubber(secrets: &[&str]) -> SecretScrubber {
        let key = FingerprintKey::new(&[9; 32]).unwrap();
        let fps: Vec<Fingerprint> = secrets
            .iter()
            .flat_map(|s| key.fingerprints(s.as_bytes()))
            .collect();
        SecretScrubber::new(FingerprintKey::new(&[9; 32]).unwrap(), fps)
    }

    #[test]
    fn fingerprints_round_trip_through_their_stored_form() {
        let key = FingerprintKey::new(&[9; 32]).unwrap();
        let fps = key.fingerprints(b"sk_live_4eC39HqLyjWDarjtT1zdp7dc");
        let bytes = Fingerprint::encode(&fps);
        assert_eq!(bytes.len(), fps.len() * Fingerprint::ENCODED_LEN);
        assert_eq!(Fingerprint::decode(&bytes).unwrap(), fps);
        assert!(Fingerprint::decode(&bytes[1..]).is_none());
    }

    #[test]
    fn every_encoding_is_removed() {
        let secret = "sk_live_4eC39HqLyjWDarjtT1zdp7dc/+?";
        let s = scrubber(&[secret]);
        let b64 = base64::engine::general_purpose::STANDARD;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let cases = [
            format!("key={secret} end"),
            format!("b64 {} end", b64.encode(secret)),
            format!("url {} end", url.encode(secret)),
            "q=sk_live_4eC39HqLyjWDarjtT1zdp7dc%2F%2B%3F&x=1".to_owned(),
            format!(
                "hex {} end",
                crate::hex(secret.as_bytes(), crate::LOWER_HEX)
            ),
            format!(
                "HEX {} end",
                crate::hex(secret.as_bytes(), crate::UPPER_HEX)
            ),
            // Embedded in a larger base64 blob at each alignment.
            format!("blob {}", b64.encode(format!("x{secret}y"))),
            format!("blob {}", b64.encode(format!("xy{secret}z"))),
            format!("blob {}", b64.encode(format!("{{\"token\":\"{secret}\"}}"))),
        ];
        for text in cases {
            let (out, n) = s.scrub(&text);
            assert!(n >= 1, "nothing scrubbed in {text}");
            assert!(!out.contains(secret), "{out}");
            assert!(!out.contains(&b64.encode(secret)[..20]), "{out}");
        }
        assert_eq!(s.scrub("nothing secret here at all").1, 0);
    }

    #[test]
    fn fingerprints_do_not_hold_the_value() {
        let key = FingerprintKey::new(&[9; 32]).unwrap();
        let fps = key.fingerprints(b"hunter2hunter2");
        let debug = format!("{fps:?}");
        assert!(!debug.contains("hunter2"));
        assert!(
            key.fingerprints(b"short").is_empty()
                || key
                    .fingerprints(b"short")
                    .iter()
                    .all(|f| f.len >= MIN_FORM_LEN)
        );
    }
}
