//! Resurrection policy: when to start a command again after it died, and when to say so.
//!
//! The spec: a dead feed "must be resurrected immediately ... There should be no limit to
//! resurrection attempts, however repeated failures should have limited error logging." A
//! command that had been running fine is restarted at once; one that keeps failing at start is
//! restarted after growing, capped delays, never giving up. The first failure is logged with the
//! tail of the command's stderr; later ones are summed up once per [`SUMMARY_INTERVAL`].

use std::time::Duration;

use tokio::time::Instant;

/// A run at least this long, or one that delivered bytes for at least this long, counts as
/// "running fine": its death is a fresh failure, resurrected at once.
pub const HEALTHY_RUN: Duration = Duration::from_secs(5);
/// First delay after a failed start; doubled on each further failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest delay between two starts of a command that keeps failing: short enough that a
/// camera that comes back is picked up quickly, long enough to cost nothing while it is away.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often a failing command's summary line is logged.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// What to do after a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Wait this long before starting it again.
    pub delay: Duration,
    /// Log this failure (the first of a series, or a periodic summary with its count).
    pub log: Option<LogAs>,
}

/// How a failure is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogAs {
    /// The first failure of a series.
    First,
    /// A summary of `failures` failures since the last log line.
    Summary {
        /// Failures since the last logged one, this one included.
        failures: u64,
    },
}

/// Per feed or stream: the state of the current series of failures.
#[derive(Debug, Default)]
pub struct Resurrection {
    consecutive: u32,
    unlogged: u64,
    last_logged: Option<Instant>,
}

impl Resurrection {
    /// Records that a run that lasted `ran` ended, and says when to run again.
    pub fn record_exit(&mut self, ran: Duration, now: Instant) -> Verdict {
        if ran >= HEALTHY_RUN {
            self.consecutive = 0;
            self.unlogged = 0;
            self.last_logged = Some(now);
            return Verdict {
                delay: Duration::ZERO,
                log: Some(LogAs::First),
            };
        }
        let delay = if self.consecutive == 0 {
            Duration::ZERO
        } else {
            BACKOFF_MIN
                .saturating_mul(1 << (self.consecutive - 1).min(16))
                .min(BACKOFF_MAX)
        };
        self.consecutive = self.consecutive.saturating_add(1);
        self.unlogged += 1;
        let log = match self.last_logged {
            _ if self.consecutive == 1 => Some(LogAs::First),
            Some(at) if now.duration_since(at) < SUMMARY_INTERVAL => None,
            _ => Some(LogAs::Summary {
                failures: self.unlogged,
            }),
        };
        if log.is_some() {
            self.unlogged = 0;
            self.last_logged = Some(now);
        }
        Verdict { delay, log }
    }

    /// Whether the command is in a series of failed starts (its starts are then logged quietly).
    pub fn failing(&self) -> bool {
        self.consecutive > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_run_is_resurrected_at_once_and_logged() {
        let mut policy = Resurrection::default();
        let verdict = policy.record_exit(HEALTHY_RUN, Instant::now());
        assert_eq!(verdict.delay, Duration::ZERO);
        assert_eq!(verdict.log, Some(LogAs::First));
        assert!(!policy.failing());
    }

    #[test]
    fn failing_starts_back_off_to_the_cap_and_never_give_up() {
        let mut policy = Resurrection::default();
        let now = Instant::now();
        let delays: Vec<Duration> = (0..12)
            .map(|_| policy.record_exit(Duration::ZERO, now).delay)
            .collect();
        assert_eq!(delays[0], Duration::ZERO);
        assert_eq!(delays[1], BACKOFF_MIN);
        assert_eq!(delays[2], BACKOFF_MIN * 2);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*delays.last().expect("delays"), BACKOFF_MAX);
    }

    #[test]
    fn failures_are_logged_first_then_summarised_per_interval() {
        let mut policy = Resurrection::default();
        let start = Instant::now();
        assert_eq!(
            policy.record_exit(Duration::ZERO, start).log,
            Some(LogAs::First)
        );
        for i in 1..10 {
            let at = start + Duration::from_secs(i);
            assert_eq!(policy.record_exit(Duration::ZERO, at).log, None);
        }
        let later = start + SUMMARY_INTERVAL;
        assert_eq!(
            policy.record_exit(Duration::ZERO, later).log,
            Some(LogAs::Summary { failures: 10 })
        );
    }
}
