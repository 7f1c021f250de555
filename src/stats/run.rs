//! A feed's or stream's run: its [`State`] as its supervisor sets it, and the counters of
//! its input. The bit rate is worked out when somebody reads the state, from the byte
//! counter and the time since the previous read, so that a server nobody watches pays
//! nothing for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Local};
use serde::Serialize;

use super::millis;
use super::view::RunView;
use crate::process::exit::Exit;

/// How far back the bit rate looks: an exponentially weighted average with this time
/// constant follows a change within a few seconds and smooths the burstiness of GOPs.
const RATE_TIME_CONSTANT: Duration = Duration::from_secs(2);
/// Reads of the state closer together than this reuse the last rate: many readers (a page
/// refreshing every second in many browsers) must not turn the average into noise.
const RATE_SAMPLE_MIN: Duration = Duration::from_millis(250);

/// What a feed or stream is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not running, waiting for its first client (on-demand and timeout modes).
    Idle,
    /// Its process was started and has not delivered a byte yet.
    Starting,
    /// Delivering bytes.
    Running,
    /// Timeout mode: running on with no client, until its time is up or a client comes.
    Lingering,
    /// It died and is being resurrected after a backoff (see `retry_at`).
    Restarting,
    /// It failed and is not resurrected (`no-resurrect`).
    Failed,
    /// Stopped by a command; it stays stopped until started again.
    Stopped,
    /// Its input ended, or it ended and is not resurrected.
    Ended,
}

impl State {
    /// Every state, in the order a run goes through them: what a reader that shows one
    /// line per state (a metric per state label) lists.
    pub const ALL: [State; 8] = [
        State::Idle,
        State::Starting,
        State::Running,
        State::Lingering,
        State::Restarting,
        State::Failed,
        State::Stopped,
        State::Ended,
    ];

    /// Its name, as the status views spell it.
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Starting => "starting",
            State::Running => "running",
            State::Lingering => "lingering",
            State::Restarting => "restarting",
            State::Failed => "failed",
            State::Stopped => "stopped",
            State::Ended => "ended",
        }
    }
}

/// The state of one feed or stream, shared by its supervisor (writer) and the readers.
#[derive(Debug)]
pub struct RunStats {
    /// Bytes read from its process or file and published, over every run.
    pub bytes_in: AtomicU64,
    status: Mutex<Status>,
    rate: Mutex<Rate>,
}

#[derive(Debug)]
struct Status {
    state: State,
    retry_at: Option<(Instant, DateTime<Local>)>,
    pid: Option<u32>,
    started: Option<(Instant, DateTime<Local>)>,
    /// `bytes_in` when the current run started: more means it delivered.
    run_base: u64,
    restarts: u64,
    last_exit: Option<Exit>,
}

#[derive(Debug)]
struct Rate {
    at: Instant,
    bytes: u64,
    bits_per_second: f64,
}

impl Default for RunStats {
    fn default() -> Self {
        Self {
            bytes_in: AtomicU64::new(0),
            status: Mutex::new(Status {
                state: State::Idle,
                retry_at: None,
                pid: None,
                started: None,
                run_base: 0,
                restarts: 0,
                last_exit: None,
            }),
            rate: Mutex::new(Rate {
                at: Instant::now(),
                bytes: 0,
                bits_per_second: 0.0,
            }),
        }
    }
}

impl RunStats {
    fn status(&self) -> MutexGuard<'_, Status> {
        // A panic elsewhere cannot leave a status half-written: every write is one assignment.
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.status().state
    }

    /// Sets the state (the retry time is only kept while restarting).
    pub fn set_state(&self, state: State) {
        let mut status = self.status();
        status.state = state;
        status.retry_at = None;
    }

    /// A run started (`pid` for a command, none for a file).
    pub fn started(&self, pid: Option<u32>) {
        let mut status = self.status();
        status.state = State::Starting;
        status.retry_at = None;
        status.pid = pid;
        status.started = Some((Instant::now(), Local::now()));
        status.run_base = self.bytes_in.load(Ordering::Relaxed);
    }

    /// The run ended by itself.
    pub fn exited(&self, exit: Exit) {
        let mut status = self.status();
        status.pid = None;
        status.last_exit = Some(exit);
    }

    /// The run was stopped (no more demand, a command, the server stopping).
    pub fn stopped(&self, state: State) {
        let mut status = self.status();
        status.pid = None;
        status.state = state;
        status.retry_at = None;
    }

    /// It is resurrected after `delay`.
    pub fn restarting(&self, delay: Duration) {
        let mut status = self.status();
        status.state = State::Restarting;
        status.restarts += 1;
        let delay_wall = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        status.retry_at = Some((Instant::now() + delay, Local::now() + delay_wall));
    }

    /// Its view, named `name`, with what the caller counted: bytes sent to its clients and
    /// its subscribers.
    pub fn view(&self, name: &str, bytes_out: u64, subscribers: usize) -> RunView {
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        let now = Instant::now();
        let status = self.status();
        let delivered = bytes_in > status.run_base;
        let state = match status.state {
            State::Starting if delivered => State::Running,
            state => state,
        };
        let running = matches!(state, State::Starting | State::Running | State::Lingering);
        let started = status.started.filter(|_| running);
        let view = RunView {
            name: name.to_string(),
            state,
            retry_at: status.retry_at.map(|(_, wall)| wall),
            retry_in_ms: (status.retry_at).map(|(at, _)| millis(at.saturating_duration_since(now))),
            pid: status.pid,
            started_at: started.map(|(_, wall)| wall),
            uptime_ms: started.map(|(at, _)| millis(now - at)),
            restarts: status.restarts,
            last_exit: status.last_exit.clone(),
            bytes_in,
            bytes_out,
            bitrate_bps: 0,
            subscribers,
        };
        drop(status);
        RunView {
            bitrate_bps: self.bit_rate(bytes_in, now),
            ..view
        }
    }

    /// The input bit rate: an exponentially weighted average over [`RATE_TIME_CONSTANT`],
    /// brought up to date with the bytes read since the previous read of the state. A long
    /// gap between two reads gives the average over the gap, which is what a reader that
    /// looks once a minute (a metrics scraper) wants.
    fn bit_rate(&self, bytes: u64, now: Instant) -> u64 {
        let mut rate = self
            .rate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let elapsed = now.saturating_duration_since(rate.at);
        if elapsed >= RATE_SAMPLE_MIN {
            let seconds = elapsed.as_secs_f64();
            let current = (bytes.saturating_sub(rate.bytes) * 8) as f64 / seconds;
            let weight = 1.0 - (-seconds / RATE_TIME_CONSTANT.as_secs_f64()).exp();
            rate.bits_per_second += weight * (current - rate.bits_per_second);
            rate.at = now;
            rate.bytes = bytes;
        }
        rate.bits_per_second.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_running_once_it_delivered() {
        let stats = RunStats::default();
        stats.started(Some(42));
        assert_eq!(stats.view("f", 0, 1).state, State::Starting);
        stats.bytes_in.fetch_add(10, Ordering::Relaxed);
        let view = stats.view("f", 0, 1);
        assert_eq!(
            (view.state, view.pid, view.bytes_in),
            (State::Running, Some(42), 10)
        );
        assert!(view.started_at.is_some());
    }

    #[test]
    fn a_restart_counts_and_says_when() {
        let stats = RunStats::default();
        stats.restarting(Duration::from_secs(5));
        let view = stats.view("f", 0, 0);
        assert_eq!((view.state, view.restarts), (State::Restarting, 1));
        assert!(view.retry_in_ms.is_some_and(|ms| ms > 4000 && ms <= 5000));
    }

    #[test]
    fn the_bit_rate_follows_the_bytes() {
        let stats = RunStats::default();
        let start = Instant::now();
        {
            let mut rate = stats.rate.lock().expect("rate");
            rate.at = start;
        }
        // 10 s of 1000 bytes a second, sampled each second: close to 8000 bit/s.
        let mut bps = 0;
        for second in 1..=10u64 {
            bps = stats.bit_rate(second * 1000, start + Duration::from_secs(second));
        }
        assert!((7000..=8000).contains(&bps), "{bps}");
    }

    #[test]
    fn every_state_is_named_as_it_serializes() {
        for state in State::ALL {
            let yaml = serde_saphyr::to_string(&state).expect("serializable");
            assert_eq!(yaml.trim(), state.name());
        }
    }

    #[test]
    fn the_state_serializes_as_plain_values() {
        let stats = RunStats::default();
        let yaml = serde_saphyr::to_string(&stats.view("f", 0, 0)).expect("serializable");
        assert!(yaml.contains("state: idle"), "{yaml}");
    }
}
