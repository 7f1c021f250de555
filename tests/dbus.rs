//! D-Bus control, driven with `busctl` on a private system bus with the shipped policy
//! ([`common::dbus::SystemBus`]): the objects, their properties and methods, reloads.

mod common;

use common::dbus::{SystemBus, succeeded};

const FEED: &str = "org.voyandz.Voyandz1.Feed";

#[test]
fn feeds_and_streams_are_objects_under_the_manager() {
    let bus = SystemBus::start();
    let server = bus.start_server(
        "feeds:\n  cam:\n    command: cat /dev/zero\nstreams:\n  raw:\n    feed: cam\n    mimetype: application/octet-stream\n",
    );
    let tree = succeeded(&bus.busctl(&["--no-pager", "tree", "org.voyandz.Voyandz1"]));
    assert!(tree.contains("/org/voyandz/Voyandz1/feed/cam"), "{tree}");
    assert!(tree.contains("/org/voyandz/Voyandz1/stream/raw"), "{tree}");
    let state = succeeded(&bus.busctl(&[
        "get-property",
        "org.voyandz.Voyandz1",
        "/org/voyandz/Voyandz1/feed/cam",
        FEED,
        "State",
    ]));
    assert_eq!(state.trim(), "s \"idle\"");
    drop(server);
}
