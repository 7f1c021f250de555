//! The load generator's clients: HTTP/1.x GET over real TCP, de-chunking, packet scanning and
//! latency recording, all on one single-threaded tokio runtime (one process, one thread, so
//! its own cost is one core at most and can be reported honestly).
//!
//! Each client records arrival (CLOCK_MONOTONIC right after the read returns) minus the
//! packet's write stamp, only once its own first 2 s are over and while the row's window is
//! open. Loss is a gap in the sequence numbers seen inside the window.

mod dechunk;
pub mod keepalive;
mod lag;
pub mod oneshot;
pub mod rated;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpSocket, TcpStream};
use voyandz_bench::clock::now_ns;
use voyandz_bench::hist::Histogram;
use voyandz_bench::packet::{Scanner, Stamp};

pub use dechunk::Dechunker;
pub use lag::measure_lag;

/// Longest response header we accept.
const MAX_HEADER: usize = 16 * 1024;
/// Time allowed from connect to the end of the response headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer shared by all clients (one thread: only one read runs at a time). Each client
/// reads once each time its socket turns readable, so while the load generator keeps up, one
/// `read(2)` takes one write of the server's, whatever its size up to this buffer: the reads a
/// client makes are the deliveries the server made, and cost the generator what they would
/// cost a receiver. The size is curl's default receive buffer (16 KiB), a modest one as a real
/// player's: a large one (64 KiB) lets a lagging generator take hundreds of small
/// writes in one call and so hides the very write pattern the fan-out rows compare, while one
/// smaller than a server's writes (Icecast sends 1400-byte blocks) would count one delivery
/// as several. The socket's receive buffer is left to the kernel's autotuning, as a
/// receiver's is: the clients read as soon as data is there, so it only matters when they
/// fall behind.
const READ_BUF: usize = 16 * 1024;

thread_local! {
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUF]);
}

/// What every client of a row adds to.
#[derive(Default)]
pub struct Stats {
    /// Arrival minus write stamp, ns.
    pub latency: Histogram,
    /// Write stamp minus due time, ns: how late the feed wrote (pipe backpressure, scheduling).
    pub feed_lag: Histogram,
    /// Packets counted.
    pub packets: u64,
    /// Sequence numbers skipped.
    pub lost: u64,
    /// Packets seen twice or out of order.
    pub dups: u64,
    /// Alignment lost and found again.
    pub resyncs: u64,
    /// Clients whose connection ended while the window was open.
    pub ended: u64,
    /// Why those ended (first few).
    pub end_reasons: Vec<String>,
    /// Body bytes received in the window.
    pub bytes: u64,
    /// `read(2)` calls that returned body bytes in the window: with clients that read what
    /// arrives as it arrives, how many writes the server made to them, as long as the load
    /// generator keeps up (a client that reads late takes several in one call).
    pub reads: u64,
    /// The longest pause any one client saw in the window.
    pub pause: Pause,
    /// Every pause longer than the board's `pause_limit_ns` (the first [`MAX_LONG_PAUSES`]),
    /// for a row that wants to know when they happened.
    pub long_pauses: Vec<Pause>,
}

/// How many long pauses a window keeps.
pub const MAX_LONG_PAUSES: usize = 10_000;

/// A pause in delivery at one client: the interval between two consecutive packets' arrivals
/// (packets that came in one read arrived together, 0 apart).
#[derive(Debug, Clone, Copy, Default)]
pub struct Pause {
    /// Arrival of the later packet minus arrival of the earlier one, ns.
    pub len_ns: u64,
    /// When the later one arrived, CLOCK_MONOTONIC ns.
    pub end_ns: u64,
    /// The same two packets' write stamps apart, ns: how much of the pause the feed itself
    /// made (its packet interval, more if it wrote late).
    pub feed_ns: u64,
}

/// Shared state of one row's clients.
pub struct Board {
    /// Packet statistics of the current window.
    pub stats: RefCell<Stats>,
    /// Whether the window is open.
    pub recording: Cell<bool>,
    /// When it opened, CLOCK_MONOTONIC ns.
    pub opened_ns: Cell<u64>,
    /// Per-client warm-up: samples from a client's first `warmup_ns` are not counted.
    pub warmup_ns: u64,
    /// Clients that got their response headers.
    pub connected: Cell<u64>,
    /// Clients that failed before their body started (connect error, non-200, timeout).
    pub failed: Cell<u64>,
    /// Why (first few).
    pub fail_reasons: RefCell<Vec<String>>,
    /// Results of slow clients, by client index.
    pub slow: RefCell<Vec<SlowResult>>,
    /// Load-generator lag (see [`measure_lag`]) in the window, ns.
    pub lag: RefCell<Histogram>,
    /// When the window's worst lag ended (the late tick was handled), CLOCK_MONOTONIC ns.
    pub lag_worst_at: Cell<u64>,
    /// Pauses longer than this are listed in [`Stats::long_pauses`] (`u64::MAX`: none).
    pub pause_limit_ns: Cell<u64>,
}

impl Board {
    /// A board whose clients ignore their first `warmup`.
    pub fn new(warmup: Duration) -> Rc<Board> {
        Rc::new(Board {
            stats: RefCell::default(),
            recording: Cell::new(false),
            opened_ns: Cell::new(0),
            warmup_ns: warmup.as_nanos() as u64,
            connected: Cell::new(0),
            failed: Cell::new(0),
            fail_reasons: RefCell::default(),
            slow: RefCell::default(),
            lag: RefCell::default(),
            lag_worst_at: Cell::new(0),
            pause_limit_ns: Cell::new(u64::MAX),
        })
    }

    /// Opens a new window with fresh statistics.
    pub fn open_window(&self) {
        *self.stats.borrow_mut() = Stats::default();
        *self.lag.borrow_mut() = Histogram::default();
        self.lag_worst_at.set(0);
        self.opened_ns.set(now_ns());
        self.recording.set(true);
    }

    /// Closes the window and returns its statistics.
    pub fn close_window(&self) -> Stats {
        self.recording.set(false);
        std::mem::take(&mut *self.stats.borrow_mut())
    }

    fn fail(&self, why: String) {
        self.failed.set(self.failed.get() + 1);
        let mut r = self.fail_reasons.borrow_mut();
        if r.len() < 5 {
            r.push(why);
        }
    }
}

/// Per-client packet accounting, fed by whatever carries the body (socket or pipe).
pub struct Tracker {
    board: Rc<Board>,
    start_ns: u64,
    scanner: Scanner,
    next_seq: Option<u64>,
    /// Arrival time and write stamp of the last packet.
    last: Option<(u64, u64)>,
}

impl Tracker {
    /// A tracker whose warm-up starts now.
    pub fn new(board: Rc<Board>) -> Tracker {
        Tracker {
            board,
            start_ns: now_ns(),
            scanner: Scanner::default(),
            next_seq: None,
            last: None,
        }
    }

    /// Body bytes that arrived at `now` (CLOCK_MONOTONIC ns).
    pub fn body(&mut self, data: &[u8], now: u64) {
        let counting = self.counting(now);
        let resyncs_before = self.scanner.resyncs;
        let mut st = self.board.stats.borrow_mut();
        let next_seq = &mut self.next_seq;
        let last = &mut self.last;
        let pause_limit = self.board.pause_limit_ns.get();
        let opened = self.board.opened_ns.get();
        self.scanner.feed(data, |p: Stamp| {
            if let Some(n) = *next_seq {
                if p.seq > n && counting {
                    st.lost += p.seq - n;
                } else if p.seq < n && counting {
                    st.dups += 1;
                }
            }
            *next_seq = Some(next_seq.map_or(p.seq + 1, |n| n.max(p.seq + 1)));
            if counting {
                st.packets += 1;
                st.latency.record(now.saturating_sub(p.written_ns));
                st.feed_lag.record(p.written_ns.saturating_sub(p.due_ns));
                // A pause counts when both its packets arrived in the window: the bench's own
                // work just before opening it (its /proc snapshots) is no pause of the stream.
                if let Some((arrived, written)) = *last
                    && arrived >= opened
                {
                    let pause = Pause {
                        len_ns: now.saturating_sub(arrived),
                        end_ns: now,
                        feed_ns: p.written_ns.saturating_sub(written),
                    };
                    if pause.len_ns > st.pause.len_ns {
                        st.pause = pause;
                    }
                    if pause.len_ns > pause_limit && st.long_pauses.len() < MAX_LONG_PAUSES {
                        st.long_pauses.push(pause);
                    }
                }
            }
            *last = Some((now, p.written_ns));
        });
        if counting {
            st.bytes += data.len() as u64;
            st.resyncs += self.scanner.resyncs - resyncs_before;
        }
    }

    /// One `read(2)` returned data at `now`.
    pub fn read(&mut self, now: u64) {
        if self.counting(now) {
            self.board.stats.borrow_mut().reads += 1;
        }
    }

    fn counting(&self, now: u64) -> bool {
        self.board.recording.get() && now >= self.start_ns + self.board.warmup_ns
    }

    /// The body ended (EOF or error) at `now`.
    pub fn ended(&self, why: String, now: u64) {
        if self.counting(now) {
            let mut st = self.board.stats.borrow_mut();
            st.ended += 1;
            if st.end_reasons.len() < 5 {
                st.end_reasons.push(why);
            }
        }
    }
}

/// How a client reads.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// As fast as the data comes.
    Fast,
    /// At most `bytes_per_tick` every `tick`, with a small receive buffer.
    Slow {
        bytes_per_tick: usize,
        tick: Duration,
        rcvbuf: u32,
    },
}

/// What a client asks for.
#[derive(Debug, Clone)]
pub struct Request {
    /// Server address.
    pub addr: SocketAddr,
    /// URL path.
    pub path: String,
    /// Send HTTP/1.0 (close-delimited body) instead of HTTP/1.1 (chunked).
    pub http10: bool,
}

/// Body framing announced by the response.
enum Framing {
    Chunked(Dechunker),
    Length(u64),
    Close,
}

/// The response head and the first body bytes that came with it.
struct Head {
    framing: Framing,
    leftover: Vec<u8>,
}

async fn connect(req: &Request, rcvbuf: Option<u32>) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    if let Some(n) = rcvbuf {
        sock.set_recv_buffer_size(n)?;
    }
    let mut s = sock.connect(req.addr).await?;
    s.set_nodelay(true)?;
    let version = if req.http10 { "1.0" } else { "1.1" };
    s.write_all(
        format!(
            "GET {} HTTP/{version}\r\nHost: 127.0.0.1\r\nUser-Agent: voyandz-bench\r\n\r\n",
            req.path
        )
        .as_bytes(),
    )
    .await?;
    Ok(s)
}

async fn read_head(s: &TcpStream) -> Result<Head, String> {
    let mut head = Vec::new();
    loop {
        s.readable().await.map_err(|e| e.to_string())?;
        let n = BUF.with_borrow_mut(|buf| match s.try_read(buf) {
            Ok(n) => {
                head.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(usize::MAX),
            Err(e) => Err(e.to_string()),
        })?;
        if n == 0 {
            return Err(format!(
                "connection closed before the response head ({} bytes)",
                head.len()
            ));
        }
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&head[..end]).to_string();
            let leftover = head[end + 4..].to_vec();
            let mut lines = text.lines();
            let status = lines.next().unwrap_or("");
            let code = status.split(' ').nth(1).unwrap_or("");
            if code != "200" {
                return Err(format!("status {status:?}"));
            }
            let mut framing = Framing::Close;
            for l in lines {
                let (k, v) = l.split_once(':').unwrap_or((l, ""));
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
                if k == "transfer-encoding" && v.contains("chunked") {
                    framing = Framing::Chunked(Dechunker::default());
                } else if k == "content-length" && !matches!(framing, Framing::Chunked(_)) {
                    framing = Framing::Length(
                        v.parse().map_err(|_| format!("bad content-length {v:?}"))?,
                    );
                }
            }
            return Ok(Head { framing, leftover });
        }
        if head.len() > MAX_HEADER {
            return Err("response head too long".into());
        }
    }
}

/// Feeds raw body bytes through the framing to the tracker. Returns false at the body's end.
fn on_body(
    framing: &mut Framing,
    tracker: &mut Tracker,
    raw: &[u8],
    now: u64,
) -> Result<bool, String> {
    match framing {
        Framing::Close => tracker.body(raw, now),
        Framing::Length(left) => {
            let n = (*left).min(raw.len() as u64) as usize;
            tracker.body(&raw[..n], now);
            *left -= n as u64;
            return Ok(*left > 0);
        }
        Framing::Chunked(d) => {
            d.feed(raw, |b| tracker.body(b, now))?;
            return Ok(!d.done());
        }
    }
    Ok(true)
}

/// Outcome of a slow client.
#[derive(Debug, Clone, Default)]
pub struct SlowResult {
    /// Local port (the server logs it as the peer).
    pub port: u16,
    /// First body byte, CLOCK_MONOTONIC ns (when it started falling behind).
    pub first_body_ns: Option<u64>,
    /// When the kernel saw the server's FIN/RST (TCP_INFO state), ns.
    pub closed_ns: Option<u64>,
    /// When the read returned EOF or an error, ns.
    pub eof_ns: Option<u64>,
    /// Body bytes read.
    pub bytes: u64,
    /// Largest latency of a packet it read, ns.
    pub max_latency_ns: u64,
}

/// Runs one client until its connection ends; `permit` is released once the body starts
/// (it bounds how many clients are connecting at once).
pub async fn run(
    board: Rc<Board>,
    req: Request,
    pace: Pace,
    slot: usize,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let rcvbuf = match pace {
        Pace::Slow { rcvbuf, .. } => Some(rcvbuf),
        Pace::Fast => None,
    };
    let started = tokio::time::timeout(HEADER_TIMEOUT, async {
        let s = connect(&req, rcvbuf)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let head = read_head(&s).await?;
        Ok::<_, String>((s, head))
    })
    .await;
    let (s, head) = match started {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return board.fail(e),
        Err(_) => return board.fail(format!("no response head within {HEADER_TIMEOUT:?}")),
    };
    drop(permit);
    board.connected.set(board.connected.get() + 1);
    let Head {
        mut framing,
        leftover,
    } = head;
    let mut tracker = Tracker::new(board.clone());
    let mut more = on_body(&mut framing, &mut tracker, &leftover, now_ns()).unwrap_or(false);
    match pace {
        Pace::Fast => {
            while more {
                if let Err(e) = s.readable().await {
                    return tracker.ended(format!("read: {e}"), now_ns());
                }
                let r = BUF.with_borrow_mut(|buf| match s.try_read(buf) {
                    Ok(0) => Err("eof".to_string()),
                    Ok(n) => {
                        let now = now_ns();
                        tracker.read(now);
                        on_body(&mut framing, &mut tracker, &buf[..n], now)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(true),
                    Err(e) => Err(format!("read: {e}")),
                });
                match r {
                    Ok(m) => more = m,
                    Err(e) => return tracker.ended(e, now_ns()),
                }
            }
            tracker.ended("body ended".into(), now_ns());
        }
        Pace::Slow {
            bytes_per_tick,
            tick,
            ..
        } => {
            let mut res = SlowResult {
                port: s.local_addr().map(|a| a.port()).unwrap_or(0),
                ..Default::default()
            };
            if !leftover.is_empty() {
                res.first_body_ns = Some(now_ns());
            }
            let mut next = tokio::time::Instant::now();
            let fd = s.as_raw_fd();
            while more {
                next += tick;
                tokio::time::sleep_until(next).await;
                if res.closed_ns.is_none() && peer_closed(fd) {
                    res.closed_ns = Some(now_ns());
                }
                let r = BUF.with_borrow_mut(|buf| match s.try_read(&mut buf[..bytes_per_tick]) {
                    Ok(0) => Err("eof".to_string()),
                    Ok(n) => {
                        let now = now_ns();
                        res.first_body_ns.get_or_insert(now);
                        res.bytes += n as u64;
                        let mut scratch = Scanner::default();
                        scratch.feed(&buf[..n], |p| {
                            res.max_latency_ns =
                                res.max_latency_ns.max(now.saturating_sub(p.written_ns))
                        });
                        on_body(&mut framing, &mut tracker, &buf[..n], now)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(true),
                    Err(e) => Err(format!("read: {e}")),
                });
                match r {
                    Ok(m) => more = m,
                    Err(_) => break,
                }
                publish(&board, slot, &res);
            }
            res.eof_ns = Some(now_ns());
            res.closed_ns.get_or_insert(now_ns());
            publish(&board, slot, &res);
        }
    }
}

/// Makes a slow client's progress visible to the section while it still runs.
fn publish(board: &Board, slot: usize, res: &SlowResult) {
    let mut slow = board.slow.borrow_mut();
    if slow.len() <= slot {
        slow.resize(slot + 1, SlowResult::default());
    }
    slow[slot] = res.clone();
}

/// Whether the kernel has seen the peer's FIN or RST on `fd` (TCP_INFO state), even though
/// unread data may still sit in our receive buffer.
fn peer_closed(fd: i32) -> bool {
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len` bytes into it.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        if libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        ) != 0
        {
            return true;
        }
        // TCP_ESTABLISHED = 1; CLOSE_WAIT = 8 (FIN received), CLOSE = 7 (RST).
        info.tcpi_state != 1
    }
}
