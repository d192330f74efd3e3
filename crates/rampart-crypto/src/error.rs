/// What can go wrong below the byte level. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the operating system's random number generator failed")]
    Rng,
    #[error("decryption failed: the ciphertext, its associated data or the key is wrong")]
    Decrypt,
    #[error("malformed sealed value")]
    MalformedSealed,
    #[error("invalid key material: {0}")]
    InvalidKey(&'static str),
    #[error("signature verification failed")]
    BadSignature,
    #[error("root key file `{path}`: {reason}")]
    RootKeyFile { path: String, reason: String },
}
