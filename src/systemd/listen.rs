//! The listening sockets: those systemd passed (`LISTEN_FDS`, socket activation) or one bound
//! on each address of the config's `listenaddr` (a host name may give several), at
//! `listenport`.
//!
//! Both paths end in std listeners, so socket activation, a plain start and the tests (which
//! hand over a socket bound to port 0) all run the same accept loop.

use std::net::{SocketAddr, TcpListener};

/// Why there is no listening socket.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// A socket systemd passed (`LISTEN_FDS`) is not a listening TCP socket.
    #[error("socket passed by systemd (LISTEN_FDS) is unusable: {0}")]
    Inherited(std::io::Error),
    /// Binding a configured address failed.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// `listenaddr:listenport`.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Takes the sockets passed by systemd, if any (none without socket activation). Call it
/// before any thread starts: it reads and clears the `LISTEN_*` variables (so children never
/// see them).
pub fn inherited() -> Result<Vec<TcpListener>, ListenError> {
    let mut fds = listenfd::ListenFd::from_env();
    (0..fds.len())
        .filter_map(|index| fds.take_tcp_listener(index).transpose())
        .collect::<Result<_, _>>()
        .map_err(ListenError::Inherited)
}

/// The inherited sockets, or else new ones bound to each of `addresses`; non-blocking, ready
/// for tokio.
pub fn listeners(
    inherited: Vec<TcpListener>,
    addresses: &[SocketAddr],
) -> Result<Vec<TcpListener>, ListenError> {
    let listeners = if inherited.is_empty() {
        bind_all(addresses)?
    } else {
        inherited
    };
    for listener in &listeners {
        listener
            .set_nonblocking(true)
            .map_err(ListenError::Inherited)?;
    }
    Ok(listeners)
}

/// Binds every address. A host name can give an address this machine cannot take (`::1`
/// for localhost with IPv6 disabled): such an address is skipped with a warning while another
/// one is served; any other failure (in use, not allowed) stops the start.
fn bind_all(addresses: &[SocketAddr]) -> Result<Vec<TcpListener>, ListenError> {
    let mut bound = Vec::new();
    let mut skipped = None;
    for &address in addresses {
        match TcpListener::bind(address) {
            Ok(listener) => bound.push(listener),
            Err(source) if absent_here(&source) => {
                tracing::warn!(%address, error = %source, "cannot listen on this address; skipped");
                skipped = Some(ListenError::Bind { address, source });
            }
            Err(source) => return Err(ListenError::Bind { address, source }),
        }
    }
    match skipped {
        Some(error) if bound.is_empty() => Err(error),
        _ => Ok(bound),
    }
}

/// Whether binding failed because this machine has no such address or address family.
fn absent_here(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::AddrNotAvailable
        || error.raw_os_error() == Some(rustix::io::Errno::AFNOSUPPORT.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_address_gets_a_listener_unless_inherited_ones_exist() {
        let addresses: Vec<SocketAddr> = ["127.0.0.1:0", "[::1]:0"]
            .map(|a| a.parse().expect("address"))
            .to_vec();
        let bound = listeners(Vec::new(), &addresses).expect("binds");
        let ips: Vec<_> = bound
            .iter()
            .map(|l| l.local_addr().expect("addr").ip())
            .collect();
        assert_eq!(
            ips,
            addresses.iter().map(SocketAddr::ip).collect::<Vec<_>>()
        );
        let inherited = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = inherited.local_addr().expect("addr").port();
        let taken = listeners(vec![inherited], &addresses).expect("inherited");
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].local_addr().expect("addr").port(), port);
    }
}
