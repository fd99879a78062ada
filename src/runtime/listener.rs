//! Listening sockets: one per loop and address where the platform can share a
//! port (`SO_REUSEPORT`), otherwise one socket cloned to every loop.

use std::io;
use std::net::SocketAddr;

use mio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

/// A listening socket of one loop.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) socket: TcpListener,
    /// On a `wss://` address: what accepted connections speak TLS with.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<super::TlsAcceptor>,
}

/// Binds every address for every loop; returns each loop's listeners.
pub(crate) fn bind_all(addrs: &[SocketAddr], loops: usize, backlog: u32) -> io::Result<Vec<Vec<TcpListener>>> {
    let mut per_loop: Vec<Vec<TcpListener>> = (0..loops).map(|_| Vec::with_capacity(addrs.len())).collect();
    for &addr in addrs {
        let first = bind(addr, backlog)?;
        // With port 0 the others must join the port the first one got.
        let bound = first.local_addr()?.as_socket().unwrap_or(addr);
        let mut sockets = vec![first];
        for _ in 1..loops {
            sockets.push(share(&sockets[0], bound, backlog)?);
        }
        for (listeners, socket) in per_loop.iter_mut().zip(sockets) {
            let std_listener: std::net::TcpListener = socket.into();
            listeners.push(TcpListener::from_std(std_listener));
        }
    }
    Ok(per_loop)
}

fn bind(addr: SocketAddr, backlog: u32) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // Listen on IPv6 only; an IPv4 address is listed separately.
        socket.set_only_v6(true)?;
    }
    #[cfg(not(windows))]
    socket.set_reuse_address(true)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    // Accepted sockets inherit it on Linux, which saves a call per connection.
    let _ = socket.set_nodelay(true);
    socket.bind(&addr.into()).map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket)
}

/// Another listener on the same port: its own socket where `SO_REUSEPORT`
/// lets the kernel balance between them, a clone of the first elsewhere.
fn share(first: &Socket, addr: SocketAddr, backlog: u32) -> io::Result<Socket> {
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    {
        let _ = first;
        bind(addr, backlog)
    }
    #[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
    {
        let _ = (addr, backlog);
        first.try_clone()
    }
}
