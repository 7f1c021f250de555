//! ClientBody: one client's stream response.
//!
//! hyper sends the response head and the chunks that were ready when the client came (a
//! cached header, `keyframe=last`'s GOP); then the body joins its hub's recipients and the
//! hub's publisher writes every chunk into the client's socket itself, in one pass over all
//! its clients (see [`crate::fanout::deliver`] and [`super::direct`]), while hyper waits.
//! When the client's socket is full, hyper takes over until it has written what the socket
//! did not take (waiting for the socket as it does, and cutting a client that stalls, see
//! [`super::stall`]), then hands the client back. When the stream ends for this client (it
//! ended, the client fell behind, it was stopped by command), hyper takes over to send what
//! is left and to close the connection.
//!
//! A client that falls [`LAG_MAX`] behind live (it reads too slowly, or paused) skips ahead to
//! a keyframe on a container-aware stream; on an opaque one, which it could not resume
//! cleanly, it is cut off (its connection is reset, so it can tell a truncated stream from a
//! finished one). It never slows the others.
//!
//! Each body lists its client with the stream ([`ClientEntry`], dropped with the body) and
//! counts the bytes its socket took with one atomic add per write.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Instant;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::direct::DirectSocket;
use super::mpjpeg;
use super::stall::ResetOnClose;
use crate::fanout::deliver::Recipient;
use crate::fanout::hub::{BATCH_CHUNKS_MAX, Event, LAG_MAX, Subscriber};
use crate::fanout::join::Join;
use crate::stats::{ClientEntry, ClientInfo};
use crate::stream::Stream;

/// The end of a response that nothing on our side ended.
const CLIENT_CLOSED: &str = "client closed the connection";
/// What a stalled client's line says.
const STALLED: &str = "stalled: took no bytes for too long";

/// Why a client's response was cut short.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// It fell too far behind live.
    #[error("client too slow: more than {LAG_MAX:?} behind live")]
    TooSlow,
    /// Its socket failed (the peer went away).
    #[error("cannot write to the client")]
    Write(#[source] io::Error),
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
    /// Its connection's socket, written directly once hyper sent the head.
    pub socket: Arc<DirectSocket>,
}

/// Who writes a client's bytes now.
#[derive(Debug)]
enum Mode {
    /// hyper: the head and the chunks that were ready at once, and what a full socket did
    /// not take; then back to `Direct`.
    Hyper,
    /// The hub's publisher, straight into the socket.
    Direct,
    /// The stream ended for this client: hyper sends what is pending, then ends the response
    /// (with the error, if any).
    Finished(Option<ClientError>),
    /// The response is gone (the connection closed).
    Gone,
}

/// What a look at the subscription found.
enum Fill {
    /// Chunks were added to `pending`.
    Data,
    /// The stream ended for this client.
    End(Option<ClientError>),
}

struct State {
    /// Dropped with the response: a client that left withdraws its demand at once, even from
    /// a hub that publishes nothing more.
    subscriber: Option<Subscriber>,
    /// Bytes not yet taken by the socket, oldest first (the first may be partly written:
    /// it is advanced in place).
    pending: VecDeque<Bytes>,
    /// Wraps raw MJPEG into MPJPEG parts for this client (built-in MPJPEG).
    mpjpeg: Option<(mpjpeg::Wrapper, Vec<Bytes>)>,
    client: Client,
    sent: u64,
    end: &'static str,
    /// Its line in the stream's list of clients.
    entry: ClientEntry,
    mode: Mode,
    /// The response's task, woken when hyper must take over.
    waker: Option<Waker>,
}

/// The state of one client's response, shared by hyper's body and the hub's publisher.
struct Shared(Mutex<State>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The body of one client's stream response.
pub struct ClientBody {
    shared: Arc<Shared>,
    /// Cancelled when its stream (or feed) is stopped.
    cancel: CancellationToken,
    /// Wakes it when `cancel` fires (allocated once per client).
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
        let state = State {
            subscriber: Some(subscriber),
            pending,
            mpjpeg: None,
            client,
            sent: 0,
            end: CLIENT_CLOSED,
            entry,
            mode: Mode::Hyper,
            waker: None,
        };
        Self {
            shared: Arc::new(Shared(Mutex::new(state))),
            cancelled: Box::pin(cancel.clone().cancelled_owned()),
            cancel,
        }
    }

    /// Ends this client's stream before its first byte: a HEAD gets the headers only.
    pub fn end_headers_only(self) {
        self.shared.lock().end = "HEAD: headers only";
    }

    /// Serves the raw MJPEG of this client as MPJPEG parts from now on.
    pub fn wrap_mpjpeg(self) -> Self {
        {
            let mut state = self.shared.lock();
            state.mpjpeg = Some((mpjpeg::Wrapper::default(), Vec::new()));
            state.wrap_pending();
        }
        self
    }
}

impl State {
    fn wrap_pending(&mut self) {
        let Some((wrapper, wrapped)) = self.mpjpeg.as_mut() else {
            return;
        };
        for chunk in self.pending.drain(..) {
            wrapper.wrap(chunk, wrapped);
        }
        self.pending.extend(wrapped.drain(..));
    }

    fn count(&mut self, bytes: usize) {
        self.sent += bytes as u64;
        self.entry.sent(bytes as u64);
    }

    /// Takes the next chunks of the subscription into `pending`, or learns that the stream
    /// ended for this client; `None` when there is nothing new.
    fn fill(&mut self) -> Option<Fill> {
        loop {
            let Some(subscriber) = self.subscriber.as_mut() else {
                return Some(Fill::End(None));
            };
            let event = subscriber.try_next(&mut self.pending, BATCH_CHUNKS_MAX)?;
            match event {
                Event::Data => {
                    self.wrap_pending();
                    return Some(Fill::Data);
                }
                // A failure between two runs: the producer is being resurrected, keep waiting.
                Event::Failed(_) => {}
                Event::Skipped => {
                    let skips = subscriber.skips();
                    self.entry.skipped(skips);
                    tracing::info!(
                        peer = %self.client.peer,
                        path = %self.client.path,
                        skips,
                        "client too slow or paused: skipping ahead to a keyframe"
                    );
                }
                Event::Lagged => {
                    self.end = "too slow: fell behind live";
                    self.entry.cut();
                    self.client.reset.set();
                    return Some(Fill::End(Some(ClientError::TooSlow)));
                }
                Event::Ended => {
                    self.end = "stream ended";
                    return Some(Fill::End(None));
                }
                Event::Closed => {
                    self.end = "server stopping";
                    return Some(Fill::End(None));
                }
            }
        }
    }

    /// Writes what the socket takes of `pending` now: all of it (true), or part of it as the
    /// socket is full (false); an error if the socket failed.
    fn write_pending(&mut self) -> Result<bool, ClientError> {
        if self.pending.is_empty() {
            return Ok(true);
        }
        let mut slices = [IoSlice::new(&[]); BATCH_CHUNKS_MAX];
        let mut count = 0;
        for (slice, chunk) in slices.iter_mut().zip(&self.pending) {
            *slice = IoSlice::new(chunk);
            count += 1;
        }
        match self.client.socket.write(&slices[..count]) {
            Ok(written) => {
                self.count(written);
                self.consume(written);
                Ok(self.pending.is_empty())
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(error) => Err(ClientError::Write(error)),
        }
    }

    /// Drops the first `written` bytes of `pending`.
    fn consume(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.pending.front_mut() else {
                return;
            };
            if front.len() > written {
                front.advance(written);
                return;
            }
            written -= front.len();
            self.pending.pop_front();
        }
    }

    /// Hands the rest of the response to hyper, which sends what is pending and then ends it.
    fn finish(&mut self, error: Option<ClientError>) {
        self.hand_to_hyper(Mode::Finished(error));
    }

    /// Has hyper write what is pending, and then go on as `mode` says.
    fn hand_to_hyper(&mut self, mode: Mode) {
        self.mode = mode;
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

impl Recipient for Shared {
    fn deliver(&self) -> bool {
        let mut state = self.lock();
        if !matches!(state.mode, Mode::Direct) {
            return false;
        }
        // hyper's own bytes (the head, the first chunks) go out first.
        if !state.client.socket.hyper_idle() {
            return true;
        }
        if state.pending.is_empty()
            && let Some(Fill::End(error)) = state.fill()
        {
            state.finish(error);
            return false;
        }
        match state.write_pending() {
            Ok(true) => true,
            // A full socket: its own task writes the rest when the socket takes it (and
            // cuts the client if it never does), then hands it back.
            Ok(false) => {
                state.hand_to_hyper(Mode::Hyper);
                false
            }
            Err(error) => {
                state.hand_to_hyper(Mode::Finished(Some(error)));
                false
            }
        }
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
        let mut state = this.shared.lock();
        loop {
            if !matches!(state.mode, Mode::Direct)
                && let Some(chunk) = state.pending.pop_front()
            {
                state.count(chunk.len());
                // Direct writes must wait until hyper has flushed this.
                state.client.socket.hyper_wrote();
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            match &mut state.mode {
                Mode::Finished(error) => return Poll::Ready(error.take().map(Err)),
                Mode::Gone => return Poll::Ready(None),
                Mode::Hyper | Mode::Direct if this.cancel.is_cancelled() => {
                    state.end = "stopped by command";
                    state.mode = Mode::Finished(None);
                }
                Mode::Hyper => {
                    let Some(hub) = state.subscriber.as_ref().map(|s| Arc::clone(s.hub())) else {
                        return Poll::Ready(None);
                    };
                    state.mode = Mode::Direct;
                    // hyper holds the head at least (maybe after an earlier response's flush).
                    state.client.socket.hyper_wrote();
                    hub.add_recipient(Arc::clone(&this.shared) as Arc<dyn Recipient>);
                }
                Mode::Direct => {
                    state.waker = Some(cx.waker().clone());
                    drop(state);
                    ready!(this.cancelled.as_mut().poll(cx));
                    state = this.shared.lock();
                }
            }
        }
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.mode = Mode::Gone;
        state.subscriber = None;
        if state.client.reset.is_set() && state.end == CLIENT_CLOSED {
            state.end = STALLED;
        }
        tracing::info!(
            peer = %state.client.peer,
            path = %state.client.path,
            bytes = state.sent,
            duration = ?state.client.started.elapsed(),
            reason = state.end,
            "client disconnected"
        );
    }
}
