//! Why a voyandzctl command failed, sorted by what a script can do about it ([`Exit`]). D-Bus
//! errors are sorted here once: by their error name, never by their text.

use zbus::{DBusError, fdo};

use super::exit::Exit;
use crate::control::{Bus, SERVICE};
use crate::lifecycle::Kind;

/// Why a command failed; its message is voyandzctl's one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The server has no feed or stream of that name.
    #[error("no {kind} \"{name}\" on the server (`voyandzctl {kind}s` lists them)")]
    Unknown {
        /// Feed or stream.
        kind: Kind,
        /// The name asked for.
        name: String,
    },
    /// polkit, the server or the bus said no; the message (the server's) says why.
    #[error("{0}")]
    Denied(String),
    /// Nobody owns the server's name on the bus.
    #[error("voyandz is not running: {SERVICE} is not on the {bus} bus")]
    NotRunning {
        /// The bus looked on.
        bus: Bus,
    },
    /// The bus cannot be reached, or the server does not answer.
    #[error("cannot reach voyandz on the {bus} bus: {reason}")]
    Unreachable {
        /// The bus tried.
        bus: Bus,
        /// What went wrong.
        reason: String,
    },
    /// The server tried and failed, or refused; the message (the server's) says why.
    #[error("{0}")]
    Failed(String),
    /// The output cannot be written.
    #[error("cannot write {to}: {source}")]
    Write {
        /// The file, or `stdout`.
        to: String,
        /// Why.
        source: std::io::Error,
    },
    /// A request that makes no sense here (a picture for a terminal).
    #[error("{0}")]
    Usage(String),
}

impl CtlError {
    /// `error` from a call to the server on `bus`, sorted.
    pub fn from_bus(error: zbus::Error, bus: Bus) -> CtlError {
        let unreachable = |reason: String| CtlError::Unreachable { bus, reason };
        match error {
            zbus::Error::FDO(error) => match *error {
                fdo::Error::AccessDenied(message)
                | fdo::Error::AuthFailed(message)
                | fdo::Error::InteractiveAuthorizationRequired(message) => {
                    CtlError::Denied(message)
                }
                fdo::Error::ServiceUnknown(_) | fdo::Error::NameHasNoOwner(_) => {
                    CtlError::NotRunning { bus }
                }
                fdo::Error::NoReply(message)
                | fdo::Error::NoServer(message)
                | fdo::Error::Timeout(message)
                | fdo::Error::Disconnected(message) => unreachable(message),
                other => CtlError::Failed(
                    other
                        .description()
                        .unwrap_or(other.name().as_str())
                        .to_owned(),
                ),
            },
            zbus::Error::Connection(..)
            | zbus::Error::InputOutput(_)
            | zbus::Error::Address(_)
            | zbus::Error::Handshake(_) => unreachable(error.to_string()),
            zbus::Error::MethodError(name, message, _) => {
                CtlError::Failed(message.unwrap_or_else(|| name.to_string()))
            }
            other => CtlError::Failed(format!("unexpected answer from the server: {other}")),
        }
    }

    /// `error` from a call to the feed or stream `name` on `bus`: a path without an object
    /// is a name the server does not have.
    pub fn from_call(error: zbus::Error, bus: Bus, kind: Kind, name: &str) -> CtlError {
        match &error {
            zbus::Error::FDO(fdo) if matches!(**fdo, fdo::Error::UnknownObject(_)) => {
                CtlError::Unknown {
                    kind,
                    name: name.to_owned(),
                }
            }
            _ => CtlError::from_bus(error, bus),
        }
    }

    /// Its exit status.
    pub fn exit(&self) -> Exit {
        match self {
            CtlError::Unknown { .. } => Exit::Unknown,
            CtlError::Denied(_) => Exit::Denied,
            CtlError::NotRunning { .. } | CtlError::Unreachable { .. } => Exit::Unavailable,
            CtlError::Failed(_) | CtlError::Write { .. } => Exit::Failed,
            CtlError::Usage(_) => Exit::Usage,
        }
    }

    /// Whether it is stdout's reader that went away (`voyandzctl watch | head`): nothing to
    /// tell anyone.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, CtlError::Write { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_errors_sort_by_name() {
        let bus = Bus::System;
        let fdo_error = |error: fdo::Error| CtlError::from_bus(error.into(), bus).exit();
        assert_eq!(
            fdo_error(fdo::Error::AccessDenied("no".into())),
            Exit::Denied
        );
        let absent = fdo::Error::ServiceUnknown("not activatable".into());
        assert_eq!(fdo_error(absent), Exit::Unavailable);
        assert_eq!(
            fdo_error(fdo::Error::NotSupported("audio".into())),
            Exit::Failed
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            CtlError::from_bus(refused.into(), bus).exit(),
            Exit::Unavailable
        );
        let missing = fdo::Error::UnknownObject("Unknown object '/x'".into());
        let unknown = CtlError::from_call(missing.into(), bus, Kind::Feed, "cam");
        assert_eq!(unknown.exit(), Exit::Unknown);
        assert_eq!(
            unknown.to_string(),
            "no feed \"cam\" on the server (`voyandzctl feeds` lists them)"
        );
    }
}
