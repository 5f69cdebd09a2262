//! Listening sockets: one per worker and address, bound with SO_REUSEPORT so the kernel
//! spreads new connections across workers without a shared accept queue or lock.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// Accept queue length asked of the kernel (capped by net.core.somaxconn).
const BACKLOG: i32 = 4096;

/// Fails with `AddrInUse` when another process listens on `addr`.
///
/// SO_REUSEPORT lets any process of the same user join a port, so a second gateway started
/// by mistake would silently share the first one's traffic. A probe bound without
/// SO_REUSEPORT is refused by any existing listener, reuse-port or not.
pub fn ensure_free(addr: SocketAddr) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    if addr.is_ipv6() {
        probe.set_only_v6(true)?;
    }
    probe.bind(&addr.into())
}

/// Binds a non-blocking listener on `addr` that shares the port with the other workers.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
