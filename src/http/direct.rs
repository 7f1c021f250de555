//! A connection's socket, shared between hyper and the direct writes of its stream response.
//!
//! hyper sends the response head (and the first chunks: a cached header or GOP); from then on
//! the hub's publisher writes the stream into the socket itself (see
//! [`crate::fanout::deliver`]), while hyper waits for a body that yields nothing until the
//! stream ends. Two rules keep their bytes apart and the descriptor safe:
//!
//! - the publisher writes only once hyper has flushed everything it buffered (hyper writes
//!   nothing more until the body yields or ends, which the publisher decides);
//! - the publisher writes through a duplicate of the descriptor, which the socket's owner
//!   drops (under the lock every write takes) just before it closes its own: the socket
//!   closes when its owner says, and no write outlives it.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use rustix::net::{SendAncillaryBuffer, SendFlags, sendmsg};

/// See the [module documentation](self).
#[derive(Debug)]
pub struct DirectSocket {
    /// `None` once the socket's owner closed it.
    fd: Mutex<Option<OwnedFd>>,
    /// hyper holds no unsent bytes: its last write was followed by a complete flush.
    hyper_idle: AtomicBool,
}

impl DirectSocket {
    /// The shared side of `socket`, which its owner must [close](Self::close) when it closes
    /// `socket`.
    pub fn new(socket: &impl AsFd) -> io::Result<Self> {
        Ok(Self {
            fd: Mutex::new(Some(socket.as_fd().try_clone_to_owned()?)),
            hyper_idle: AtomicBool::new(false),
        })
    }

    /// hyper wrote bytes, or buffered some: direct writes wait for its flush.
    pub fn hyper_wrote(&self) {
        self.hyper_idle.store(false, Ordering::Release);
    }

    /// hyper flushed all it had.
    pub fn hyper_flushed(&self) {
        self.hyper_idle.store(true, Ordering::Release);
    }

    /// Whether direct writes may go out now.
    pub fn hyper_idle(&self) -> bool {
        self.hyper_idle.load(Ordering::Acquire)
    }

    /// The owner is about to close the socket: no write goes to it from now on.
    pub fn close(&self) {
        *self.fd.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Writes what the socket takes now, without waiting (`WouldBlock` when it takes
    /// nothing; `BrokenPipe` once the socket is closed).
    pub fn write(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let fd = self.fd.lock().unwrap_or_else(PoisonError::into_inner);
        let fd = fd
            .as_ref()
            .ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        // sendmsg rather than writev: no file-position lock (the descriptor is shared with its
        // duplicate) and no VFS layer on the hottest call of the fan-out.
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        Ok(sendmsg(
            fd,
            bufs,
            &mut SendAncillaryBuffer::default(),
            flags,
        )?)
    }
}
