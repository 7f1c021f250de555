//! Direct delivery: the task that publishes a chunk writes it to every client itself, in one
//! pass, right after the publish.
//!
//! Waking one task per client per chunk cost as much again as the write itself (a wake, a
//! schedule, hyper's dispatch, a contended lock on the hub), and spread the writes over time
//! so that their receivers were woken one by one. A pass over a list of [`Recipient`]s costs
//! one non-blocking `sendmsg` each; a recipient whose socket is full goes back to its own
//! task until the socket has taken its bytes.
//!
//! The recipients of a hub are kept in one shard per core. A short pass runs whole in the
//! publishing task. A pass that takes a large share of the time between two publishes (a
//! quarter) would make its last clients wait most of their latency budget for their
//! turn: the publisher then runs one shard itself and hands each other shard to a task of
//! its own, so the pass runs on every core at once. Splitting costs a cross-core wake-up per
//! shard and pass, which only a long pass repays, so it is decided from the passes measured.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A consumer that takes what is new for it and writes it without waiting.
pub trait Recipient: Send + Sync {
    /// Takes what is new and writes what its socket takes now; false once it is done with
    /// direct delivery (it ended, or its own task took over), to be dropped from the list.
    fn deliver(&self) -> bool;
}

/// A pass is split over the cores once it takes more than this share of the time between two
/// publishes (a quarter, with hysteresis down to an eighth): its last clients then wait a
/// noticeable part of the pause that moderation allowed, for their turn alone.
const SPLIT_SHARE: u32 = 4;
/// The share of the time between publishes below which a split pass runs whole again.
const JOIN_SHARE: u32 = 8;
/// The most shards a hub's recipients are spread over, whatever the number of cores.
const SHARDS_MAX: usize = 8;

/// The recipients of one hub (see the [module documentation](self)).
pub struct Recipients {
    shards: Box<[Shard]>,
    /// Where the next recipient goes (round robin).
    next: AtomicUsize,
    /// Whether passes are split over the cores now.
    split: AtomicBool,
    /// When the last pass started, in µs since `epoch`.
    last_start_us: AtomicU64,
    epoch: Instant,
}

#[derive(Default)]
struct Shard {
    /// Held for a whole pass of the shard: passes (a publish, an end, a close) never overlap,
    /// so none misses an event that another pass was delivering.
    list: Mutex<Vec<Arc<dyn Recipient>>>,
    /// Recipients added since the shard's last pass: a lock of its own, so that adding
    /// never waits for a pass.
    joining: Mutex<Vec<Arc<dyn Recipient>>>,
}

impl Shard {
    /// Delivers to every recipient of the shard, dropping those that are done.
    fn deliver(&self) {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        let mut joining = self.joining.lock().unwrap_or_else(PoisonError::into_inner);
        list.append(&mut joining);
        drop(joining);
        list.retain(|recipient| recipient.deliver());
    }
}

impl Default for Recipients {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::with_shards(cores.min(SHARDS_MAX))
    }
}

impl Recipients {
    fn with_shards(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1)).map(|_| Shard::default()).collect(),
            next: AtomicUsize::new(0),
            split: AtomicBool::new(false),
            last_start_us: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Adds `recipient` to the next pass.
    pub fn add(&self, recipient: Arc<dyn Recipient>) {
        let shard = self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        self.shards[shard]
            .joining
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(recipient);
    }

    /// Delivers to every recipient, dropping those that are done: on every core at once when
    /// passes are long (see the [module documentation](self)).
    pub fn deliver(self: &Arc<Self>) {
        let start = Instant::now();
        let start_us = start.duration_since(self.epoch).as_micros() as u64;
        let interval =
            start_us.saturating_sub(self.last_start_us.swap(start_us, Ordering::Relaxed));
        let runtime = tokio::runtime::Handle::try_current().ok();
        let split = runtime.filter(|_| self.split.load(Ordering::Relaxed));
        for (index, shard) in self.shards.iter().enumerate().rev() {
            match &split {
                Some(runtime) if index > 0 => {
                    let recipients = Arc::clone(self);
                    runtime.spawn(async move { recipients.shards[index].deliver() });
                }
                _ => shard.deliver(),
            }
        }
        // What the whole pass costs: a split one ran one shard here.
        let shards = if split.is_some() {
            self.shards.len()
        } else {
            1
        };
        let pass = start.elapsed() * shards as u32;
        let interval = Duration::from_micros(interval);
        if pass * SPLIT_SHARE > interval {
            self.split.store(self.shards.len() > 1, Ordering::Relaxed);
        } else if pass * JOIN_SHARE < interval {
            self.split.store(false, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipients").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Countdown(AtomicUsize);

    impl Recipient for Countdown {
        fn deliver(&self) -> bool {
            self.0.fetch_sub(1, Ordering::Relaxed) > 1
        }
    }

    #[test]
    fn a_recipient_gets_every_pass_until_it_is_done() {
        let recipients = Arc::new(Recipients::default());
        let twice = Arc::new(Countdown(AtomicUsize::new(2)));
        recipients.add(Arc::clone(&twice) as Arc<dyn Recipient>);
        for _ in 0..4 {
            recipients.deliver();
        }
        assert_eq!(twice.0.load(Ordering::Relaxed), 0);
        assert_eq!(Arc::strong_count(&twice), 1);
    }

    /// Takes `cost` of CPU per delivery, for ever.
    struct Slow(Duration);

    impl Recipient for Slow {
        fn deliver(&self) -> bool {
            let until = Instant::now() + self.0;
            while Instant::now() < until {}
            true
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pass_that_fills_the_time_between_publishes_is_split_and_a_short_one_is_not() {
        let recipients = Arc::new(Recipients::with_shards(2));
        for _ in 0..4 {
            recipients.add(Arc::new(Slow(Duration::from_micros(200))));
        }
        // Passes of ~800 µs every millisecond: split.
        for _ in 0..5 {
            recipients.deliver();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(recipients.split.load(Ordering::Relaxed));
        // The same passes every 20 ms: whole again.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            recipients.deliver();
        }
        assert!(!recipients.split.load(Ordering::Relaxed));
    }
}
