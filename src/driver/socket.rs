//! Opening the driver's UDP sockets: socket2 for the options std does not expose (buffer
//! sizes, `SO_REUSEADDR`, `IPV6_V6ONLY`), then handed to mio as non-blocking sockets.
//!
//! This module owns only socket creation; reading and writing happen in the I/O thread.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Receive and send buffer size asked of the kernel (it may grant less). 4 MiB absorbs bursts
/// of a few thousand datagrams between two drains.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Opens a non-blocking UDP socket bound to `addr`. IPv6 sockets are IPv6-only (IPv4 goes
/// through its own socket), and `SO_REUSEADDR` lets a restarted node take its port back at
/// once. Buffer sizes are best effort.
pub fn bind_udp(addr: SocketAddr) -> io::Result<mio::net::UdpSocket> {
    open_udp(addr, false).map(mio::net::UdpSocket::from_std)
}

/// Opens a non-blocking UDP socket bound to `addr` like [`bind_udp`], as a std socket, with
/// `SO_REUSEPORT` too when `reuse_port` (several sockets on one port, one per shard: the
/// kernel spreads datagrams over them).
pub fn open_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::UdpSocket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    // Best effort: the kernel caps these at its own maximum.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_an_ephemeral_loopback_port() {
        let socket = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let local = socket.local_addr().unwrap();
        assert_eq!(local.ip().to_string(), "127.0.0.1");
        assert_ne!(local.port(), 0);
    }
}
