//! SCRAM-SHA-256 password verifiers (RFC 7677, RFC 5802) in the form Postgres stores.
//!
//! Setting a role's password as a pre-computed verifier means the password itself never reaches
//! the database server, so it cannot end up in its statement log.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::{CryptoError, HmacKey, sha256};

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` for `password`.
///
/// The password must already be in SASLprep normal form; callers pass ASCII.
pub fn scram_sha256_verifier(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Result<String, CryptoError> {
    if iterations == 0 {
        return Err(CryptoError::InvalidKey(
            "SCRAM needs at least one iteration",
        ));
    }
    // Hi() is PBKDF2-HMAC-SHA-256 with one output block, keyed by the password throughout.
    let prf = HmacKey::new(password.to_vec())?;
    let mut u = prf.sign(&[salt, &1u32.to_be_bytes()]);
    let mut salted = u;
    for _ in 1..iterations {
        u = prf.sign(&[&u]);
        for (s, b) in salted.iter_mut().zip(u.iter()) {
            *s ^= b;
        }
    }
    let salted_key = HmacKey::new(salted.to_vec())?;
    zeroize::Zeroize::zeroize(&mut salted);
    let client_key = salted_key.sign(&[b"Client Key"]);
    let stored_key = sha256(&client_key);
    let server_key = salted_key.sign(&[b"Server Key"]);
    Ok(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    ))
}

#[cfg(test)]
mod tests {
    /// Expected value computed independently with Python's `hashlib.pbkdf2_hmac` and `hmac`.
    #[test]
    fn matches_an_independent_implementation() {
        let pw = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let salt: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            super::scram_sha256_verifier(pw, &salt, 4096).unwrap(),
            "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$TX7+UsrUBzwTduL9bIMwpuJPwYfRDYpqrxHg2uTRAgE=:aYgdktib+LCYPSZ1/ognnmdY1b6RltHVRA6R52w9gcg="
        );
    }
}
