//! Problems found in a config file, and the error type of this module.
//!
//! A [`Problem`] points at a file, a line and column and a key path (`feeds.cam0.mode`), so a
//! user can find it without reading our source. [`Report`] collects errors and warnings while
//! the file is converted and cross-checked; it knows where each key was written. This module
//! does not decide what is wrong: `load` and `validate` do.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// One thing wrong with (or, as a warning, worth knowing about) a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// Key path such as `feeds.cam0.mode`; empty for problems of the whole file (YAML syntax).
    pub key: String,
    /// What is wrong, in lower case and without a trailing period.
    pub message: String,
    /// Where the text at fault was instantiated, for text written in a template or a set
    /// (the stream that uses the template, the set's item), innermost first.
    pub via: Vec<Via>,
}

/// A place that instantiated a template or a set definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Its key path, such as `streams.cam0_ts.template` or `sets.cameras.items.1`.
    pub key: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
}

impl fmt::Display for Problem {
    /// `FILE:LINE:COL: KEY: MESSAGE`, leaving out whatever is unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        for (index, via) in self.via.iter().enumerate() {
            let lead = if index == 0 { " (via" } else { "," };
            let (file, line, column) = (self.file.display(), via.line, via.column);
            write!(f, "{lead} {} at {file}:{line}:{column}", via.key)?;
        }
        if !self.via.is_empty() {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl Via {
    /// `key`, written at `location`; `None` for an unknown location.
    pub(crate) fn at(key: impl Into<String>, location: &serde_saphyr::Location) -> Option<Via> {
        let (line, column) = line_column(location)?;
        Some(Via {
            key: key.into(),
            line,
            column,
        })
    }
}

/// 1-based line and column of a known location.
fn line_column(location: &serde_saphyr::Location) -> Option<(usize, usize)> {
    let line = usize::try_from(location.line())
        .ok()
        .filter(|line| *line > 0)?;
    Some((line, usize::try_from(location.column()).ok()?))
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file was read but is not a usable config; every problem found is listed.
    #[error("{}", lines(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// At least one problem, in the order found (mostly file order).
        problems: Vec<Problem>,
    },
}

fn lines(problems: &[Problem]) -> String {
    let text: Vec<String> = problems.iter().map(Problem::to_string).collect();
    text.join("\n")
}

/// Where keys were written: key path → (line, column). A key path names the value it holds
/// (`streams.cam.url` is where the URL is written); a feed or stream (`feeds.cam0`) is the
/// location of its name.
#[derive(Debug, Default)]
pub(crate) struct Spans {
    at: HashMap<String, (usize, usize)>,
}

impl Spans {
    /// Remembers where `key` was written; unknown locations (line 0) are ignored.
    pub(crate) fn mark(&mut self, key: &str, location: &serde_saphyr::Location) {
        if let Some(found) = line_column(location) {
            self.at.insert(key.to_owned(), found);
        }
    }

    /// Whether `key` itself was written in the file.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.at.contains_key(key)
    }

    /// The location of `key`, or of its nearest parent that has one.
    fn find(&self, key: &str) -> Option<(usize, usize)> {
        nearest(&self.at, key).copied()
    }
}

/// The value of `key` in `map`, or of its nearest parent key that has one.
fn nearest<'a, T>(map: &'a HashMap<String, T>, key: &str) -> Option<&'a T> {
    let mut key = key;
    loop {
        if let Some(found) = map.get(key) {
            return Some(found);
        }
        key = &key[..key.rfind('.')?];
    }
}

/// Errors and warnings collected while a file is converted and validated.
#[derive(Debug)]
pub(crate) struct Report {
    file: PathBuf,
    /// Where each key was written.
    pub(crate) spans: Spans,
    /// What instantiated each key that came from a template or a set (see [`Problem::via`]);
    /// a key without an entry takes its nearest parent's.
    pub(crate) vias: HashMap<String, Vec<Via>>,
    /// Problems that make the config unusable.
    pub(crate) errors: Vec<Problem>,
    /// Problems that do not (a device missing on this machine, say).
    pub(crate) warnings: Vec<Problem>,
}

impl Report {
    /// An empty report about `file`.
    pub(crate) fn new(file: &Path) -> Self {
        Report {
            file: file.to_path_buf(),
            spans: Spans::default(),
            vias: HashMap::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// A problem at `key`, located where `key` (or its parent) was written.
    pub(crate) fn problem(&self, key: &str, message: impl Into<String>) -> Problem {
        let location = self.spans.find(key);
        Problem {
            file: self.file.clone(),
            line: location.map(|(line, _)| line),
            column: location.map(|(_, column)| column),
            key: key.to_owned(),
            message: message.into(),
            via: nearest(&self.vias, key).cloned().unwrap_or_default(),
        }
    }

    /// Records an error at `key`.
    pub(crate) fn error(&mut self, key: &str, message: impl Into<String>) {
        let problem = self.problem(key, message);
        self.errors.push(problem);
    }

    /// Records an error at `key`, written at `location` and instantiated through `via`;
    /// the same error met again (a set definition, once per item) is recorded once.
    pub(crate) fn error_at(
        &mut self,
        key: &str,
        location: &serde_saphyr::Location,
        via: Vec<Via>,
        message: impl Into<String>,
    ) {
        let at = line_column(location);
        let problem = Problem {
            file: self.file.clone(),
            line: at.map(|(line, _)| line),
            column: at.map(|(_, column)| column),
            key: key.to_owned(),
            message: message.into(),
            via,
        };
        let same = |known: &Problem| {
            (&known.key, known.line, known.column, &known.message)
                == (&problem.key, problem.line, problem.column, &problem.message)
        };
        if !self.errors.iter().any(same) {
            self.errors.push(problem);
        }
    }

    /// Records a warning at `key`.
    pub(crate) fn warn(&mut self, key: &str, message: impl Into<String>) {
        let problem = self.problem(key, message);
        self.warnings.push(problem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(line: Option<usize>, key: &str) -> Problem {
        Problem {
            file: PathBuf::from("/etc/voyandz.ini"),
            line,
            column: line.map(|_| 7),
            key: key.to_owned(),
            message: "bad thing".to_owned(),
            via: Vec::new(),
        }
    }

    #[test]
    fn display_leaves_out_what_is_unknown() {
        assert_eq!(
            problem(Some(3), "feeds.cam0.mode").to_string(),
            "/etc/voyandz.ini:3:7: feeds.cam0.mode: bad thing"
        );
        assert_eq!(
            problem(None, "logdir").to_string(),
            "/etc/voyandz.ini: logdir: bad thing"
        );
        assert_eq!(
            problem(Some(1), "").to_string(),
            "/etc/voyandz.ini:1:7: bad thing"
        );
    }

    #[test]
    fn display_names_what_instantiated_the_text() {
        let mut found = problem(Some(3), "streams.cam0_ts.command");
        let via = |key: &str, line| Via {
            key: key.to_owned(),
            line,
            column: 5,
        };
        found.via = vec![via("streams.cam0_ts.template", 9), via("sets.s.items.1", 2)];
        assert_eq!(
            found.to_string(),
            "/etc/voyandz.ini:3:7: streams.cam0_ts.command: bad thing \
             (via streams.cam0_ts.template at /etc/voyandz.ini:9:5, \
             sets.s.items.1 at /etc/voyandz.ini:2:5)"
        );
    }

    #[test]
    fn invalid_lists_one_problem_per_line() {
        let error = ConfigError::Invalid {
            path: PathBuf::from("/etc/voyandz.ini"),
            problems: vec![problem(Some(2), "a"), problem(Some(5), "b")],
        };
        assert_eq!(
            error.to_string(),
            "/etc/voyandz.ini:2:7: a: bad thing\n/etc/voyandz.ini:5:7: b: bad thing"
        );
    }

    #[test]
    fn a_key_without_a_span_borrows_its_parents() {
        let mut report = Report::new(Path::new("c.yaml"));
        report.spans.at.insert("streams.cam".to_owned(), (4, 3));
        let found = report.problem("streams.cam.client", "x");
        assert_eq!((found.line, found.column), (Some(4), Some(3)));
        assert_eq!(report.problem("pages", "x").line, None);
    }
}
