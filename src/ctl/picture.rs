//! Where `voyandzctl screenshot` writes its picture: the file `-o` names, or stdout (`-o -`,
//! or no `-o` when stdout is not a terminal, where a picture's bytes would only garble the
//! screen). Chosen before the server is asked, so a wrong command costs no decode.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use super::error::CtlError;
use super::output;

/// Where the picture goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A file, created or replaced.
    File(PathBuf),
    /// Standard output.
    Stdout,
}

impl Destination {
    /// The destination of `-o output` (none: stdout, unless it is a terminal).
    pub fn choose(output: Option<&Path>) -> Result<Destination, CtlError> {
        match output {
            Some(path) if path == Path::new("-") => Ok(Destination::Stdout),
            Some(path) => Ok(Destination::File(path.to_owned())),
            None if std::io::stdout().is_terminal() => Err(CtlError::Usage(
                "stdout is a terminal: give -o FILE for the picture, or redirect stdout".into(),
            )),
            None => Ok(Destination::Stdout),
        }
    }

    /// Writes `picture` there.
    pub fn write(&self, picture: &[u8]) -> Result<(), CtlError> {
        match self {
            Destination::Stdout => output::print(picture),
            Destination::File(path) => {
                std::fs::write(path, picture).map_err(|source| CtlError::Write {
                    to: path.display().to_string(),
                    source,
                })
            }
        }
    }
}
