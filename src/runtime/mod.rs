//! The runtime: sans-IO cores on real UDP sockets. It is the only place that reads the OS
//! clock for the cores.
//!
//! - [`Clock`] maps the OS clock onto the cores' [`Instant`]: microseconds since it started.
//! - [`Runtime`] is the one mio event loop every role runs on (the DHT node behind
//!   [`crate::driver::Dht`], each bootstrap shard, the crawler, the local test swarm). It
//!   drives any [`Endpoint`] on one or two sockets (IPv4, IPv6), or many endpoints each on its
//!   own sockets with one heap of deadlines, plus a [`mio::Waker`] for the handles of the role.
//! - [`Role`] is what differs per role: its endpoints, what it does on each turn of the loop
//!   (commands, stop condition, saves), what it drains after each flush (events, records), and
//!   its own deadlines.
//! - [`udp`] owns the batched system calls (`recvmmsg` / `sendmmsg`).
//!
//! Each turn of the loop: the endpoints' due timers, the role's [`Role::turn`], the flush of
//! the endpoints it touched, then a sleep in mio's `poll` until a socket is readable or
//! writable, the waker fires, or the next deadline (the endpoints', the role's, at most
//! [`Runtime::with_max_sleep`]) comes. Sockets are edge-triggered: a readable socket is read
//! [`udp::BATCH`] datagrams per system call until a read comes back short, and the endpoint's
//! answers are written after each batch. A full send buffer keeps the datagrams queued
//! ([`udp::Outbox`]) until the socket is writable again, so a burst is delayed, not dropped.

pub mod udp;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::endpoint::Endpoint;
use crate::peers::AddressFamily;
use crate::time::Instant;
use udp::{BATCH, Outbox, UdpBatch};

/// Default longest sleep of the loop, so that a lost wake-up cannot stall it.
pub const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Failed reads in a row after which a drain gives up until the next readiness event.
const MAX_RECV_ERRORS: u32 = 64;

/// The token of the waker; socket tokens follow it.
const WAKER: Token = Token(0);

/// The cores' clock: microseconds since [`Clock::start`], as an [`Instant`].
#[derive(Clone, Copy, Debug)]
pub struct Clock(std::time::Instant);

impl Clock {
    /// A clock at [`Instant::ZERO`] now.
    #[allow(clippy::disallowed_methods)] // the one OS clock of the runtime
    pub fn start() -> Self {
        Clock(std::time::Instant::now())
    }

    /// The time elapsed since the clock started.
    pub fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX))
    }
}

/// What the loop's I/O did, summed over all endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Datagrams read and fed to an endpoint.
    pub datagrams_in: u64,
    /// Datagrams the kernel took.
    pub datagrams_out: u64,
    /// Datagrams the kernel refused (an unreachable destination, ...).
    pub send_errors: u64,
    /// Datagrams dropped because their send queue was full (the socket stayed unwritable).
    pub send_queue_full: u64,
    /// Datagrams for an address family the endpoint has no socket for.
    pub no_socket: u64,
    /// Failed reads (ICMP errors of earlier sends surface there on some systems).
    pub recv_errors: u64,
}

/// Whether the loop goes on after a [`Role::turn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep running.
    Continue,
    /// Return from [`Runtime::run`] (after flushing what the turn touched).
    Stop,
}

/// What a role may do during its [`Role::turn`] besides calling its endpoints.
#[derive(Debug)]
pub struct Turn<'a> {
    stats: &'a IoStats,
    touched: &'a mut Vec<usize>,
}

impl Turn<'_> {
    /// The loop's I/O counters so far.
    pub fn stats(&self) -> &IoStats {
        self.stats
    }

    /// Tells the loop that the endpoint of `slot` was called into: its datagrams are written
    /// and its timer re-armed after the turn.
    pub fn touch(&mut self, slot: usize) {
        self.touched.push(slot);
    }
}

/// What differs per role on the [`Runtime`]'s loop.
pub trait Role {
    /// The cores the role runs.
    type Endpoint: Endpoint;

    /// The endpoint of `slot` (the index [`Runtime::add`] returned), if it runs yet; the
    /// sockets of a slot without endpoint are not read.
    fn endpoint(&mut self, slot: usize) -> Option<&mut Self::Endpoint>;

    /// Called once per turn of the loop, at `now`: apply commands (the waker ends the sleep
    /// for them), run the role's own deadlines, decide whether to stop. Endpoints it calls
    /// into must be [`Turn::touch`]ed.
    fn turn(&mut self, now: Instant, turn: &mut Turn<'_>) -> Flow;

    /// Called after the datagrams of `slot`'s endpoint were written: drain its events or
    /// records.
    fn after_flush(&mut self, slot: usize) {
        let _ = slot;
    }

    /// The role's own next deadline (a periodic save, a join), for the loop to wake at.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
}

/// One endpoint's sockets, queues and timer.
#[derive(Debug)]
struct Slot {
    sockets: [Option<UdpSocket>; 2],
    outbox: Outbox,
    /// Whether each socket is registered for writability (its queue is waiting).
    writable: [bool; 2],
    /// The earliest live entry of this slot in the heap.
    scheduled: Option<Instant>,
}

/// The event loop (see the module documentation).
#[derive(Debug)]
pub struct Runtime {
    poll: Poll,
    clock: Clock,
    slots: Vec<Slot>,
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    stats: IoStats,
    max_sleep: Duration,
}

impl Runtime {
    /// A loop with no socket yet, on `clock`.
    pub fn new(clock: Clock) -> io::Result<Runtime> {
        Ok(Runtime {
            poll: Poll::new()?,
            clock,
            slots: Vec::new(),
            heap: BinaryHeap::new(),
            stats: IoStats::default(),
            max_sleep: MAX_SLEEP,
        })
    }

    /// Sleeps at most `max_sleep` (default [`MAX_SLEEP`]): the period at which a role that is
    /// not woken (a stop flag) sees its changes.
    pub fn with_max_sleep(mut self, max_sleep: Duration) -> Self {
        self.max_sleep = max_sleep;
        self
    }

    /// The waker that ends the loop's sleep, for the handles of the role. Make at most one:
    /// mio allows one per loop.
    pub fn waker(&self) -> io::Result<Waker> {
        Waker::new(self.poll.registry(), WAKER)
    }

    /// Adds a slot: the sockets (IPv4, IPv6) of one endpoint, which the role returns from
    /// [`Role::endpoint`] with the index returned here.
    pub fn add(&mut self, sock4: Option<UdpSocket>, sock6: Option<UdpSocket>) -> io::Result<usize> {
        let slot = self.slots.len();
        let mut sockets = [sock4, sock6];
        for (family, socket) in sockets.iter_mut().enumerate() {
            if let Some(socket) = socket {
                self.poll
                    .registry()
                    .register(socket, token(slot, family), Interest::READABLE)?;
            }
        }
        self.slots.push(Slot {
            sockets,
            outbox: Outbox::default(),
            writable: [false; 2],
            scheduled: None,
        });
        Ok(slot)
    }

    /// The loop's clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The I/O counters so far.
    pub fn stats(&self) -> IoStats {
        self.stats
    }

    /// The local address of a slot's socket of `family` (0: IPv4, 1: IPv6).
    pub fn local_addr(&self, slot: usize, family: usize) -> Option<SocketAddr> {
        let socket = self.slots.get(slot)?.sockets.get(family)?.as_ref()?;
        socket.local_addr().ok()
    }

    /// Runs `role` until its [`Role::turn`] says [`Flow::Stop`]. Fails only when mio's poll
    /// fails.
    pub fn run<R: Role>(&mut self, role: &mut R) -> io::Result<()> {
        // Made here: its system-call headers hold raw pointers, so it cannot cross threads.
        let mut batch = UdpBatch::new();
        let mut events = Events::with_capacity(1_024);
        let mut touched: Vec<usize> = (0..self.slots.len()).collect();
        let mut due = Vec::new();
        loop {
            let now = self.clock.now();
            self.timers(role, now, &mut batch, &mut due);
            let flow = role.turn(
                now,
                &mut Turn {
                    stats: &self.stats,
                    touched: &mut touched,
                },
            );
            touched.sort_unstable();
            touched.dedup();
            for slot in touched.drain(..) {
                self.settle(role, slot, &mut batch);
            }
            if flow == Flow::Stop {
                return Ok(());
            }
            let now = self.clock.now();
            let mut sleep = self.max_sleep;
            let next = self.heap.peek().map(|Reverse((at, _))| *at);
            for at in [next, role.next_deadline()].into_iter().flatten() {
                sleep = sleep.min(at.saturating_duration_since(now));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(sleep)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                let Some((slot, family)) = slot_of(event.token()) else {
                    continue;
                };
                if event.is_writable() {
                    self.settle(role, slot, &mut batch);
                }
                if event.is_readable() {
                    self.drain(role, slot, family, &mut batch);
                }
            }
        }
    }

    /// Runs the endpoints' due timers, each at most once per turn.
    fn timers<R: Role>(
        &mut self,
        role: &mut R,
        now: Instant,
        batch: &mut UdpBatch,
        due: &mut Vec<usize>,
    ) {
        while let Some(&Reverse((at, slot))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            // An entry made stale by an earlier deadline is skipped.
            if let Some(s) = self.slots.get_mut(slot)
                && s.scheduled == Some(at)
            {
                s.scheduled = None;
                due.push(slot);
            }
        }
        for slot in due.drain(..) {
            if let Some(endpoint) = role.endpoint(slot) {
                // A deadline that moved later is only re-armed.
                if endpoint.poll_timeout().is_some_and(|at| at <= now) {
                    endpoint.handle_timeout(now);
                }
            }
            self.settle(role, slot, batch);
        }
    }

    /// Reads a slot's socket a batch at a time until a read comes back short, feeding the
    /// endpoint and writing its answers after each batch.
    fn drain<R: Role>(&mut self, role: &mut R, slot: usize, family: usize, batch: &mut UdpBatch) {
        let mut errors = 0;
        loop {
            let Some(socket) = self
                .slots
                .get(slot)
                .and_then(|s| s.sockets.get(family))
                .and_then(Option::as_ref)
            else {
                return;
            };
            let Some(endpoint) = role.endpoint(slot) else {
                return;
            };
            let now = self.clock.now();
            let socket_family = if family == 0 {
                AddressFamily::V4
            } else {
                AddressFamily::V6
            };
            let read = batch.read(socket, socket_family);
            if read.is_ok() {
                // All the batch's hints first, so that their cache misses overlap.
                for (from, bytes) in batch.datagrams() {
                    endpoint.prefetch(canonical(from), bytes);
                }
                for (from, bytes) in batch.datagrams() {
                    endpoint.handle_datagram(now, canonical(from), bytes);
                }
            }
            match read {
                Ok(count) => {
                    self.stats.datagrams_in += count as u64;
                    self.settle(role, slot, batch);
                    if count < BATCH {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.stats.recv_errors += 1;
                    log::trace!("recv error: {e}");
                    errors += 1;
                    if errors >= MAX_RECV_ERRORS {
                        return;
                    }
                }
            }
        }
    }

    /// Writes what a slot's endpoint wants sent, re-arms its timer, and lets the role drain
    /// it.
    fn settle<R: Role>(&mut self, role: &mut R, slot: usize, batch: &mut UdpBatch) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        let Some(endpoint) = role.endpoint(slot) else {
            return;
        };
        while let Some(mut transmit) = endpoint.poll_transmit() {
            transmit.to = canonical(transmit.to);
            if let Err(refused) = s.outbox.push(transmit) {
                self.stats.send_queue_full += 1;
                endpoint.recycle(refused.bytes);
            }
        }
        if let Some(at) = endpoint.poll_timeout()
            && s.scheduled.is_none_or(|scheduled| at < scheduled)
        {
            s.scheduled = Some(at);
            self.heap.push(Reverse((at, slot)));
        }
        let (report, no_socket) = s.outbox.flush(
            batch,
            [s.sockets[0].as_ref(), s.sockets[1].as_ref()],
            |spent| endpoint.recycle(spent.bytes),
        );
        self.stats.datagrams_out += report.sent as u64;
        self.stats.send_errors += report.failed as u64;
        self.stats.no_socket += no_socket as u64;
        for family in 0..2 {
            let waiting = s.outbox.waiting(family) > 0;
            if waiting == s.writable[family] {
                continue;
            }
            let Some(socket) = s.sockets[family].as_mut() else {
                continue;
            };
            let interest = if waiting {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            match self
                .poll
                .registry()
                .reregister(socket, token(slot, family), interest)
            {
                Ok(()) => s.writable[family] = waiting,
                Err(e) => log::warn!("cannot change the interest of a socket: {e}"),
            }
        }
        role.after_flush(slot);
    }
}

/// The token of a slot's socket of `family`.
fn token(slot: usize, family: usize) -> Token {
    Token(1 + slot * 2 + family)
}

/// The slot and family of a socket token; `None` for the waker.
fn slot_of(token: Token) -> Option<(usize, usize)> {
    let n = token.0.checked_sub(1)?;
    Some((n / 2, n % 2))
}

/// IPv4-mapped IPv6 addresses as plain IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transmit::Transmit;
    use crossbeam_channel::{Receiver, Sender};
    use std::collections::VecDeque;
    use std::net::UdpSocket as StdSocket;
    use std::thread::JoinHandle;

    /// Answers every datagram with its bytes; counts what it got; fires a deadline once.
    #[derive(Default)]
    struct Echo {
        got: usize,
        out: VecDeque<Transmit>,
        echo: bool,
        deadline: Option<Instant>,
        fired: Option<Instant>,
    }

    impl Endpoint for Echo {
        fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, bytes: &[u8]) {
            self.got += 1;
            if self.echo {
                self.out.push_back(Transmit::new(from, bytes.to_vec()));
            }
        }
        fn handle_timeout(&mut self, now: Instant) {
            self.fired = Some(now);
            self.deadline = None;
        }
        fn poll_transmit(&mut self) -> Option<Transmit> {
            self.out.pop_front()
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.deadline
        }
    }

    /// Stops once `stop_when` holds of the endpoint or a command arrived, counting turns.
    struct Test {
        echo: Echo,
        commands: Receiver<u32>,
        command: Option<u32>,
        stop_when: fn(&Echo) -> bool,
    }

    impl Role for Test {
        type Endpoint = Echo;
        fn endpoint(&mut self, slot: usize) -> Option<&mut Echo> {
            (slot == 0).then_some(&mut self.echo)
        }
        fn turn(&mut self, _now: Instant, _turn: &mut Turn<'_>) -> Flow {
            if let Ok(command) = self.commands.try_recv() {
                self.command = Some(command);
                return Flow::Stop;
            }
            if (self.stop_when)(&self.echo) {
                Flow::Stop
            } else {
                Flow::Continue
            }
        }
    }

    struct Running {
        addr: SocketAddr,
        waker: Waker,
        commands: Sender<u32>,
        done: Receiver<(Test, IoStats)>,
        _thread: JoinHandle<()>,
    }

    /// Starts `echo` on a loopback socket in a thread, with a sleep long enough that only
    /// sockets, the waker and deadlines wake the loop.
    fn start(echo: Echo, stop_when: fn(&Echo) -> bool) -> Running {
        let socket = crate::driver::socket::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut runtime = Runtime::new(Clock::start())
            .unwrap()
            .with_max_sleep(Duration::from_secs(60));
        let waker = runtime.waker().unwrap();
        runtime.add(Some(socket), None).unwrap();
        let addr = runtime.local_addr(0, 0).unwrap();
        let (commands, rx) = crossbeam_channel::unbounded();
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let thread = std::thread::spawn(move || {
            let mut role = Test {
                echo,
                commands: rx,
                command: None,
                stop_when,
            };
            runtime.run(&mut role).unwrap();
            let _ = done_tx.send((role, runtime.stats()));
        });
        Running {
            addr,
            waker,
            commands,
            done,
            _thread: thread,
        }
    }

    fn finish(running: &Running) -> (Test, IoStats) {
        running
            .done
            .recv_timeout(Duration::from_secs(10))
            .expect("the loop stopped")
    }

    #[test]
    fn an_echo_endpoint_answers_through_the_loop() {
        let echo = Echo {
            echo: true,
            ..Echo::default()
        };
        let running = start(echo, |e| e.got >= 3);
        let client = StdSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 64];
        for word in [&b"one"[..], b"two", b"three"] {
            client.send_to(word, running.addr).unwrap();
            let (len, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], word);
            assert_eq!(from, running.addr);
        }
        let (role, stats) = finish(&running);
        assert_eq!(role.echo.got, 3);
        assert_eq!((stats.datagrams_in, stats.datagrams_out), (3, 3));
    }

    #[test]
    fn a_burst_bigger_than_a_batch_is_fed_whole() {
        let running = start(Echo::default(), |e| e.got >= 3 * BATCH + 5);
        let client = StdSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..3 * BATCH + 5 {
            client.send_to(&[i as u8; 100], running.addr).unwrap();
        }
        let (role, stats) = finish(&running);
        assert_eq!(role.echo.got, 3 * BATCH + 5);
        assert_eq!(stats.datagrams_in, (3 * BATCH + 5) as u64);
        assert_eq!(stats.recv_errors, 0);
    }

    #[test]
    fn the_waker_runs_the_role_turn() {
        let running = start(Echo::default(), |_| false);
        running.commands.send(7).unwrap();
        running.waker.wake().unwrap();
        let (role, _) = finish(&running);
        assert_eq!(role.command, Some(7));
    }

    #[test]
    fn the_endpoint_deadline_fires() {
        let echo = Echo {
            deadline: Some(Instant::from_micros(50_000)),
            ..Echo::default()
        };
        let running = start(echo, |e| e.fired.is_some());
        let (role, _) = finish(&running);
        let fired = role.echo.fired.expect("the timer fired");
        assert!(
            fired >= Instant::from_micros(50_000),
            "not early: {fired:?}"
        );
    }

    /// Two echo endpoints, each on its own socket, with their own deadlines.
    struct Pair(Vec<Echo>);

    impl Role for Pair {
        type Endpoint = Echo;
        fn endpoint(&mut self, slot: usize) -> Option<&mut Echo> {
            self.0.get_mut(slot)
        }
        fn turn(&mut self, _now: Instant, _turn: &mut Turn<'_>) -> Flow {
            if self.0.iter().all(|e| e.got > 0 && e.fired.is_some()) {
                Flow::Stop
            } else {
                Flow::Continue
            }
        }
    }

    #[test]
    fn many_endpoints_on_many_sockets_share_one_loop() {
        let mut runtime = Runtime::new(Clock::start())
            .unwrap()
            .with_max_sleep(Duration::from_secs(60));
        let mut addrs = Vec::new();
        let mut echoes = Vec::new();
        for i in 0..2u64 {
            let socket = crate::driver::socket::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
            let slot = runtime.add(Some(socket), None).unwrap();
            addrs.push(runtime.local_addr(slot, 0).unwrap());
            echoes.push(Echo {
                echo: true,
                deadline: Some(Instant::from_micros(20_000 * (i + 1))),
                ..Echo::default()
            });
        }
        let (done_tx, done) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let mut pair = Pair(echoes);
            runtime.run(&mut pair).unwrap();
            let _ = done_tx.send(pair);
        });
        let client = StdSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 16];
        for (i, addr) in addrs.iter().enumerate() {
            client.send_to(&[i as u8], addr).unwrap();
            let (len, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..len], from), (&[i as u8][..], *addr));
        }
        let pair = done.recv_timeout(Duration::from_secs(10)).expect("stopped");
        for (i, echo) in pair.0.iter().enumerate() {
            assert_eq!(echo.got, 1);
            let fired = echo.fired.expect("each timer fired");
            assert!(fired >= Instant::from_micros(20_000 * (i as u64 + 1)));
        }
    }

    #[test]
    fn tokens_map_back_to_slots() {
        for slot in [0, 1, 7, 1_000] {
            for family in 0..2 {
                assert_eq!(slot_of(token(slot, family)), Some((slot, family)));
            }
        }
        assert_eq!(slot_of(WAKER), None);
    }
}
