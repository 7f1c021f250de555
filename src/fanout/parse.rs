//! The parse of a container-aware hub's runs, done by the publishing task before it takes the
//! hub's lock.
//!
//! A container parser is the most complex code on the data path and reads bytes from outside
//! (a camera, a file): it must not run under the lock that every client of the stream takes,
//! and a panic in it must not end more than its own parse. Each chunk is parsed once, before
//! it becomes visible to any client; the parse is caught with [`crate::panics::catch`]; a
//! parser that panics is logged once and dropped, and the rest of its run is relayed as opaque
//! bytes (clients keep receiving; joins start live). The next run gets a fresh parser. This
//! module knows nothing of the hub's chunks or marks ring: it hands the hub a [`Parsed`].

use crate::container::select::ParserFactory;
use crate::container::{Container, Demarcator, HeaderView, Mark};

/// What the hub's framing keeps of a run's parser after each chunk, so that joins never touch
/// the parser itself: cheap to copy (a shared `Bytes` and a few numbers, no allocation).
#[derive(Debug, Clone)]
pub struct ParserView {
    /// The container being parsed.
    pub container: Container,
    /// Whether the stream has no video.
    pub audio_only: bool,
    /// What a join's header is built from.
    pub header: HeaderView,
}

/// What the parse of one chunk showed.
pub struct Parsed<'a> {
    /// The chunk is its run's first.
    pub first: bool,
    /// The parser's state after the chunk; `None` when the run is opaque (no parser for its
    /// container, or its parser panicked).
    pub view: Option<ParserView>,
    /// Marks found in the chunk, at offsets from the run's first byte.
    pub marks: &'a [Mark],
}

/// The parser of a hub's current run. Only the hub's publisher (and whoever starts its runs)
/// takes it; clients read the [`ParserView`] the hub keeps instead.
pub struct Parse {
    factory: ParserFactory,
    /// `None` before the run's first byte, or when the run is opaque.
    demarcator: Option<Box<dyn Demarcator>>,
    /// Whether the run's first byte was seen.
    started: bool,
    /// Marks of the newest chunk (its capacity is kept: no allocation per chunk).
    found: Vec<Mark>,
}

impl Parse {
    /// The parse of a hub whose runs get their parsers from `factory`.
    pub fn new(factory: ParserFactory) -> Self {
        Self {
            factory,
            demarcator: None,
            started: false,
            found: Vec::new(),
        }
    }

    /// A new run starts: its first bytes choose a new parser.
    pub fn restart(&mut self) {
        self.demarcator = None;
        self.started = false;
    }

    /// Parses the next chunk of the run of hub `hub` (the name is for the test fault hook; the
    /// log line takes the feed's or stream's name from its span). Never panics.
    #[cfg_attr(not(debug_assertions), expect(unused_variables))]
    pub fn push(&mut self, hub: &str, data: &[u8]) -> Parsed<'_> {
        let first = !self.started;
        self.started = true;
        self.found.clear();
        if first {
            // The factory reads the first bytes to choose the parser: parser code too.
            let factory = &self.factory;
            self.demarcator = crate::panics::catch(|| factory(data))
                .unwrap_or_else(|caught| log(caught, "choosing"));
        }
        let Some(demarcator) = self.demarcator.as_mut() else {
            return Parsed {
                first,
                view: None,
                marks: &[],
            };
        };
        let found = &mut self.found;
        let parsed = crate::panics::catch(|| {
            #[cfg(debug_assertions)]
            super::fault::before_parse(hub);
            demarcator.push(data, found);
            ParserView {
                container: demarcator.container(),
                audio_only: demarcator.audio_only(),
                header: demarcator.header_view(),
            }
        });
        let view = match parsed {
            Ok(view) => Some(view),
            Err(caught) => {
                // The parser's state is suspect: drop it, and whatever it found in this chunk.
                self.demarcator = log(caught, "parsing");
                self.found.clear();
                None
            }
        };
        Parsed {
            first,
            view,
            marks: &self.found,
        }
    }
}

/// Logs a parser's panic (once: the panic hook left its backtrace to this line) in the span of
/// the feed or stream whose run it parsed; the run goes on without a parser.
fn log(caught: crate::panics::Caught, doing: &str) -> Option<Box<dyn Demarcator>> {
    tracing::error!(
        panic = %caught.message,
        at = caught.location.as_deref().unwrap_or("unknown"),
        doing,
        backtrace = ?caught.backtrace,
        "container parser panicked; relaying the rest of this run as opaque bytes"
    );
    None
}
