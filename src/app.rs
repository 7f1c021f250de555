//! run(): wires the configuration, the registry, the HTTP server and the signals together,
//! and owns shutdown.
//!
//! Shutdown is spelled out: on SIGTERM or SIGINT every stream body is ended, every task is
//! told through one cancellation token, and the program waits (bounded) for all of them, so
//! that no child process outlives the server.

use std::sync::Arc;
use std::time::Duration;

use crate::lifecycle::Tasks;

use crate::config::Config;
use crate::http::routes::Routes;
use crate::http::server;
use crate::registry::Registry;
use crate::status::ServerFacts;

/// The longest shutdown may take: the spec's service must stop within 2 s, children get
/// SIGTERM then SIGKILL within it.
const SHUTDOWN_MAX: Duration = Duration::from_millis(1500);

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
/// SIGINT.
pub async fn run(config: Config, listeners: Vec<std::net::TcpListener>) -> Result<(), RunError> {
    // Before the first request is answered: a signal must stop the server, never kill it.
    let stop = stop_signal()?;
    let listeners = (listeners.into_iter())
        .map(|listener| {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let address = listener.local_addr()?;
            Ok((listener, address))
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(RunError::Listener)?;
    let tasks = Tasks::default();
    let registry = Registry::start(config, &tasks);
    let facts = ServerFacts::now(listeners.iter().map(|(_, address)| *address).collect());
    let routes = Arc::new(Routes {
        registry,
        screenshots: Default::default(),
        facts,
        traffic: Default::default(),
    });
    let mut servers = Vec::with_capacity(listeners.len());
    for (listener, address) in listeners {
        let serve = server::serve(listener, Arc::clone(&routes), tasks.clone());
        servers.push(tokio::spawn(serve));
        tracing::info!(%address, "listening");
    }
    stop.await;
    tracing::info!("stopping");
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

/// Installs the SIGTERM and SIGINT handlers now; the future completes at the first signal.
fn stop_signal() -> Result<impl Future<Output = ()>, RunError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
    })
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
