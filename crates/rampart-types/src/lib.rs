//! Shared vocabulary of Rampart.
//!
//! What it is: the small, dependency-light types every other crate speaks — typed identifiers
//! ([`TenantId`], [`RequestId`], …), named [`Capability`] sets, the injected [`Clock`] and
//! [`Timestamp`], the RFC 9457 [`Problem`] body, and the [`AuditEvent`] record that every security
//! decision produces.
//!
//! What it does not do: no I/O, no cryptography, no storage. Anything that needs a key, a socket or
//! a file lives in a crate above this one.

mod audit;
mod capability;
mod clock;
mod duration;
mod ids;
mod problem;

pub use audit::{AuditAction, AuditEvent, Outcome};
pub use capability::{Capability, CapabilitySet, UnknownCapability};
pub use clock::{Clock, SystemClock, Timestamp};
pub use duration::{DurationParseError, format_duration, parse_duration};
pub use ids::{
    AgentId, CascadeId, DeliveryId, EndpointId, FamilyId, IdParseError, LeaseId, MissionId,
    RequestId, TenantId, TokenId, truncate_for_display,
};
pub use problem::Problem;

/// `bytes` as lowercase hexadecimal: how digests and key ids are shown.
#[must_use]
pub fn lower_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn lower_hex_is_two_lowercase_digits_a_byte() {
        assert_eq!(super::lower_hex(&[]), "");
        assert_eq!(super::lower_hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
