//! The server's own object (D-Bus interface `Manager`): the server itself, its config and its reloads, and the lists of its
//! feeds and streams (whose objects [`super::publish`] keeps in step with the config).

use std::sync::Arc;

use zbus::OwnedObjectPath;
use zbus::message::Header;
use zbus::{Connection, fdo, interface};

use super::{Service, path};

/// The object at [`super::ROOT`].
pub struct ServerObject {
    /// The server it stands for.
    pub service: Arc<Service>,
}

/// `(name, object path, state)` of every feed or stream.
type Listing = Vec<(String, OwnedObjectPath, String)>;

#[interface(
    name = "org.voyandz.Voyandz1.Manager",
    proxy(
        default_service = "org.voyandz.Voyandz1",
        default_path = "/org/voyandz/Voyandz1",
        async_name = "ManagerProxy"
    )
)]
impl ServerObject {
    /// Reads the config file again and applies it, as SIGHUP does; returns what changed. A
    /// config with an error is refused with `Failed` and its file:line:column message, and
    /// the running one stays in force.
    #[zbus(proxy(allow_interactive_auth))]
    async fn reload(
        &self,
        #[zbus(connection)] connection: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> fdo::Result<String> {
        (self.service)
            .allow(connection, &header, "reload the config")
            .await?;
        let stopping = || fdo::Error::Failed("the server is stopping".into());
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.service
            .reloads
            .send(reply)
            .await
            .map_err(|_| stopping())?;
        let outcome = outcome.await.map_err(|_| stopping())?;
        super::publish::objects(connection, &self.service).await;
        match outcome {
            Some(reload) if reload.ok => Ok(reload.message),
            Some(reload) => Err(fdo::Error::Failed(reload.message)),
            None => Err(fdo::Error::Failed(format!(
                "the config file {} is gone: the running config stays in force",
                self.config_path()
            ))),
        }
    }

    /// Every feed: its name, object path and state.
    fn list_feeds(&self) -> Listing {
        let snapshot = self.service.routes.registry.load();
        (snapshot.feed_names())
            .filter_map(|name| {
                let view = snapshot.feed_view(name)?;
                Some((
                    name.to_owned(),
                    path::feed(name),
                    view.state.name().to_owned(),
                ))
            })
            .collect()
    }

    /// Every stream: its name, object path and state.
    fn list_streams(&self) -> Listing {
        let snapshot = self.service.routes.registry.load();
        (snapshot.stream_names())
            .filter_map(|name| {
                let view = snapshot.stream_view(name)?;
                Some((
                    name.to_owned(),
                    path::stream(name),
                    view.run.state.name().to_owned(),
                ))
            })
            .collect()
    }

    /// The server's version.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_owned()
    }

    /// Milliseconds since the server started.
    #[zbus(property(emits_changed_signal = "false"))]
    fn uptime(&self) -> u64 {
        let elapsed = self.service.routes.facts.started.elapsed();
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    /// The config file it serves.
    #[zbus(property(emits_changed_signal = "const"))]
    fn config_path(&self) -> String {
        self.service
            .routes
            .registry
            .load()
            .config
            .path
            .display()
            .to_string()
    }

    /// The last reload: when (RFC 3339), `ok` or `failed`, and what changed or why it failed;
    /// three empty strings before the first.
    #[zbus(property)]
    fn last_reload(&self) -> (String, String, String) {
        last_reload(&self.service)
    }
}

/// [`ServerObject::last_reload`]'s value, also for announcing its changes.
pub fn last_reload(service: &Service) -> (String, String, String) {
    match service.routes.facts.reloads.last() {
        Some(reload) => (
            reload
                .at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
            if reload.ok { "ok" } else { "failed" }.to_owned(),
            reload.message,
        ),
        None => Default::default(),
    }
}
