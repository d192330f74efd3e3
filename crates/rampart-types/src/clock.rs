//! Time, injected. Nothing in Rampart reads the system clock except [`SystemClock`], so tests can
//! move time forward instead of sleeping.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time: milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    #[must_use]
    pub const fn from_unix_millis(ms: i64) -> Self {
        Self(ms)
    }

    #[must_use]
    pub const fn from_unix_seconds(s: i64) -> Self {
        Self(s.saturating_mul(1000))
    }

    #[must_use]
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds, rounded down (JWT `NumericDate`).
    #[must_use]
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ms))
    }

    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(ms))
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    #[must_use]
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// As an `OffsetDateTime` (for storage backends that speak `timestamptz`).
    #[must_use]
    pub fn to_offset_date_time(self) -> OffsetDateTime {
        let nanos = i128::from(self.0) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// From an `OffsetDateTime`, truncated to milliseconds.
    #[must_use]
    pub fn from_offset_date_time(t: OffsetDateTime) -> Self {
        let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
        Self(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// RFC 3339 with millisecond precision, e.g. `2026-11-22T10:00:00.123Z`.
    #[must_use]
    pub fn to_rfc3339(self) -> String {
        let t = self.to_offset_date_time();
        // Formatting a valid OffsetDateTime as RFC 3339 fails only for years outside 0..=9999.
        t.format(&Rfc3339).unwrap_or_else(|_| self.0.to_string())
    }

    pub fn parse_rfc3339(s: &str) -> Result<Self, time::error::Parse> {
        OffsetDateTime::parse(s, &Rfc3339).map(Self::from_offset_date_time)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_keeps_milliseconds() {
        let t = Timestamp::from_unix_millis(1_795_000_000_123);
        let s = t.to_rfc3339();
        assert_eq!(s, "2026-11-18T11:06:40.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&s).unwrap(), t);
        assert_eq!(Timestamp::from_offset_date_time(t.to_offset_date_time()), t);
    }

    #[test]
    fn seconds_round_down_even_before_the_epoch() {
        assert_eq!(Timestamp::from_unix_millis(1_999).unix_seconds(), 1);
        assert_eq!(Timestamp::from_unix_millis(-1).unix_seconds(), -1);
    }
}
