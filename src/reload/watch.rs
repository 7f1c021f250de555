//! Notices when the config file changes: inotify on its *directory*, so that an editor's
//! atomic save (write a temporary file, rename it over the config), `sed -i`, `mv` and a
//! deletion followed by a re-creation are all seen (a watch on the file itself follows the
//! old inode and goes quiet after the first rename).

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::time::Duration;

use inotify::{Inotify, WatchMask};
use tokio::io::unix::AsyncFd;

/// Quiet time after the last event before a change is reported: an editor's save is several
/// events (create, write, rename) within a few milliseconds, and one reload must follow it.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Room for a burst of events (each is 16 bytes plus its file name).
const EVENT_BUFFER_BYTES: usize = 4096;

/// A watch on one config file.
pub struct ConfigWatch {
    inotify: AsyncFd<Inotify>,
    name: OsString,
    buffer: Vec<u8>,
    /// An event was read and its quiet time is not over: kept here, not in the future of
    /// [`ConfigWatch::changed`], so that a caller that drops that future (a `select!` taking
    /// another branch) does not lose the change.
    pending: bool,
}

impl ConfigWatch {
    /// Watches `path` through its directory.
    pub fn new(path: &Path) -> io::Result<Self> {
        let name = path.file_name().map(OsString::from).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the config path names no file")
        })?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let inotify = Inotify::init()?;
        let mask = WatchMask::CLOSE_WRITE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::CREATE
            | WatchMask::DELETE;
        inotify.watches().add(dir, mask)?;
        #[allow(unsafe_code)]
        // SAFETY: `Inotify` owns its descriptor and keeps it open, unchanged, until dropped;
        // it is dropped only with this `AsyncFd`.
        let inotify = unsafe { AsyncFd::register(inotify) }.map_err(io::Error::from)?;
        Ok(Self {
            inotify,
            name,
            buffer: vec![0; EVENT_BUFFER_BYTES],
            pending: false,
        })
    }

    /// Waits until the file was written, replaced, created or removed, and then until its
    /// directory has been quiet for [`DEBOUNCE`]. Cancel-safe: a change seen by a dropped
    /// call is reported by the next one.
    pub async fn changed(&mut self) -> io::Result<()> {
        if !self.pending {
            self.event().await?;
            self.pending = true;
        }
        loop {
            match tokio::time::timeout(DEBOUNCE, self.event()).await {
                Err(_quiet) => {
                    self.pending = false;
                    return Ok(());
                }
                Ok(event) => event?,
            }
        }
    }

    /// Waits for the next event about the file.
    async fn event(&mut self) -> io::Result<()> {
        let Self {
            inotify,
            name,
            buffer,
            ..
        } = self;
        loop {
            let mut ready = inotify.readable_mut().await?;
            let read = ready.try_io(|inotify| {
                let events = inotify.get_mut().read_events(buffer)?;
                Ok(events
                    .into_iter()
                    .any(|event| event.name == Some(name.as_os_str())))
            });
            match read {
                Ok(Ok(true)) => return Ok(()),
                Ok(Ok(false)) => {}
                Ok(Err(error)) => return Err(error),
                // Not readable after all: wait again.
                Err(_would_block) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn seen(watch: &mut ConfigWatch) -> bool {
        tokio::time::timeout(Duration::from_secs(2), watch.changed())
            .await
            .is_ok_and(|changed| changed.is_ok())
    }

    #[tokio::test]
    async fn a_change_seen_by_a_dropped_call_is_reported_by_the_next() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("voyandz.yaml");
        let mut watch = ConfigWatch::new(&path).expect("watch");
        std::fs::write(&path, "a: 1\n").expect("write");
        // Dropped within the quiet time, after it read the event.
        let first = tokio::time::timeout(Duration::from_millis(100), watch.changed()).await;
        assert!(first.is_err(), "still waiting for quiet");
        assert!(seen(&mut watch).await, "the next call reports it");
    }

    #[tokio::test]
    async fn writes_renames_and_removals_of_the_file_are_seen_and_others_not() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("voyandz.yaml");
        std::fs::write(&path, "a: 1\n").expect("write");
        let mut watch = ConfigWatch::new(&path).expect("watch");

        std::fs::write(dir.path().join("other.yaml"), "x").expect("write");
        assert!(
            tokio::time::timeout(Duration::from_millis(500), watch.changed())
                .await
                .is_err(),
            "another file's change is not the config's"
        );
        std::fs::write(&path, "a: 2\n").expect("write in place");
        assert!(seen(&mut watch).await, "written in place");
        let temporary = dir.path().join(".voyandz.yaml.swp");
        std::fs::write(&temporary, "a: 3\n").expect("write");
        std::fs::rename(&temporary, &path).expect("rename over");
        assert!(seen(&mut watch).await, "replaced by a rename");
        std::fs::remove_file(&path).expect("remove");
        assert!(seen(&mut watch).await, "removed");
        std::fs::write(&path, "a: 4\n").expect("re-create");
        assert!(seen(&mut watch).await, "created again");
    }
}
