//! Cuts off clients that stop reading, and resets the connections of clients that are cut.
//!
//! A client that reads nothing at all never lets hyper ask the stream body for more bytes, so
//! the hub's lag bound never sees it: a paused player or a vanished peer would keep its
//! stream running and its buffers pinned for ever. This wrapper fails a write that has been
//! waiting for the socket longer than [`WRITE_STALL_MAX`], which ends the connection.
//!
//! A client that is cut off (stalled, or too far behind live) gets a TCP reset rather than a
//! normal close: otherwise it would go on reading the bytes still queued in the kernel for
//! seconds, as if nothing had happened.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a client may take no bytes at all while we have some for it: longer than a slow
/// reader's TCP window stays shut (a receiver reopens it only once half its buffer is free:
/// 64 KiB is over 6 s at 10 KB/s), short enough that a dead peer frees its stream soon.
pub const WRITE_STALL_MAX: Duration = Duration::from_secs(8);

/// Set when a connection must end with a reset (shared by the socket and its responses).
#[derive(Debug, Clone, Default)]
pub struct ResetOnClose(Arc<AtomicBool>);

impl ResetOnClose {
    /// Asks for a reset when the connection closes.
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the connection is to end with a reset (it was cut off).
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A socket whose writes fail once they have waited too long ([`WRITE_STALL_MAX`]).
pub struct StallGuard<T: std::os::fd::AsFd> {
    inner: T,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
    waiting: bool,
    reset: ResetOnClose,
}

impl<T: std::os::fd::AsFd> StallGuard<T> {
    /// Guards `inner`, failing writes that wait longer than `limit`; `reset` set by anyone
    /// makes its close a reset.
    pub fn new(inner: T, limit: Duration, reset: ResetOnClose) -> Self {
        Self {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
            waiting: false,
            reset,
        }
    }

    /// Turns a pending write into an error once it has waited too long.
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        if !self.waiting {
            self.waiting = true;
            let deadline = Instant::now() + self.limit;
            self.deadline.as_mut().reset(deadline);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.reset.set();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("client took no bytes for {:?}", self.limit),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn settle<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(result) => {
                self.waiting = false;
                Poll::Ready(result)
            }
            Poll::Pending => self.pending(cx),
        }
    }
}

impl<T: std::os::fd::AsFd> Drop for StallGuard<T> {
    fn drop(&mut self) {
        if self.reset.is_set() {
            // SO_LINGER 0: the close sends RST and drops what the kernel still queues.
            let _ = socket2::SockRef::from(&self.inner).set_linger(Some(Duration::ZERO));
        }
    }
}

impl<T: AsyncRead + Unpin + std::os::fd::AsFd> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin + std::os::fd::AsFd> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.settle(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.settle(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.settle(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_client_that_reads_nothing_is_cut_with_a_reset() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("address");
        let client = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let reset = ResetOnClose::default();
        let limit = Duration::from_millis(300);
        let mut guarded = StallGuard::new(server, limit, reset.clone());
        let started = Instant::now();
        let chunk = vec![0u8; 64 << 10];
        let error = loop {
            if let Err(error) = guarded.write_all(&chunk).await {
                break error;
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= limit);
        assert!(reset.is_set());
        drop(guarded);
        let mut client = client;
        let mut sink = vec![0u8; 1 << 20];
        let read = loop {
            match tokio::io::AsyncReadExt::read(&mut client, &mut sink).await {
                Ok(0) => break Ok(0),
                Ok(_) => continue,
                Err(error) => break Err(error),
            }
        };
        assert_eq!(
            read.expect_err("a reset, not a clean end").kind(),
            io::ErrorKind::ConnectionReset
        );
    }
}
