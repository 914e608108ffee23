//! Announce tokens (BEP 5): proof that an `announce_peer` comes from an address that recently
//! received our `get_peers` reply.
//!
//! This module owns the token secrets, their rotation and the token format. It does not decide
//! *whether* to hand out a token (BEP 33's "no token when the info-hash is full" policy belongs to
//! the node), it does not parse messages, and it counts nothing.
//!
//! # Format
//!
//! A token is the first [`TOKEN_LEN`] (8) bytes of `SHA-1(secret || host)`, where `secret` is a
//! 20-byte random value and `host` is the requester's host ([`crate::host::host_key`]): 4 bytes
//! for IPv4 (an IPv4-mapped IPv6 address `::ffff:a.b.c.d` counts as the IPv4 address
//! `a.b.c.d`), 16 bytes for IPv6, of which the low 64 are zero (an IPv6 host is its /64). The
//! port is not part of the token: BEP 5 binds a token to the IP address, and an IPv6 host may
//! announce from any address of its /64.
//!
//! # Rotation
//!
//! The secret changes every [`ROTATION_PERIOD`] (5 minutes). A token verifies against the current
//! or the previous secret, so a token stays valid between 5 and 10 minutes after it was issued,
//! depending on where in the current period it was issued: one issued just before a rotation
//! lives a little over 5 minutes, one issued just after lives almost 10. Valid for 5 minutes is
//! guaranteed; 10 minutes or more never is.
//!
//! Rotation is lazy: [`TokenManager::issue`] and [`TokenManager::verify`] first bring the secrets
//! up to date for the `now` they are given. If `now` has moved on by two periods or more since the
//! last rotation, both secrets are replaced, so every older token becomes invalid. If `now` goes
//! backwards nothing rotates.
//!
//! Secrets come from a generator seeded once, at construction, from the caller's RNG: two
//! managers built from different seeds (as happens across restarts, where the driver seeds from
//! the OS) issue different tokens, and the same seed replays the same tokens in the simulator.

use std::net::IpAddr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha1::{Digest, Sha1};

use crate::host::host_key;
use crate::time::Instant;

/// Length in bytes of the tokens this node issues.
pub const TOKEN_LEN: usize = 8;

/// How often the secret changes. A token is valid for one to two periods after issue.
pub const ROTATION_PERIOD: Duration = Duration::from_secs(5 * 60);

/// Length in bytes of a secret.
const SECRET_LEN: usize = 20;

/// A token issued by this node, to be sent in the `token` key of a `get_peers` reply.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Token([u8; TOKEN_LEN]);

impl Token {
    /// The token's bytes, as they go on the wire.
    pub const fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }
}

impl AsRef<[u8]> for Token {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Issues and verifies announce tokens, rotating its secret every [`ROTATION_PERIOD`].
///
/// See the [module documentation](self) for the token format and the rotation rules.
pub struct TokenManager {
    /// Draws the secrets; seeded once from the caller's RNG.
    rng: StdRng,
    current: [u8; SECRET_LEN],
    previous: [u8; SECRET_LEN],
    /// When `current` became current (advanced in whole periods while rotations are regular).
    rotated_at: Instant,
    period: Duration,
}

impl std::fmt::Debug for TokenManager {
    /// Shows the schedule, never the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("rotated_at", &self.rotated_at)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    /// A manager whose first secret takes effect at `now`, with secrets drawn from a generator
    /// seeded from `rng`. The "previous" secret is random too, so nothing verifies against it
    /// except by chance (2^-64).
    pub fn new<R: Rng + ?Sized>(rng: &mut R, now: Instant) -> Self {
        Self::with_period(rng, now, ROTATION_PERIOD)
    }

    /// Like [`TokenManager::new`] with a different rotation period (zero is raised to one
    /// microsecond). Meant for tests and experiments; the protocol expects [`ROTATION_PERIOD`].
    pub fn with_period<R: Rng + ?Sized>(rng: &mut R, now: Instant, period: Duration) -> Self {
        let mut seed = <StdRng as SeedableRng>::Seed::default();
        rng.fill(&mut seed[..]);
        let mut rng = StdRng::from_seed(seed);
        let current = rng.random();
        let previous = rng.random();
        TokenManager {
            rng,
            current,
            previous,
            rotated_at: now,
            period: period.max(Duration::from_micros(1)),
        }
    }

    /// The rotation period in use.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The next instant at which the secret will rotate (the caller may use it as a deadline,
    /// though rotation also happens lazily without one).
    pub fn next_rotation(&self) -> Instant {
        self.rotated_at + self.period
    }

    /// The token for requester address `ip` at time `now`.
    pub fn issue(&mut self, now: Instant, ip: IpAddr) -> Token {
        self.rotate(now);
        Token(token_for(&self.current, ip))
    }

    /// Whether `token` (any byte string from the network) is a token this node issued to `ip`
    /// under the current or the previous secret. A token of the wrong length is simply invalid.
    pub fn verify(&mut self, now: Instant, ip: IpAddr, token: &[u8]) -> bool {
        self.rotate(now);
        let Ok(token) = <&[u8; TOKEN_LEN]>::try_from(token) else {
            return false;
        };
        // Evaluate both comparisons, each in constant time, so the time taken says nothing
        // about which bytes matched.
        let current = ct_eq(&token_for(&self.current, ip), token);
        let previous = ct_eq(&token_for(&self.previous, ip), token);
        current | previous
    }

    /// Brings the secrets up to date for `now`.
    fn rotate(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.rotated_at);
        if elapsed < self.period {
            return;
        }
        if elapsed >= self.period.saturating_mul(2) {
            // Two periods or more went by: every token issued so far has expired.
            self.previous = self.rng.random();
            self.current = self.rng.random();
            self.rotated_at = now;
        } else {
            self.previous = self.current;
            self.current = self.rng.random();
            // Keep the cadence regular: the new secret took effect one period after the last.
            self.rotated_at += self.period;
        }
    }
}

/// `SHA-1(secret || host bytes)`, truncated to [`TOKEN_LEN`] bytes (on the stack: issuing and
/// checking a token allocate nothing).
fn token_for(secret: &[u8; SECRET_LEN], ip: IpAddr) -> [u8; TOKEN_LEN] {
    let mut hasher = Sha1::new();
    hasher.update(secret);
    match host_key(ip) {
        IpAddr::V4(v4) => hasher.update(v4.octets()),
        IpAddr::V6(v6) => hasher.update(v6.octets()),
    }
    let digest = hasher.finalize();
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&digest[..TOKEN_LEN]);
    out
}

/// Token equality whose running time does not depend on the bytes.
fn ct_eq(a: &[u8; TOKEN_LEN], b: &[u8; TOKEN_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;

    fn minutes(m: u64) -> Instant {
        Instant::from_secs(m * 60)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn manager(seed: u64) -> TokenManager {
        TokenManager::new(&mut SmallRng::seed_from_u64(seed), Instant::ZERO)
    }

    #[test]
    fn valid_for_the_current_and_previous_secret() {
        let mut tokens = manager(1);
        let peer = ip("203.0.113.7");
        let token = tokens.issue(Instant::ZERO, peer);
        assert_eq!(token.as_bytes().len(), TOKEN_LEN);
        for m in [0, 4, 5, 9] {
            assert!(tokens.verify(minutes(m), peer, token.as_bytes()), "{m} min");
        }
        assert!(!tokens.verify(minutes(10), peer, token.as_bytes()));
        assert!(!tokens.verify(minutes(11), peer, token.as_bytes()));
    }

    #[test]
    fn token_issued_late_in_a_period_still_lives_one_period() {
        let mut tokens = manager(2);
        let peer = ip("2001:db8::7");
        let token = tokens.issue(Instant::from_secs(299), peer);
        assert!(tokens.verify(Instant::from_secs(599), peer, token.as_bytes()));
        assert!(!tokens.verify(Instant::from_secs(600), peer, token.as_bytes()));
        // A token issued just after a rotation lives almost two periods.
        let token = tokens.issue(Instant::from_secs(600), peer);
        assert!(tokens.verify(Instant::from_secs(1199), peer, token.as_bytes()));
        assert!(!tokens.verify(Instant::from_secs(1200), peer, token.as_bytes()));
    }

    #[test]
    fn rotation_is_lazy_and_a_long_jump_replaces_both_secrets() {
        let mut tokens = manager(3);
        let peer = ip("198.51.100.1");
        // No call at all between issue and verify: still valid 9 minutes later.
        let token = tokens.issue(minutes(1), peer);
        assert!(tokens.verify(minutes(9), peer, token.as_bytes()));
        // Issued at 9 min (after the rotation at 5), then nothing until 21 min: gone.
        let token = tokens.issue(minutes(9), peer);
        assert!(!tokens.verify(minutes(21), peer, token.as_bytes()));
        // And the schedule restarts at the jump.
        let token = tokens.issue(minutes(21), peer);
        assert!(tokens.verify(minutes(30), peer, token.as_bytes()));
        assert!(!tokens.verify(minutes(31), peer, token.as_bytes()));
    }

    #[test]
    fn time_going_backwards_rotates_nothing() {
        let mut tokens = manager(4);
        let peer = ip("198.51.100.2");
        let token = tokens.issue(minutes(6), peer);
        assert!(tokens.verify(minutes(1), peer, token.as_bytes()));
        assert!(tokens.verify(minutes(6), peer, token.as_bytes()));
    }

    #[test]
    fn bound_to_the_ip_address() {
        let mut tokens = manager(5);
        let token = tokens.issue(Instant::ZERO, ip("203.0.113.7"));
        assert!(!tokens.verify(Instant::ZERO, ip("203.0.113.8"), token.as_bytes()));
        assert!(!tokens.verify(Instant::ZERO, ip("2001:db8::1"), token.as_bytes()));
        // The IPv4-mapped form of the same address is the same requester.
        assert!(tokens.verify(Instant::ZERO, ip("::ffff:203.0.113.7"), token.as_bytes()));
    }

    #[test]
    fn an_ipv6_token_is_bound_to_the_slash_64() {
        let mut tokens = manager(7);
        let token = tokens.issue(Instant::ZERO, ip("2a00:1:2:3::1"));
        assert!(tokens.verify(Instant::ZERO, ip("2a00:1:2:3:ffff::9"), token.as_bytes()));
        assert!(!tokens.verify(Instant::ZERO, ip("2a00:1:2:4::1"), token.as_bytes()));
    }

    #[test]
    fn every_token_lives_five_to_ten_minutes_for_its_host_only() {
        // Issued at every 30 s of a period (a fresh manager each time, so that nothing
        // else rotates the secrets): valid 5 minutes later and at the end of the period
        // after its own, invalid from the period after that, and only for its host (an
        // IPv4 address, an IPv6 /64).
        for (issuer, same_host, other_host) in [
            ("203.0.113.7", "::ffff:203.0.113.7", "203.0.113.8"),
            ("2a00:1:2:3::1", "2a00:1:2:3:ffff::9", "2a00:1:2:4::1"),
        ] {
            for step in 0..10 {
                let issued = Instant::from_secs(step * 30);
                let mut tokens = manager(20 + step);
                let token = tokens.issue(issued, ip(issuer));
                let token = token.as_bytes();
                assert!(tokens.verify(issued, ip(same_host), token));
                assert!(!tokens.verify(issued, ip(other_host), token));
                let mut later = manager(20 + step);
                later.issue(issued, ip(issuer));
                assert!(later.verify(issued + ROTATION_PERIOD, ip(same_host), token));
                assert!(!later.verify(issued + ROTATION_PERIOD, ip(other_host), token));
                let last = Instant::from_secs(2 * ROTATION_PERIOD.as_secs() - 1);
                assert!(
                    later.verify(last, ip(issuer), token),
                    "issued at {issued:?}"
                );
                let expired = Instant::from_secs(2 * ROTATION_PERIOD.as_secs());
                assert!(
                    !later.verify(expired, ip(issuer), token),
                    "issued at {issued:?}"
                );
                assert!(expired.saturating_duration_since(issued) <= 2 * ROTATION_PERIOD);
                assert!(expired.saturating_duration_since(issued) > ROTATION_PERIOD);
            }
        }
    }

    #[test]
    fn wrong_length_and_garbage_are_invalid() {
        let mut tokens = manager(6);
        let peer = ip("203.0.113.7");
        let token = tokens.issue(Instant::ZERO, peer);
        let bytes = token.as_bytes();
        assert!(!tokens.verify(Instant::ZERO, peer, &[]));
        assert!(!tokens.verify(Instant::ZERO, peer, &bytes[..4]));
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(!tokens.verify(Instant::ZERO, peer, &longer));
        assert!(!tokens.verify(Instant::ZERO, peer, &[0u8; 20]));
        assert!(!tokens.verify(Instant::ZERO, peer, &vec![0xffu8; 100_000]));
        let mut flipped = *bytes;
        flipped[7] ^= 1;
        assert!(!tokens.verify(Instant::ZERO, peer, &flipped));
    }

    #[test]
    fn seeds_give_different_tokens_and_replay_identically() {
        let peer = ip("203.0.113.7");
        let a = manager(7).issue(Instant::ZERO, peer);
        let b = manager(8).issue(Instant::ZERO, peer);
        assert_ne!(a, b);
        assert_eq!(a, manager(7).issue(Instant::ZERO, peer));
        // A token from one instance means nothing to another (a restart invalidates tokens).
        assert!(!manager(8).verify(Instant::ZERO, peer, a.as_bytes()));
    }
}
