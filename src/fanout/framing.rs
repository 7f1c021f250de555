//! Framing state of a container-aware hub: the marks of the retained chunks, the current
//! header, and the group of pictures since the last keyframe (the GOP cache).
//!
//! Kept under the hub's lock and updated on every publish, so it must be cheap: the parser
//! allocates nothing per chunk, marks go into a ring that keeps its capacity, and the GOP
//! cache is a list of `Bytes` handles (slices of the published chunks, never copies) that is
//! cleared, not reallocated, at each keyframe.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::container::{Container, Demarcator, Mark, MarkKind};

/// The largest GOP kept for `keyframe=last` and screenshots: a 4 s GOP of a 32 Mbit/s
/// stream. A longer one is not cached (those clients wait for the next keyframe instead).
pub const GOP_BYTES_MAX: usize = 16 << 20;

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

/// Makes the parser for one run of a producer from the run's first bytes (the mimetype is
/// already known to it); `None` relays the run as opaque bytes.
pub type ParserFactory = Arc<dyn Fn(&[u8]) -> Option<Box<dyn Demarcator>> + Send + Sync>;

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
    factory: ParserFactory,
    /// The current run's parser; `None` before its first byte or when it is opaque.
    demarcator: Option<Box<dyn Demarcator>>,
    /// Whether the current run's first byte was seen (and so `demarcator` chosen).
    decided: bool,
    /// The hub offset of the current run's first byte: parser offsets are relative to it.
    base: u64,
    found: Vec<Mark>,
    /// Marks at or after the oldest retained chunk, oldest first.
    pub marks: VecDeque<Mark>,
    gop: Vec<Bytes>,
    gop_bytes: usize,
    gop_valid: bool,
    last_keyframe_at: Option<Instant>,
    keyframe_interval: Option<Duration>,
}

impl Framing {
    pub fn new(factory: ParserFactory, base: u64) -> Self {
        Self {
            factory,
            demarcator: None,
            decided: false,
            base,
            found: Vec::new(),
            marks: VecDeque::new(),
            gop: Vec::new(),
            gop_bytes: 0,
            gop_valid: false,
            last_keyframe_at: None,
            keyframe_interval: None,
        }
    }

    /// Whether the current run's container is known (parsed or opaque).
    pub fn decided(&self) -> bool {
        self.decided
    }

    /// Whether the current run is parsed (a client may join at marks).
    pub fn active(&self) -> bool {
        self.demarcator.is_some()
    }

    pub fn header(&self) -> Option<&Bytes> {
        self.demarcator.as_ref()?.header()
    }

    pub fn audio_only(&self) -> bool {
        self.demarcator.as_ref().is_some_and(|d| d.audio_only())
    }

    /// Whether `mark` is where a client waiting for `keyframe_only` may start.
    pub fn accepts(&self, mark: &Mark, keyframe_only: bool) -> bool {
        !keyframe_only || mark.kind == MarkKind::Keyframe || self.audio_only()
    }

    pub fn info(&self) -> FramingInfo {
        FramingInfo {
            container: self
                .demarcator
                .as_ref()
                .map_or(Container::Opaque, |d| d.container()),
            header_bytes: self.header().map_or(0, Bytes::len),
            keyframe_interval: self.keyframe_interval,
            audio_only: self.audio_only(),
        }
    }

    /// The cached group of pictures (from the last keyframe up to the newest byte).
    pub fn gop(&self) -> Option<&[Bytes]> {
        (self.gop_valid && !self.gop.is_empty()).then_some(self.gop.as_slice())
    }

    /// Parses the newest chunk (`pieces` already ends with it) and updates marks and GOP.
    pub fn on_publish(&mut self, slots: &VecDeque<Slot>, now: Instant) {
        let newest = slots.back().expect("the new chunk is retained");
        if !self.decided {
            self.decided = true;
            self.demarcator = (self.factory)(&newest.data);
        }
        let Some(demarcator) = self.demarcator.as_mut() else {
            return;
        };
        self.found.clear();
        demarcator.push(&newest.data, &mut self.found);
        let mut restarted_at = None;
        for index in 0..self.found.len() {
            let mut mark = self.found[index];
            mark.offset += self.base;
            self.marks.push_back(mark);
            if mark.kind == MarkKind::Keyframe && !self.audio_only() {
                restarted_at = Some(mark.offset);
                if let Some(last) = self.last_keyframe_at.replace(now) {
                    self.keyframe_interval = Some(now - last);
                }
            }
        }
        match restarted_at {
            Some(offset) => self.restart_gop(slots, offset),
            None if self.gop_valid => self.extend_gop(newest.data.clone()),
            None => {}
        }
    }

    fn restart_gop(&mut self, slots: &VecDeque<Slot>, offset: u64) {
        self.gop.clear();
        self.gop_bytes = 0;
        self.gop_valid = true;
        let first = slots.partition_point(|slot| slot.offset + slot.data.len() as u64 <= offset);
        if first == slots.len() {
            return; // The keyframe starts with the next byte.
        }
        if slots[first].offset > offset {
            self.gop_valid = false; // Its start was already evicted.
            return;
        }
        for slot in slots.range(first..) {
            let skip = offset.saturating_sub(slot.offset) as usize;
            self.extend_gop(slot.data.slice(skip..));
        }
    }

    fn extend_gop(&mut self, data: Bytes) {
        self.gop_bytes += data.len();
        if self.gop_bytes > GOP_BYTES_MAX {
            self.gop_valid = false;
            self.gop.clear();
            return;
        }
        self.gop.push(data);
    }

    /// Forgets marks before `offset` (their chunks were evicted).
    pub fn evict_before(&mut self, offset: u64) {
        while self.marks.front().is_some_and(|mark| mark.offset < offset) {
            self.marks.pop_front();
        }
    }

    /// A new run starts at hub offset `base`: its bytes begin a new container (a new header),
    /// and nothing cached from the previous run may be served.
    pub fn restart(&mut self, base: u64) {
        *self = Self::new(Arc::clone(&self.factory), base);
    }
}
