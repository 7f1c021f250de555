//! The one owner of runtime state: every feed's hub and every stream, found by name or URL.
//!
//! Built from a validated [`Config`]: hubs for all feeds first (so chains and streams can
//! refer to them), then supervisors, then streams. Continuous feeds start at once; the rest
//! wait for demand. This module does not speak HTTP; `http::routes` asks it for streams.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::container::select;
use crate::fanout::hub::Hub;
use crate::feed;
use crate::lifecycle::Tasks;
use crate::stream::{self, Stream};

/// Runtime feeds and streams of one configuration.
pub struct Registry {
    feeds: HashMap<String, Arc<Hub>>,
    streams: HashMap<String, Arc<Stream>>,
    paths: HashMap<String, Arc<Stream>>,
    tasks: Tasks,
}

impl Registry {
    /// Sets up every feed and stream of `config`; their tasks run among `tasks`.
    pub fn start(config: &Config, tasks: &Tasks) -> Self {
        let logdir = config.logdir.as_deref();
        // A feed relayed as is by a stream carries that stream's container: the first relay
        // (by name) whose mimetype names one decides, else the first relay.
        let mut relayed_as: HashMap<&str, &str> = HashMap::new();
        for stream in config.streams.values() {
            let (None, Some(feed)) = (&stream.command, stream.feed.as_deref()) else {
                continue;
            };
            let names_container = select::from_mimetype(&stream.mimetype).is_some();
            let decided = relayed_as
                .get(feed)
                .is_some_and(|known| !names_container || select::from_mimetype(known).is_some());
            if !decided {
                relayed_as.insert(feed, stream.mimetype.as_str());
            }
        }
        let feeds: HashMap<String, Arc<Hub>> = config
            .feeds
            .keys()
            .map(|name| {
                let hub = match relayed_as.get(name.as_str()) {
                    Some(mimetype) => stream::hub_for(name, mimetype),
                    // Known containers let the commands reading it start at a clean boundary.
                    None => Hub::framed(name, select::sniffing_factory()),
                };
                (name.clone(), hub)
            })
            .collect();
        for (name, feed_config) in &config.feeds {
            let parent = feed_config.feed.as_ref().map(|parent| hub(&feeds, parent));
            let job = feed::job(feed_config, parent, logdir);
            stream::spawn_supervisor(job, hub(&feeds, name), tasks);
        }
        let mut streams = HashMap::new();
        let mut paths = HashMap::new();
        for (name, stream_config) in &config.streams {
            let feed = stream_config.feed.as_ref().map(|feed| hub(&feeds, feed));
            let stream = Arc::new(Stream::start(
                stream_config,
                feed,
                logdir.map(Path::new),
                tasks,
            ));
            for path in Config::stream_paths(stream_config) {
                paths.insert(path, Arc::clone(&stream));
            }
            streams.insert(name.clone(), stream);
        }
        Self {
            feeds,
            streams,
            paths,
            tasks: tasks.clone(),
        }
    }

    /// The stream served at a URL path, if any.
    pub fn stream_at(&self, path: &str) -> Option<&Arc<Stream>> {
        self.paths.get(path)
    }

    /// Where per-client tasks are spawned.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// Ends every client's output: the server is stopping.
    pub fn close(&self) {
        for hub in self.feeds.values() {
            hub.close();
        }
        for stream in self.streams.values() {
            stream.close();
        }
    }
}

/// Validation guarantees that every `feed:` names an existing feed.
fn hub(feeds: &HashMap<String, Arc<Hub>>, name: &str) -> Arc<Hub> {
    Arc::clone(feeds.get(name).expect("validated: feed exists"))
}
