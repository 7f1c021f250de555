//! Cuts off clients that stop reading.
//!
//! A client that reads nothing at all never lets hyper ask the stream body for more bytes, so
//! the hub's lag bound never sees it: a paused player or a vanished peer would keep its
//! stream running and its buffers pinned for ever. This wrapper fails a write that has been
//! waiting for the socket longer than [`WRITE_STALL_MAX`], which ends the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a client may take no bytes at all while we have some for it: longer than any
/// network hiccup a live player survives, short enough that a dead peer frees its stream soon.
pub const WRITE_STALL_MAX: Duration = Duration::from_secs(3);

/// A socket whose writes fail once they have waited [`WRITE_STALL_MAX`].
pub struct StallGuard<T> {
    inner: T,
    deadline: Pin<Box<Sleep>>,
    waiting: bool,
}

impl<T> StallGuard<T> {
    /// Guards `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(WRITE_STALL_MAX)),
            waiting: false,
        }
    }

    /// Turns a pending write into an error once it has waited too long.
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        if !self.waiting {
            self.waiting = true;
            self.deadline
                .as_mut()
                .reset(Instant::now() + WRITE_STALL_MAX);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("client took no bytes for {WRITE_STALL_MAX:?}"),
            ))),
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

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
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

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_stall_limit() {
        let (writer, _reader_that_never_reads) = tokio::io::duplex(16);
        let mut guarded = StallGuard::new(writer);
        guarded.write_all(&[0; 16]).await.expect("fits the buffer");
        let started = Instant::now();
        let error = guarded.write_all(&[0; 1]).await.expect_err("stalled");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), WRITE_STALL_MAX);
    }
}
