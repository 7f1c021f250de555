//! Writes a hub subscription into a child's stdin: how a stream reads its feed and how a
//! chained feed reads its parent.
//!
//! A command that reads more slowly than its feed produces does not slow the feed: when it
//! falls [`LAG_MAX`](super::hub::LAG_MAX) behind it skips to the present (the decoder in the
//! command resynchronises), with a log line.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::hub::{BATCH_CHUNKS_MAX, Event, Hub, Subscriber};

/// How often a command that keeps falling behind its feed is logged (with its skip count).
const SKIP_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Why a pipe stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeEnd {
    /// The feed ended for good: the command's stdin was closed so it can finish.
    FeedEnded,
    /// An admin stopped the feed (it may start again): the command's stdin was closed.
    FeedHalted,
    /// The server is stopping.
    Closed,
    /// The command closed its stdin (it exited or does not read it).
    ReaderGone,
}

/// Copies `feed` into `stdin` until one of them ends. Failures of the feed are passed on to
/// `downstream`, so that clients waiting for the downstream's first byte learn of them.
pub async fn pipe_into<W: AsyncWrite + Unpin>(
    mut feed: Subscriber,
    mut stdin: W,
    downstream: Option<&Hub>,
) -> PipeEnd {
    let mut batch = VecDeque::with_capacity(BATCH_CHUNKS_MAX);
    let (mut skips, mut last_logged) = (0u64, None);
    loop {
        match feed.next(&mut batch, BATCH_CHUNKS_MAX).await {
            Event::Data => {
                if write_batch(&mut stdin, &mut batch).await.is_err() {
                    return PipeEnd::ReaderGone;
                }
            }
            // The command's decoder resynchronises at the keyframe the hub skipped to.
            Event::Skipped => {}
            Event::Lagged => {
                skips += 1;
                let now = std::time::Instant::now();
                if last_logged.is_none_or(|at| now.duration_since(at) >= SKIP_LOG_INTERVAL) {
                    tracing::warn!(
                        feed = %feed.hub().name(),
                        skips,
                        "command reads its feed too slowly, skipping to live"
                    );
                    last_logged = Some(now);
                }
                feed.skip_to_live();
            }
            // The message already names the feed ("feed \"cam\" exit status: 1").
            Event::Failed(message) => {
                if let Some(downstream) = downstream {
                    downstream.fail(message.to_string());
                }
            }
            Event::Ended => {
                let _ = stdin.shutdown().await;
                return if feed.hub().halted() {
                    PipeEnd::FeedHalted
                } else {
                    PipeEnd::FeedEnded
                };
            }
            Event::Closed => return PipeEnd::Closed,
        }
    }
}

/// Writes every chunk of `batch` with as few vectored writes as the writer allows,
/// advancing within a chunk after a partial write (no copy). Leaves `batch` empty on success.
pub async fn write_batch<W: AsyncWrite + Unpin>(
    writer: &mut W,
    batch: &mut VecDeque<Bytes>,
) -> std::io::Result<()> {
    while !batch.is_empty() {
        let mut written = {
            let mut slices = [IoSlice::new(&[]); BATCH_CHUNKS_MAX];
            let count = batch.len().min(BATCH_CHUNKS_MAX);
            for (slice, chunk) in slices.iter_mut().zip(batch.iter()) {
                *slice = IoSlice::new(chunk);
            }
            writer.write_vectored(&slices[..count]).await?
        };
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let front = batch
                .front_mut()
                .expect("written bytes come from the batch");
            if written >= front.len() {
                written -= front.len();
                batch.pop_front();
            } else {
                front.advance(written);
                written = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn feed_bytes_reach_the_command_in_order_and_end_closes_stdin() {
        let feed = Hub::new("f");
        let downstream = Hub::new("s");
        let subscriber = feed.subscribe();
        let (writer, mut reader) = tokio::io::duplex(8);
        let task = tokio::spawn({
            let downstream = Arc::clone(&downstream);
            async move { pipe_into(subscriber, writer, Some(&downstream)).await }
        });
        for word in ["alpha ", "beta ", "gamma"] {
            feed.publish(Bytes::from(word));
        }
        feed.end();
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut reader, &mut out)
            .await
            .expect("read the pipe");
        assert_eq!(out, "alpha beta gamma");
        assert_eq!(task.await.expect("pipe task"), PipeEnd::FeedEnded);
    }
}
