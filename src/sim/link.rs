//! The link model: what the simulated network does to a datagram between two nodes.
//!
//! A [`LinkModel`] decides, from the simulator's seeded random generator, whether a datagram is
//! lost, duplicated, and how long each copy takes to arrive. Reordering arises naturally from
//! jitter (two datagrams sent close together draw different delays); an explicit reorder
//! probability adds an extra random delay to some datagrams on top of that. This module owns no
//! state beyond the configuration: the generator belongs to the [`SimNet`](super::SimNet).

use std::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;

/// The random part of a datagram's one-way delay, added to the base latency.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Jitter {
    /// No jitter: every datagram takes exactly the base latency.
    #[default]
    None,
    /// A delay drawn uniformly from `0..=max`.
    Uniform {
        /// The largest extra delay.
        max: Duration,
    },
    /// An exponentially distributed delay with the given mean (a long tail of slow datagrams).
    Exponential {
        /// The mean extra delay.
        mean: Duration,
    },
}

impl Jitter {
    /// Draws an extra delay in microseconds.
    fn sample(&self, rng: &mut SmallRng) -> u64 {
        match *self {
            Jitter::None => 0,
            Jitter::Uniform { max } => rng.random_range(0..=micros(max)),
            Jitter::Exponential { mean } => sample_exp_micros(rng, mean),
        }
    }
}

/// How the simulated network treats every datagram: latency, jitter, loss, duplication and
/// reordering.
///
/// All probabilities are in `0.0..=1.0`. The [`Default`] is a clean 50 ms link: no jitter, no
/// loss, no duplication, no reordering.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkModel {
    /// The fixed part of every datagram's one-way delay.
    pub latency: Duration,
    /// The random part of the delay, drawn independently for every copy of every datagram.
    pub jitter: Jitter,
    /// The probability that a datagram is lost.
    pub loss: f64,
    /// The probability that a datagram that is not lost arrives twice (the copy draws its own
    /// delay).
    pub duplicate: f64,
    /// The probability that a copy is held back by an extra delay drawn uniformly from
    /// `0..=reorder_delay`, so that later datagrams overtake it.
    pub reorder: f64,
    /// The largest extra delay of a held-back copy.
    pub reorder_delay: Duration,
}

impl Default for LinkModel {
    fn default() -> Self {
        LinkModel::new(Duration::from_millis(50))
    }
}

impl LinkModel {
    /// A clean link with a fixed one-way `latency`: no jitter, loss, duplication or reordering.
    pub const fn new(latency: Duration) -> Self {
        LinkModel {
            latency,
            jitter: Jitter::None,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
        }
    }

    /// This link with the given jitter.
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// This link with loss probability `p`.
    ///
    /// # Panics
    /// If `p` is not in `0.0..=1.0`.
    pub fn with_loss(mut self, p: f64) -> Self {
        self.loss = check_probability(p);
        self
    }

    /// This link with duplication probability `p`.
    ///
    /// # Panics
    /// If `p` is not in `0.0..=1.0`.
    pub fn with_duplication(mut self, p: f64) -> Self {
        self.duplicate = check_probability(p);
        self
    }

    /// This link where a copy is held back with probability `p` by up to `max_extra`.
    ///
    /// # Panics
    /// If `p` is not in `0.0..=1.0`.
    pub fn with_reordering(mut self, p: f64, max_extra: Duration) -> Self {
        self.reorder = check_probability(p);
        self.reorder_delay = max_extra;
        self
    }

    /// Decides what happens to one datagram.
    pub(crate) fn fate(&self, rng: &mut SmallRng) -> Fate {
        if chance(rng, self.loss) {
            return Fate::Lost;
        }
        let first = self.delay(rng);
        if chance(rng, self.duplicate) {
            Fate::Twice(first, self.delay(rng))
        } else {
            Fate::Once(first)
        }
    }

    /// Draws one copy's delay in microseconds.
    fn delay(&self, rng: &mut SmallRng) -> u64 {
        let mut d = micros(self.latency).saturating_add(self.jitter.sample(rng));
        if chance(rng, self.reorder) {
            d = d.saturating_add(rng.random_range(0..=micros(self.reorder_delay)));
        }
        d
    }
}

/// What the link does to one datagram; delays in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// The datagram never arrives.
    Lost,
    /// The datagram arrives once, after this delay.
    Once(u64),
    /// The datagram arrives twice, after these delays.
    Twice(u64, u64),
}

fn check_probability(p: f64) -> f64 {
    assert!(
        (0.0..=1.0).contains(&p),
        "a probability is in 0.0..=1.0, got {p}"
    );
    p
}

/// True with probability `p`; draws nothing when `p` is zero, so a clean link consumes no
/// randomness.
fn chance(rng: &mut SmallRng, p: f64) -> bool {
    p > 0.0 && rng.random::<f64>() < p
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Draws an exponentially distributed duration with the given mean, in microseconds.
pub(crate) fn sample_exp_micros(rng: &mut SmallRng, mean: Duration) -> u64 {
    let u: f64 = rng.random(); // in [0, 1), so 1 - u is in (0, 1] and its log is finite
    let x = -(1.0 - u).ln() * micros(mean) as f64;
    // `as` saturates for huge values.
    x as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> SmallRng {
        SmallRng::seed_from_u64(7)
    }

    #[test]
    fn clean_link_has_fixed_delay() {
        let link = LinkModel::new(Duration::from_millis(30));
        let mut r = rng();
        for _ in 0..100 {
            assert_eq!(link.fate(&mut r), Fate::Once(30_000));
        }
    }

    #[test]
    fn uniform_jitter_stays_in_range_and_varies() {
        let link = LinkModel::new(Duration::from_millis(10)).with_jitter(Jitter::Uniform {
            max: Duration::from_millis(5),
        });
        let mut r = rng();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let Fate::Once(d) = link.fate(&mut r) else {
                panic!("no loss configured")
            };
            assert!((10_000..=15_000).contains(&d));
            seen.insert(d);
        }
        assert!(seen.len() > 100);
    }

    #[test]
    fn exponential_jitter_has_roughly_the_mean() {
        let mean = Duration::from_millis(20);
        let mut r = rng();
        let n = 20_000;
        let total: u64 = (0..n).map(|_| sample_exp_micros(&mut r, mean)).sum();
        let avg = total / n;
        assert!((18_000..=22_000).contains(&avg), "mean {avg}");
    }

    #[test]
    fn loss_and_duplication_rates() {
        let link = LinkModel::new(Duration::from_millis(1))
            .with_loss(0.2)
            .with_duplication(0.1);
        let mut r = rng();
        let (mut lost, mut twice) = (0, 0);
        let n = 10_000;
        for _ in 0..n {
            match link.fate(&mut r) {
                Fate::Lost => lost += 1,
                Fate::Twice(..) => twice += 1,
                Fate::Once(_) => {}
            }
        }
        assert!((1_700..=2_300).contains(&lost), "lost {lost}");
        // 10% of the ~8000 that survive.
        assert!((600..=1_000).contains(&twice), "duplicated {twice}");
    }

    #[test]
    #[should_panic(expected = "probability")]
    fn rejects_bad_probability() {
        let _ = LinkModel::default().with_loss(1.5);
    }
}
