//! sd-notify with a real datagram socket owned by the test (as systemd's NOTIFY_SOCKET):
//! READY (with STATUS) once serving, RELOADING with MONOTONIC_USEC then READY around a
//! reload, STOPPING on shutdown, in that order; WATCHDOG pings at half of WATCHDOG_USEC that
//! stop while the server is frozen (SIGSTOP) and come back after SIGCONT; children see none
//! of those variables.

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, Signal, send_signal, wait_until};

/// Every message received, with when it arrived.
type Received = Arc<Mutex<Vec<(Instant, String)>>>;

/// A NOTIFY_SOCKET in a temporary directory, read on a thread.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: String,
    received: Received,
}

impl NotifySocket {
    fn bind() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        let received: Received = Arc::default();
        thread::spawn({
            let received = Arc::clone(&received);
            move || {
                let mut buffer = vec![0u8; 4096];
                while let Ok(len) = socket.recv(&mut buffer) {
                    let text = String::from_utf8_lossy(&buffer[..len]).into_owned();
                    received.lock().expect("lock").push((Instant::now(), text));
                }
            }
        });
        Self {
            path: path.to_str().expect("UTF-8 path").to_owned(),
            _dir: dir,
            received,
        }
    }

    /// The messages so far, watchdog pings left out.
    fn messages(&self) -> Vec<String> {
        let received = self.received.lock().expect("lock");
        (received.iter())
            .map(|(_, text)| text.clone())
            .filter(|text| text != "WATCHDOG=1\n")
            .collect()
    }

    /// When each watchdog ping arrived.
    fn pings(&self) -> Vec<Instant> {
        let received = self.received.lock().expect("lock");
        (received.iter())
            .filter(|(_, text)| text == "WATCHDOG=1\n")
            .map(|(at, _)| *at)
            .collect()
    }

    fn wait_for(&self, prefix: &str, timeout: Duration) -> bool {
        wait_until(
            || self.messages().iter().any(|m| m.starts_with(prefix)),
            timeout,
        )
    }
}

const CONFIG: &str = "streams:\n  s:\n    command: cat\n    mimetype: text/plain\n";
const WAIT: Duration = Duration::from_secs(10);

#[test]
fn ready_reloading_ready_and_stopping_arrive_in_order() {
    let socket = NotifySocket::bind();
    let mut server = Server::spawn_with_env(CONFIG, &[], &[("NOTIFY_SOCKET", &socket.path)]);
    server.wait_ready();
    assert!(socket.wait_for("READY=1", WAIT), "{:?}", socket.messages());
    send_signal(server.pid(), Signal::Hup);
    assert!(
        wait_until(
            || socket
                .messages()
                .iter()
                .filter(|m| m.starts_with("READY=1"))
                .count()
                == 2,
            WAIT
        ),
        "{:?}",
        socket.messages()
    );
    server.stop();
    assert!(
        socket.wait_for("STOPPING=1", WAIT),
        "{:?}",
        socket.messages()
    );

    let messages = socket.messages();
    let kinds: Vec<&str> = (messages.iter())
        .map(|m| m.lines().next().unwrap_or_default())
        .filter(|first| !first.starts_with("STATUS="))
        .collect();
    assert_eq!(
        kinds,
        ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"],
        "{messages:?}"
    );
    let ready = &messages[0];
    assert!(
        ready.contains("STATUS=0/0 feeds running, 0 clients, no reload yet"),
        "{ready}"
    );
    let reloading = messages
        .iter()
        .find(|m| m.starts_with("RELOADING=1"))
        .expect("reloading");
    let usec = (reloading.lines())
        .find_map(|line| line.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC with RELOADING");
    assert!(
        usec.parse::<u64>().is_ok_and(|usec| usec > 0),
        "{reloading}"
    );
    let reloaded = messages
        .iter()
        .rfind(|m| m.starts_with("READY=1"))
        .expect("ready");
    assert!(reloaded.contains("last reload ok at "), "{reloaded}");
}

#[test]
fn watchdog_pings_come_at_half_the_timeout_and_stop_while_frozen() {
    let socket = NotifySocket::bind();
    // A 400 ms watchdog: pings every 200 ms.
    let server = Server::spawn_with_env(
        CONFIG,
        &[],
        &[("NOTIFY_SOCKET", &socket.path), ("WATCHDOG_USEC", "400000")],
    );
    server.wait_ready();
    thread::sleep(Duration::from_millis(1500));
    let pings = socket.pings();
    let intervals: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    println!("watchdog intervals: {intervals:?}");
    assert!(pings.len() >= 5, "{} pings in 1.5 s", pings.len());
    assert!(
        intervals
            .iter()
            .all(|gap| *gap < Duration::from_millis(400)),
        "{intervals:?}"
    );

    send_signal(server.pid(), Signal::Stop);
    thread::sleep(Duration::from_millis(100));
    let frozen_at = socket.pings().len();
    thread::sleep(Duration::from_millis(1000));
    assert_eq!(socket.pings().len(), frozen_at, "no ping while frozen");
    send_signal(server.pid(), Signal::Cont);
    assert!(
        wait_until(|| socket.pings().len() > frozen_at, Duration::from_secs(2)),
        "pings again after SIGCONT"
    );
}

#[test]
fn children_see_none_of_the_servers_systemd_variables() {
    let socket = NotifySocket::bind();
    let server = Server::spawn_with_env(
        "streams:\n  env:\n    command: sh -c 'env; sleep 5'\n    mimetype: text/plain\n",
        &[],
        &[
            ("NOTIFY_SOCKET", &socket.path),
            ("WATCHDOG_USEC", "10000000"),
        ],
    );
    server.wait_ready();
    let mut client = server.open("/stream/env");
    let env = String::from_utf8_lossy(&client.read_at_least(20, WAIT)).into_owned();
    let env = env + &String::from_utf8_lossy(&client.read_for(Duration::from_millis(300)));
    assert!(env.contains("PATH="), "{env}");
    for private in [
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "LISTEN_FDS",
        "LISTEN_PID",
    ] {
        assert!(
            !env.contains(private),
            "{private} reached the child:\n{env}"
        );
    }
}
