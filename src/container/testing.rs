//! Test support shared by the container parsers and the hub: deterministic random pieces and
//! garbage, so every parser is fed the same hostile inputs (random bytes, truncations,
//! corruptions, random piece sizes) without a fuzzing dependency; and a toy container whose
//! marks the hub's join tests spell out in letters.

use super::{Demarcator, Mark};

/// A small deterministic generator (xorshift64*): reproducible failures, no dependency.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next pseudo-random number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Pushes `data` into `parser` in random pieces of 1..=`max_piece` bytes and returns every
/// mark, checking that marks only move forward and never point past the end of the bytes
/// pushed (a mark exactly at the end announces a unit whose first byte is yet to come).
pub fn push_in_pieces(
    parser: &mut dyn Demarcator,
    data: &[u8],
    rng: &mut Rng,
    max_piece: usize,
) -> Vec<Mark> {
    let mut all: Vec<Mark> = Vec::new();
    let mut marks: Vec<Mark> = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let piece = (1 + rng.below(max_piece)).min(data.len() - at);
        marks.clear();
        parser.push(&data[at..at + piece], &mut marks);
        for mark in &marks {
            assert!(
                mark.offset <= (at + piece) as u64,
                "mark past the bytes pushed"
            );
            if let Some(last) = all.last() {
                assert!(last.offset <= mark.offset, "marks out of order");
            }
        }
        all.extend_from_slice(&marks);
        at += piece;
    }
    all
}

/// `data` with `count` random bytes overwritten.
pub fn corrupt(data: &[u8], rng: &mut Rng, count: usize) -> Vec<u8> {
    let mut out = data.to_vec();
    for _ in 0..count {
        if out.is_empty() {
            break;
        }
        let at = rng.below(out.len());
        out[at] = rng.next() as u8;
    }
    out
}

/// A toy container for the hub's tests: each `K` starts a keyframe, each `B` another unit;
/// it claims to be `container` (so joins resolve as for that container) and has `header`.
pub struct Toy {
    at: u64,
    container: super::Container,
    header: Option<bytes::Bytes>,
}

impl Demarcator for Toy {
    fn container(&self) -> super::Container {
        self.container
    }
    fn push(&mut self, data: &[u8], marks: &mut Vec<Mark>) {
        for (index, byte) in data.iter().enumerate() {
            let kind = match byte {
                b'K' => super::MarkKind::Keyframe,
                b'B' => super::MarkKind::Boundary,
                _ => continue,
            };
            marks.push(Mark {
                offset: self.at + index as u64,
                kind,
            });
        }
        self.at += data.len() as u64;
    }
    fn header(&self) -> Option<&bytes::Bytes> {
        self.header.as_ref()
    }
    fn audio_only(&self) -> bool {
        false
    }
}

/// Makes a [`Toy`] parser for each run.
pub fn toy_factory(
    container: super::Container,
    header: Option<&'static [u8]>,
) -> super::select::ParserFactory {
    std::sync::Arc::new(move |_: &[u8]| {
        Some(Box::new(Toy {
            at: 0,
            container,
            header: header.map(bytes::Bytes::from_static),
        }) as Box<dyn Demarcator>)
    })
}

/// Makes a [`Toy`] parser for each run that panics at each `!` it is pushed (a parser bug,
/// for the hub's tests of what such a bug may break: nothing but that run's framing).
pub fn panicking_toy_factory(container: super::Container) -> super::select::ParserFactory {
    let toy = toy_factory(container, Some(b"H"));
    std::sync::Arc::new(move |first: &[u8]| {
        Some(Box::new(Panicking(toy(first)?)) as Box<dyn Demarcator>)
    })
}

/// A parser that panics at a `!` and is otherwise the one it wraps.
struct Panicking(Box<dyn Demarcator>);

impl Demarcator for Panicking {
    fn container(&self) -> super::Container {
        self.0.container()
    }
    fn push(&mut self, data: &[u8], marks: &mut Vec<Mark>) {
        assert!(!data.contains(&b'!'), "a toy parser bug");
        self.0.push(data, marks);
    }
    fn header(&self) -> Option<&bytes::Bytes> {
        self.0.header()
    }
    fn audio_only(&self) -> bool {
        self.0.audio_only()
    }
}
