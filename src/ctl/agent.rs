//! A password prompt for polkit, as `systemctl` offers one: before a call that changes
//! something, voyandzctl run from a terminal starts polkit's text agent (`pkttyagent`), so
//! that a call polkit allows after authentication (the shipped action asks for an
//! administrator's password) prompts on the terminal instead of being refused.
//!
//! The agent registers for the user's login session, where polkit looks for one when the
//! server asks about a caller of that session, and only if no other agent serves it
//! (`--fallback`: a desktop's own agent keeps the prompt), as `systemctl` starts it. It says
//! it has registered by closing the descriptor `--notify-fd` names; the call waits for that,
//! so the agent is there when polkit looks for one. Without a terminal, as root, with
//! `--no-ask-password`, without `pkttyagent`, or outside a login session (the agent cannot
//! register then), no agent serves the call, and one that needs a password is refused with
//! polkit's reason.

use std::io::IsTerminal;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::{FdFlags, fcntl_setfd};
use rustix::pipe::{PipeFlags, pipe_with};

/// polkit's text agent (package polkitd on Debian, polkit on Fedora).
const PKTTYAGENT: &str = "pkttyagent";
/// How long the agent may take to register with polkit (tens of ms here).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// A running agent; dropping it ends it.
#[derive(Debug)]
pub struct Agent(Child);

impl Agent {
    /// Starts an agent for the user's session if a password could be asked here (see the
    /// [module documentation](self)) and waits until it is registered; `None` when none is
    /// wanted or it could not start (the call then goes on without it).
    pub fn start_if_useful(asking_allowed: bool) -> Option<Agent> {
        let useful = asking_allowed
            && std::io::stdin().is_terminal()
            && !rustix::process::geteuid().is_root();
        useful.then(Agent::start).flatten()
    }

    fn start() -> Option<Agent> {
        let (registered, notify) = pipe_with(PipeFlags::CLOEXEC).ok()?;
        // The agent's copy: the only descriptor of ours it inherits (voyandzctl runs one
        // thread, so nothing else is spawned meanwhile).
        fcntl_setfd(&notify, FdFlags::empty()).ok()?;
        let child = Command::new(PKTTYAGENT)
            .arg("--notify-fd")
            .arg(notify.as_raw_fd().to_string())
            .arg("--fallback")
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        drop(notify);
        let agent = Agent(child);
        // Readable means closed (the agent writes nothing): it has registered, or it could
        // not and exited; either way the call goes on.
        let mut fds = [PollFd::new(&registered, PollFlags::IN)];
        let timeout = Timespec::try_from(REGISTER_TIMEOUT).ok()?;
        matches!(poll(&mut fds, Some(&timeout)), Ok(1)).then_some(agent)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
