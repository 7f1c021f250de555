//! Child processes: spawning one command with its pipes ([`child`]) and the resurrection
//! policy for commands that keep dying ([`restart`]), and why a run ended ([`exit`]).

pub mod child;
pub mod exit;
pub mod restart;
