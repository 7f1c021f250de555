//! voyandzctl's exit codes, in one place: the program, `voyandzctl --help` and the man page
//! all take them from [`Exit`], so scripts can rely on what they read there.

/// How voyandzctl ended, as its exit status ([`Exit::meaning`] says more of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// The operation failed.
    Failed = 1,
    /// Wrong usage (clap's own code for it).
    Usage = 2,
    /// No such feed or stream.
    Unknown = 3,
    /// Access denied.
    Denied = 4,
    /// No server, or no bus.
    Unavailable = 5,
}

impl Exit {
    /// Every code, in order.
    pub const ALL: [Exit; 6] = [
        Exit::Ok,
        Exit::Failed,
        Exit::Usage,
        Exit::Unknown,
        Exit::Denied,
        Exit::Unavailable,
    ];

    /// Its number.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// What it means, in a few words for `--help`.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "done",
            Exit::Failed => {
                "the operation failed: a reload refused, no picture, not supported by that \
                 stream, a file not written"
            }
            Exit::Usage => "wrong usage (the command line, or a picture for a terminal)",
            Exit::Unknown => "no feed or stream of that name",
            Exit::Denied => "access denied by polkit or the bus (the message says why)",
            Exit::Unavailable => {
                "voyandz is not on that bus, the bus cannot be reached, or the server does not \
                 answer"
            }
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// The exit status table at the end of `voyandzctl --help` and of its man page.
pub fn help() -> String {
    let mut text = String::from("Exit status:\n");
    for exit in Exit::ALL {
        text.push_str(&format!("  {}  {}\n", exit.code(), exit.meaning()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_claps_code_and_every_code_is_listed_once() {
        let usage = clap::Error::new(clap::error::ErrorKind::InvalidValue);
        assert_eq!(i32::from(Exit::Usage.code()), usage.exit_code());
        let codes: Vec<u8> = Exit::ALL.iter().map(|exit| exit.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5]);
        assert_eq!(help().lines().count(), 1 + Exit::ALL.len());
    }
}
