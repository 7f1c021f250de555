//! Streams: what clients connect to. A stream's command reads its feed on stdin (or nothing,
//! or several feeds on pipes of their own: [`FeedRoute`]) and writes a streamable container
//! to stdout; without a command the feed is relayed as is.
//!
//! A shared stream has one process and one hub for all its clients ("the data created for that
//! stream should only be created once and sent to each connection"); an exclusive one gets a
//! process per client; a shot runs once per request ([`shot`]). A direct relay has no process
//! at all: its clients subscribe to the feed's hub itself, so not even a pipe is in the way.
//!
//! Every stream lists its connected clients ([`Clients`]) and has a [`Control`] (state,
//! counters, the token its clients' tokens derive from); a shared one also has the
//! [`Handle`] of its owner task.

pub mod shot;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::Instrument;

use crate::config::{ClientMode, FeedRoute, Mode, StreamConfig, StreamKind};
use crate::container::{Container, select};
use crate::fanout::hub::{Hub, Subscriber};
use crate::fanout::join::Join;
use crate::lifecycle::owner::{self, Command, Control, Gone, Handle};
use crate::lifecycle::{Input, Job, Kind, Tasks};
use crate::process::child::StderrBudget;
use crate::stats::{Clients, State};

/// A configured stream and its runtime handles.
pub struct Stream {
    /// Its configuration.
    pub config: StreamConfig,
    /// The hub shared by all clients (shared streams and direct relays).
    shared: Option<Arc<Hub>>,
    /// The hub of the feed piped into the stdin of each process it runs.
    stdin: Option<Arc<Hub>>,
    /// The hubs of the feeds piped into other descriptors of each process, by descriptor.
    pipes: Vec<Pipe>,
    stderr_file: Option<PathBuf>,
    /// Log budget shared by the per-request processes of exclusive streams and shots.
    budget: StderrBudget,
    /// Its state, counters and token (a relay's are its own, its feed's run aside).
    control: Arc<Control>,
    /// The owner task of a shared stream's process.
    handle: Option<Handle>,
    /// Its connected clients.
    clients: Arc<Clients>,
}

impl Stream {
    /// Sets a stream up; a shared stream's supervisor is started among `tasks`. `feeds` are
    /// the hubs of its feeds, in its config's order.
    pub fn start(
        config: &StreamConfig,
        feeds: &[Arc<Hub>],
        logdir: Option<&Path>,
        tasks: &Tasks,
    ) -> Self {
        let (stdin, pipes) = inputs(config, feeds);
        let mut stream = Self {
            config: config.clone(),
            shared: None,
            stdin,
            pipes,
            stderr_file: logdir.map(|dir| dir.join(format!("stream-{}.log", config.name))),
            budget: StderrBudget::default(),
            control: Control::new(&tasks.cancel),
            handle: None,
            clients: Arc::default(),
        };
        stream.shared = match (&config.command, config.kind, config.client) {
            (None, _, _) => stream.stdin.clone(),
            (Some(_), StreamKind::Stream, ClientMode::Shared) => {
                let hub = hub_for(&config.name, &config.mimetype);
                let job = stream.job(config.mode, false);
                let control = Arc::clone(&stream.control);
                stream.handle = Some(owner::spawn(job, Arc::clone(&hub), tasks, control));
                Some(hub)
            }
            _ => None,
        };
        stream
    }

    /// The stream `config` replacing `old` (a reload changed its definition) with `old`'s
    /// clients kept: its process is replaced and they go on with the new one's output, as
    /// they do across a resurrection. Only where the container lets a client resynchronise
    /// mid-stream (MPEG-TS, MPJPEG) with the same mimetype, and for a shared stream before
    /// and after that an admin has not stopped; otherwise `None` (the caller starts it afresh
    /// and `old`'s clients end).
    pub fn take_over(
        config: &StreamConfig,
        old: &Stream,
        feeds: &[Arc<Hub>],
        logdir: Option<&Path>,
        tasks: &Tasks,
    ) -> Option<Self> {
        let shared = |config: &StreamConfig| {
            config.command.is_some()
                && config.kind == StreamKind::Stream
                && config.client == ClientMode::Shared
        };
        let resyncs = matches!(
            select::from_mimetype(&config.mimetype),
            Some(Container::MpegTs | Container::Mpjpeg)
        );
        // A stopped stream that a reload changes starts afresh, as a Start would.
        let stopped = old.control.stats.state() == State::Stopped;
        if !(shared(config) && shared(&old.config) && resyncs)
            || config.mimetype != old.config.mimetype
            || stopped
        {
            return None;
        }
        let (hub, old_owner) = (old.shared.clone()?, old.handle.as_ref()?);
        let predecessor = old_owner.hand_over()?;
        let (stdin, pipes) = inputs(config, feeds);
        let mut stream = Self {
            config: config.clone(),
            shared: Some(Arc::clone(&hub)),
            stdin,
            pipes,
            stderr_file: logdir.map(|dir| dir.join(format!("stream-{}.log", config.name))),
            budget: old.budget.clone(),
            control: Arc::clone(&old.control),
            handle: None,
            clients: Arc::clone(&old.clients),
        };
        let job = stream.job(config.mode, false);
        let control = Arc::clone(&stream.control);
        stream.handle = Some(owner::spawn_after(
            job,
            hub,
            tasks,
            control,
            Some(predecessor),
        ));
        Some(stream)
    }

    /// Its state, counters and the token of its clients.
    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// The owner task of its process, for a shared stream with a command.
    pub fn handle(&self) -> Option<&Handle> {
        self.handle.as_ref()
    }

    /// Its connected clients.
    pub fn clients(&self) -> &Arc<Clients> {
        &self.clients
    }

    /// The hub its clients share (a relay: its feed's), none for per-client processes.
    pub fn shared_hub(&self) -> Option<&Arc<Hub>> {
        self.shared.as_ref()
    }

    /// The names of the feeds it reads.
    pub fn feed_names(&self) -> &[String] {
        &self.config.feeds
    }

    /// A new client's subscription, starting where `join` says: to the shared hub, or to a
    /// process of its own.
    pub fn subscribe(&self, join: Join, tasks: &Tasks) -> Subscriber {
        if let Some(hub) = &self.shared {
            return hub.subscribe_with(join);
        }
        let hub = hub_for(&self.config.name, &self.config.mimetype);
        let subscriber = hub.subscribe_with(join);
        let job = self.job(Mode::OnDemand, true);
        owner::spawn_detached(job, hub, tasks, Arc::clone(&self.control));
        subscriber
    }

    /// The supervisor job of one process of this stream.
    fn job(&self, mode: Mode, once: bool) -> Job {
        Job {
            kind: Kind::Stream,
            name: self.config.name.clone(),
            input: Input::Command {
                argv: self.config.run_argv(),
                stdin: self.stdin.clone(),
                pipes: self.pipes.clone(),
            },
            mode,
            resurrect: !once,
            once,
            stderr_file: self.stderr_file.clone(),
            stderr_budget: self.budget.clone(),
        }
    }

    /// Carries out `command` (from an admin: D-Bus, `voyandzctl`) and returns once it is
    /// done. A stream without a process of its own (a relay, per-client processes, shots)
    /// can be stopped and started (no client is served while it is stopped) but has
    /// nothing to restart.
    pub async fn command(&self, command: Command) -> Result<(), CommandError> {
        match (&self.handle, command) {
            (Some(handle), command) => handle.send(command).await?,
            (None, Command::Stop) => self.control.halt(),
            (None, Command::Start) => self.control.unhalt(),
            (None, Command::Restart) => {
                let name = self.config.name.clone();
                return Err(match (&self.config.command, self.config.kind) {
                    (None, _) => CommandError::Relay {
                        name,
                        feed: self.config.feeds.first().cloned().unwrap_or_default(),
                    },
                    (Some(_), StreamKind::Shot) => CommandError::PerRequest { name },
                    (Some(_), StreamKind::Stream) => CommandError::PerClient { name },
                });
            }
        }
        Ok(())
    }

    /// Ends the output of its shared hub for every client: the server is stopping.
    pub fn close(&self) {
        if let Some(hub) = &self.shared {
            hub.close();
        }
    }

    /// Runs the shot command once and returns its whole output.
    pub async fn shot(&self) -> Result<bytes::Bytes, shot::ShotError> {
        let argv = self.config.command.as_ref().map(|c| c.argv.as_slice());
        shot::run(
            argv.unwrap_or_default(),
            self.stdin.clone(),
            self.stderr_file.clone(),
            self.budget.clone(),
        )
        .instrument(tracing::info_span!("shot", stream = %self.config.name))
        .await
    }
}

/// Why a stream cannot carry out a command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Its owner task is gone (a reload removed it, or the server stops).
    #[error(transparent)]
    Gone(#[from] Gone),
    /// A relay's process is its feed's.
    #[error(
        "stream \"{name}\" has no process of its own: it relays feed \"{feed}\" (restart that)"
    )]
    Relay {
        /// The stream.
        name: String,
        /// The feed it relays.
        feed: String,
    },
    /// Each client has a process of its own.
    #[error("stream \"{name}\" runs a process per client: disconnect its clients to restart them")]
    PerClient {
        /// The stream.
        name: String,
    },
    /// A shot runs once per request.
    #[error("stream \"{name}\" runs once per request: there is nothing to restart")]
    PerRequest {
        /// The stream.
        name: String,
    },
}

/// A feed's hub and the descriptor of the command it is piped into.
type Pipe = (i32, Arc<Hub>);

/// Where the command of `config` reads each of `feeds` (its hubs, in its config's order):
/// the hub for its stdin, and the hubs for other descriptors.
fn inputs(config: &StreamConfig, feeds: &[Arc<Hub>]) -> (Option<Arc<Hub>>, Vec<Pipe>) {
    let (mut stdin, mut pipes) = (None, Vec::new());
    for (name, route) in config.feed_routes() {
        let position = config.feeds.iter().position(|feed| feed == name);
        let Some(hub) = position.and_then(|at| feeds.get(at)) else {
            continue;
        };
        match route {
            FeedRoute::Stdin => stdin = Some(Arc::clone(hub)),
            FeedRoute::Descriptor(fd) => pipes.push((fd, Arc::clone(hub))),
        }
    }
    (stdin, pipes)
}

/// A hub for the output of `name`: container-aware when `mimetype` (or the first bytes) name
/// a container voyandz understands.
pub fn hub_for(name: &str, mimetype: &str) -> Arc<Hub> {
    match select::parser_factory(mimetype) {
        Some(factory) => Hub::framed(name, factory),
        None => Hub::new(name),
    }
}
