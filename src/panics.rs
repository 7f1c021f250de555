//! Panics caught where they happen, for code that must not take its caller down with it (a
//! container parser runs on the data path of every client of a stream).
//!
//! [`catch`] runs a closure and turns a panic into a [`Caught`]: the message, where it
//! happened and the backtrace, so that the caller logs it once, with its own context (the
//! stream), and carries on. The process's panic hook ([`crate::app::log_panics`]) runs before
//! the unwinding reaches [`catch`]: it hands such a panic's backtrace over through [`stash`]
//! instead of logging it a second time. This module does not decide what to do after a panic.

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, PanicHookInfo};

thread_local! {
    /// Set while [`catch`] runs its closure on this thread.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// Where the hook leaves the location and backtrace of a panic [`catch`] will report.
    static STASHED: RefCell<Option<(Option<String>, Backtrace)>> = const { RefCell::new(None) };
}

/// A panic that [`catch`] stopped.
#[derive(Debug)]
pub struct Caught {
    /// The panic's message.
    pub message: String,
    /// Its source location, when the panic hook saw it.
    pub location: Option<String>,
    /// Its backtrace, when the process's panic hook captured one (disabled in unit tests).
    pub backtrace: Backtrace,
}

/// Runs `work`; a panic in it becomes `Err`. The caller must treat whatever `work` mutated as
/// suspect (drop it or reset it): that is why unwind safety is asserted here rather than proven
/// by the type system.
pub fn catch<R>(work: impl FnOnce() -> R) -> Result<R, Caught> {
    let outer = CATCHING.replace(true);
    let result = std::panic::catch_unwind(AssertUnwindSafe(work));
    CATCHING.set(outer);
    result.map_err(|payload| {
        let (location, backtrace) = STASHED.take().unwrap_or((None, Backtrace::disabled()));
        let message = payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        Caught {
            message,
            location,
            backtrace,
        }
    })
}

/// For the process's panic hook: when [`catch`] will report this panic, keeps its location and
/// backtrace for it and returns `true` (the hook then logs nothing itself).
pub fn stash(info: &PanicHookInfo<'_>) -> bool {
    if !CATCHING.get() {
        return false;
    }
    let location = info.location().map(ToString::to_string);
    STASHED.set(Some((location, Backtrace::force_capture())));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_the_thread_goes_on() {
        let caught = catch(|| -> u8 { panic!("bad byte {}", 7) }).expect_err("it panicked");
        assert_eq!(caught.message, "bad byte 7");
        assert_eq!(catch(|| 5).expect("no panic"), 5);
    }
}
