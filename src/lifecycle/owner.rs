//! The one owner task of a feed or stream: it runs the [`supervise`] loop, takes commands
//! (start, stop, restart) over a channel, and holds the feed's or stream's cancellation token,
//! from which its clients' tokens derive.
//!
//! Commands (what D-Bus and `voyandzctl` send, through [`crate::control`]; see [`Command`]):
//! - `Stop` ends the run, ends the output for every subscriber (clients and the commands of
//!   streams reading it) and cancels the token of every client; it stays stopped, whatever
//!   its mode and demand, until `Start` or `Restart`.
//! - `Start` runs it at once and keeps it running as a continuous one would, even with no
//!   client, until `Stop` or `Restart` (an admin who starts a camera feed wants it up now,
//!   and the next client then joins a running feed); on a stopped one it also ends the stop.
//! - `Restart` ends the current run and starts a new one at once in its configured mode (a
//!   forced `Start` is undone); its clients stay, as they do across a resurrection.
//!
//! - A hand-over ([`Handle::hand_over`]) ends the current run and leaves, without ending the output or the clients:
//!   a reload changed the stream's definition, and a successor owner ([`spawn_after`]) goes
//!   on with the same hub, control and clients once this one is gone.
//!
//! Dropping every [`Handle`] (the feed or stream left the registry's snapshot) stops it for
//! good. A panic of the loop is logged (by the panic hook) and the loop is started again: one
//! broken feed must not stay dead. This module does not decide when a run starts or ends by
//! itself: [`supervise`] does.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Job, Kind, Tasks, supervise};
use crate::config::Mode;
use crate::fanout::hub::{Hub, Subscriber};
use crate::stats::{RunStats, State};

/// Pause before a panicked supervisor is started again.
const PANIC_RESTART_DELAY: std::time::Duration = std::time::Duration::from_secs(1);
/// Commands that may wait for the owner: a few, since each one is acted on at once; a sender
/// of more waits (they come from people, not from the data path).
const COMMANDS_QUEUED_MAX: usize = 8;

/// What an owner task can be told to do (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Run now and keep running, with or without clients, until stopped or restarted.
    Start,
    /// End the run and every client; stay stopped until started.
    Stop,
    /// End the current run and start a new one in the configured mode.
    Restart,
}

/// What an owner acts on: a [`Command`], or a reload's hand-over (which only the registry
/// sends, through [`Handle::hand_over`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Instruction {
    Do(Command),
    /// End the current run and leave the hub and the clients to a successor.
    HandOver,
}

/// The owner task is gone: the server is stopping, or the feed or stream was removed.
#[derive(Debug, thiserror::Error)]
#[error("{kind} \"{name}\" is no longer running")]
pub struct Gone {
    /// A feed or a stream.
    pub kind: Kind,
    /// Its name.
    pub name: String,
}

/// A command and who waits for it to be acted on.
#[derive(Debug)]
struct Order {
    instruction: Instruction,
    done: Option<oneshot::Sender<()>>,
}

impl Order {
    /// Tells the sender the command was acted on.
    fn done(self) {
        if let Some(done) = self.done {
            let _ = done.send(());
        }
    }
}

/// How to reach a feed's or stream's owner task, and what it shares with the readers.
#[derive(Debug, Clone)]
pub struct Handle {
    kind: Kind,
    name: String,
    commands: mpsc::Sender<Order>,
    control: Arc<Control>,
    /// Becomes true once the owner task is gone.
    gone: watch::Receiver<bool>,
}

/// What an owner task shares with its handles.
#[derive(Debug)]
pub struct Control {
    /// Its state and counters.
    pub stats: Arc<RunStats>,
    /// The server's token, from which a fresh one derives when it starts after a stop.
    parent: CancellationToken,
    tokens: Mutex<Tokens>,
}

/// The tokens of a feed or stream: `run` ends its runs and its clients (a stop); `clients`,
/// a child of it, ends only the clients connected now (a disconnect).
#[derive(Debug)]
struct Tokens {
    run: CancellationToken,
    clients: CancellationToken,
}

impl Tokens {
    fn under(parent: &CancellationToken) -> Self {
        let run = parent.child_token();
        let clients = run.child_token();
        Self { run, clients }
    }
}

impl Control {
    /// Control of a feed or stream whose clients end with the server (or with `parent`).
    pub fn new(parent: &CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            stats: Arc::default(),
            parent: parent.clone(),
            tokens: Mutex::new(Tokens::under(parent)),
        })
    }

    /// A token for a new client: cancelled when the feed or stream is stopped, or its
    /// clients are disconnected.
    pub fn client_token(&self) -> CancellationToken {
        self.tokens().clients.child_token()
    }

    /// Ends every client it has now (the feed or stream left the config); clients that
    /// come later get a fresh token only through a new `Control`.
    pub fn end_clients(&self) {
        self.token().cancel();
    }

    /// Ends every client connected now and nothing else: the run goes on, and clients that
    /// come later are served.
    pub fn disconnect_clients(&self) {
        let mut tokens = self.tokens();
        let fresh = tokens.run.child_token();
        std::mem::replace(&mut tokens.clients, fresh).cancel();
    }

    /// Stops a feed or stream that has no owner task (a relay, per-client processes): its
    /// clients end, and it stays [`State::Stopped`] until [`Control::unhalt`].
    pub fn halt(&self) {
        // Under the tokens' lock, so that a concurrent unhalt comes wholly before or after.
        let tokens = self.tokens();
        tokens.run.cancel();
        self.stats.stopped(State::Stopped);
    }

    /// Ends a [`Control::halt`]: new clients are served again.
    pub fn unhalt(&self) {
        let mut tokens = self.tokens();
        if tokens.run.is_cancelled() {
            *tokens = Tokens::under(&self.parent);
        }
        if self.stats.state() == State::Stopped {
            self.stats.set_state(State::Idle);
        }
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn token(&self) -> CancellationToken {
        self.tokens().run.clone()
    }

    fn renew_token(&self) {
        *self.tokens() = Tokens::under(&self.parent);
    }
}

impl Handle {
    /// Sends `command` and waits until the owner acted on it: a stopped one is stopped
    /// (its clients ended), a started one is wanted, a restarted one's old run is over.
    pub async fn send(&self, command: Command) -> Result<(), Gone> {
        let gone = || Gone {
            kind: self.kind,
            name: self.name.clone(),
        };
        let (done, acted) = oneshot::channel();
        let order = Order {
            instruction: Instruction::Do(command),
            done: Some(done),
        };
        self.commands.send(order).await.map_err(|_| gone())?;
        acted.await.map_err(|_| gone())
    }

    /// What it shares with readers: state, counters, token.
    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// Tells the owner to hand its hub and clients over (see the module documentation);
    /// what tells when it is gone, or `None` when it cannot be told now (its queue is full).
    pub fn hand_over(&self) -> Option<watch::Receiver<bool>> {
        let order = Order {
            instruction: Instruction::HandOver,
            done: None,
        };
        self.commands.try_send(order).ok()?;
        Some(self.gone.clone())
    }
}

/// Marks the owner task gone when it ends, however it ends (a panic too).
struct GoneSignal(watch::Sender<bool>);

impl Drop for GoneSignal {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// Starts the owner task of `job` into `hub` among `tasks`, in the feed's or stream's log
/// span; `control` is where it records its state.
pub fn spawn(job: Job, hub: Arc<Hub>, tasks: &Tasks, control: Arc<Control>) -> Handle {
    spawn_after(job, hub, tasks, control, None)
}

/// [`spawn`], but the owner starts only once `predecessor` (the owner that handed `hub` and
/// `control` over) is gone, so that two processes never write into one hub.
pub fn spawn_after(
    job: Job,
    hub: Arc<Hub>,
    tasks: &Tasks,
    control: Arc<Control>,
    predecessor: Option<watch::Receiver<bool>>,
) -> Handle {
    let (sender, commands) = mpsc::channel(COMMANDS_QUEUED_MAX);
    let (gone, gone_receiver) = watch::channel(false);
    let handle = Handle {
        kind: job.kind,
        name: job.name.clone(),
        commands: sender,
        control: Arc::clone(&control),
        gone: gone_receiver,
    };
    let owner = Owner {
        job,
        hub,
        server: tasks.cancel.clone(),
        control,
        commands: Some(commands),
        pin: None,
        predecessor,
        _gone: GoneSignal(gone),
    };
    tasks.tracker.spawn(owner.run());
    handle
}

/// Starts a supervisor that takes no commands (the process of one exclusive client): it ends
/// with its job or with `control`'s token.
pub fn spawn_detached(job: Job, hub: Arc<Hub>, tasks: &Tasks, control: Arc<Control>) {
    let owner = Owner {
        job,
        hub,
        server: control.token(),
        control,
        commands: None,
        pin: None,
        predecessor: None,
        _gone: GoneSignal(watch::channel(false).0),
    };
    tasks.tracker.spawn(owner.run());
}

struct Owner {
    job: Job,
    hub: Arc<Hub>,
    /// The token its own token derives from.
    server: CancellationToken,
    control: Arc<Control>,
    /// None for a supervisor without commands, or once every handle is gone.
    commands: Option<mpsc::Receiver<Order>>,
    /// A subscription of its own that keeps it wanted after `Start`.
    pin: Option<Subscriber>,
    /// The owner it takes over from, to wait for before the first run.
    predecessor: Option<watch::Receiver<bool>>,
    /// Says it is gone when dropped with it.
    _gone: GoneSignal,
}

/// How one supervised stretch ended.
enum Stretch {
    /// The loop returned (the server stops, or a one-client job is done) or panicked.
    Returned { panicked: bool },
    /// A command came (None: every handle is gone).
    Commanded(Option<Order>),
}

impl Owner {
    async fn run(mut self) {
        let span = match self.job.kind {
            Kind::Feed => tracing::info_span!("feed", feed = %self.job.name),
            Kind::Stream => tracing::info_span!("stream", stream = %self.job.name),
        };
        if let Some(mut predecessor) = self.predecessor.take() {
            // An error means the predecessor is gone too.
            let _ = predecessor.wait_for(|gone| *gone).await;
            // Nobody may join a moment of the old definition's output.
            self.hub.reset();
        }
        // A Stop the predecessor took just before it handed over holds for the successor.
        let mut stopped = self.control.token().is_cancelled();
        loop {
            if stopped {
                match self.wait_while_stopped().await {
                    Some(Order {
                        instruction: Instruction::HandOver,
                        ..
                    }) => return,
                    Some(order) => {
                        if let Instruction::Do(command) = order.instruction {
                            stopped = !self.resume(command);
                        }
                        order.done();
                    }
                    None => break,
                }
                continue;
            }
            let run = self.control.token().child_token();
            let loop_task = tokio::spawn(
                supervise(
                    self.job.clone(),
                    Arc::clone(&self.hub),
                    run.clone(),
                    Arc::clone(&self.control.stats),
                )
                .instrument(span.clone()),
            );
            let order = match self.stretch(loop_task, &run).await {
                Stretch::Returned { panicked: true } if !self.server.is_cancelled() => {
                    tracing::error!(parent: &span, "supervisor panicked; starting it again");
                    // A panic that repeats must not become a hot loop.
                    tokio::time::sleep(PANIC_RESTART_DELAY).await;
                    continue;
                }
                Stretch::Returned { .. } => break,
                Stretch::Commanded(None) => {
                    span.in_scope(|| tracing::info!("removed"));
                    self.stop();
                    self.hub.end();
                    break;
                }
                Stretch::Commanded(Some(order)) => order,
            };
            match order.instruction {
                Instruction::Do(Command::Stop) => {
                    span.in_scope(|| tracing::info!("stopped by command"));
                    self.stop();
                    // Not the end of its output for good: what reads it waits for a Start.
                    self.hub.halt();
                    stopped = true;
                }
                Instruction::HandOver => {
                    span.in_scope(|| {
                        tracing::info!("changed: its clients go on with the new definition")
                    });
                    // The output and the clients are the successor's now: leave them be.
                    return;
                }
                Instruction::Do(command) => {
                    span.in_scope(|| tracing::info!(?command, "restarting by command"));
                    self.hub.reset();
                    self.resume(command);
                }
            }
            order.done();
        }
        // Clients of a per-client hub must not wait for a process that is gone.
        self.hub.close();
    }

    /// Runs until the loop returns or a command comes; a command ends the run (it is
    /// awaited, so its process is gone) unless it is a `Start` of a run already going.
    async fn stretch(&mut self, mut loop_task: JoinHandle<()>, run: &CancellationToken) -> Stretch {
        loop {
            let mut order = tokio::select! {
                joined = &mut loop_task => {
                    return Stretch::Returned { panicked: joined.is_err_and(|e| e.is_panic()) };
                }
                order = next_order(&mut self.commands) => order,
            };
            if let Some(order) =
                order.take_if(|order| order.instruction == Instruction::Do(Command::Start))
            {
                self.resume(Command::Start);
                order.done();
                continue;
            }
            run.cancel();
            let _ = loop_task.await;
            return Stretch::Commanded(order);
        }
    }

    /// Ends its clients (the caller ends its output); the next start gets a fresh token.
    fn stop(&mut self) {
        self.pin = None;
        self.control.token().cancel();
        self.control.stats.stopped(State::Stopped);
    }

    /// Waits for `Start` or `Restart`; None when the server stops or every handle is gone.
    async fn wait_while_stopped(&mut self) -> Option<Order> {
        loop {
            let order = tokio::select! {
                _ = self.server.cancelled() => return None,
                order = next_order(&mut self.commands) => order?,
            };
            if order.instruction != Instruction::Do(Command::Stop) {
                return Some(order);
            }
            order.done();
        }
    }

    /// Acts on `Start` or `Restart` (a fresh token after a stop); false for `Stop`.
    fn resume(&mut self, command: Command) -> bool {
        if self.control.token().is_cancelled() {
            self.control.renew_token();
        }
        if command != Command::Stop {
            // What reads it waits for its output again, and new clients are served, before
            // the command is acknowledged: its next run sets the state it is really in.
            self.hub.unhalt();
            if self.control.stats.state() == State::Stopped {
                self.control.stats.set_state(State::Idle);
            }
        }
        match command {
            Command::Start => {
                if self.pin.is_none() && self.job.mode != Mode::Continuous {
                    self.pin = Some(self.hub.subscribe());
                }
                true
            }
            Command::Restart => {
                self.pin = None;
                true
            }
            Command::Stop => false,
        }
    }
}

/// The next order; pending for ever without a channel, None once every handle is gone
/// (after which it is pending too, so the caller acts on the end once).
async fn next_order(commands: &mut Option<mpsc::Receiver<Order>>) -> Option<Order> {
    let Some(receiver) = commands.as_mut() else {
        return std::future::pending().await;
    };
    let order = receiver.recv().await;
    if order.is_none() {
        *commands = None;
    }
    order
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use super::*;
    use crate::fanout::hub::{BATCH_CHUNKS_MAX, Event};
    use crate::lifecycle::Input;
    use crate::process::child::StderrBudget;

    /// The bound of every wait in these tests.
    const WAIT_MAX: Duration = Duration::from_secs(10);

    fn job(mode: Mode, command: &str) -> Job {
        Job {
            kind: Kind::Feed,
            name: "toy".into(),
            input: Input::Command {
                argv: vec!["sh".into(), "-c".into(), command.into()],
                stdin: None,
                pipes: Vec::new(),
            },
            mode,
            resurrect: true,
            once: false,
            stderr_file: None,
            stderr_budget: StderrBudget::default(),
        }
    }

    async fn until_state(control: &Control, wanted: State) {
        let deadline = tokio::time::Instant::now() + WAIT_MAX;
        loop {
            if control.stats.view("toy", 0, 0).state == wanted {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never {wanted:?}: {:?}",
                control.stats.view("toy", 0, 0)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn start(mode: Mode, command: &str) -> (Arc<Hub>, Handle, Tasks) {
        let tasks = Tasks::default();
        let hub = Hub::new("toy");
        let control = Control::new(&tasks.cancel);
        let handle = spawn(job(mode, command), Arc::clone(&hub), &tasks, control);
        (hub, handle, tasks)
    }

    async fn shut_down(tasks: Tasks) {
        tasks.cancel.cancel();
        tasks.tracker.close();
        tokio::time::timeout(WAIT_MAX, tasks.tracker.wait())
            .await
            .expect("every task ends");
    }

    #[tokio::test]
    async fn start_runs_an_on_demand_feed_without_clients_until_stop() {
        let (_hub, handle, tasks) = start(Mode::OnDemand, "echo x; sleep 100");
        until_state(handle.control(), State::Idle).await;
        handle.send(Command::Start).await.expect("owner runs");
        until_state(handle.control(), State::Running).await;
        assert!(handle.control().stats.view("toy", 0, 0).pid.is_some());
        handle.send(Command::Stop).await.expect("owner runs");
        until_state(handle.control(), State::Stopped).await;
        assert_eq!(handle.control().stats.view("toy", 0, 0).pid, None);
        shut_down(tasks).await;
    }

    #[tokio::test]
    async fn stop_ends_the_clients_and_stays_stopped_despite_demand() {
        let (hub, handle, tasks) = start(Mode::OnDemand, "echo x; sleep 100");
        let client = handle.control().client_token();
        let mut subscriber = hub.subscribe();
        until_state(handle.control(), State::Running).await;
        handle.send(Command::Stop).await.expect("owner runs");
        let mut batch = VecDeque::new();
        let ended = async {
            loop {
                if subscriber.next(&mut batch, BATCH_CHUNKS_MAX).await == Event::Ended {
                    return;
                }
            }
        };
        tokio::time::timeout(WAIT_MAX, ended)
            .await
            .expect("the output ends");
        assert!(client.is_cancelled(), "a client's token ends with its feed");
        until_state(handle.control(), State::Stopped).await;
        // A new client does not start it again.
        let _wanting = hub.subscribe();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(handle.control().stats.state(), State::Stopped);
        // Start resumes it, with a fresh token for new clients.
        handle.send(Command::Start).await.expect("owner runs");
        until_state(handle.control(), State::Running).await;
        assert!(!handle.control().client_token().is_cancelled());
        shut_down(tasks).await;
    }

    #[tokio::test]
    async fn restart_replaces_the_process_and_keeps_the_clients() {
        let (hub, handle, tasks) = start(Mode::Continuous, "echo x; sleep 100");
        let client = handle.control().client_token();
        let _subscriber = hub.subscribe();
        until_state(handle.control(), State::Running).await;
        let first = handle.control().stats.view("toy", 0, 0).pid;
        handle.send(Command::Restart).await.expect("owner runs");
        let deadline = tokio::time::Instant::now() + WAIT_MAX;
        loop {
            let view = handle.control().stats.view("toy", 0, 0);
            if view.state == State::Running && view.pid.is_some() && view.pid != first {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no new run: {view:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!client.is_cancelled(), "a restart keeps the clients");
        shut_down(tasks).await;
    }

    #[tokio::test]
    async fn dropping_every_handle_stops_it_for_good() {
        let (hub, handle, tasks) = start(Mode::Continuous, "cat /dev/zero");
        until_state(handle.control(), State::Running).await;
        let control = Arc::clone(handle.control());
        drop(handle);
        until_state(&control, State::Stopped).await;
        let mut subscriber = hub.subscribe();
        let mut batch = VecDeque::new();
        let over = async {
            loop {
                let event = subscriber.next(&mut batch, BATCH_CHUNKS_MAX).await;
                if matches!(event, Event::Closed | Event::Ended) {
                    return;
                }
            }
        };
        tokio::time::timeout(WAIT_MAX, over)
            .await
            .expect("its output is over");
        shut_down(tasks).await;
    }

    #[tokio::test]
    async fn a_dying_command_is_restarting_with_its_exit_and_count() {
        let (_hub, handle, tasks) = start(Mode::Continuous, "echo oops >&2; exit 3");
        let deadline = tokio::time::Instant::now() + WAIT_MAX;
        loop {
            let view = handle.control().stats.view("toy", 0, 0);
            if view.restarts >= 2 {
                let exit = view.last_exit.expect("an exit");
                assert_eq!(exit.to_string(), "exit status: 3: oops");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{view:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        shut_down(tasks).await;
    }
}
