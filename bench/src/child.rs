//! A process the bench starts and must never leave behind: the voyandz server, the Icecast
//! peer and the feed the bench runs for Icecast. Each is spawned in a process group of its
//! own and is sent SIGKILL by the kernel if the bench dies (`PR_SET_PDEATHSIG`); dropping the
//! handle kills its group. Stopping it politely (SIGTERM, then a deadline) is [`OwnedChild::stop`].
//!
//! Why all three: a process group of its own keeps a terminal's Ctrl-C (SIGINT to the
//! foreground group) away from a server, so that only the bench decides when and how it
//! stops; but then nothing would stop it when Ctrl-C kills the bench without unwinding, hence
//! the parent-death signal. A panic unwinds through the handle's `Drop`. What the bench checks
//! on the way out (the server's stop contract) is its caller's business, not this module's.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// How often a stop polls for the exit.
const STOP_POLL: Duration = Duration::from_millis(10);

/// A running child process, killed with its process group when dropped.
pub struct OwnedChild {
    child: Child,
    pid: u32,
    /// Set once it has been reaped: from then on its pid may be anyone's.
    status: Option<ExitStatus>,
}

/// How a [`OwnedChild::stop`] went.
#[derive(Debug, Clone, Copy)]
pub enum Stopped {
    /// It had exited before it was asked to.
    Already(ExitStatus),
    /// It exited after SIGTERM, with this status, this long after the signal.
    Exited(ExitStatus, Duration),
    /// It did not exit within the grace period and was killed with its group.
    Killed,
}

impl OwnedChild {
    /// Spawns `cmd` in a process group of its own, with SIGKILL as its parent-death signal.
    ///
    /// The parent-death signal is tied to the thread that forks: the bench spawns from its one
    /// runtime thread (the main thread), which lives as long as the bench. It is set after any
    /// `uid`/`gid` the caller put on `cmd` (std changes credentials before running `pre_exec`
    /// hooks), because the kernel clears it on a change of credentials.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<OwnedChild> {
        // SAFETY: getpid has no preconditions; read before the fork, compared after it.
        let parent = unsafe { libc::getpid() };
        cmd.process_group(0);
        // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The bench may have died between the fork and the prctl: then no signal
                // would come, and the child must not start at all.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("the bench exited during the spawn"));
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        Ok(OwnedChild {
            pid: child.id(),
            child,
            status: None,
        })
    }

    /// Its pid (also its process group's id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its exit status if it has exited (and is now reaped), `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Sends SIGTERM to the process alone (its own children are its business, as on a real
    /// system), waits up to `grace` for it to exit, then kills its group.
    pub fn stop(mut self, grace: Duration) -> Stopped {
        if let Some(status) = self.exited() {
            return Stopped::Already(status);
        }
        // SAFETY: signals our own child, which we have not reaped yet (the pid is still ours).
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < grace {
            if let Some(status) = self.exited() {
                return Stopped::Exited(status, t0.elapsed());
            }
            std::thread::sleep(STOP_POLL);
        }
        self.kill_group();
        Stopped::Killed
    }

    /// SIGKILL to the whole group the child leads, then reaps it.
    fn kill_group(&mut self) {
        if self.exited().is_some() {
            return;
        }
        // SAFETY: the group of our own unreaped child, created by `process_group(0)`.
        unsafe { libc::kill(-(self.pid as i32), libc::SIGKILL) };
        self.status = self.child.wait().ok();
    }
}

impl Drop for OwnedChild {
    fn drop(&mut self) {
        self.kill_group();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_ends_a_running_child_and_reports_how() {
        let child = OwnedChild::spawn(Command::new("sleep").arg("30")).expect("spawn sleep");
        match child.stop(Duration::from_secs(2)) {
            Stopped::Exited(status, took) => {
                assert!(!status.success(), "sleep ended by SIGTERM: {status}");
                assert!(took < Duration::from_secs(2));
            }
            other => panic!("sleep should end on SIGTERM: {other:?}"),
        }
    }

    #[test]
    fn a_child_that_ignores_sigterm_is_killed_after_the_grace() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap '' TERM; sleep 30"]);
        let child = OwnedChild::spawn(&mut cmd).expect("spawn sh");
        // Let the shell install its trap before the signal comes.
        std::thread::sleep(Duration::from_millis(200));
        assert!(matches!(
            child.stop(Duration::from_millis(200)),
            Stopped::Killed
        ));
    }

    /// Whether `pid` is gone (or a zombie nobody has reaped yet: it runs no more).
    fn gone(pid: u32) -> bool {
        crate::procstat::stat(pid).is_none_or(|s| s.state == 'Z')
    }

    #[test]
    fn dropping_the_handle_kills_the_group() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(std::process::Stdio::piped());
        let mut child = OwnedChild::spawn(&mut cmd).expect("spawn sh");
        let mut line = String::new();
        let out = child.child.stdout.take();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out.expect("piped")), &mut line)
            .expect("read the pid of sleep");
        let grandchild: u32 = line.trim().parse().expect("a pid");
        drop(child);
        std::thread::sleep(Duration::from_millis(100));
        assert!(gone(grandchild), "sleep outlived the handle of its group");
    }

    #[test]
    fn the_child_dies_with_the_thread_that_spawned_it() {
        // The parent-death signal fires when the spawning thread ends: a thread stands in for
        // the bench killed by Ctrl-C, which runs no destructor. As root, the child changes
        // user as the Icecast peer does (the kernel clears the signal on such a change, so it
        // must be set after it).
        let pid = std::thread::spawn(|| {
            let mut cmd = Command::new("sleep");
            cmd.arg("30");
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                cmd.uid(65534).gid(65534); // nobody:nogroup
            }
            let child = OwnedChild::spawn(&mut cmd).expect("spawn");
            let pid = child.pid();
            std::mem::forget(child);
            pid
        })
        .join()
        .expect("spawning thread");
        let deadline = Instant::now() + Duration::from_secs(2);
        while !gone(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(gone(pid), "the child outlived its parent");
    }
}
