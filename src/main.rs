//! The `ferrows` server binary.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use ferrows::app::App;
use ferrows::config::{self, Loaded, Settings};
use ferrows::runtime::{Server, ShutdownHandle};

/// The exit status for a configuration that cannot be used.
const BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let args: Result<Vec<String>, _> = std::env::args_os().skip(1).map(|a| a.into_string()).collect();
    let args = match args {
        Ok(args) => args,
        Err(arg) => {
            eprintln!("ferrows: argument {arg:?} is not valid UTF-8");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    let env = |name: &str| std::env::var(name).ok();
    let env_names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
    let settings = match Settings::load(&args, &env, env_names) {
        Ok(Loaded::Run(settings)) => settings,
        Ok(Loaded::PrintConfig(settings)) => {
            print!("{}", settings.to_toml());
            return ExitCode::SUCCESS;
        }
        Ok(Loaded::Help) => {
            print!("{}", config::help());
            return ExitCode::SUCCESS;
        }
        Ok(Loaded::Version) => {
            println!("ferrows {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ferrows: {e}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    env_logger::Builder::new().parse_filters(settings.log_filter()).target(env_logger::Target::Stderr).init();
    run(&settings)
}

fn run(settings: &Settings) -> ExitCode {
    #[cfg(not(feature = "deflate"))]
    if settings.deflate_enabled() {
        log::warn!("built without the deflate feature: deflate.enabled = true has no effect");
    }
    let server_config = settings.server_config();
    // Browsers let any page open a WebSocket anywhere; only the origin check stops them.
    let open_to_any_page = server_config.allowed_origins.allows_any();
    let mut builder = Server::builder().config(server_config);
    for addr in settings.plain_addrs() {
        builder = builder.listen(*addr);
    }
    #[cfg(feature = "tls")]
    let tls = match settings.tls_files() {
        Some((cert, key)) => match ferrows::runtime::TlsAcceptor::from_pem_files(cert, key) {
            Ok(acceptor) => {
                builder = builder.tls(acceptor.clone());
                for addr in settings.tls_addrs() {
                    builder = builder.listen_tls(*addr);
                }
                Some(acceptor)
            }
            Err(e) => {
                log::error!("cannot start: tls: {e}");
                return ExitCode::from(BAD_CONFIG);
            }
        },
        None => None,
    };
    // The cluster attaches from above, as the runtime's uplink.
    #[cfg(feature = "redis")]
    if let Some(config) = settings.cluster_config() {
        match ferrows::cluster::Cluster::new(config) {
            Ok(cluster) => builder = builder.uplink(std::sync::Arc::new(cluster)),
            Err(e) => {
                eprintln!("ferrows: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    #[cfg(not(feature = "redis"))]
    if settings.cluster_wanted() {
        log::error!("cannot start: redis.url is set, but this build has no `redis` feature");
        return ExitCode::from(BAD_CONFIG);
    }
    #[cfg(not(feature = "tls"))]
    if settings.tls_files().is_some() {
        log::error!("cannot start: tls.cert is set, but this build has no `tls` feature");
        return ExitCode::from(BAD_CONFIG);
    }
    if let Some(loops) = settings.loops() {
        builder = builder.loops(loops);
    }
    let app = match App::try_new(settings.app_config()) {
        Ok(app) => app,
        Err(e) => {
            log::error!("cannot start: {e}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    let identity = app.identity();
    let server = match builder.start(move |_| app.clone()) {
        Ok(server) => server,
        Err(e) => {
            // Said plainly on stderr, as configuration errors are: the operator is watching the start.
            eprintln!("ferrows: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The same count the builder chose.
    let loops = settings.loops().unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // local_addrs lists the plain addresses first, as they were given to the builder.
    let plain = settings.plain_addrs().len();
    let addrs: Vec<String> = server
        .local_addrs()
        .iter()
        .enumerate()
        .map(|(i, a)| if i < plain { format!("ws://{a}/") } else { format!("wss://{a}/") })
        .collect();
    log::info!(
        "ferrows {} listening on {}; {loops} loop(s); features: {}; configuration: {}",
        env!("CARGO_PKG_VERSION"),
        addrs.join(", "),
        features(),
        settings.sources()
    );
    if open_to_any_page && settings.plain_addrs().iter().chain(settings.tls_addrs()).any(|a| !a.ip().is_loopback()) {
        log::warn!(
            "listening beyond loopback with allowed_origins empty: a page from any site may open WebSocket sessions"
        );
    }
    if let Err(e) = stop_on_signals(server.shutdown_handle()) {
        log::warn!("cannot watch for signals: {e}");
    }
    #[cfg(not(feature = "tls"))]
    let tls: Option<()> = None;
    #[cfg(unix)]
    if let Err(e) = reload_on_sighup(tls, identity) {
        log::warn!("cannot watch for SIGHUP: {e}");
    }
    // No SIGHUP elsewhere: the certificate and the token key are read at start only.
    #[cfg(not(unix))]
    drop((tls, identity));
    match server.join() {
        Ok(()) => {
            log::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("stopped on error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The cargo features compiled in, for the start-up line.
fn features() -> String {
    let features: Vec<&str> = [
        (cfg!(feature = "deflate"), "deflate"),
        (cfg!(feature = "tls"), "tls"),
        (cfg!(feature = "redis"), "redis"),
        (cfg!(feature = "jwt"), "jwt"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if features.is_empty() {
        "none".to_owned()
    } else {
        features.join(", ")
    }
}

/// The TLS acceptor, when the server speaks wss://.
#[cfg(all(unix, feature = "tls"))]
type Tls = ferrows::runtime::TlsAcceptor;
#[cfg(all(unix, not(feature = "tls")))]
type Tls = ();

/// SIGHUP reads the certificate and key files and the token public key
/// again; sessions already open keep theirs, new handshakes and tokens get
/// the new ones. What fails to load is logged and what is in use stays.
#[cfg(unix)]
fn reload_on_sighup(tls: Option<Tls>, identity: std::sync::Arc<ferrows::app::Identity>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    std::thread::Builder::new().name("ferrows-sighup".into()).spawn(move || {
        for _ in signals.forever() {
            #[cfg(feature = "tls")]
            if let Some(acceptor) = &tls {
                match acceptor.reload() {
                    Ok(()) => log::info!("SIGHUP: certificate reloaded"),
                    Err(e) => log::error!("SIGHUP: certificate not reloaded, the old one stays: {e}"),
                }
            }
            #[cfg(not(feature = "tls"))]
            let _ = &tls;
            if identity.has_public_key() {
                match identity.reload() {
                    Ok(()) => log::info!("SIGHUP: token key reloaded"),
                    Err(e) => log::error!("SIGHUP: token key not reloaded, the old one stays: {e}"),
                }
            }
        }
    })?;
    Ok(())
}

/// The first SIGINT or SIGTERM drains the server; a second one exits at once
/// (status 1) for an operator who will not wait for the drain.
#[cfg(unix)]
fn stop_on_signals(handle: ShutdownHandle) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("ferrows-signals".into()).spawn(move || {
        let mut signals = signals.forever();
        if let Some(signal) = signals.next() {
            log::info!("signal {signal}: shutting down (again to stop at once)");
            handle.shutdown();
        }
        if let Some(signal) = signals.next() {
            log::warn!("signal {signal} again: stopping at once");
            std::process::exit(1);
        }
    })?;
    Ok(())
}

/// The same as on unix, with the flag polled: the platform has no signal pipe.
#[cfg(not(unix))]
fn stop_on_signals(handle: ShutdownHandle) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let flag = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, flag.clone())?;
    std::thread::Builder::new().name("ferrows-signals".into()).spawn(move || {
        let wait = || {
            while !flag.swap(false, Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        };
        wait();
        log::info!("interrupted: shutting down (again to stop at once)");
        handle.shutdown();
        wait();
        log::warn!("interrupted again: stopping at once");
        std::process::exit(1);
    })?;
    Ok(())
}
