//! Child processes: spawning one command with its pipes ([`child`]) and the resurrection
//! policy for commands that keep dying ([`restart`]).

pub mod child;
pub mod restart;
