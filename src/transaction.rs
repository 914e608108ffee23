//! The transaction map: which queries are in flight, to whom, until when, and for what.
//!
//! This module owns transaction-id allocation, the matching of replies to pending queries, and
//! timeouts. It is generic over the caller's payload `T` (what was asked, which lookup it
//! serves, when it was sent...). It does not encode or decode messages, does not retry, and counts
//! nothing: every refusal comes back as a precise [`ReplyMismatch`] so that the caller's
//! statistics can count late, unknown and mismatched replies.
//!
//! # Ids
//!
//! Transaction ids are [`DEFAULT_ID_LEN`] (4) bytes by default: the `mainline` crate answers only
//! 4-byte ids, and everyone else answers those too. They are drawn from the caller's RNG and
//! never collide with another *pending* transaction (an id may be reused once its transaction is
//! answered, cancelled or expired).
//!
//! # Matching
//!
//! A reply is matched on its id **and** its source address. A reply from another address does
//! not consume the transaction (it may be spoofed), and is reported as
//! [`ReplyMismatch::WrongAddress`]. Addresses are compared by IP and port only, with
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) equal to their IPv4 form (`a.b.c.d`), since a
//! dual-stack socket may report either; IPv6 flow info and scope id are ignored.
//!
//! A transaction stays pending until it is answered, cancelled or removed by
//! [`TransactionMap::expire`]: a reply that arrives after the deadline but before `expire` ran is
//! still accepted. The driver calls `expire` at [`TransactionMap::next_deadline`].
//!
//! # Bounds and cost
//!
//! At most `capacity` transactions are pending ([`DEFAULT_CAPACITY`] = 65,536, and never more
//! than the id space holds); [`TransactionMap::insert`] fails with [`Full`] beyond that. Insert,
//! reply, cancel and each expired entry cost O(log n): the deadlines are kept in a `BTreeMap`
//! keyed by (deadline, insertion sequence), so expiry comes out in deadline order, ties in
//! insertion order. The memory of recently expired transactions (to tell a late reply from an
//! unknown one) is a bounded FIFO of [`DEFAULT_LATE_MEMORY`] entries.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;

use rand::Rng;

use crate::time::Instant;

/// Length of the transaction ids we send, in bytes.
pub const DEFAULT_ID_LEN: usize = 4;

/// The longest transaction id a [`TransactionMap`] can allocate, in bytes.
pub const MAX_ID_LEN: usize = 8;

/// Default cap on the number of pending transactions.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// Default number of recently expired transactions remembered to recognise late replies.
pub const DEFAULT_LATE_MEMORY: usize = 4_096;

/// A transaction id allocated by a [`TransactionMap`]; send [`TransactionId::as_bytes`] as `t`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionId {
    bytes: [u8; MAX_ID_LEN],
    len: u8,
}

impl TransactionId {
    /// The id's bytes, as they go on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The id as a big-endian integer `value`, `len` bytes long.
    fn from_value(value: u64, len: usize) -> Self {
        let mut bytes = [0u8; MAX_ID_LEN];
        let be = value.to_be_bytes();
        bytes[..len].copy_from_slice(&be[MAX_ID_LEN - len..]);
        TransactionId {
            bytes,
            len: len as u8,
        }
    }

    fn value(&self) -> u64 {
        id_value(self.as_bytes())
    }
}

impl AsRef<[u8]> for TransactionId {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransactionId({})", hex::encode(self.as_bytes()))
    }
}

/// Big-endian value of at most [`MAX_ID_LEN`] bytes.
fn id_value(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .take(MAX_ID_LEN)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// The map is full: the transaction was not recorded. Carries the payload back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("too many transactions in flight")
    }
}

impl<T: fmt::Debug> std::error::Error for Full<T> {}

/// Why a reply (or error message) matched no pending transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyMismatch {
    /// The id does not have the length of the ids we allocate: we never sent it.
    WrongLength,
    /// No pending transaction has this id, and none expired recently with this id and address:
    /// never sent, already answered or cancelled, or expired long ago.
    Unknown,
    /// The transaction with this id and address expired recently: the reply came too late.
    Late,
    /// A transaction with this id is pending, but with another address. It stays pending.
    WrongAddress,
}

impl fmt::Display for ReplyMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplyMismatch::WrongLength => "transaction id of the wrong length",
            ReplyMismatch::Unknown => "unknown transaction id",
            ReplyMismatch::Late => "reply after the transaction expired",
            ReplyMismatch::WrongAddress => "reply from another address than the query went to",
        })
    }
}

impl std::error::Error for ReplyMismatch {}

/// Sizes of a [`TransactionMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionConfig {
    /// Length of allocated ids in bytes, 1 to [`MAX_ID_LEN`] (clamped).
    pub id_len: usize,
    /// Most transactions pending at once (also limited by the id space: 256 for 1-byte ids).
    pub capacity: usize,
    /// How many recently expired transactions to remember to report [`ReplyMismatch::Late`].
    pub late_memory: usize,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            id_len: DEFAULT_ID_LEN,
            capacity: DEFAULT_CAPACITY,
            late_memory: DEFAULT_LATE_MEMORY,
        }
    }
}

/// One query in flight.
#[derive(Debug)]
struct Pending<T> {
    /// Where the query went, as the caller gave it.
    addr: SocketAddr,
    deadline: Instant,
    seq: u64,
    payload: T,
}

/// Queries in flight, keyed by transaction id, with their destination, deadline and payload.
///
/// See the [module documentation](self) for the matching rules and bounds.
#[derive(Debug)]
pub struct TransactionMap<T> {
    id_len: usize,
    /// `capacity` from the config, lowered to the size of the id space.
    capacity: usize,
    /// Pending transactions by id value.
    pending: HashMap<u64, Pending<T>>,
    /// (deadline, seq) -> id value, for every pending transaction.
    by_deadline: BTreeMap<(Instant, u64), u64>,
    next_seq: u64,
    /// Recently expired (id value, canonical address), oldest first; same set as `late_set`.
    late: VecDeque<(u64, SocketAddr)>,
    late_set: HashSet<(u64, SocketAddr)>,
    late_memory: usize,
}

impl<T> Default for TransactionMap<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TransactionMap<T> {
    /// An empty map with the default sizes (4-byte ids, 65,536 pending at most).
    pub fn new() -> Self {
        Self::with_config(TransactionConfig::default())
    }

    /// An empty map with the given sizes.
    pub fn with_config(config: TransactionConfig) -> Self {
        let id_len = config.id_len.clamp(1, MAX_ID_LEN);
        let space = 1u128 << (8 * id_len);
        let capacity =
            usize::try_from(space).map_or(config.capacity, |space| config.capacity.min(space));
        TransactionMap {
            id_len,
            capacity,
            pending: HashMap::new(),
            by_deadline: BTreeMap::new(),
            next_seq: 0,
            late: VecDeque::new(),
            late_set: HashSet::new(),
            late_memory: config.late_memory,
        }
    }

    /// Length of the ids this map allocates, in bytes.
    pub fn id_len(&self) -> usize {
        self.id_len
    }

    /// Most transactions that can be pending at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no transaction is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether the map is at capacity (the next [`insert`](Self::insert) would fail).
    pub fn is_full(&self) -> bool {
        self.pending.len() >= self.capacity
    }

    /// Records a query to `addr` that times out at `deadline`, and returns the fresh id to send
    /// it with. Fails, handing the payload back, when [`capacity`](Self::capacity) transactions
    /// are already pending.
    pub fn insert<R: Rng + ?Sized>(
        &mut self,
        deadline: Instant,
        addr: SocketAddr,
        payload: T,
        rng: &mut R,
    ) -> Result<TransactionId, Full<T>> {
        if self.is_full() {
            return Err(Full(payload));
        }
        let Some(id) = self.allocate(rng) else {
            return Err(Full(payload));
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_deadline.insert((deadline, seq), id);
        self.pending.insert(
            id,
            Pending {
                addr,
                deadline,
                seq,
                payload,
            },
        );
        Ok(TransactionId::from_value(id, self.id_len))
    }

    /// An id value no pending transaction uses. Random draws first; if those keep colliding (a
    /// nearly full, small id space), a linear probe from a random start, which finds a free id
    /// within `len() + 1` steps.
    fn allocate<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<u64> {
        let mask = if self.id_len >= MAX_ID_LEN {
            u64::MAX
        } else {
            (1u64 << (8 * self.id_len)) - 1
        };
        for _ in 0..8 {
            let id = rng.random::<u64>() & mask;
            if !self.pending.contains_key(&id) {
                return Some(id);
            }
        }
        let start = rng.random::<u64>() & mask;
        let mut id = start;
        for _ in 0..=self.pending.len() {
            if !self.pending.contains_key(&id) {
                return Some(id);
            }
            id = id.wrapping_add(1) & mask;
        }
        None
    }

    /// Matches a reply (or error message) with transaction id `tid` from `from`, and on success
    /// removes the transaction and returns its payload. On failure nothing changes.
    pub fn take_reply(&mut self, tid: &[u8], from: SocketAddr) -> Result<T, ReplyMismatch> {
        if tid.len() != self.id_len {
            return Err(ReplyMismatch::WrongLength);
        }
        let id = id_value(tid);
        let Some(entry) = self.pending.get(&id) else {
            return Err(if self.late_set.contains(&(id, canonical(from))) {
                ReplyMismatch::Late
            } else {
                ReplyMismatch::Unknown
            });
        };
        if canonical(entry.addr) != canonical(from) {
            return Err(ReplyMismatch::WrongAddress);
        }
        self.remove(id)
            .map(|(_, payload)| payload)
            .ok_or(ReplyMismatch::Unknown)
    }

    /// Forgets a pending transaction (say, its lookup was abandoned) and returns its address and
    /// payload. A reply to it afterwards is [`ReplyMismatch::Unknown`].
    pub fn cancel(&mut self, tid: &TransactionId) -> Option<(SocketAddr, T)> {
        if usize::from(tid.len) != self.id_len {
            return None;
        }
        self.remove(tid.value())
    }

    /// The payload of a pending transaction, if `tid` is pending.
    pub fn get(&self, tid: &TransactionId) -> Option<&T> {
        if usize::from(tid.len) != self.id_len {
            return None;
        }
        self.pending.get(&tid.value()).map(|p| &p.payload)
    }

    /// The earliest deadline among pending transactions.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline
            .keys()
            .next()
            .map(|(deadline, _)| *deadline)
    }

    /// Removes every transaction whose deadline is at or before `now` and returns their
    /// destination addresses and payloads, earliest deadline first (ties in insertion order).
    /// Each is remembered for a while so that its reply, if it still comes, reads as
    /// [`ReplyMismatch::Late`].
    pub fn expire(&mut self, now: Instant) -> Vec<(SocketAddr, T)> {
        let mut out = Vec::new();
        while let Some(entry) = self.by_deadline.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            if let Some(pending) = self.pending.remove(&id) {
                self.remember_late(id, pending.addr);
                out.push((pending.addr, pending.payload));
            }
        }
        out
    }

    fn remove(&mut self, id: u64) -> Option<(SocketAddr, T)> {
        let pending = self.pending.remove(&id)?;
        self.by_deadline.remove(&(pending.deadline, pending.seq));
        Some((pending.addr, pending.payload))
    }

    fn remember_late(&mut self, id: u64, addr: SocketAddr) {
        if self.late_memory == 0 {
            return;
        }
        let key = (id, canonical(addr));
        if !self.late_set.insert(key) {
            return;
        }
        self.late.push_back(key);
        while self.late.len() > self.late_memory {
            if let Some(old) = self.late.pop_front() {
                self.late_set.remove(&old);
            }
        }
    }
}

/// The address with IPv4-mapped IPv6 turned into IPv4, and flow info and scope id dropped.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::time::Duration;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn secs(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    fn tiny(capacity: usize) -> TransactionMap<u32> {
        TransactionMap::with_config(TransactionConfig {
            id_len: 1,
            capacity,
            late_memory: 16,
        })
    }

    #[test]
    fn default_ids_are_four_bytes_and_distinct() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut map = TransactionMap::new();
        let to = addr("203.0.113.1:6881");
        let a = map.insert(secs(10), to, 'a', &mut rng).unwrap();
        let b = map.insert(secs(10), to, 'b', &mut rng).unwrap();
        assert_eq!(a.as_bytes().len(), 4);
        assert_ne!(a, b);
        assert_eq!(map.len(), 2);
        assert_eq!(map.get(&a), Some(&'a'));
    }

    #[test]
    fn no_collisions_in_a_tiny_id_space() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut map = tiny(1_000);
        assert_eq!(map.capacity(), 256);
        let to = addr("203.0.113.1:6881");
        let mut seen = HashSet::new();
        for i in 0..256u32 {
            let tid = map.insert(secs(10), to, i, &mut rng).unwrap();
            assert_eq!(tid.as_bytes().len(), 1);
            assert!(seen.insert(tid), "collision at {i}");
        }
        assert!(map.is_full());
        assert_eq!(map.insert(secs(10), to, 999, &mut rng), Err(Full(999)));
        // Free a few and allocate again, many rounds: still never a pending collision.
        let mut ids: Vec<TransactionId> = seen.iter().copied().collect();
        ids.sort_by_key(|t| t.as_bytes().to_vec());
        for round in 0..1_000u32 {
            let victim = ids[(round as usize * 37) % ids.len()];
            let payload = map.take_reply(victim.as_bytes(), to).unwrap();
            let fresh = map.insert(secs(10), to, payload, &mut rng).unwrap();
            let pos = ids.iter().position(|t| *t == victim).unwrap();
            ids[pos] = fresh;
            let unique: HashSet<_> = ids.iter().collect();
            assert_eq!(unique.len(), 256, "round {round}");
        }
    }

    #[test]
    fn capacity_is_enforced() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut map = TransactionMap::with_config(TransactionConfig {
            capacity: 3,
            ..TransactionConfig::default()
        });
        let to = addr("203.0.113.1:6881");
        for i in 0..3 {
            map.insert(secs(1), to, i, &mut rng).unwrap();
        }
        assert_eq!(map.insert(secs(1), to, 7, &mut rng), Err(Full(7)));
        assert_eq!(map.len(), 3);
        assert_eq!(map.expire(secs(1)).len(), 3);
        assert!(map.insert(secs(2), to, 8, &mut rng).is_ok());
    }

    #[test]
    fn replies_match_on_id_and_address() {
        let mut rng = SmallRng::seed_from_u64(4);
        let mut map = TransactionMap::new();
        let to = addr("203.0.113.1:6881");
        let tid = map.insert(secs(10), to, "ping", &mut rng).unwrap();
        // Same IP, another port; another IP: refused, and the transaction stays.
        for other in ["203.0.113.1:6882", "203.0.113.2:6881", "[2001:db8::1]:6881"] {
            assert_eq!(
                map.take_reply(tid.as_bytes(), addr(other)),
                Err(ReplyMismatch::WrongAddress)
            );
        }
        assert_eq!(map.len(), 1);
        assert_eq!(map.take_reply(tid.as_bytes(), to), Ok("ping"));
        assert!(map.is_empty());
        assert_eq!(map.next_deadline(), None);
        // Answered already: unknown now.
        assert_eq!(
            map.take_reply(tid.as_bytes(), to),
            Err(ReplyMismatch::Unknown)
        );
    }

    #[test]
    fn wrong_length_and_unknown_ids() {
        let mut rng = SmallRng::seed_from_u64(5);
        let mut map = TransactionMap::new();
        let to = addr("203.0.113.1:6881");
        let tid = map.insert(secs(10), to, 1u8, &mut rng).unwrap();
        let bytes = tid.as_bytes();
        assert_eq!(map.take_reply(&[], to), Err(ReplyMismatch::WrongLength));
        assert_eq!(
            map.take_reply(&bytes[..2], to),
            Err(ReplyMismatch::WrongLength)
        );
        assert_eq!(
            map.take_reply(&[0u8; 4096], to),
            Err(ReplyMismatch::WrongLength)
        );
        let mut other = [0u8; 4];
        other.copy_from_slice(bytes);
        other[0] ^= 0xff;
        assert_eq!(map.take_reply(&other, to), Err(ReplyMismatch::Unknown));
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn ipv4_mapped_ipv6_is_the_same_source() {
        let mut rng = SmallRng::seed_from_u64(6);
        let mut map = TransactionMap::new();
        let tid = map
            .insert(secs(10), addr("203.0.113.1:6881"), 1, &mut rng)
            .unwrap();
        assert_eq!(
            map.take_reply(tid.as_bytes(), addr("[::ffff:203.0.113.1]:6881")),
            Ok(1)
        );
        let tid = map
            .insert(secs(10), addr("[::ffff:203.0.113.1]:6881"), 2, &mut rng)
            .unwrap();
        assert_eq!(
            map.take_reply(tid.as_bytes(), addr("[::ffff:203.0.113.1]:6882")),
            Err(ReplyMismatch::WrongAddress)
        );
        assert_eq!(
            map.take_reply(tid.as_bytes(), addr("203.0.113.1:6881")),
            Ok(2)
        );
    }

    #[test]
    fn expiry_in_deadline_order() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut map = TransactionMap::new();
        let to = addr("203.0.113.1:6881");
        let start = secs(100);
        for (i, delay) in [5u64, 1, 3, 1, 4, 2].into_iter().enumerate() {
            map.insert(start + Duration::from_secs(delay), to, i, &mut rng)
                .unwrap();
        }
        assert_eq!(map.next_deadline(), Some(secs(101)));
        assert!(map.expire(secs(100)).is_empty());
        let first: Vec<usize> = map.expire(secs(102)).into_iter().map(|x| x.1).collect();
        assert_eq!(first, vec![1, 3, 5]);
        assert_eq!(map.next_deadline(), Some(secs(103)));
        let rest: Vec<(SocketAddr, usize)> = map.expire(secs(1000));
        assert_eq!(rest, vec![(to, 2), (to, 4), (to, 0)]);
        assert!(map.is_empty());
        assert_eq!(map.next_deadline(), None);
    }

    #[test]
    fn late_reply_after_expiry_is_rejected() {
        let mut rng = SmallRng::seed_from_u64(8);
        let mut map = tiny(256);
        let to = addr("203.0.113.1:6881");
        let tid = map.insert(secs(5), to, 1, &mut rng).unwrap();
        // Not yet expired by the caller: still accepted (see the module docs).
        let early = map.insert(secs(5), to, 2, &mut rng).unwrap();
        assert_eq!(map.take_reply(early.as_bytes(), to), Ok(2));
        assert_eq!(map.expire(secs(5)), vec![(to, 1)]);
        assert_eq!(map.take_reply(tid.as_bytes(), to), Err(ReplyMismatch::Late));
        // Late is tied to the address too.
        assert_eq!(
            map.take_reply(tid.as_bytes(), addr("203.0.113.9:6881")),
            Err(ReplyMismatch::Unknown)
        );
        // The late memory is bounded (16 here): old expiries become merely unknown.
        for i in 0..40 {
            map.insert(secs(6), addr(&format!("198.51.100.{i}:1")), i, &mut rng)
                .unwrap();
        }
        map.expire(secs(6));
        assert!(map.late.len() <= 16 && map.late_set.len() == map.late.len());
        assert_eq!(
            map.take_reply(tid.as_bytes(), to),
            Err(ReplyMismatch::Unknown)
        );
    }

    #[test]
    fn cancel_removes_and_frees() {
        let mut rng = SmallRng::seed_from_u64(9);
        let mut map = TransactionMap::new();
        let to = addr("203.0.113.1:6881");
        let tid = map.insert(secs(5), to, 1, &mut rng).unwrap();
        assert_eq!(map.cancel(&tid), Some((to, 1)));
        assert_eq!(map.cancel(&tid), None);
        assert_eq!(map.next_deadline(), None);
        assert_eq!(
            map.take_reply(tid.as_bytes(), to),
            Err(ReplyMismatch::Unknown)
        );
        assert!(map.expire(secs(100)).is_empty());
    }

    #[test]
    fn random_operations_agree_with_a_simple_model() {
        let mut rng = SmallRng::seed_from_u64(11);
        let mut map = tiny(200);
        // The model: id bytes -> (address, deadline, payload).
        let mut model: Vec<(TransactionId, SocketAddr, Instant, u32)> = Vec::new();
        let mut now = secs(0);
        for step in 0..20_000u32 {
            let to = addr(&format!("198.51.100.{}:1", rng.random_range(0..4)));
            match rng.random_range(0..10) {
                0..=4 => {
                    let deadline = now + Duration::from_secs(rng.random_range(0..20));
                    match map.insert(deadline, to, step, &mut rng) {
                        Ok(tid) => {
                            assert!(model.iter().all(|m| m.0 != tid), "collision");
                            model.push((tid, to, deadline, step));
                        }
                        Err(Full(p)) => {
                            assert_eq!(p, step);
                            assert_eq!(model.len(), 200);
                        }
                    }
                }
                5..=7 if !model.is_empty() => {
                    let k = rng.random_range(0..model.len());
                    let (tid, dest, _, payload) = model[k];
                    if rng.random_bool(0.2) && dest != to {
                        assert_eq!(
                            map.take_reply(tid.as_bytes(), to),
                            Err(ReplyMismatch::WrongAddress)
                        );
                    } else {
                        assert_eq!(map.take_reply(tid.as_bytes(), dest), Ok(payload));
                        model.swap_remove(k);
                    }
                }
                _ => {
                    now += Duration::from_secs(rng.random_range(0..3));
                    let mut due: Vec<_> = model.iter().filter(|m| m.2 <= now).copied().collect();
                    due.sort_by_key(|m| (m.2, m.3));
                    let expected: Vec<(SocketAddr, u32)> = due.iter().map(|m| (m.1, m.3)).collect();
                    assert_eq!(map.expire(now), expected);
                    model.retain(|m| m.2 > now);
                }
            }
            assert_eq!(map.len(), model.len());
            assert_eq!(map.by_deadline.len(), model.len());
            assert_eq!(map.next_deadline(), model.iter().map(|m| m.2).min());
        }
    }

    #[test]
    fn eight_byte_ids_work() {
        let mut rng = SmallRng::seed_from_u64(10);
        let mut map = TransactionMap::with_config(TransactionConfig {
            id_len: 8,
            ..TransactionConfig::default()
        });
        let to = addr("203.0.113.1:6881");
        let tid = map.insert(secs(5), to, 1, &mut rng).unwrap();
        assert_eq!(tid.as_bytes().len(), 8);
        assert_eq!(map.take_reply(tid.as_bytes(), to), Ok(1));
    }
}
