use crate::CryptoError;

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::fill(buf).map_err(|_| CryptoError::Rng)
}

/// `N` random bytes.
pub fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    fill_random(&mut out)?;
    Ok(out)
}

/// `len` characters drawn uniformly from `alphabet` (rejection sampling, so no modulo bias).
pub fn random_string(alphabet: &[u8], len: usize) -> Result<String, CryptoError> {
    debug_assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    let n = alphabet.len();
    // The largest multiple of n that fits in a byte: bytes at or above it are rejected.
    let limit = 256 - (256 % n);
    let mut out = String::with_capacity(len);
    let mut pool = [0u8; 64];
    while out.len() < len {
        fill_random(&mut pool)?;
        for &b in &pool {
            if usize::from(b) < limit {
                out.push(char::from(alphabet[usize::from(b) % n]));
                if out.len() == len {
                    break;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_strings_use_only_the_alphabet() {
        let s = random_string(b"abc", 500).unwrap();
        assert_eq!(s.len(), 500);
        assert!(s.bytes().all(|b| b"abc".contains(&b)));
        // All three letters show up in 500 draws unless the generator is broken.
        for c in ['a', 'b', 'c'] {
            assert!(s.contains(c));
        }
    }
}
