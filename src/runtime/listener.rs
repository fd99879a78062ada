//! Listening sockets, exclusive to this process by default.
//!
//! Without `reuse_port` each address is bound once, without `SO_REUSEPORT`,
//! and every loop gets a clone of that one socket: a second process on the
//! address fails with "address in use", and the loops of this process spread
//! accepts among themselves (each accepts when it wakes first). With
//! `reuse_port` every loop binds its own socket with `SO_REUSEPORT`, the
//! kernel balances connections among them, and other processes that set it
//! too may join the port.

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

/// Whether this platform can share a port between sockets (`SO_REUSEPORT`).
const CAN_REUSE_PORT: bool = cfg!(all(unix, not(any(target_os = "solaris", target_os = "illumos"))));

/// Binds every address for every loop; returns each loop's listeners.
pub(crate) fn bind_all(
    addrs: &[SocketAddr],
    loops: usize,
    backlog: u32,
    reuse_port: bool,
) -> io::Result<Vec<Vec<TcpListener>>> {
    if reuse_port && !CAN_REUSE_PORT {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io.reuse_port = true: this platform cannot share a port between processes (it has no SO_REUSEPORT); \
             set io.reuse_port = false",
        ));
    }
    let mut per_loop: Vec<Vec<TcpListener>> = (0..loops).map(|_| Vec::with_capacity(addrs.len())).collect();
    for &addr in addrs {
        let first = bind(addr, backlog, reuse_port)?;
        // With port 0 the others must join the port the first one got.
        let bound = first.local_addr()?.as_socket().unwrap_or(addr);
        let mut sockets = vec![first];
        for _ in 1..loops {
            let next = if reuse_port { bind(bound, backlog, true)? } else { sockets[0].try_clone()? };
            sockets.push(next);
        }
        for (listeners, socket) in per_loop.iter_mut().zip(sockets) {
            let std_listener: std::net::TcpListener = socket.into();
            listeners.push(TcpListener::from_std(std_listener));
        }
    }
    Ok(per_loop)
}

fn bind(addr: SocketAddr, backlog: u32, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // Listen on IPv6 only; an IPv4 address is listed separately.
        socket.set_only_v6(true)?;
    }
    // On Unix SO_REUSEADDR only lets a restart bind past connections in
    // TIME_WAIT; on Windows it would let another socket take the port.
    #[cfg(not(windows))]
    socket.set_reuse_address(true)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    socket.set_reuse_port(reuse_port)?;
    #[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
    let _ = reuse_port;
    socket.set_nonblocking(true)?;
    // Accepted sockets inherit it on Linux, which saves a call per connection.
    let _ = socket.set_nodelay(true);
    socket.bind(&addr.into()).map_err(|e| bind_error(addr, &e, reuse_port))?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket)
}

/// The error of a failed bind, naming the address and, for a port in use, what to do.
fn bind_error(addr: SocketAddr, e: &io::Error, reuse_port: bool) -> io::Error {
    let message = match e.kind() {
        io::ErrorKind::AddrInUse if reuse_port => format!(
            "cannot listen on {addr}: address in use (another process is listening there without io.reuse_port, \
             or as another user)"
        ),
        io::ErrorKind::AddrInUse => format!(
            "cannot listen on {addr}: address in use (another process is listening there; \
             set io.reuse_port = true to share the port between processes)"
        ),
        _ => format!("cannot listen on {addr}: {e}"),
    };
    io::Error::new(e.kind(), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn an_exclusive_address_in_use_is_refused_by_name() {
        let held = bind_all(&[loopback()], 2, 16, false).unwrap();
        let addr = held[0][0].local_addr().unwrap();
        assert_eq!(held[1][0].local_addr().unwrap(), addr, "both loops on the one port");
        for reuse_port in [false, true] {
            let Err(e) = bind_all(&[addr], 1, 16, reuse_port) else {
                panic!("a second bind of {addr} (reuse_port {reuse_port}) succeeded");
            };
            if reuse_port && !CAN_REUSE_PORT {
                assert_eq!(e.kind(), io::ErrorKind::Unsupported);
                continue;
            }
            assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
            assert!(e.to_string().starts_with(&format!("cannot listen on {addr}: address in use")), "{e}");
        }
    }

    #[test]
    fn shared_ports_join_only_by_consent() {
        if !CAN_REUSE_PORT {
            let e = bind_all(&[loopback()], 1, 16, true).unwrap_err();
            assert!(e.to_string().contains("no SO_REUSEPORT"), "{e}");
            return;
        }
        let shared = bind_all(&[loopback()], 2, 16, true).unwrap();
        let addr = shared[0][0].local_addr().unwrap();
        let joined = bind_all(&[addr], 1, 16, true).expect("a second group member");
        assert_eq!(joined[0][0].local_addr().unwrap(), addr);
        let e = bind_all(&[addr], 1, 16, false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
    }
}
