//! The credential flows behind the token and key endpoints: creating API keys, exchanging them
//! for tokens, rotating refresh tokens (with reuse detection), revoking, and minting access
//! tokens. Each flow is one transaction, and its audit records are part of it.

use rampart_crypto::HmacKey;
use rampart_identity::jwt::sign_access_token;
use rampart_identity::{
    AccessClaims, Actor, ApiKey, ApiKeyId, RefreshDecision, RefreshState, RefreshToken,
    decide_refresh,
};
use rampart_store::{ApiKeyRecord, FamilyRecord, Lookup, RefreshRecord, Scope, StoreError, Tx};
use rampart_types::{
    AgentId, AuditAction, CapabilitySet, FamilyId, MissionId, Outcome, TenantId, Timestamp, TokenId,
};
use serde_json::json;

use crate::error::{ApiError, ErrorKind};
use crate::extract::{RequestContext, verify_bearer};
use crate::state::AppState;

/// Records an audit event in `tx`, refusing the request if it cannot.
pub(crate) async fn audit(
    state: &AppState,
    tx: &mut Tx,
    event: rampart_types::AuditEvent,
) -> Result<(), ApiError> {
    state
        .audit
        .record(tx, &event)
        .await
        .map_err(ApiError::audit_unavailable)
}

/// What a new API key is.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub tenant: TenantId,
    pub name: String,
    pub capabilities: CapabilitySet,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub created_by: String,
    pub rotated_from: Option<ApiKeyId>,
    /// The agent the key belongs to.
    pub agent: Option<AgentId>,
}

/// Generates and stores a new API key (its hash only). The caller audits and commits.
pub async fn create_api_key(
    tx: &mut Tx,
    pepper: &HmacKey,
    new: NewApiKey,
) -> Result<(ApiKey, ApiKeyRecord), ApiError> {
    // A fresh 12-character id collides with negligible probability; retry a few times anyway.
    for _ in 0..3 {
        let key = ApiKey::generate().map_err(ApiError::internal)?;
        let record = ApiKeyRecord {
            id: key.id().clone(),
            tenant_id: new.tenant,
            name: new.name.clone(),
            secret_hash: key.hash(pepper).to_vec(),
            capabilities: new.capabilities,
            created_by: new.created_by.clone(),
            created_at: new.created_at,
            expires_at: new.expires_at,
            revoked_at: None,
            last_used_at: None,
            rotated_from: new.rotated_from.clone(),
            rotated_to: None,
            agent_id: new.agent,
        };
        match tx.insert_api_key(&record).await {
            Ok(()) => return Ok((key, record)),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal("api key id collided three times"))
}

/// A successful grant.
#[derive(Debug)]
pub struct TokenGrant {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub scope: CapabilitySet,
}

/// The capabilities a grant asks for: all of the credential's when `scope` is absent, else the
/// named ones, which must be among the credential's.
pub(crate) fn requested_scope(
    scope: Option<&str>,
    held: CapabilitySet,
) -> Result<CapabilitySet, ApiError> {
    let Some(scope) = scope else {
        return Ok(held);
    };
    let asked = CapabilitySet::parse_scope(scope)
        .map_err(|e| ApiError::new(ErrorKind::InvalidScope, e.to_string()))?;
    if asked.is_empty() {
        return Err(ApiError::new(
            ErrorKind::InvalidScope,
            "the scope names no capability",
        ));
    }
    let extra = asked.difference(held);
    if !extra.is_empty() {
        return Err(ApiError::new(
            ErrorKind::InvalidScope,
            format!(
                "the scope asks for capabilities the credential does not hold: `{}`",
                extra.to_scope_string()
            ),
        ));
    }
    Ok(asked)
}

/// What an access token is minted for.
pub(crate) struct Mint<'a> {
    pub tenant: TenantId,
    pub subject: &'a str,
    pub caps: CapabilitySet,
    pub family: FamilyId,
    /// The token expires after the configured lifetime or at this time, whichever comes first.
    pub not_after: Timestamp,
    pub mission: Option<MissionId>,
    pub act: Option<Actor>,
    /// The tenant's revocation epoch, read in the transaction that mints.
    pub epoch: u64,
}

impl<'a> Mint<'a> {
    /// A token of a credential grant (no mission, no delegation), to be signed by
    /// [`Mint::sign`].
    fn grant(
        tenant: TenantId,
        subject: &'a str,
        caps: CapabilitySet,
        family: FamilyId,
        not_after: Timestamp,
    ) -> Self {
        Self {
            tenant,
            subject,
            caps,
            family,
            not_after,
            mission: None,
            act: None,
            epoch: 0,
        }
    }

    /// Signs it at the tenant's current revocation epoch, read in `tx`.
    async fn sign(
        mut self,
        state: &AppState,
        tx: &mut Tx,
        now: Timestamp,
    ) -> Result<(String, u64), ApiError> {
        self.epoch = tx.revocation_epoch(self.tenant).await?;
        mint_access(state, self, now)
    }
}

/// Signs an access token.
pub(crate) fn mint_access(
    state: &AppState,
    mint: Mint<'_>,
    now: Timestamp,
) -> Result<(String, u64), ApiError> {
    let keys = state
        .keys
        .current()
        .ok_or_else(|| ApiError::new(ErrorKind::Unavailable, "signing keys are not loaded yet"))?;
    let iat = now.unix_seconds();
    let exp = now
        .saturating_add(state.config.access_token_ttl)
        .min(mint.not_after)
        .unix_seconds();
    if exp <= iat {
        return Err(ApiError::new(
            ErrorKind::InvalidGrant,
            "the credential behind this grant expires within a second",
        ));
    }
    let claims = AccessClaims {
        iss: state.config.issuer.clone(),
        sub: mint.subject.to_owned(),
        tenant_id: mint.tenant,
        caps: mint.caps,
        jti: TokenId::random(),
        iat,
        nbf: iat,
        exp,
        fam: mint.family,
        mission: mint.mission,
        act: mint.act,
        epoch: mint.epoch,
    };
    let token = sign_access_token(&keys.signer, &claims).map_err(ApiError::internal)?;
    Ok((token, u64::try_from(exp - iat).unwrap_or(0)))
}

/// Generates and stores a refresh token of `family`; it expires after `refresh_token_ttl` or with
/// the family, whichever comes first.
async fn new_refresh_token(
    state: &AppState,
    tx: &mut Tx,
    family: &FamilyRecord,
    now: Timestamp,
) -> Result<RefreshToken, ApiError> {
    let token = RefreshToken::generate().map_err(ApiError::internal)?;
    tx.insert_refresh(&RefreshRecord {
        id: token.id().clone(),
        tenant_id: family.tenant_id,
        family_id: family.id,
        secret_hash: token.hash(&state.pepper).to_vec(),
        created_at: now,
        expires_at: now
            .saturating_add(state.config.refresh_token_ttl)
            .min(family.expires_at),
        used_at: None,
        successor_id: None,
        successor_sealed: None,
    })
    .await?;
    Ok(token)
}

/// `grant_type=api_key`: an API key for an access token and the first refresh token of a new
/// family.
pub async fn grant_api_key(
    state: &AppState,
    ctx: &RequestContext,
    presented: &str,
    scope: Option<&str>,
) -> Result<TokenGrant, ApiError> {
    let invalid = || ApiError::new(ErrorKind::InvalidClient, "the API key is not valid");
    let key = ApiKey::parse(presented.trim()).ok_or_else(invalid)?;
    let now = state.clock.now();
    let mut tx = state
        .store
        .begin(Scope::Lookup(Lookup::ApiKey(key.id().clone())))
        .await?;
    let Some(record) = tx.lookup_api_key(key.id()).await? else {
        tracing::info!(key_id = %key.id(), "unknown api key presented");
        return Err(invalid());
    };
    let tenant = record.tenant_id;
    // Tokens of an agent's key speak for the agent; the key stays on record in the family.
    let subject = record
        .agent_id
        .map_or_else(|| key.id().subject(), crate::agents::agent_subject);
    tx.set_scope(Scope::tenant(tenant, &subject)).await?;
    let resource = format!("apikey:{}", record.id);
    let denial = if !key.matches(&state.pepper, &record.secret_hash) {
        Some(("wrong secret", "the API key is not valid"))
    } else if record.revoked_at.is_some() {
        Some(("revoked", "the API key has been revoked"))
    } else if now >= record.expires_at {
        Some(("expired", "the API key has expired"))
    } else {
        None
    };
    if let Some((reason, detail)) = denial {
        let event = ctx.event(
            tenant,
            &subject,
            AuditAction::ApiKeyUse,
            resource,
            Outcome::Denied,
            json!({ "reason": reason }),
            now,
        );
        audit(state, &mut tx, event).await?;
        tx.commit().await?;
        return Err(ApiError::new(ErrorKind::InvalidClient, detail));
    }
    let caps = requested_scope(scope, record.capabilities)?;
    tx.touch_api_key(tenant, &record.id, now).await?;
    let family = FamilyRecord {
        id: FamilyId::random(),
        tenant_id: tenant,
        subject: subject.clone(),
        api_key_id: record.id.clone(),
        capabilities: caps,
        created_at: now,
        expires_at: now
            .saturating_add(state.config.refresh_family_max_age)
            .min(record.expires_at),
        revoked_at: None,
        revoked_reason: None,
    };
    tx.insert_family(&family).await?;
    let refresh = new_refresh_token(state, &mut tx, &family, now).await?;
    let used = ctx.event(
        tenant,
        &subject,
        AuditAction::ApiKeyUse,
        resource,
        Outcome::Success,
        json!({ "grant_type": "api_key" }),
        now,
    );
    audit(state, &mut tx, used).await?;
    let issued = ctx.event(
        tenant,
        &subject,
        AuditAction::TokenIssue,
        format!("token_family:{}", family.id),
        Outcome::Success,
        json!({ "scope": caps, "api_key_id": record.id }),
        now,
    );
    audit(state, &mut tx, issued).await?;
    let (access_token, expires_in) =
        Mint::grant(tenant, &subject, caps, family.id, record.expires_at)
            .sign(state, &mut tx, now)
            .await?;
    tx.commit().await?;
    Ok(TokenGrant {
        access_token,
        expires_in,
        refresh_token: refresh.expose().to_owned(),
        scope: caps,
    })
}

/// `grant_type=refresh_token`: rotates a refresh token within its family.
pub async fn grant_refresh(
    state: &AppState,
    ctx: &RequestContext,
    presented: &str,
    scope: Option<&str>,
) -> Result<TokenGrant, ApiError> {
    let invalid = |detail: &str| ApiError::new(ErrorKind::InvalidGrant, detail.to_owned());
    let token = RefreshToken::parse(presented.trim())
        .ok_or_else(|| invalid("the refresh token is not valid"))?;
    let now = state.clock.now();
    let mut tx = state
        .store
        .begin(Scope::Lookup(Lookup::RefreshToken(token.id().clone())))
        .await?;
    let Some(found) = tx.lookup_refresh(token.id()).await? else {
        return Err(invalid("the refresh token is not valid"));
    };
    let tenant = found.tenant_id;
    tx.set_scope(Scope::tenant(tenant, "refresh")).await?;
    // Re-read under a row lock: concurrent refreshes of one token are decided one at a time.
    let Some(row) = tx.get_refresh_for_update(tenant, token.id()).await? else {
        return Err(invalid("the refresh token is not valid"));
    };
    // Only the holder of the secret can trigger anything, reuse revocation included.
    if !token.matches(&state.pepper, &row.secret_hash) {
        return Err(invalid("the refresh token is not valid"));
    }
    let Some(family) = tx.get_family(tenant, row.family_id).await? else {
        return Err(ApiError::internal("refresh token without a family"));
    };
    let subject = family.subject.clone();
    let source = tx.get_api_key(tenant, &family.api_key_id).await?;
    let source_usable = source.as_ref().is_some_and(|k| k.is_usable(now));
    let successor_used = match &row.successor_id {
        // A successor that cannot be found counts as used: refuse rather than guess.
        Some(s) => Some(tx.refresh_used(tenant, s).await?.unwrap_or(true)),
        None => None,
    };
    let decision = decide_refresh(
        &RefreshState {
            expires_at: row.expires_at,
            used_at: row.used_at,
            successor_used,
            family_revoked: family.revoked_at.is_some(),
            family_expires_at: family.expires_at,
            source_revoked: !source_usable,
        },
        now,
        state.config.refresh_reuse_grace,
    );
    let family_resource = format!("token_family:{}", family.id);
    let not_after = source.as_ref().map_or(now, |k| k.expires_at);
    let (next, action, mut detail) = match decision {
        RefreshDecision::Rotate => {
            let next = new_refresh_token(state, &mut tx, &family, now).await?;
            let sealed = token.seal_successor(&next).map_err(ApiError::internal)?;
            if !tx
                .mark_refresh_used(tenant, token.id(), now, next.id(), &sealed)
                .await?
            {
                return Err(invalid("the refresh token was used concurrently; retry"));
            }
            (next, AuditAction::TokenRefresh, json!({}))
        }
        RefreshDecision::ReturnSuccessor => {
            let (Some(next_id), Some(sealed)) = (&row.successor_id, &row.successor_sealed) else {
                return Err(ApiError::internal(
                    "used refresh token without a sealed successor",
                ));
            };
            let next = token
                .open_successor(next_id, sealed)
                .map_err(ApiError::internal)?;
            let detail = json!({ "within_grace_of": row.used_at });
            (next, AuditAction::TokenRefreshGrace, detail)
        }
        RefreshDecision::RevokeFamily => {
            let (reason, action, detail) = if source_usable {
                (
                    "refresh token reuse",
                    AuditAction::TokenReuseDetected,
                    "the refresh token was already used; every token of its family has been revoked",
                )
            } else {
                (
                    "source api key revoked or expired",
                    AuditAction::TokenRevoke,
                    "the API key behind this refresh token has been revoked or has expired",
                )
            };
            tx.revoke_family(tenant, family.id, now, reason).await?;
            let event = ctx.event(
                tenant,
                &subject,
                action,
                family_resource,
                Outcome::Denied,
                json!({ "reason": reason, "refresh_token_id": token.id().as_str() }),
                now,
            );
            audit(state, &mut tx, event).await?;
            tx.commit().await?;
            return Err(invalid(detail));
        }
        RefreshDecision::Reject => {
            return Err(invalid("the refresh token has expired or been revoked"));
        }
    };
    // Rotated, or the successor handed out again inside the grace window.
    let caps = requested_scope(scope, family.capabilities)?;
    detail["scope"] = json!(caps);
    let event = ctx.event(
        tenant,
        &subject,
        action,
        family_resource,
        Outcome::Success,
        detail,
        now,
    );
    audit(state, &mut tx, event).await?;
    let (access_token, expires_in) = Mint::grant(tenant, &subject, caps, family.id, not_after)
        .sign(state, &mut tx, now)
        .await?;
    tx.commit().await?;
    Ok(TokenGrant {
        access_token,
        expires_in,
        refresh_token: next.expose().to_owned(),
        scope: caps,
    })
}

/// RFC 7009 revocation: a refresh token ends its family; an access token is denied until it
/// expires. Unknown or invalid tokens are not an error (RFC 7009 §2.2).
pub async fn revoke(
    state: &AppState,
    ctx: &RequestContext,
    presented: &str,
) -> Result<(), ApiError> {
    let presented = presented.trim();
    let now = state.clock.now();
    if let Some(token) = RefreshToken::parse(presented) {
        let mut tx = state
            .store
            .begin(Scope::Lookup(Lookup::RefreshToken(token.id().clone())))
            .await?;
        let Some(row) = tx.lookup_refresh(token.id()).await? else {
            return Ok(());
        };
        if !token.matches(&state.pepper, &row.secret_hash) {
            return Ok(());
        }
        let tenant = row.tenant_id;
        tx.set_scope(Scope::tenant(tenant, "revoke")).await?;
        if tx
            .revoke_family(tenant, row.family_id, now, "revoked by its holder")
            .await?
        {
            let event = ctx.event(
                tenant,
                "token-holder",
                AuditAction::TokenRevoke,
                format!("token_family:{}", row.family_id),
                Outcome::Success,
                json!({ "token_type": "refresh_token" }),
                now,
            );
            audit(state, &mut tx, event).await?;
        }
        tx.commit().await?;
        return Ok(());
    }
    if presented.starts_with("rmp_live_") {
        return Err(ApiError::new(
            ErrorKind::UnsupportedTokenType,
            "API keys are revoked with `DELETE /v1/apikeys/{id}`",
        ));
    }
    // An access token: only a genuine, unexpired one needs denying.
    let Ok(verified) = verify_bearer(state, presented).await else {
        return Ok(());
    };
    let c = verified.claims();
    let mut tx = state
        .store
        .begin(Scope::tenant(c.tenant_id, &c.sub))
        .await?;
    tx.revoke_token_id(c.tenant_id, c.jti, verified.expires_at())
        .await?;
    let event = ctx.event(
        c.tenant_id,
        &c.sub,
        AuditAction::TokenRevoke,
        format!("token:{}", c.jti),
        Outcome::Success,
        json!({ "token_type": "access_token" }),
        now,
    );
    audit(state, &mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}
