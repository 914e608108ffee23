//! The external-address vote: learns this node's public IP from the BEP 42 `ip` field of replies.
//!
//! A node behind NAT does not know the address the rest of the DHT sees, yet BEP 42 ties its id
//! to that address. Every reply may carry it (`ip`), but any one responder may lie, so the
//! address is elected by distinct responders:
//!
//! - A responder counts once per round, by its **host group** (its IPv4 /24 or its IPv6 /64), so
//!   one host or one network cannot vote many times with many addresses or ports.
//! - An address is elected when it holds at least [`VoteConfig::min_voters`] votes and more than
//!   twice the votes of the address elected before it (in the same round), so a few liars do not
//!   move an established address.
//! - A round ends after [`VoteConfig::round_voters`] votes or [`VoteConfig::round_length`]; the
//!   elected address stays elected across rounds until another one wins.
//! - Reported addresses that BEP 42 exempts (loopback, private, link-local), unspecified and
//!   multicast addresses, and addresses of the other family are not candidates: there is nothing
//!   to derive an id from.
//!
//! Everything is bounded: at most [`VoteConfig::max_candidates`] addresses and
//! [`VoteConfig::round_voters`] voters are remembered per round. Time is the caller's.
//! One `ExternalIpVote` serves one address family.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use crate::id::is_bep42_exempt;
use crate::time::Instant;

/// The vote's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteConfig {
    /// Distinct host groups that must report an address before it is elected. Default 8.
    pub min_voters: usize,
    /// Votes after which a round ends and the counts start again. Default 256.
    pub round_voters: usize,
    /// Time after which a round ends. Default 1 hour.
    pub round_length: Duration,
    /// Distinct addresses counted in one round; reports of further addresses are ignored.
    /// Default 16.
    pub max_candidates: usize,
}

impl Default for VoteConfig {
    fn default() -> Self {
        VoteConfig {
            min_voters: 8,
            round_voters: 256,
            round_length: Duration::from_secs(3600),
            max_candidates: 16,
        }
    }
}

/// What happened to one report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vote {
    /// Counted; the elected address did not change.
    Counted,
    /// Counted, and it elected this address (the first one, or a new one).
    Elected(IpAddr),
    /// The responder's host group already voted in this round.
    Repeated,
    /// The reported address cannot be ours on the public DHT (exempt, unspecified, multicast,
    /// other family), or the round already tracks the most addresses it may.
    Ignored,
}

/// Counters of the reports seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VoteStats {
    /// Reports counted as votes.
    pub counted: u64,
    /// Reports from a host group that had already voted in the round.
    pub repeated: u64,
    /// Reports that were no candidate.
    pub ignored: u64,
    /// Times an address was elected.
    pub elections: u64,
}

/// A host group: an IPv4 /24 or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum HostGroup {
    V4(u32),
    V6(u64),
}

impl HostGroup {
    fn of(ip: IpAddr) -> HostGroup {
        match ip.to_canonical() {
            IpAddr::V4(v4) => HostGroup::V4(v4.to_bits() >> 8),
            IpAddr::V6(v6) => HostGroup::V6((v6.to_bits() >> 64) as u64),
        }
    }
}

/// The external-address vote of one address family.
#[derive(Debug)]
pub struct ExternalIpVote {
    config: VoteConfig,
    ipv6: bool,
    elected: Option<IpAddr>,
    round_started: Option<Instant>,
    voters: HashSet<HostGroup>,
    /// The round's addresses with their vote counts, in first-seen order.
    candidates: Vec<(IpAddr, usize)>,
    stats: VoteStats,
}

impl ExternalIpVote {
    /// A vote for IPv4 addresses (`ipv6 == false`) or IPv6 addresses, with nothing elected.
    pub fn new(ipv6: bool, config: VoteConfig) -> Self {
        ExternalIpVote {
            config,
            ipv6,
            elected: None,
            round_started: None,
            voters: HashSet::new(),
            candidates: Vec::new(),
            stats: VoteStats::default(),
        }
    }

    /// The elected address, if any.
    pub fn elected(&self) -> Option<IpAddr> {
        self.elected
    }

    /// The counters so far.
    pub fn stats(&self) -> VoteStats {
        self.stats
    }

    /// Whether `ip` can be this node's public address of this family.
    fn is_candidate(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let family_ok = ip.is_ipv6() == self.ipv6;
        family_ok && !ip.is_unspecified() && !ip.is_multicast() && !is_bep42_exempt(ip)
    }

    /// Counts the report of `voter` (the responder's IP) that our address is `reported`, at
    /// `now`.
    pub fn cast(&mut self, now: Instant, voter: IpAddr, reported: IpAddr) -> Vote {
        let reported = reported.to_canonical();
        if !self.is_candidate(reported) {
            self.stats.ignored += 1;
            return Vote::Ignored;
        }
        let round_over = self.round_started.is_some_and(|started| {
            now.saturating_duration_since(started) >= self.config.round_length
        }) || self.voters.len() >= self.config.round_voters;
        if round_over || self.round_started.is_none() {
            self.round_started = Some(now);
            self.voters.clear();
            self.candidates.clear();
        }
        let group = HostGroup::of(voter);
        if self.voters.contains(&group) {
            self.stats.repeated += 1;
            return Vote::Repeated;
        }
        let Some(slot) = self.slot_for(reported) else {
            self.stats.ignored += 1;
            return Vote::Ignored;
        };
        self.voters.insert(group);
        self.candidates[slot].1 += 1;
        self.stats.counted += 1;
        let (leader, votes) = self.candidates[slot];
        if Some(leader) == self.elected || votes < self.config.min_voters {
            return Vote::Counted;
        }
        let elected_votes = self
            .candidates
            .iter()
            .find(|(ip, _)| Some(*ip) == self.elected)
            .map_or(0, |(_, v)| *v);
        if votes <= 2 * elected_votes {
            return Vote::Counted;
        }
        self.elected = Some(leader);
        self.stats.elections += 1;
        Vote::Elected(leader)
    }

    /// The round's slot of `reported`: its own, a new one, or, when the round tracks the most
    /// addresses it may, the slot of an address that has a single vote and is not elected (so
    /// that reports of throw-away addresses cannot lock honest ones out for the round).
    fn slot_for(&mut self, reported: IpAddr) -> Option<usize> {
        if let Some(slot) = self.candidates.iter().position(|(ip, _)| *ip == reported) {
            return Some(slot);
        }
        if self.candidates.len() < self.config.max_candidates {
            self.candidates.push((reported, 0));
            return Some(self.candidates.len() - 1);
        }
        let slot = self
            .candidates
            .iter()
            .position(|(ip, votes)| *votes <= 1 && Some(*ip) != self.elected)?;
        self.candidates[slot] = (reported, 0);
        Some(slot)
    }

    /// Sets the address directly (a configured external address); later votes may still move
    /// it, as they would an elected one.
    pub fn set(&mut self, ip: IpAddr) {
        self.elected = Some(ip.to_canonical());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn at(secs: u64) -> Instant {
        Instant::from_micros(secs * 1_000_000)
    }

    /// `n` voters, each in its own /24.
    fn voters(n: u8) -> impl Iterator<Item = IpAddr> {
        (0..n).map(|i| v4(80, i, 1, 1))
    }

    #[test]
    fn elects_after_enough_distinct_groups() {
        let mut vote = ExternalIpVote::new(false, VoteConfig::default());
        let ours = v4(93, 184, 216, 34);
        let results: Vec<Vote> = voters(8).map(|v| vote.cast(at(1), v, ours)).collect();
        assert!(results[..7].iter().all(|r| *r == Vote::Counted));
        assert_eq!(results[7], Vote::Elected(ours));
        assert_eq!(vote.elected(), Some(ours));
        assert_eq!(vote.cast(at(1), v4(81, 0, 0, 1), ours), Vote::Counted);
    }

    #[test]
    fn one_network_votes_once() {
        let mut vote = ExternalIpVote::new(false, VoteConfig::default());
        let lie = v4(6, 6, 6, 6);
        for host in 1..=200 {
            vote.cast(at(1), v4(66, 1, 1, host), lie);
        }
        assert_eq!(vote.elected(), None);
        assert_eq!(vote.stats().counted, 1);
        assert_eq!(vote.stats().repeated, 199);
        // IPv6: one /64 is one voter, whatever its interface ids.
        let mut vote6 = ExternalIpVote::new(true, VoteConfig::default());
        let ours6: IpAddr = "2001:db8:1::5".parse().unwrap();
        for host in 1..=50u16 {
            let voter = IpAddr::V6(Ipv6Addr::new(0x2a00, 1, 2, 3, host, 0, 0, host));
            vote6.cast(at(1), voter, ours6);
        }
        assert_eq!(vote6.stats().counted, 1);
    }

    #[test]
    fn exempt_and_foreign_reports_are_ignored() {
        let mut vote = ExternalIpVote::new(false, VoteConfig::default());
        for (i, reported) in [
            v4(127, 0, 0, 1),
            v4(192, 168, 1, 2),
            v4(10, 0, 0, 1),
            v4(0, 0, 0, 0),
            v4(224, 0, 0, 1),
            "2001:db8::1".parse().unwrap(),
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(
                vote.cast(at(1), v4(80, i as u8, 0, 1), reported),
                Vote::Ignored
            );
        }
        assert_eq!(vote.stats().ignored, 6);
        // A mapped IPv4 address is its IPv4 address.
        let mapped: IpAddr = "::ffff:93.184.216.34".parse().unwrap();
        for v in voters(8) {
            vote.cast(at(1), v, mapped);
        }
        assert_eq!(vote.elected(), Some(v4(93, 184, 216, 34)));
    }

    #[test]
    fn a_minority_does_not_move_the_elected_address() {
        let mut vote = ExternalIpVote::new(false, VoteConfig::default());
        let ours = v4(93, 184, 216, 34);
        let lie = v4(6, 6, 6, 6);
        for v in voters(10) {
            vote.cast(at(1), v, ours);
        }
        // 20 liars in 20 distinct networks: not more than twice the 10 honest votes.
        for i in 0..20 {
            vote.cast(at(2), v4(90, i, 0, 1), lie);
        }
        assert_eq!(vote.elected(), Some(ours));
        // A 21st is more than twice: the address moves (a NAT that really changed looks so).
        assert_eq!(vote.cast(at(2), v4(90, 20, 0, 1), lie), Vote::Elected(lie));
        assert_eq!(vote.stats().elections, 2);
    }

    #[test]
    fn a_new_round_follows_an_address_change() {
        let config = VoteConfig {
            round_length: Duration::from_secs(60),
            ..VoteConfig::default()
        };
        let mut vote = ExternalIpVote::new(false, config);
        let old = v4(93, 184, 216, 34);
        let new = v4(93, 184, 217, 1);
        for v in voters(20) {
            vote.cast(at(0), v, old);
        }
        // The same voters, in a later round, now see the new address.
        let results: Vec<Vote> = voters(20).map(|v| vote.cast(at(61), v, new)).collect();
        assert_eq!(results[7], Vote::Elected(new));
        assert_eq!(vote.elected(), Some(new));
    }

    #[test]
    fn memory_is_bounded() {
        let config = VoteConfig::default();
        let mut vote = ExternalIpVote::new(false, config);
        for i in 0..100_000u32 {
            let [_, a, b, c] = i.to_be_bytes();
            vote.cast(at(1), v4(50, a, b, c), v4(60, a, b, c));
            assert!(vote.candidates.len() <= config.max_candidates);
            assert!(vote.voters.len() <= config.round_voters);
        }
        assert_eq!(vote.elected(), None);
    }

    #[test]
    fn throw_away_addresses_do_not_lock_out_the_real_one() {
        let mut vote = ExternalIpVote::new(false, VoteConfig::default());
        // 500 liars in distinct networks, each reporting another address, fill the slots first.
        for i in 0..500u32 {
            let [_, _, a, b] = i.to_be_bytes();
            vote.cast(at(1), v4(70, a, b, 1), v4(60, a, b, 1));
        }
        let ours = v4(93, 184, 216, 34);
        let results: Vec<Vote> = voters(8).map(|v| vote.cast(at(2), v, ours)).collect();
        assert_eq!(results[7], Vote::Elected(ours));
    }

    #[test]
    fn a_set_address_is_elected() {
        let mut vote = ExternalIpVote::new(false, VoteConfig::default());
        let ours = v4(93, 184, 216, 34);
        vote.set(ours);
        assert_eq!(vote.elected(), Some(ours));
        for v in voters(8) {
            assert_eq!(vote.cast(at(1), v, ours), Vote::Counted);
        }
    }
}
