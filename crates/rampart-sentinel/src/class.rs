//! The classes the Sentinel detects and the channels a policy distinguishes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What kind of sensitive value a span holds. The names are the wire names everywhere: API
/// bodies, CLI output, policies and audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = SentinelClass))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Class {
    Person,
    Email,
    Phone,
    /// Street addresses.
    Address,
    /// Government identifiers: SSN, passport, driver licence and national ids.
    GovId,
    PaymentCard,
    /// IBANs and bank account numbers.
    BankAccount,
    IpAddress,
    DateOfBirth,
    /// Conditions, medications and diagnosis codes.
    Health,
    /// Fingerprint, face, retina, iris and voiceprint hints.
    Biometric,
    /// Passwords in context, provider API keys and tokens, private keys, JWTs, connection strings.
    Credential,
    /// Indicators that a person is a child.
    Minor,
}

impl Class {
    pub const ALL: [Class; 13] = [
        Class::Person,
        Class::Email,
        Class::Phone,
        Class::Address,
        Class::GovId,
        Class::PaymentCard,
        Class::BankAccount,
        Class::IpAddress,
        Class::DateOfBirth,
        Class::Health,
        Class::Biometric,
        Class::Credential,
        Class::Minor,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Class::Person => "PERSON",
            Class::Email => "EMAIL",
            Class::Phone => "PHONE",
            Class::Address => "ADDRESS",
            Class::GovId => "GOV_ID",
            Class::PaymentCard => "PAYMENT_CARD",
            Class::BankAccount => "BANK_ACCOUNT",
            Class::IpAddress => "IP_ADDRESS",
            Class::DateOfBirth => "DATE_OF_BIRTH",
            Class::Health => "HEALTH",
            Class::Biometric => "BIOMETRIC",
            Class::Credential => "CREDENTIAL",
            Class::Minor => "MINOR",
        }
    }

    /// A small dense index, for per-class tables.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a class or channel name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{name}`")]
pub struct UnknownName {
    kind: &'static str,
    name: String,
}

impl FromStr for Class {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Class::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "class",
                name: s.chars().take(64).collect(),
            })
    }
}

/// Where text is going; a policy can treat the same class differently per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = SentinelChannel))]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Text an agent sends to a model.
    Prompt,
    /// What a tool returned, on its way back to the model.
    ToolOutput,
    /// What a model answered, on its way back to the agent.
    Response,
    /// A log line leaving Rampart.
    Log,
}

impl Channel {
    pub const ALL: [Channel; 4] = [
        Channel::Prompt,
        Channel::ToolOutput,
        Channel::Response,
        Channel::Log,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Prompt => "prompt",
            Channel::ToolOutput => "tool_output",
            Channel::Response => "response",
            Channel::Log => "log",
        }
    }
}

impl FromStr for Channel {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "channel",
                name: s.chars().take(64).collect(),
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_serde() {
        for class in Class::ALL {
            assert_eq!(class.as_str().parse::<Class>().unwrap(), class);
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(json, format!("\"{}\"", class.as_str()));
        }
        for channel in Channel::ALL {
            assert_eq!(channel.as_str().parse::<Channel>().unwrap(), channel);
        }
        assert!("EMAILS".parse::<Class>().is_err());
    }
}
