//! The accept loop: one task per connection, hyper HTTP/1.1 on each.
//!
//! Every accepted socket gets `TCP_NODELAY` (a chunk goes out the moment it is written) and a
//! small `TCP_NOTSENT_LOWAT`, so that a slow client's backlog stays in our bounded hub, where
//! it is measured and cut, instead of hiding seconds of video in a 4 MiB kernel buffer. The
//! kernel watches for dead peers on each (keepalive and `TCP_USER_TIMEOUT`, see [`stall`]),
//! so a client that only pauses is never taken for one.
//!
//! [`stall`]: super::stall

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::routes::Routes;
use super::stall::{ResetOnClose, StallGuard, WRITE_STALL_MAX, watch_peer};
use crate::lifecycle::Tasks;

/// Unsent bytes the kernel may hold per client socket: a few chunks of a high bit-rate
/// stream (a write wakes up at most this much at a time); 32 ms of hidden delay at 4 Mbit/s,
/// and still under 2 s for a client that can only take 10 KB/s.
pub const NOTSENT_LOWAT_BYTES: u32 = 16 << 10;
/// The most bytes hyper queues for one client (its minimum): bytes queued outside the hub
/// are lag it cannot see, and a slow client drains them slowly.
const HYPER_BUFFER_BYTES: usize = 8 << 10;
/// A client must send its request headers within this time (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish once the server stops (stream bodies are ended
/// first, so this only covers responses already being written).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `routes` on `listener` until the server stops; connections run among `tasks`.
pub async fn serve(listener: TcpListener, routes: Arc<Routes>, tasks: Tasks) {
    let Tasks { tracker, cancel } = tasks;
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                configure(&socket, peer);
                let span = tracing::debug_span!("connection", %peer);
                tracker.spawn(
                    connection(socket, peer, Arc::clone(&routes), cancel.clone()).instrument(span),
                );
            }
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

fn configure(socket: &TcpStream, peer: SocketAddr) {
    if let Err(error) = socket.set_nodelay(true) {
        tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
    }
    if let Err(error) = socket2::SockRef::from(socket).set_tcp_notsent_lowat(NOTSENT_LOWAT_BYTES) {
        tracing::debug!(%peer, %error, "cannot set TCP_NOTSENT_LOWAT");
    }
    if let Err(error) = watch_peer(socket) {
        tracing::debug!(%peer, %error, "cannot set TCP keepalive or TCP_USER_TIMEOUT");
    }
}

async fn connection(
    socket: TcpStream,
    peer: SocketAddr,
    routes: Arc<Routes>,
    cancel: CancellationToken,
) {
    let reset = ResetOnClose::default();
    let socket = StallGuard::new(socket, WRITE_STALL_MAX, reset.clone());
    let service =
        service_fn(move |request| Arc::clone(&routes).handle(request, peer, reset.clone()));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .writev(true)
        // What hyper queues for a client is lag the hub cannot see: keep it small.
        .max_buf_size(HYPER_BUFFER_BYTES)
        .serve_connection(TokioIo::new(socket), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, connection).await {
                Ok(result) => result,
                Err(_) => return,
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}
