//! When a failed delivery is tried again.

use std::time::Duration;

/// Delays between attempts, each stretched or shrunk by up to `jitter` (a fraction) so that
/// endpoints that failed together are not retried together.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    delays: Vec<Duration>,
    jitter: f64,
}

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("a retry schedule needs at least one delay")]
    Empty,
    #[error("jitter is a fraction from 0 to 0.5")]
    Jitter,
}

impl Default for Schedule {
    /// Immediately, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (the schedule Svix
    /// publishes: 8 attempts over about 27.5 hours), ±20 %.
    fn default() -> Self {
        let m = |n: u64| Duration::from_secs(n * 60);
        Self {
            delays: vec![
                Duration::from_secs(5),
                m(5),
                m(30),
                m(120),
                m(300),
                m(600),
                m(600),
            ],
            jitter: 0.2,
        }
    }
}

impl Schedule {
    pub fn new(delays: Vec<Duration>, jitter: f64) -> Result<Self, ScheduleError> {
        if delays.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if !(0.0..=0.5).contains(&jitter) {
            return Err(ScheduleError::Jitter);
        }
        Ok(Self { delays, jitter })
    }

    /// Attempts in all, the first included.
    #[must_use]
    pub fn attempts(&self) -> usize {
        self.delays.len() + 1
    }

    #[must_use]
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The wait after `failed` attempts have failed (1 after the first), or `None` when there is
    /// no attempt left. `unit` is a uniform random number in [0, 1) chosen by the caller.
    #[must_use]
    pub fn delay_after(&self, failed: usize, unit: f64) -> Option<Duration> {
        let base = self.delays.get(failed.checked_sub(1)?)?;
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Some(base.mul_f64(factor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_eight_attempts_with_bounded_jitter() {
        let s = Schedule::default();
        assert_eq!(s.attempts(), 8);
        assert_eq!(s.delay_after(0, 0.5), None);
        assert_eq!(s.delay_after(1, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(s.delay_after(1, 0.0), Some(Duration::from_secs(4)));
        assert_eq!(s.delay_after(1, 1.0), Some(Duration::from_secs(6)));
        assert_eq!(s.delay_after(7, 0.5), Some(Duration::from_secs(36_000)));
        assert_eq!(s.delay_after(8, 0.5), None);
        let total: Duration = s.delays().iter().sum();
        assert_eq!(total.as_secs(), 5 + 300 + 1800 + 7200 + 18_000 + 36_000 * 2);
        assert_eq!(Schedule::new(vec![], 0.1), Err(ScheduleError::Empty));
        assert_eq!(
            Schedule::new(vec![Duration::from_secs(1)], 0.9),
            Err(ScheduleError::Jitter)
        );
    }
}
