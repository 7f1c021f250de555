//! HTTP: the accept loop ([`server`]), the URL table ([`routes`]), percent-encoding at the
//! edge ([`url`]) and the body that carries a stream's bytes to one client ([`body`]), written
//! into its socket by the stream's publisher once hyper sent the head ([`direct`]). hyper 1
//! with HTTP/1.1 only: players use it, and every layer between a chunk and the socket is one
//! more place latency could hide.

pub mod body;
pub mod direct;
pub mod mpjpeg;
pub mod routes;
pub mod server;
pub mod stall;
pub mod url;
