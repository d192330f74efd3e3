//! Typed identifiers. Each is a distinct type so a tenant id can never be passed where a token id
//! is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why an identifier did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{kind}` is not a valid {what}")]
pub struct IdParseError {
    /// The offending input, truncated so that a pasted secret is never echoed whole.
    pub kind: String,
    /// What was expected.
    pub what: &'static str,
}

impl IdParseError {
    pub(crate) fn new(input: &str, what: &'static str) -> Self {
        Self {
            kind: truncate_for_display(input),
            what,
        }
    }
}

/// At most 24 characters of user input, with `…` when cut: enough to recognise a typo, too little
/// to leak a credential pasted into the wrong place.
#[must_use]
pub fn truncate_for_display(input: &str) -> String {
    const MAX: usize = 24;
    let mut shown: String = input.chars().take(MAX).collect();
    if input.chars().nth(MAX).is_some() {
        shown.push('…');
    }
    shown
}

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (v4) identifier.
            #[must_use]
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }

            /// Wraps an existing UUID (as read back from storage).
            #[must_use]
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            #[must_use]
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // Only the canonical hyphenated form: one spelling per id keeps logs greppable and
                // comparisons exact.
                if s.len() != 36 {
                    return Err(IdParseError::new(s, $what));
                }
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| IdParseError::new(s, $what))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0.hyphenated())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(
    /// A tenant: the unit of isolation. Every tenant-owned row carries one.
    TenantId,
    "tenant id"
);
uuid_id!(
    /// A refresh-token family: every access and refresh token descending from one grant.
    FamilyId,
    "token family id"
);
uuid_id!(
    /// The `jti` of an access token.
    TokenId,
    "token id"
);
uuid_id!(
    /// An agent profile: a workload of one tenant, with its secret allowlist.
    AgentId,
    "agent id"
);
uuid_id!(
    /// A lease: one just-in-time credential issued to an agent for a mission.
    LeaseId,
    "lease id"
);
uuid_id!(
    /// A mission: one unit of an agent's work, with pinned instructions and budgets. Ending it
    /// revokes everything issued under it.
    MissionId,
    "mission id"
);
uuid_id!(
    /// One cascading revocation: the id every audit record of its effects shares.
    CascadeId,
    "cascade id"
);
uuid_id!(
    /// A webhook endpoint of a tenant.
    EndpointId,
    "webhook endpoint id"
);
uuid_id!(
    /// One webhook message's delivery to one endpoint.
    DeliveryId,
    "webhook delivery id"
);

/// The id of one request, shared by its log lines, its problem body and its audit records.
///
/// It has the shape of a W3C trace-id (16 bytes, 32 lowercase hex digits, not all zero), so a
/// request that arrives with a `traceparent` keeps the caller's trace id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId([u8; 16]);

impl RequestId {
    /// A fresh random id.
    #[must_use]
    pub fn generate() -> Self {
        Self(Uuid::new_v4().into_bytes())
    }

    /// The trace id of a W3C `traceparent` header value, or `None` when the header is malformed
    /// (the caller then generates a fresh id, as the Trace Context spec asks).
    #[must_use]
    pub fn from_traceparent(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let version = parts.next()?;
        let trace_id = parts.next()?;
        let parent_id = parts.next()?;
        let flags = parts.next()?;
        let rest = parts.next();
        if version.len() != 2 || !is_lower_hex(version) || version == "ff" {
            return None;
        }
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && rest.is_some() {
            return None;
        }
        if parent_id.len() != 16 || !is_lower_hex(parent_id) || parent_id.bytes().all(|b| b == b'0')
        {
            return None;
        }
        if flags.len() != 2 || !is_lower_hex(flags) {
            return None;
        }
        let id = Self::parse_hex(trace_id)?;
        Some(id)
    }

    fn parse_hex(s: &str) -> Option<Self> {
        if s.len() != 32 || !is_lower_hex(s) || s.bytes().all(|b| b == b'0') {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, chunk) in s.as_bytes().chunks_exact(2).enumerate() {
            let hi = hex_val(chunk[0])?;
            let lo = hex_val(chunk[1])?;
            out[i] = (hi << 4) | lo;
        }
        Some(Self(out))
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}

impl FromStr for RequestId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_hex(s).ok_or_else(|| IdParseError::new(s, "request id"))
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_examples_from_the_w3c_spec() {
        let id =
            RequestId::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .unwrap();
        assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(RequestId::from_traceparent(bad).is_none(), "{bad}");
        }
        // A future version may carry more fields.
        assert!(
            RequestId::from_traceparent(
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
            )
            .is_some()
        );
    }

    #[test]
    fn uuid_ids_accept_only_the_canonical_form() {
        let id = TenantId::random();
        assert_eq!(id.to_string().parse::<TenantId>().unwrap(), id);
        let simple = id.as_uuid().simple().to_string();
        assert!(simple.parse::<TenantId>().is_err());
        let err = "rmp_live_0123456789ab_secretsecretsecretsecretsecretsecret"
            .parse::<TenantId>()
            .unwrap_err();
        assert!(
            err.kind.chars().count() <= 25,
            "a long input is truncated in the error"
        );
        assert!(!err.to_string().contains("secretsecret"));
    }
}
