//! systemd integration: the listening socket handed over by socket activation ([`listen`]) and
//! native logging to the journal ([`journal`]). sd-notify comes with the service-integration
//! milestone.

pub mod journal;
pub mod listen;
