//! [`ByteBudget`]: the node's global budget of reply bytes per second.

use crate::time::Instant;

/// A token bucket of reply bytes: refilled at `rate` bytes per second, holding at most one
/// second's worth; `u64::MAX` is no limit.
#[derive(Debug)]
pub(super) struct ByteBudget {
    rate: u64,
    level: u64,
    last: Instant,
}

impl ByteBudget {
    pub(super) fn new(rate: u64, now: Instant) -> Self {
        ByteBudget {
            rate,
            level: rate,
            last: now,
        }
    }

    /// Takes `bytes` from the bucket if it holds them (always, with a rate of `u64::MAX`).
    pub(super) fn take(&mut self, now: Instant, bytes: usize) -> bool {
        if self.rate == u64::MAX {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_micros();
        if elapsed > 0 {
            let refill = (elapsed.saturating_mul(u128::from(self.rate)) / 1_000_000) as u64;
            if refill > 0 {
                self.level = self.level.saturating_add(refill).min(self.rate);
                self.last = now;
            }
        }
        match self.level.checked_sub(bytes as u64) {
            Some(left) => {
                self.level = left;
                true
            }
            None => false,
        }
    }
}
