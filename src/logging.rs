//! Log setup: every line is `YYYY-mm-dd hh:mm:ss.sss LEVEL message key=value ...`.
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
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The spec's timestamp: local time, milliseconds.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";
/// The target of the first line (`voyandz <version> starting`), which every level lets through.
const FIRST_LINE_TARGET: &str = "voyandz::start";

/// Formats events as one line: timestamp, level, message, then span and event fields.
struct LineFormat;

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
        let now = chrono::Local::now().format(TIMESTAMP_FORMAT);
        write!(writer, "{now} {} ", event.metadata().level())?;
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

/// Installs the global logger writing to stderr at `level` and above (or as `RUST_LOG` says),
/// and writes the first line, `voyandz <version> starting`, which no level filters out.
pub fn init(level: Level) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{}", level).to_lowercase()));
    tracing_subscriber::registry()
        .with(lines(filter, std::io::stderr))
        .init();
    first_line();
}

/// The layer writing [`LineFormat`] lines to `writer`: what `filter` lets through, and the
/// first line always.
fn lines<S, W>(filter: EnvFilter, writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let first_line = filter_fn(|metadata| metadata.target() == FIRST_LINE_TARGET)
        .with_max_level_hint(LevelFilter::INFO);
    layer()
        .with_writer(writer)
        .with_ansi(false)
        .event_format(LineFormat)
        .with_filter(filter.or(first_line))
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
