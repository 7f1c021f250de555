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
//!
//! A container-aware hub parses each chunk once, in the publishing task, before it takes the
//! lock every consumer takes (see [`super::parse`]): that lock guards only appends and cursor
//! moves, and recovers from poison, so no panic on the data path takes a stream, or through
//! a subscriber's drop the whole server, down.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::deliver::{Recipient, Recipients};
use super::framing::{Framing, FramingInfo, ParserFactory, Slot};
use super::join::Join;
use super::parse::Parse;

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

/// About the most bytes one consumer takes per wake-up: what it holds outside the hub is lag
/// the hub cannot see, so it stays small (one large read, or many small ones).
pub const BATCH_BYTES_MAX: usize = 16 << 10;

/// How old a kept keyframe may be for a client that fell behind (or paused) to resume there
/// rather than wait for the next one: an older one would put it most of [`LAG_MAX`] behind
/// live again, and a reader a little slower than the stream would soon skip again.
pub const RESUME_KEYFRAME_AGE_MAX: Duration = Duration::from_secs(1);

/// The longest a joining client waits for a keyframe or boundary before it starts live anyway
/// (longer than any sane GOP); the run's own pace usually ends the wait much sooner (see
/// `Framing::give_up_at`).
pub const JOIN_WAIT_MAX: Duration = Duration::from_secs(10);

/// What a subscriber sees next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Chunks were appended to the caller's batch.
    Data,
    /// The producer failed to start or died before its next byte (it will be resurrected).
    Failed(Arc<str>),
    /// The cursor fell behind the oldest kept chunk; `skip_to_live` moves it to the present.
    /// (Only on hubs without framing: container-aware ones skip to a keyframe instead.)
    Lagged,
    /// The subscriber fell too far behind (it read too slowly, or paused) and now skips ahead
    /// to the newest keyframe the hub keeps (audio: the newest frame), or to the next one
    /// when none is kept; its data goes on from there.
    Skipped,
    /// The producer ended for good (its input ended, or it must not be resurrected).
    Ended,
    /// The server is stopping.
    Closed,
}

/// One producer's output, shared by all its consumers.
///
/// Lock order: `parse`, then `ring`. Only the producer's side (publish, a new run) takes
/// `parse`; consumers take `ring` alone, and only for appends and cursor moves.
pub struct Hub {
    name: Arc<str>,
    /// The parser of the current run, for a container-aware hub: held across the append, so
    /// that what the ring's framing shows always matches the chunks the ring holds.
    parse: Option<Mutex<Parse>>,
    ring: Mutex<Ring>,
    /// Consumers written to by whoever publishes, in one pass (see [`super::deliver`]).
    recipients: Arc<Recipients>,
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
    /// The producer failed and has not published since: a new subscriber hears of it at once.
    failing: bool,
    ends: u64,
    /// The producer ended for good and no new run started: a new subscriber is told so.
    ended: bool,
    /// It ended because an admin stopped the producer (it may start again), not by itself.
    halted: bool,
    /// `published_bytes` when the current run started: what the run has delivered is the
    /// difference (a new client need not wait for a first byte once there is one).
    run_base: u64,
    closed: bool,
    waiters: Vec<Waker>,
    /// An empty list with capacity, swapped with `waiters` at each wake-up.
    spare: Vec<Waker>,
    /// Bumped each time `waiters` is woken, so a subscriber knows whether it is still listed.
    wake_epoch: u64,
    /// Container awareness, when the stream's container is understood.
    framing: Option<Framing>,
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
        if let (Some(framing), Some(front)) = (self.framing.as_mut(), self.chunks.front()) {
            framing.evict_before(front.offset);
        }
    }

    /// Where a waiting subscriber may start: a hub offset, once the marks show one.
    /// `has_header`: the subscriber already got a header (sent at once, maybe by the run
    /// before this one).
    fn locate(&self, wait: &Wait, has_header: bool) -> Option<u64> {
        let framing = self.framing.as_ref()?;
        if !framing.decided() {
            return None;
        }
        // At a run's first byte nothing is missed yet: whoever came before it gets the whole
        // run (a `cat` of a TS file keeps the SDT in front of the PAT), whatever it asked for.
        // Not one that holds a header already: a second one from byte 0 would break its
        // demuxer, so it starts at a keyframe of the new run (after the new header, if that
        // differs).
        let run_start = framing.run_start();
        if !has_header
            && wait.from <= run_start
            && self.chunks.front().is_some_and(|c| c.offset <= run_start)
        {
            return Some(run_start);
        }
        if !framing.active() {
            // An opaque run: there is no better place than where the client came in.
            let oldest = self.chunks.front().map_or(wait.from, |slot| slot.offset);
            return Some(wait.from.max(oldest));
        }
        framing
            .marks
            .iter()
            .find(|mark| mark.offset >= wait.from && framing.accepts(mark, wait.keyframe_only))
            .map(|mark| mark.offset)
    }

    /// Whether a joining subscriber should stop waiting and start live: the run has shown
    /// that the mark it waits for is not coming (see [`Framing::give_up_at`]).
    fn gives_up(&self, wait: &Wait, now: Instant) -> bool {
        wait.send_header
            && self
                .framing
                .as_ref()
                .and_then(|framing| framing.give_up_at(wait.keyframe_only))
                .is_some_and(|at| now >= at)
    }

    /// When the byte at hub offset `offset` was published, if it is still kept.
    fn published_at(&self, offset: u64) -> Option<Instant> {
        let index = self
            .chunks
            .partition_point(|slot| slot.offset + slot.data.len() as u64 <= offset);
        self.chunks.get(index).map(|slot| slot.at)
    }

    /// Appends to `batch` the chunks from hub offset `offset` on (see [`Ring::take`]).
    fn take_from(&self, offset: u64, batch: &mut VecDeque<Bytes>, max: usize) -> u64 {
        let start = self
            .chunks
            .partition_point(|slot| slot.offset + slot.data.len() as u64 <= offset);
        let skip = self
            .chunks
            .get(start)
            .map_or(0, |slot| offset.saturating_sub(slot.offset) as usize);
        self.take(start, skip, batch, max)
    }

    /// Appends to `batch` up to `max` chunks, and about [`BATCH_BYTES_MAX`] bytes, from the
    /// chunk at index `start` on, less its first `skip` bytes (a slice, no copy); returns the
    /// sequence number after the last chunk taken.
    fn take(&self, start: usize, skip: usize, batch: &mut VecDeque<Bytes>, max: usize) -> u64 {
        let (mut taken, mut bytes, mut skip) = (0, 0, skip);
        for slot in self.chunks.range(start..).take(max) {
            batch.push_back(slot.data.slice(skip..));
            taken += 1;
            bytes += slot.data.len() - skip;
            skip = 0;
            if bytes >= BATCH_BYTES_MAX {
                break;
            }
        }
        self.first_seq + (start + taken) as u64
    }
}

/// A subscriber waiting for a place to start (a boundary or a keyframe).
struct Wait {
    /// Only marks at or after this hub offset count.
    from: u64,
    /// Only keyframes count (audio-only streams accept any boundary).
    keyframe_only: bool,
    /// Send the container header before the first unit.
    send_header: bool,
    /// When no such place came by then: a joining client starts live, a skipping one is cut.
    deadline: Instant,
}

impl Hub {
    /// A hub named after its feed or stream (the name appears in failure messages).
    pub fn new(name: &str) -> Arc<Self> {
        Self::with_framing(name, None)
    }

    /// A container-aware hub: each run of its producer is parsed by a parser from `factory`.
    pub fn framed(name: &str, factory: ParserFactory) -> Arc<Self> {
        Self::with_framing(name, Some(factory))
    }

    fn with_framing(name: &str, factory: Option<ParserFactory>) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            parse: factory
                .as_ref()
                .map(|factory| Mutex::new(Parse::new(Arc::clone(factory)))),
            ring: Mutex::new(Ring {
                chunks: VecDeque::new(),
                first_seq: 0,
                bytes: 0,
                published_bytes: 0,
                failures: 0,
                last_failure: None,
                failing: false,
                ends: 0,
                ended: false,
                halted: false,
                run_base: 0,
                closed: false,
                waiters: Vec::new(),
                spare: Vec::new(),
                wake_epoch: 0,
                framing: factory.map(|_| Framing::new(0)),
            }),
            recipients: Arc::default(),
            demand: watch::Sender::new(0),
        })
    }

    /// The feed or stream name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic under this lock cannot leave a chunk half-shared: each section is an append,
        // a count or a cursor move on plain data, and the parser, the one complex piece of
        // code on the data path, runs outside it, caught. A poisoned lock would instead make
        // every client of the stream panic, and a subscriber's drop during that unwinding
        // abort the whole server: the data goes on rather.
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The parser of the current run, for a container-aware hub (see [`Hub::lock`] on poison:
    /// its parse is caught, and a new run replaces it).
    fn lock_parse(&self) -> Option<MutexGuard<'_, Parse>> {
        let parse = self.parse.as_ref()?;
        Some(parse.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Parses one chunk (outside the hub's lock, on a container-aware hub), appends it and
    /// wakes every waiting consumer. Never waits for a consumer.
    pub fn publish(&self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let mut parse = self.lock_parse();
        let parsed = parse.as_mut().map(|parse| parse.push(&self.name, &data));
        let now = Instant::now();
        let mut guard = self.lock();
        let ring = &mut *guard;
        ring.failing = false;
        let offset = ring.published_bytes;
        ring.bytes += data.len();
        ring.published_bytes += data.len() as u64;
        ring.chunks.push_back(Slot {
            data,
            at: now,
            offset,
        });
        if let (Some(framing), Some(parsed)) = (ring.framing.as_mut(), parsed) {
            framing.on_publish(&ring.chunks, now, parsed);
        }
        ring.evict(now);
        drop(parse);
        self.wake(guard);
    }

    /// Tells consumers waiting for their first byte that the producer failed.
    pub fn fail(&self, message: String) {
        let mut ring = self.lock();
        ring.failures += 1;
        ring.failing = true;
        ring.last_failure = Some(message.into());
        self.wake(ring);
    }

    /// Ends the output for the current consumers (they get [`Event::Ended`] after the data).
    pub fn end(&self) {
        let mut ring = self.lock();
        ring.ends += 1;
        ring.ended = true;
        self.wake(ring);
    }

    /// Ends the output for the current consumers only: those that come later wait for the
    /// producer's next run instead of hearing that it ended.
    pub fn end_current(&self) {
        let mut ring = self.lock();
        ring.ends += 1;
        ring.ended = false;
        self.wake(ring);
    }

    /// Ends the output for the current consumers, as [`Hub::end`] does, because an admin
    /// stopped the producer: it may start again ([`Hub::halted`] until a new run starts).
    pub fn halt(&self) {
        let mut ring = self.lock();
        ring.halted = true;
        ring.ends += 1;
        ring.ended = true;
        self.wake(ring);
    }

    /// Ends a [`Hub::halt`]: the producer may run again, so new subscribers wait for its
    /// output instead of hearing that it ended.
    pub fn unhalt(&self) {
        let mut ring = self.lock();
        if ring.halted {
            ring.halted = false;
            ring.ended = false;
        }
    }

    /// Whether its producer was stopped by an admin and has not started again.
    pub fn halted(&self) -> bool {
        self.lock().halted
    }

    /// Ends the output for ever: the server is stopping.
    pub fn close(&self) {
        let mut ring = self.lock();
        ring.closed = true;
        self.wake(ring);
    }

    /// Drops the kept chunks: the producer stopped and nobody may join an old moment.
    pub fn reset(&self) {
        let parse = self.lock_parse();
        let mut ring = self.lock();
        ring.first_seq = ring.next_seq();
        ring.chunks.clear();
        ring.bytes = 0;
        ring.run_base = ring.published_bytes;
        Self::restart_framing(parse, &mut ring);
    }

    /// A new run of the producer starts: its bytes begin a new container (a new header).
    pub fn start_run(&self) {
        let parse = self.lock_parse();
        let mut ring = self.lock();
        ring.ended = false;
        ring.halted = false;
        ring.run_base = ring.published_bytes;
        Self::restart_framing(parse, &mut ring);
    }

    /// Whether the producer is running and has published in this run (it neither failed
    /// nor ended since): a client joining now will get bytes, and need not wait for them to
    /// be answered.
    pub fn producing(&self) -> bool {
        let ring = self.lock();
        ring.published_bytes > ring.run_base && !ring.failing && !ring.ended && !ring.closed
    }

    /// Bytes published since the current run started (what it delivered, even when its
    /// read loop could not be waited for).
    pub fn run_bytes(&self) -> u64 {
        let ring = self.lock();
        ring.published_bytes - ring.run_base
    }

    /// The producer is idle and starts afresh for its next subscriber: its past failure is no
    /// news to that subscriber.
    pub fn forget_failure(&self) {
        self.lock().failing = false;
    }

    fn restart_framing(parse: Option<MutexGuard<'_, Parse>>, ring: &mut Ring) {
        let base = ring.published_bytes;
        if let Some(mut parse) = parse {
            parse.restart();
        }
        if let Some(framing) = ring.framing.as_mut() {
            framing.restart(base);
        }
    }

    /// What is known about the container, for a container-aware hub.
    pub fn framing_info(&self) -> Option<FramingInfo> {
        self.lock().framing.as_ref().map(Framing::info)
    }

    /// [`Hub::framing_info`] once the current run's container is known (from its first
    /// bytes): what the status shows, which must not call a stream that never ran opaque.
    pub fn known_framing(&self) -> Option<FramingInfo> {
        let ring = self.lock();
        let framing = ring.framing.as_ref().filter(|framing| framing.decided())?;
        Some(framing.info())
    }

    /// The header and the newest whole pictures from a keyframe on (for a screenshot), and
    /// whether they come from the current GOP (else from the previous, older, one).
    pub fn last_pictures(&self) -> Option<(Option<Bytes>, Vec<Bytes>, bool)> {
        let ring = self.lock();
        let framing = ring.framing.as_ref()?;
        let (units, current) = framing.whole_units()?;
        let header = framing.header_before(units.iter().map(|unit| &unit[..]));
        Some((header, units, current))
    }

    /// Wakes every waiting consumer, then delivers to the recipients (after the ring's lock
    /// is released: they take it each).
    fn wake(&self, ring: MutexGuard<'_, Ring>) {
        self.wake_waiters(ring);
        self.recipients.deliver();
    }

    fn wake_waiters(&self, mut ring: MutexGuard<'_, Ring>) {
        if ring.waiters.is_empty() {
            return;
        }
        ring.wake_epoch += 1;
        let spare = std::mem::take(&mut ring.spare);
        let mut waiters = std::mem::replace(&mut ring.waiters, spare);
        drop(ring);
        for waker in waiters.drain(..) {
            waker.wake();
        }
        // Keep the list's capacity for the next wake-up: no allocation per publish.
        let mut ring = self.lock();
        if ring.spare.capacity() < waiters.capacity() {
            ring.spare = waiters;
        }
    }

    /// Has `recipient` written to by every publish from now on (and told of failures, ends
    /// and the close), until it says it is done.
    pub fn add_recipient(&self, recipient: Arc<dyn Recipient>) {
        self.recipients.add(recipient);
    }

    /// A new consumer, starting with the next chunk published (live).
    pub fn subscribe(self: &Arc<Self>) -> Subscriber {
        self.subscribe_with(Join::Live)
    }

    /// A new consumer starting where `join` says, as the current run's container needs (see
    /// [`Join::resolve`]). On a hub without framing every join is live; before a run's first
    /// byte too: the run from byte 0 is the cleanest start there is.
    pub fn subscribe_with(self: &Arc<Self>, join: Join) -> Subscriber {
        let ring = self.lock();
        let mut subscriber = Subscriber {
            hub: Arc::clone(self),
            cursor: ring.next_seq(),
            seen_failures: ring.failures - u64::from(ring.failing),
            seen_ends: ring.ends - u64::from(ring.ended),
            listed: None,
            wait: None,
            first: Vec::new(),
            sent_header: None,
            skips: 0,
        };
        if let Some(framing) = ring.framing.as_ref().filter(|f| f.decided()) {
            let wait = |keyframe_only| Wait {
                from: ring.published_bytes,
                keyframe_only,
                send_header: true,
                deadline: Instant::now() + JOIN_WAIT_MAX,
            };
            subscriber.wait = match join.resolve(framing.container()) {
                Join::Live | Join::Plain => None,
                Join::Header => Some(wait(false)),
                Join::Keyframe => Some(wait(true)),
                Join::LastKeyframe => match (framing.gop(), framing.marks.back()) {
                    (Some(gop), _) => {
                        subscriber
                            .first
                            .extend(framing.header_before(gop.iter().map(|chunk| &chunk[..])));
                        subscriber.first.extend(gop.iter().cloned());
                        None
                    }
                    // Audio has no GOP: every frame is a start, so start at the newest one.
                    (None, Some(newest)) if framing.audio_only() => Some(Wait {
                        from: newest.offset,
                        ..wait(true)
                    }),
                    (None, _) => Some(wait(true)),
                },
            };
        }
        drop(ring);
        self.demand.send_modify(|count| *count += 1);
        subscriber
    }

    /// The number of subscribers now.
    pub fn subscribers(&self) -> usize {
        *self.demand.borrow()
    }

    /// The number of subscribers, updated as they come and go.
    pub fn demand(&self) -> watch::Receiver<usize> {
        self.demand.subscribe()
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
    /// Set while waiting for a place to start.
    wait: Option<Wait>,
    /// Bytes to hand out before anything else (the header and the cached GOP).
    first: Vec<Bytes>,
    /// The header sent to this joining subscriber while it waits for its first unit.
    sent_header: Option<Bytes>,
    skips: u64,
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

    /// How many times this subscriber fell behind and skipped ahead to a keyframe.
    pub fn skips(&self) -> u64 {
        self.skips
    }

    /// Appends up to `max` pending chunks to `batch`, or reports what happened instead.
    pub fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        batch: &mut VecDeque<Bytes>,
        max: usize,
    ) -> Poll<Event> {
        self.next_event(Some(cx.waker()), batch, max)
    }

    /// As [`Subscriber::poll_next`], for a consumer that is never woken (a [`Recipient`]: the
    /// publisher itself delivers to it): nothing to report is `None`.
    pub fn try_next(&mut self, batch: &mut VecDeque<Bytes>, max: usize) -> Option<Event> {
        match self.next_event(None, batch, max) {
            Poll::Ready(event) => Some(event),
            Poll::Pending => None,
        }
    }

    fn next_event(
        &mut self,
        waker: Option<&Waker>,
        batch: &mut VecDeque<Bytes>,
        max: usize,
    ) -> Poll<Event> {
        if !self.first.is_empty() {
            batch.extend(self.first.drain(..));
            return Poll::Ready(Event::Data);
        }
        let mut ring = self.hub.lock();
        if ring.closed {
            return Poll::Ready(Event::Closed);
        }
        if let Some(wait) = &self.wait {
            let framing = ring.framing.as_ref();
            let run_start = framing.map(Framing::run_start);
            if let Some(offset) = ring.locate(wait, self.sent_header.is_some()) {
                // A run from its byte 0 carries its own header; else the header for this
                // start point goes first, unless this subscriber already has it.
                if wait.send_header
                    && Some(offset) != run_start
                    && let Some(header) = framing.and_then(|f| f.header_at(&ring.chunks, offset))
                    && self.sent_header.as_ref() != Some(&header)
                {
                    batch.push_back(header);
                }
                self.cursor = ring.take_from(offset, batch, max);
                self.wait = None;
                return Poll::Ready(Event::Data);
            }
            // The header at once, and with it the response head: only the data waits for
            // its unit (an fMP4 fragment can be seconds away). Not where the header depends
            // on the start point, which is not known yet.
            if wait.send_header
                && self.sent_header.is_none()
                && let Some(framing) = framing
                && !framing.container().header_depends_on_start()
                && let Some(header) = framing.header()
            {
                self.sent_header = Some(header.clone());
                batch.push_back(header.clone());
                return Poll::Ready(Event::Data);
            }
        }
        // The clock is read only when a wait or a skip needs it: a live client's poll is
        // the hot path of the fan-out (a million a second at 1600 clients).
        if let Some(wait) = self.wait.take_if(|wait| {
            let now = Instant::now();
            now >= wait.deadline || ring.gives_up(wait, now)
        }) {
            // A stream without keyframes (or boundaries) to wait for.
            if !wait.send_header {
                return Poll::Ready(Event::Lagged);
            }
            self.cursor = ring.next_seq();
        }
        if self.wait.is_none() && self.cursor < ring.first_seq {
            let Some(framing) = ring.framing.as_ref().filter(|framing| framing.active()) else {
                return Poll::Ready(Event::Lagged);
            };
            self.skips += 1;
            // Resume at the newest keyframe still kept, when it is recent (a paused client
            // that reads again gets the present at once). Otherwise (an old one, or none
            // kept: a GOP longer than what the hub keeps) the next one is due within a
            // keyframe interval: wait that long on top of the lag bound before giving up on
            // the stream's keyframes.
            let next_due = framing.keyframe_interval_max().unwrap_or_default();
            let now = Instant::now();
            let resume_at = framing.newest_start().filter(|&offset| {
                ring.published_at(offset)
                    .is_some_and(|at| now.duration_since(at) <= RESUME_KEYFRAME_AGE_MAX)
            });
            self.wait = Some(Wait {
                from: resume_at.unwrap_or(ring.published_bytes),
                keyframe_only: true,
                send_header: false,
                deadline: now + LAG_MAX + next_due.min(JOIN_WAIT_MAX),
            });
            return Poll::Ready(Event::Skipped);
        }
        let next_seq = ring.next_seq();
        if self.wait.is_none() && self.cursor < next_seq {
            let start = (self.cursor - ring.first_seq) as usize;
            self.cursor = ring.take(start, 0, batch, max);
            return Poll::Ready(Event::Data);
        }
        // A failure first: when a producer failed and so ended, the reason is what matters.
        if ring.failures > self.seen_failures {
            self.seen_failures = ring.failures;
            let message = ring.last_failure.clone().unwrap_or_else(|| "failed".into());
            return Poll::Ready(Event::Failed(message));
        }
        if ring.ends > self.seen_ends {
            self.seen_ends = ring.ends;
            return Poll::Ready(Event::Ended);
        }
        let Some(waker) = waker else {
            return Poll::Pending;
        };
        let still_listed = matches!(&self.listed, Some((epoch, listed))
            if *epoch == ring.wake_epoch && listed.will_wake(waker));
        if !still_listed {
            ring.waiters.push(waker.clone());
            self.listed = Some((ring.wake_epoch, waker.clone()));
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
        if let Some((epoch, waker)) = self.listed.take() {
            // A stalled hub (a camera that is down) must not collect the wakers of every
            // client that gave up on it.
            let mut ring = self.hub.lock();
            if ring.wake_epoch == epoch {
                ring.waiters.retain(|listed| !listed.will_wake(&waker));
            }
        }
        self.hub.demand.send_modify(|count| *count -= 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::Container;
    use crate::container::testing::{panicking_toy_factory, toy_factory};

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
    fn a_hub_is_producing_from_its_runs_first_byte_until_it_fails_or_ends() {
        let hub = Hub::new("s");
        assert!(!hub.producing(), "idle");
        hub.start_run();
        assert!(!hub.producing(), "started, nothing published yet");
        hub.publish(Bytes::from_static(b"x"));
        assert!(hub.producing());
        hub.fail("exit status: 1".into());
        assert!(!hub.producing());
        hub.start_run();
        hub.publish(Bytes::from_static(b"y"));
        hub.end();
        assert!(!hub.producing());
    }

    #[test]
    fn a_halted_producer_ends_its_consumers_and_new_ones_wait_once_it_is_resumed() {
        let hub = Hub::new("s");
        let mut got = VecDeque::new();
        let mut before = hub.subscribe();
        hub.halt();
        assert!(hub.halted());
        assert_eq!(
            now_or_never(&mut before, &mut got),
            Poll::Ready(Event::Ended)
        );
        let mut while_halted = hub.subscribe();
        assert_eq!(
            now_or_never(&mut while_halted, &mut got),
            Poll::Ready(Event::Ended)
        );
        hub.unhalt();
        assert!(!hub.halted());
        let mut after = hub.subscribe();
        assert_eq!(now_or_never(&mut after, &mut got), Poll::Pending);
        hub.start_run();
        hub.publish(Bytes::from_static(b"x"));
        assert_eq!(now_or_never(&mut after, &mut got), Poll::Ready(Event::Data));
    }

    #[test]
    fn ending_the_current_consumers_leaves_later_ones_waiting() {
        let hub = Hub::new("s");
        let mut got = VecDeque::new();
        let mut current = hub.subscribe();
        hub.end_current();
        assert_eq!(
            now_or_never(&mut current, &mut got),
            Poll::Ready(Event::Ended)
        );
        let mut later = hub.subscribe();
        assert_eq!(now_or_never(&mut later, &mut got), Poll::Pending);
        assert!(!hub.halted());
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

    /// A hub of toy runs (`K` keyframe, `B` boundary, header `H`) that claim `container`.
    fn toy_hub_of(container: Container) -> Arc<Hub> {
        Hub::framed("toy", toy_factory(container, Some(b"H")))
    }

    /// A toy hub whose container plays without its header (as TS).
    fn toy_hub() -> Arc<Hub> {
        toy_hub_of(Container::Opaque)
    }

    fn publish_all(hub: &Hub, chunks: &[&'static [u8]]) {
        for chunk in chunks {
            hub.publish(Bytes::from_static(chunk));
        }
    }

    fn text(batch: &VecDeque<Bytes>) -> Vec<&[u8]> {
        batch.iter().map(|chunk| chunk.as_ref()).collect()
    }

    #[test]
    fn a_keyframe_join_gets_the_header_at_once_then_the_next_keyframe() {
        let hub = toy_hub();
        publish_all(&hub, &[b"K0", b"p1"]);
        let mut sub = hub.subscribe_with(Join::Keyframe);
        let mut got = VecDeque::new();
        assert_eq!(now_or_never(&mut sub, &mut got), Poll::Ready(Event::Data));
        assert_eq!(
            text(&got),
            [&b"H"[..]],
            "the header does not wait for a unit"
        );
        publish_all(&hub, &[b"p2", b"B3"]);
        assert!(now_or_never(&mut sub, &mut got).is_pending());
        publish_all(&hub, &[b"K4", b"p5"]);
        assert_eq!(now_or_never(&mut sub, &mut got), Poll::Ready(Event::Data));
        assert_eq!(text(&got), [&b"H"[..], b"K4", b"p5"], "the header once");
    }

    #[test]
    fn a_plain_join_is_live_or_clean_as_the_known_container_needs() {
        let plays_anywhere = toy_hub_of(Container::MpegTs);
        let needs_header = toy_hub_of(Container::Matroska);
        for hub in [&plays_anywhere, &needs_header] {
            publish_all(hub, &[b"K0", b"p1"]);
        }
        let mut live = plays_anywhere.subscribe_with(Join::Plain);
        let mut clean = needs_header.subscribe_with(Join::Plain);
        let mut header = needs_header.subscribe_with(Join::Header);
        for hub in [&plays_anywhere, &needs_header] {
            publish_all(hub, &[b"p2", b"B3", b"K4"]);
        }
        let mut got = VecDeque::new();
        assert_eq!(now_or_never(&mut live, &mut got), Poll::Ready(Event::Data));
        assert_eq!(text(&got), [&b"p2"[..], b"B3", b"K4"]);
        for sub in [&mut clean, &mut header] {
            got.clear();
            assert_eq!(now_or_never(sub, &mut got), Poll::Ready(Event::Data));
            assert_eq!(text(&got), [&b"H"[..], b"K4"], "a keyframe, not B3");
        }
        // `?header=0&keyframe=0` forces live bytes anywhere.
        let mut raw = needs_header.subscribe_with(Join::Live);
        publish_all(&needs_header, &[b"p5"]);
        got.clear();
        assert_eq!(now_or_never(&mut raw, &mut got), Poll::Ready(Event::Data));
        assert_eq!(text(&got), [&b"p5"[..]]);
    }

    #[test]
    fn a_join_before_a_run_starts_gets_the_run_from_byte_0() {
        let hub = toy_hub_of(Container::Matroska);
        // The hub is idle: its container is not known yet.
        let mut idle = hub.subscribe_with(Join::Keyframe);
        publish_all(&hub, &[b"x0", b"p1", b"K2"]);
        let mut got = VecDeque::new();
        assert_eq!(now_or_never(&mut idle, &mut got), Poll::Ready(Event::Data));
        assert_eq!(text(&got), [&b"x0"[..], b"p1", b"K2"]);
    }

    #[test]
    fn joins_waiting_when_a_new_run_starts_get_that_run_from_byte_0() {
        let hub = toy_hub_of(Container::Matroska);
        publish_all(&hub, &[b"K0", b"p1"]);
        let mut waiting = hub.subscribe_with(Join::Plain);
        let mut got = VecDeque::new();
        assert_eq!(
            now_or_never(&mut waiting, &mut got),
            Poll::Ready(Event::Data)
        );
        assert_eq!(text(&got), [&b"H"[..]]);
        // Between two runs (a resurrection): exactly at the start of the next one.
        let mut between = hub.subscribe_with(Join::Header);
        hub.start_run();
        publish_all(&hub, &[b"s0", b"p1", b"K2"]);
        got.clear();
        while now_or_never(&mut between, &mut got) == Poll::Ready(Event::Data) {}
        assert_eq!(text(&got), [&b"s0"[..], b"p1", b"K2"]);
        // One that holds the old run's header gets no second header: the new run's first
        // keyframe (its header is the same one).
        got.clear();
        while now_or_never(&mut waiting, &mut got) == Poll::Ready(Event::Data) {}
        assert_eq!(text(&got), [&b"K2"[..]]);
    }

    #[test]
    fn a_last_keyframe_join_gets_the_cached_gop_at_once_then_live() {
        let hub = toy_hub();
        publish_all(&hub, &[b"K0", b"p1", b"K2", b"p3", b"B4"]);
        let mut sub = hub.subscribe_with(Join::LastKeyframe);
        let mut got = VecDeque::new();
        assert_eq!(now_or_never(&mut sub, &mut got), Poll::Ready(Event::Data));
        assert_eq!(text(&got), [&b"H"[..], b"K2", b"p3", b"B4"]);
        got.clear();
        publish_all(&hub, &[b"p5"]);
        assert_eq!(now_or_never(&mut sub, &mut got), Poll::Ready(Event::Data));
        assert_eq!(text(&got), [&b"p5"[..]]);
    }

    #[test]
    fn a_new_run_forgets_the_cached_pictures() {
        let hub = toy_hub();
        publish_all(&hub, &[b"K0", b"B1", b"p2"]);
        assert!(hub.last_pictures().is_some());
        hub.start_run();
        assert!(hub.last_pictures().is_none());
    }

    #[test]
    fn units_sharing_a_chunk_with_a_keyframe_go_to_the_right_gop() {
        let hub = toy_hub();
        // One read holding the end of a GOP, a keyframe and the next frame's start.
        publish_all(&hub, &[b"K0", b"p1B2K3p4"]);
        let (_, units, _) = hub.last_pictures().expect("the previous GOP is whole");
        assert_eq!(units.concat(), b"K0p1B2");
        publish_all(&hub, &[b"B5"]);
        let (_, units, _) = hub.last_pictures().expect("K3 p4 are whole");
        assert_eq!(units.concat(), b"K3p4");
    }

    #[test]
    fn pictures_are_whole_units_of_the_current_or_the_previous_gop() {
        let hub = toy_hub();
        publish_all(&hub, &[b"K0", b"p1"]);
        assert!(
            hub.last_pictures().is_none(),
            "the first picture is not whole yet"
        );
        publish_all(&hub, &[b"B2", b"p3"]);
        let (header, units, _) = hub.last_pictures().expect("K0 p1 are whole");
        assert_eq!(header.as_deref(), Some(&b"H"[..]));
        assert_eq!(text(&units.into()), [&b"K0"[..], b"p1"]);
        publish_all(&hub, &[b"K4", b"p5"]);
        let (_, units, _) = hub.last_pictures().expect("the previous GOP is whole");
        assert_eq!(text(&units.into()), [&b"K0"[..], b"p1", b"B2", b"p3"]);
    }

    /// Publishes non-marked filler until everything published before is evicted.
    fn overflow(hub: &Hub) {
        let filler = Bytes::from(vec![b'p'; 64 << 10]);
        for _ in 0..(2 * LAG_BYTES_MAX / filler.len()) {
            hub.publish(filler.clone());
        }
    }

    #[test]
    fn a_paused_subscriber_of_a_framed_hub_resumes_at_the_newest_kept_keyframe() {
        let hub = toy_hub();
        let mut paused = hub.subscribe();
        overflow(&hub);
        publish_all(&hub, &[b"K1", b"p2", b"K3", b"p4"]);
        let mut got = VecDeque::new();
        assert_eq!(
            now_or_never(&mut paused, &mut got),
            Poll::Ready(Event::Skipped)
        );
        assert_eq!(
            now_or_never(&mut paused, &mut got),
            Poll::Ready(Event::Data)
        );
        assert_eq!(
            text(&got),
            [&b"K3"[..], b"p4"],
            "no wait for a next keyframe"
        );
    }

    #[test]
    fn a_subscriber_behind_resumes_at_a_kept_keyframe_only_while_it_is_recent() {
        let hub = toy_hub();
        let mut slow = hub.subscribe();
        overflow(&hub);
        publish_all(&hub, &[b"K1", b"p2"]);
        // Time passes: K1 is kept, but resuming there would put the client far behind again.
        std::thread::sleep(RESUME_KEYFRAME_AGE_MAX + Duration::from_millis(50));
        publish_all(&hub, &[b"p3"]);
        let mut got = VecDeque::new();
        assert_eq!(
            now_or_never(&mut slow, &mut got),
            Poll::Ready(Event::Skipped)
        );
        assert!(
            now_or_never(&mut slow, &mut got).is_pending(),
            "{:?}",
            text(&got)
        );
        publish_all(&hub, &[b"K4"]);
        assert_eq!(now_or_never(&mut slow, &mut got), Poll::Ready(Event::Data));
        assert_eq!(text(&got), [&b"K4"[..]], "the next keyframe, nearer live");
    }

    #[test]
    fn a_skipping_subscriber_waits_a_keyframe_interval_past_the_lag_bound() {
        let hub = toy_hub();
        let interval = Duration::from_millis(300);
        publish_all(&hub, &[b"K0"]);
        std::thread::sleep(interval);
        publish_all(&hub, &[b"K1"]);
        let mut paused = hub.subscribe();
        overflow(&hub);
        let mut got = VecDeque::new();
        assert_eq!(
            now_or_never(&mut paused, &mut got),
            Poll::Ready(Event::Skipped)
        );
        // No keyframe is kept: past the lag bound, the next one is still due, not missing.
        std::thread::sleep(LAG_MAX + interval / 3);
        assert!(now_or_never(&mut paused, &mut got).is_pending());
        publish_all(&hub, &[b"K2"]);
        assert_eq!(
            now_or_never(&mut paused, &mut got),
            Poll::Ready(Event::Data)
        );
        assert_eq!(text(&got), [&b"K2"[..]]);
    }

    #[test]
    fn a_lagging_subscriber_of_a_framed_hub_skips_to_the_next_keyframe() {
        let hub = toy_hub();
        let mut slow = hub.subscribe();
        overflow(&hub);
        let mut got = VecDeque::new();
        assert_eq!(
            now_or_never(&mut slow, &mut got),
            Poll::Ready(Event::Skipped)
        );
        assert_eq!(slow.skips(), 1);
        publish_all(&hub, &[b"p", b"K"]);
        assert_eq!(now_or_never(&mut slow, &mut got), Poll::Ready(Event::Data));
        assert_eq!(text(&got), [&b"K"[..]]);
    }

    #[test]
    fn a_panicking_parser_turns_its_run_opaque_and_the_data_goes_on() {
        let hub = Hub::framed("toy", panicking_toy_factory(Container::MpegTs));
        publish_all(&hub, &[b"K0", b"p1"]);
        let mut live = hub.subscribe_with(Join::Plain);
        let mut waiting = hub.subscribe_with(Join::Keyframe);
        let mut got = VecDeque::new();
        assert!(now_or_never(&mut live, &mut got).is_pending());
        assert!(
            now_or_never(&mut waiting, &mut got).is_pending(),
            "a TS join waits"
        );
        publish_all(&hub, &[b"p!2", b"K3"]);
        let info = hub.framing_info().expect("a framed hub");
        assert_eq!(info.container, Container::Opaque);
        assert!(hub.last_pictures().is_none(), "nothing of a broken parse");
        for sub in [&mut live, &mut waiting] {
            got.clear();
            assert_eq!(now_or_never(sub, &mut got), Poll::Ready(Event::Data));
            assert_eq!(text(&got), [&b"p!2"[..], b"K3"], "live, no wait");
        }
        let mut late = hub.subscribe_with(Join::Keyframe);
        publish_all(&hub, &[b"p4"]);
        got.clear();
        assert_eq!(now_or_never(&mut late, &mut got), Poll::Ready(Event::Data));
        assert_eq!(text(&got), [&b"p4"[..]], "a join starts live");
        // The next run gets a parser of its own.
        hub.start_run();
        publish_all(&hub, &[b"K0"]);
        let info = hub.framing_info().expect("a framed hub");
        assert_eq!(info.container, Container::MpegTs);
    }

    #[test]
    fn a_poisoned_lock_panics_neither_subscribers_nor_their_drop() {
        let hub = toy_hub();
        let mut sub = hub.subscribe();
        let mut got = VecDeque::new();
        assert!(now_or_never(&mut sub, &mut got).is_pending(), "listed");
        let poisoner = Arc::clone(&hub);
        let panicked = std::thread::spawn(move || {
            let _ring = poisoner.lock();
            panic!("a bug under the hub's lock");
        })
        .join();
        assert!(panicked.is_err() && hub.ring.is_poisoned());
        publish_all(&hub, &[b"K0", b"p1"]);
        assert_eq!(now_or_never(&mut sub, &mut got), Poll::Ready(Event::Data));
        assert_eq!(text(&got), [&b"K0"[..], b"p1"]);
        assert!(
            now_or_never(&mut sub, &mut got).is_pending(),
            "listed again"
        );
        let demand = hub.demand();
        drop(sub);
        assert_eq!(*demand.borrow(), 0);
    }
}
