//! Logging straight to systemd-journald: each event becomes one journal entry, sent over
//! journald's native protocol to `/run/systemd/journal/socket`, with a `PRIORITY` from its
//! level and the structured fields `FEED`, `STREAM`, `CLIENT` and `CHILD_PID`. It also tells
//! whether systemd connected our stderr to the journal (`JOURNAL_STREAM`). It does not choose
//! between the journal and stderr, nor filter by level: [`crate::logging`] does.
//!
//! The `MESSAGE` of an entry is the very line [`crate::logging`] writes to stderr, without its
//! newline: `YYYY-mm-dd hh:mm:ss.sss LEVEL message key=value ...`. The spec asks for that
//! timestamp at the start of every log line, and the `key=value` fields keep a plain
//! `journalctl` as readable as the stderr log; the journal's own fields carry the rest.
//!
//! Why not the tracing-journald crate, which speaks the same protocol: it sends the event's
//! `message` field alone as `MESSAGE`, with no hook to put anything in front of it, and it
//! names fields after the tracing fields (upper-cased, all with one optional prefix), so our
//! `peer` could become `PEER` or `F_PEER` but never `CLIENT`, nor `pid` `CHILD_PID`.
//! Re-emitting rewritten events into it would take a `'static` callsite per level and lose
//! each event's own `CODE_FILE`/`CODE_LINE`. The protocol is small
//! (<https://systemd.io/JOURNAL_NATIVE_PROTOCOL/>), so this layer writes it itself.

use std::fmt::{self, Write as _};
use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FormatFields, FormattedFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Where journald takes native-protocol datagrams (a fixed path, as in sd_journal_send).
pub const SOCKET_PATH: &str = "/run/systemd/journal/socket";
/// `SYSLOG_IDENTIFIER` of every entry (`journalctl -t voyandz`), whatever the binary is called.
const IDENTIFIER: &str = "voyandz";
/// The tracing fields voyandz logs with and the journal fields they become: a feed's or a
/// stream's name (from the `feed`/`stream` spans, or an event's own field), the client's
/// address and the pid of a child process. Other fields are only in `MESSAGE`.
const FIELDS: [(&str, &str); 4] = [
    ("feed", "FEED"),
    ("stream", "STREAM"),
    ("peer", "CLIENT"),
    ("pid", "CHILD_PID"),
];

/// A tracing layer sending every event to journald as one entry.
#[derive(Debug)]
pub struct Journal {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Journal {
    /// Opens a socket to journald, and checks that journald listens at [`SOCKET_PATH`] (by
    /// sending an empty datagram, which journald ignores).
    pub fn connect() -> io::Result<Journal> {
        Journal::connect_to(Path::new(SOCKET_PATH))
    }

    /// [`Journal::connect`] to a socket at `path`.
    fn connect_to(path: &Path) -> io::Result<Journal> {
        let socket = UnixDatagram::unbound()?;
        socket.send_to(&[], path)?;
        Ok(Journal {
            socket,
            path: path.to_path_buf(),
        })
    }

    /// Sends one entry. An entry larger than a datagram can hold (a long backtrace) goes as a
    /// sealed memfd, as the protocol says.
    fn send(&self, entry: &[u8]) -> io::Result<()> {
        match self.socket.send_to(entry, &self.path) {
            Err(error)
                if error.raw_os_error() == Some(rustix::io::Errno::MSGSIZE.raw_os_error()) =>
            {
                self.send_memfd(entry)
            }
            result => result.map(drop),
        }
    }

    fn send_memfd(&self, entry: &[u8]) -> io::Result<()> {
        use rustix::fs::{MemfdFlags, SealFlags};
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix};
        let memfd = rustix::fs::memfd_create(
            "voyandz-journal-entry",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = std::fs::File::from(memfd);
        file.write_all(entry)?;
        // journald maps only a memfd that can no longer change.
        let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL;
        rustix::fs::fcntl_add_seals(&file, seals)?;
        let fds = [file.as_fd()];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        control.push(SendAncillaryMessage::ScmRights(&fds));
        let address = SocketAddrUnix::new(&self.path)?;
        rustix::net::sendmsg_addr(
            &self.socket,
            &address,
            &[],
            &mut control,
            SendFlags::empty(),
        )?;
        Ok(())
    }
}

/// What this layer keeps for each span: its fields as the stderr log prints them, and the
/// journal fields among them.
struct SpanEntry {
    line: FormattedFields<DefaultFields>,
    fields: JournalFields,
}

impl<S> Layer<S> for Journal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut line = FormattedFields::new(String::new());
        // Writing into a String cannot fail.
        let _ = DefaultFields::new().format_fields(line.as_writer(), attrs);
        let mut fields = JournalFields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(SpanEntry { line, fields });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(entry) = extensions.get_mut::<SpanEntry>() {
            let _ = DefaultFields::new().add_fields(&mut entry.line, values);
            values.record(&mut entry.fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut message = String::new();
        let mut fields = JournalFields::default();
        // The same text as `logging::LineFormat`; writing into a String cannot fail.
        let _ = crate::logging::write_line_start(&mut message, event.metadata().level());
        let _ = DefaultFields::new().format_fields(Writer::new(&mut message), event);
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(entry) = extensions.get::<SpanEntry>() {
                    if !entry.line.is_empty() {
                        let _ = write!(message, " {}", entry.line);
                    }
                    fields.inherit(&entry.fields);
                }
            }
        }
        // The event's own fields win over its spans'.
        event.record(&mut fields);
        // Nowhere to report a failure: journald gone is the one place it would go.
        let _ = self.send(&entry(event.metadata(), &message, &fields));
    }
}

/// The journal fields an event or a span carries (at most one value each), by journal name.
#[derive(Debug, Default)]
struct JournalFields(Vec<(&'static str, String)>);

impl JournalFields {
    fn set(&mut self, name: &'static str, value: String) {
        match self.0.iter_mut().find(|(present, _)| *present == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    fn record(&mut self, field: &Field, value: impl FnOnce() -> String) {
        if let Some(name) = journal_name(field.name()) {
            self.set(name, value());
        }
    }

    /// Takes the values of `outer` (an enclosing span's) over any this one has.
    fn inherit(&mut self, outer: &JournalFields) {
        for (name, value) in &outer.0 {
            self.set(name, value.clone());
        }
    }
}

impl Visit for JournalFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, || value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%name` fields arrive here as Display wrappers: their Debug is the Display text.
        self.record(field, || format!("{value:?}"));
    }
}

/// The journal field a tracing field of voyandz becomes, if any.
fn journal_name(field: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, journal)| *journal)
}

/// syslog's priority for a level: what `journalctl -p` filters on and colors by.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// One entry in the native protocol.
fn entry(metadata: &Metadata<'_>, message: &str, fields: &JournalFields) -> Vec<u8> {
    let mut entry = Vec::with_capacity(message.len() + 256);
    put(
        &mut entry,
        "PRIORITY",
        priority(metadata.level()).to_string().as_bytes(),
    );
    put(&mut entry, "SYSLOG_IDENTIFIER", IDENTIFIER.as_bytes());
    put(&mut entry, "MESSAGE", message.as_bytes());
    for (name, value) in &fields.0 {
        put(&mut entry, name, value.as_bytes());
    }
    if let Some(file) = metadata.file() {
        put(&mut entry, "CODE_FILE", file.as_bytes());
    }
    if let Some(line) = metadata.line() {
        put(&mut entry, "CODE_LINE", line.to_string().as_bytes());
    }
    entry
}

/// Appends `NAME=value\n`, or, for a value with a newline in it, `NAME\n`, its length as a
/// little-endian u64, the value and `\n` (the protocol's two forms).
fn put(entry: &mut Vec<u8>, name: &str, value: &[u8]) {
    entry.extend_from_slice(name.as_bytes());
    if value.contains(&b'\n') {
        entry.push(b'\n');
        entry.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        entry.push(b'=');
    }
    entry.extend_from_slice(value);
    entry.push(b'\n');
}

/// Whether systemd connected our stderr to the journal. systemd sets `JOURNAL_STREAM` to
/// `<device>:<inode>` (decimal) of the stream socket it gives a service as stdout/stderr; a
/// program started from such a service inherits the variable with another stderr, which is
/// why it is compared with fd 2 rather than trusted.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(io::stderr()) else {
        return false;
    };
    value
        .to_str()
        .is_some_and(|value| names_file(value, stat.st_dev, stat.st_ino))
}

/// Whether a `JOURNAL_STREAM` value names the file with `device` and `inode`.
fn names_file(value: &str, device: u64, inode: u64) -> bool {
    let Some((dev, ino)) = value.trim().split_once(':') else {
        return false;
    };
    dev.parse() == Ok(device) && ino.parse() == Ok(inode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt;
    use std::time::Duration;
    use tracing_subscriber::layer::SubscriberExt;

    /// journald's side: a datagram socket bound in a temporary directory.
    struct Receiver {
        _dir: tempfile::TempDir,
        socket: UnixDatagram,
        path: PathBuf,
    }

    impl Receiver {
        fn bind() -> Receiver {
            let dir = tempfile::tempdir().expect("temporary directory");
            let path = dir.path().join("socket");
            let socket = UnixDatagram::bind(&path).expect("bind the journal socket");
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("read timeout");
            Receiver {
                _dir: dir,
                socket,
                path,
            }
        }

        /// The next non-empty datagram, or the contents of the memfd it passed.
        fn next(&self) -> Vec<u8> {
            self.next_with_origin().0
        }

        /// [`Receiver::next`], and whether it came as a memfd.
        fn next_with_origin(&self) -> (Vec<u8>, bool) {
            use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
            loop {
                let mut data = vec![0; 1 << 16];
                let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
                let mut control = RecvAncillaryBuffer::new(&mut space);
                let received = rustix::net::recvmsg(
                    &self.socket,
                    &mut [io::IoSliceMut::new(&mut data)],
                    &mut control,
                    RecvFlags::empty(),
                )
                .expect("a datagram within 5 s");
                let mut fds = Vec::new();
                for message in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(rights) = message {
                        fds.extend(rights);
                    }
                }
                if let Some(fd) = fds.pop() {
                    // The sender's writes moved the shared offset to the end: read at 0.
                    use std::os::unix::fs::FileExt;
                    let memfd = std::fs::File::from(fd);
                    let size = memfd.metadata().expect("fstat the memfd").len();
                    let mut entry = vec![0; usize::try_from(size).expect("a small memfd")];
                    memfd.read_exact_at(&mut entry, 0).expect("read the memfd");
                    return (entry, true);
                }
                if received.bytes > 0 {
                    assert!(
                        received.bytes < data.len(),
                        "a datagram larger than the test reads"
                    );
                    data.truncate(received.bytes);
                    return (data, false);
                }
            }
        }
    }

    /// The fields of one native-protocol entry (both forms).
    fn parse(mut entry: &[u8]) -> HashMap<String, String> {
        let mut fields = HashMap::new();
        while !entry.is_empty() {
            let end = entry.iter().position(|&b| b == b'\n').expect("a newline");
            let line = &entry[..end];
            let (name, value, rest) = match line.iter().position(|&b| b == b'=') {
                Some(eq) => (&line[..eq], &line[eq + 1..], &entry[end + 1..]),
                None => {
                    let size = &entry[end + 1..end + 9];
                    let size = u64::from_le_bytes(size.try_into().expect("8 bytes")) as usize;
                    let value = &entry[end + 9..end + 9 + size];
                    assert_eq!(entry[end + 9 + size], b'\n', "value ends with a newline");
                    (line, value, &entry[end + 10 + size..])
                }
            };
            let name = String::from_utf8(name.to_vec()).expect("utf-8 name");
            let value = String::from_utf8(value.to_vec()).expect("utf-8 value");
            assert!(fields.insert(name.clone(), value).is_none(), "{name} twice");
            entry = rest;
        }
        fields
    }

    fn has_timestamp(message: &str) -> bool {
        message.get(..23).is_some_and(|stamp| {
            chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.3f").is_ok()
        }) && message.as_bytes().get(23) == Some(&b' ')
    }

    #[test]
    fn voyandz_fields_get_journal_names() {
        assert_eq!(journal_name("feed"), Some("FEED"));
        assert_eq!(journal_name("stream"), Some("STREAM"));
        assert_eq!(journal_name("peer"), Some("CLIENT"));
        assert_eq!(journal_name("pid"), Some("CHILD_PID"));
        assert_eq!(journal_name("path"), None);
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        let all = [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ];
        assert_eq!(all.map(|level| priority(&level)), [3, 4, 6, 7, 7]);
    }

    #[test]
    fn values_with_a_newline_take_the_length_form() {
        let mut entry = Vec::new();
        put(&mut entry, "FEED", b"cam0");
        put(&mut entry, "MESSAGE", b"a\nb");
        assert_eq!(entry, b"FEED=cam0\nMESSAGE\n\x03\0\0\0\0\0\0\0a\nb\n");
        assert_eq!(parse(&entry)["MESSAGE"], "a\nb");
    }

    #[test]
    fn journal_stream_names_a_device_and_inode() {
        assert!(names_file("64769:1234", 64769, 1234));
        assert!(names_file("64769:1234\n", 64769, 1234));
        assert!(!names_file("64769:1235", 64769, 1234));
        assert!(!names_file("1:1234", 64769, 1234));
        assert!(!names_file("64769", 64769, 1234));
        assert!(!names_file("", 64769, 1234));
        assert!(!names_file("x:y", 64769, 1234));
    }

    #[test]
    fn a_pipe_is_named_by_its_metadata() {
        let (reader, _writer) = io::pipe().expect("a pipe");
        let file = std::fs::File::from(std::os::fd::OwnedFd::from(reader));
        let metadata = file.metadata().expect("fstat");
        let value = format!("{}:{}", metadata.dev(), metadata.ino());
        let stat = rustix::fs::fstat(&file).expect("fstat");
        assert!(names_file(&value, stat.st_dev, stat.st_ino));
    }

    #[test]
    fn an_event_becomes_an_entry_with_the_stamped_line_and_fields() {
        let receiver = Receiver::bind();
        let journal = Journal::connect_to(&receiver.path).expect("connect");
        let subscriber = tracing_subscriber::registry().with(journal);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("feed", feed = %"cam0");
            let _entered = span.enter();
            tracing::info!(pid = 4242_u32, command = "sh -c x", "started");
            tracing::warn!(peer = %"127.0.0.1:5", "client connected");
        });
        let started = parse(&receiver.next());
        let message = &started["MESSAGE"];
        assert!(has_timestamp(message), "{message:?}");
        assert_eq!(
            &message[23..],
            " INFO started pid=4242 command=\"sh -c x\" feed=cam0"
        );
        assert_eq!(started["PRIORITY"], "6");
        assert_eq!(started["SYSLOG_IDENTIFIER"], "voyandz");
        assert_eq!(started["FEED"], "cam0");
        assert_eq!(started["CHILD_PID"], "4242");
        assert!(!started.contains_key("CLIENT") && !started.contains_key("STREAM"));
        assert!(started["CODE_FILE"].ends_with("journal.rs"));
        let connected = parse(&receiver.next());
        assert_eq!(connected["PRIORITY"], "4");
        assert_eq!(connected["CLIENT"], "127.0.0.1:5");
        assert_eq!(connected["FEED"], "cam0");
        assert!(!connected.contains_key("CHILD_PID"));
    }

    #[test]
    fn the_message_is_the_stderr_line() {
        #[derive(Clone, Default)]
        struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl io::Write for Capture {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().expect("capture lock").write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let receiver = Receiver::bind();
        let journal = Journal::connect_to(&receiver.path).expect("connect");
        let capture = Capture::default();
        let stderr = tracing_subscriber::fmt::layer()
            .with_writer({
                let capture = capture.clone();
                move || capture.clone()
            })
            .with_ansi(false)
            .event_format(crate::logging::LineFormat);
        let subscriber = tracing_subscriber::registry().with(journal).with(stderr);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("stream", stream = %"s", n = tracing::field::Empty);
            let _entered = span.enter();
            span.record("n", 3);
            tracing::error!(peer = %"[::1]:80", error = "a \"quoted\"\nline", "closed");
        });
        let line =
            String::from_utf8(capture.0.lock().expect("capture lock").clone()).expect("utf-8 line");
        let entry = parse(&receiver.next());
        assert!(line.ends_with('\n'), "{line:?}");
        assert_eq!(entry["MESSAGE"][23..], line[23..line.len() - 1]);
        assert!(entry["MESSAGE"].contains("n=3"), "{:?}", entry["MESSAGE"]);
    }

    #[test]
    fn an_event_field_wins_over_its_span_and_recorded_fields_count() {
        let receiver = Receiver::bind();
        let journal = Journal::connect_to(&receiver.path).expect("connect");
        let subscriber = tracing_subscriber::registry().with(journal);
        tracing::subscriber::with_default(subscriber, || {
            let span =
                tracing::info_span!("stream", stream = "outer", peer = tracing::field::Empty);
            let _entered = span.enter();
            span.record("peer", "10.0.0.1:7");
            tracing::info!(stream = "inner", "answered");
        });
        let entry = parse(&receiver.next());
        assert_eq!(entry["STREAM"], "inner");
        assert_eq!(entry["CLIENT"], "10.0.0.1:7");
        assert_eq!(
            &entry["MESSAGE"][23..],
            " INFO answered stream=\"inner\" stream=\"outer\" peer=\"10.0.0.1:7\""
        );
    }

    #[test]
    fn an_entry_too_large_for_a_datagram_goes_as_a_memfd() {
        let receiver = Receiver::bind();
        let journal = Journal::connect_to(&receiver.path).expect("connect");
        // The largest datagram is the send buffer: make it small whatever the sysctls say.
        rustix::net::sockopt::set_socket_send_buffer_size(&journal.socket, 16 << 10)
            .expect("SO_SNDBUF");
        let subscriber = tracing_subscriber::registry().with(journal);
        let backtrace = "frame\n".repeat(20_000);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(%backtrace, "task panicked");
        });
        let (entry, memfd) = receiver.next_with_origin();
        assert!(memfd, "sent as a memfd");
        let entry = parse(&entry);
        assert_eq!(entry["PRIORITY"], "3");
        assert!(entry["MESSAGE"].contains(" ERROR task panicked backtrace=frame\nframe\n"));
        assert!(entry["MESSAGE"].len() > backtrace.len());
    }

    #[test]
    fn connecting_fails_without_a_journal() {
        let dir = tempfile::tempdir().expect("temporary directory");
        assert!(Journal::connect_to(&dir.path().join("socket")).is_err());
    }
}
