//! What the bench and the stamping feed share: the stamped packet layout and its scanner,
//! the clock both sides read, and the latency histogram.
//!
//! Nothing here does I/O; the bench (`main.rs`) and the feed (`bin/voyandz-stamp.rs`) do.

pub mod clock;
pub mod hist;
pub mod packet;
