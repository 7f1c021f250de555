//! The listening socket: the one systemd passed (`LISTEN_FDS`, socket activation) or one
//! bound from the config's `listenaddr:listenport`.
//!
//! Both paths end in the same std listener, so socket activation, a plain start and the tests
//! (which hand over a socket bound to port 0) all run the same accept loop.

use std::net::{SocketAddr, TcpListener};

/// Why there is no listening socket.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The inherited fd 3 is not a listening TCP socket.
    #[error("socket passed by systemd (LISTEN_FDS) is unusable: {0}")]
    Inherited(std::io::Error),
    /// Binding the configured address failed.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// `listenaddr:listenport`.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Takes the socket passed by systemd, if any. Call it before any thread starts: it reads and
/// clears the `LISTEN_*` variables (so children never see them).
pub fn inherited() -> Result<Option<TcpListener>, ListenError> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    fds.take_tcp_listener(0).map_err(ListenError::Inherited)
}

/// The inherited socket, or a new one bound to `address`; non-blocking, ready for tokio.
pub fn listener(
    inherited: Option<TcpListener>,
    address: SocketAddr,
) -> Result<TcpListener, ListenError> {
    let listener = match inherited {
        Some(listener) => listener,
        None => {
            TcpListener::bind(address).map_err(|source| ListenError::Bind { address, source })?
        }
    };
    listener
        .set_nonblocking(true)
        .map_err(ListenError::Inherited)?;
    Ok(listener)
}
