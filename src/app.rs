//! run(): wires the configuration, the registry, the HTTP server and the signals together,
//! runs the main loop (reloads, systemd's status and watchdog), and owns shutdown.
//!
//! Shutdown is spelled out: on SIGTERM or SIGINT every stream body is ended, every task is
//! told through one cancellation token, and the program waits (bounded) for all of them, so
//! that no child process outlives the server.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::config::Config;
use crate::control::Bus;
use crate::http::routes::Routes;
use crate::http::server;
use crate::lifecycle::Tasks;
use crate::registry::Registry;
use crate::reload::watch::ConfigWatch;
use crate::reload::{ReloadLog, Reloader, Trigger};
use crate::stats::State;
use crate::status::ServerFacts;
use crate::systemd::notify::{self, Watchdog};

/// The longest shutdown may take: the spec's service must stop within 2 s, children get
/// SIGTERM then SIGKILL within it.
const SHUTDOWN_MAX: Duration = Duration::from_millis(1500);
/// How often `systemctl status` gets a fresh status line (and, without a watchdog, the
/// longest a hung main loop goes unnoticed by it).
const STATUS_INTERVAL: Duration = Duration::from_secs(5);
/// The longest start-up waits for the bus: a bus that hangs must not keep HTTP from serving.
const BUS_CONNECT_MAX: Duration = Duration::from_secs(5);
/// D-Bus reload requests that may wait for the main loop (each is one reload of the file).
const RELOADS_QUEUED_MAX: usize = 4;

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The listener could not be handed to tokio.
    #[error("cannot use the listening socket: {0}")]
    Listener(std::io::Error),
    /// Installing a signal handler failed.
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
}

/// Serves `config` on every one of `listeners` (the same routes on each) until SIGTERM or
/// SIGINT; reloads it on SIGHUP, when its file changes and when asked over D-Bus.
/// `activated`: the listeners came from systemd, so a reload never moves them. `bus`: where
/// to offer D-Bus control, if anywhere.
pub async fn run(
    config: Config,
    listeners: Vec<std::net::TcpListener>,
    activated: bool,
    bus: Option<Bus>,
) -> Result<(), RunError> {
    // Before the first request is answered: a signal must stop the server, never kill it.
    let mut signals = Signals::install()?;
    let listeners = (listeners.into_iter())
        .map(|listener| {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let address = listener.local_addr()?;
            Ok((listener, address))
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(RunError::Listener)?;
    let path = config.path.clone();
    let reloader = Reloader::new(&path, std::fs::read_to_string(&path).ok());
    let mut watch = ConfigWatch::new(&path)
        .inspect_err(|error| {
            tracing::warn!(%error, config = %path.display(), "cannot watch the config file: reload it with SIGHUP");
        })
        .ok();
    let tasks = Tasks::default();
    let registry = Registry::start(config, &tasks);
    let facts = ServerFacts::now(listeners.iter().map(|(_, address)| *address).collect());
    let routes = Arc::new(Routes {
        registry,
        screenshots: Default::default(),
        facts,
        traffic: Default::default(),
    });
    let mut servers = serve_all(listeners, &routes, &tasks);
    let (bus_reloads, mut reload_requests) = tokio::sync::mpsc::channel(RELOADS_QUEUED_MAX);
    // Before READY=1: once systemd says the service runs, its name is on the bus.
    let _bus = match bus {
        Some(bus) => join_bus(bus, &routes, bus_reloads, &tasks).await,
        None => None,
    };
    let reloads = &routes.facts.reloads;
    notify::ready(&status_line(&routes.registry, reloads));
    let watchdog = Watchdog::from_env();
    let tick = watchdog.map_or(STATUS_INTERVAL, |dog| dog.interval.min(STATUS_INTERVAL));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    loop {
        let mut reply = None;
        let trigger = tokio::select! {
            _ = signals.terminate.recv() => break,
            _ = signals.interrupt.recv() => break,
            _ = signals.hangup.recv() => Some(Trigger::Signal),
            changed = file_changed(&mut watch) => {
                if let Err(error) = changed {
                    tracing::warn!(%error, "cannot watch the config file any more: reload it with SIGHUP");
                    watch = None;
                }
                Some(Trigger::FileChanged)
            }
            Some(asked) = reload_requests.recv() => {
                reply = Some(asked);
                Some(Trigger::Bus)
            }
            _ = ticks.tick() => None,
        };
        if let Some(trigger) = trigger {
            let before = routes.registry.load().config.clone();
            let outcome = reloader.reload(trigger, &routes.registry, reloads);
            if let Some(reply) = reply {
                // The caller may have gone (a timeout): the reload stands all the same.
                let _ = reply.send(outcome.clone());
            }
            if outcome.is_some() {
                let after = routes.registry.load().config.clone();
                let moved = (before.listen_ips != after.listen_ips)
                    || (before.listen_port != after.listen_port);
                if moved && activated {
                    tracing::warn!(
                        "listenaddr or listenport changed, but systemd passed the sockets: \
                         change them in voyandz.socket"
                    );
                } else if moved {
                    servers = rebind(servers, &before, &after, &routes, &tasks);
                }
                notify::reloaded(&status_line(&routes.registry, reloads));
            }
        }
        // Read the state as requests do: a main loop or registry that hangs stops the pings.
        notify::status(&status_line(&routes.registry, reloads));
        if let Some(dog) = &watchdog {
            dog.ping();
        }
    }
    tracing::info!("stopping");
    notify::stopping();
    routes.registry.close();
    tasks.cancel.cancel();
    tasks.tracker.close();
    if tokio::time::timeout(SHUTDOWN_MAX, tasks.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            tasks = tasks.tracker.len(),
            "some tasks did not stop in time"
        );
    }
    for server in servers {
        server.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Offers D-Bus control on `bus`; `None` (logged once) when it cannot be had: HTTP goes on.
async fn join_bus(
    bus: Bus,
    routes: &Arc<Routes>,
    reloads: tokio::sync::mpsc::Sender<crate::control::ReloadReply>,
    tasks: &Tasks,
) -> Option<zbus::Connection> {
    let joined = tokio::time::timeout(
        BUS_CONNECT_MAX,
        crate::control::serve(bus, Arc::clone(routes), reloads, tasks),
    )
    .await;
    match joined {
        Ok(Ok(connection)) => {
            tracing::info!(%bus, name = crate::control::SERVICE, "on D-Bus");
            let _ = routes.facts.dbus.set(bus);
            Some(connection)
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "no D-Bus control: serving HTTP only");
            None
        }
        Err(_) => {
            tracing::warn!(%bus, waited = ?BUS_CONNECT_MAX, "no D-Bus control: the bus does not answer; serving HTTP only");
            None
        }
    }
}

/// An accept loop on each listener, all on the same routes.
fn serve_all(
    listeners: Vec<(tokio::net::TcpListener, std::net::SocketAddr)>,
    routes: &Arc<Routes>,
    tasks: &Tasks,
) -> Vec<tokio::task::JoinHandle<()>> {
    let addresses = listeners.iter().map(|(_, address)| *address).collect();
    routes.facts.set_listening(addresses);
    (listeners.into_iter())
        .map(|(listener, address)| {
            tracing::info!(%address, "listening");
            tokio::spawn(server::serve(listener, Arc::clone(routes), tasks.clone()))
        })
        .collect()
}

/// Moves the listening sockets to the addresses of `after`: the old ones close first (the
/// new address may take the same port), connections already accepted go on. If the new
/// addresses cannot be had, the old ones are taken again.
fn rebind(
    servers: Vec<tokio::task::JoinHandle<()>>,
    before: &Config,
    after: &Config,
    routes: &Arc<Routes>,
    tasks: &Tasks,
) -> Vec<tokio::task::JoinHandle<()>> {
    for server in &servers {
        server.abort();
    }
    let bind = |config: &Config| -> std::io::Result<Vec<_>> {
        let addresses: Vec<std::net::SocketAddr> = (config.listen_ips.iter())
            .map(|ip| std::net::SocketAddr::new(*ip, config.listen_port))
            .collect();
        let listeners = crate::systemd::listen::listeners(Vec::new(), &addresses)
            .map_err(std::io::Error::other)?;
        (listeners.into_iter())
            .map(|listener| {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let address = listener.local_addr()?;
                Ok((listener, address))
            })
            .collect()
    };
    match bind(after).or_else(|error| {
        tracing::error!(%error, "cannot listen where the new config says: listening where it was");
        bind(before)
    }) {
        Ok(listeners) => serve_all(listeners, routes, tasks),
        Err(error) => {
            tracing::error!(%error, "cannot listen any more: nothing is served until a reload that can");
            routes.facts.set_listening(Vec::new());
            Vec::new()
        }
    }
}

/// One line for `systemctl status`: `2/3 feeds running, 14 clients, last reload ok at …`.
fn status_line(registry: &Registry, reloads: &ReloadLog) -> String {
    let state = registry.state();
    let running = (state.feeds.iter())
        .filter(|feed| feed.state == State::Running)
        .count();
    let clients: usize = state.streams.iter().map(|stream| stream.clients).sum();
    let reload = reloads.last().map_or_else(
        || "no reload yet".to_owned(),
        |last| format!("last reload {}", last.summary()),
    );
    format!(
        "{running}/{} feeds running, {clients} clients, {reload}",
        state.feeds.len()
    )
}

/// Waits for the next change of the config file; never, when it is not watched.
async fn file_changed(watch: &mut Option<ConfigWatch>) -> std::io::Result<()> {
    match watch {
        Some(watch) => watch.changed().await,
        None => std::future::pending().await,
    }
}

/// The signals the server acts on, installed before the first request.
struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    fn install() -> Result<Self, RunError> {
        let install = |kind| signal(kind).map_err(RunError::Signals);
        Ok(Self {
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
            hangup: install(SignalKind::hangup())?,
        })
    }
}

/// Logs panics of any task with their backtrace: the task ends, the server goes on.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        // A caught one is logged once by its catcher, with its context and this backtrace.
        if crate::panics::stash(info) {
            return;
        }
        let backtrace = std::backtrace::Backtrace::force_capture();
        tracing::error!(%info, %backtrace, "task panicked");
    }));
}
