//! The node's BEP 42 identity: votes from the `ip` field of replies and the change of id when
//! the elected address does not match it.

use super::*;

impl Node {
    /// Counts the responder `from`'s report that our address is `reported`; when that
    /// elects an address our id is not BEP 42-valid for, takes a new id.
    pub(super) fn on_reported_ip(&mut self, now: Instant, from: SocketAddr, reported: IpAddr) {
        let vote = if from.ip().to_canonical().is_ipv4() {
            &mut self.vote4
        } else {
            &mut self.vote6
        };
        if let Vote::Elected(ip) = vote.cast(now, from.ip(), reported) {
            // The IPv4 address rules the id when both are known: most of the DHT is IPv4.
            let keep = self.id.is_bep42_valid_for(ip)
                || (ip.is_ipv6()
                    && self
                        .vote4
                        .elected()
                        .is_some_and(|v4| self.id.is_bep42_valid_for(v4)));
            if !keep {
                let new = NodeId::bep42(ip, self.rng.random(), &mut self.rng);
                self.change_id(now, new, ip);
            }
        }
    }

    /// Takes `new` as this node's id (BEP 42-valid for `external_ip`): fresh routing tables
    /// under it, and a bootstrap lookup that queries the old tables' contacts (they enter the
    /// new tables only when they answer).
    pub(super) fn change_id(&mut self, now: Instant, new: NodeId, external_ip: IpAddr) {
        let old = self.id;
        let seeds = self.config.lookup_candidates.max(self.config.k);
        let mut contacts = self.table4.closest(&new, seeds);
        contacts.extend(self.table6.closest(&new, seeds));
        let mut routing = self.config.routing.clone();
        routing.k = self.config.k;
        self.table4 = RoutingTable::new(new, now, routing.clone());
        self.table6 = RoutingTable::new(new, now, routing);
        self.id = new;
        self.stats.id_changes += 1;
        self.emit(Event::IdChanged {
            old,
            new,
            external_ip,
        });
        self.last_bootstrap = Some(now);
        self.start_lookup_from(now, LookupKind::Bootstrap, new, None, false, contacts);
    }
}
