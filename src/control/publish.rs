//! Keeps the bus in step with the server: an object for every feed and stream of the current
//! snapshot (added and removed with reloads, which the ObjectManager announces as
//! InterfacesAdded/Removed), and PropertiesChanged for every property that changed since it
//! was last announced. States are looked at often enough that a watcher sees a change at
//! once to the eye; what changes all the time (byte counters, the keyframe interval) at most
//! once a second.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use zbus::object_server::{Interface, SignalEmitter};
use zbus::{Connection, fdo};
use zbus::{OwnedObjectPath, OwnedVariant};

use super::objects::{FeedObject, FeedProperties, Property, StreamObject, StreamProperties};
use super::server::{self, ServerObject};
use super::{ROOT, Service, path};
use crate::registry::Snapshot;

/// How often states are compared with what was announced: a tenth of what a person notices
/// as a delay, at the cost of one snapshot read per object.
const LOOK_INTERVAL: Duration = Duration::from_millis(100);
/// Restless properties are announced at most this often (a byte counter would otherwise be a
/// signal per look).
const RESTLESS_INTERVAL: Duration = Duration::from_secs(1);

/// What the bus has been told: the objects exported, and their last announced properties.
#[derive(Default)]
pub struct Announced {
    feeds: BTreeMap<String, Vec<Property>>,
    streams: BTreeMap<String, Vec<Property>>,
    last_reload: (String, String, String),
    restless_at: Option<Instant>,
}

/// Announces changes until `cancel` fires.
pub async fn run(connection: Connection, service: Arc<Service>, cancel: CancellationToken) {
    let mut ticks = tokio::time::interval(LOOK_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        objects(&connection, &service).await;
        if let Err(error) = announce(&connection, &service).await {
            tracing::debug!(%error, "cannot announce property changes on D-Bus");
        }
    }
}

/// Adds the objects of feeds and streams the current snapshot has and the bus lacks, and
/// removes those it no longer has.
pub async fn objects(connection: &Connection, service: &Arc<Service>) {
    let mut announced = service.announced.lock().await;
    let snapshot = service.routes.registry.load();
    let server = connection.object_server();
    let feeds: Vec<&str> = snapshot.feed_names().collect();
    let streams: Vec<&str> = snapshot.stream_names().collect();
    let Announced {
        feeds: exported_feeds,
        streams: exported_streams,
        ..
    } = &mut *announced;
    follow::<FeedObject>(server, exported_feeds, &feeds, &snapshot, service).await;
    follow::<StreamObject>(server, exported_streams, &streams, &snapshot, service).await;
}

/// What keeping one kind of object in step needs to know of it.
trait Exported: Interface + Sized {
    /// The object path of `name`.
    fn path(name: &str) -> OwnedObjectPath;
    /// The object of `name`.
    fn new(name: &str, service: &Arc<Service>) -> Self;
    /// The properties of `name` that announce their changes; `None` when it is not there.
    fn announced(snapshot: &Snapshot, name: &str) -> Option<Vec<Property>>;
}

impl Exported for FeedObject {
    fn path(name: &str) -> OwnedObjectPath {
        path::feed(name)
    }

    fn new(name: &str, service: &Arc<Service>) -> Self {
        let (name, service) = (name.to_owned(), Arc::clone(service));
        FeedObject { name, service }
    }

    fn announced(snapshot: &Snapshot, name: &str) -> Option<Vec<Property>> {
        FeedProperties::read(snapshot, name).map(|properties| properties.announced())
    }
}

impl Exported for StreamObject {
    fn path(name: &str) -> OwnedObjectPath {
        path::stream(name)
    }

    fn new(name: &str, service: &Arc<Service>) -> Self {
        let (name, service) = (name.to_owned(), Arc::clone(service));
        StreamObject { name, service }
    }

    fn announced(snapshot: &Snapshot, name: &str) -> Option<Vec<Property>> {
        StreamProperties::read(snapshot, name).map(|properties| properties.announced())
    }
}

/// Makes the objects of kind `E` in `exported` those of `current`. An object the bus
/// refuses to add or remove is logged and left out of `exported`, so that the next look tries
/// the additions again and never a removal that cannot be done.
async fn follow<E: Exported>(
    server: &zbus::ObjectServer,
    exported: &mut BTreeMap<String, Vec<Property>>,
    current: &[&str],
    snapshot: &Snapshot,
    service: &Arc<Service>,
) {
    for gone in stale(exported, current) {
        exported.remove(&gone);
        if let Err(error) = server.remove::<E, _>(E::path(&gone)).await {
            tracing::warn!(%error, object = %E::path(&gone), "cannot remove a D-Bus object");
        }
    }
    for &name in current {
        if !exported.contains_key(name) {
            if let Err(error) = server.at(E::path(name), E::new(name, service)).await {
                tracing::warn!(%error, object = %E::path(name), "cannot add a D-Bus object");
                continue;
            }
            let properties = E::announced(snapshot, name).unwrap_or_default();
            exported.insert(name.to_owned(), properties);
        }
    }
}

/// The names in `exported` that are not in `current`.
fn stale(exported: &BTreeMap<String, Vec<Property>>, current: &[&str]) -> Vec<String> {
    (exported.keys())
        .filter(|name| !current.contains(&name.as_str()))
        .cloned()
        .collect()
}

/// Emits PropertiesChanged for every object whose announced properties changed.
async fn announce(connection: &Connection, service: &Service) -> zbus::Result<()> {
    let mut announced = service.announced.lock().await;
    let snapshot = service.routes.registry.load();
    let now = Instant::now();
    let restless_due =
        (announced.restless_at).is_none_or(|at| now.duration_since(at) >= RESTLESS_INTERVAL);
    if restless_due {
        announced.restless_at = Some(now);
    }
    let Announced {
        feeds,
        streams,
        last_reload,
        ..
    } = &mut *announced;
    announce_kind::<FeedObject>(connection, feeds, &snapshot, restless_due).await?;
    announce_kind::<StreamObject>(connection, streams, &snapshot, restless_due).await?;
    let reload = server::last_reload(service);
    if reload != *last_reload {
        *last_reload = reload.clone();
        let value = OwnedVariant::try_from(zbus::Variant::from(reload))
            .expect("plain values have no descriptors");
        let changed = HashMap::from([("LastReload", value)]);
        emit::<ServerObject>(
            connection,
            OwnedObjectPath::try_from(ROOT).expect("a valid path"),
            changed,
        )
        .await?;
    }
    Ok(())
}

/// Emits PropertiesChanged for every object of kind `E` whose properties changed.
async fn announce_kind<E: Exported>(
    connection: &Connection,
    exported: &mut BTreeMap<String, Vec<Property>>,
    snapshot: &Snapshot,
    restless_due: bool,
) -> zbus::Result<()> {
    for (name, before) in exported.iter_mut() {
        if let Some(now) = E::announced(snapshot, name) {
            let changed = changes(before, now, restless_due);
            emit::<E>(connection, E::path(name), changed).await?;
        }
    }
    Ok(())
}

async fn emit<I: Interface>(
    connection: &Connection,
    path: OwnedObjectPath,
    changed: HashMap<&'static str, OwnedVariant>,
) -> zbus::Result<()> {
    if changed.is_empty() {
        return Ok(());
    }
    let emitter = SignalEmitter::new(connection, path)?;
    let changed = changed
        .iter()
        .map(|(name, value)| (*name, (**value).clone()))
        .collect();
    fdo::Properties::properties_changed(&emitter, I::name(), changed, Cow::Borrowed(&[])).await
}

/// The properties of `now` that differ from `before` (restless ones only when `restless_due`),
/// which then records them as announced.
fn changes(
    before: &mut Vec<Property>,
    now: Vec<Property>,
    restless_due: bool,
) -> HashMap<&'static str, OwnedVariant> {
    let mut changed = HashMap::new();
    if before.len() != now.len() {
        // Nothing was announced of it yet: its object came with its values.
        *before = now;
        return changed;
    }
    for (old, new) in before.iter_mut().zip(now) {
        if old.value != new.value && (restless_due || !new.restless) {
            let value = new
                .value
                .try_clone()
                .expect("plain values have no descriptors");
            changed.insert(new.name, value);
            *old = new;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::objects::Property;

    fn announced(state: &str, bytes: u64) -> Vec<Property> {
        let value = |v: zbus::Variant<'static>| OwnedVariant::try_from(v).expect("plain");
        vec![
            Property {
                name: "State",
                value: value(state.to_owned().into()),
                restless: false,
            },
            Property {
                name: "BytesIn",
                value: value(bytes.into()),
                restless: true,
            },
        ]
    }

    #[test]
    fn a_state_change_is_announced_at_once_and_restless_ones_only_when_due() {
        let mut before = announced("idle", 0);
        let changed = changes(&mut before, announced("running", 10), false);
        assert_eq!(changed.keys().collect::<Vec<_>>(), [&"State"]);
        // Unchanged since: nothing more, however often it is looked at.
        assert!(changes(&mut before, announced("running", 10), false).is_empty());
        let changed = changes(&mut before, announced("running", 20), true);
        assert_eq!(changed.keys().collect::<Vec<_>>(), [&"BytesIn"]);
        assert!(changes(&mut before, announced("running", 20), true).is_empty());
    }

    #[test]
    fn an_object_not_announced_yet_takes_its_values_silently() {
        let mut before = Vec::new();
        assert!(changes(&mut before, announced("idle", 0), true).is_empty());
        assert_eq!(before, announced("idle", 0));
    }
}
