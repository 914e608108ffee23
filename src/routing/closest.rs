//! The `k` closest entries to a target: the buckets visited in order of distance and a
//! bounded selection of the best.

use super::*;

/// An id as a 160-bit big-endian integer ([`NodeId::sort_key`]).
type SortKey = (u128, u32);

fn sort_key(id: &NodeId) -> SortKey {
    id.sort_key()
}

/// The buckets deeper than `b` (the bucket of `target`) out of `0..=last`, in increasing order of
/// their entries' distance to `target`.
///
/// An entry of bucket `j` (`b < j < last`) agrees with our id on bits `0..j` and differs at
/// bit `j`; `target` agrees with it on bits `0..b` and differs at bit `b`. So the entry's
/// distance to `target` is 0 on bits `0..b`, 1 at bit `b`, `x` (our id XOR `target`) on bits
/// `b + 1..j`, and `!x` at bit `j`: between two buckets `j < j'` (the last one included, whose
/// entries agree with our id on bits `0..last`), bucket `j` is the closer iff `x[j]` is one.
/// The order is therefore: the buckets with `x[j] = 1` in increasing `j`, the last bucket, the
/// buckets with `x[j] = 0` in decreasing `j`. Entries of different buckets never tie.
fn deeper_order(
    own: &NodeId,
    target: &NodeId,
    b: usize,
    last: usize,
) -> impl Iterator<Item = usize> {
    let x = own.distance(target);
    let bit = move |j: usize| (x.0[j / 8] >> (7 - j % 8)) & 1 == 1;
    let middle = (b + 1)..last;
    let closer = middle.clone().filter(move |&j| bit(j));
    let farther = middle.rev().filter(move |&j| !bit(j));
    let last = (last > b).then_some(last);
    closer.chain(last).chain(farther)
}

/// Up to `k` entries closest to a target, from entries offered one by one. Ids in a table are
/// unique, so are their distances: the `k` closest, in order, are well defined.
struct Closest<'t> {
    target: SortKey,
    k: usize,
    /// Entries offered so far.
    offered: usize,
    /// Small `k` (up to [`Closest::INSERTION_MAX_K`]): the best so far in `small[..len]`, on
    /// the stack, sorted once `k` are in (then a bounded insertion, O(n k) with tiny
    /// constants).
    small: [(SortKey, Option<&'t NodeInfo>); Closest::INSERTION_MAX_K],
    len: usize,
    /// Large `k`: every entry offered, selected at the end (O(n)).
    large: Vec<(SortKey, &'t NodeInfo)>,
}

impl<'t> Closest<'t> {
    /// Up to this `k`, insertion into the sorted best-so-far.
    const INSERTION_MAX_K: usize = 16;

    fn new(target: SortKey, k: usize, entries: usize) -> Self {
        let large = if k > Self::INSERTION_MAX_K {
            Vec::with_capacity(entries)
        } else {
            Vec::new()
        };
        Closest {
            target,
            k,
            offered: 0,
            small: [((0, 0), None); Self::INSERTION_MAX_K],
            len: 0,
            large,
        }
    }

    fn offer(&mut self, info: &'t NodeInfo) {
        self.offered += 1;
        let (hi, lo) = sort_key(&info.id);
        let key = (hi ^ self.target.0, lo ^ self.target.1);
        if self.k > Self::INSERTION_MAX_K {
            self.large.push((key, info));
            return;
        }
        // The first k are taken as they come, then sorted once; after that, one that beats
        // the worst takes its place.
        let len = self.len;
        if len < self.k {
            self.small[len] = (key, Some(info));
            self.len += 1;
            if self.len == self.k {
                self.small[..self.len].sort_unstable_by_key(|f| f.0);
            }
            return;
        }
        if key >= self.small[len - 1].0 {
            return;
        }
        let at = self.small[..len - 1].partition_point(|f| f.0 < key);
        self.small.copy_within(at..len - 1, at + 1);
        self.small[at] = (key, Some(info));
    }

    /// Appends the entries found to `out`, closest first.
    fn append_sorted(&mut self, out: &mut Vec<NodeInfo>) {
        if self.k > Self::INSERTION_MAX_K {
            if self.large.len() > self.k {
                self.large.select_nth_unstable_by_key(self.k - 1, |f| f.0);
                self.large.truncate(self.k);
            }
            self.large.sort_unstable_by_key(|f| f.0);
            out.extend(self.large.iter().map(|(_, info)| **info));
            return;
        }
        let found = &mut self.small[..self.len];
        if self.len < self.k {
            // Fewer than k were offered: never sorted.
            found.sort_unstable_by_key(|f| f.0);
        }
        out.extend(found.iter().filter_map(|(_, info)| info.copied()));
    }
}

impl RoutingTable {
    /// Up to `k` good or questionable entries closest to `target` by XOR distance, closest
    /// first. Bad entries are left out.
    ///
    /// Buckets are visited in an order where every bucket's entries are farther from `target`
    /// than the previous ones', so only the buckets needed to reach `k` are sorted.
    pub fn closest(&self, target: &NodeId, k: usize) -> Vec<NodeInfo> {
        self.closest_except(target, k, None)
    }

    /// [`RoutingTable::closest`] leaving out the entry at `except` (the asker, in an answer):
    /// the same as the `k + 1` closest without it, cut to `k`.
    pub(crate) fn closest_except(
        &self,
        target: &NodeId,
        k: usize,
        except: Option<&SocketAddr>,
    ) -> Vec<NodeInfo> {
        let mut out = Vec::new();
        self.closest_into(target, k, except, &mut out);
        out
    }

    /// [`RoutingTable::closest_except`] into `out` (cleared first), so that a caller keeping
    /// `out` between answers allocates nothing.
    pub(crate) fn closest_into<'t>(
        &'t self,
        target: &NodeId,
        k: usize,
        except: Option<&SocketAddr>,
        out: &mut Vec<NodeInfo>,
    ) {
        out.clear();
        if k == 0 {
            return;
        }
        let last = self.buckets.len() - 1;
        let b = self.own_id.shared_prefix_len(target).min(last);
        let mut best = Closest::new(sort_key(target), k, self.len);
        let max_failures = self.config.max_failures;
        let take = |bucket: &'t Bucket, best: &mut Closest<'t>| {
            for e in &bucket.entries {
                if e.failed_queries <= max_failures && except != Some(&e.info.addr) {
                    best.offer(&e.info);
                }
            }
        };
        // Closest: the target's own bucket. Then the deeper buckets, whose entries all differ
        // from the target first at bit b, closest bucket first (see `deeper_order`), until k
        // entries are in: every later bucket is farther than all of them. Then shallower
        // buckets, deepest first.
        take(&self.buckets[b], &mut best);
        if best.offered < k {
            for j in deeper_order(&self.own_id, target, b, last) {
                take(&self.buckets[j], &mut best);
                if best.offered >= k {
                    break;
                }
            }
        }
        for bucket in self.buckets[..b].iter().rev() {
            if best.offered >= k {
                break;
            }
            take(bucket, &mut best);
        }
        best.append_sorted(out);
    }
}
