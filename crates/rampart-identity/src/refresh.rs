//! Refresh tokens: opaque, stored hashed, single use, rotating within a family.
//!
//! Each use returns a successor of the same family. Presenting a token that was already used
//! means it was copied: the family is revoked, with every access token minted from it — except
//! inside a short grace window, where a concurrent duplicate (two tabs, a retried request) gets the
//! *same* successor. To give back the same successor without storing it readably, the successor is
//! sealed under a key derived from its predecessor's secret, which only the presenter holds.

use std::fmt;
use std::time::Duration;

use rampart_crypto::{CryptoError, DerivedKey};
use rampart_types::Timestamp;

use crate::opaque::{Format, is_id, opaque_credential};

const FORMAT: Format = Format {
    prefix: "rmp_rt_",
    id_len: 16,
};

/// Public identifier of a refresh token (16 lowercase alphanumerics).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefreshTokenId(String);

impl RefreshTokenId {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// From storage; `None` when it does not have the id shape.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == FORMAT.id_len && is_id(s)).then(|| Self(s.to_owned()))
    }
}

impl fmt::Display for RefreshTokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

opaque_credential!(
    /// A whole refresh token.
    RefreshToken,
    id = RefreshTokenId,
    format = FORMAT,
    hash_label = b"rampart refresh token v1\0",
);

impl RefreshToken {
    fn successor_key(&self) -> Result<rampart_crypto::AeadKey, CryptoError> {
        DerivedKey::from_secret_material(
            self.credential.expose().as_bytes(),
            "rampart/refresh-successor/v1",
        )?
        .into_aead()
    }

    /// Seals `successor` so that only a holder of `self` can open it.
    pub fn seal_successor(&self, successor: &RefreshToken) -> Result<Vec<u8>, CryptoError> {
        self.successor_key()?.seal(
            successor.id.as_str().as_bytes(),
            successor.expose().as_bytes(),
        )
    }

    /// Opens what [`Self::seal_successor`] sealed for the successor with id `successor_id`.
    pub fn open_successor(
        &self,
        successor_id: &RefreshTokenId,
        sealed: &[u8],
    ) -> Result<RefreshToken, CryptoError> {
        let bytes = self
            .successor_key()?
            .open(successor_id.as_str().as_bytes(), sealed)?;
        let text = std::str::from_utf8(bytes.expose()).map_err(|_| CryptoError::Decrypt)?;
        match RefreshToken::parse(text) {
            Some(t) if &t.id == successor_id => Ok(t),
            _ => Err(CryptoError::Decrypt),
        }
    }
}

/// What the store knows about a presented refresh token and its family.
#[derive(Debug, Clone, Copy)]
pub struct RefreshState {
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    /// `Some(true)` when the successor has itself been used; `None` when there is none.
    pub successor_used: Option<bool>,
    pub family_revoked: bool,
    pub family_expires_at: Timestamp,
    /// The credential the family came from is revoked or expired.
    pub source_revoked: bool,
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// First use: issue a successor.
    Rotate,
    /// A duplicate inside the grace window: return the successor already issued.
    ReturnSuccessor,
    /// A replay: revoke the whole family.
    RevokeFamily,
    /// The token, its family or its source is dead; refuse without further effect.
    Reject,
}

/// The rotation rule, as a pure function.
#[must_use]
pub fn decide(state: &RefreshState, now: Timestamp, grace: Duration) -> RefreshDecision {
    if state.family_revoked {
        return RefreshDecision::Reject;
    }
    if state.source_revoked {
        // The source key was revoked or has expired: end the family too.
        return RefreshDecision::RevokeFamily;
    }
    if now >= state.expires_at || now >= state.family_expires_at {
        return RefreshDecision::Reject;
    }
    match state.used_at {
        None => RefreshDecision::Rotate,
        Some(used) => {
            // Half-open window [used, used + grace): a zero grace disables it.
            let within_grace = now.duration_since(used) < grace;
            if within_grace && state.successor_used == Some(false) {
                RefreshDecision::ReturnSuccessor
            } else {
                RefreshDecision::RevokeFamily
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_crypto::HmacKey;

    fn state() -> RefreshState {
        RefreshState {
            expires_at: Timestamp::from_unix_seconds(10_000),
            used_at: None,
            successor_used: None,
            family_revoked: false,
            family_expires_at: Timestamp::from_unix_seconds(20_000),
            source_revoked: false,
        }
    }

    const GRACE: Duration = Duration::from_secs(5);

    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(s)
    }

    #[test]
    fn first_use_rotates() {
        assert_eq!(decide(&state(), at(100), GRACE), RefreshDecision::Rotate);
    }

    #[test]
    fn duplicate_inside_grace_gets_the_same_successor() {
        let s = RefreshState {
            used_at: Some(at(100)),
            successor_used: Some(false),
            ..state()
        };
        assert_eq!(decide(&s, at(100), GRACE), RefreshDecision::ReturnSuccessor);
        assert_eq!(decide(&s, at(104), GRACE), RefreshDecision::ReturnSuccessor);
        assert_eq!(decide(&s, at(105), GRACE), RefreshDecision::RevokeFamily);
        assert_eq!(
            decide(&s, at(100), Duration::ZERO),
            RefreshDecision::RevokeFamily
        );
    }

    #[test]
    fn reuse_after_the_successor_moved_on_revokes_even_inside_grace() {
        let s = RefreshState {
            used_at: Some(at(100)),
            successor_used: Some(true),
            ..state()
        };
        assert_eq!(decide(&s, at(101), GRACE), RefreshDecision::RevokeFamily);
    }

    #[test]
    fn dead_tokens_and_families_are_rejected() {
        assert_eq!(decide(&state(), at(10_000), GRACE), RefreshDecision::Reject);
        let revoked = RefreshState {
            family_revoked: true,
            ..state()
        };
        assert_eq!(decide(&revoked, at(100), GRACE), RefreshDecision::Reject);
        let old_family = RefreshState {
            family_expires_at: at(50),
            ..state()
        };
        assert_eq!(decide(&old_family, at(100), GRACE), RefreshDecision::Reject);
        let source = RefreshState {
            source_revoked: true,
            ..state()
        };
        assert_eq!(
            decide(&source, at(100), GRACE),
            RefreshDecision::RevokeFamily
        );
    }

    #[test]
    fn only_the_predecessor_opens_the_sealed_successor() {
        let parent = RefreshToken::generate().unwrap();
        let child = RefreshToken::generate().unwrap();
        let sealed = parent.seal_successor(&child).unwrap();
        let opened = parent.open_successor(child.id(), &sealed).unwrap();
        assert_eq!(opened.expose(), child.expose());
        let stranger = RefreshToken::generate().unwrap();
        assert!(stranger.open_successor(child.id(), &sealed).is_err());
        assert!(parent.open_successor(stranger.id(), &sealed).is_err());
    }

    #[test]
    fn shape_and_hash() {
        let t = RefreshToken::generate().unwrap();
        assert!(t.expose().starts_with("rmp_rt_"));
        assert_eq!(RefreshToken::parse(t.expose()).unwrap().id(), t.id());
        let pepper = HmacKey::new(vec![1; 32]).unwrap();
        assert!(t.matches(&pepper, &t.hash(&pepper)));
        assert!(!format!("{t:?}").contains(&t.expose()[24..]));
    }
}
