//! `voyandzctl watch`: a line for each change as the server announces it. It subscribes to
//! the server's signals under its root (PropertiesChanged of every object, InterfacesAdded and
//! InterfacesRemoved of the ObjectManager) and to the name's owner changes, and keeps every
//! property's last value, so that a line says `old -> new` and a value that did not change
//! prints nothing. It polls nothing: the server already announces states at once and byte
//! counters at most once a second.

use std::collections::HashMap;

use chrono::{DateTime, Local};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use zbus::message::Type;
use zbus::{MatchRule, Message, MessageStream, fdo};

use super::client::Client;
use super::error::CtlError;
use super::output;
use super::value;
use crate::control::{ROOT, SERVICE, path};

/// An object of the server's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "object", content = "name", rename_all = "snake_case")]
pub enum Object {
    /// The server itself (the manager object).
    Server,
    /// A feed, by name.
    Feed(String),
    /// A stream, by name.
    Stream(String),
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A property took a new value (`old`: none when it was not known).
    Property {
        /// Its D-Bus name.
        property: String,
        /// Its value before.
        old: Option<Json>,
        /// Its value now.
        new: Json,
    },
    /// A reload added it.
    Added,
    /// A reload removed it.
    Removed,
    /// The server took its name on the bus.
    Started,
    /// The server left the bus.
    Stopped,
}

/// One change, when voyandzctl heard of it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// When it was heard of.
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Local>,
    /// Whose it is.
    #[serde(flatten)]
    pub object: Object,
    /// What it is.
    #[serde(flatten)]
    pub change: Change,
}

fn rfc3339<S: serde::Serializer>(time: &DateTime<Local>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&time.to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
}

impl std::fmt::Display for Event {
    /// `2026-12-07 02:40:01.123 feed cam: State idle -> running`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ", self.time.format("%Y-%m-%d %H:%M:%S%.3f"))?;
        match &self.object {
            Object::Server => write!(f, "server: ")?,
            Object::Feed(name) => write!(f, "feed {name}: ")?,
            Object::Stream(name) => write!(f, "stream {name}: ")?,
        }
        match &self.change {
            Change::Property { property, old, new } => {
                let old = old.as_ref().map_or_else(|| "?".into(), value::text);
                write!(f, "{property} {old} -> {}", value::text(new))
            }
            Change::Added => f.write_str("added"),
            Change::Removed => f.write_str("removed"),
            Change::Started => f.write_str("started"),
            Change::Stopped => f.write_str("stopped"),
        }
    }
}

/// Properties by object path, as last heard of.
type Known = HashMap<String, Map<String, Json>>;

/// Prints every change on stdout (`json`: one object per line) until SIGINT or SIGTERM.
pub async fn run(client: &Client, json: bool) -> Result<(), CtlError> {
    let mut watch = Watch::start(client).await?;
    eprintln!(
        "Watching voyandz on the {} bus; Ctrl-C stops.",
        client.bus()
    );
    let failed = |error: std::io::Error| CtlError::Failed(format!("cannot catch signals: {error}"));
    let kind = tokio::signal::unix::SignalKind::terminate();
    let mut terminate = tokio::signal::unix::signal(kind).map_err(failed)?;
    loop {
        let events = tokio::select! {
            events = watch.next() => events?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
        };
        for event in events {
            let line = if json {
                serde_json::to_string(&event).expect("plain data serializes")
            } else {
                event.to_string()
            };
            output::print(format!("{line}\n"))?;
        }
    }
}

/// The subscriptions and what they told so far.
struct Watch<'c> {
    client: &'c Client,
    signals: MessageStream,
    owners: fdo::NameOwnerChangedStream,
    known: Known,
}

impl<'c> Watch<'c> {
    /// Subscribes, then reads every property: a change made in between is heard of twice
    /// rather than missed, and the second time prints nothing.
    async fn start(client: &'c Client) -> Result<Watch<'c>, CtlError> {
        let subscriptions = async {
            let rule = MatchRule::builder()
                .msg_type(Type::Signal)
                .sender(SERVICE)
                .path_namespace(ROOT)
                .build()?;
            let signals = MessageStream::for_match_rule(rule, client.connection(), None).await?;
            let bus = fdo::DBusProxy::new(client.connection()).await?;
            let owners = bus.receive_name_owner_changed_with_args(&[(0, SERVICE)]);
            Ok::<_, zbus::Error>((signals, owners.await?))
        };
        let (signals, owners) = subscriptions.await.map_err(|error| client.error(error))?;
        let known = read_all(client).await?;
        Ok(Watch {
            client,
            signals,
            owners,
            known,
        })
    }

    /// The next changes (one signal can carry several).
    async fn next(&mut self) -> Result<Vec<Event>, CtlError> {
        let closed = || CtlError::Unreachable {
            bus: self.client.bus(),
            reason: "the bus closed the connection".into(),
        };
        let changes = tokio::select! {
            message = self.signals.next() => {
                let message = message.ok_or_else(closed)?.map_err(|e| self.client.error(e))?;
                self.signal(&message)
            }
            owner = self.owners.next() => {
                let owner = owner.ok_or_else(closed)?;
                let running = owner.args().is_ok_and(|args| args.new_owner.is_some());
                self.owner_changed(running).await
            }
        };
        let time = Local::now();
        let events = changes.into_iter().map(|(object, change)| Event {
            time,
            object,
            change,
        });
        Ok(events.collect())
    }

    /// The changes a signal of the server's tells of; none for a signal of no interest.
    fn signal(&mut self, message: &Message) -> Vec<(Object, Change)> {
        if let Some(signal) = fdo::PropertiesChanged::from_message(message.clone())
            && let Some(path) = message.header().path()
            && let Some(object) = object(path)
            && let Ok(args) = signal.args()
        {
            let known = self.known.entry(path.to_string()).or_default();
            let changed = value::object(args.changed_properties.iter());
            return (changed.into_iter())
                .filter_map(|(property, new)| {
                    let old = known.insert(property.clone(), new.clone());
                    (old.as_ref() != Some(&new)).then(|| {
                        let change = Change::Property { property, old, new };
                        (object.clone(), change)
                    })
                })
                .collect();
        }
        // The ObjectManager's signals come from the root and name the object they are about.
        if let Some(signal) = fdo::InterfacesAdded::from_message(message.clone())
            && let Ok(args) = signal.args()
            && let Some(object) = object(&args.object_path)
        {
            let properties = value::object(args.interfaces_and_properties.values().flatten());
            let path = args.object_path.to_string();
            if self.known.insert(path, properties).is_none() {
                return vec![(object, Change::Added)];
            }
        }
        if let Some(signal) = fdo::InterfacesRemoved::from_message(message.clone())
            && let Ok(args) = signal.args()
            && let Some(object) = object(&args.object_path)
            && self.known.remove(args.object_path.as_str()).is_some()
        {
            return vec![(object, Change::Removed)];
        }
        Vec::new()
    }

    /// The server started (`running`) or stopped. A new server's values are read afresh: its
    /// objects were in place before it took its name, so no signal told of them.
    async fn owner_changed(&mut self, running: bool) -> Vec<(Object, Change)> {
        if !running {
            self.known.clear();
            return vec![(Object::Server, Change::Stopped)];
        }
        // A server that stops again at once has nothing to read: its next change says so.
        self.known = read_all(self.client).await.unwrap_or_default();
        vec![(Object::Server, Change::Started)]
    }
}

/// Every property of the server and of its objects.
async fn read_all(client: &Client) -> Result<Known, CtlError> {
    let server = client.server().await?;
    let mut known = Known::new();
    known.insert(
        ROOT.into(),
        value::object(server.iter().map(|(k, v)| (k, &**v))),
    );
    for (path, interfaces) in client.objects().await? {
        let properties = interfaces.values().flatten();
        known.insert(
            path.to_string(),
            value::object(properties.map(|(k, v)| (k, &**v))),
        );
    }
    Ok(known)
}

/// The object at `path`: the manager at the root, a feed or stream under it.
fn object(path: &str) -> Option<Object> {
    if path == ROOT {
        return Some(Object::Server);
    }
    let under = path.strip_prefix(ROOT)?.strip_prefix('/')?;
    let (kind, element) = under.split_once('/')?;
    let name = path::unescape(element)?;
    match kind {
        "feed" => Some(Object::Feed(name)),
        "stream" => Some(Object::Stream(name)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_objects() {
        assert_eq!(object(ROOT), Some(Object::Server));
        let feed = path::feed("cam 1");
        assert_eq!(object(feed.as_str()), Some(Object::Feed("cam 1".into())));
        let stream = path::stream("ts");
        assert_eq!(object(stream.as_str()), Some(Object::Stream("ts".into())));
        assert_eq!(object("/org/voyandz/Voyandz1/other/x"), None);
        assert_eq!(object("/org/voyandz/Voyandz10"), None);
    }

    #[test]
    fn an_event_reads_as_a_line_and_as_json() {
        let event = Event {
            time: DateTime::parse_from_rfc3339("2026-12-07T02:40:01.123+00:00")
                .expect("a time")
                .with_timezone(&Local),
            object: Object::Feed("cam".into()),
            change: Change::Property {
                property: "State".into(),
                old: Some("idle".into()),
                new: "running".into(),
            },
        };
        assert!(
            event
                .to_string()
                .ends_with(" feed cam: State idle -> running"),
            "{event}"
        );
        let json = serde_json::to_value(&event).expect("JSON");
        assert_eq!(json["object"], "feed");
        assert_eq!(json["name"], "cam");
        assert_eq!(json["change"], "property");
        assert_eq!(json["old"], "idle");
        assert_eq!(json["new"], "running");
    }
}
