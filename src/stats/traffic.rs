//! Server-wide HTTP counters: connections and requests by status code.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// The HTTP status codes [`Traffic`] counts: 100 to 599, every code HTTP defines.
const STATUS_CODES: std::ops::Range<u16> = 100..600;

/// Server-wide counters: connections accepted and open, and requests by the status code of
/// their answer. One atomic add per connection and per request, no lock.
#[derive(Debug)]
pub struct Traffic {
    accepted: AtomicU64,
    closed: AtomicU64,
    /// Answers by status code, indexed from the first of [`STATUS_CODES`].
    answers: [AtomicU64; STATUS_CODES.end as usize - STATUS_CODES.start as usize],
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            accepted: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            answers: [const { AtomicU64::new(0) };
                STATUS_CODES.end as usize - STATUS_CODES.start as usize],
        }
    }
}

impl Traffic {
    /// Counts an accepted connection, open until the returned guard is dropped.
    pub fn accepted(self: &Arc<Self>) -> OpenConnection {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(self))
    }

    /// Counts a request answered with `status` (a code outside HTTP's range is not counted).
    pub fn answered(&self, status: u16) {
        if let Some(count) = (status.checked_sub(STATUS_CODES.start))
            .and_then(|index| self.answers.get(usize::from(index)))
        {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Its view now.
    pub fn view(&self) -> TrafficView {
        let closed = self.closed.load(Ordering::Relaxed);
        let accepted = self.accepted.load(Ordering::Relaxed);
        TrafficView {
            connections: accepted,
            open_connections: accepted.saturating_sub(closed),
            requests: (STATUS_CODES.zip(&self.answers))
                .map(|(code, count)| (code, count.load(Ordering::Relaxed)))
                .filter(|(_, count)| *count > 0)
                .collect(),
        }
    }
}

/// A connection counted as open by [`Traffic`] until this is dropped.
#[derive(Debug)]
pub struct OpenConnection(Arc<Traffic>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// [`Traffic`] at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficView {
    /// Connections accepted since the server started.
    pub connections: u64,
    /// Connections open now.
    pub open_connections: u64,
    /// Requests answered, by status code (codes never answered are left out).
    pub requests: Vec<(u16, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_counts_connections_while_open_and_answers_by_code() {
        let traffic = Arc::new(Traffic::default());
        let open = traffic.accepted();
        let _still_open = traffic.accepted();
        drop(open);
        for status in [200, 404, 200, 599, 600, 99] {
            traffic.answered(status);
        }
        let view = traffic.view();
        assert_eq!((view.connections, view.open_connections), (2, 1));
        assert_eq!(view.requests, vec![(200, 2), (404, 1), (599, 1)]);
    }
}
