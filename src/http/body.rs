//! ClientBody: an `http_body::Body` that reads one client's subscription.
//!
//! Each poll hands hyper the next pending chunk; when none is pending it takes every chunk the
//! hub holds for this client at once, so hyper queues them and writes them in one vectored
//! write. A client that falls [`LAG_MAX`] behind live (it reads too slowly, or paused) skips
//! ahead to a keyframe on a container-aware stream; on an opaque one, which it could not
//! resume cleanly, it is cut off (its connection is aborted, so it can tell a truncated stream
//! from a finished one). It never slows the others.
//!
//! Each body lists its client with the stream ([`ClientEntry`], dropped with the body) and
//! counts the bytes it hands to hyper with one atomic add; it ends when its client's token
//! is cancelled (the stream or feed was stopped), which it checks once per batch (the check
//! takes the token's lock: not once per chunk on the fan-out's hottest path) and listens for
//! only when it is about to sleep.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::mpjpeg;
use super::stall::ResetOnClose;
use crate::fanout::hub::{BATCH_CHUNKS_MAX, Event, LAG_MAX, Subscriber};
use crate::fanout::join::Join;
use crate::stats::{ClientEntry, ClientInfo};
use crate::stream::Stream;

/// The end of a response that nothing on our side ended.
const CLIENT_CLOSED: &str = "client closed the connection";

/// Why a client's response was cut short.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// It fell too far behind live.
    #[error("client too slow: more than {LAG_MAX:?} behind live")]
    TooSlow,
}

/// Who a response is for: what the log lines about a client say.
#[derive(Debug, Clone)]
pub struct Client {
    /// The client's address.
    pub peer: SocketAddr,
    /// The path it asked for.
    pub path: String,
    /// When its request arrived.
    pub started: Instant,
    /// Its `User-Agent`, `-` when it sent none.
    pub agent: String,
    /// Set to end its connection with a reset (when it is cut off).
    pub reset: ResetOnClose,
}

/// The body of one client's stream response.
pub struct ClientBody {
    subscriber: Subscriber,
    pending: VecDeque<Bytes>,
    /// Wraps raw MJPEG into MPJPEG parts for this client (built-in MPJPEG).
    mpjpeg: Option<(mpjpeg::Wrapper, Vec<Bytes>)>,
    client: Client,
    sent: u64,
    end: &'static str,
    /// Its line in the stream's list of clients.
    entry: ClientEntry,
    /// Cancelled when its stream (or feed) is stopped.
    cancel: CancellationToken,
    /// Wakes it when `cancel` fires while it waits for data (allocated once per client).
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl ClientBody {
    /// A body of `stream` sending `pending` first, then whatever `subscriber` receives, to
    /// `client`, who joined as `join`; it is listed with the stream until it is dropped.
    pub fn new(
        stream: &Stream,
        join: Join,
        subscriber: Subscriber,
        pending: VecDeque<Bytes>,
        client: Client,
    ) -> Self {
        let entry = stream.clients().register(ClientInfo {
            peer: client.peer,
            stream: stream.config.name.clone(),
            join,
            user_agent: client.agent.clone(),
        });
        let cancel = stream.control().client_token();
        Self {
            subscriber,
            pending,
            mpjpeg: None,
            client,
            sent: 0,
            end: CLIENT_CLOSED,
            entry,
            cancelled: Box::pin(cancel.clone().cancelled_owned()),
            cancel,
        }
    }
}

impl ClientBody {
    /// Ends this client's stream before its first byte: a HEAD gets the headers only.
    pub fn end_headers_only(mut self) {
        self.end = "HEAD: headers only";
    }

    /// Serves the raw MJPEG of this client as MPJPEG parts from now on.
    pub fn wrap_mpjpeg(mut self) -> Self {
        self.mpjpeg = Some((mpjpeg::Wrapper::default(), Vec::new()));
        self.wrap_pending();
        self
    }

    fn wrap_pending(&mut self) {
        let Some((wrapper, wrapped)) = self.mpjpeg.as_mut() else {
            return;
        };
        for chunk in self.pending.drain(..) {
            wrapper.wrap(chunk, wrapped);
        }
        self.pending.extend(wrapped.drain(..));
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientError>>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.pending.pop_front() {
                this.sent += chunk.len() as u64;
                this.entry.sent(chunk.len() as u64);
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if this.cancel.is_cancelled() {
                this.end = "stopped by command";
                return Poll::Ready(None);
            }
            let polled = this
                .subscriber
                .poll_next(cx, &mut this.pending, BATCH_CHUNKS_MAX);
            let event = match polled {
                Poll::Ready(event) => event,
                Poll::Pending => {
                    // Only before sleeping: a stop must wake a client that gets no data.
                    ready!(this.cancelled.as_mut().poll(cx));
                    continue;
                }
            };
            match event {
                Event::Data => this.wrap_pending(),
                // A failure between two runs: the producer is being resurrected, keep waiting.
                Event::Failed(_) => {}
                Event::Skipped => {
                    let skips = this.subscriber.skips();
                    this.entry.skipped(skips);
                    tracing::info!(
                        peer = %this.client.peer,
                        path = %this.client.path,
                        skips,
                        "client too slow or paused: skipping ahead to a keyframe"
                    );
                }
                Event::Lagged => {
                    this.end = "too slow: fell behind live";
                    this.entry.cut();
                    this.client.reset.set();
                    return Poll::Ready(Some(Err(ClientError::TooSlow)));
                }
                Event::Ended => {
                    this.end = "stream ended";
                    return Poll::Ready(None);
                }
                Event::Closed => {
                    this.end = "server stopping";
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        if self.client.reset.is_set() && self.end == CLIENT_CLOSED {
            self.end = "stalled: took no bytes for too long";
        }
        tracing::info!(
            peer = %self.client.peer,
            path = %self.client.path,
            bytes = self.sent,
            duration = ?self.client.started.elapsed(),
            reason = self.end,
            "client disconnected"
        );
    }
}
