//! Direct delivery: the task that publishes a chunk writes it to every client itself, in one
//! pass, right after the publish.
//!
//! Waking one task per client per chunk cost as much again as the write itself (a wake, a
//! schedule, hyper's dispatch, a contended lock on the hub), and spread the writes over time
//! so that their receivers were woken one by one. A pass over a list of [`Recipient`]s costs
//! one non-blocking `writev` each; a recipient whose socket is full keeps its bytes and is
//! tried again at the next pass.

use std::sync::{Arc, Mutex, PoisonError};

/// A consumer that takes what is new for it and writes it without waiting.
pub trait Recipient: Send + Sync {
    /// Takes what is new and writes what its socket takes now; false once it is done with
    /// direct delivery (it ended, or its own task took over), to be dropped from the list.
    fn deliver(&self) -> bool;
}

/// The recipients of one hub.
#[derive(Default)]
pub struct Recipients {
    /// Held for a whole pass: passes (a publish, an end, a close) never overlap, so none
    /// misses an event that another pass was delivering.
    list: Mutex<Vec<Arc<dyn Recipient>>>,
    /// Recipients added since the last pass: a lock of its own, so that adding never waits
    /// for a pass.
    joining: Mutex<Vec<Arc<dyn Recipient>>>,
}

impl Recipients {
    /// Adds `recipient` to the next pass.
    pub fn add(&self, recipient: Arc<dyn Recipient>) {
        self.joining
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(recipient);
    }

    /// Delivers to every recipient, dropping those that are done.
    pub fn deliver(&self) {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.append(&mut self.joining.lock().unwrap_or_else(PoisonError::into_inner));
        list.retain(|recipient| recipient.deliver());
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Countdown(AtomicUsize);

    impl Recipient for Countdown {
        fn deliver(&self) -> bool {
            self.0.fetch_sub(1, Ordering::Relaxed) > 1
        }
    }

    #[test]
    fn a_recipient_gets_every_pass_until_it_is_done() {
        let recipients = Recipients::default();
        let twice = Arc::new(Countdown(AtomicUsize::new(2)));
        recipients.add(Arc::clone(&twice) as Arc<dyn Recipient>);
        for _ in 0..4 {
            recipients.deliver();
        }
        assert_eq!(twice.0.load(Ordering::Relaxed), 0);
        assert_eq!(Arc::strong_count(&twice), 1);
    }
}
