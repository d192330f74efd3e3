//! The HTTP API. Each handler carries its OpenAPI description, and the router is built from
//! those descriptions, so a route cannot exist without being documented. The one exception is
//! [`vault`]: a compatibility surface whose contract is HashiCorp Vault's KV v2 API
//! (documented in docs/secrets.md), not Rampart's own document.

pub mod agents;
pub mod apikeys;
pub mod audit;
pub mod auth;
pub mod backends;
pub mod gateway;
pub mod health;
pub mod keys;
pub mod leases;
pub mod ledger;
pub mod missions;
pub mod secrets;
pub mod sentinel;
pub mod tenants;
pub mod tlog;
pub mod vault;
pub mod webhooks;
