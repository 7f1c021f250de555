//! Socket activation as systemd does it: `systemd-socket-activate` holds the socket and starts
//! the server on the first connection, which is served (not dropped) although it arrived
//! before the server existed; several inherited sockets (IPv4 and IPv6) all serve, and the
//! config's `listenaddr`/`listenport` are said to be superseded, once. An IPv4 client of a
//! dual-stack socket is named by its IPv4 address.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::{Server, StreamReader, ticker};

const WAIT: Duration = Duration::from_secs(20);

fn config() -> String {
    format!(
        "listenaddr: 192.0.2.1\nlistenport: 1\nfeeds:\n  tick:\n    command: {}\n\
         streams:\n  s:\n    feed: tick\n    mimetype: text/plain\n",
        ticker("activated")
    )
}

#[test]
fn the_first_connection_starts_the_server_and_is_served() {
    let server = Server::spawn_socket_activated(&config());
    assert!(
        !server.log_text().contains("voyandz"),
        "started before any connection"
    );
    // This client connects while no server runs: the tool starts it for this connection.
    let mut client = server.open("/stream/s");
    assert_eq!(client.status, 200);
    let body = client.read_at_least(20, WAIT);
    assert!(String::from_utf8_lossy(&body).contains("activated"));
    assert!(
        server.log_text().contains("voyandz 0.1.0 starting")
            || server.log_text().contains("starting")
    );
}

#[test]
fn every_inherited_socket_serves_and_the_configured_address_is_superseded_once() {
    let v6 = TcpListener::bind("[::1]:0").expect("bind [::1]:0");
    let v6_port = v6.local_addr().expect("address").port();
    let second_v4 = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let second_port = second_v4.local_addr().expect("address").port();
    let server = Server::start_with_sockets(&config(), vec![v6, second_v4]);
    for (host, port) in [
        ("127.0.0.1", server.port()),
        ("::1", v6_port),
        ("127.0.0.1", second_port),
    ] {
        let mut client = StreamReader::connect(host, port, "/stream/s");
        assert_eq!(client.status, 200, "{host} port {port}");
        assert!(!client.read_at_least(10, WAIT).is_empty());
    }
    assert!(server.wait_log("listenaddr and listenport are not used", WAIT));
    let superseded = server
        .log_lines()
        .into_iter()
        .filter(|line| line.contains("listenaddr and listenport are not used"))
        .count();
    assert_eq!(superseded, 1, "{}", server.log_text());
}

#[test]
fn an_ipv4_client_of_a_dual_stack_socket_is_named_by_its_ipv4_address() {
    // What `ListenStream=8090` gives: one IPv6 socket that also takes IPv4 connections.
    let socket = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)
        .expect("IPv6 socket");
    socket.set_only_v6(false).expect("dual stack");
    socket
        .bind(
            &"[::]:0"
                .parse::<std::net::SocketAddr>()
                .expect("address")
                .into(),
        )
        .expect("bind [::]:0");
    socket.listen(16).expect("listen");
    let dual: TcpListener = socket.into();
    let port = dual.local_addr().expect("address").port();
    let server = Server::start_with_sockets(
        &format!("{}status:\n  clients: true\n", config()),
        vec![dual],
    );
    let mut client = StreamReader::connect("127.0.0.1", port, "/stream/s");
    assert!(!client.read_at_least(10, WAIT).is_empty());
    let json: serde_json::Value =
        serde_json::from_slice(&server.get("/stat.json").body).expect("JSON");
    let peers: Vec<&str> = json["clients"]
        .as_array()
        .expect("clients are listed")
        .iter()
        .filter_map(|client| client["peer"].as_str())
        .collect();
    assert_eq!(peers.len(), 1, "{json}");
    assert!(peers[0].starts_with("127.0.0.1:"), "{peers:?}");
    assert!(
        server.wait_log("client connected peer=127.0.0.1:", WAIT),
        "{}",
        server.log_text()
    );
}
