//! Log setup: every line is `YYYY-mm-dd hh:mm:ss.sss LEVEL message key=value ...`, written to
//! stderr or, under systemd, sent to the journal as the `MESSAGE` of an entry with structured
//! fields ([`crate::systemd::journal`]); never to both, which would show every line twice.
//!
//! The spec asks that all lines start with a local timestamp with milliseconds followed by a
//! single space. tracing-subscriber's default format pads the level and prints targets, so this
//! module has its own small `FormatEvent`. It does not decide *what* is logged, with one
//! exception: the spec wants the program's name and version "in the first line of the log" on
//! "each start", so [`init`] writes that line itself, through a filter that lets it pass
//! whatever `--log-level` or `RUST_LOG` say.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::fmt::{MakeWriter, layer};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::systemd::journal;

/// The spec's timestamp: local time, milliseconds.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";
/// The target of the first line (`voyandz <version> starting`), which every level lets through.
const FIRST_LINE_TARGET: &str = "voyandz::start";

/// Where log lines go (`--log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// The journal when systemd connected stderr to it (`JOURNAL_STREAM`), else stderr.
    Auto,
    /// stderr, one line per event.
    Stderr,
    /// The journal, natively: priorities and the fields FEED, STREAM, CLIENT, CHILD_PID.
    Journal,
}

impl Output {
    /// Whether to log to the journal; `stderr_is_journal` is asked only for [`Output::Auto`].
    fn journal(self, stderr_is_journal: impl FnOnce() -> bool) -> bool {
        match self {
            Output::Auto => stderr_is_journal(),
            Output::Stderr => false,
            Output::Journal => true,
        }
    }
}

/// Writes what every line starts with: the local timestamp, one space, the level, one space.
pub(crate) fn write_line_start(writer: &mut impl fmt::Write, level: &Level) -> fmt::Result {
    let now = chrono::Local::now().format(TIMESTAMP_FORMAT);
    write!(writer, "{now} {level} ")
}

/// Formats events as one line: timestamp, level, message, then span and event fields.
pub(crate) struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write_line_start(&mut writer, event.metadata().level())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, " {fields}")?;
                }
            }
        }
        writeln!(writer)
    }
}

/// Installs the global logger, sending what passes `level` (or what `RUST_LOG` says) to
/// `output`, and writes the first line, `voyandz <version> starting`, which no level filters
/// out. When the journal is wanted but journald does not listen, lines go to stderr, and the
/// second one says so.
pub fn init(level: Level, output: Output) {
    let filter = || {
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(level.to_string().to_lowercase()))
    };
    let journal = output
        .journal(journal::stderr_is_journal)
        .then(journal::Journal::connect);
    let registry = tracing_subscriber::registry();
    let unreachable = match journal {
        Some(Ok(journal)) => {
            registry
                .with(journal.with_filter(or_first_line(filter())))
                .init();
            None
        }
        Some(Err(error)) => {
            registry.with(lines(filter(), std::io::stderr)).init();
            Some(error)
        }
        None => {
            registry.with(lines(filter(), std::io::stderr)).init();
            None
        }
    };
    first_line();
    if let Some(error) = unreachable {
        tracing::warn!(
            socket = journal::SOCKET_PATH,
            %error,
            "cannot log to the journal; logging to stderr"
        );
    }
}

/// The layer writing [`LineFormat`] lines to `writer`: what `filter` lets through, and the
/// first line always.
fn lines<S, W>(filter: EnvFilter, writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    layer()
        .with_writer(writer)
        .with_ansi(false)
        .event_format(LineFormat)
        .with_filter(or_first_line(filter))
}

/// What `filter` lets through, and the first line whatever the level.
fn or_first_line<S>(filter: EnvFilter) -> impl Filter<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let first_line = filter_fn(|metadata| metadata.target() == FIRST_LINE_TARGET)
        .with_max_level_hint(LevelFilter::INFO);
    filter.or(first_line)
}

fn first_line() {
    tracing::info!(target: FIRST_LINE_TARGET, "voyandz {} starting", env!("CARGO_PKG_VERSION"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("capture lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn line_has_timestamp_level_message_and_fields() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(capture.clone())
            .with_ansi(false)
            .event_format(LineFormat)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("client", peer = "127.0.0.1:1");
            let _entered = span.enter();
            tracing::warn!(feed = "cam0", "feed died");
        });
        let text =
            String::from_utf8(capture.0.lock().expect("capture lock").clone()).expect("utf-8 log");
        let (stamp, rest) = text.split_at(23);
        assert!(
            chrono::NaiveDateTime::parse_from_str(stamp, TIMESTAMP_FORMAT).is_ok(),
            "{text}"
        );
        assert_eq!(rest, " WARN feed died feed=\"cam0\" peer=\"127.0.0.1:1\"\n");
    }

    #[test]
    fn only_auto_asks_whether_stderr_is_the_journal() {
        let never = || -> bool { panic!("asked") };
        assert!(!Output::Stderr.journal(never));
        assert!(Output::Journal.journal(never));
        assert!(Output::Auto.journal(|| true));
        assert!(!Output::Auto.journal(|| false));
    }

    #[test]
    fn the_first_line_passes_any_level() {
        let capture = Capture::default();
        let subscriber =
            tracing_subscriber::registry().with(lines(EnvFilter::new("error"), capture.clone()));
        tracing::subscriber::with_default(subscriber, || {
            first_line();
            tracing::info!("filtered out");
            tracing::error!("an error");
        });
        let text =
            String::from_utf8(capture.0.lock().expect("capture lock").clone()).expect("utf-8 log");
        let lines: Vec<&str> = text.lines().map(|line| &line[24..]).collect();
        let version = format!("INFO voyandz {} starting", env!("CARGO_PKG_VERSION"));
        assert_eq!(lines, [version.as_str(), "ERROR an error"], "{text}");
    }
}
