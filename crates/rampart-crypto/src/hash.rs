use sha2::{Digest, Sha256};

/// SHA-256 of `data` (public data only: thumbprints, fingerprints, Merkle trees).
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256 of the concatenation of `parts`, without building it.
#[must_use]
pub fn sha256_concat(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn concat_equals_one_shot() {
        assert_eq!(
            super::sha256_concat(&[b"a", b"", b"bc"]),
            super::sha256(b"abc")
        );
    }

    #[test]
    fn fips_180_abc() {
        let h = super::sha256(b"abc");
        assert_eq!(
            h.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
