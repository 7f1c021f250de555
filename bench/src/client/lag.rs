//! The load generator's own lag: how long a ready file descriptor waits before the bench's
//! single thread gets to it.

use std::rc::Rc;
use std::time::Duration;

use voyandz_bench::clock::now_ns;

use super::Board;

/// A timerfd ticking every `period`, read by the same runtime as the clients: how late each
/// tick is handled is how long a ready socket waits for the load generator to get to it.
pub async fn measure_lag(board: Rc<Board>, period: Duration) {
    use tokio::io::unix::AsyncFd;
    // SAFETY: plain syscalls on a fd we own; the struct is fully initialised.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if fd < 0 {
        return;
    }
    // SAFETY: fd was just created and is owned by this OwnedFd alone.
    let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let p = period.as_nanos() as u64;
    let start = now_ns() + p;
    let ts = |ns: u64| libc::timespec {
        tv_sec: (ns / 1_000_000_000) as _,
        tv_nsec: (ns % 1_000_000_000) as _,
    };
    let spec = libc::itimerspec {
        it_interval: ts(p),
        it_value: ts(start),
    };
    // SAFETY: valid fd and itimerspec.
    if unsafe { libc::timerfd_settime(fd, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) }
        != 0
    {
        return;
    }
    // SAFETY: `owned` is a timerfd we created above and nothing else holds.
    let Ok(afd) = (unsafe { AsyncFd::register(owned) }) else {
        return;
    };
    let mut ticks: u64 = 0;
    loop {
        let Ok(mut guard) = afd.readable().await else {
            return;
        };
        let mut exp = [0u8; 8];
        // SAFETY: reads 8 bytes into an 8-byte buffer.
        let n = unsafe { libc::read(fd, exp.as_mut_ptr().cast(), 8) };
        let now = now_ns();
        if n != 8 {
            guard.clear_ready();
            continue;
        }
        // The first expiry not handled yet made the fd readable: the wait is measured from
        // it. (The last one, `exp - 1` periods later, would cap every lag at one period.)
        let due = start + ticks * p;
        ticks += u64::from_ne_bytes(exp);
        if board.recording.get() {
            let lag = now.saturating_sub(due);
            let mut hist = board.lag.borrow_mut();
            if lag > hist.max() {
                board.lag_worst_at.set(now);
            }
            hist.record(lag);
        }
    }
}
