//! What to do with each finding: a mode and a score threshold per class × channel.

use serde::{Deserialize, Serialize};

use crate::{Channel, Class};

/// How a finding is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = SentinelMode))]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Replaced by a keyed, non-reversible token: the same value gets the same token within a
    /// tenant, so a model can still tell that two mentions are the same person.
    Strict,
    /// Replaced by a token whose value is sealed in the tenant's vault; revealing it needs a
    /// capability and is audited.
    Reversible,
    /// Passed through, reported with its class and score.
    Flag,
}

impl Mode {
    /// The wire name, as in policies and audit records.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Strict => "strict",
            Mode::Reversible => "reversible",
            Mode::Flag => "flag",
        }
    }
}

/// One line of a policy. A missing class or channel matches all of them; the most specific
/// matching line wins (class and channel, then class, then channel, then the default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<Class>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    pub mode: Mode,
    /// Findings scored below this are ignored; the default's threshold when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1.0))]
    pub threshold: Option<f32>,
}

/// The mode and threshold of every class × channel no rule names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = PolicyDefault))]
#[serde(deny_unknown_fields)]
pub struct Default {
    pub mode: Mode,
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1.0))]
    pub threshold: f32,
}

/// A tenant's Sentinel policy, as stored and as sent over the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = SentinelPolicy))]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub default: Default,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 256))]
    pub rules: Vec<PolicyRule>,
}

impl std::default::Default for Policy {
    /// Everything strict at a threshold of 0.5: nothing leaves that the detector is at least
    /// even odds on, and nothing needs a vault.
    fn default() -> Self {
        Policy {
            default: Default {
                mode: Mode::Strict,
                threshold: 0.5,
            },
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("threshold `{0}` is not between 0 and 1")]
    Threshold(String),
    #[error("two rules name the same class `{class}` and channel `{channel}`")]
    Duplicate { class: String, channel: String },
    #[error("a policy holds at most 256 rules")]
    TooManyRules,
}

/// A policy checked and compiled to a class × channel table.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    table: [[(Mode, f32); 4]; 13],
}

impl Policy {
    pub fn compile(&self) -> Result<CompiledPolicy, PolicyError> {
        let check = |t: f32| {
            if (0.0..=1.0).contains(&t) {
                Ok(t)
            } else {
                Err(PolicyError::Threshold(t.to_string()))
            }
        };
        if self.rules.len() > 256 {
            return Err(PolicyError::TooManyRules);
        }
        let base = (self.default.mode, check(self.default.threshold)?);
        let mut table = [[base; 4]; 13];
        let mut seen = std::collections::HashSet::new();
        for r in &self.rules {
            if let Some(t) = r.threshold {
                check(t)?;
            }
            if !seen.insert((r.class, r.channel)) {
                return Err(PolicyError::Duplicate {
                    class: r.class.map_or("*", Class::as_str).to_owned(),
                    channel: r.channel.map_or("*", Channel::as_str).to_owned(),
                });
            }
        }
        // Least specific first, so more specific lines overwrite.
        let specificity =
            |r: &PolicyRule| u8::from(r.class.is_some()) * 2 + u8::from(r.channel.is_some());
        let mut rules: Vec<&PolicyRule> = self.rules.iter().collect();
        rules.sort_by_key(|r| specificity(r));
        for r in rules {
            for class in Class::ALL {
                if r.class.is_some_and(|c| c != class) {
                    continue;
                }
                for channel in Channel::ALL {
                    if r.channel.is_some_and(|c| c != channel) {
                        continue;
                    }
                    table[class.index()][channel as usize] =
                        (r.mode, r.threshold.unwrap_or(self.default.threshold));
                }
            }
        }
        Ok(CompiledPolicy { table })
    }
}

impl CompiledPolicy {
    pub fn decide(&self, class: Class, channel: Channel) -> (Mode, f32) {
        self.table[class.index()][channel as usize]
    }

    /// Whether any class on `channel` is reversible (the caller then needs a vault).
    pub fn needs_vault(&self, channel: Channel) -> bool {
        self.table
            .iter()
            .any(|row| row[channel as usize].0 == Mode::Reversible)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn mode_names_are_the_wire_names() {
        for m in [Mode::Strict, Mode::Reversible, Mode::Flag] {
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let p: Policy = serde_json::from_str(
            r#"{"default":{"mode":"strict","threshold":0.5},
                "rules":[{"class":"EMAIL","mode":"flag"},
                         {"class":"EMAIL","channel":"prompt","mode":"reversible","threshold":0.9},
                         {"channel":"log","mode":"strict","threshold":0.2}]}"#,
        )
        .unwrap();
        let c = p.compile().unwrap();
        assert_eq!(
            c.decide(Class::Email, Channel::Prompt),
            (Mode::Reversible, 0.9)
        );
        assert_eq!(c.decide(Class::Email, Channel::Log), (Mode::Flag, 0.5));
        assert_eq!(c.decide(Class::Person, Channel::Log), (Mode::Strict, 0.2));
        assert_eq!(
            c.decide(Class::Person, Channel::Prompt),
            (Mode::Strict, 0.5)
        );
        assert!(c.needs_vault(Channel::Prompt));
        assert!(!c.needs_vault(Channel::Log));
    }

    #[test]
    fn bad_policies_are_refused() {
        let bad = |json: &str| {
            serde_json::from_str::<Policy>(json)
                .map_err(|e| e.to_string())
                .and_then(|p| p.compile().map(|_| ()).map_err(|e| e.to_string()))
        };
        assert!(
            bad(r#"{"default":{"mode":"strict","threshold":1.5}}"#)
                .unwrap_err()
                .contains("threshold")
        );
        assert!(bad(r#"{"default":{"mode":"erase","threshold":0.5}}"#).is_err());
        assert!(bad(r#"{"default":{"mode":"strict","threshold":0.5},"rules":[{"class":"NAME","mode":"flag"}]}"#).is_err());
        assert!(bad(r#"{"default":{"mode":"strict","threshold":0.5},"rules":[{"class":"EMAIL","mode":"flag"},{"class":"EMAIL","mode":"strict"}]}"#).unwrap_err().contains("same class"));
        assert!(bad(r#"{"default":{"mode":"strict","threshold":0.5},"extra":1}"#).is_err());
    }
}
