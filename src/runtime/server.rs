//! Starting and stopping a server: the builder, the loops' threads, the
//! handles to wait for it and to shut it down.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::{Poll, Waker};

#[cfg(feature = "tls")]
use super::TlsAcceptor;
use super::{
    descriptors, event_loop, listener, metrics, pubsub, Handler, Inlet, Metrics, PubSubStats, ServerConfig, Shared,
    Uplink,
};

/// The entry point: `Server::builder()`.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with default settings.
    #[must_use]
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            addrs: Vec::new(),
            loops: None,
            config: ServerConfig::default(),
            #[cfg(feature = "tls")]
            tls: None,
            uplink: None,
        }
    }
}

/// Builds and starts a server.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    /// Each address, and whether it serves `wss://`.
    addrs: Vec<(SocketAddr, bool)>,
    loops: Option<usize>,
    config: ServerConfig,
    #[cfg(feature = "tls")]
    tls: Option<TlsAcceptor>,
    uplink: Option<Arc<dyn Uplink>>,
}

impl ServerBuilder {
    /// Adds an address to listen on (port 0 picks a free port).
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.addrs.push((addr, false));
        self
    }

    /// Adds an address that serves `wss://` with the acceptor given to
    /// [`tls`](Self::tls). One server may listen on plain and TLS addresses at once.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn listen_tls(mut self, addr: SocketAddr) -> Self {
        self.addrs.push((addr, true));
        self
    }

    /// The certificate and key for the [`listen_tls`](Self::listen_tls) addresses.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, acceptor: TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
    }

    /// The number of event loops (default: the number of available cores).
    #[must_use]
    pub fn loops(mut self, loops: usize) -> Self {
        self.loops = Some(loops.max(1));
        self
    }

    /// A bridge that shares this node's topics with others (see [`Uplink`]):
    /// it gets every local publish and broadcast, hears which topics have
    /// subscribers here, and delivers what comes from elsewhere. One server
    /// starts it once.
    #[must_use]
    pub fn uplink(mut self, uplink: Arc<dyn Uplink>) -> Self {
        self.uplink = Some(uplink);
        self
    }

    /// The runtime settings.
    #[must_use]
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Binds every address and starts the loops, each with a handler made by
    /// `factory(loop_index)` on the loop's own thread.
    ///
    /// # Errors
    ///
    /// No address given, a TLS address without an acceptor, an address that
    /// cannot be bound, or a thread or poll that cannot be created.
    pub fn start<H, F>(self, factory: F) -> io::Result<ServerHandle>
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        if self.addrs.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no listen address"));
        }
        let loops = self.loops.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        #[cfg(feature = "tls")]
        let acceptors = self
            .addrs
            .iter()
            .map(|&(addr, tls)| match (tls, &self.tls) {
                (false, _) => Ok(None),
                (true, Some(acceptor)) => Ok(Some(acceptor.clone())),
                (true, None) => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{addr}: a TLS address needs a certificate"),
                )),
            })
            .collect::<io::Result<Vec<_>>>()?;
        let addrs: Vec<SocketAddr> = self.addrs.iter().map(|&(addr, _)| addr).collect();
        let per_loop = listener::bind_all(&addrs, loops, self.config.backlog, self.config.reuse_port)?;
        let local_addrs = per_loop[0].iter().map(|l| l.local_addr()).collect::<io::Result<Vec<_>>>()?;
        let mut config = self.config;
        let descriptors = descriptors::soft_limit();
        let fitted = descriptors::fit(config.max_connections, descriptors, loops);
        if fitted < config.max_connections {
            log::info!(
                "max_connections lowered from {} to {fitted}: the process may open {} descriptors (ulimit -n); \
                 connections past it are answered 503",
                config.max_connections,
                descriptors.unwrap_or_default()
            );
            config.max_connections = fitted;
        }
        let config = Arc::new(config);
        let factory = Arc::new(factory);
        let mut polls = Vec::with_capacity(loops);
        let mut wakers = Vec::with_capacity(loops);
        for _ in 0..loops {
            let poll = Poll::new().map_err(context("cannot create an event loop"))?;
            let waker =
                Waker::new(poll.registry(), event_loop::WAKER).map_err(context("cannot create an event loop"))?;
            wakers.push(Arc::new(waker));
            polls.push(poll);
        }
        let (bus, inboxes) = pubsub::Bus::new(&wakers, config.bus_capacity.max(1), self.uplink.clone());
        if let Some(uplink) = &self.uplink {
            uplink.attach(Inlet::new(bus.clone())).map_err(context("cannot start the uplink"))?;
        }
        let shared =
            Arc::new(Shared { shutdown: AtomicBool::new(false), bus, counters: metrics::Counters::new(loops) });
        let mut threads = Vec::with_capacity(loops);
        for (index, ((listeners, poll), inbox)) in per_loop.into_iter().zip(polls).zip(inboxes).enumerate() {
            let (config, shared, factory) = (config.clone(), shared.clone(), factory.clone());
            #[cfg(feature = "tls")]
            let listeners: Vec<listener::Listener> = listeners
                .into_iter()
                .zip(&acceptors)
                .map(|(socket, tls)| listener::Listener { socket, tls: tls.clone() })
                .collect();
            #[cfg(not(feature = "tls"))]
            let listeners: Vec<listener::Listener> =
                listeners.into_iter().map(|socket| listener::Listener { socket }).collect();
            let thread = std::thread::Builder::new().name(format!("ferrows-loop-{index}")).spawn(move || {
                let handler = factory(index);
                event_loop::EventLoop::new(index, poll, listeners, inbox, handler, config, shared)?.run()
            });
            let thread = thread.map_err(context("cannot start an event loop's thread"))?;
            threads.push(thread);
        }
        Ok(ServerHandle { local_addrs, shutdown: ShutdownHandle { shared }, threads })
    }
}

/// Prefixes an error with what was being done, for a message that stands alone.
fn context(what: &'static str) -> impl Fn(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    local_addrs: Vec<SocketAddr>,
    shutdown: ShutdownHandle,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

impl ServerHandle {
    /// The addresses the server listens on (with the ports actually bound),
    /// in the order they were given, plain and TLS alike.
    #[must_use]
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// What publishes could not deliver: full channels, dropped and closed slow subscribers.
    #[must_use]
    pub fn pubsub_stats(&self) -> &PubSubStats {
        &self.shutdown.shared.bus.stats
    }

    /// The server's metrics.
    #[must_use]
    pub fn metrics(&self) -> Metrics {
        Metrics { shared: self.shutdown.shared.clone() }
    }

    /// Topics with subscribers on any loop.
    #[must_use]
    pub fn topic_count(&self) -> usize {
        self.shutdown.shared.bus.directory_len()
    }

    /// A handle that can stop the server from another thread (a signal handler, say).
    #[must_use]
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Drains gracefully: upgrades are refused (503) and
    /// [`Metrics::draining`] turns true; every open session gets what was
    /// already queued or published for it, then Close 1001; the loops finish
    /// once those sessions have closed, or at the drain timeout.
    pub fn shutdown(&self) {
        self.shutdown.shutdown();
    }

    /// Waits for every loop to finish, then detaches the uplink, which
    /// carries their last publishes ([`Uplink::detach`]).
    ///
    /// # Errors
    ///
    /// The first error a loop stopped with.
    pub fn join(self) -> io::Result<()> {
        let mut result = Ok(());
        for thread in self.threads {
            let outcome = thread.join().unwrap_or_else(|_| Err(io::Error::other("event loop panicked")));
            if result.is_ok() {
                result = outcome;
            }
        }
        if let Some(uplink) = &self.shutdown.shared.bus.uplink {
            uplink.detach();
        }
        result
    }
}

/// Stops a server; cheap to clone and `Send`.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Asks every loop to drain and stop (see [`ServerHandle::shutdown`]).
    pub fn shutdown(&self) {
        self.shared.counters.draining.store(true, Ordering::Release);
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.bus.wake_all();
    }
}
