//! Batched UDP datagram I/O: many datagrams per system call.
//!
//! On Linux and Android, [`UdpBatch`] reads with `recvmmsg` and writes with `sendmmsg` through
//! nix's safe wrappers, up to [`BATCH`] datagrams per call; elsewhere it falls back to one
//! `recv_from` / `send_to` per datagram with the same interface. On Linux it can also send a
//! run of equal datagrams to one destination with one `UDP_SEGMENT` send
//! ([`UdpBatch::send_segments`]), which the load generator uses to stay cheaper per query
//! than the servers it loads. Everything that moves many datagrams (the runtime's loop,
//! which drives every role, the load generator and the echo baseline) goes through it, so
//! that they pay the same per-datagram system-call cost.
//!
//! BatchSocket slots are [`SLOT_BYTES`] long, one byte more than the decoder accepts
//! ([`crate::krpc::MAX_MESSAGE_SIZE`]), so that an oversized datagram still reaches the
//! decoder as too large rather than silently truncated to an acceptable length. This module
//! owns only the system calls; what is read or written is the caller's business.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::os::fd::AsRawFd;

use crate::peers::AddressFamily;
use crate::transmit::Transmit;

/// Most datagrams read or written by one system call.
pub const BATCH: usize = 32;

/// Length of one receive slot: the decoder's limit plus one byte.
pub const SLOT_BYTES: usize = crate::krpc::MAX_MESSAGE_SIZE + 1;

/// A datagram to send: where to, and its bytes.
pub trait Outgoing {
    /// The destination.
    fn to(&self) -> SocketAddr;
    /// The payload.
    fn bytes(&self) -> &[u8];
}

impl Outgoing for Transmit {
    fn to(&self) -> SocketAddr {
        self.to
    }
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl<B: AsRef<[u8]>> Outgoing for (SocketAddr, B) {
    fn to(&self) -> SocketAddr {
        self.0
    }
    fn bytes(&self) -> &[u8] {
        self.1.as_ref()
    }
}

/// What one [`UdpBatch::send`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Datagrams refused (full send buffer, unreachable destination, ...); UDP is lossy, so
    /// the caller only counts them.
    pub failed: usize,
    /// System calls made.
    pub calls: usize,
}

impl SendReport {
    /// Adds the counts of `other`.
    pub fn add(&mut self, other: SendReport) {
        self.sent += other.sent;
        self.failed += other.failed;
        self.calls += other.calls;
    }
}

/// Datagrams waiting for a batched write, one queue per address family (IPv4, IPv6).
///
/// A driver pushes what its core hands out and [`Outbox::flush`] writes it, [`BATCH`]
/// datagrams per system call. When the send buffer is full (`WouldBlock`), the rest stay
/// queued for the next flush (the driver waits for the socket to become writable); a datagram
/// the kernel refuses outright is skipped and counted. At most `capacity` datagrams wait per
/// family: beyond that [`Outbox::push`] refuses them, for the caller to count.
#[derive(Debug)]
pub struct Outbox {
    queues: [VecDeque<Transmit>; 2],
    capacity: usize,
}

/// Datagrams that may wait in one family's queue of an [`Outbox`] by default.
pub const OUTBOX_CAPACITY: usize = 65_536;

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new(OUTBOX_CAPACITY)
    }
}

/// The queue index of a destination: 0 for IPv4, 1 for IPv6.
pub fn family(to: &SocketAddr) -> usize {
    usize::from(to.is_ipv6())
}

impl Outbox {
    /// An empty outbox holding at most `capacity` datagrams per family.
    pub fn new(capacity: usize) -> Self {
        Outbox {
            queues: [VecDeque::new(), VecDeque::new()],
            capacity,
        }
    }

    /// Queues `transmit` for the socket of its family; hands it back when that queue is full.
    pub fn push(&mut self, transmit: Transmit) -> Result<(), Transmit> {
        let queue = &mut self.queues[family(&transmit.to)];
        if queue.len() >= self.capacity {
            return Err(transmit);
        }
        queue.push_back(transmit);
        Ok(())
    }

    /// Datagrams waiting in the queue of `family` (0: IPv4, 1: IPv6).
    pub fn waiting(&self, family: usize) -> usize {
        self.queues.get(family).map_or(0, VecDeque::len)
    }

    /// Writes what is queued on the socket of its family in `sockets` (IPv4, IPv6), until the
    /// queues are empty or the send buffer is full. Datagrams of a family without a socket are
    /// dropped and returned as the second count. Each datagram that leaves the queue (sent,
    /// refused or dropped) is handed to `spent`, which may reuse its buffer.
    pub fn flush<S: BatchSocket>(
        &mut self,
        batch: &mut UdpBatch,
        sockets: [Option<&S>; 2],
        mut spent: impl FnMut(Transmit),
    ) -> (SendReport, usize) {
        let mut report = SendReport::default();
        let mut no_socket = 0;
        for (queue, socket) in self.queues.iter_mut().zip(sockets) {
            let Some(socket) = socket else {
                no_socket += queue.len();
                queue.drain(..).for_each(&mut spent);
                continue;
            };
            while !queue.is_empty() {
                report.calls += 1;
                match batch.send_batch(socket, queue.make_contiguous()) {
                    Ok(0) | Err(SendError::Full) => break,
                    Ok(n) => {
                        report.sent += n;
                        queue.drain(..n.min(queue.len())).for_each(&mut spent);
                    }
                    Err(SendError::First) => {
                        report.failed += 1;
                        queue.pop_front().into_iter().for_each(&mut spent);
                    }
                }
            }
        }
        (report, no_socket)
    }
}

/// Reusable buffers and headers for batched reads and writes on any UDP socket.
///
/// It is not `Send` (the system-call headers hold raw pointers into it): make it on the thread
/// that uses it.
pub struct UdpBatch {
    slots: Vec<Vec<u8>>,
    received: Vec<(usize, Option<SocketAddr>)>,
    /// The `recvmmsg` headers of each address family, IPv4 then IPv6: the kernel leaves in a
    /// header the length of the last address it stored there, and nix does not reset it, so a
    /// header that once held an IPv4 address would cut an IPv6 sender's address short.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    recv_headers: [nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>; 2],
    #[cfg(any(target_os = "linux", target_os = "android"))]
    send_headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

impl std::fmt::Debug for UdpBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpBatch")
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl Default for UdpBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl UdpBatch {
    /// Buffers for [`BATCH`] datagrams each way. The receive slots are allocated zeroed and
    /// lazily by the OS, so only the bytes datagrams actually fill cost memory.
    pub fn new() -> Self {
        UdpBatch {
            slots: (0..BATCH).map(|_| vec![0u8; SLOT_BYTES]).collect(),
            received: Vec::with_capacity(BATCH),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            recv_headers: [
                nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
                nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
            ],
            #[cfg(any(target_os = "linux", target_os = "android"))]
            send_headers: nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Reads up to [`BATCH`] datagrams that are already queued on the non-blocking `socket`
    /// and calls `each(from, bytes)` for each, in arrival order. Returns how many were read:
    /// 0 when none was queued (`WouldBlock`). Fewer than [`BATCH`] means the queue was empty
    /// when the call returned; with edge-triggered readiness a later datagram raises a new
    /// event. A datagram whose sender address cannot be read is skipped. `family` is the
    /// address family of `socket` (one batch may read sockets of both).
    pub fn recv<S, F>(
        &mut self,
        socket: &S,
        family: AddressFamily,
        mut each: F,
    ) -> io::Result<usize>
    where
        S: BatchSocket,
        F: FnMut(SocketAddr, &[u8]),
    {
        let count = self.recv_into_slots(socket, family)?;
        for (from, bytes) in self.datagrams() {
            each(from, bytes);
        }
        Ok(count)
    }

    /// Reads like [`UdpBatch::recv`] but keeps the datagrams for [`UdpBatch::datagrams`]
    /// instead of handing them out, so that a caller can pass over them more than once.
    pub fn read<S: BatchSocket>(&mut self, socket: &S, family: AddressFamily) -> io::Result<usize> {
        self.recv_into_slots(socket, family)
    }

    /// The datagrams of the last read (sender and bytes, in arrival order), without those
    /// whose sender address could not be read.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.slots
            .iter()
            .zip(&self.received)
            .filter_map(|(slot, &(len, from))| Some((from?, slot.get(..len)?)))
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn recv_into_slots<S: BatchSocket>(
        &mut self,
        socket: &S,
        family: AddressFamily,
    ) -> io::Result<usize> {
        use nix::sys::socket::{MsgFlags, recvmmsg};
        use std::io::IoSliceMut;
        self.received.clear();
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> = self
            .slots
            .iter_mut()
            .map(|slot| [IoSliceMut::new(slot.as_mut_slice())])
            .collect();
        let results = match recvmmsg(
            socket.as_raw_fd(),
            &mut self.recv_headers[match family {
                AddressFamily::V4 => 0,
                AddressFamily::V6 => 1,
            }],
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Ok(results) => results,
            Err(nix::errno::Errno::EAGAIN) => return Ok(0),
            Err(errno) => return Err(io::Error::from(errno)),
        };
        for message in results {
            let from = message.address.and_then(|a| storage_to_socket_addr(&a));
            self.received.push((message.bytes, from));
        }
        Ok(self.received.len())
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn recv_into_slots<S: BatchSocket>(
        &mut self,
        socket: &S,
        _family: AddressFamily,
    ) -> io::Result<usize> {
        self.received.clear();
        for slot in &mut self.slots {
            match socket.recv_one(slot) {
                Ok((len, from)) => self.received.push((len, Some(from))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if self.received.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(self.received.len())
    }

    /// Writes every datagram of `datagrams` on the non-blocking `socket`, [`BATCH`] per
    /// system call. A datagram the kernel refuses is counted in
    /// [`SendReport::failed`] and skipped; once the send buffer is full (`WouldBlock`), the
    /// rest are counted as failed too rather than waited for.
    pub fn send<S, D>(&mut self, socket: &S, datagrams: &[D]) -> SendReport
    where
        S: BatchSocket,
        D: Outgoing,
    {
        let mut report = SendReport::default();
        let mut rest = datagrams;
        while !rest.is_empty() {
            report.calls += 1;
            match self.send_batch(socket, rest) {
                Ok(0) | Err(SendError::Full) => {
                    report.failed += rest.len();
                    break;
                }
                Ok(n) => {
                    report.sent += n;
                    rest = rest.get(n..).unwrap_or_default();
                }
                Err(SendError::First) => {
                    // The first datagram was refused (e.g. an unreachable destination):
                    // skip it and go on with the others.
                    report.failed += 1;
                    rest = rest.get(1..).unwrap_or_default();
                }
            }
        }
        report
    }

    /// One system call: writes the first datagrams of `datagrams` (at most [`BATCH`]) and
    /// returns how many of them, from the first, the kernel took. `Err` means it took none:
    /// [`SendError::Full`] when the send buffer is full, [`SendError::First`] when the first
    /// datagram alone was refused. For callers that must know exactly which datagrams left.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn send_batch<S: BatchSocket, D: Outgoing>(
        &mut self,
        socket: &S,
        datagrams: &[D],
    ) -> Result<usize, SendError> {
        use nix::sys::socket::{MsgFlags, SockaddrStorage, sendmmsg};
        use std::io::IoSlice;
        let chunk = &datagrams[..datagrams.len().min(BATCH)];
        let iovs: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|d| [IoSlice::new(d.bytes())]).collect();
        let addrs: Vec<Option<SockaddrStorage>> = chunk
            .iter()
            .map(|d| Some(SockaddrStorage::from(d.to())))
            .collect();
        match sendmmsg(
            socket.as_raw_fd(),
            &mut self.send_headers,
            iovs.iter(),
            &addrs,
            [],
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(results) => Ok(results.count()),
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::ENOBUFS) => Err(SendError::Full),
            Err(_) => Err(SendError::First),
        }
    }

    /// One batch: see the Linux version.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub fn send_batch<S: BatchSocket, D: Outgoing>(
        &mut self,
        socket: &S,
        datagrams: &[D],
    ) -> Result<usize, SendError> {
        let mut sent = 0;
        for d in datagrams.iter().take(BATCH) {
            match socket.send_one(d.bytes(), d.to()) {
                Ok(_) => sent += 1,
                Err(e) if sent > 0 => {
                    let _ = e;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(SendError::Full),
                Err(_) => return Err(SendError::First),
            }
        }
        Ok(sent)
    }
}

impl UdpBatch {
    /// Sends `payload` to `to` as datagrams of `segment` bytes each (the last may be shorter)
    /// with one system call, by UDP generic segmentation offload (`UDP_SEGMENT`): the kernel
    /// walks its send path once for all of them. Returns how many datagrams that was. Fails
    /// with `Unsupported` where the OS has no such offload; callers fall back to
    /// [`UdpBatch::send`]. Only for a sender of many equal datagrams to one destination, such
    /// as the load generator.
    pub fn send_segments<S: BatchSocket>(
        &mut self,
        socket: &S,
        to: SocketAddr,
        payload: &[u8],
        segment: u16,
    ) -> io::Result<usize> {
        if segment == 0 || payload.is_empty() {
            return Ok(0);
        }
        let count = payload.len().div_ceil(usize::from(segment));
        #[cfg(target_os = "linux")]
        {
            use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
            let iov = [std::io::IoSlice::new(payload)];
            let offload = [ControlMessage::UdpGsoSegments(&segment)];
            let cmsgs: &[ControlMessage<'_>] = if count > 1 { &offload } else { &[] };
            let address = SockaddrStorage::from(to);
            sendmsg(
                socket.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_DONTWAIT,
                Some(&address),
            )
            .map_err(io::Error::from)?;
            Ok(count)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (socket, to, count);
            Err(io::Error::from(io::ErrorKind::Unsupported))
        }
    }
}

/// Why a batch write took no datagram at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The send buffer is full.
    Full,
    /// The first datagram was refused.
    First,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn storage_to_socket_addr(storage: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    storage
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

/// A UDP socket [`UdpBatch`] can drive: std's and mio's.
#[cfg(unix)]
pub trait BatchSocket: AsRawFd {
    /// One `recv_from` (the fallback path).
    fn recv_one(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// One `send_to` (the fallback path).
    fn send_one(&self, bytes: &[u8], to: SocketAddr) -> io::Result<usize>;
}

/// A UDP socket [`UdpBatch`] can drive: std's and mio's.
#[cfg(not(unix))]
pub trait BatchSocket {
    /// One `recv_from`.
    fn recv_one(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// One `send_to`.
    fn send_one(&self, bytes: &[u8], to: SocketAddr) -> io::Result<usize>;
}

impl BatchSocket for std::net::UdpSocket {
    fn recv_one(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from(buf)
    }
    fn send_one(&self, bytes: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.send_to(bytes, to)
    }
}

impl BatchSocket for mio::net::UdpSocket {
    fn recv_one(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from(buf)
    }
    fn send_one(&self, bytes: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.send_to(bytes, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    /// Reads until `want` datagrams arrived (loopback delivery is synchronous on Linux, but
    /// other systems may lag a little).
    fn read_all(
        batch: &mut UdpBatch,
        socket: &UdpSocket,
        want: usize,
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut got = Vec::new();
        for _ in 0..1000 {
            batch
                .recv(
                    socket,
                    AddressFamily::of(socket.local_addr().unwrap().ip()),
                    |from, bytes| got.push((from, bytes.to_vec())),
                )
                .unwrap();
            if got.len() >= want {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        got
    }

    #[test]
    fn an_empty_socket_reads_nothing() {
        let (a, _b) = pair();
        let mut batch = UdpBatch::new();
        assert_eq!(
            batch
                .recv(&a, AddressFamily::V4, |_, _| panic!("nothing was sent"))
                .unwrap(),
            0
        );
    }

    /// The kernel keeps in each receive header the length of the address it last stored:
    /// after a batch read IPv4 senders, an IPv6 sender read by the same batch must still come
    /// out whole, not cut to the length of an IPv4 address.
    #[test]
    fn one_batch_reads_whole_ipv6_senders_after_ipv4_ones() {
        let Ok(v6) = UdpSocket::bind("[::1]:0") else {
            println!("skipped: no IPv6 loopback here");
            return;
        };
        let v6_sender = UdpSocket::bind("[::1]:0").unwrap();
        v6.set_nonblocking(true).unwrap();
        let (v4, v4_sender) = pair();
        let mut batch = UdpBatch::new();
        for round in 0..3 {
            for _ in 0..BATCH {
                v4_sender
                    .send_to(b"four", v4.local_addr().unwrap())
                    .unwrap();
                v6_sender.send_to(b"six", v6.local_addr().unwrap()).unwrap();
            }
            let got4 = read_all(&mut batch, &v4, BATCH);
            let got6 = read_all(&mut batch, &v6, BATCH);
            assert_eq!(got4.len(), BATCH, "round {round}");
            assert_eq!(got6.len(), BATCH, "round {round}");
            let want4 = v4_sender.local_addr().unwrap();
            let want6 = v6_sender.local_addr().unwrap();
            assert!(got4.iter().all(|(from, b)| *from == want4 && b == b"four"));
            assert!(
                got6.iter().all(|(from, b)| *from == want6 && b == b"six"),
                "round {round}: {:?}",
                got6.iter().map(|(from, _)| from).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn more_than_a_batch_goes_through_in_order_with_sender_and_lengths() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        let datagrams: Vec<(SocketAddr, Vec<u8>)> = (0..BATCH * 3 + 5)
            .map(|i| (to, vec![i as u8; 1 + i % 300]))
            .collect();
        let mut batch = UdpBatch::new();
        let report = batch.send(&a, &datagrams);
        assert_eq!(report.sent, datagrams.len());
        assert_eq!(report.failed, 0);
        assert_eq!(report.calls, 4, "batches of {BATCH}");
        let got = read_all(&mut batch, &b, datagrams.len());
        assert_eq!(got.len(), datagrams.len());
        for (i, (from, bytes)) in got.iter().enumerate() {
            assert_eq!(*from, a.local_addr().unwrap());
            assert_eq!(bytes, &datagrams[i].1);
        }
    }

    #[test]
    fn the_largest_loopback_datagram_arrives_whole() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_nonblocking(true).unwrap();
        // Loopback carries up to 65,507 bytes of UDP payload over IPv4: that is below the
        // decoder's limit, so the slot must hold any of them whole.
        let big = vec![7u8; 65_507];
        if a.send_to(&big, b.local_addr().unwrap()).is_err() {
            return; // a smaller loopback MTU: nothing to check
        }
        let mut batch = UdpBatch::new();
        let got = read_all(&mut batch, &b, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.len(), big.len(), "not truncated");
    }

    #[test]
    fn a_refused_destination_is_counted_and_the_rest_still_go() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        // Port 0 is not a valid destination: the kernel refuses that datagram alone.
        let bad: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let datagrams = vec![
            (to, b"one".to_vec()),
            (bad, b"bad".to_vec()),
            (to, b"two".to_vec()),
        ];
        let mut batch = UdpBatch::new();
        let report = batch.send(&a, &datagrams);
        assert_eq!(report.sent, 2);
        assert_eq!(report.failed, 1);
        let got = read_all(&mut batch, &b, 2);
        let payloads: Vec<&[u8]> = got.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(payloads, vec![&b"one"[..], &b"two"[..]]);
    }

    #[test]
    fn segments_arrive_as_separate_datagrams() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        let mut payload = Vec::new();
        for i in 0..10u8 {
            payload.extend_from_slice(&[i; 50]);
        }
        payload.extend_from_slice(b"tail");
        let mut batch = UdpBatch::new();
        match batch.send_segments(&a, to, &payload, 50) {
            Ok(count) => assert_eq!(count, 11),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => return,
            Err(e) => panic!("{e}"),
        }
        let got = read_all(&mut batch, &b, 11);
        assert_eq!(got.len(), 11);
        for (i, (from, bytes)) in got.iter().take(10).enumerate() {
            assert_eq!(*from, a.local_addr().unwrap());
            assert_eq!(bytes, &vec![i as u8; 50]);
        }
        assert_eq!(got[10].1, b"tail");
    }

    #[test]
    fn the_outbox_writes_everything_in_batches_and_drops_a_family_without_socket() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        let mut batch = UdpBatch::new();
        let mut outbox = Outbox::new(BATCH + 3);
        for i in 0..BATCH + 3 {
            outbox.push(Transmit::new(to, vec![i as u8])).unwrap();
        }
        assert!(outbox.push(Transmit::new(to, vec![0])).is_err(), "full");
        let v6 = Transmit::new("[::1]:9".parse().unwrap(), b"x".to_vec());
        outbox.push(v6).unwrap();
        assert_eq!(outbox.waiting(1), 1);
        let mut spent = Vec::new();
        let (report, no_socket) =
            outbox.flush(&mut batch, [Some(&a), None], |t| spent.push(t.bytes));
        assert_eq!(
            (report.sent, report.failed, report.calls),
            (BATCH + 3, 0, 2)
        );
        assert_eq!(no_socket, 1);
        assert_eq!((outbox.waiting(0), outbox.waiting(1)), (0, 0));
        // Every datagram that left, sent or dropped, was handed back once.
        let mut firsts: Vec<u8> = spent.iter().map(|b| b[0]).collect();
        firsts.sort_unstable();
        let mut expected: Vec<u8> = (0..BATCH as u8 + 3).collect();
        expected.push(b'x');
        expected.sort_unstable();
        assert_eq!(firsts, expected);
        assert_eq!(
            outbox.flush(&mut batch, [Some(&a), None], |_| panic!("nothing left")),
            (SendReport::default(), 0)
        );
        let got = read_all(&mut batch, &b, BATCH + 3);
        let payloads: Vec<u8> = got.iter().map(|(_, p)| p[0]).collect();
        assert_eq!(payloads, (0..BATCH as u8 + 3).collect::<Vec<u8>>());
    }

    #[test]
    fn ipv6_senders_are_read_back() {
        let Ok(a) = UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 loopback on this machine
        };
        let b = UdpSocket::bind("[::1]:0").unwrap();
        b.set_nonblocking(true).unwrap();
        let mut batch = UdpBatch::new();
        let report = batch.send(&a, &[(b.local_addr().unwrap(), b"six".to_vec())]);
        assert_eq!(report.sent, 1);
        let got = read_all(&mut batch, &b, 1);
        assert_eq!(got, vec![(a.local_addr().unwrap(), b"six".to_vec())]);
    }
}
