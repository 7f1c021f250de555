//! The accept loop: one task per connection, hyper HTTP/1.1 on each.
//!
//! Every accepted socket gets `TCP_NODELAY` (a chunk goes out the moment it is written) and a
//! small `TCP_NOTSENT_LOWAT`, so that a slow client's backlog stays in our bounded hub, where
//! it is measured and cut, instead of hiding seconds of video in a 4 MiB kernel buffer. The
//! kernel watches for dead peers on each (keepalive and `TCP_USER_TIMEOUT`, see [`stall`]),
//! so a client that only pauses is never taken for one.
//!
//! Every accepted connection's end is logged with its peer, the requests it made and why it
//! ended, including those hyper ends before any request reaches the routes (nothing sent, a
//! garbage or partial request, headers too large, the header read timeout): the spec asks
//! that "incoming connections should be logged".
//!
//! [`stall`]: super::stall

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::direct::DirectSocket;
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
                // An IPv4 client of a dual-stack socket (`[::]`, systemd's default) arrives as
                // `::ffff:a.b.c.d`: logs and the status page name it as the admin knows it.
                let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
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
    let _open = routes.traffic.accepted();
    let reset = ResetOnClose::default();
    let requests = Arc::new(AtomicU64::new(0));
    let direct = match DirectSocket::new(&socket) {
        Ok(direct) => Arc::new(direct),
        Err(error) => {
            tracing::warn!(%peer, %error, "cannot share the socket (out of file descriptors?)");
            return;
        }
    };
    let socket = StallGuard::new(socket, WRITE_STALL_MAX, reset.clone(), Arc::clone(&direct));
    let service = {
        let (reset, requests) = (reset.clone(), Arc::clone(&requests));
        service_fn(move |request| {
            requests.fetch_add(1, Ordering::Relaxed);
            Arc::clone(&routes).handle(request, peer, reset.clone(), Arc::clone(&direct))
        })
    };
    // The connection, and with it any response body, ends with this block: the clients'
    // own lines come before the connection's.
    let result = {
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .writev(true)
            // What hyper queues for a client is lag the hub cannot see: keep it small.
            .max_buf_size(HYPER_BUFFER_BYTES)
            .serve_connection(TokioIo::new(socket), service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => Some(result),
            _ = cancel.cancelled() => {
                connection.as_mut().graceful_shutdown();
                // However hyper ends it now, the server is what ended it.
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
                None
            }
        }
    };
    let requests = requests.load(Ordering::Relaxed);
    let (reason, error) = match result {
        Some(result) => end_reason(result, requests, reset.is_set()),
        None => ("server stopping", None),
    };
    let error = error.as_ref().map(tracing::field::display);
    tracing::info!(%peer, requests, reason, error, "connection closed");
}

/// Why a connection ended, in words, and hyper's error when the words are not the whole story.
fn end_reason(
    result: Result<(), hyper::Error>,
    requests: u64,
    cut: bool,
) -> (&'static str, Option<hyper::Error>) {
    let error = match result {
        Ok(()) if requests == 0 => return ("closed before a request", None),
        Ok(()) => return ("closed", None),
        Err(error) => error,
    };
    let reason = if cut {
        // The client's own line says why (stalled, too slow).
        "cut off"
    } else if error.is_timeout() {
        "header read timeout"
    } else if error.is_parse_too_large() {
        "headers too large"
    } else if error.is_parse() {
        "bad request"
    } else if error.is_incomplete_message() && requests == 0 {
        // hyper says "incomplete message" also of a peer that leaves during a response: only
        // a connection that has made no request yet was cut inside one.
        "closed in the middle of a request"
    } else if error.is_incomplete_message() || is_peer_gone(&error) {
        "client closed the connection"
    } else {
        return ("error", Some(error));
    };
    (reason, None)
}

/// Whether hyper failed because the peer went away (a reset, a broken pipe): the ordinary end
/// of a player that stops, not a fault. The I/O error is hyper's own, or, when a direct write
/// failed, the source of the body's error.
fn is_peer_gone(error: &hyper::Error) -> bool {
    std::iter::successors(std::error::Error::source(error), |error| error.source())
        .find_map(|source| source.downcast_ref::<std::io::Error>())
        .is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            )
        })
}
