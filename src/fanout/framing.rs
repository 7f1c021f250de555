//! Framing state of a container-aware hub: the marks of the retained chunks, the current
//! header, and the group of pictures since the last keyframe (the GOP cache).
//!
//! Kept under the hub's lock and updated on every publish, so it must be cheap and must not
//! panic: the parse itself happens before the lock is taken (see [`super::parse`]), and only
//! its results land here. Marks go into a ring that keeps its capacity, and the GOP cache is a
//! list of `Bytes` handles (slices of the published chunks, never copies) that is cleared, not
//! reallocated, at each keyframe.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::hub::JOIN_WAIT_MAX;
use super::parse::{Parsed, ParserView};
pub use crate::container::select::ParserFactory;
use crate::container::{Container, Mark, MarkKind};

/// The largest GOP kept for `keyframe=last` and screenshots: a 4 s GOP of a 32 Mbit/s
/// stream. A longer one is not cached (those clients wait for the next keyframe instead).
pub const GOP_BYTES_MAX: usize = 16 << 20;

/// The shortest a join waits for a place to start, from the run's first byte when the run has
/// shown no header and no mark at all, else from the last mark of the kind it waits for. Every
/// container voyandz reads shows its header or first unit in its first reads, so a run whose
/// bytes show neither for this long has none to wait for (TS of null or private-PID packets);
/// and scheduling jitter must not turn a mark that is due into a give-up.
pub const MARK_WAIT_MIN: Duration = Duration::from_millis(300);

/// How many of the run's own intervals between marks (keyframes, for a keyframe join) a join
/// waits past the last one before it decides none is coming and starts live: room for a late
/// or irregular keyframe, yet a stream that stopped having them holds nobody back for long.
pub const MARK_INTERVALS_WAIT: u32 = 3;

/// How many recent intervals between marks a run's pace remembers: enough that one short
/// interval (a scene-cut keyframe right after a regular one, a burst after a network stall)
/// does not pass for the stream's pace and end a join's wait before the next regular mark.
const PACE_INTERVALS: usize = 4;

/// When marks of one kind came: the last one and the recent intervals between them.
#[derive(Debug, Default)]
struct Pace {
    last: Option<Instant>,
    recent: [Duration; PACE_INTERVALS],
    noted: usize,
}

impl Pace {
    /// Records a mark seen at `now`. Marks of one chunk share its time: only the first of
    /// them counts, so an interval is never zero.
    fn note(&mut self, now: Instant) {
        if let Some(before) = self.last.replace(now)
            && now > before
        {
            self.recent[self.noted % PACE_INTERVALS] = now - before;
            self.noted += 1;
        }
    }

    /// The newest interval (what the status shows).
    fn newest(&self) -> Option<Duration> {
        let index = self.noted.checked_sub(1)?;
        Some(self.recent[index % PACE_INTERVALS])
    }

    /// The longest recent interval: how long the next mark may take.
    fn longest(&self) -> Option<Duration> {
        (self.noted > 0).then(|| self.recent.iter().copied().max().unwrap_or_default())
    }
}

/// What is known about a stream's container, for the status page and D-Bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingInfo {
    /// The container being parsed.
    pub container: Container,
    /// Size of the current header in bytes (0 when none is needed or known yet).
    pub header_bytes: usize,
    /// Time between the last two keyframes.
    pub keyframe_interval: Option<Duration>,
    /// Whether the stream has no video.
    pub audio_only: bool,
}

/// A group of pictures: slices of published chunks from one keyframe on.
#[derive(Default)]
struct Gop {
    chunks: Vec<Bytes>,
    /// Hub offset of its keyframe.
    start: u64,
    /// Hub offset just after its last byte.
    end: u64,
    bytes: usize,
    /// False when its start was lost or it grew beyond [`GOP_BYTES_MAX`].
    valid: bool,
    /// Hub offset of its newest unit boundary: everything before it is whole.
    last_mark: u64,
}

impl Gop {
    /// Empties it (keeping its capacity) to start again at hub offset `start`.
    fn clear_at(&mut self, start: u64) {
        self.chunks.clear();
        self.start = start;
        self.end = start;
        self.bytes = 0;
        self.valid = true;
        self.last_mark = start;
    }

    /// Appends what `slots` hold between its end and hub offset `until` (slices, no copy).
    fn fill(&mut self, slots: &VecDeque<Slot>, until: u64) {
        if !self.valid {
            return;
        }
        let first = slots.partition_point(|slot| slot.offset + slot.data.len() as u64 <= self.end);
        for slot in slots.range(first..) {
            let slot_end = slot.offset + slot.data.len() as u64;
            let (from, to) = (self.end.max(slot.offset), until.min(slot_end));
            if from >= to {
                break;
            }
            let piece = slot
                .data
                .slice((from - slot.offset) as usize..(to - slot.offset) as usize);
            self.bytes += piece.len();
            if self.bytes > GOP_BYTES_MAX {
                self.valid = false;
                self.chunks.clear();
                return;
            }
            self.chunks.push(piece);
            self.end = to;
        }
    }

    /// Its bytes from the keyframe up to its newest boundary, when that holds a whole unit.
    fn whole_units(&self) -> Option<Vec<Bytes>> {
        if !self.valid || self.last_mark <= self.start {
            return None;
        }
        let mut left = (self.last_mark - self.start) as usize;
        let mut units = Vec::new();
        for chunk in &self.chunks {
            if left == 0 {
                break;
            }
            let take = left.min(chunk.len());
            units.push(chunk.slice(..take));
            left -= take;
        }
        Some(units)
    }
}

/// One published chunk as the hub retains it.
pub(super) struct Slot {
    /// The bytes, shared with every consumer.
    pub data: Bytes,
    /// When it was published (for the age bound).
    pub at: Instant,
    /// Hub offset of its first byte (bytes published before it).
    pub offset: u64,
}

pub(super) struct Framing {
    /// What the current run's parser showed after its newest chunk; `None` before the run's
    /// first byte or when the run is opaque (no parser for it, or its parser panicked).
    view: Option<ParserView>,
    /// When the current run's first byte was seen (and so its parser chosen).
    first_byte_at: Option<Instant>,
    /// The hub offset of the current run's first byte: parser offsets are relative to it.
    base: u64,
    /// Marks at or after the oldest retained chunk, oldest first.
    pub marks: VecDeque<Mark>,
    /// The group of pictures being received.
    gop: Gop,
    /// The one before it, complete: the newest whole pictures while `gop` has only a start.
    previous: Gop,
    /// When keyframes came (what a keyframe join waits for).
    keyframe_pace: Pace,
    /// When marks of any kind came (what a `?header` join or an audio join waits for).
    mark_pace: Pace,
}

impl Framing {
    pub fn new(base: u64) -> Self {
        Self {
            view: None,
            first_byte_at: None,
            base,
            marks: VecDeque::new(),
            gop: Gop::default(),
            previous: Gop::default(),
            keyframe_pace: Pace::default(),
            mark_pace: Pace::default(),
        }
    }

    /// Whether the current run's container is known (parsed or opaque).
    pub fn decided(&self) -> bool {
        self.first_byte_at.is_some()
    }

    /// The hub offset of the current run's first byte.
    pub fn run_start(&self) -> u64 {
        self.base
    }

    /// The current run's container (opaque until its first byte).
    pub fn container(&self) -> Container {
        self.view
            .as_ref()
            .map_or(Container::Opaque, |view| view.container)
    }

    /// Whether the current run is parsed (a client may join at marks).
    pub fn active(&self) -> bool {
        self.view.is_some()
    }

    pub fn header(&self) -> Option<&Bytes> {
        self.view.as_ref()?.header.header.as_ref()
    }

    /// The header for a client whose bytes after it are `next` (from its start point up to
    /// the newest byte): some containers' headers must agree with what follows (TS counters).
    pub fn header_before<'a>(&self, mut next: impl Iterator<Item = &'a [u8]>) -> Option<Bytes> {
        self.view.as_ref()?.header.before(&mut next)
    }

    /// The header for a client that starts at hub offset `start` of the retained `slots`.
    pub fn header_at(&self, slots: &VecDeque<Slot>, start: u64) -> Option<Bytes> {
        // Bytes of an earlier run are none of this run's parser's business.
        let start = start.max(self.base);
        let first = slots.partition_point(|slot| slot.offset + slot.data.len() as u64 <= start);
        self.header_before(slots.range(first..).map(|slot| {
            let skip = start.saturating_sub(slot.offset) as usize;
            &slot.data[skip.min(slot.data.len())..]
        }))
    }

    pub fn audio_only(&self) -> bool {
        self.view.as_ref().is_some_and(|view| view.audio_only)
    }

    /// Whether `mark` is where a client waiting for `keyframe_only` may start.
    pub fn accepts(&self, mark: &Mark, keyframe_only: bool) -> bool {
        !keyframe_only
            || mark.kind == MarkKind::Keyframe
            || self.audio_only()
            || !self.container().marks_keyframes()
    }

    /// Hub offset of the newest kept keyframe (audio: frame), where a client that fell
    /// behind may start again.
    pub fn newest_start(&self) -> Option<u64> {
        self.marks
            .iter()
            .rev()
            .find(|mark| self.accepts(mark, true))
            .map(|mark| mark.offset)
    }

    /// The longest of the recent times between two keyframes: by when the next one is due.
    pub fn keyframe_interval_max(&self) -> Option<Duration> {
        self.keyframe_pace.longest()
    }

    pub fn info(&self) -> FramingInfo {
        FramingInfo {
            container: self.container(),
            header_bytes: self.header().map_or(0, Bytes::len),
            keyframe_interval: self.keyframe_pace.newest(),
            audio_only: self.audio_only(),
        }
    }

    /// The cached group of pictures (from the last keyframe up to the newest byte).
    pub fn gop(&self) -> Option<&[Bytes]> {
        (self.gop.valid && !self.gop.chunks.is_empty()).then_some(self.gop.chunks.as_slice())
    }

    /// The newest whole units from a keyframe on (for a screenshot): the current GOP up to
    /// its newest boundary (`true`), or the previous GOP while the current one has only begun
    /// (`false`).
    pub fn whole_units(&self) -> Option<(Vec<Bytes>, bool)> {
        match self.gop.whole_units() {
            Some(units) => Some((units, true)),
            None => Some((self.previous.whole_units()?, false)),
        }
    }

    /// Takes in what the parse of the newest chunk (`slots` already ends with it) showed:
    /// updates marks and GOP.
    pub fn on_publish(&mut self, slots: &VecDeque<Slot>, now: Instant, parsed: Parsed<'_>) {
        if parsed.first {
            self.first_byte_at = Some(now);
        }
        match parsed.view {
            Some(view) => self.view = Some(view),
            None => {
                if self.view.take().is_some() {
                    // Its parser panicked: nothing it found can be trusted any more.
                    self.marks.clear();
                    self.gop = Gop::default();
                    self.previous = Gop::default();
                }
                return;
            }
        }
        let audio_only = self.audio_only();
        for &found in parsed.marks {
            let mark = Mark {
                offset: found.offset + self.base,
                ..found
            };
            self.marks.push_back(mark);
            self.mark_pace.note(now);
            if mark.kind == MarkKind::Keyframe && !audio_only {
                self.restart_gop(slots, mark.offset);
                self.keyframe_pace.note(now);
            } else if mark.offset > self.gop.start {
                self.gop.last_mark = self.gop.last_mark.max(mark.offset);
            }
        }
        self.gop.fill(slots, u64::MAX);
    }

    fn restart_gop(&mut self, slots: &VecDeque<Slot>, offset: u64) {
        // The GOP that ends here is whole up to the new keyframe.
        self.gop.fill(slots, offset);
        self.gop.last_mark = offset;
        std::mem::swap(&mut self.gop, &mut self.previous);
        self.gop.clear_at(offset);
        if slots.front().is_some_and(|slot| slot.offset > offset) {
            self.gop.valid = false; // Its start was already evicted.
        }
    }

    /// Forgets marks before `offset` (their chunks were evicted).
    pub fn evict_before(&mut self, offset: u64) {
        while self.marks.front().is_some_and(|mark| mark.offset < offset) {
            self.marks.pop_front();
        }
    }

    /// When a join waiting for a mark (a keyframe when `keyframe_only`) should stop waiting
    /// and start live, as far as the current run has shown: [`MARK_INTERVALS_WAIT`] of its
    /// longest recent intervals between such marks after the last one; [`JOIN_WAIT_MAX`]
    /// after the last one (or after the run's first byte) while no interval is known;
    /// [`MARK_WAIT_MIN`] after the run's first byte when it has shown no header and no mark at
    /// all. `None` before the run's first byte: nothing is known yet.
    pub fn give_up_at(&self, keyframe_only: bool) -> Option<Instant> {
        let started = self.first_byte_at?;
        let pace = if keyframe_only && !self.audio_only() {
            &self.keyframe_pace
        } else {
            &self.mark_pace
        };
        let (last, interval) = (pace.last, pace.longest());
        let silent = self.header().is_none() && self.mark_pace.last.is_none();
        Some(match (last, interval) {
            (Some(last), Some(interval)) => {
                last + (interval * MARK_INTERVALS_WAIT).max(MARK_WAIT_MIN)
            }
            (Some(last), None) => last + JOIN_WAIT_MAX,
            (None, _) if silent => started + MARK_WAIT_MIN,
            (None, _) => started + JOIN_WAIT_MAX,
        })
    }

    /// A new run starts at hub offset `base`: its bytes begin a new container (a new header),
    /// and nothing cached from the previous run may be served.
    pub fn restart(&mut self, base: u64) {
        *self = Self::new(base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::testing::toy_factory;
    use crate::fanout::parse::Parse;

    /// A framing, its run's parser and the retained chunks, as a hub keeps them.
    fn toy(header: Option<&'static [u8]>) -> (Parse, Framing, VecDeque<Slot>) {
        let parse = Parse::new(toy_factory(Container::MpegTs, header));
        (parse, Framing::new(0), VecDeque::new())
    }

    /// Publishes `data` at `at` as the hub does: parsed, retained, then marked.
    fn publish(
        (parse, framing, slots): &mut (Parse, Framing, VecDeque<Slot>),
        data: &'static [u8],
        at: Instant,
    ) {
        let offset = slots
            .back()
            .map_or(0, |slot| slot.offset + slot.data.len() as u64);
        slots.push_back(Slot {
            data: Bytes::from_static(data),
            at,
            offset,
        });
        framing.on_publish(slots, at, parse.push("toy", data));
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn a_run_that_shows_no_header_and_no_mark_holds_joins_only_briefly() {
        let mut toy = toy(None);
        let t0 = Instant::now();
        assert_eq!(
            toy.1.give_up_at(false),
            None,
            "nothing known before the first byte"
        );
        publish(&mut toy, b"xx", t0);
        publish(&mut toy, b"yy", t0 + ms(1000));
        assert_eq!(toy.1.give_up_at(false), Some(t0 + MARK_WAIT_MIN));
        assert_eq!(toy.1.give_up_at(true), Some(t0 + MARK_WAIT_MIN));
    }

    #[test]
    fn joins_wait_as_long_as_the_runs_own_pace_says() {
        let mut toy = toy(Some(b"H"));
        let t0 = Instant::now();
        publish(&mut toy, b"x", t0);
        // A header but no unit yet: the first may take a while (an encoder's look-ahead).
        assert_eq!(toy.1.give_up_at(false), Some(t0 + JOIN_WAIT_MAX));
        publish(&mut toy, b"K", t0 + ms(1000));
        assert_eq!(toy.1.give_up_at(true), Some(t0 + ms(1000) + JOIN_WAIT_MAX));
        publish(&mut toy, b"B", t0 + ms(1500));
        publish(&mut toy, b"K", t0 + ms(3000));
        // Keyframes 2 s apart: three of them.
        assert_eq!(toy.1.give_up_at(true), Some(t0 + ms(3000 + 6000)));
        assert_eq!(toy.1.give_up_at(false), Some(t0 + ms(3000 + 4500)));
        // A scene-cut keyframe 40 ms after a regular one is not the stream's pace.
        publish(&mut toy, b"K", t0 + ms(3040));
        assert_eq!(toy.1.give_up_at(true), Some(t0 + ms(3040 + 6000)));

        // Boundaries 50 ms apart: never less than the floor.
        let mut toy = self::toy(Some(b"H"));
        publish(&mut toy, b"B", t0);
        publish(&mut toy, b"B", t0 + ms(50));
        assert_eq!(toy.1.give_up_at(false), Some(t0 + ms(50) + MARK_WAIT_MIN));
    }
}
