//! The one owner of runtime state: a [`Snapshot`] of every feed and stream (and the config
//! they come from), swapped atomically.
//!
//! Requests load the current snapshot once each and keep it for their whole answer; a
//! client already connected holds only its hub (an `Arc`), so a swap never disturbs it.
//! [`Registry::swap`] builds the next snapshot from a new config, carrying over the feeds and
//! streams a reload keeps as they are (their hubs, owner tasks and clients) and starting the
//! others; whatever the new snapshot no longer holds stops once the last request reading the
//! old one is done (dropping its handle stops its owner task). [`Registry::state`] is the one
//! read for status users: a complete, consistent view as plain data. This module does not
//! speak HTTP; `http::routes` asks it for streams.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{ClientMode, Config};
use crate::feed::{self, Feed};
use crate::lifecycle::{Kind, Tasks};
use crate::stats::{RunView, RuntimeState, State, StreamView};
use crate::stream::Stream;

/// Runtime feeds and streams of one configuration.
pub struct Snapshot {
    /// The configuration they come from.
    pub config: Arc<Config>,
    feeds: BTreeMap<String, Arc<Feed>>,
    streams: BTreeMap<String, Arc<Stream>>,
    paths: HashMap<String, Arc<Stream>>,
}

/// The current snapshot and where its tasks run.
pub struct Registry {
    current: ArcSwap<Snapshot>,
    tasks: Tasks,
}

impl Registry {
    /// Sets up every feed and stream of `config`; their tasks run among `tasks`.
    pub fn start(config: Config, tasks: &Tasks) -> Self {
        let snapshot = Snapshot::build(config, None, &|_, _| false, tasks);
        Self {
            current: ArcSwap::from_pointee(snapshot),
            tasks: tasks.clone(),
        }
    }

    /// The current snapshot: load it once per request.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot with one built from `config`. A feed or stream for which `keep`
    /// says true (and that the current snapshot has) is carried over untouched; every other
    /// one is started afresh. A kept stream reads the hub of the *new* snapshot's feed, so a
    /// reload that replaces a feed must also replace the streams reading it (the diff knows).
    pub fn swap(&self, config: Config, keep: &dyn Fn(Kind, &str) -> bool) {
        let previous = self.load();
        let next = Snapshot::build(config, Some(&previous), keep, &self.tasks);
        self.current.store(Arc::new(next));
    }

    /// Where per-client tasks are spawned.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// Ends every client's output: the server is stopping.
    pub fn close(&self) {
        let snapshot = self.load();
        for feed in snapshot.feeds.values() {
            feed.hub.close();
        }
        for stream in snapshot.streams.values() {
            stream.close();
        }
    }

    /// The state of every feed, stream and client now, as plain data.
    pub fn state(&self) -> RuntimeState {
        self.load().state()
    }
}

impl Snapshot {
    fn build(
        config: Config,
        previous: Option<&Snapshot>,
        keep: &dyn Fn(Kind, &str) -> bool,
        tasks: &Tasks,
    ) -> Self {
        let logdir = config.logdir.as_deref();
        let kept_feed = |name: &str| {
            (previous.filter(|_| keep(Kind::Feed, name)))
                .and_then(|previous| previous.feeds.get(name))
        };
        // Hubs first, so that chains and streams can refer to them.
        let hubs: HashMap<&str, _> = (config.feeds.values())
            .map(|feed_config| {
                let hub = match kept_feed(&feed_config.name) {
                    Some(kept) => Arc::clone(&kept.hub),
                    None => feed::hub(feed_config),
                };
                (feed_config.name.as_str(), hub)
            })
            .collect();
        let hub = |name: &str| Arc::clone(hubs.get(name).expect("validated: feed exists"));
        let feeds = (config.feeds.iter())
            .map(|(name, feed_config)| {
                let feed = match kept_feed(name) {
                    Some(kept) => Arc::clone(kept),
                    None => {
                        let parent = feed_config.feed.as_deref().map(hub);
                        let started = Feed::start(feed_config, hub(name), parent, logdir, tasks);
                        Arc::new(started)
                    }
                };
                (name.clone(), feed)
            })
            .collect();
        let mut streams = BTreeMap::new();
        let mut paths = HashMap::new();
        for (name, stream_config) in &config.streams {
            let kept = (previous.filter(|_| keep(Kind::Stream, name)))
                .and_then(|previous| previous.streams.get(name));
            let feeds: Vec<_> = stream_config.feeds.iter().map(|name| hub(name)).collect();
            let replaced = previous.and_then(|previous| previous.streams.get(name));
            let stream = match kept {
                Some(kept) => Arc::clone(kept),
                None => {
                    let logdir = logdir.map(Path::new);
                    let taken = replaced.and_then(|old| {
                        Stream::take_over(stream_config, old, &feeds, logdir, tasks)
                    });
                    Arc::new(
                        taken
                            .unwrap_or_else(|| Stream::start(stream_config, &feeds, logdir, tasks)),
                    )
                }
            };
            for path in Config::stream_paths(stream_config) {
                paths.insert(path, Arc::clone(&stream));
            }
            streams.insert(name.clone(), stream);
        }
        Self {
            config: Arc::new(config),
            feeds,
            streams,
            paths,
        }
    }

    /// Ends the clients of every stream that `next` (the snapshot replacing this one) does
    /// not carry on, kept or taken over: a reload removed it, or started it afresh. Its
    /// processes stop when the last holder of this snapshot lets it go.
    pub fn retire(&self, next: &Snapshot) {
        for (name, stream) in &self.streams {
            let carried = (next.streams.get(name))
                .is_some_and(|new| Arc::ptr_eq(new.control(), stream.control()));
            if !carried {
                stream.control().end_clients();
            }
        }
    }

    /// The stream served at a URL path, if any.
    pub fn stream_at(&self, path: &str) -> Option<&Arc<Stream>> {
        self.paths.get(path)
    }

    /// A feed by name (for commands).
    pub fn feed(&self, name: &str) -> Option<&Arc<Feed>> {
        self.feeds.get(name)
    }

    /// A stream by name (for commands).
    pub fn stream(&self, name: &str) -> Option<&Arc<Stream>> {
        self.streams.get(name)
    }

    /// Whether `stream`, or the feed it reads, was stopped by a command: it gets no new client.
    pub fn stopped(&self, stream: &Stream) -> bool {
        let feed_stopped = (stream.feed_names().iter())
            .filter_map(|name| self.feeds.get(name))
            .any(|feed| feed.handle.control().stats.state() == State::Stopped);
        feed_stopped || stream.control().stats.state() == State::Stopped
    }

    /// The state of every feed, stream and client of this snapshot now.
    pub fn state(&self) -> RuntimeState {
        let taken_at = chrono::Local::now();
        let streams: Vec<StreamView> = self.streams.values().map(|s| self.view_of(s)).collect();
        let feeds: Vec<RunView> = (self.feeds.keys())
            .filter_map(|name| self.feed_view(name))
            .collect();
        let mut clients: Vec<_> = (self.streams.values())
            .flat_map(|stream| stream.clients().views())
            .collect();
        clients.sort_by_key(|client| client.id);
        RuntimeState {
            taken_at,
            feeds,
            streams,
            clients,
        }
    }

    /// The state of one feed now.
    pub fn feed_view(&self, name: &str) -> Option<RunView> {
        let feed = self.feeds.get(name)?;
        // What reaches HTTP clients straight from its hub: the bytes of the streams relaying it.
        let bytes_out = (self.streams.values())
            .filter(|stream| stream.config.command.is_none())
            .filter(|stream| stream.feed_names().first().map(String::as_str) == Some(name))
            .map(|stream| stream.clients().bytes_sent())
            .sum();
        let subscribers = *feed.hub.demand().borrow();
        Some((feed.handle.control().stats).view(name, bytes_out, subscribers))
    }

    /// The state of one stream now.
    pub fn stream_view(&self, name: &str) -> Option<StreamView> {
        self.streams.get(name).map(|stream| self.view_of(stream))
    }

    fn view_of(&self, stream: &Stream) -> StreamView {
        let bytes_out = stream.clients().bytes_sent();
        let feed = stream.feed_names().first().map(String::as_str);
        let relayed = feed.filter(|_| stream.config.command.is_none());
        let own = stream.control();
        let control = match relayed.and_then(|name| self.feeds.get(name)) {
            // A relay has no process: it runs as its feed runs, unless it was stopped itself.
            Some(feed) if own.stats.state() != State::Stopped => feed.handle.control(),
            _ => own,
        };
        let hub = stream.shared_hub();
        let clients = stream.clients().count();
        let subscribers = hub.map_or(clients, |hub| *hub.demand().borrow());
        let (screenshot_requests, screenshot_decodes) = stream.clients().screenshots();
        StreamView {
            run: (control.stats).view(&stream.config.name, bytes_out, subscribers),
            feed: feed.map(str::to_string),
            feeds: stream.feed_names().to_vec(),
            paths: Config::stream_paths(&stream.config).collect(),
            mimetype: stream.config.mimetype.clone(),
            client: match stream.config.client {
                ClientMode::Shared => "shared",
                ClientMode::Exclusive => "exclusive",
            },
            clients,
            skips: stream.clients().skips(),
            clients_cut: stream.clients().cut(),
            screenshot_requests,
            screenshot_decodes,
            framing: hub.and_then(|hub| hub.known_framing()).map(Into::into),
        }
    }

    /// The names of its feeds, in order.
    pub fn feed_names(&self) -> impl Iterator<Item = &str> {
        self.feeds.keys().map(String::as_str)
    }

    /// The names of its streams, in order.
    pub fn stream_names(&self) -> impl Iterator<Item = &str> {
        self.streams.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::Container;
    use crate::stats::State;

    /// A feed that only runs on demand (none comes in these tests) and two streams of
    /// `mimetype` reading it: a relay and one running `stream_command`.
    fn config(mimetype: &str, stream_command: &str) -> Config {
        let yaml = format!(
            "feeds:\n  f:\n    command: cat\nstreams:\n  relay:\n    feed: f\n    mimetype: {mimetype}\n  coded:\n    feed: f\n    command: {stream_command}\n    mimetype: {mimetype}\n"
        );
        crate::config::load_str(Path::new("/test.yaml"), &yaml)
            .expect("valid config")
            .config
    }

    /// One MPEG-TS null packet.
    fn ts_packet() -> bytes::Bytes {
        let mut packet = vec![0xFF; 188];
        packet[..4].copy_from_slice(&[0x47, 0x1F, 0xFF, 0x10]);
        packet.into()
    }

    fn feed_container(registry: &Registry) -> Option<Container> {
        let snapshot = registry.load();
        let hub = &snapshot.feed("f").expect("feed").hub;
        hub.start_run();
        hub.publish(ts_packet());
        hub.framing_info().map(|info| info.container)
    }

    #[tokio::test]
    async fn a_feeds_container_depends_on_the_feed_alone() {
        let tasks = Tasks::default();
        // The relaying stream's mimetype used to decide the feed's hub: a text one made it
        // opaque, so editing a stream changed its feed.
        for mimetype in ["video/mp2t", "text/plain", "audio/mpeg"] {
            let registry = Registry::start(config(mimetype, "cat"), &tasks);
            assert_eq!(
                feed_container(&registry),
                Some(Container::MpegTs),
                "relayed as {mimetype}"
            );
        }
        tasks.cancel.cancel();
    }

    #[tokio::test]
    async fn a_swap_keeps_what_it_is_told_to_and_replaces_the_rest() {
        let tasks = Tasks::default();
        // Plain text: a client could not resynchronise, so the changed stream starts afresh.
        let registry = Registry::start(config("text/plain", "cat"), &tasks);
        let before = registry.load();
        registry.swap(config("text/plain", "tee"), &|kind, name| {
            kind == Kind::Feed || name == "relay"
        });
        let after = registry.load();
        let same = |a: &Arc<Stream>, b: &Arc<Stream>| Arc::ptr_eq(a, b);
        assert!(Arc::ptr_eq(
            before.feed("f").unwrap(),
            after.feed("f").unwrap()
        ));
        assert!(same(
            before.stream("relay").unwrap(),
            after.stream("relay").unwrap()
        ));
        assert!(!same(
            before.stream("coded").unwrap(),
            after.stream("coded").unwrap()
        ));
        let coded = after.stream_at("/stream/coded").expect("served");
        assert_eq!(
            coded.config.command.as_ref().expect("a command").text,
            "tee"
        );
        // The replaced stream's owner stops once the old snapshot is gone.
        let old = Arc::clone(before.stream("coded").unwrap().control());
        drop(before);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while old.stats.state() != State::Stopped {
            assert!(
                std::time::Instant::now() < deadline,
                "the old stream runs on"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        tasks.cancel.cancel();
    }

    #[tokio::test]
    async fn a_changed_ts_stream_is_taken_over_with_its_hub_and_clients() {
        let tasks = Tasks::default();
        let registry = Registry::start(config("video/mp2t", "cat"), &tasks);
        let before = registry.load();
        let old = Arc::clone(before.stream("coded").unwrap());
        registry.swap(config("video/mp2t", "tee"), &|kind, _| kind == Kind::Feed);
        let after = registry.load();
        let new = after.stream("coded").unwrap();
        assert!(
            !Arc::ptr_eq(&old, new),
            "a new stream, with the new command"
        );
        assert!(
            Arc::ptr_eq(old.control(), new.control()),
            "the same clients' control"
        );
        assert!(Arc::ptr_eq(
            old.shared_hub().unwrap(),
            new.shared_hub().unwrap()
        ));
        before.retire(&after);
        let client = old.control().client_token();
        assert!(
            !client.is_cancelled(),
            "retiring the old snapshot ends no client"
        );
        tasks.cancel.cancel();
    }

    #[tokio::test]
    async fn the_state_lists_every_feed_stream_and_client() {
        let tasks = Tasks::default();
        let registry = Registry::start(config("video/mp2t", "cat"), &tasks);
        let snapshot = registry.load();
        let relay = snapshot.stream("relay").expect("stream");
        let _client = relay.clients().register(crate::stats::ClientInfo {
            peer: "127.0.0.1:4000".parse().expect("address"),
            stream: "relay".into(),
            join: crate::fanout::join::Join::Keyframe,
            user_agent: "test".into(),
        });
        let state = registry.state();
        let names: Vec<_> = state.streams.iter().map(|s| s.run.name.as_str()).collect();
        assert_eq!(names, ["coded", "relay"]);
        assert_eq!(state.feeds.len(), 1);
        assert_eq!(state.feeds[0].state, State::Idle);
        assert_eq!(state.clients.len(), 1);
        assert_eq!(state.streams[1].clients, 1);
        assert_eq!(state.streams[1].feed.as_deref(), Some("f"));
        // The state is plain data; its clients are serialised by the view that shows them.
        serde_saphyr::to_string(&state).expect("serializable");
        let yaml = serde_saphyr::to_string(&state.clients[0]).expect("serializable");
        assert!(yaml.contains("join: keyframe"), "{yaml}");
        tasks.cancel.cancel();
    }
}
