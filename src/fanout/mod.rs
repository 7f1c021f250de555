//! Fan-out: one producer's bytes to any number of consumers without copying.
//!
//! [`hub::Hub`] holds the last moments of a feed's or stream's output as shared `Bytes`;
//! each client or downstream command reads it through its own [`hub::Subscriber`] cursor.
//! [`deliver`] writes each publish to every client socket in one pass.
//! [`moderation`] coalesces deliveries under load, the way a network card moderates interrupts.
//! [`parse`] runs the container parser of a hub's runs outside the hub's lock.
//! [`pipe`] writes a subscription into a child's stdin (a stream fed by a feed, feed chains).

pub mod deliver;
#[cfg(debug_assertions)]
mod fault;
pub mod framing;
pub mod hub;
pub mod join;
pub mod moderation;
pub mod parse;
pub mod pipe;
