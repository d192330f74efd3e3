//! The gateway's usage counters per mission (or subject): calls, tokens, and calls in the
//! current one-minute window.

use rampart_types::TenantId;

use crate::db::{Val, sql};
use crate::{GatewayUsage, StoreError, Tx};

impl Tx {
    /// What `principal` has used; zero if it never called.
    pub async fn gateway_usage(
        &mut self,
        tenant: TenantId,
        principal: &str,
    ) -> Result<GatewayUsage, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(GatewayUsage::default());
        }
        let row = self
            .fetch_optional(
                &sql!(
                    "SELECT calls, tokens, window_start, window_calls FROM gateway_usage \
                     WHERE tenant_id = $1 AND principal = $2"
                ),
                &[Val::Uuid(*tenant.as_uuid()), Val::Text(principal)],
            )
            .await?;
        row.map_or(Ok(GatewayUsage::default()), |r| {
            Ok(GatewayUsage {
                calls: r.int("calls")?,
                tokens: r.int("tokens")?,
                window_start: r.int("window_start")?,
                window_calls: r.int("window_calls")?,
            })
        })
    }

    /// Counts one call of `principal` using `tokens`, in the window of Unix minute `minute`.
    pub async fn add_gateway_usage(
        &mut self,
        tenant: TenantId,
        principal: &str,
        tokens: i64,
        minute: i64,
    ) -> Result<(), StoreError> {
        self.guard_write(tenant)?;
        self.execute(
            &sql!(
                "INSERT INTO gateway_usage (tenant_id, principal, calls, tokens, window_start, \
                 window_calls) VALUES ($1, $2, 1, $3, $4, 1) \
                 ON CONFLICT (tenant_id, principal) DO UPDATE SET \
                 calls = gateway_usage.calls + 1, \
                 tokens = gateway_usage.tokens + excluded.tokens, \
                 window_calls = CASE WHEN gateway_usage.window_start = excluded.window_start \
                   THEN gateway_usage.window_calls + 1 ELSE 1 END, \
                 window_start = excluded.window_start"
            ),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Text(principal),
                Val::Int(tokens.max(0)),
                Val::Int(minute),
            ],
        )
        .await?;
        Ok(())
    }
}
