//! What makes voyandz a systemd service: the sockets systemd passes ([`listen`]), the messages
//! it sends back ([`notify`]) and native logging to the journal ([`journal`]).

pub mod journal;
pub mod listen;
pub mod notify;
