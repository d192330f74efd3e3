//! AWS KMS: generating, wrapping and unwrapping 256-bit data keys under one KMS key, bound to an
//! encryption context (which KMS requires again, unchanged, to decrypt).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rampart_crypto::Secret;
use serde_json::{Map, Value, json};

use crate::{AwsError, Credentials, JsonService};

/// A KMS key Rampart wraps data keys under.
#[derive(Debug)]
pub struct Kms {
    svc: JsonService,
    key_id: String,
}

fn context(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect::<Map<_, _>>(),
    )
}

impl Kms {
    /// `key_id`: a key id, key ARN, alias name (`alias/…`) or alias ARN.
    pub fn new(
        region: &str,
        endpoint: Option<&str>,
        creds: Credentials,
        key_id: &str,
    ) -> Result<Self, AwsError> {
        if key_id.trim().is_empty() || key_id.len() > 2048 {
            return Err(AwsError::Config(
                "a KMS key id is 1 to 2048 characters".into(),
            ));
        }
        Ok(Self {
            svc: JsonService::new("kms", "TrentService", region, endpoint, creds)?,
            key_id: key_id.to_owned(),
        })
    }

    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// A fresh 256-bit data key: its plaintext and its ciphertext under the KMS key.
    pub fn generate_data_key(
        &self,
        ctx: &[(&str, &str)],
    ) -> Result<(Secret<[u8; 32]>, Vec<u8>), AwsError> {
        const OP: &str = "GenerateDataKey";
        let mut out = self.svc.call(
            OP,
            &json!({ "KeyId": self.key_id, "KeySpec": "AES_256", "EncryptionContext": context(ctx) }),
        )?;
        let plaintext = take_blob(&self.svc, OP, &mut out, "Plaintext")?;
        let key: [u8; 32] = plaintext
            .expose()
            .as_slice()
            .try_into()
            .map_err(|_| self.svc.unexpected(OP, "the data key is not 32 bytes"))?;
        let blob = take_blob(&self.svc, OP, &mut out, "CiphertextBlob")?;
        Ok((Secret::new(key), blob.expose().clone()))
    }

    /// Wraps `plaintext` (at most 4 KiB) under the KMS key.
    pub fn encrypt(&self, plaintext: &[u8], ctx: &[(&str, &str)]) -> Result<Vec<u8>, AwsError> {
        const OP: &str = "Encrypt";
        let b64 = Secret::new(STANDARD.encode(plaintext));
        let mut out = self.svc.call(
            OP,
            &json!({ "KeyId": self.key_id, "Plaintext": b64.expose(), "EncryptionContext": context(ctx) }),
        )?;
        Ok(take_blob(&self.svc, OP, &mut out, "CiphertextBlob")?
            .expose()
            .clone())
    }

    /// Unwraps a ciphertext made under this KMS key with the same context. KMS refuses a
    /// ciphertext of another key (the key id is sent) or a different context.
    pub fn decrypt(&self, blob: &[u8], ctx: &[(&str, &str)]) -> Result<Secret<Vec<u8>>, AwsError> {
        const OP: &str = "Decrypt";
        let mut out = self.svc.call(
            OP,
            &json!({
                "KeyId": self.key_id,
                "CiphertextBlob": STANDARD.encode(blob),
                "EncryptionContext": context(ctx),
            }),
        )?;
        take_blob(&self.svc, OP, &mut out, "Plaintext")
    }

    /// Creates a symmetric KMS key and returns its id (set-up and tests).
    pub fn create_key(
        region: &str,
        endpoint: Option<&str>,
        creds: Credentials,
        description: &str,
    ) -> Result<String, AwsError> {
        let svc = JsonService::new("kms", "TrentService", region, endpoint, creds)?;
        let out = svc.call("CreateKey", &json!({ "Description": description }))?;
        out["KeyMetadata"]["KeyId"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| svc.unexpected("CreateKey", "no KeyMetadata.KeyId"))
    }
}

/// Takes the base64 field `name` out of `out` and decodes it into a zeroized buffer.
fn take_blob(
    svc: &JsonService,
    op: &str,
    out: &mut Value,
    name: &str,
) -> Result<Secret<Vec<u8>>, AwsError> {
    let Value::String(b64) = out[name].take() else {
        return Err(svc.unexpected(op, format!("no {name}")));
    };
    let b64 = Secret::new(b64);
    STANDARD
        .decode(b64.expose())
        .map(Secret::new)
        .map_err(|_| svc.unexpected(op, format!("{name} is not base64")))
}
