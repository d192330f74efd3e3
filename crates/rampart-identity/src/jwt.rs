//! Access tokens: JWTs (RFC 7519) in JWS compact form (RFC 7515), signed with Ed25519 (`EdDSA`,
//! RFC 8037), typed `at+jwt` (RFC 9068) so no other JWT can be passed off as one.
//!
//! Verification accepts exactly one algorithm and one token type, requires a known `kid`, checks
//! the signature before it looks at the claims, and then checks issuer and times. Every rejection
//! is a distinct [`TokenError`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rampart_crypto::{VerifyingKey, sha256};
use rampart_types::{CapabilitySet, FamilyId, MissionId, TenantId, Timestamp, TokenId};
use serde::{Deserialize, Serialize};

use crate::keys::{KeySet, TokenSigner};
use crate::lineage::{Actor, Lineage, MAX_ACT_DEPTH};

/// The JOSE `typ` of Rampart access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Longer inputs are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: the deployment's configured issuer name.
    pub iss: String,
    /// Subject: who the token speaks for, e.g. `apikey:<id>`.
    pub sub: String,
    pub tenant_id: TenantId,
    /// The capabilities the token grants: never more than the credential it came from.
    pub caps: CapabilitySet,
    pub jti: TokenId,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// The refresh-token family the token belongs to; revoking the family revokes the token.
    pub fam: FamilyId,
    /// The mission the token was minted for: ending the mission revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mission: Option<MissionId>,
    /// Who the subject acts for (RFC 8693 §4.1), when the token was delegated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The tenant's revocation epoch when the token was minted: a revocation of any principal
    /// of its lineage at a later epoch revokes it (see [`crate::lineage`]).
    #[serde(default)]
    pub epoch: u64,
}

impl AccessClaims {
    /// The principals whose revocation revokes this token.
    #[must_use]
    pub fn lineage(&self) -> Lineage {
        Lineage::of(&self.sub, self.mission, self.act.as_ref())
    }
}

/// Why a token was refused. The `Display` text is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWS compact serialization")]
    Malformed,
    #[error("algorithm `{0}` is not accepted; only `EdDSA` is")]
    UnsupportedAlgorithm(String),
    #[error("the token has critical header parameters this server does not understand")]
    CriticalHeader,
    #[error("the token is not a Rampart access token (`typ` must be `at+jwt`)")]
    WrongType,
    #[error("the token was signed by an unknown or retired key")]
    UnknownKey,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token claims are invalid: {0}")]
    InvalidClaims(&'static str),
    #[error("the token was issued by a different issuer")]
    WrongIssuer,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// What verification checks the claims against.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions<'a> {
    pub issuer: &'a str,
    pub now: Timestamp,
    /// Tolerated clock difference between the signer and the verifier.
    pub leeway: Duration,
    /// The longest `exp - iat` a genuine token can have.
    pub max_lifetime: Duration,
}

/// An access token whose signature, type, issuer and times have been checked. Only
/// [`verify_access_token`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedAccessToken {
    claims: AccessClaims,
    kid: String,
}

impl VerifiedAccessToken {
    #[must_use]
    pub fn claims(&self) -> &AccessClaims {
        &self.claims
    }

    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    #[must_use]
    pub fn expires_at(&self) -> Timestamp {
        Timestamp::from_unix_seconds(self.claims.exp)
    }
}

#[derive(Serialize)]
struct OutHeader<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'static str,
}

#[derive(Deserialize)]
struct InHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Signs `claims` as an access token.
pub fn sign_access_token(
    signer: &TokenSigner,
    claims: &AccessClaims,
) -> Result<String, serde_json::Error> {
    let header = serde_json::to_vec(&OutHeader {
        alg: "EdDSA",
        kid: signer.kid(),
        typ: ACCESS_TOKEN_TYPE,
    })?;
    let payload = serde_json::to_vec(claims)?;
    Ok(sign_compact(signer, &header, &payload))
}

fn sign_compact(signer: &TokenSigner, header: &[u8], payload: &[u8]) -> String {
    let mut out = URL_SAFE_NO_PAD.encode(header);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut out);
    let sig = signer.sign(out.as_bytes());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut out);
    out
}

struct Parts<'a> {
    signing_input: &'a str,
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
}

fn split(token: &str) -> Result<Parts<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut it = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(TokenError::Malformed);
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok(Parts {
        signing_input: &token[..header.len() + 1 + payload.len()],
        header,
        payload,
        signature,
    })
}

fn b64(s: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Malformed)
}

fn check_signature(parts: &Parts<'_>, key: &VerifyingKey) -> Result<(), TokenError> {
    let sig = b64(parts.signature)?;
    key.verify(parts.signing_input.as_bytes(), &sig)
        .map_err(|_| TokenError::BadSignature)
}

/// Tokens whose signature was checked, so that a token presented again skips only the Ed25519
/// verification of the very same bytes under the very same public key. Every other check (the
/// key still live, the header, issuer, lifetime and time window) runs each time. Entries are
/// keyed by the SHA-256 of the whole token, so any change to it is a miss. Bounded: when full it
/// starts again empty.
#[derive(Default)]
pub struct CheckedSignatures {
    seen: Mutex<HashMap<[u8; 32], [u8; 32]>>,
}

/// How many tokens [`CheckedSignatures`] remembers.
const CHECKED_SIGNATURES: usize = 16_384;

impl std::fmt::Debug for CheckedSignatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckedSignatures")
    }
}

impl CheckedSignatures {
    fn check(&self, token: &str, parts: &Parts<'_>, key: &VerifyingKey) -> Result<(), TokenError> {
        let digest = sha256(token.as_bytes());
        if let Ok(seen) = self.seen.lock()
            && seen.get(&digest) == Some(key.as_bytes())
        {
            return Ok(());
        }
        check_signature(parts, key)?;
        if let Ok(mut seen) = self.seen.lock() {
            if seen.len() >= CHECKED_SIGNATURES {
                seen.clear();
            }
            seen.insert(digest, *key.as_bytes());
        }
        Ok(())
    }
}

/// Verifies an access token against the key set and the options.
pub fn verify_access_token(
    token: &str,
    keys: &KeySet,
    opts: &VerifyOptions<'_>,
) -> Result<VerifiedAccessToken, TokenError> {
    verify(token, keys, opts, None)
}

/// [`verify_access_token`] for a server that sees the same tokens again and again: the signature
/// check is skipped for a token `checked` saw pass under the same key.
pub fn verify_access_token_cached(
    token: &str,
    keys: &KeySet,
    opts: &VerifyOptions<'_>,
    checked: &CheckedSignatures,
) -> Result<VerifiedAccessToken, TokenError> {
    verify(token, keys, opts, Some(checked))
}

fn verify(
    token: &str,
    keys: &KeySet,
    opts: &VerifyOptions<'_>,
    checked: Option<&CheckedSignatures>,
) -> Result<VerifiedAccessToken, TokenError> {
    let parts = split(token)?;
    let header: InHeader =
        serde_json::from_slice(&b64(parts.header)?).map_err(|_| TokenError::Malformed)?;
    if header.alg != "EdDSA" {
        return Err(TokenError::UnsupportedAlgorithm(
            rampart_types::truncate_for_display(&header.alg),
        ));
    }
    if header.crit.is_some() {
        return Err(TokenError::CriticalHeader);
    }
    // RFC 7515 §4.1.9: `typ` compares case-insensitively and may carry the `application/` prefix.
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t == ACCESS_TOKEN_TYPE || t == "application/at+jwt"
    });
    if !typ_ok {
        return Err(TokenError::WrongType);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let key = keys.get(&kid, opts.now).ok_or(TokenError::UnknownKey)?;
    match checked {
        Some(checked) => checked.check(token, &parts, key)?,
        None => check_signature(&parts, key)?,
    }

    // Only now, with the signature checked, are the claims parsed.
    let claims: AccessClaims = serde_json::from_slice(&b64(parts.payload)?)
        .map_err(|_| TokenError::InvalidClaims("missing, unknown or mistyped claim"))?;
    if claims.iss != opts.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims
        .act
        .as_ref()
        .is_some_and(|a| a.depth() > MAX_ACT_DEPTH)
    {
        return Err(TokenError::InvalidClaims(
            "the delegation chain is longer than any token this issuer signs",
        ));
    }
    let leeway = i64::try_from(opts.leeway.as_secs()).unwrap_or(i64::MAX);
    let max_lifetime = i64::try_from(opts.max_lifetime.as_secs()).unwrap_or(i64::MAX);
    let now = opts.now.unix_seconds();
    if claims.exp <= claims.iat || claims.nbf > claims.exp {
        return Err(TokenError::InvalidClaims(
            "`exp` is not after `iat` and `nbf`",
        ));
    }
    if claims.exp.saturating_sub(claims.iat) > max_lifetime {
        return Err(TokenError::InvalidClaims(
            "lifetime longer than any token this issuer signs",
        ));
    }
    if now >= claims.exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if claims.nbf > now.saturating_add(leeway) || claims.iat > now.saturating_add(leeway) {
        return Err(TokenError::NotYetValid);
    }
    Ok(VerifiedAccessToken { claims, kid })
}

/// The header and claims of a token as JSON, *without* checking anything. For display only
/// (`rampart token decode`).
pub fn decode_unverified(
    token: &str,
) -> Result<(serde_json::Value, serde_json::Value), TokenError> {
    let parts = split(token)?;
    let header = serde_json::from_slice(&b64(parts.header)?).map_err(|_| TokenError::Malformed)?;
    let claims = serde_json::from_slice(&b64(parts.payload)?).map_err(|_| TokenError::Malformed)?;
    Ok((header, claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::VerificationKey;
    use rampart_crypto::{Secret, SigningKey};
    use rampart_types::Capability;

    /// RFC 8037 Appendix A.4: Ed25519 signing is deterministic, so our signer must produce the
    /// RFC's exact compact JWS, and the RFC's JWS must verify under the RFC's key.
    #[test]
    fn rfc8037_a4_known_answer() {
        let d: [u8; 32] = URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap()
            .try_into()
            .unwrap();
        let signer = TokenSigner::new(SigningKey::from_seed(&Secret::new(d)));
        let expected = concat!(
            "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.",
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
        assert_eq!(
            sign_compact(
                &signer,
                br#"{"alg":"EdDSA"}"#,
                b"Example of Ed25519 signing"
            ),
            expected
        );
        let parts = split(expected).unwrap();
        check_signature(&parts, &signer.verifying_key()).unwrap();
        assert_eq!(signer.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    fn fixture() -> (TokenSigner, KeySet, AccessClaims) {
        let signer = TokenSigner::new(SigningKey::generate().unwrap());
        let keys = KeySet::new(vec![VerificationKey::new(signer.verifying_key(), None)]);
        let claims = AccessClaims {
            iss: "rampart-test".into(),
            sub: "apikey:abc".into(),
            tenant_id: TenantId::random(),
            caps: [Capability::AuditRead].into_iter().collect(),
            jti: TokenId::random(),
            iat: 1_000,
            nbf: 1_000,
            exp: 1_900,
            fam: FamilyId::random(),
            mission: None,
            act: None,
            epoch: 0,
        };
        (signer, keys, claims)
    }

    fn opts(now: i64) -> VerifyOptions<'static> {
        VerifyOptions {
            issuer: "rampart-test",
            now: Timestamp::from_unix_seconds(now),
            leeway: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(900),
        }
    }

    #[test]
    fn a_fresh_token_verifies_and_carries_its_claims() {
        let (signer, keys, claims) = fixture();
        let token = sign_access_token(&signer, &claims).unwrap();
        let v = verify_access_token(&token, &keys, &opts(1_100)).unwrap();
        assert_eq!(v.claims(), &claims);
        assert_eq!(v.kid(), signer.kid());
    }

    #[test]
    fn times_are_checked_with_leeway() {
        let (signer, keys, claims) = fixture();
        let token = sign_access_token(&signer, &claims).unwrap();
        assert!(verify_access_token(&token, &keys, &opts(1_929)).is_ok());
        assert_eq!(
            verify_access_token(&token, &keys, &opts(1_930)).unwrap_err(),
            TokenError::Expired
        );
        assert!(verify_access_token(&token, &keys, &opts(970)).is_ok());
        assert_eq!(
            verify_access_token(&token, &keys, &opts(969)).unwrap_err(),
            TokenError::NotYetValid
        );
    }

    #[test]
    fn wrong_issuer_and_overlong_lifetime_are_refused() {
        let (signer, keys, mut claims) = fixture();
        let token = sign_access_token(&signer, &claims).unwrap();
        let mut o = opts(1_100);
        o.issuer = "someone-else";
        assert_eq!(
            verify_access_token(&token, &keys, &o).unwrap_err(),
            TokenError::WrongIssuer
        );
        claims.exp = claims.iat + 10_000;
        let token = sign_access_token(&signer, &claims).unwrap();
        assert!(matches!(
            verify_access_token(&token, &keys, &opts(1_100)),
            Err(TokenError::InvalidClaims(_))
        ));
    }

    /// A remembered signature skips only the Ed25519 check of the same bytes under the same key:
    /// any other token, a key that is no longer live and an expired token are still refused.
    #[test]
    fn checked_signatures_skip_nothing_but_the_same_check() {
        let (signer, _, claims) = fixture();
        let keys = KeySet::new(vec![VerificationKey::new(
            signer.verifying_key(),
            Some(Timestamp::from_unix_seconds(1_200)),
        )]);
        let checked = CheckedSignatures::default();
        let token = sign_access_token(&signer, &claims).unwrap();
        for _ in 0..2 {
            let v = verify_access_token_cached(&token, &keys, &opts(1_100), &checked).unwrap();
            assert_eq!(v.claims(), &claims);
        }
        // One character of the signature changed: a different token, checked afresh.
        let mut tampered = token.clone().into_bytes();
        let at = tampered.len() - 10;
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            verify_access_token_cached(&tampered, &keys, &opts(1_100), &checked).unwrap_err(),
            TokenError::BadSignature
        );
        // The claims of another token under the remembered signature.
        let mut other = claims.clone();
        other.sub = "someone-else".into();
        let forged = format!(
            "{}.{}",
            sign_access_token(&signer, &other)
                .unwrap()
                .rsplit_once('.')
                .unwrap()
                .0,
            token.rsplit_once('.').unwrap().1
        );
        assert_eq!(
            verify_access_token_cached(&forged, &keys, &opts(1_100), &checked).unwrap_err(),
            TokenError::BadSignature
        );
        // Past the key's `verify_until`, and past the token's expiry, the cache does not help.
        assert_eq!(
            verify_access_token_cached(&token, &keys, &opts(1_300), &checked).unwrap_err(),
            TokenError::UnknownKey
        );
        let live = KeySet::new(vec![VerificationKey::new(signer.verifying_key(), None)]);
        assert_eq!(
            verify_access_token_cached(&token, &live, &opts(1_930), &checked).unwrap_err(),
            TokenError::Expired
        );
    }

    #[test]
    fn a_key_outside_the_set_is_unknown() {
        let (_, keys, claims) = fixture();
        let stranger = TokenSigner::new(SigningKey::generate().unwrap());
        let token = sign_access_token(&stranger, &claims).unwrap();
        assert_eq!(
            verify_access_token(&token, &keys, &opts(1_100)).unwrap_err(),
            TokenError::UnknownKey
        );
    }

    #[test]
    fn decode_unverified_shows_header_and_claims() {
        let (signer, _, claims) = fixture();
        let token = sign_access_token(&signer, &claims).unwrap();
        let (h, c) = decode_unverified(&token).unwrap();
        assert_eq!(h["typ"], "at+jwt");
        assert_eq!(c["sub"], "apikey:abc");
    }
}
