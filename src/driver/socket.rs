//! Opening the driver's UDP sockets: socket2 for the options std does not expose (buffer
//! sizes, `SO_REUSEPORT`, `IPV6_V6ONLY`), then handed to mio as non-blocking sockets.
//!
//! A port is never taken over from another socket: no socket here sets `SO_REUSEADDR`, so
//! binding a port in use fails with [`io::ErrorKind::AddrInUse`]. Only the shards of one
//! bootstrap server share a port (`SO_REUSEPORT` among themselves), after [`check_free`].
//!
//! This module owns only socket creation; reading and writing happen in the I/O thread.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Receive and send buffer size asked of the kernel (it may grant less). 4 MiB absorbs bursts
/// of a few thousand datagrams between two drains.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Opens a non-blocking UDP socket bound to `addr`. IPv6 sockets are IPv6-only (IPv4 goes
/// through its own socket). A port in use fails with [`io::ErrorKind::AddrInUse`]. Buffer
/// sizes are best effort.
pub fn bind_udp(addr: SocketAddr) -> io::Result<mio::net::UdpSocket> {
    open_udp(addr, false).map(mio::net::UdpSocket::from_std)
}

/// Opens a non-blocking UDP socket bound to `addr` like [`bind_udp`], as a std socket, with
/// `SO_REUSEPORT` too when `reuse_port` (several sockets on one port, one per shard: the
/// kernel spreads datagrams over them). Call [`check_free`] before the first socket of such a
/// group, or it would join another program's group on the same port.
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

/// Fails with [`io::ErrorKind::AddrInUse`] if another socket holds `addr` (checked by binding
/// it exclusively and closing it again); port 0 is always free.
pub fn check_free(addr: SocketAddr) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    open_udp(addr, false).map(drop)
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

    #[test]
    fn a_port_in_use_is_not_taken_over() {
        let first = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let err = bind_udp(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(
            check_free(addr).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        let shard = open_udp(addr, true).unwrap_err();
        assert_eq!(shard.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn shards_share_a_port_among_themselves() {
        let first = open_udp("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let addr = first.local_addr().unwrap();
        let second = open_udp(addr, true).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        assert_eq!(
            check_free(addr).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
    }
}
