//! The `dbus` section's bus client: every [`PERIOD`] it reads every property of every object
//! the server has on the bus, the way a dashboard that knows nothing in advance would:
//! `GetManagedObjects` on the ObjectManager at the server's root (every feed's and stream's
//! properties, and the list of objects), then `GetAll` on each object listed and on the
//! manager object (which the ObjectManager does not list: it is the root itself). So each
//! poll has the server compute every feed and stream property twice and the manager's once.
//!
//! It runs on a thread of its own with its own runtime, so the stream clients on the bench's
//! one thread are not held up by it (its CPU still counts as the bench's). Polls are due on an
//! absolute schedule: a slow poll does not shift the next ones (those that fell due meanwhile
//! go out back to back).

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::oneshot;
use voyandz::control::server::ServerObject;
use voyandz::control::{ROOT, SERVICE};
use voyandz_bench::clock::now_ns;
use zbus::fdo::ObjectManagerProxy;
use zbus::names::InterfaceName;
use zbus::object_server::Interface as _;
use zbus::{Connection, ObjectPath, OwnedVariant};

/// Ten polls a second (issue 21).
pub const PERIOD: Duration = Duration::from_millis(100);
/// The standard interface `GetAll` belongs to.
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// One poll of every property of every object.
#[derive(Debug, Clone, Copy)]
pub struct Poll {
    /// When it started, CLOCK_MONOTONIC ns.
    pub at_ns: u64,
    /// From its first call to its last reply, ns.
    pub took_ns: u64,
    /// Property values received.
    pub properties: u64,
    /// Method calls made.
    pub calls: u64,
    /// Objects read, the manager included.
    pub objects: u64,
}

/// What the poller did.
#[derive(Debug, Default)]
pub struct Report {
    /// The polls that succeeded, in time order.
    pub polls: Vec<Poll>,
    /// Polls that failed.
    pub errors: u64,
    /// Why the first one did.
    pub first_error: Option<String>,
}

impl Report {
    /// The polls that started in `[from_ns, to_ns)`.
    pub fn between(&self, from_ns: u64, to_ns: u64) -> &[Poll] {
        let start = self.polls.partition_point(|p| p.at_ns < from_ns);
        let end = self.polls.partition_point(|p| p.at_ns < to_ns);
        &self.polls[start..end]
    }
}

/// A poller running on its thread; stops when dropped.
pub struct Poller {
    stop: oneshot::Sender<()>,
    done: oneshot::Receiver<Report>,
}

impl Poller {
    /// Connects to the bus at `address` and starts polling; returns once a first (untimed)
    /// poll has been answered, or why there is none.
    pub async fn start(address: &str) -> Result<Poller, String> {
        let (ready_tx, ready) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        let address = address.to_string();
        std::thread::Builder::new()
            .name("dbus-poller".into())
            .spawn(move || {
                let _ = done_tx.send(run(&address, ready_tx, stop_rx));
            })
            .map_err(|e| format!("spawn the poller thread: {e}"))?;
        ready
            .await
            .map_err(|_| "the poller thread ended at start".to_string())??;
        Ok(Poller { stop, done })
    }

    /// Stops polling (after the poll under way) and returns what was done.
    pub async fn stop(self) -> Result<Report, String> {
        let _ = self.stop.send(());
        self.done
            .await
            .map_err(|_| "the poller thread ended without a report".to_string())
    }
}

/// The poller thread: connects, polls once untimed, says so on `ready`, then polls every
/// [`PERIOD`] until `stop` fires (or its sender is dropped).
fn run(
    address: &str,
    ready: oneshot::Sender<Result<(), String>>,
    mut stop: oneshot::Receiver<()>,
) -> Report {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(format!("the poller's runtime: {e}")));
            return Report::default();
        }
    };
    runtime.block_on(async {
        let (connection, manager) = match connect(address).await {
            Ok(c) => c,
            Err(e) => {
                let _ = ready.send(Err(e));
                return Report::default();
            }
        };
        let _ = ready.send(Ok(()));
        let mut report = Report::default();
        let mut due = tokio::time::interval(PERIOD);
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => return report,
                _ = due.tick() => {}
            }
            match poll(&connection, &manager).await {
                Ok(p) => report.polls.push(p),
                Err(e) => {
                    report.errors += 1;
                    report.first_error.get_or_insert(e);
                }
            }
        }
    })
}

/// A connection to the bus at `address` and a proxy of the server's ObjectManager, proven by
/// a first poll.
async fn connect(address: &str) -> Result<(Connection, ObjectManagerProxy<'static>), String> {
    let connection = zbus::connection::Builder::address(address)
        .build()
        .await
        .map_err(|e| format!("connect to the bus: {e}"))?;
    let manager = ObjectManagerProxy::builder(&connection)
        .destination(SERVICE)
        .path(ROOT)
        .build()
        .await
        .map_err(|e| format!("the ObjectManager's proxy: {e}"))?;
    poll(&connection, &manager).await?;
    Ok((connection, manager))
}

/// Reads every property of every object once.
async fn poll(connection: &Connection, manager: &ObjectManagerProxy<'_>) -> Result<Poll, String> {
    let at_ns = now_ns();
    let managed = manager
        .get_managed_objects()
        .await
        .map_err(|e| format!("GetManagedObjects: {e}"))?;
    let mut poll = Poll {
        at_ns,
        took_ns: 0,
        properties: managed
            .values()
            .flat_map(|i| i.values())
            .map(|p| p.len() as u64)
            .sum(),
        calls: 1,
        objects: 0,
    };
    let root = ObjectPath::from_static_str_unchecked(ROOT);
    poll.properties += get_all(connection, &root, &ServerObject::name()).await?;
    poll.calls += 1;
    poll.objects += 1;
    for (path, interfaces) in &managed {
        for interface in interfaces.keys() {
            poll.properties += get_all(connection, path, interface).await?;
            poll.calls += 1;
        }
        // The intermediate nodes (`…/feed`, `…/stream`) are listed with no interface.
        poll.objects += u64::from(!interfaces.is_empty());
    }
    poll.took_ns = now_ns() - at_ns;
    Ok(poll)
}

/// `GetAll` of `interface` on the object at `path`: how many properties it has.
async fn get_all(
    connection: &Connection,
    path: &ObjectPath<'_>,
    interface: &InterfaceName<'_>,
) -> Result<u64, String> {
    let failed = |e: zbus::Error| format!("GetAll {interface} on {path}: {e}");
    let reply = connection
        .call_method(
            Some(SERVICE),
            path,
            Some(PROPERTIES),
            "GetAll",
            &interface.as_str(),
        )
        .await
        .map_err(failed)?;
    let values: HashMap<String, OwnedVariant> = reply.body().deserialize().map_err(failed)?;
    Ok(values.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_the_polls_that_started_in_it() {
        let at = |at_ns| Poll {
            at_ns,
            took_ns: 1,
            properties: 2,
            calls: 3,
            objects: 4,
        };
        let report = Report {
            polls: vec![at(50), at(100), at(150), at(200)],
            ..Report::default()
        };
        let starts: Vec<u64> = report.between(100, 200).iter().map(|p| p.at_ns).collect();
        assert_eq!(starts, [100, 150]);
        assert!(report.between(300, 400).is_empty());
    }
}
