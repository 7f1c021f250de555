//! voyandzctl's side of the bus: one connection, and the calls each command makes through the
//! proxies that `#[interface]` generates in [`crate::control`]. Lists come from one
//! `GetManagedObjects` call, which carries every property of every feed and stream. Errors are
//! sorted into [`CtlError`] here; nothing is printed.

use std::collections::HashMap;
use std::time::Duration;

use zbus::object_server::Interface;
use zbus::proxy::CacheProperties;
use zbus::{Connection, ObjectPath, OwnedVariant, fdo};

use super::cli::Target;
use super::error::CtlError;
use super::model::{Feed, Server, Status, Stream};
use super::value;
use crate::control::objects::{FeedObject, FeedProxy, StreamObject, StreamProxy};
use crate::control::server::{ManagerProxy, ServerObject};
use crate::control::{Bus, ROOT, SERVICE, path};
use crate::lifecycle::Kind;
use crate::lifecycle::owner::Command;

/// How long a call may take before voyandzctl gives up (busctl's default): a screenshot
/// decodes a picture and a reload reads and checks the config, both well within it.
const CALL_TIMEOUT: Duration = Duration::from_secs(25);
/// How long a call may take while a password may be asked for it: time to type one.
const ASKING_CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A picture's format, as `Screenshot()` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picture {
    /// JPEG at a quality in percent (`None`: the server's default).
    Jpeg(Option<u32>),
    /// PNG.
    Png,
}

/// A connection to the bus voyandz is on.
pub struct Client {
    connection: Connection,
    bus: Bus,
}

impl Client {
    /// Connects to `bus`; `asking`: a password may be asked during its calls (see
    /// [`super::agent`]), which then may take longer.
    pub async fn connect(bus: Bus, asking: bool) -> Result<Client, CtlError> {
        let builder = match bus {
            Bus::System => zbus::connection::Builder::system(),
            Bus::Session => zbus::connection::Builder::session(),
        };
        let timeout = if asking {
            ASKING_CALL_TIMEOUT
        } else {
            CALL_TIMEOUT
        };
        let connection = builder.method_timeout(timeout).build().await;
        let connection = connection.map_err(|error| CtlError::from_bus(error, bus))?;
        Ok(Client { connection, bus })
    }

    /// The connection, for [`super::watch`].
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The bus it is on.
    pub fn bus(&self) -> Bus {
        self.bus
    }

    /// `error` of a call, sorted.
    pub fn error(&self, error: impl Into<zbus::Error>) -> CtlError {
        CtlError::from_bus(error.into(), self.bus)
    }

    /// Every object of the server's but the manager: its interfaces and their properties.
    pub async fn objects(&self) -> Result<fdo::ManagedObjects, CtlError> {
        let objects = async {
            let manager: fdo::ObjectManagerProxy = self.proxy(ROOT).await?;
            manager.get_managed_objects().await
        };
        objects.await.map_err(|error| self.error(error))
    }

    /// Every feed and every stream, by name.
    pub async fn inventory(&self) -> Result<(Vec<Feed>, Vec<Stream>), CtlError> {
        let (mut feeds, mut streams) = (Vec::new(), Vec::new());
        for (interface, properties) in self.objects().await?.values().flatten() {
            if *interface == FeedObject::name() {
                feeds.push(read::<Feed>(properties)?);
            } else if *interface == StreamObject::name() {
                streams.push(read::<Stream>(properties)?);
            }
        }
        feeds.sort_by(|a, b| a.name.cmp(&b.name));
        streams.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((feeds, streams))
    }

    /// The server's own properties.
    pub async fn server(&self) -> Result<HashMap<String, OwnedVariant>, CtlError> {
        let properties = async {
            let server: fdo::PropertiesProxy = self.proxy(ROOT).await?;
            server.get_all(ServerObject::name()).await
        };
        properties.await.map_err(|error| self.error(error))
    }

    /// The server, and its feeds and streams by state.
    pub async fn status(&self) -> Result<Status, CtlError> {
        let server: Server = read(&self.server().await?)?;
        let (feeds, streams) = self.inventory().await?;
        Ok(Status::new(server, &feeds, &streams))
    }

    /// Starts, stops or restarts `target`.
    pub async fn command(&self, command: Command, target: &Target) -> Result<(), CtlError> {
        let done = async {
            match target.kind {
                Kind::Feed => {
                    let feed: FeedProxy = self.proxy(path::feed(&target.name)).await?;
                    match command {
                        Command::Start => feed.start().await,
                        Command::Stop => feed.stop().await,
                        Command::Restart => feed.restart().await,
                    }
                }
                Kind::Stream => {
                    let stream: StreamProxy = self.proxy(path::stream(&target.name)).await?;
                    match command {
                        Command::Start => stream.start().await,
                        Command::Stop => stream.stop().await,
                        Command::Restart => stream.restart().await,
                    }
                }
            }
        };
        (done.await).map_err(|error| self.call_error(error, target.kind, &target.name))
    }

    /// Disconnects every client of stream `name`; returns how many there were.
    pub async fn disconnect(&self, name: &str) -> Result<u32, CtlError> {
        let count = async {
            let stream: StreamProxy = self.proxy(path::stream(name)).await?;
            stream.disconnect_clients().await
        };
        (count.await).map_err(|error| self.call_error(error, Kind::Stream, name))
    }

    /// Reloads the config; returns what changed.
    pub async fn reload(&self) -> Result<String, CtlError> {
        let changes = async {
            let manager: ManagerProxy = self.proxy(ROOT).await?;
            manager.reload().await
        };
        changes.await.map_err(|error| self.error(error))
    }

    /// A picture of stream `name`.
    pub async fn screenshot(&self, name: &str, picture: Picture) -> Result<Vec<u8>, CtlError> {
        let (format, quality) = match picture {
            Picture::Jpeg(quality) => ("jpeg", quality.unwrap_or(0)),
            Picture::Png => ("png", 0),
        };
        let bytes = async {
            let stream: StreamProxy = self.proxy(path::stream(name)).await?;
            stream.screenshot(format.to_owned(), quality).await
        };
        (bytes.await).map_err(|error| self.call_error(error, Kind::Stream, name))
    }

    /// A proxy of the server's object at `path`. Properties are not cached: each command
    /// reads what it needs once, and a cache would subscribe to their changes for nothing.
    async fn proxy<T, P>(&self, path: P) -> zbus::Result<T>
    where
        T: From<zbus::Proxy<'static>> + zbus::proxy::Defaults,
        P: TryInto<ObjectPath<'static>, Error: Into<zbus::Error>>,
    {
        zbus::proxy::Builder::new(&self.connection)
            .destination(SERVICE)
            .path(path)
            .cache_properties(CacheProperties::No)
            .build()
            .await
    }

    /// `error` of a call to feed or stream `name`, sorted.
    fn call_error(&self, error: impl Into<zbus::Error>, kind: Kind, name: &str) -> CtlError {
        CtlError::from_call(error.into(), self.bus, kind, name)
    }
}

/// `properties` read into `T`; a property missing or of another type is the server's fault
/// (another version of it).
fn read<T: serde::de::DeserializeOwned>(
    properties: &HashMap<String, OwnedVariant>,
) -> Result<T, CtlError> {
    value::read(properties)
        .map_err(|error| CtlError::Failed(format!("unexpected answer from the server: {error}")))
}
