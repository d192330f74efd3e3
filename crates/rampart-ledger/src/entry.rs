//! The audit record the ledger stores, and its sealing.
//!
//! A record has one byte encoding, so its leaf hash is reproducible:
//!
//! ```text
//! record v1 = 0x01 ‖ timestamp (i64 BE, Unix ms) ‖ tenant id (16 bytes)
//!             ‖ lp(request id) ‖ lp(actor) ‖ lp(action) ‖ lp(resource)
//!             ‖ lp(decision) ‖ lp(policy version) ‖ lp(payload)
//! lp(x)     = u32 BE length ‖ x
//! ```
//!
//! In the log, a record is *sealed* (AES-256-GCM under its tenant's ledger key): the entry bytes
//! reveal nothing but their size, the leaf hash covers the ciphertext, and destroying the key
//! erases the record while every proof still verifies.

use rampart_crypto::{AeadKey, CryptoError, Secret};
use rampart_types::{RequestId, TenantId, Timestamp};

use crate::tile::MAX_ENTRY_LEN;

const RECORD_V1: u8 = 1;
const SEAL_AAD: &[u8] = b"rampart ledger record v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    #[error("unsupported record version {0}")]
    Version(u8),
    #[error("the sealed record would be {0} bytes, over the {max} a log entry can hold", max = MAX_ENTRY_LEN)]
    TooLong(usize),
    #[error("the record does not open with this key (wrong key, or tampered)")]
    Sealed,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub timestamp: Timestamp,
    pub tenant_id: TenantId,
    pub request_id: Option<RequestId>,
    pub actor: String,
    pub action: String,
    pub resource: String,
    /// `success`, `denied`, …
    pub decision: String,
    /// The policy version the decision was made under (empty when none applied).
    pub policy_version: String,
    /// Canonical JSON of the details.
    pub payload: Vec<u8>,
}

fn put_lp(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Malformed("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn lp(&mut self) -> Result<&'a [u8], RecordError> {
        let len = self.take(4)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, RecordError> {
        String::from_utf8(self.lp()?.to_vec()).map_err(|_| RecordError::Malformed("not UTF-8"))
    }
}

impl Record {
    /// The canonical bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let request_id = self.request_id.map(|r| r.to_string()).unwrap_or_default();
        let mut out = Vec::with_capacity(64 + self.payload.len());
        out.push(RECORD_V1);
        out.extend_from_slice(&self.timestamp.unix_millis().to_be_bytes());
        out.extend_from_slice(self.tenant_id.as_uuid().as_bytes());
        for field in [
            request_id.as_bytes(),
            self.actor.as_bytes(),
            self.action.as_bytes(),
            self.resource.as_bytes(),
            self.decision.as_bytes(),
            self.policy_version.as_bytes(),
            &self.payload,
        ] {
            put_lp(&mut out, field);
        }
        out
    }

    /// Decodes canonical bytes; they must be consumed exactly.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader(bytes);
        let version = r.take(1)?[0];
        if version != RECORD_V1 {
            return Err(RecordError::Version(version));
        }
        let ts = r.take(8)?;
        let timestamp = Timestamp::from_unix_millis(i64::from_be_bytes(
            ts.try_into()
                .map_err(|_| RecordError::Malformed("timestamp"))?,
        ));
        let tenant: [u8; 16] = r
            .take(16)?
            .try_into()
            .map_err(|_| RecordError::Malformed("tenant"))?;
        let request_id = r.string()?;
        let request_id = if request_id.is_empty() {
            None
        } else {
            Some(
                request_id
                    .parse()
                    .map_err(|_| RecordError::Malformed("request id"))?,
            )
        };
        let record = Self {
            timestamp,
            tenant_id: TenantId::from_uuid(uuid::Uuid::from_bytes(tenant)),
            request_id,
            actor: r.string()?,
            action: r.string()?,
            resource: r.string()?,
            decision: r.string()?,
            policy_version: r.string()?,
            payload: r.lp()?.to_vec(),
        };
        if !r.0.is_empty() {
            return Err(RecordError::Malformed("trailing bytes"));
        }
        Ok(record)
    }

    /// The log entry: the canonical bytes sealed under `key`.
    pub fn seal(&self, key: &AeadKey) -> Result<Vec<u8>, RecordError> {
        let sealed = key
            .seal(SEAL_AAD, &self.encode())
            .map_err(|_| RecordError::Sealed)?;
        if sealed.len() > MAX_ENTRY_LEN {
            return Err(RecordError::TooLong(sealed.len()));
        }
        Ok(sealed)
    }

    /// Opens a log entry sealed under `key`.
    pub fn open(key: &AeadKey, entry: &[u8]) -> Result<Self, RecordError> {
        let plain: Secret<Vec<u8>> = key
            .open(SEAL_AAD, entry)
            .map_err(|_: CryptoError| RecordError::Sealed)?;
        Self::decode(plain.expose())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record() -> Record {
        Record {
            timestamp: Timestamp::from_unix_millis(1_795_305_600_123),
            tenant_id: TenantId::from_uuid(uuid::Uuid::from_bytes([7; 16])),
            request_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap()),
            actor: "apikey:abc".into(),
            action: "apikey.create".into(),
            resource: "apikey:def".into(),
            decision: "success".into(),
            policy_version: String::new(),
            payload: br#"{"name":"ci"}"#.to_vec(),
        }
    }

    /// The encoding is fixed: a change to it changes every leaf hash, so it is pinned byte for
    /// byte.
    #[test]
    fn the_encoding_is_stable() {
        let bytes = record().encode();
        let hex = rampart_types::lower_hex(&bytes);
        assert_eq!(
            hex,
            concat!(
                "01",
                "000001a2008d747b",
                "07070707070707070707070707070707",
                "00000020",
                "3462663932663335373762333464613661336365393239643065306534373336",
                "0000000a",
                "6170696b65793a616263",
                "0000000d",
                "6170696b65792e637265617465",
                "0000000a",
                "6170696b65793a646566",
                "00000007",
                "73756363657373",
                "00000000",
                "0000000d",
                "7b226e616d65223a226369227d",
            )
        );
        assert_eq!(Record::decode(&bytes).unwrap(), record());
    }

    #[test]
    fn decoding_is_strict() {
        let bytes = record().encode();
        assert!(Record::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Record::decode(&longer).is_err());
        let mut v2 = bytes;
        v2[0] = 2;
        assert_eq!(Record::decode(&v2), Err(RecordError::Version(2)));
    }

    #[test]
    fn sealed_records_open_only_with_their_key() {
        let key = AeadKey::new(&[1; 32]).unwrap();
        let sealed = record().seal(&key).unwrap();
        assert_eq!(Record::open(&key, &sealed).unwrap(), record());
        let other = AeadKey::new(&[2; 32]).unwrap();
        assert_eq!(Record::open(&other, &sealed), Err(RecordError::Sealed));
        // The sealed bytes do not contain the plaintext fields.
        let text = String::from_utf8_lossy(&sealed);
        assert!(!text.contains("apikey"));
        let mut big = record();
        big.payload = vec![b'x'; 70_000];
        assert!(matches!(big.seal(&key), Err(RecordError::TooLong(_))));
    }

    proptest! {
        #[test]
        fn any_record_round_trips(actor in ".*", payload in proptest::collection::vec(any::<u8>(), 0..200), ts in any::<i64>()) {
            let mut r = record();
            r.actor = actor;
            r.payload = payload;
            r.timestamp = Timestamp::from_unix_millis(ts);
            r.request_id = None;
            prop_assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        }
    }
}
