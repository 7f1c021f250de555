//! Streams: what clients connect to. A stream's command reads its feed on stdin (or nothing)
//! and writes a streamable container to stdout; without a command the feed is relayed as is.
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

use crate::config::{ClientMode, Mode, StreamConfig, StreamKind};
use crate::container::select;
use crate::fanout::hub::{Hub, Subscriber};
use crate::fanout::join::Join;
use crate::lifecycle::owner::{self, Control, Handle};
use crate::lifecycle::{Input, Job, Kind, Tasks};
use crate::process::child::StderrBudget;
use crate::stats::Clients;

/// A configured stream and its runtime handles.
pub struct Stream {
    /// Its configuration.
    pub config: StreamConfig,
    /// The hub shared by all clients (shared streams and direct relays).
    shared: Option<Arc<Hub>>,
    /// The hub of its feed, piped into each process it runs.
    feed: Option<Arc<Hub>>,
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
    /// Sets a stream up; a shared stream's supervisor is started among `tasks`.
    pub fn start(
        config: &StreamConfig,
        feed: Option<Arc<Hub>>,
        logdir: Option<&Path>,
        tasks: &Tasks,
    ) -> Self {
        let mut stream = Self {
            config: config.clone(),
            shared: None,
            feed,
            stderr_file: logdir.map(|dir| dir.join(format!("stream-{}.log", config.name))),
            budget: StderrBudget::default(),
            control: Control::new(&tasks.cancel),
            handle: None,
            clients: Arc::default(),
        };
        stream.shared = match (&config.command, config.kind, config.client) {
            (None, _, _) => stream.feed.clone(),
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

    /// The name of the feed it reads.
    pub fn feed_name(&self) -> Option<&str> {
        self.config.feed.as_deref()
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
                argv: self
                    .config
                    .command
                    .as_ref()
                    .map(|command| command.argv.clone())
                    .unwrap_or_default(),
                stdin: self.feed.clone(),
            },
            mode,
            resurrect: !once,
            once,
            stderr_file: self.stderr_file.clone(),
            stderr_budget: self.budget.clone(),
        }
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
            self.feed.clone(),
            self.stderr_file.clone(),
            self.budget.clone(),
        )
        .instrument(tracing::info_span!("shot", stream = %self.config.name))
        .await
    }
}

/// A hub for the output of `name`: container-aware when `mimetype` (or the first bytes) name
/// a container voyandz understands.
pub fn hub_for(name: &str, mimetype: &str) -> Arc<Hub> {
    match select::parser_factory(mimetype) {
        Some(factory) => Hub::framed(name, factory),
        None => Hub::new(name),
    }
}
