//! The tenant's gateway configuration: which upstream each provider's calls go to, the secret
//! holding its API key, and what a mission call with drifted instructions gets. Stored as
//! append-only versions (`gateway_configs`), the newest in force.

use rampart_secrets::SecretPath;
use rampart_store::{DocumentKind, Tx};
use rampart_types::TenantId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Provider;
use super::directives::Directive;
use crate::error::ApiError;

/// One upstream provider endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// The provider's API root, up to and including its version segment:
    /// `https://api.openai.com/v1`, `https://api.anthropic.com/v1`. Calls append
    /// `/chat/completions` or `/messages`.
    #[schema(
        max_length = 2048,
        pattern = "^https?://[A-Za-z0-9.-]+(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?$",
        example = "https://api.openai.com/v1"
    )]
    pub base_url: String,
    /// The tenant secret holding the provider API key. The agent never sees it; the gateway
    /// reads it for each call and the Sentinel scrubs it from every answer.
    #[schema(
        max_length = 512,
        pattern = r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)(?:/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))*$",
        example = "llm/openai"
    )]
    pub api_key_secret: String,
}

/// What a mission call whose system instructions are not the pinned ones gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftAction {
    /// Refused with `409 instructions-drift` (the default).
    #[default]
    Refuse,
    /// Forwarded with the pinned instructions in place of whatever system text it carried.
    Reinject,
}

/// What one model costs, for the `spend_usd_micros` mission budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// The model; a name ending in `*` matches every model starting with the rest.
    #[schema(min_length = 1, max_length = 256, example = "gpt-4o*")]
    pub model: String,
    /// Millionths of a US dollar per million prompt tokens (`2500000` is $2.50).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::routes::secrets::de_integer")]
    pub input_usd_micros_per_mtok: i64,
    /// Millionths of a US dollar per million completion tokens.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::routes::secrets::de_integer")]
    pub output_usd_micros_per_mtok: i64,
}

impl Price {
    /// What a call that used `usage` cost, in millionths of a US dollar, rounded up.
    pub fn cost(&self, usage: super::Usage) -> i64 {
        let tokens = |n: Option<u64>| i128::from(n.unwrap_or(0));
        let micros_times_mtok = tokens(usage.input) * i128::from(self.input_usd_micros_per_mtok)
            + tokens(usage.output) * i128::from(self.output_usd_micros_per_mtok);
        i64::try_from((micros_times_mtok + 999_999) / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// Whether `pattern` names `model`: exactly, or by prefix when it ends in `*`.
pub fn model_matches(pattern: &str, model: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => pattern == model,
    }
}

/// A tenant's gateway configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where `POST /v1/chat/completions` goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai: Option<Upstream>,
    /// Where `POST /v1/messages` goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anthropic: Option<Upstream>,
    #[serde(default)]
    pub instructions: DriftAction,
    /// Checked on every call, in order; the first violated one decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 64)]
    pub directives: Vec<Directive>,
    /// Model prices, for spend budgets; the first entry matching a call's model applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 256)]
    pub prices: Vec<Price>,
}

fn check_upstream(field: &str, u: &Upstream) -> Result<(), ApiError> {
    // The webhook endpoints' URL rules (a host name or IPv4 address, an optional port, URL
    // characters only), without a query: calls append their path.
    if u.base_url.len() > 2048 || u.base_url.contains('?') {
        return Err(ApiError::validation(format!(
            "`{field}.base_url` is an http(s) URL of at most 2048 bytes without a query"
        )));
    }
    crate::webhooks::check_url(&u.base_url)
        .map_err(|e| ApiError::validation(format!("`{field}.base_url`: {e}")))?;
    u.api_key_secret
        .parse::<SecretPath>()
        .map_err(|e| ApiError::validation(format!("`{field}.api_key_secret`: {e}")))?;
    Ok(())
}

impl GatewayConfig {
    /// Checks every field a document can get wrong.
    pub fn check(&self) -> Result<(), ApiError> {
        if let Some(u) = &self.openai {
            check_upstream("openai", u)?;
        }
        if let Some(u) = &self.anthropic {
            check_upstream("anthropic", u)?;
        }
        super::directives::check_all(&self.directives)?;
        if self.prices.len() > 256 {
            return Err(ApiError::validation("`prices` holds at most 256 entries"));
        }
        let price_range = 0..=1_000_000_000_000;
        for (i, p) in self.prices.iter().enumerate() {
            if p.model.is_empty() || p.model.chars().count() > 256 {
                return Err(ApiError::validation(format!(
                    "`prices[{i}].model` must be 1 to 256 characters"
                )));
            }
            if !price_range.contains(&p.input_usd_micros_per_mtok)
                || !price_range.contains(&p.output_usd_micros_per_mtok)
            {
                return Err(ApiError::validation(format!(
                    "`prices[{i}]`: prices are between 0 and 1000000000000"
                )));
            }
        }
        Ok(())
    }

    /// The price of `model`, if one is configured.
    pub fn price(&self, model: &str) -> Option<&Price> {
        self.prices.iter().find(|p| model_matches(&p.model, model))
    }

    /// The upstream configured for `provider`.
    pub fn upstream(&self, provider: Provider) -> Result<&Upstream, ApiError> {
        match provider {
            Provider::OpenAi => self.openai.as_ref(),
            Provider::Anthropic => self.anthropic.as_ref(),
        }
        .ok_or_else(|| {
            ApiError::conflict(format!(
                "the tenant has no `{}` upstream configured; set one at `PUT /v1/gateway/config`",
                provider.as_str()
            ))
        })
    }
}

/// A stored version of the configuration.
#[derive(Debug)]
pub struct StoredConfig {
    /// 0: nothing stored yet (no upstream, so every call is refused).
    pub version: i64,
    pub config: GatewayConfig,
    pub created_by: Option<String>,
    pub created_at: Option<rampart_types::Timestamp>,
}

/// Version `version` (default: the one in force) of the tenant's configuration; `None` if that
/// version does not exist.
pub async fn stored_config(
    tx: &mut Tx,
    tenant: TenantId,
    version: Option<i64>,
) -> Result<Option<StoredConfig>, ApiError> {
    let Some(record) = tx
        .document_version(DocumentKind::GatewayConfig, tenant, version)
        .await?
    else {
        return Ok(version.is_none_or(|v| v == 0).then(|| StoredConfig {
            version: 0,
            config: GatewayConfig::default(),
            created_by: None,
            created_at: None,
        }));
    };
    // A stored document that no longer reads is a fault: refuse rather than guess.
    let config: GatewayConfig = serde_json::from_value(record.document).map_err(|e| {
        ApiError::new(
            crate::error::ErrorKind::Unavailable,
            "the gateway configuration cannot be read, so the call was refused",
        )
        .with_cause(e)
    })?;
    Ok(Some(StoredConfig {
        version: record.version,
        config,
        created_by: Some(record.created_by),
        created_at: Some(record.created_at),
    }))
}

/// The configuration in force.
pub async fn load_config(tx: &mut Tx, tenant: TenantId) -> Result<GatewayConfig, ApiError> {
    Ok(stored_config(tx, tenant, None)
        .await?
        .map(|s| s.config)
        .unwrap_or_default())
}
