//! One object per feed and per stream. They hold a name and the way to the server, nothing
//! else: every property is read from the current snapshot when asked, and every method is a
//! command to the feed's or stream's owner task.

use std::sync::Arc;

use zbus::message::Header;
use zbus::{Connection, fdo, interface};
use zbus::{OwnedVariant, Variant};

use super::Service;
use crate::config::Mode;
use crate::lifecycle::owner::{Command, Gone};
use crate::registry::Snapshot;
use crate::screenshot::{self, ScreenshotError};
use crate::stats::{RunView, StreamView};
use crate::stream::{CommandError, Stream};

/// A property of an object, for finding what changed since it was last announced.
#[derive(Debug, PartialEq)]
pub struct Property {
    /// Its D-Bus name.
    pub name: &'static str,
    /// Its value.
    pub value: OwnedVariant,
    /// It changes all the time (a byte counter, a keyframe measure): announced at most once
    /// a second.
    pub restless: bool,
}

fn property(name: &'static str, value: impl Into<Variant<'static>>) -> Property {
    let value = OwnedVariant::try_from(value.into()).expect("plain values have no descriptors");
    Property {
        name,
        value,
        restless: false,
    }
}

fn restless(name: &'static str, value: u64) -> Property {
    Property {
        restless: true,
        ..property(name, value)
    }
}

/// A feed's properties that change (all but `Name` and `Uptime`), as they are now.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedProperties {
    mode: String,
    state: String,
    pid: u32,
    restarts: u64,
    last_exit: String,
    bytes_in: u64,
    subscribers: u32,
    uptime_ms: u64,
}

impl FeedProperties {
    /// Feed `name`'s properties in `snapshot`; `None` when it has no such feed.
    pub fn read(snapshot: &Snapshot, name: &str) -> Option<Self> {
        let mode = snapshot.config.feeds.get(name)?.mode;
        Some(Self::new(&snapshot.feed_view(name)?, mode))
    }

    fn new(view: &RunView, mode: Mode) -> Self {
        Self {
            mode: mode_name(mode),
            state: view.state.name().into(),
            pid: view.pid.unwrap_or(0),
            restarts: view.restarts,
            last_exit: view
                .last_exit
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            bytes_in: view.bytes_in,
            subscribers: u32::try_from(view.subscribers).unwrap_or(u32::MAX),
            uptime_ms: view.uptime_ms.unwrap_or(0),
        }
    }

    /// Every property that announces its changes.
    pub fn announced(&self) -> Vec<Property> {
        vec![
            property("Mode", self.mode.clone()),
            property("State", self.state.clone()),
            property("Pid", self.pid),
            property("Restarts", self.restarts),
            property("LastExit", self.last_exit.clone()),
            restless("BytesIn", self.bytes_in),
            property("Subscribers", self.subscribers),
        ]
    }
}

/// A stream's properties that change (all but `Name`), as they are now.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamProperties {
    urls: Vec<String>,
    state: String,
    clients: u32,
    bytes_out: u64,
    container: String,
    audio_only: bool,
    keyframe_interval_ms: u64,
}

impl StreamProperties {
    /// Stream `name`'s properties in `snapshot`; `None` when it has no such stream.
    pub fn read(snapshot: &Snapshot, name: &str) -> Option<Self> {
        Some(Self::new(&snapshot.stream_view(name)?))
    }

    fn new(view: &StreamView) -> Self {
        let framing = view.framing.as_ref();
        Self {
            urls: view.paths.clone(),
            state: view.run.state.name().into(),
            clients: u32::try_from(view.clients).unwrap_or(u32::MAX),
            bytes_out: view.run.bytes_out,
            container: framing.map(|f| f.container.to_string()).unwrap_or_default(),
            audio_only: framing.is_some_and(|f| f.audio_only)
                || view
                    .mimetype
                    .trim()
                    .to_ascii_lowercase()
                    .starts_with("audio/"),
            keyframe_interval_ms: framing.and_then(|f| f.keyframe_interval_ms).unwrap_or(0),
        }
    }

    /// Every property that announces its changes.
    pub fn announced(&self) -> Vec<Property> {
        vec![
            property("Urls", self.urls.clone()),
            property("State", self.state.clone()),
            property("Clients", self.clients),
            restless("BytesOut", self.bytes_out),
            property("Container", self.container.clone()),
            property("AudioOnly", self.audio_only),
            restless("KeyframeInterval", self.keyframe_interval_ms),
        ]
    }
}

/// `on-demand`, `continuous` or `timeout 10s`, as the config says it.
fn mode_name(mode: Mode) -> String {
    match mode {
        Mode::OnDemand => "on-demand".into(),
        Mode::Continuous => "continuous".into(),
        Mode::Timeout(linger) => format!("timeout {}s", linger.as_secs_f64()),
    }
}

/// The object of one feed.
pub struct FeedObject {
    /// The feed's name.
    pub name: String,
    /// The server it belongs to.
    pub service: Arc<Service>,
}

impl FeedObject {
    /// Its properties now; an error once a reload removed it (its object goes soon after).
    fn read(&self) -> fdo::Result<FeedProperties> {
        let snapshot = self.service.routes.registry.load();
        FeedProperties::read(&snapshot, &self.name).ok_or_else(|| gone("feed", &self.name))
    }

    async fn command(
        &self,
        command: Command,
        connection: &Connection,
        header: &Header<'_>,
    ) -> fdo::Result<()> {
        let what = format!("{} feed \"{}\"", verb(command), self.name);
        self.service.allow(connection, header, &what).await?;
        // Once more when a reload replaced the feed while the call was on its way.
        match self.send(command).await? {
            Ok(()) => Ok(()),
            Err(_) => {
                (self.send(command).await?).map_err(|gone| fdo::Error::Failed(gone.to_string()))
            }
        }
    }

    /// Sends `command` to the owner of the feed in the current snapshot.
    async fn send(&self, command: Command) -> fdo::Result<Result<(), Gone>> {
        let snapshot = self.service.routes.registry.load();
        let feed = (snapshot.feed(&self.name)).ok_or_else(|| gone("feed", &self.name))?;
        Ok(feed.handle.send(command).await)
    }
}

#[interface(
    name = "org.voyandz.Voyandz1.Feed",
    proxy(default_service = "org.voyandz.Voyandz1", async_name = "FeedProxy")
)]
impl FeedObject {
    /// Runs it now and keeps it running, even with no client, until Stop(), Restart() or a
    /// reload that changes it.
    #[zbus(proxy(allow_interactive_auth))]
    async fn start(
        &self,
        #[zbus(connection)] connection: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> fdo::Result<()> {
        self.command(Command::Start, connection, &header).await
    }

    /// Stops it and keeps it stopped: its streams' clients end, new ones get 503.
    #[zbus(proxy(allow_interactive_auth))]
    async fn stop(
        &self,
        #[zbus(connection)] connection: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> fdo::Result<()> {
        self.command(Command::Stop, connection, &header).await
    }

    /// Ends its process and starts a new one in its configured mode; clients stay.
    #[zbus(proxy(allow_interactive_auth))]
    async fn restart(
        &self,
        #[zbus(connection)] connection: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> fdo::Result<()> {
        self.command(Command::Restart, connection, &header).await
    }

    /// Its name in the config.
    #[zbus(property(emits_changed_signal = "const"))]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// `on-demand`, `continuous` or `timeout Ns`.
    #[zbus(property)]
    fn mode(&self) -> fdo::Result<String> {
        Ok(self.read()?.mode)
    }

    /// idle, starting, running, lingering, restarting, failed, stopped or ended.
    #[zbus(property)]
    fn state(&self) -> fdo::Result<String> {
        Ok(self.read()?.state)
    }

    /// Its process id while a process runs, 0 otherwise.
    #[zbus(property)]
    fn pid(&self) -> fdo::Result<u32> {
        Ok(self.read()?.pid)
    }

    /// Milliseconds its current run has been going, 0 when none runs.
    #[zbus(property(emits_changed_signal = "false"))]
    fn uptime(&self) -> fdo::Result<u64> {
        Ok(self.read()?.uptime_ms)
    }

    /// How many times it was resurrected.
    #[zbus(property)]
    fn restarts(&self) -> fdo::Result<u64> {
        Ok(self.read()?.restarts)
    }

    /// How its last run ended by itself, as the log says it; empty when none did.
    #[zbus(property)]
    fn last_exit(&self) -> fdo::Result<String> {
        Ok(self.read()?.last_exit)
    }

    /// Bytes read from its process or file (announced at most once a second).
    #[zbus(property)]
    fn bytes_in(&self) -> fdo::Result<u64> {
        Ok(self.read()?.bytes_in)
    }

    /// HTTP clients and stream commands reading it.
    #[zbus(property)]
    fn subscribers(&self) -> fdo::Result<u32> {
        Ok(self.read()?.subscribers)
    }
}

/// The object of one stream.
pub struct StreamObject {
    /// The stream's name.
    pub name: String,
    /// The server it belongs to.
    pub service: Arc<Service>,
}

impl StreamObject {
    /// Its properties now; an error once a reload removed it (its object goes soon after).
    fn read(&self) -> fdo::Result<StreamProperties> {
        let snapshot = self.service.routes.registry.load();
        StreamProperties::read(&snapshot, &self.name).ok_or_else(|| gone("stream", &self.name))
    }

    /// Runs `act` on the stream after the caller was allowed to `verb` it.
    async fn act<T>(
        &self,
        verb: &str,
        connection: &Connection,
        header: &Header<'_>,
        act: impl AsyncFnOnce(&Stream) -> fdo::Result<T>,
    ) -> fdo::Result<T> {
        let what = format!("{verb} stream \"{}\"", self.name);
        self.service.allow(connection, header, &what).await?;
        let snapshot = self.service.routes.registry.load();
        let stream = (snapshot.stream(&self.name)).ok_or_else(|| gone("stream", &self.name))?;
        act(stream).await
    }

    async fn command(
        &self,
        command: Command,
        connection: &Connection,
        header: &Header<'_>,
    ) -> fdo::Result<()> {
        let send = async |stream: &Stream| match stream.command(command).await {
            Ok(()) => Ok(Ok(())),
            Err(CommandError::Gone(gone)) => Ok(Err(gone)),
            Err(unsupported) => Err(fdo::Error::NotSupported(unsupported.to_string())),
        };
        // Once more when a reload replaced the stream while the call was on its way.
        match self.act(verb(command), connection, header, send).await? {
            Ok(()) => Ok(()),
            Err(_) => {
                let snapshot = self.service.routes.registry.load();
                let stream =
                    (snapshot.stream(&self.name)).ok_or_else(|| gone("stream", &self.name))?;
                send(stream)
                    .await?
                    .map_err(|gone| fdo::Error::Failed(gone.to_string()))
            }
        }
    }
}

#[interface(
    name = "org.voyandz.Voyandz1.Stream",
    proxy(default_service = "org.voyandz.Voyandz1", async_name = "StreamProxy")
)]
impl StreamObject {
    /// Ends a Stop(): clients are served again (a shared stream's process runs at once).
    #[zbus(proxy(allow_interactive_auth))]
    async fn start(
        &self,
        #[zbus(connection)] connection: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> fdo::Result<()> {
        self.command(Command::Start, connection, &header).await
    }

    /// Ends its clients and keeps it stopped: new clients get 503 until Start().
    #[zbus(proxy(allow_interactive_auth))]
    async fn stop(
        &self,
        #[zbus(connection)] connection: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> fdo::Result<()> {
        self.command(Command::Stop, connection, &header).await
    }

    /// Replaces its process (a shared stream with a command); clients stay where the container
    /// lets them resynchronise.
    #[zbus(proxy(allow_interactive_auth))]
    async fn restart(
        &self,
        #[zbus(connection)] connection: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> fdo::Result<()> {
        self.command(Command::Restart, connection, &header).await
    }

    /// Ends the connection of every client it has now; it goes on, and new clients are served.
    #[zbus(proxy(allow_interactive_auth))]
    async fn disconnect_clients(
        &self,
        #[zbus(connection)] connection: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> fdo::Result<u32> {
        self.act(
            "disconnect the clients of",
            connection,
            &header,
            async |stream| {
                let count = stream.clients().count();
                stream.control().disconnect_clients();
                Ok(u32::try_from(count).unwrap_or(u32::MAX))
            },
        )
        .await
    }

    /// The picture `/pic` gives: `format` is `jpeg` or `png`, `quality` a JPEG quality in
    /// percent (0: the default).
    async fn screenshot(&self, format: String, quality: u32) -> fdo::Result<Vec<u8>> {
        let mut query = format!("format={format}");
        if quality != 0 {
            query.push_str(&format!("&quality={quality}"));
        }
        let format = screenshot::format_from_query(None, Some(&query))
            .map_err(|error| fdo::Error::InvalidArgs(error.to_string()))?;
        let routes = &self.service.routes;
        let snapshot = routes.registry.load();
        let stream = snapshot
            .stream(&self.name)
            .ok_or_else(|| gone("stream", &self.name))?;
        if snapshot.stopped(stream) {
            return Err(fdo::Error::Failed(format!(
                "stream \"{}\" is stopped",
                self.name
            )));
        }
        let picture = routes
            .screenshots
            .take(stream, format, routes.registry.tasks())
            .await;
        picture
            .map(|bytes| bytes.to_vec())
            .map_err(|error| match error {
                ScreenshotError::AudioOnly(_) | ScreenshotError::Opaque(_) => {
                    fdo::Error::NotSupported(error.to_string())
                }
                failed => fdo::Error::Failed(failed.to_string()),
            })
    }

    /// Its name in the config.
    #[zbus(property(emits_changed_signal = "const"))]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Its URL paths on the server (`/stream/NAME` and its `url:`).
    #[zbus(property)]
    fn urls(&self) -> fdo::Result<Vec<String>> {
        Ok(self.read()?.urls)
    }

    /// As a feed's, for its own process; a relay shows its feed's.
    #[zbus(property)]
    fn state(&self) -> fdo::Result<String> {
        Ok(self.read()?.state)
    }

    /// Connected HTTP clients.
    #[zbus(property)]
    fn clients(&self) -> fdo::Result<u32> {
        Ok(self.read()?.clients)
    }

    /// Bytes sent to its HTTP clients (announced at most once a second).
    #[zbus(property)]
    fn bytes_out(&self) -> fdo::Result<u64> {
        Ok(self.read()?.bytes_out)
    }

    /// The container voyandz found in it (`MPEG-TS`, `Matroska`, …); empty when unknown.
    #[zbus(property)]
    fn container(&self) -> fdo::Result<String> {
        Ok(self.read()?.container)
    }

    /// Whether it carries no picture (Screenshot() then fails with NotSupported).
    #[zbus(property)]
    fn audio_only(&self) -> fdo::Result<bool> {
        Ok(self.read()?.audio_only)
    }

    /// Milliseconds between its last two keyframes; 0 when unknown.
    #[zbus(property)]
    fn keyframe_interval(&self) -> fdo::Result<u64> {
        Ok(self.read()?.keyframe_interval_ms)
    }
}

fn verb(command: Command) -> &'static str {
    match command {
        Command::Start => "start",
        Command::Stop => "stop",
        Command::Restart => "restart",
    }
}

fn gone(kind: &str, name: &str) -> fdo::Error {
    fdo::Error::UnknownObject(format!("{kind} \"{name}\" is no longer configured"))
}
