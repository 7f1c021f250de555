//! Delivery moderation: the streaming counterpart of a network card's interrupt moderation.
//!
//! Every read a producer publishes costs one write per subscriber, and on a loopback or LAN
//! socket a write costs about the same (several µs of kernel time, most of it the receiver's
//! side of TCP) whether it carries one 188-byte TS packet or a full segment. So:
//!
//! - while the whole server offers few deliveries (subscribers × reads per second, summed over
//!   every hub), each read goes to every client the moment it arrives, as if there were no
//!   moderation: the latency is the lowest there is;
//! - once it offers more than [`ENGAGE_DELIVERIES_PER_SEC`], each busy hub's pump pauses after
//!   a read until its source has had time to write about one TCP segment ([`SEGMENT_BYTES`]),
//!   so each client gets one full segment where it got eight packets; the bytes wait in the
//!   source's pipe, not in a buffer of ours;
//! - if even full segments would exceed the write rate the machine can afford
//!   ([`AFFORDABLE_WRITES_PER_SEC`]), the pause grows until the write rate fits, up to
//!   [`PAUSE_MAX`].
//!
//! The latency this adds is a hub's pause, which grows with load (the number of clients and
//! the bit rate of the streams they watch) and never beyond what a live viewer notices.
//! Every figure the decision uses is measured as the server runs: each hub's byte rate and
//! natural read size, and the number of its subscribers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Deliveries per second (summed over every hub) above which moderation starts: about a
/// fifth of a core at ~5 µs per write, so a lightly loaded server (ten clients of a 4 Mbit/s
/// stream of small packets make 27 000) keeps its latency untouched.
pub const ENGAGE_DELIVERIES_PER_SEC: u64 = 40_000;
/// Below this, moderation stops again; well under [`ENGAGE_DELIVERIES_PER_SEC`] so that a load
/// near the threshold does not make it flap.
pub const RELEASE_DELIVERIES_PER_SEC: u64 = 20_000;
/// What a hub lets its source write before the next read under load: one TCP segment of
/// Ethernet (1500-byte MTU, less IP and TCP headers with timestamps). A smaller write sends a
/// partly empty segment, so filling one costs no throughput and saves the receivers as many
/// wake-ups as the server saves writes; a larger one saves little more, as the cost of a write
/// becomes the cost of its bytes.
pub const SEGMENT_BYTES: u64 = 1448;
/// The write rate the server allows itself for all its clients before it makes each write
/// larger than a segment: about half a core at ~5 µs per write, leaving the rest to the
/// feeds, the streams' commands and whatever else runs on the machine.
pub const AFFORDABLE_WRITES_PER_SEC: u64 = 100_000;
/// The longest pause: one frame at 25 fps, under what a viewer notices and far under a
/// player's jitter buffer.
pub const PAUSE_MAX: Duration = Duration::from_millis(40);
/// The most of its source's pipe a paused pump lets fill (a pipe holds 64 KiB by default):
/// a source must never block on a full pipe because of a pause.
pub const PIPE_FILL_MAX: u64 = 32 << 10;
/// A hub with fewer subscribers never pauses: it saves few writes, and a feed read by a
/// stream's command (one subscriber) must not add its pause to the stream's own.
pub const SUBSCRIBERS_MIN: usize = 8;
/// How early a pause asks to end: tokio's timer fires on the first millisecond tick at or after
/// a deadline, so aiming half a tick early centres the pauses on what they should last.
const TIMER_SLACK: Duration = Duration::from_micros(500);
/// How often a hub's byte rate and read size are measured.
const RATE_WINDOW: Duration = Duration::from_millis(250);

/// What all hubs offer together, each adding its own share (see [`Pacer`]).
#[derive(Debug)]
struct Load {
    /// Subscribers × natural reads per second, over every hub.
    deliveries: AtomicU64,
    /// Subscribers × bytes per second, over every hub.
    fanout_bytes: AtomicU64,
    engaged: AtomicBool,
}

/// The server's load: the CPU the writes cost is the process's, whichever hub asks for them.
static LOAD: Load = Load::new();

impl Load {
    const fn new() -> Self {
        Self {
            deliveries: AtomicU64::new(0),
            fanout_bytes: AtomicU64::new(0),
            engaged: AtomicBool::new(false),
        }
    }

    /// Whether moderation is on, given the deliveries offered now (with hysteresis).
    fn engaged(&self) -> bool {
        let deliveries = self.deliveries.load(Ordering::Relaxed);
        if deliveries > ENGAGE_DELIVERIES_PER_SEC {
            self.engaged.store(true, Ordering::Relaxed);
        } else if deliveries < RELEASE_DELIVERIES_PER_SEC {
            self.engaged.store(false, Ordering::Relaxed);
        }
        self.engaged.load(Ordering::Relaxed)
    }
}

/// One hub's share of the load, as its pump measures it, and the pause it owes.
#[derive(Debug)]
pub struct Pacer {
    load: &'static Load,
    window_start: Instant,
    window_bytes: u64,
    window_reads: u64,
    /// Reads in this window that followed a pause (their size is not the source's own).
    window_paused_reads: u64,
    /// Bytes per second, once measured.
    rate: Option<u64>,
    /// The source's own read size, measured on reads that no pause enlarged.
    natural_read: Option<u64>,
    /// This hub's shares added to [`LOAD`], taken back when it changes or the pacer goes.
    deliveries: u64,
    fanout_bytes: u64,
    /// When the current pause ends: pauses follow a cadence, so the time a read and its
    /// deliveries take does not stretch them.
    due: Option<Instant>,
}

impl Pacer {
    /// A pacer for a pump starting at `now`.
    pub fn new(now: Instant) -> Self {
        Self::sharing(&LOAD, now)
    }

    fn sharing(load: &'static Load, now: Instant) -> Self {
        Self {
            load,
            window_start: now,
            window_bytes: 0,
            window_reads: 0,
            window_paused_reads: 0,
            rate: None,
            natural_read: None,
            deliveries: 0,
            fanout_bytes: 0,
            due: None,
        }
    }

    /// Counts a read of `bytes` at `now` on a hub with `subscribers`, and returns until when
    /// the pump should wait before its next read, if it should.
    pub fn after_read(&mut self, bytes: u64, subscribers: usize, now: Instant) -> Option<Instant> {
        self.window_bytes += bytes;
        self.window_reads += 1;
        self.window_paused_reads += u64::from(self.due.is_some());
        let elapsed = now.duration_since(self.window_start);
        if elapsed >= RATE_WINDOW {
            self.measure(elapsed, subscribers, now);
        }
        let pause = self.pause(subscribers);
        self.due = (!pause.is_zero()).then(|| match self.due {
            // On time: keep the cadence.
            Some(due) if now.saturating_duration_since(due) < pause => due + pause,
            _ => now + pause,
        });
        self.due
            .map(|due| due.checked_sub(TIMER_SLACK).unwrap_or(due))
    }

    fn measure(&mut self, elapsed: Duration, subscribers: usize, now: Instant) {
        self.rate = Some((self.window_bytes as f64 / elapsed.as_secs_f64()) as u64);
        let natural_reads = self.window_reads - self.window_paused_reads;
        if natural_reads * 2 > self.window_reads {
            self.natural_read = Some((self.window_bytes / self.window_reads).max(1));
        }
        let subscribers = subscribers as u64;
        let rate = self.rate.unwrap_or(0);
        let reads_per_sec = self.natural_read.map_or(0, |size| rate / size);
        self.share(subscribers * reads_per_sec, subscribers * rate);
        self.window_start = now;
        self.window_bytes = 0;
        self.window_reads = 0;
        self.window_paused_reads = 0;
    }

    /// Replaces this hub's share of [`LOAD`].
    fn share(&mut self, deliveries: u64, fanout_bytes: u64) {
        let load = self.load;
        load.deliveries.fetch_add(deliveries, Ordering::Relaxed);
        load.deliveries
            .fetch_sub(self.deliveries, Ordering::Relaxed);
        load.fanout_bytes.fetch_add(fanout_bytes, Ordering::Relaxed);
        load.fanout_bytes
            .fetch_sub(self.fanout_bytes, Ordering::Relaxed);
        self.deliveries = deliveries;
        self.fanout_bytes = fanout_bytes;
    }

    fn pause(&self, subscribers: usize) -> Duration {
        match self.rate {
            Some(rate) if subscribers >= SUBSCRIBERS_MIN && self.load.engaged() => {
                pause_for(rate, self.load.fanout_bytes.load(Ordering::Relaxed))
            }
            _ => Duration::ZERO,
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.share(0, 0);
    }
}

/// The pause of a hub whose source writes `rate` bytes per second, when all hubs together
/// send `fanout_bytes` per second to their clients: long enough for a full segment, or for
/// the larger write that keeps the whole server's write rate affordable; never longer than
/// [`PAUSE_MAX`], nor than its source's pipe can take.
fn pause_for(rate: u64, fanout_bytes: u64) -> Duration {
    if rate == 0 {
        return Duration::ZERO;
    }
    let write_bytes = SEGMENT_BYTES.max(fanout_bytes / AFFORDABLE_WRITES_PER_SEC);
    let pause = Duration::from_secs_f64(write_bytes.min(PIPE_FILL_MAX) as f64 / rate as f64);
    pause.min(PAUSE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MBIT: u64 = 1_000_000 / 8;

    #[test]
    fn a_pause_lets_the_source_write_one_segment() {
        let pause = pause_for(4 * MBIT, 200 * 4 * MBIT);
        assert_eq!(pause.as_micros(), 2896);
        assert_eq!(pause_for(MBIT, 400 * MBIT).as_micros(), 11584);
    }

    #[test]
    fn beyond_the_affordable_write_rate_writes_grow_past_a_segment() {
        // 1600 clients of 1 Mbit/s: 2000-byte writes keep 100 000 writes per second.
        assert_eq!(pause_for(MBIT, 1600 * MBIT).as_millis(), 16);
        assert_eq!(pause_for(MBIT, 3200 * MBIT).as_millis(), 32);
    }

    #[test]
    fn no_pause_is_longer_than_a_frame_or_than_the_pipe_holds() {
        assert_eq!(pause_for(32_000 / 8, 3000 * 32_000 / 8), PAUSE_MAX);
        let fast = 32 * MBIT;
        let pause = pause_for(fast, 10_000 * fast);
        assert!(pause <= Duration::from_secs_f64(PIPE_FILL_MAX as f64 / fast as f64));
    }

    /// Feeds `pacer` one second of a source writing `read` bytes `reads_per_sec` times a
    /// second to `subscribers`, pausing as told; returns the reads it made and its last pause.
    fn run_second(
        pacer: &mut Pacer,
        read: u64,
        reads_per_sec: u64,
        subscribers: usize,
        now: &mut Instant,
    ) -> (u64, Duration) {
        let rate = read * reads_per_sec;
        let end = *now + Duration::from_secs(1);
        let (mut reads, mut pause) = (0, Duration::ZERO);
        while *now < end {
            let gap = Duration::from_secs_f64(read as f64 / rate as f64).max(pause);
            *now += gap;
            let got = (gap.as_secs_f64() * rate as f64) as u64;
            let due = pacer.after_read(got, subscribers, *now);
            pause = due.map_or(Duration::ZERO, |due| due - *now + TIMER_SLACK);
            reads += 1;
        }
        (reads, pause)
    }

    #[test]
    fn a_light_load_is_delivered_read_by_read() {
        static LIGHT: Load = Load::new();
        let mut now = Instant::now();
        let mut pacer = Pacer::sharing(&LIGHT, now);
        // Ten clients of 4 Mbit/s in 188-byte packets: 26 600 deliveries per second.
        let (reads, pause) = run_second(&mut pacer, 188, 2660, 10, &mut now);
        assert_eq!((reads, pause), (2660, Duration::ZERO));
        assert!(LIGHT.deliveries.load(Ordering::Relaxed) > 20_000);
    }

    #[test]
    fn a_heavy_load_reads_a_segment_at_a_time_and_stops_when_clients_leave() {
        static HEAVY: Load = Load::new();
        let mut now = Instant::now();
        let mut pacer = Pacer::sharing(&HEAVY, now);
        run_second(&mut pacer, 188, 665, 400, &mut now);
        let (reads, pause) = run_second(&mut pacer, 188, 665, 400, &mut now);
        assert_eq!(pause.as_micros() / 100, 115, "{pause:?}");
        assert!((80..=100).contains(&reads), "{reads} reads");
        // Clients leave: the load it measures is still its natural one, and it lets go.
        run_second(&mut pacer, 188, 665, 20, &mut now);
        let (reads, pause) = run_second(&mut pacer, 188, 665, 20, &mut now);
        assert_eq!(pause, Duration::ZERO);
        assert!(reads >= 665, "{reads} reads");
        drop(pacer);
        assert_eq!(HEAVY.deliveries.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_hub_with_few_subscribers_never_pauses() {
        static BUSY: Load = Load::new();
        BUSY.deliveries
            .store(10 * ENGAGE_DELIVERIES_PER_SEC, Ordering::Relaxed);
        let mut now = Instant::now();
        let mut pacer = Pacer::sharing(&BUSY, now);
        let (_, pause) = run_second(&mut pacer, 188, 665, SUBSCRIBERS_MIN - 1, &mut now);
        assert_eq!(pause, Duration::ZERO);
    }
}
