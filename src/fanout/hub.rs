//! Hub: the broadcast point between one producer and its consumers.
//!
//! The producer publishes each read as one `Bytes` chunk the moment it arrives; consumers hold
//! a cursor (a sequence number) and take every pending chunk at once when they wake, so a busy
//! consumer writes many chunks in one vectored write while an idle system still sends each chunk
//! immediately. Chunks are shared by reference count, never copied per consumer.
//!
//! Memory is bounded by the hub, not by its consumers: chunks older than [`LAG_MAX`] or beyond
//! [`LAG_BYTES_MAX`] are dropped whatever any consumer still wants. A consumer whose cursor
//! points before the oldest chunk is told it [`Event::Lagged`]; it never slows the producer
//! or the other consumers. The number of subscribers is published as the hub's *demand*,
//! which is what starts and stops on-demand feeds and streams.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

/// How far behind live a consumer may fall before it is cut off (or, for container-aware
/// streams, resynchronised): more than a player's jitter buffer, less than anyone would call
/// live. Also how long published chunks are kept.
pub const LAG_MAX: Duration = Duration::from_secs(2);
/// The most bytes a hub keeps, whatever their age: bounds memory for very high bit rates
/// (4 MiB is 1 s of a 32 Mbit/s stream).
pub const LAG_BYTES_MAX: usize = 4 << 20;
/// The most chunks one consumer takes per wake-up: enough to coalesce a burst into one
/// vectored write (IOV_MAX is 1024), small enough to bound per-consumer state.
pub const BATCH_CHUNKS_MAX: usize = 64;

/// What a subscriber sees next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Chunks were appended to the caller's batch.
    Data,
    /// The producer failed to start or died before its next byte (it will be resurrected).
    Failed(Arc<str>),
    /// The cursor fell behind the oldest kept chunk; `skip_to_live` moves it to the present.
    Lagged,
    /// The producer ended for good (its input ended, or it must not be resurrected).
    Ended,
    /// The server is stopping.
    Closed,
}

/// One producer's output, shared by all its consumers.
pub struct Hub {
    name: Arc<str>,
    ring: Mutex<Ring>,
    demand: watch::Sender<usize>,
}

struct Ring {
    chunks: VecDeque<Slot>,
    /// Sequence number of `chunks[0]` (or of the next chunk when empty).
    first_seq: u64,
    bytes: usize,
    published_bytes: u64,
    failures: u64,
    last_failure: Option<Arc<str>>,
    ends: u64,
    closed: bool,
    waiters: Vec<Waker>,
    /// Bumped each time `waiters` is woken, so a subscriber knows whether it is still listed.
    wake_epoch: u64,
}

struct Slot {
    data: Bytes,
    at: Instant,
}

impl Ring {
    fn next_seq(&self) -> u64 {
        self.first_seq + self.chunks.len() as u64
    }

    fn evict(&mut self, now: Instant) {
        while self.chunks.len() > 1 {
            let front = &self.chunks[0];
            if self.bytes <= LAG_BYTES_MAX && now.duration_since(front.at) <= LAG_MAX {
                break;
            }
            self.bytes -= front.data.len();
            self.chunks.pop_front();
            self.first_seq += 1;
        }
    }
}

impl Hub {
    /// A hub named after its feed or stream (the name appears in failure messages).
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            ring: Mutex::new(Ring {
                chunks: VecDeque::new(),
                first_seq: 0,
                bytes: 0,
                published_bytes: 0,
                failures: 0,
                last_failure: None,
                ends: 0,
                closed: false,
                waiters: Vec::new(),
                wake_epoch: 0,
            }),
            demand: watch::Sender::new(0),
        })
    }

    /// The feed or stream name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().expect("hub lock poisoned")
    }

    /// Appends one chunk and wakes every waiting consumer. Never waits.
    pub fn publish(&self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut ring = self.lock();
        ring.bytes += data.len();
        ring.published_bytes += data.len() as u64;
        ring.chunks.push_back(Slot { data, at: now });
        ring.evict(now);
        Self::wake(ring);
    }

    /// Tells consumers waiting for their first byte that the producer failed.
    pub fn fail(&self, message: String) {
        let mut ring = self.lock();
        ring.failures += 1;
        ring.last_failure = Some(message.into());
        Self::wake(ring);
    }

    /// Ends the output for the current consumers (they get [`Event::Ended`] after the data).
    pub fn end(&self) {
        let mut ring = self.lock();
        ring.ends += 1;
        Self::wake(ring);
    }

    /// Ends the output for ever: the server is stopping.
    pub fn close(&self) {
        let mut ring = self.lock();
        ring.closed = true;
        Self::wake(ring);
    }

    /// Drops the kept chunks: the producer stopped and nobody may join an old moment.
    pub fn reset(&self) {
        let mut ring = self.lock();
        ring.first_seq = ring.next_seq();
        ring.chunks.clear();
        ring.bytes = 0;
    }

    fn wake(mut ring: MutexGuard<'_, Ring>) {
        if ring.waiters.is_empty() {
            return;
        }
        ring.wake_epoch += 1;
        let waiters = std::mem::take(&mut ring.waiters);
        drop(ring);
        for waker in waiters {
            waker.wake();
        }
    }

    /// A new consumer, starting with the next chunk published (live).
    pub fn subscribe(self: &Arc<Self>) -> Subscriber {
        let ring = self.lock();
        let subscriber = Subscriber {
            hub: Arc::clone(self),
            cursor: ring.next_seq(),
            seen_failures: ring.failures,
            seen_ends: ring.ends,
            listed: None,
        };
        drop(ring);
        self.demand.send_modify(|count| *count += 1);
        subscriber
    }

    /// The number of subscribers, updated as they come and go.
    pub fn demand(&self) -> watch::Receiver<usize> {
        self.demand.subscribe()
    }

    /// Bytes published since the hub was made.
    pub fn published_bytes(&self) -> u64 {
        self.lock().published_bytes
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A consumer's cursor into a [`Hub`]; dropping it withdraws its demand.
pub struct Subscriber {
    hub: Arc<Hub>,
    cursor: u64,
    seen_failures: u64,
    seen_ends: u64,
    /// The wake epoch and waker under which this subscriber is listed as a waiter.
    listed: Option<(u64, Waker)>,
}

impl Subscriber {
    /// The hub this subscriber reads.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Moves the cursor to the next chunk to be published, dropping what was missed.
    pub fn skip_to_live(&mut self) {
        self.cursor = self.hub.lock().next_seq();
    }

    /// Appends up to `max` pending chunks to `batch`, or reports what happened instead.
    pub fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        batch: &mut VecDeque<Bytes>,
        max: usize,
    ) -> Poll<Event> {
        let mut ring = self.hub.lock();
        if ring.closed {
            return Poll::Ready(Event::Closed);
        }
        if self.cursor < ring.first_seq {
            return Poll::Ready(Event::Lagged);
        }
        let next_seq = ring.next_seq();
        if self.cursor < next_seq {
            let start = (self.cursor - ring.first_seq) as usize;
            let taken = ring.chunks.range(start..).take(max);
            let before = batch.len();
            batch.extend(taken.map(|slot| slot.data.clone()));
            self.cursor += (batch.len() - before) as u64;
            return Poll::Ready(Event::Data);
        }
        if ring.ends > self.seen_ends {
            self.seen_ends = ring.ends;
            return Poll::Ready(Event::Ended);
        }
        if ring.failures > self.seen_failures {
            self.seen_failures = ring.failures;
            let message = ring.last_failure.clone().unwrap_or_else(|| "failed".into());
            return Poll::Ready(Event::Failed(message));
        }
        let still_listed = matches!(&self.listed, Some((epoch, waker))
            if *epoch == ring.wake_epoch && waker.will_wake(cx.waker()));
        if !still_listed {
            ring.waiters.push(cx.waker().clone());
            self.listed = Some((ring.wake_epoch, cx.waker().clone()));
        }
        Poll::Pending
    }

    /// Waits for the next event (see [`Subscriber::poll_next`]).
    pub async fn next(&mut self, batch: &mut VecDeque<Bytes>, max: usize) -> Event {
        poll_fn(|cx| self.poll_next(cx, batch, max)).await
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.hub.demand.send_modify(|count| *count -= 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_or_never(sub: &mut Subscriber, batch: &mut VecDeque<Bytes>) -> Poll<Event> {
        let waker = Waker::noop();
        sub.poll_next(&mut Context::from_waker(waker), batch, BATCH_CHUNKS_MAX)
    }

    #[test]
    fn every_subscriber_gets_the_same_shared_bytes() {
        let hub = Hub::new("s");
        let mut a = hub.subscribe();
        let mut b = hub.subscribe();
        hub.publish(Bytes::from_static(b"one"));
        hub.publish(Bytes::from_static(b"two"));
        let (mut got_a, mut got_b) = (VecDeque::new(), VecDeque::new());
        assert_eq!(now_or_never(&mut a, &mut got_a), Poll::Ready(Event::Data));
        assert_eq!(now_or_never(&mut b, &mut got_b), Poll::Ready(Event::Data));
        assert_eq!(got_a, got_b);
        assert_eq!(got_a.len(), 2);
        assert_eq!(got_a[0].as_ptr(), got_b[0].as_ptr(), "shared, not copied");
        assert!(now_or_never(&mut a, &mut got_a).is_pending());
    }

    #[test]
    fn a_late_subscriber_starts_live() {
        let hub = Hub::new("s");
        hub.publish(Bytes::from_static(b"old"));
        let mut late = hub.subscribe();
        let mut got = VecDeque::new();
        assert!(now_or_never(&mut late, &mut got).is_pending());
        hub.publish(Bytes::from_static(b"new"));
        assert_eq!(now_or_never(&mut late, &mut got), Poll::Ready(Event::Data));
        assert_eq!(got, [Bytes::from_static(b"new")]);
    }

    #[test]
    fn memory_is_bounded_and_a_slow_subscriber_lags_without_slowing_others() {
        let hub = Hub::new("s");
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        let chunk = Bytes::from(vec![0u8; 64 << 10]);
        let mut got = VecDeque::new();
        for _ in 0..(2 * LAG_BYTES_MAX / chunk.len()) {
            hub.publish(chunk.clone());
            assert_eq!(now_or_never(&mut fast, &mut got), Poll::Ready(Event::Data));
            got.clear();
        }
        assert!(hub.lock().bytes <= LAG_BYTES_MAX);
        assert_eq!(
            now_or_never(&mut slow, &mut got),
            Poll::Ready(Event::Lagged)
        );
        slow.skip_to_live();
        hub.publish(chunk);
        assert_eq!(now_or_never(&mut slow, &mut got), Poll::Ready(Event::Data));
    }

    #[test]
    fn demand_counts_subscribers() {
        let hub = Hub::new("s");
        let demand = hub.demand();
        let a = hub.subscribe();
        let b = hub.subscribe();
        assert_eq!(*demand.borrow(), 2);
        drop(a);
        drop(b);
        assert_eq!(*demand.borrow(), 0);
    }

    #[test]
    fn failure_end_and_close_are_reported_after_pending_data() {
        let hub = Hub::new("s");
        let mut sub = hub.subscribe();
        let mut got = VecDeque::new();
        hub.fail("no such file".into());
        assert_eq!(
            now_or_never(&mut sub, &mut got),
            Poll::Ready(Event::Failed("no such file".into()))
        );
        hub.publish(Bytes::from_static(b"last"));
        hub.end();
        assert_eq!(now_or_never(&mut sub, &mut got), Poll::Ready(Event::Data));
        assert_eq!(now_or_never(&mut sub, &mut got), Poll::Ready(Event::Ended));
        hub.close();
        assert_eq!(now_or_never(&mut sub, &mut got), Poll::Ready(Event::Closed));
    }
}
