//! The read loop: a child's stdout, a file or a named pipe → `Bytes` chunks into a hub.
//!
//! Each read is published at once, whatever its size: the main imperative is latency, so no
//! stage waits to fill a buffer. Only under load does the loop pause between reads, as
//! [`moderation`](crate::fanout::moderation) says, so that each client gets fewer, fuller
//! writes. Reads land in one large allocation that successive chunks share, so small reads
//! cost neither a copy nor an allocation each.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::fanout::hub::Hub;
use crate::fanout::moderation::Pacer;

/// The most bytes one read takes: what a pipe holds by default, and a bound on chunk size.
pub const READ_CHUNK_MAX: usize = 64 << 10;
/// Below this much free room a fresh allocation is made for the next reads.
const READ_ROOM_MIN: usize = 4 << 10;

/// Reads until end of file, publishing every read and adding its size to `counted` (the
/// feed's or stream's bytes in: one atomic add per read); returns the number of bytes read.
pub async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    hub: &Hub,
    counted: &AtomicU64,
) -> io::Result<u64> {
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_MAX);
    let mut total = 0u64;
    let mut pacer = Pacer::new(Instant::now());
    loop {
        if buffer.capacity() - buffer.len() < READ_ROOM_MIN {
            buffer.reserve(READ_CHUNK_MAX);
        }
        let read = reader.read_buf(&mut buffer).await?;
        if read == 0 {
            return Ok(total);
        }
        total += read as u64;
        counted.fetch_add(read as u64, Ordering::Relaxed);
        hub.publish(buffer.split().freeze());
        if let Some(due) = pacer.after_read(read as u64, hub.subscribers(), Instant::now()) {
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

/// How a named pipe feed takes its writer leaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterGone {
    /// Wait for the next writer: the feed goes on (it is resurrected).
    Wait,
    /// End of the feed (`no-resurrect: true`): its clients get the end of the stream.
    End,
}

/// Opens a `file:` feed: a named pipe that either waits for the next writer or ends when its
/// writer leaves (`writer_gone`); a character device (a tty, a DVB `dvr0`, a capture device)
/// polled like a pipe, so no blocking read outlives the server; a regular file read from the
/// start.
pub async fn open(
    path: &Path,
    writer_gone: WriterGone,
) -> io::Result<Pin<Box<dyn AsyncRead + Send>>> {
    use std::os::unix::fs::FileTypeExt;
    let file_type = tokio::fs::metadata(path).await?.file_type();
    if file_type.is_fifo() {
        // Read-write (Linux): opening does not wait for a writer, and we hold a writer
        // ourselves, so the pipe never reports end-of-file between two writers. Read-only
        // (non-blocking): opening does not wait either, and Linux reports neither data nor
        // hang-up to epoll until a writer has come, so the read waits for the first writer
        // and sees end-of-file when the last one leaves.
        let receiver = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(writer_gone == WriterGone::Wait)
            .open_receiver(path)?;
        Ok(Box::pin(receiver))
    } else if file_type.is_char_device() {
        let polled = tokio::net::unix::pipe::OpenOptions::new()
            .unchecked(true)
            .open_receiver(path);
        match polled {
            Ok(receiver) => Ok(Box::pin(receiver)),
            // Devices that cannot be polled (/dev/zero, /dev/urandom) are read like files.
            Err(error) if error.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
                Ok(Box::pin(tokio::fs::File::open(path).await?))
            }
            Err(error) => Err(error),
        }
    } else {
        Ok(Box::pin(tokio::fs::File::open(path).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[tokio::test]
    async fn every_read_is_published_without_waiting_for_more() {
        let hub = Hub::new("f");
        let mut subscriber = hub.subscribe();
        let (mut writer, reader) = tokio::io::duplex(1024);
        let pump_task = tokio::spawn({
            let hub = std::sync::Arc::clone(&hub);
            async move { pump(reader, &hub, &AtomicU64::new(0)).await }
        });
        let mut batch = VecDeque::new();
        tokio::io::AsyncWriteExt::write_all(&mut writer, b"tiny")
            .await
            .expect("write");
        subscriber.next(&mut batch, 8).await;
        assert_eq!(batch, [bytes::Bytes::from_static(b"tiny")]);
        drop(writer);
        assert_eq!(pump_task.await.expect("pump").expect("read"), 4);
    }
}
