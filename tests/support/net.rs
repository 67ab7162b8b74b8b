//! Loopback ports.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// A loopback port that is free now, for a child process to listen on: bound,
/// then released for the child to take. In-process servers bind port 0
/// instead, which has no such window.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .unwrap_or_else(|error| panic!("cannot find a free loopback port: {error}"))
        .port()
}

/// `127.0.0.1:<port>`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}
