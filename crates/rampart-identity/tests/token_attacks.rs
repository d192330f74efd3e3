//! The attack suite for access tokens: each case is a known way JWT verifiers have been fooled.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use proptest::prelude::*;
use rampart_crypto::{Secret, SigningKey};
use rampart_identity::jwt::{sign_access_token, verify_access_token};
use rampart_identity::lineage::{Actor, MAX_ACT_DEPTH};
use rampart_identity::{
    AccessClaims, KeySet, TokenError, TokenSigner, VerificationKey, VerifyOptions,
};
use rampart_types::{Capability, CapabilitySet, FamilyId, MissionId, TenantId, Timestamp, TokenId};
use sha2::Sha256;

const SEED: [u8; 32] = [7; 32];

fn signer() -> TokenSigner {
    TokenSigner::new(SigningKey::from_seed(&Secret::new(SEED)))
}

fn keys() -> KeySet {
    KeySet::new(vec![VerificationKey::new(signer().verifying_key(), None)])
}

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "rampart".into(),
        sub: "apikey:aaaaaaaaaaaa".into(),
        tenant_id: TenantId::random(),
        caps: [Capability::AuditRead].into_iter().collect(),
        jti: TokenId::random(),
        iat: 10_000,
        nbf: 10_000,
        exp: 10_900,
        fam: FamilyId::random(),
        mission: None,
        act: None,
        epoch: 0,
    }
}

fn opts() -> VerifyOptions<'static> {
    VerifyOptions {
        issuer: "rampart",
        now: Timestamp::from_unix_seconds(10_100),
        leeway: Duration::from_secs(30),
        max_lifetime: Duration::from_secs(900),
    }
}

fn verify(token: &str) -> Result<(), TokenError> {
    verify_access_token(token, &keys(), &opts()).map(|_| ())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with an arbitrary header and payload, signed by the genuine key.
fn forge(header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = SigningKey::from_seed(&Secret::new(SEED)).sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

fn genuine_header() -> String {
    format!(
        r#"{{"alg":"EdDSA","kid":"{}","typ":"at+jwt"}}"#,
        signer().kid()
    )
}

fn genuine_payload() -> String {
    serde_json::to_string(&claims()).unwrap()
}

#[test]
fn the_genuine_token_verifies() {
    let t = sign_access_token(&signer(), &claims()).unwrap();
    verify(&t).unwrap();
    // And so does one forged with the genuine header (the forge helper is honest).
    verify(&forge(&genuine_header(), &genuine_payload())).unwrap();
}

#[test]
fn alg_none_is_refused() {
    let kid = signer().kid().to_owned();
    let header = format!(r#"{{"alg":"none","kid":"{kid}","typ":"at+jwt"}}"#);
    let unsigned = format!(
        "{}.{}.",
        b64(header.as_bytes()),
        b64(genuine_payload().as_bytes())
    );
    assert_eq!(verify(&unsigned), Err(TokenError::Malformed));
    let with_junk_sig = format!("{}{}", unsigned, b64(b"x"));
    assert_eq!(
        verify(&with_junk_sig),
        Err(TokenError::UnsupportedAlgorithm("none".into()))
    );
    for alg in ["None", "NONE", "nOnE"] {
        let h = format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"at+jwt"}}"#);
        assert!(matches!(
            verify(&forge(&h, &genuine_payload())),
            Err(TokenError::UnsupportedAlgorithm(_))
        ));
    }
}

#[test]
fn hmac_with_the_public_key_as_secret_is_refused() {
    // The classic key-confusion attack: sign with HS256 using the published public key.
    let kid = signer().kid().to_owned();
    let header = format!(r#"{{"alg":"HS256","kid":"{kid}","typ":"at+jwt"}}"#);
    let input = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(genuine_payload().as_bytes())
    );
    let public = signer().verifying_key();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(public.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    let token = format!("{input}.{}", b64(&mac.finalize().into_bytes()));
    assert_eq!(
        verify(&token),
        Err(TokenError::UnsupportedAlgorithm("HS256".into()))
    );
}

#[test]
fn every_other_algorithm_name_is_refused() {
    let kid = signer().kid().to_owned();
    for alg in [
        "EDDSA", "eddsa", "Ed25519", "ES256", "RS256", "PS256", "HS512", "",
    ] {
        let h = format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"at+jwt"}}"#);
        assert!(
            matches!(
                verify(&forge(&h, &genuine_payload())),
                Err(TokenError::UnsupportedAlgorithm(_))
            ),
            "{alg}"
        );
    }
    let no_alg = format!(r#"{{"kid":"{kid}","typ":"at+jwt"}}"#);
    assert_eq!(
        verify(&forge(&no_alg, &genuine_payload())),
        Err(TokenError::Malformed)
    );
}

#[test]
fn wrong_or_missing_type_is_refused() {
    let kid = signer().kid().to_owned();
    for h in [
        format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"JWT"}}"#),
        format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"dpop+jwt"}}"#),
    ] {
        assert_eq!(
            verify(&forge(&h, &genuine_payload())),
            Err(TokenError::WrongType),
            "{h}"
        );
    }
    let upper = format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"AT+JWT"}}"#);
    verify(&forge(&upper, &genuine_payload())).unwrap();
}

#[test]
fn critical_headers_are_refused() {
    let kid = signer().kid().to_owned();
    let h = format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"at+jwt","crit":["b64"],"b64":false}}"#);
    assert_eq!(
        verify(&forge(&h, &genuine_payload())),
        Err(TokenError::CriticalHeader)
    );
}

#[test]
fn unknown_missing_and_retired_kids_are_refused() {
    for h in [
        r#"{"alg":"EdDSA","typ":"at+jwt"}"#.to_owned(),
        r#"{"alg":"EdDSA","kid":"nope","typ":"at+jwt"}"#.to_owned(),
        r#"{"alg":"EdDSA","kid":"","typ":"at+jwt"}"#.to_owned(),
    ] {
        assert_eq!(
            verify(&forge(&h, &genuine_payload())),
            Err(TokenError::UnknownKey)
        );
    }
    let retired = KeySet::new(vec![VerificationKey::new(
        signer().verifying_key(),
        Some(Timestamp::from_unix_seconds(10_050)),
    )]);
    let t = sign_access_token(&signer(), &claims()).unwrap();
    assert_eq!(
        verify_access_token(&t, &retired, &opts()).unwrap_err(),
        TokenError::UnknownKey
    );
}

#[test]
fn a_key_injected_in_the_header_is_ignored() {
    // `jwk`/`jku`/`x5u` headers must never supply the verification key.
    let attacker = SigningKey::generate().unwrap();
    let jwk = rampart_identity::Jwk::ed25519("x", &attacker.verifying_key());
    let h = format!(
        r#"{{"alg":"EdDSA","kid":"{}","typ":"at+jwt","jwk":{},"jku":"http://evil/jwks"}}"#,
        signer().kid(),
        serde_json::to_string(&jwk).unwrap()
    );
    let input = format!(
        "{}.{}",
        b64(h.as_bytes()),
        b64(genuine_payload().as_bytes())
    );
    let token = format!("{input}.{}", b64(&attacker.sign(input.as_bytes())));
    assert_eq!(verify(&token), Err(TokenError::BadSignature));
}

#[test]
fn tampered_payloads_fail_the_signature() {
    let t = sign_access_token(&signer(), &claims()).unwrap();
    let parts: Vec<&str> = t.split('.').collect();
    let mut escalated = claims();
    escalated.caps = CapabilitySet::all();
    escalated.tenant_id = TenantId::random();
    let forged_payload = b64(serde_json::to_string(&escalated).unwrap().as_bytes());
    let token = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(verify(&token), Err(TokenError::BadSignature));
    // A signature lifted from another genuine token does not transfer either.
    let other = sign_access_token(&signer(), &claims()).unwrap();
    let other_sig = other.rsplit('.').next().unwrap();
    let spliced = format!("{}.{}.{}", parts[0], parts[1], other_sig);
    assert_eq!(verify(&spliced), Err(TokenError::BadSignature));
}

#[test]
fn malleated_signatures_are_refused() {
    let t = sign_access_token(&signer(), &claims()).unwrap();
    let (input, sig_b64) = t.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).unwrap();
    // S + L: the same signature in non-canonical form (little-endian 256-bit addition of the group
    // order). Lax verifiers accept it; strict verification must not.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut s = [0u8; 32];
    s.copy_from_slice(&sig[32..]);
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(s[i]) + u16::from(L[i]) + carry;
        s[i] = (v & 0xff) as u8;
        carry = v >> 8;
    }
    let mut malleated = sig.clone();
    malleated[32..].copy_from_slice(&s);
    assert_eq!(
        verify(&format!("{input}.{}", b64(&malleated))),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        verify(&format!("{input}.{}", b64(&sig[..63]))),
        Err(TokenError::BadSignature)
    );
    let mut longer = sig.clone();
    longer.push(0);
    assert_eq!(
        verify(&format!("{input}.{}", b64(&longer))),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        verify(&format!("{input}.{}", b64(&[0u8; 64]))),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn encoding_tricks_are_malformed() {
    let t = sign_access_token(&signer(), &claims()).unwrap();
    let parts: Vec<&str> = t.split('.').collect();
    for bad in [
        format!("{t}."),
        format!("{t}.x.y"),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}==", parts[0], parts[1], parts[2]),
        format!(" {t}"),
        t.replace('.', ".."),
        "a".repeat(9000),
        String::new(),
        "..".into(),
    ] {
        assert!(verify(&bad).is_err(), "{bad}");
    }
    // Standard (not URL-safe) base64 alphabets are refused.
    let std_sig = base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(URL_SAFE_NO_PAD.decode(parts[2]).unwrap());
    if std_sig != parts[2] {
        assert_eq!(
            verify(&format!("{}.{}.{}", parts[0], parts[1], std_sig)),
            Err(TokenError::Malformed)
        );
    }
}

#[test]
fn duplicate_and_unknown_claims_do_not_slip_through() {
    // A payload with two `tenant_id` members: parsers disagree on which wins, so refuse it.
    let c = claims();
    let dup = format!(
        r#"{{"iss":"rampart","sub":"s","tenant_id":"{}","tenant_id":"{}","caps":[],"jti":"{}","iat":10000,"nbf":10000,"exp":10900,"fam":"{}"}}"#,
        c.tenant_id,
        TenantId::random(),
        c.jti,
        c.fam
    );
    assert!(matches!(
        verify(&forge(&genuine_header(), &dup)),
        Err(TokenError::InvalidClaims(_))
    ));
    let unknown_cap = genuine_payload().replace("audit:read", "root:all");
    assert!(matches!(
        verify(&forge(&genuine_header(), &unknown_cap)),
        Err(TokenError::InvalidClaims(_))
    ));
    let string_exp = genuine_payload().replace(r#""exp":10900"#, r#""exp":"10900""#);
    assert!(matches!(
        verify(&forge(&genuine_header(), &string_exp)),
        Err(TokenError::InvalidClaims(_))
    ));
}

#[test]
fn delegation_claims_round_trip_and_overlong_chains_are_refused() {
    let mut c = claims();
    c.sub = "agent:worker".into();
    c.mission = Some(MissionId::random());
    c.epoch = 7;
    c.act = Actor::delegated_by("apikey:orchestrator", None);
    let t = sign_access_token(&signer(), &c).unwrap();
    let v = verify_access_token(&t, &keys(), &opts()).unwrap();
    assert_eq!(v.claims(), &c);
    assert_eq!(v.claims().lineage().principals().len(), 4);

    // A chain deeper than any this issuer signs is refused even under a genuine signature.
    let deep = (0..=MAX_ACT_DEPTH).fold(None, |inner: Option<Actor>, i| {
        Some(Actor {
            sub: format!("user:{i}"),
            act: inner.map(Box::new),
        })
    });
    c.act = deep;
    let payload = serde_json::to_string(&c).unwrap();
    assert!(matches!(
        verify(&forge(&genuine_header(), &payload)),
        Err(TokenError::InvalidClaims(_))
    ));

    // A token minted before these claims existed reads as epoch 0, no mission, no actor: any
    // revocation of its lineage revokes it.
    let old = genuine_payload()
        .replace(r#","epoch":0"#, "")
        .replace(r#""epoch":0,"#, "");
    assert!(!old.contains("epoch"));
    let v = verify_access_token(&forge(&genuine_header(), &old), &keys(), &opts()).unwrap();
    assert_eq!((v.claims().epoch, v.claims().mission), (0, None));
}

#[test]
fn expired_early_and_foreign_tokens_are_refused() {
    let mut c = claims();
    c.exp = 10_050;
    c.iat = 9_500;
    c.nbf = 9_500;
    let expired = sign_access_token(&signer(), &c).unwrap();
    assert_eq!(
        verify_access_token(
            &expired,
            &keys(),
            &VerifyOptions {
                now: Timestamp::from_unix_seconds(10_080),
                ..opts()
            }
        )
        .unwrap_err(),
        TokenError::Expired
    );
    let mut early = claims();
    early.nbf = 10_500;
    early.iat = 10_500;
    early.exp = 10_600;
    assert_eq!(
        verify(&sign_access_token(&signer(), &early).unwrap()),
        Err(TokenError::NotYetValid)
    );
    let mut foreign = claims();
    foreign.iss = "https://evil.example".into();
    assert_eq!(
        verify(&sign_access_token(&signer(), &foreign).unwrap()),
        Err(TokenError::WrongIssuer)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Any single-bit change anywhere in a genuine token makes it fail.
    #[test]
    fn any_bit_flip_fails(pos in 0usize..400, bit in 0u8..7) {
        let t = sign_access_token(&signer(), &claims()).unwrap();
        let pos = pos % t.len();
        let mut bytes = t.into_bytes();
        bytes[pos] ^= 1 << bit;
        if let Ok(s) = String::from_utf8(bytes) {
            prop_assert!(verify(&s).is_err());
        }
    }
}
