//! Reactive directives: behavioural envelopes checked on every call before it is forwarded.
//! They are data in the tenant's versioned gateway configuration, not code. A violated
//! directive either blocks the call or aborts the mission (every token, key and lease under it
//! revoked under one cascade id, with its audit records and webhook events).

use rampart_store::{GatewayUsage, MissionRecord, MissionStatus, ProfileKind, Tx};
use rampart_types::{TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::config::{Price, model_matches};
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
    /// The mission's budgets (`calls`, `tokens`, `spend_usd_micros`) from `POST /v1/missions`.
    /// A spend budget needs a price for the call's model in `prices`; a call to a model
    /// without one is refused. (A mission's duration is its deadline, checked on every call.)
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
    /// Behaviour unlike the caller's profile — the models and tools it used in forwarded calls
    /// and its usual calls per active minute — once `learn_calls` calls have built it.
    Drift {
        /// A model the caller never used.
        #[serde(default = "yes")]
        new_model: bool,
        /// A tool the caller never offered the model.
        #[serde(default = "yes")]
        new_tool: bool,
        /// A minute with this many times the caller's usual calls per active minute (at least
        /// one a minute); absent: bursts are not checked.
        #[schema(minimum = 1.0, maximum = 1000.0)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        burst_factor: Option<f64>,
        /// Forwarded calls before the profile is checked.
        #[schema(minimum = 1, maximum = 1_000_000_000)]
        #[serde(
            default = "learn_calls",
            deserialize_with = "crate::routes::secrets::de_integer"
        )]
        learn_calls: i64,
        #[serde(default)]
        action: Action,
    },
}

const fn yes() -> bool {
    true
}

const fn learn_calls() -> i64 {
    20
}

impl Directive {
    pub const fn name(&self) -> &'static str {
        match self {
            Directive::AllowedModels { .. } => "allowed_models",
            Directive::Budget { .. } => "budget",
            Directive::RateLimit { .. } => "rate_limit",
            Directive::Injection { .. } => "injection",
            Directive::Drift { .. } => "drift",
        }
    }

    const fn action(&self) -> Action {
        match self {
            Directive::AllowedModels { action, .. }
            | Directive::Budget { action }
            | Directive::RateLimit { action, .. }
            | Directive::Injection { action, .. }
            | Directive::Drift { action, .. } => *action,
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
            Directive::Drift {
                burst_factor,
                learn_calls,
                ..
            } => {
                if burst_factor.is_some_and(|f| !(1.0..=1000.0).contains(&f)) {
                    return Err(bad("`burst_factor` is between 1 and 1000"));
                }
                if !(1..=1_000_000_000).contains(learn_calls) {
                    return Err(bad("`learn_calls` is between 1 and 1000000000"));
                }
            }
            Directive::Budget { .. } => {}
        }
        Ok(())
    }
}

/// The most directives one list holds (the tenant's, or a mission's).
pub const MAX_DIRECTIVES: usize = 64;

/// Checks a list of directives.
pub fn check_all(directives: &[Directive]) -> Result<(), ApiError> {
    if directives.len() > MAX_DIRECTIVES {
        return Err(ApiError::validation(format!(
            "`directives` holds at most {MAX_DIRECTIVES} directives"
        )));
    }
    for (i, d) in directives.iter().enumerate() {
        d.check(i)?;
    }
    Ok(())
}

fn model_allowed(models: &[String], model: &str) -> bool {
    models.iter().any(|m| model_matches(m, model))
}

/// A directive the call violates.
#[derive(Debug)]
pub struct Violation {
    pub directive: &'static str,
    pub action: Action,
    pub detail: String,
    /// One of the mission's own directives, not the tenant's.
    pub of_mission: bool,
}

impl Violation {
    /// The directive, as people read it: ``directive `budget` `` or
    /// ``the mission's directive `budget` ``.
    fn named(&self) -> String {
        let whose = if self.of_mission {
            "the mission's "
        } else {
            ""
        };
        format!("{whose}directive `{}`", self.directive)
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
        ApiError::new(kind, format!("{}: {}{aborted}", self.named(), self.detail))
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
    /// The tools the call offers the model.
    pub tools: &'a [String],
    /// The configured price of `model`.
    pub price: Option<&'a Price>,
    pub mission: Option<&'a MissionRecord>,
    /// The highest prompt-injection score among the call's tool results.
    pub injection: f32,
    pub now: Timestamp,
}

/// The first directive `facts` violate, in order: the tenant's, then the mission's.
pub async fn first_violation(
    tx: &mut Tx,
    p: &Principal,
    directives: &[Directive],
    facts: &Facts<'_>,
) -> Result<Option<Violation>, ApiError> {
    let of_mission: Vec<Directive> = match facts.mission {
        Some(m) => serde_json::from_value(m.directives.clone())
            .map_err(|e| ApiError::internal(format!("stored mission directives: {e}")))?,
        None => Vec::new(),
    };
    let mut usage = UsageRows::default();
    for (i, d) in directives.iter().chain(&of_mission).enumerate() {
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
                over_budget(&budgets, usage.of_key(tx, p).await?, facts)
            }
            Directive::RateLimit { per_minute, .. } => {
                let u = usage.of_key(tx, p).await?;
                (calls_this_minute(&u, facts.now) >= *per_minute)
                    .then(|| format!("more than {per_minute} calls a minute"))
            }
            Directive::Drift {
                new_model,
                new_tool,
                burst_factor,
                learn_calls,
                ..
            } => {
                let u = usage.of_subject(tx, p).await?;
                if u.profile_calls < *learn_calls {
                    continue;
                }
                drifted(tx, p, facts, &u, *new_model, *new_tool, *burst_factor).await?
            }
        };
        if let Some(detail) = violated {
            return Ok(Some(Violation {
                directive: d.name(),
                action: d.action(),
                detail,
                of_mission: i >= directives.len(),
            }));
        }
    }
    Ok(None)
}

fn calls_this_minute(u: &GatewayUsage, now: Timestamp) -> i64 {
    if u.window_start == minute(now) {
        u.window_calls
    } else {
        0
    }
}

fn over_budget(budgets: &Budgets, u: GatewayUsage, facts: &Facts<'_>) -> Option<String> {
    if let Some(max) = budgets.calls
        && u.calls >= max
    {
        return Some(format!("the mission used its {max} calls"));
    }
    if let Some(max) = budgets.tokens
        && u.tokens >= max
    {
        return Some(format!("the mission used its {max} tokens"));
    }
    let max = budgets.spend_usd_micros?;
    if facts.price.is_none() {
        return Some(format!(
            "the mission has a spend budget and no price is configured for model `{}`",
            facts.model
        ));
    }
    (u.spend_usd_micros >= max).then(|| format!("the mission spent its {max} micro-USD"))
}

/// How the call departs from the caller's profile, if it does.
async fn drifted(
    tx: &mut Tx,
    p: &Principal,
    facts: &Facts<'_>,
    u: &GatewayUsage,
    new_model: bool,
    new_tool: bool,
    burst_factor: Option<f64>,
) -> Result<Option<String>, ApiError> {
    if new_model {
        let model = [facts.model.to_owned()];
        let known = tx
            .gateway_profile_known(p.tenant, &p.subject, ProfileKind::Model, &model)
            .await?;
        if known.is_empty() {
            return Ok(Some(format!(
                "model `{}` is new for `{}`",
                facts.model, p.subject
            )));
        }
    }
    if new_tool {
        let known = tx
            .gateway_profile_known(p.tenant, &p.subject, ProfileKind::Tool, facts.tools)
            .await?;
        if let Some(tool) = facts.tools.iter().find(|t| !known.contains(t)) {
            return Ok(Some(format!("tool `{tool}` is new for `{}`", p.subject)));
        }
    }
    if let Some(factor) = burst_factor {
        // The usual rate leaves out the current minute, whose calls are what is measured.
        let now = calls_this_minute(u, facts.now);
        let minutes = u.active_minutes - i64::from(now > 0);
        #[expect(clippy::cast_precision_loss, reason = "rates, not counts")]
        let usual = (u.profile_calls - now).max(0) as f64 / minutes.max(1) as f64;
        let limit = factor * usual.max(1.0);
        #[expect(clippy::cast_precision_loss, reason = "rates, not counts")]
        let this_call = (now + 1) as f64;
        if this_call > limit {
            return Ok(Some(format!(
                "{} calls this minute, over {factor} times the usual {usual:.1} a minute of `{}`",
                now + 1,
                p.subject
            )));
        }
    }
    Ok(None)
}

/// The usage rows a call's checks read, each at most once.
#[derive(Default)]
struct UsageRows {
    key: Option<GatewayUsage>,
    subject: Option<GatewayUsage>,
}

impl UsageRows {
    /// Where budgets and rate limits count: the mission, or the subject outside missions.
    async fn of_key(&mut self, tx: &mut Tx, p: &Principal) -> Result<GatewayUsage, ApiError> {
        if p.mission.is_none() {
            return self.of_subject(tx, p).await;
        }
        if let Some(u) = self.key {
            return Ok(u);
        }
        let u = tx.gateway_usage(p.tenant, &usage_key(p)).await?;
        self.key = Some(u);
        Ok(u)
    }

    /// The caller's own: its profile's calls and rate, across missions.
    async fn of_subject(&mut self, tx: &mut Tx, p: &Principal) -> Result<GatewayUsage, ApiError> {
        if let Some(u) = self.subject {
            return Ok(u);
        }
        let u = tx.gateway_usage(p.tenant, &p.subject).await?;
        self.subject = Some(u);
        Ok(u)
    }
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
        &format!("{} violated: {}", v.named(), v.detail),
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
            { "type": "drift", "burst_factor": 5 },
        ]))
        .unwrap();
        assert!(matches!(
            d[4],
            Directive::Drift {
                new_model: true,
                new_tool: true,
                learn_calls: 20,
                ..
            }
        ));
        assert_eq!(d[1].action(), Action::Abort);
        assert_eq!(d[0].action(), Action::Block);
        assert!(matches!(d[1], Directive::RateLimit { per_minute: 5, .. }));
    }
}
