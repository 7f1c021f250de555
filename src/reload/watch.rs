//! Notices when the config file changes: inotify on its *directory*, so that an editor's
//! atomic save (write a temporary file, rename it over the config), `sed -i`, `mv` and a
//! deletion followed by a re-creation are all seen (a watch on the file itself follows the
//! old inode and goes quiet after the first rename).
//!
//! A config reached through symbolic links (`/etc/voyandz/voyandz.yaml` pointing into an
//! appliance's own tree, or a Kubernetes ConfigMap, which swaps a `..data` link to a new
//! directory) is watched at every link on the way, by its name in the directory holding it,
//! and at the file the links lead to: an edit of that file and a link pointed elsewhere are
//! both changes. After each change the links are followed again.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use inotify::{Inotify, WatchDescriptor, WatchMask};
use tokio::io::unix::AsyncFd;

/// Quiet time after the last event before a change is reported: an editor's save is several
/// events (create, write, rename) within a few milliseconds, and one reload must follow it.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Room for a burst of events (each is 16 bytes plus its file name).
const EVENT_BUFFER_BYTES: usize = 4096;
/// Links followed at most, as the kernel's own limit on a path (a loop ends here).
const LINKS_MAX: usize = 40;
/// What happens to a name in a watched directory that changes the config.
const MASK: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::CREATE)
    .union(WatchMask::DELETE);

/// A watch on one config file.
pub struct ConfigWatch {
    inotify: AsyncFd<Inotify>,
    path: PathBuf,
    /// The names whose change is the config's, each with the watch of the directory that
    /// holds it (see the [module documentation](self)).
    names: Vec<(WatchDescriptor, OsString)>,
    buffer: Vec<u8>,
    /// An event was read and its quiet time is not over: kept here, not in the future of
    /// [`ConfigWatch::changed`], so that a caller that drops that future (a `select!` taking
    /// another branch) does not lose the change.
    pending: bool,
}

impl ConfigWatch {
    /// Watches `path` through its directory, and through the links it goes through.
    pub fn new(path: &Path) -> io::Result<Self> {
        let inotify = Inotify::init()?;
        #[allow(unsafe_code)]
        // SAFETY: `Inotify` owns its descriptor and keeps it open, unchanged, until dropped;
        // it is dropped only with this `AsyncFd`.
        let inotify = unsafe { AsyncFd::register(inotify) }.map_err(io::Error::from)?;
        let mut watch = Self {
            inotify,
            path: path.to_path_buf(),
            names: Vec::new(),
            buffer: vec![0; EVENT_BUFFER_BYTES],
            pending: false,
        };
        watch.follow()?;
        Ok(watch)
    }

    /// Waits until the file was written, replaced, created or removed (or a link on the way
    /// to it changed), and then until it has been quiet for [`DEBOUNCE`]. Cancel-safe: a
    /// change seen by a dropped call is reported by the next one.
    pub async fn changed(&mut self) -> io::Result<()> {
        if !self.pending {
            self.event().await?;
            self.pending = true;
        }
        loop {
            match tokio::time::timeout(DEBOUNCE, self.event()).await {
                Err(_quiet) => {
                    self.pending = false;
                    // The links may lead elsewhere now. A place that cannot be watched any
                    // more leaves the others watched.
                    if let Err(error) = self.follow() {
                        tracing::warn!(%error, config = %self.path.display(), "cannot watch where the config's links lead");
                    }
                    return Ok(());
                }
                Ok(event) => event?,
            }
        }
    }

    /// Watches every place where the config's change can show (see [`places`]), and stops
    /// watching directories no longer among them. Fails only if no place can be watched.
    fn follow(&mut self) -> io::Result<()> {
        let mut watches = self.inotify.get_ref().watches();
        let mut names = Vec::new();
        let mut first_error = None;
        for (dir, name) in places(&self.path) {
            match watches.add(&dir, MASK) {
                Ok(wd) => names.push((wd, name)),
                Err(error) => {
                    first_error.get_or_insert(io::Error::new(
                        error.kind(),
                        format!("{}: {error}", dir.display()),
                    ));
                }
            }
        }
        for (wd, _) in &self.names {
            if !names.iter().any(|(kept, _)| kept == wd) {
                // ENOENT/EINVAL only mean the kernel dropped it already (its directory went).
                let _ = watches.remove(wd.clone());
            }
        }
        self.names = names;
        match first_error {
            Some(error) if self.names.is_empty() => Err(error),
            Some(error) => {
                tracing::debug!(%error, "a link of the config is not watched");
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Waits for the next event about the file or a link on the way to it.
    async fn event(&mut self) -> io::Result<()> {
        let Self {
            inotify,
            names,
            buffer,
            ..
        } = self;
        loop {
            let mut ready = inotify.readable_mut().await?;
            let read = ready.try_io(|inotify| {
                let events = inotify.get_mut().read_events(buffer)?;
                Ok(events.into_iter().any(|event| {
                    names
                        .iter()
                        .any(|(wd, name)| event.wd == *wd && event.name == Some(name.as_os_str()))
                }))
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

/// Where a change of the config at `path` can show, as (directory, name): each symbolic link
/// its path goes through, in the directory that holds it, and the file the links lead to
/// (which is `path` itself when there is no link). A path that does not exist (yet) ends
/// where it stops existing: its re-creation is a change there.
fn places(path: &Path) -> Vec<(PathBuf, OsString)> {
    let mut places = Vec::new();
    let mut rest = path.to_path_buf();
    let mut real = PathBuf::new();
    let mut links = 0;
    loop {
        let mut components = rest.components();
        let Some(component) = components.next() else {
            break;
        };
        let after = components.as_path().to_path_buf();
        match component {
            Component::Normal(name) => {
                let next = real.join(name);
                match std::fs::read_link(&next) {
                    Ok(target) if links < LINKS_MAX => {
                        links += 1;
                        places.push((dir_of(&real), name.to_owned()));
                        // The link's target takes its place; an absolute one starts over.
                        rest = target.join(after);
                        continue;
                    }
                    _ => real = next,
                }
            }
            // Above a link, `..` is above where it leads (as the kernel resolves it).
            Component::ParentDir if real.file_name().is_some() => {
                real.pop();
            }
            Component::ParentDir if !real.has_root() => real.push(".."),
            Component::ParentDir => {}
            Component::RootDir | Component::Prefix(_) => real.push(component),
            Component::CurDir => {}
        }
        rest = after;
    }
    let name = real.file_name().map(OsString::from).unwrap_or_default();
    real.pop();
    places.push((dir_of(&real), name));
    places
}

/// `dir`, or the current directory for an empty path.
fn dir_of(dir: &Path) -> PathBuf {
    if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir.to_path_buf()
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

    /// Whether `watch` reports nothing for half a second (longer than its quiet time).
    async fn unseen(watch: &mut ConfigWatch) -> bool {
        tokio::time::timeout(Duration::from_millis(500), watch.changed())
            .await
            .is_err()
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
            unseen(&mut watch).await,
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

    #[test]
    fn places_are_each_link_on_the_way_and_where_the_links_lead() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path();
        let plain = root.join("plain.yaml");
        assert_eq!(places(&plain), [(root.to_path_buf(), "plain.yaml".into())]);
        assert_eq!(
            places(Path::new("../x/voyandz.yaml")),
            [(PathBuf::from("../x"), "voyandz.yaml".into())]
        );
        // As a Kubernetes ConfigMap lays it out.
        let version = root.join("..2026_12_07");
        std::fs::create_dir(&version).expect("mkdir");
        std::os::unix::fs::symlink("..2026_12_07", root.join("..data")).expect("link");
        std::os::unix::fs::symlink("..data/voyandz.yaml", root.join("voyandz.yaml")).expect("link");
        assert_eq!(
            places(&root.join("voyandz.yaml")),
            [
                (root.to_path_buf(), "voyandz.yaml".into()),
                (root.to_path_buf(), "..data".into()),
                (version, "voyandz.yaml".into()),
            ]
        );
    }

    #[tokio::test]
    async fn an_edit_of_where_a_link_leads_and_a_link_pointed_elsewhere_are_seen() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (etc, appliance) = (dir.path().join("etc"), dir.path().join("appliance"));
        std::fs::create_dir(&etc).expect("mkdir");
        std::fs::create_dir(&appliance).expect("mkdir");
        let target = appliance.join("cameras.yaml");
        std::fs::write(&target, "a: 1\n").expect("write");
        let path = etc.join("voyandz.yaml");
        std::os::unix::fs::symlink(&target, &path).expect("link");
        let mut watch = ConfigWatch::new(&path).expect("watch");

        std::fs::write(appliance.join("other.yaml"), "x").expect("write");
        assert!(
            unseen(&mut watch).await,
            "another file beside the target is not the config"
        );
        std::fs::write(&target, "a: 2\n").expect("edit the target");
        assert!(seen(&mut watch).await, "the target edited in place");
        // `ln -sfn` as coreutils does it: a new link renamed over the old one.
        let second = appliance.join("lobby.yaml");
        std::fs::write(&second, "a: 3\n").expect("write");
        let temporary = etc.join(".voyandz.yaml.new");
        std::os::unix::fs::symlink(&second, &temporary).expect("link");
        std::fs::rename(&temporary, &path).expect("rename over");
        assert!(seen(&mut watch).await, "the link pointed elsewhere");
        std::fs::write(&second, "a: 4\n").expect("edit the new target");
        assert!(
            seen(&mut watch).await,
            "the new target edited: the link was followed again"
        );
        std::fs::write(&target, "a: 5\n").expect("edit the old target");
        assert!(
            unseen(&mut watch).await,
            "the old target is no longer the config"
        );
    }

    #[tokio::test]
    async fn a_configmap_swap_is_seen_and_so_is_the_next_one() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path();
        let publish = |version: &str, text: &str| {
            std::fs::create_dir(root.join(version)).expect("mkdir");
            std::fs::write(root.join(version).join("voyandz.yaml"), text).expect("write");
            std::os::unix::fs::symlink(version, root.join("..data_tmp")).expect("link");
            std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("swap");
        };
        publish("..1", "a: 1\n");
        let path = root.join("voyandz.yaml");
        std::os::unix::fs::symlink("..data/voyandz.yaml", &path).expect("link");
        let mut watch = ConfigWatch::new(&path).expect("watch");
        publish("..2", "a: 2\n");
        assert!(seen(&mut watch).await, "the first swap");
        std::fs::remove_dir_all(root.join("..1")).expect("the old version goes");
        publish("..3", "a: 3\n");
        assert!(seen(&mut watch).await, "the next swap");
    }
}
