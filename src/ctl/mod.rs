//! voyandzctl, the command-line client of a running voyandz: its command line ([`cli`]), its
//! calls over D-Bus ([`client`], through the proxies of [`crate::control`]), what it reads
//! ([`model`], made from D-Bus values by [`value`]), how it prints that ([`output`]), its
//! live view of changes ([`watch`]), where a picture goes ([`picture`]), the password prompt
//! it offers polkit ([`agent`]), and how it fails ([`error`], [`exit`]). `src/bin/voyandzctl.rs` only wires these together.

pub mod agent;
pub mod cli;
pub mod client;
pub mod error;
pub mod exit;
pub mod model;
pub mod output;
pub mod picture;
pub mod value;
pub mod watch;
