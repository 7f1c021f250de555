//! systemd integration: the listening socket handed over by socket activation ([`listen`]).
//! sd-notify and journald come with the service-integration milestone.

pub mod listen;
