//! A fixed-rate HTTP load, as `oha -q` makes one (the status section's `/stat.json` load while
//! stream latency is measured): request *k* falls due at `start + k/rate` on CLOCK_MONOTONIC,
//! spread round-robin over a few keep-alive connections, each on its own thread. A slow answer
//! never shifts the schedule: the requests that fell due meanwhile go out back to back, and
//! their time is counted from when they were due (no coordinated omission).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use voyandz_bench::clock::{now_ns, sleep_until_ns};
use voyandz_bench::hist::Histogram;

use super::keepalive::KeepAlive;

/// How long one request may take before its connection gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A request sent this much after it fell due counts as late: the load fell behind its rate.
const LATE_NS: u64 = 1_000_000;
/// The first request is due this long after `run` is called, so that every thread is ready.
const START_DELAY_NS: u64 = 5_000_000;

/// What to load and how hard.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Server address.
    pub addr: SocketAddr,
    /// URL path every request gets.
    pub path: String,
    /// Requests per second, all connections together.
    pub per_second: u64,
    /// Keep-alive connections, each on its own thread.
    pub connections: usize,
    /// How long the schedule runs.
    pub length: Duration,
}

impl Plan {
    /// Requests the schedule holds.
    pub fn planned(&self) -> u64 {
        (self.per_second as f64 * self.length.as_secs_f64()).round() as u64
    }
}

/// What the load did.
#[derive(Default)]
pub struct Report {
    /// Requests sent.
    pub sent: u64,
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no complete answer.
    pub errors: u64,
    /// The first such failure.
    pub first_error: Option<String>,
    /// Time from when each answered request fell due to its answer's last byte, ns.
    pub from_due: Histogram,
    /// Requests sent more than [`LATE_NS`] after they fell due.
    pub late: u64,
    /// Connections opened in all (more than `connections` when the server closed some).
    pub connects: u64,
}

impl Report {
    fn merge(&mut self, other: Report) {
        self.sent += other.sent;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.from_due.merge(&other.from_due);
        self.late += other.late;
        self.connects += other.connects;
    }

    /// Requests answered 200.
    pub fn ok(&self) -> u64 {
        self.statuses.get(&200).copied().unwrap_or(0)
    }

    /// Every other status, as `501 ×6000, 404 ×1`.
    pub fn other_statuses(&self) -> String {
        self.statuses
            .iter()
            .filter(|(status, _)| **status != 200)
            .map(|(status, n)| format!("{status} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Runs the plan to its end (blocking: call it from a thread of its own) and reports.
pub fn run(plan: &Plan) -> Report {
    let start = now_ns() + START_DELAY_NS;
    let planned = plan.planned();
    let connections = plan.connections.max(1);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..connections)
            .map(|first| {
                scope.spawn(move || {
                    let due = (first as u64..planned)
                        .step_by(connections)
                        .map(|k| start + k * 1_000_000_000 / plan.per_second.max(1));
                    connection(plan, due, start + plan.length.as_nanos() as u64)
                })
            })
            .collect();
        let mut report = Report::default();
        for t in threads {
            report.merge(t.join().expect("load thread does not panic"));
        }
        report
    })
}

/// One connection's share of the schedule: a request at each `due` time. Once the schedule's
/// `end` is [`REQUEST_TIMEOUT`] behind (a server that stopped answering), the rest is not sent.
fn connection(plan: &Plan, due: impl Iterator<Item = u64>, end: u64) -> Report {
    let mut client = KeepAlive::new(plan.addr, REQUEST_TIMEOUT);
    let mut report = Report::default();
    for due in due {
        let now = now_ns();
        if now > end + REQUEST_TIMEOUT.as_nanos() as u64 {
            break;
        }
        if now < due {
            sleep_until_ns(due);
        } else if now - due > LATE_NS {
            report.late += 1;
        }
        report.sent += 1;
        match client.get(&plan.path) {
            Ok(response) => {
                *report.statuses.entry(response.status).or_default() += 1;
                report.from_due.record(response.done_at.saturating_sub(due));
            }
            Err(e) => {
                report.errors += 1;
                report.first_error.get_or_insert(e);
            }
        }
    }
    report.connects = client.connects;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::keepalive::tests::serve;

    #[test]
    fn sends_the_whole_schedule_at_its_rate_and_counts_each_status() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let refused = "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n";
        // One connection, so the answers come in schedule order.
        let addr = serve(
            [[ok; 9].as_slice(), &[refused]]
                .concat()
                .into_iter()
                .map(Some)
                .collect(),
        );
        let plan = Plan {
            addr,
            path: "/stat.json".into(),
            per_second: 50,
            connections: 1,
            length: Duration::from_millis(200),
        };
        let t0 = now_ns();
        let report = run(&plan);
        let took = now_ns() - t0;
        assert_eq!((plan.planned(), report.sent, report.ok()), (10, 10, 9));
        assert_eq!(report.other_statuses(), "501 ×1");
        assert_eq!((report.errors, report.connects), (0, 1));
        // The last request is due 180 ms after the first: the schedule was kept, not rushed.
        assert!(took >= 180_000_000, "took {took} ns");
    }
}
