//! D-Bus control: the server as `org.voyandz.Voyandz1` on the system bus (or a session bus),
//! with a manager object at [`ROOT`] and an object per feed and per stream under it, found
//! through `org.freedesktop.DBus.ObjectManager`. `busctl` and `voyandzctl` use it.
//!
//! Nothing here holds state of the server's: properties are read from the registry's current
//! snapshot when asked ([`objects`], [`server`]), methods send commands to the owner tasks,
//! a reload goes through the main loop like SIGHUP. [`publish`] keeps the objects and their
//! PropertiesChanged signals in step; [`polkit`] decides who may change things; [`path`]
//! names objects. A bus that cannot be reached, or a name that cannot be owned, is logged
//! once and the server serves HTTP without it.

pub mod objects;
pub mod path;
pub mod polkit;
mod publish;
pub mod server;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use zbus::Connection;
use zbus::fdo::{RequestNameFlags, RequestNameReply};

use crate::http::routes::Routes;
use crate::lifecycle::Tasks;
use crate::reload::LastReload;
use polkit::Gate;

/// The server's well-known name.
pub const SERVICE: &str = "org.voyandz.Voyandz1";
/// The manager object's path; feeds are under `ROOT/feed`, streams under `ROOT/stream`.
pub const ROOT: &str = "/org/voyandz/Voyandz1";

/// Which bus to serve on (`--bus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BusChoice {
    /// The system bus when systemd started the server, none otherwise.
    Auto,
    /// The system bus ($DBUS_SYSTEM_BUS_ADDRESS, or /run/dbus/system_bus_socket).
    System,
    /// The user's session bus ($DBUS_SESSION_BUS_ADDRESS).
    Session,
    /// No D-Bus.
    None,
}

/// A bus to serve on (or, for `voyandzctl --bus`, to find the server on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bus {
    /// The system bus: changes are authorised by polkit.
    System,
    /// A session bus: only its user may change things.
    Session,
}

impl BusChoice {
    /// The bus this choice means here; `auto` looks for systemd's `INVOCATION_ID`.
    pub fn resolve(self) -> Option<Bus> {
        match self {
            BusChoice::Auto => std::env::var_os("INVOCATION_ID").map(|_| Bus::System),
            BusChoice::System => Some(Bus::System),
            BusChoice::Session => Some(Bus::Session),
            BusChoice::None => None,
        }
    }
}

impl std::fmt::Display for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Bus::System => "system",
            Bus::Session => "session",
        })
    }
}

/// Where a D-Bus `Reload()` waits for the main loop's answer (`None`: the file is gone).
pub type ReloadReply = oneshot::Sender<Option<LastReload>>;

/// What the objects act through.
pub struct Service {
    /// The server's routes: its registry, screenshots and facts.
    pub routes: Arc<Routes>,
    /// The main loop, which reloads.
    pub reloads: mpsc::Sender<ReloadReply>,
    /// Who may change things.
    pub gate: Gate,
    announced: tokio::sync::Mutex<publish::Announced>,
}

impl Service {
    /// Lets the caller of the method whose header is `header` do `what` (see [`Gate`]), and
    /// logs that it does.
    async fn allow(
        &self,
        connection: &Connection,
        header: &zbus::message::Header<'_>,
        what: &str,
    ) -> zbus::fdo::Result<()> {
        self.gate.authorize(connection, header, what).await?;
        tracing::info!(caller = %caller(header), "{what} (D-Bus)");
        Ok(())
    }
}

/// The caller of a method, for the log.
fn caller(header: &zbus::message::Header<'_>) -> String {
    header
        .sender()
        .map_or_else(|| "?".into(), ToString::to_string)
}

/// Why the server is not on the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus cannot be reached, or refused the objects.
    #[error("cannot connect to the {bus} bus: {source}")]
    Connect {
        /// Which bus.
        bus: Bus,
        /// What went wrong.
        source: zbus::Error,
    },
    /// The name cannot be had: the bus policy forbids it, or another server has it.
    #[error("cannot own {SERVICE} on the {bus} bus: {reason}")]
    Name {
        /// Which bus.
        bus: Bus,
        /// What the bus said.
        reason: String,
    },
}

/// Serves the server on `bus` until `tasks` are cancelled; `reloads` reach the main loop.
/// Returns the connection (dropping it leaves the bus), or why there is none.
pub async fn serve(
    bus: Bus,
    routes: Arc<Routes>,
    reloads: mpsc::Sender<ReloadReply>,
    tasks: &Tasks,
) -> Result<Connection, BusError> {
    let gate = match bus {
        Bus::System => Gate::Polkit,
        Bus::Session => Gate::OwnUser,
    };
    let service = Arc::new(Service {
        routes,
        reloads,
        gate,
        announced: Default::default(),
    });
    let connect = |source| BusError::Connect { bus, source };
    let builder = match bus {
        Bus::System => zbus::connection::Builder::system(),
        Bus::Session => zbus::connection::Builder::session(),
    };
    let server_object = server::ServerObject {
        service: Arc::clone(&service),
    };
    let connection = (builder.serve_at(ROOT, zbus::fdo::ObjectManager))
        .serve_at(ROOT, server_object)
        .build()
        .await
        .map_err(connect)?;
    // Every object is there before the name is: a caller never finds the name without them.
    publish::objects(&connection, &service).await;
    let name = |reason: String| BusError::Name { bus, reason };
    match connection
        .request_name_with_flags(SERVICE, RequestNameFlags::DO_NOT_QUEUE)
        .await
    {
        Ok(RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner) => {}
        Ok(_) => return Err(name("another process owns it".into())),
        Err(error) => return Err(name(error.to_string())),
    }
    tasks.tracker.spawn(publish::run(
        connection.clone(),
        service,
        tasks.cancel.clone(),
    ));
    Ok(connection)
}
