//! Tells paused clients from dead ones, and resets the connections of clients that are cut.
//!
//! A client that pauses (a player whose buffer is full, an ffmpeg probing its other inputs
//! one after another) takes no bytes for a while, then reads again: it is kept, because the
//! hub bounds its lag and resumes it at the newest keyframe. A dead peer is found by the
//! kernel ([`watch_peer`]: TCP keepalive on an idle connection, `TCP_USER_TIMEOUT` on
//! unacknowledged data); and a write that waits longer than [`WRITE_STALL_MAX`] fails, which
//! ends the connection, so that nothing keeps a stream running for ever.
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

use super::direct::DirectSocket;

/// How long a client may take no bytes at all while we have some for it: a paused player,
/// or an ffmpeg that probes several inputs one after another (upstream's 4x4 mosaic probes
/// four, about 5 s each), reads again well within a minute, and a slow reader's TCP window
/// reopens far sooner; a peer silent for longer is taken for gone, so that it stops holding
/// its stream running.
pub const WRITE_STALL_MAX: Duration = Duration::from_secs(60);
/// How long a connection with nothing to send stays quiet before the kernel starts probing
/// its peer: short, since a probe costs one empty segment.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// Time between two keepalive probes that go unanswered: several probes fit in
/// [`USER_TIMEOUT`], so one lost segment does not decide that a peer is gone.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// How long the peer may answer nothing (no ACK of our data, of a keepalive probe or of a
/// window probe) before the kernel drops the connection. Linux applies it to a receiver that
/// keeps its window shut too, alive or not (measured on 6.18: a reader paused with a full
/// buffer is cut after exactly this long), and it replaces the keepalive probe count; so it
/// must not be shorter than the pause a client is allowed: longer than [`WRITE_STALL_MAX`],
/// whose cut is logged with its reason and so must come first, by [`USER_TIMEOUT_MARGIN`].
pub const USER_TIMEOUT: Duration = Duration::from_secs(90);
/// How much sooner than the stall clock the kernel's clock may start: the receiver's window
/// shuts when its buffer is full, but our writes wait only once [`NOTSENT_LOWAT_BYTES`] more
/// are queued, which takes 30 s at 4.4 kbit/s (the lowest speech codecs' rate).
///
/// [`NOTSENT_LOWAT_BYTES`]: super::server::NOTSENT_LOWAT_BYTES
pub const USER_TIMEOUT_MARGIN: Duration = Duration::from_secs(30);
const _: () = assert!(
    USER_TIMEOUT.as_secs() >= WRITE_STALL_MAX.as_secs() + USER_TIMEOUT_MARGIN.as_secs(),
    "the kernel must not cut a paused client before the logged stall limit"
);

/// Has the kernel find a dead peer of `socket`: keepalive probes once the connection has been
/// quiet for [`KEEPALIVE_IDLE`], and a drop once the peer answered nothing for
/// [`USER_TIMEOUT`] (probes, or data it never acknowledged).
pub fn watch_peer(socket: &impl std::os::fd::AsFd) -> io::Result<()> {
    let socket = socket2::SockRef::from(socket);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    socket.set_tcp_keepalive(&keepalive)?;
    socket.set_tcp_user_timeout(Some(USER_TIMEOUT))
}

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

/// A socket whose writes fail once they have waited too long ([`WRITE_STALL_MAX`]), and which
/// tells its [`DirectSocket`] when hyper's writes are flushed and when it closes.
pub struct StallGuard<T: std::os::fd::AsFd> {
    inner: T,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
    waiting: bool,
    reset: ResetOnClose,
    direct: Arc<DirectSocket>,
}

impl<T: std::os::fd::AsFd> StallGuard<T> {
    /// Guards `inner`, failing writes that wait longer than `limit`; `reset` set by anyone
    /// makes its close a reset; `direct` is the shared side of `inner`.
    pub fn new(inner: T, limit: Duration, reset: ResetOnClose, direct: Arc<DirectSocket>) -> Self {
        Self {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
            waiting: false,
            reset,
            direct,
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
        self.direct.close();
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
        self.direct.hyper_wrote();
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.settle(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.direct.hyper_wrote();
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.settle(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // hyper flushes its socket only once its own buffer is empty.
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = poll {
            self.direct.hyper_flushed();
        }
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
        let direct = Arc::new(DirectSocket::new(&server).expect("dup"));
        let mut guarded = StallGuard::new(server, limit, reset.clone(), direct);
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

    #[tokio::test]
    async fn a_watched_socket_probes_its_peer_and_outlasts_the_stall_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let _client = tokio::net::TcpStream::connect(listener.local_addr().expect("address"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        watch_peer(&server).expect("set the options");
        let socket = socket2::SockRef::from(&server);
        assert!(socket.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(socket.tcp_keepalive_time().expect("idle"), KEEPALIVE_IDLE);
        assert_eq!(
            socket.tcp_keepalive_interval().expect("interval"),
            KEEPALIVE_INTERVAL
        );
        let user_timeout = socket.tcp_user_timeout().expect("TCP_USER_TIMEOUT");
        assert_eq!(user_timeout, Some(USER_TIMEOUT));
    }
}
