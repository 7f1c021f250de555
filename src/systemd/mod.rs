//! What makes voyandz a systemd service: the sockets systemd passes ([`listen`]) and the
//! messages it sends back ([`notify`]).

pub mod listen;
pub mod notify;
