//! The connected clients of a stream: who each is, what it was sent and how often it
//! skipped, and the totals of those that left.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Local};
use serde::Serialize;

use super::millis;
use crate::fanout::join::Join;

/// The connected clients of one stream, and what its clients did in total (bytes, skips and
/// cuts of those that left too, pictures asked for): counters only ever rise, as a metrics
/// scraper expects.
#[derive(Debug, Default)]
pub struct Clients {
    list: Mutex<HashMap<u64, Arc<ClientStats>>>,
    departed_bytes: AtomicU64,
    departed_skips: AtomicU64,
    cut: AtomicU64,
    screenshot_requests: AtomicU64,
    screenshot_decodes: AtomicU64,
}

/// Gives every client of the server its own id.
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// Who a client is, as the status shows it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// Its address.
    pub peer: SocketAddr,
    /// The stream it watches.
    pub stream: String,
    /// How it joined.
    pub join: Join,
    /// Its `User-Agent`, `-` when it sent none.
    pub user_agent: String,
}

/// One client's counters, shared by its body (writer) and the list (readers).
#[derive(Debug)]
pub struct ClientStats {
    id: u64,
    info: ClientInfo,
    started: (Instant, DateTime<Local>),
    sent: AtomicU64,
    skips: AtomicU64,
}

impl Clients {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<ClientStats>>> {
        // Entries are inserted and removed whole: a poisoned map is still a consistent one.
        self.list
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lists a new client until the returned entry is dropped.
    pub fn register(self: &Arc<Self>, info: ClientInfo) -> ClientEntry {
        let stats = Arc::new(ClientStats {
            id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
            info,
            started: (Instant::now(), Local::now()),
            sent: AtomicU64::new(0),
            skips: AtomicU64::new(0),
        });
        self.lock().insert(stats.id, Arc::clone(&stats));
        ClientEntry {
            clients: Arc::clone(self),
            stats,
        }
    }

    /// How many clients are connected.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Bytes sent to every client, connected or gone.
    pub fn bytes_sent(&self) -> u64 {
        let connected: u64 = (self.lock().values())
            .map(|client| client.sent.load(Ordering::Relaxed))
            .sum();
        connected + self.departed_bytes.load(Ordering::Relaxed)
    }

    /// Skips of every client, connected or gone.
    pub fn skips(&self) -> u64 {
        let connected: u64 = (self.lock().values())
            .map(|client| client.skips.load(Ordering::Relaxed))
            .sum();
        connected + self.departed_skips.load(Ordering::Relaxed)
    }

    /// Clients cut off because they fell too far behind live.
    pub fn cut(&self) -> u64 {
        self.cut.load(Ordering::Relaxed)
    }

    /// Counts a request for a picture of the stream (`/pic`).
    pub fn screenshot_requested(&self) {
        self.screenshot_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a decoder run for a picture (requests that share one count once).
    pub fn screenshot_decoding(&self) {
        self.screenshot_decodes.fetch_add(1, Ordering::Relaxed);
    }

    /// Pictures asked for and decoder runs, in that order.
    pub fn screenshots(&self) -> (u64, u64) {
        (
            self.screenshot_requests.load(Ordering::Relaxed),
            self.screenshot_decodes.load(Ordering::Relaxed),
        )
    }

    /// The views of the connected clients, oldest first.
    pub fn views(&self) -> Vec<ClientView> {
        let now = Instant::now();
        let mut views: Vec<ClientView> = (self.lock().values())
            .map(|client| ClientView {
                id: client.id,
                peer: client.info.peer,
                stream: client.info.stream.clone(),
                join: client.info.join,
                user_agent: client.info.user_agent.clone(),
                started_at: client.started.1,
                duration_ms: millis(now - client.started.0),
                bytes_sent: client.sent.load(Ordering::Relaxed),
                skips: client.skips.load(Ordering::Relaxed),
            })
            .collect();
        views.sort_by_key(|view| view.id);
        views
    }
}

/// A listed client; dropping it takes the client off the list.
#[derive(Debug)]
pub struct ClientEntry {
    clients: Arc<Clients>,
    stats: Arc<ClientStats>,
}

impl ClientEntry {
    /// Counts bytes handed to the client's connection: one atomic add, no lock.
    pub fn sent(&self, bytes: u64) {
        self.stats.sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records how many times the client skipped ahead so far.
    pub fn skipped(&self, skips: u64) {
        self.stats.skips.store(skips, Ordering::Relaxed);
    }

    /// Counts the client as cut off for falling too far behind live.
    pub fn cut(&self) {
        self.clients.cut.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for ClientEntry {
    fn drop(&mut self) {
        let sent = self.stats.sent.load(Ordering::Relaxed);
        let skips = self.stats.skips.load(Ordering::Relaxed);
        let removed = self.clients.lock().remove(&self.stats.id);
        // Added after the removal: a reader summing in between may miss the bytes for a
        // moment, but never counts them twice.
        if removed.is_some() {
            let clients = &self.clients;
            clients.departed_bytes.fetch_add(sent, Ordering::Relaxed);
            clients.departed_skips.fetch_add(skips, Ordering::Relaxed);
        }
    }
}

/// One connected client.
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    /// Its id, unique while the server runs.
    pub id: u64,
    /// Its address.
    pub peer: SocketAddr,
    /// The stream it watches.
    pub stream: String,
    /// How it joined.
    pub join: Join,
    /// Its `User-Agent`.
    pub user_agent: String,
    /// When it connected.
    pub started_at: DateTime<Local>,
    /// How long it has been connected, in milliseconds.
    pub duration_ms: u64,
    /// Bytes handed to its connection.
    pub bytes_sent: u64,
    /// How many times it fell behind and skipped ahead.
    pub skips: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ClientInfo {
        ClientInfo {
            peer: "127.0.0.1:5000".parse().expect("address"),
            stream: "s".into(),
            join: Join::Plain,
            user_agent: "<b>agent</b>".into(),
        }
    }

    #[test]
    fn a_client_is_listed_until_it_leaves_and_its_bytes_stay_counted() {
        let clients = Arc::new(Clients::default());
        let entry = clients.register(info());
        entry.sent(100);
        entry.skipped(2);
        let views = clients.views();
        assert_eq!(views.len(), 1);
        assert_eq!((views[0].bytes_sent, views[0].skips), (100, 2));
        assert_eq!(clients.bytes_sent(), 100);
        drop(entry);
        assert_eq!(clients.count(), 0);
        assert_eq!(
            (clients.bytes_sent(), clients.skips()),
            (100, 2),
            "a departed client's bytes and skips still count"
        );
    }
}
