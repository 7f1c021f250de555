//! Resurrection policy: when to start a command again after it died, and when to say so.
//!
//! The spec: a dead feed "must be resurrected immediately ... There should be no limit to
//! resurrection attempts, however repeated failures should have limited error logging." A run
//! that was healthy (it delivered bytes) is restarted at once, and its death is news every
//! time: it is logged, and so is the next start. A brief healthy run (shorter than
//! [`HEALTHY_RUN`]) must be followed by a long one before a brief one counts as healthy
//! again, so that a command that delivers a little and exits at once, over and over, costs
//! at most a few lines: it is a failing start. And a command whose healthy runs die more than
//! [`HEALTHY_DEATHS_MAX`] times within [`SUMMARY_INTERVAL`] (a camera that drops its
//! connection every few seconds) is flapping: its further deaths are a failing series too,
//! until a quieter interval. A command that keeps failing at start is
//! restarted after growing, capped delays, never giving up; the first failure of such a series
//! is logged with the tail of the command's stderr, later ones are summed up once per
//! [`SUMMARY_INTERVAL`].

use std::time::Duration;

use tokio::time::Instant;

/// A run that delivered bytes for at least this long is always healthy; a briefer one only
/// when the healthy run before it was not brief. Short enough that a feed killed two seconds
/// after its resurrection is still news; long enough that a command that prints a little and
/// exits at once becomes a failing start, whose logging is rate-limited.
pub const HEALTHY_RUN: Duration = Duration::from_secs(1);
/// First delay after a failed start; doubled on each further failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest delay between two starts of a command that keeps failing: short enough that a
/// camera that comes back is picked up quickly, long enough to cost nothing while it is away.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often a failing command's summary line is logged.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);
/// How many deaths of healthy runs within [`SUMMARY_INTERVAL`] are each news (logged, and
/// restarted at once); past that the command is flapping, and backs off and is summed up like
/// a failing start. A few kills or crashes of a working feed are always seen; a feed dying
/// every second costs neither a busy loop nor two log lines a second.
pub const HEALTHY_DEATHS_MAX: u32 = 5;

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
    /// The last healthy run was shorter than [`HEALTHY_RUN`]: the next one must not be.
    brief: bool,
    unlogged: u64,
    last_logged: Option<Instant>,
    /// When the current window of healthy deaths began, and how many it has seen.
    deaths_since: Option<Instant>,
    deaths: u32,
}

impl Resurrection {
    /// Records that a run that lasted `ran` and delivered `produced` bytes ended, and says
    /// when to run again.
    pub fn record_exit(&mut self, ran: Duration, produced: u64, now: Instant) -> Verdict {
        let long = ran >= HEALTHY_RUN;
        let healthy =
            produced > 0 && (long || (self.consecutive == 0 && !self.brief)) && !self.flapping(now);
        if healthy {
            self.brief = !long;
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

    /// Counts a death of a healthy run at `now`; whether there were too many lately.
    fn flapping(&mut self, now: Instant) -> bool {
        match self.deaths_since {
            Some(since) if now.duration_since(since) < SUMMARY_INTERVAL => {}
            _ => {
                self.deaths_since = Some(now);
                self.deaths = 0;
            }
        }
        self.deaths = self.deaths.saturating_add(1);
        self.deaths > HEALTHY_DEATHS_MAX
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
        let verdict = policy.record_exit(HEALTHY_RUN, 1, Instant::now());
        assert_eq!(verdict.delay, Duration::ZERO);
        assert_eq!(verdict.log, Some(LogAs::First));
        assert!(!policy.failing());
    }

    #[test]
    fn every_death_of_a_healthy_run_is_logged_even_in_a_series() {
        let mut policy = Resurrection::default();
        let start = Instant::now();
        for i in 0..5 {
            let at = start + HEALTHY_RUN * 2 * i;
            let verdict = policy.record_exit(HEALTHY_RUN * 2, 1000, at);
            assert_eq!(
                verdict,
                Verdict {
                    delay: Duration::ZERO,
                    log: Some(LogAs::First)
                }
            );
            assert!(!policy.failing(), "its next start is logged too");
        }
    }

    #[test]
    fn a_flapping_command_backs_off_and_is_summed_up_until_a_quieter_interval() {
        let mut policy = Resurrection::default();
        let start = Instant::now();
        let at = |second| start + Duration::from_secs(second);
        for second in 0..u64::from(HEALTHY_DEATHS_MAX) {
            let verdict = policy.record_exit(HEALTHY_RUN * 2, 1000, at(second));
            assert_eq!(verdict.log, Some(LogAs::First), "death {second} is news");
        }
        let flapping = policy.record_exit(HEALTHY_RUN * 2, 1000, at(6));
        assert!(policy.failing(), "too many deaths in a minute");
        assert_eq!(
            flapping.log,
            Some(LogAs::First),
            "the first of a failing series"
        );
        let next = policy.record_exit(HEALTHY_RUN * 2, 1000, at(7));
        assert_eq!(next.log, None);
        assert!(next.delay > Duration::ZERO, "it backs off");
        let quieter = policy.record_exit(HEALTHY_RUN * 2, 1000, at(6) + SUMMARY_INTERVAL);
        assert_eq!(quieter.delay, Duration::ZERO);
        assert!(
            !policy.failing(),
            "a new minute, a healthy death is news again"
        );
    }

    #[test]
    fn a_brief_healthy_run_needs_a_long_one_before_the_next_brief_one() {
        let mut policy = Resurrection::default();
        let now = Instant::now();
        let brief = HEALTHY_RUN / 4;
        assert_eq!(policy.record_exit(brief, 10, now).log, Some(LogAs::First));
        assert!(
            !policy.failing(),
            "a feed killed soon after it started is news"
        );
        assert_eq!(
            policy.record_exit(HEALTHY_RUN, 10, now).log,
            Some(LogAs::First)
        );
        assert!(!policy.failing());
        assert_eq!(policy.record_exit(brief, 10, now).log, Some(LogAs::First));
        assert!(!policy.failing());
        // Brief after brief: a command that prints a little and exits is failing at start.
        policy.record_exit(brief, 10, now);
        assert!(policy.failing());
        assert_eq!(policy.record_exit(brief, 10, now).log, None);
    }

    #[test]
    fn a_run_without_bytes_or_too_short_is_a_failed_start() {
        let mut policy = Resurrection::default();
        let now = Instant::now();
        assert_eq!(
            policy.record_exit(HEALTHY_RUN * 60, 0, now).log,
            Some(LogAs::First)
        );
        assert!(
            policy.failing(),
            "a long run that never delivered a byte failed"
        );
        assert_eq!(policy.record_exit(HEALTHY_RUN / 2, 5000, now).log, None);
        assert_eq!(
            policy.record_exit(Duration::ZERO, 10, now).delay,
            BACKOFF_MIN * 2
        );
        assert!(policy.failing());
    }

    #[test]
    fn failing_starts_back_off_to_the_cap_and_never_give_up() {
        let mut policy = Resurrection::default();
        let now = Instant::now();
        let delays: Vec<Duration> = (0..12)
            .map(|_| policy.record_exit(Duration::ZERO, 0, now).delay)
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
            policy.record_exit(Duration::ZERO, 0, start).log,
            Some(LogAs::First)
        );
        for i in 1..10 {
            let at = start + Duration::from_secs(i);
            assert_eq!(policy.record_exit(Duration::ZERO, 0, at).log, None);
        }
        let later = start + SUMMARY_INTERVAL;
        assert_eq!(
            policy.record_exit(Duration::ZERO, 0, later).log,
            Some(LogAs::Summary { failures: 10 })
        );
    }
}
