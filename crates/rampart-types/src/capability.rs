//! Named capabilities and sets of them.
//!
//! A capability names one kind of action (`apikeys:manage`). Credentials carry a fixed
//! [`CapabilitySet`]; routes require one capability each. Sets are bitsets so a check on the hot
//! path is one AND.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! capabilities {
    ($($(#[$meta:meta])* $variant:ident = $name:literal, platform = $platform:literal;)+) => {
        /// One named capability.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Capability {
            $($(#[$meta])* $variant,)+
        }

        impl Capability {
            /// Every capability, in a stable order.
            pub const ALL: &'static [Capability] = &[$(Capability::$variant,)+];

            /// The wire name, e.g. `tenants:admin`.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(Capability::$variant => $name,)+ }
            }

            /// Whether only the platform (system) tenant may hold it. These act across tenants.
            #[must_use]
            pub const fn is_platform_only(self) -> bool {
                match self { $(Capability::$variant => $platform,)+ }
            }
        }

        impl FromStr for Capability {
            type Err = UnknownCapability;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Capability::$variant),)+
                    other => Err(UnknownCapability(crate::truncate_for_display(other))),
                }
            }
        }
    };
}

capabilities! {
    /// Create and list tenants; act on other tenants' API keys. Platform only.
    TenantsAdmin = "tenants:admin", platform = true;
    /// Rotate the token signing keys. Platform only.
    KeysManage = "keys:manage", platform = true;
    /// Create, list, rotate and revoke the tenant's API keys.
    ApikeysManage = "apikeys:manage", platform = false;
    /// Read the tenant's audit trail.
    AuditRead = "audit:read", platform = false;
    /// Read the tenant's secrets (values and metadata).
    SecretsRead = "secrets:read", platform = false;
    /// Write, delete and undelete the tenant's secrets.
    SecretsWrite = "secrets:write", platform = false;
    /// Destroy secret versions; rotate, re-wrap and revoke the tenant's key-encryption keys.
    SecretsAdmin = "secrets:admin", platform = false;
    /// Create, change and disable the tenant's agent profiles; configure dynamic credential
    /// engines.
    AgentsManage = "agents:manage", platform = false;
    /// Ask for, renew and revoke leases (just-in-time credentials) for agents.
    LeasesIssue = "leases:issue", platform = false;
    /// List every lease of the tenant and revoke them in bulk (by prefix, mission or agent).
    LeasesAdmin = "leases:admin", platform = false;
    /// Manage the tenant's webhook endpoints, read their deliveries and replay failed ones.
    WebhooksManage = "webhooks:manage", platform = false;
    /// Scan and redact text with the tenant's Sentinel policy.
    SentinelUse = "sentinel:use", platform = false;
    /// Reveal the values behind reversible Sentinel tokens (every reveal is audited).
    SentinelReveal = "sentinel:reveal", platform = false;
    /// Change the tenant's Sentinel policy; destroy its Sentinel key.
    SentinelAdmin = "sentinel:admin", platform = false;
    /// Open, end and abort the tenant's missions; mint mission tokens for their agents; revoke
    /// a principal and everything issued under it.
    MissionsManage = "missions:manage", platform = false;
    /// Call LLM providers through the agent gateway (`/v1/chat/completions`, `/v1/messages`).
    GatewayCall = "gateway:call", platform = false;
    /// Change the tenant's gateway configuration (upstream providers and their API keys).
    GatewayAdmin = "gateway:admin", platform = false;
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Capability {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Capability::ALL.iter().map(|c| c.as_str())))
            .description(Some("A named capability"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Capability {}

/// A capability name that Rampart does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability `{0}`")]
pub struct UnknownCapability(pub String);

/// A set of capabilities.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CapabilitySet(u64);

impl CapabilitySet {
    #[must_use]
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Every capability Rampart knows.
    #[must_use]
    pub fn all() -> Self {
        Capability::ALL.iter().copied().collect()
    }

    #[must_use]
    pub const fn contains(self, cap: Capability) -> bool {
        self.0 & (1 << cap as u8) != 0
    }

    pub fn insert(&mut self, cap: Capability) {
        self.0 |= 1 << cap as u8;
    }

    #[must_use]
    pub const fn is_subset_of(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The members of `self` that are not in `other`.
    #[must_use]
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Whether any member is platform-only.
    #[must_use]
    pub fn has_platform_only(self) -> bool {
        self.iter().any(Capability::is_platform_only)
    }

    /// Members in their stable order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .iter()
            .copied()
            .filter(move |c| self.contains(*c))
    }

    /// The OAuth-style space-separated form, e.g. `apikeys:manage audit:read`. Also the storage
    /// form, so one spelling is used everywhere.
    #[must_use]
    pub fn to_scope_string(self) -> String {
        self.iter()
            .map(Capability::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Parses the space-separated form; an empty string is the empty set.
    pub fn parse_scope(s: &str) -> Result<Self, UnknownCapability> {
        s.split_ascii_whitespace().map(str::parse).collect()
    }
}

impl FromIterator<Capability> for CapabilitySet {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        let mut set = Self::empty();
        for cap in iter {
            set.insert(cap);
        }
        set
    }
}

impl fmt::Debug for CapabilitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Capability::as_str))
            .finish()
    }
}

impl Serialize for CapabilitySet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Capability::as_str))
    }
}

impl<'de> Deserialize<'de> for CapabilitySet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<std::borrow::Cow<'de, str>>::deserialize(d)?;
        names
            .iter()
            .map(|n| n.parse::<Capability>())
            .collect::<Result<Self, _>>()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip() {
        for cap in Capability::ALL {
            assert_eq!(cap.as_str().parse::<Capability>().unwrap(), *cap);
        }
        assert!("tenants:root".parse::<Capability>().is_err());
        assert!("Tenants:Admin".parse::<Capability>().is_err());
    }

    #[test]
    fn json_form_is_a_list_of_names() {
        let set: CapabilitySet = [Capability::AuditRead, Capability::TenantsAdmin]
            .into_iter()
            .collect();
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["tenants:admin","audit:read"]"#);
        assert_eq!(serde_json::from_str::<CapabilitySet>(&json).unwrap(), set);
        assert!(serde_json::from_str::<CapabilitySet>(r#"["nope:nope"]"#).is_err());
    }

    fn any_set() -> impl Strategy<Value = CapabilitySet> {
        proptest::collection::vec(proptest::sample::select(Capability::ALL), 0..6)
            .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn scope_string_round_trips(set in any_set()) {
            prop_assert_eq!(CapabilitySet::parse_scope(&set.to_scope_string()).unwrap(), set);
        }

        #[test]
        fn intersection_is_a_subset_of_both(a in any_set(), b in any_set()) {
            let i = a.intersection(b);
            prop_assert!(i.is_subset_of(a));
            prop_assert!(i.is_subset_of(b));
            prop_assert!(a.difference(b).intersection(b).is_empty());
        }
    }
}
