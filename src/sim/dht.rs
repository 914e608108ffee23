//! A simulated DHT: many [`Node`]s on a [`SimNet`], with a brute-force oracle.
//!
//! Used by the simulation tests and benchmarks: build a network of `n` nodes that join one
//! after another through a few earlier ones, run it in virtual time, issue commands to any
//! node and wait for their completion, and compare results with the true closest ids.

use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{LinkModel, SimNet, node_addr};
use crate::id::NodeId;
use crate::node::{Config, Event, Node, RequestId};
use crate::routing::IpPolicy;
use crate::time::Instant;

/// A network of simulated DHT nodes.
#[derive(Debug)]
pub struct DhtSim {
    /// The simulated network.
    pub net: SimNet<Node>,
    /// Every node's id and address, in join order.
    pub nodes: Vec<(NodeId, SocketAddr)>,
    rng: SmallRng,
}

/// The node configuration the simulations use: private (10/8) addresses allowed, no
/// informational events (nobody drains them), otherwise the defaults.
pub fn sim_config() -> Config {
    let mut config = Config {
        allow_private: true,
        node_events: false,
        incoming_events: false,
        ..Config::default()
    };
    config.routing.ip_policy = IpPolicy::OnePerIp;
    config
}

impl DhtSim {
    /// Builds `count` nodes with random ids (from `seed`) that join one every `join_interval`,
    /// each bootstrapping through up to 3 nodes that joined before it.
    pub fn build(
        count: usize,
        seed: u64,
        link: LinkModel,
        config: &Config,
        join_interval: Duration,
    ) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut sim = DhtSim {
            net: SimNet::new(seed, link),
            nodes: Vec::with_capacity(count),
            rng: SmallRng::seed_from_u64(seed ^ 0x5eed),
        };
        for i in 0..count {
            let addr = node_addr(i as u32);
            let id = NodeId::random(&mut rng);
            let node = Node::new(config.clone(), id, rng.random(), sim.net.now());
            sim.net.add_node(addr, node);
            if i > 0 {
                let mut via: Vec<SocketAddr> = Vec::new();
                for _ in 0..3 {
                    let (_, addr) = sim.nodes[rng.random_range(0..i)];
                    if !via.contains(&addr) {
                        via.push(addr);
                    }
                }
                let now = sim.net.now();
                if let Some(node) = sim.net.node_mut(addr) {
                    node.bootstrap(now, &via);
                }
            }
            sim.nodes.push((id, addr));
            sim.net.run_for(join_interval);
        }
        sim
    }

    /// Runs the network for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        self.net.run_for(duration);
        self.drain_events();
    }

    /// Drops every pending event of every node (they are bounded, but this keeps memory low).
    pub fn drain_events(&mut self) {
        let addrs: Vec<SocketAddr> = self.nodes.iter().map(|n| n.1).collect();
        for addr in addrs {
            if let Some(node) = self.net.node_mut(addr) {
                while node.poll_event().is_some() {}
            }
        }
    }

    /// A uniformly random node address.
    pub fn random_node(&mut self) -> SocketAddr {
        let i = self.rng.random_range(0..self.nodes.len());
        self.nodes[i].1
    }

    /// A random id.
    pub fn random_id(&mut self) -> NodeId {
        NodeId::random(&mut self.rng)
    }

    /// The `k` ids closest to `target` among nodes that are online, except `exclude`.
    pub fn oracle_closest(
        &self,
        target: &NodeId,
        k: usize,
        exclude: Option<SocketAddr>,
    ) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, addr)| Some(*addr) != exclude && self.net.is_online(*addr) == Some(true))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_by_key(|id| target.distance(id));
        ids.truncate(k);
        ids
    }

    /// Gives node `at` a command and runs the network until that request completes (or
    /// `timeout` of virtual time passes); returns the completion event: [`Event::LookupDone`],
    /// [`Event::AnnounceDone`], [`Event::GetItemDone`], [`Event::PutItemDone`],
    /// [`Event::PingDone`] or [`Event::SampleDone`], whichever the command's request ends with.
    pub fn request(
        &mut self,
        at: SocketAddr,
        timeout: Duration,
        command: impl FnOnce(&mut Node, Instant) -> RequestId,
    ) -> Option<Event> {
        let now = self.net.now();
        let node = self.net.node_mut(at)?;
        while node.poll_event().is_some() {}
        let request = command(node, now);
        let deadline = now + timeout;
        let mut found = None;
        while found.is_none() {
            let step_end = (self.net.now() + Duration::from_millis(100)).min(deadline);
            self.net.run_until(step_end);
            if let Some(node) = self.net.node_mut(at) {
                while let Some(event) = node.poll_event() {
                    if completes(&event, request) {
                        found = Some(event);
                    }
                }
            }
            if self.net.now() >= deadline {
                break;
            }
        }
        found
    }
}

fn completes(event: &Event, request: RequestId) -> bool {
    match event {
        Event::LookupDone { request: r, .. }
        | Event::AnnounceDone { request: r, .. }
        | Event::GetItemDone { request: r, .. }
        | Event::PutItemDone { request: r, .. }
        | Event::PingDone { request: r, .. }
        | Event::SampleDone { request: r, .. } => *r == request,
        _ => false,
    }
}
