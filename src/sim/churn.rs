//! Random churn: nodes that leave the network and come back.
//!
//! A [`ChurnModel`] gives the mean length of a node's online and offline periods; the
//! [`SimNet`](super::SimNet) draws each period from an exponential distribution with its own
//! seeded generator and flips the node's state when the period ends. An offline node keeps its
//! state (like a laptop that sleeps): it receives nothing, sends nothing and its timers wait until
//! it is back.

use std::time::Duration;

/// The mean lengths of a churning node's online and offline periods (each drawn from an
/// exponential distribution).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChurnModel {
    /// The mean time a node stays online before it leaves.
    pub mean_uptime: Duration,
    /// The mean time a node stays offline before it comes back.
    pub mean_downtime: Duration,
}

impl ChurnModel {
    /// Churn with the given mean online and offline periods.
    pub const fn new(mean_uptime: Duration, mean_downtime: Duration) -> Self {
        ChurnModel {
            mean_uptime,
            mean_downtime,
        }
    }

    /// The long-run fraction of time a node is online.
    pub fn availability(&self) -> f64 {
        let up = self.mean_uptime.as_secs_f64();
        let total = up + self.mean_downtime.as_secs_f64();
        if total == 0.0 { 1.0 } else { up / total }
    }
}
