//! The runtime: the cores on real UDP sockets.

pub mod udp;
