//! A fault hook for the tests, compiled into debug builds only: the integration tests run the
//! debug binary, and a release build has none of this code (no variable to read, no check per
//! chunk).
//!
//! `VOYANDZ_TEST_PANIC_PARSER=<name>:<path>` makes the container parser of the feed or stream
//! `<name>` panic once, at the first chunk it parses after the file `<path>` exists: a test
//! decides when, while its clients are connected. The variable is read once.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that arms the hook.
const VARIABLE: &str = "VOYANDZ_TEST_PANIC_PARSER";

struct Armed {
    hub: String,
    trigger: PathBuf,
    fired: AtomicBool,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var(VARIABLE).ok()?;
            let (hub, trigger) = value.split_once(':')?;
            Some(Armed {
                hub: hub.to_string(),
                trigger: trigger.into(),
                fired: AtomicBool::new(false),
            })
        })
        .as_ref()
}

/// Panics, once per process, when the hook is armed for `hub` and its trigger file exists.
pub(super) fn before_parse(hub: &str) {
    if let Some(armed) = armed()
        && armed.hub == hub
        && !armed.fired.load(Ordering::Relaxed)
        && armed.trigger.exists()
        && !armed.fired.swap(true, Ordering::Relaxed)
    {
        panic!("parser panic injected by {VARIABLE}");
    }
}
