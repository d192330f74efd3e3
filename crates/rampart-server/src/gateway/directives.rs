//! Reactive directives: behavioural envelopes checked on every call before it is forwarded.
//! They are data in the tenant's versioned gateway configuration, not code. A violated
//! directive either blocks the call or aborts the mission (every token, key and lease under it
//! revoked under one cascade id, with its audit records and webhook events).

use rampart_store::{GatewayUsage, MissionRecord, MissionStatus, Tx};
use rampart_types::{TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorKind};
use crate::extract::{AnyCapability, Authed, Principal, RequestContext, Write};
use crate::missions::{Revocable, cascade};
use crate::routes::missions::Budgets;
use crate::state::AppState;

/// What a violated directive does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Refuse the call (the default).
    #[default]
    Block,
    /// Refuse the call and abort its mission. Outside a mission, the call is blocked.
    Abort,
}

/// One directive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Directive {
    /// Only these models; a name ending in `*` matches every model starting with the rest.
    AllowedModels {
        #[schema(min_items = 1, max_items = 256)]
        models: Vec<String>,
        #[serde(default)]
        action: Action,
    },
    /// The mission's budgets (`calls`, `tokens`) from `POST /v1/missions`.
    Budget {
        #[serde(default)]
        action: Action,
    },
    /// At most this many calls a minute, per mission (per token subject outside missions).
    RateLimit {
        #[schema(minimum = 1, maximum = 1_000_000)]
        #[serde(deserialize_with = "crate::routes::secrets::de_integer")]
        per_minute: i64,
        #[serde(default)]
        action: Action,
    },
    /// Tool results whose prompt-injection score reaches this threshold.
    Injection {
        #[schema(minimum = 0.0, maximum = 1.0)]
        threshold: f32,
        #[serde(default)]
        action: Action,
    },
}

impl Directive {
    pub const fn name(&self) -> &'static str {
        match self {
            Directive::AllowedModels { .. } => "allowed_models",
            Directive::Budget { .. } => "budget",
            Directive::RateLimit { .. } => "rate_limit",
            Directive::Injection { .. } => "injection",
        }
    }

    const fn action(&self) -> Action {
        match self {
            Directive::AllowedModels { action, .. }
            | Directive::Budget { action }
            | Directive::RateLimit { action, .. }
            | Directive::Injection { action, .. } => *action,
        }
    }

    /// Checks the fields a document can get wrong.
    pub fn check(&self, i: usize) -> Result<(), ApiError> {
        let bad = |what: &str| ApiError::validation(format!("`directives[{i}]`: {what}"));
        match self {
            Directive::AllowedModels { models, .. } => {
                if models.is_empty() || models.len() > 256 {
                    return Err(bad("`models` holds 1 to 256 names"));
                }
            }
            Directive::RateLimit { per_minute, .. } => {
                if !(1..=1_000_000).contains(per_minute) {
                    return Err(bad("`per_minute` is between 1 and 1000000"));
                }
            }
            Directive::Injection { threshold, .. } => {
                if !(0.0..=1.0).contains(threshold) {
                    return Err(bad("`threshold` is between 0 and 1"));
                }
            }
            Directive::Budget { .. } => {}
        }
        Ok(())
    }
}

fn model_allowed(models: &[String], model: &str) -> bool {
    models.iter().any(|m| match m.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => m == model,
    })
}

/// A directive the call violates.
#[derive(Debug)]
pub struct Violation {
    pub directive: &'static str,
    pub action: Action,
    pub detail: String,
}

impl Violation {
    fn of(d: &Directive, detail: String) -> Self {
        Violation {
            directive: d.name(),
            action: d.action(),
            detail,
        }
    }

    pub fn error(&self) -> ApiError {
        let kind = if self.directive == "rate_limit" && self.action == Action::Block {
            ErrorKind::RateLimited
        } else {
            ErrorKind::DirectiveViolated
        };
        let aborted = if self.action == Action::Abort {
            "; the mission was aborted"
        } else {
            ""
        };
        ApiError::new(
            kind,
            format!("directive `{}`: {}{aborted}", self.directive, self.detail),
        )
    }
}

/// The key usage is counted under: the mission, or the token subject outside missions.
pub fn usage_key(p: &Principal) -> String {
    p.mission.map_or_else(
        || p.subject.clone(),
        rampart_identity::lineage::mission_principal,
    )
}

/// The Unix minute a rate-limit window starts at.
pub fn minute(now: Timestamp) -> i64 {
    now.unix_seconds().div_euclid(60)
}

/// What the call is about to do, for the checks.
pub struct Facts<'a> {
    pub model: &'a str,
    pub mission: Option<&'a MissionRecord>,
    /// The highest prompt-injection score among the call's tool results.
    pub injection: f32,
    pub now: Timestamp,
}

/// The first directive `facts` violate, in the configuration's order.
pub async fn first_violation(
    tx: &mut Tx,
    p: &Principal,
    directives: &[Directive],
    facts: &Facts<'_>,
) -> Result<Option<Violation>, ApiError> {
    let mut usage: Option<GatewayUsage> = None;
    for d in directives {
        let violated = match d {
            Directive::AllowedModels { models, .. } => (!model_allowed(models, facts.model))
                .then(|| format!("model `{}` is not allowed", facts.model)),
            Directive::Injection { threshold, .. } => (facts.injection >= *threshold).then(|| {
                format!(
                    "a tool result scored {:.2} for prompt injection (threshold {threshold:.2})",
                    facts.injection
                )
            }),
            Directive::Budget { .. } => {
                let Some(m) = facts.mission else { continue };
                let budgets: Budgets = serde_json::from_value(m.budgets.clone())
                    .map_err(|e| ApiError::internal(format!("stored mission budgets: {e}")))?;
                let u = cached_usage(tx, p, &mut usage).await?;
                match (budgets.calls, budgets.tokens) {
                    (Some(max), _) if u.calls >= max => {
                        Some(format!("the mission used its {max} calls"))
                    }
                    (_, Some(max)) if u.tokens >= max => {
                        Some(format!("the mission used its {max} tokens"))
                    }
                    _ => None,
                }
            }
            Directive::RateLimit { per_minute, .. } => {
                let u = cached_usage(tx, p, &mut usage).await?;
                (u.window_start == minute(facts.now) && u.window_calls >= *per_minute)
                    .then(|| format!("more than {per_minute} calls a minute"))
            }
        };
        if let Some(detail) = violated {
            return Ok(Some(Violation::of(d, detail)));
        }
    }
    Ok(None)
}

async fn cached_usage(
    tx: &mut Tx,
    p: &Principal,
    usage: &mut Option<GatewayUsage>,
) -> Result<GatewayUsage, ApiError> {
    if let Some(u) = usage {
        return Ok(*u);
    }
    let u = tx.gateway_usage(p.tenant, &usage_key(p)).await?;
    *usage = Some(u);
    Ok(u)
}

/// Aborts the caller's mission for `v`: the same cascade as `POST /v1/missions/{id}/abort`,
/// recorded as done by the directive.
pub async fn abort_mission(
    state: &AppState,
    ctx: &RequestContext,
    p: &Principal,
    tenant: TenantId,
    v: &Violation,
) -> Result<(), ApiError> {
    let Some(mission) = p.mission else {
        return Ok(());
    };
    let by = Principal {
        subject: format!("directive:{}", v.directive),
        ..p.clone()
    };
    let tx = super::write_tx(state, tenant, &by.subject).await?;
    let auth = Authed::<Write, AnyCapability>::from_parts(by, tx, *ctx);
    cascade(
        state,
        auth,
        tenant,
        &Revocable::Mission(mission),
        MissionStatus::Aborted,
        &format!("directive `{}` violated: {}", v.directive, v.detail),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_patterns_match_exactly_or_by_prefix() {
        let models = vec!["gpt-4o".to_owned(), "claude-*".to_owned()];
        assert!(model_allowed(&models, "gpt-4o"));
        assert!(!model_allowed(&models, "gpt-4o-mini"));
        assert!(model_allowed(&models, "claude-sonnet-9"));
        assert!(!model_allowed(&models, "o1"));
    }

    #[test]
    fn directives_read_as_documented() {
        let d: Vec<Directive> = serde_json::from_value(serde_json::json!([
            { "type": "allowed_models", "models": ["a"] },
            { "type": "rate_limit", "per_minute": 5.0, "action": "abort" },
            { "type": "budget" },
            { "type": "injection", "threshold": 0.8 },
        ]))
        .unwrap();
        assert_eq!(d[1].action(), Action::Abort);
        assert_eq!(d[0].action(), Action::Block);
        assert!(matches!(d[1], Directive::RateLimit { per_minute: 5, .. }));
    }
}
