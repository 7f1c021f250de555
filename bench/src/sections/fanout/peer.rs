//! The two servers every fan-out scenario runs on, one after the other, each fed by the same
//! stamping feed at the same rate and read by the same clients: voyandz (stream `direct`, a
//! direct relay of its feed) and Icecast 2.4 (the feed as the `PUT` source of its one mount).

use crate::client::Request;
use crate::icecast::{self, Icecast};
use crate::sections::{CONNECT_CONCURRENCY, Ctx, stream_req};
use crate::server::Server;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The server under test.
    Voyandz,
    /// The reference.
    Icecast,
}

impl Peer {
    /// Both, in the order each scenario runs them (and prints their rows).
    pub const BOTH: [Peer; 2] = [Peer::Voyandz, Peer::Icecast];

    /// As row names and notes say it.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Voyandz => "voyandz",
            Peer::Icecast => "icecast",
        }
    }
}

/// One of them, running a stream fed by the stamping feed.
pub enum Running {
    /// voyandz on a relay config.
    Voyandz(Server),
    /// Icecast with the feed as its source.
    Icecast(Icecast),
}

impl Running {
    /// Starts `peer` for a stream of `rate_bps`; `name` names its config and logs.
    pub fn start(ctx: &mut Ctx, peer: Peer, rate_bps: u64, name: &str) -> Result<Running, String> {
        match peer {
            Peer::Voyandz => {
                let yaml = ctx.relay_yaml(rate_bps);
                ctx.start_server(name, &yaml).map(Running::Voyandz)
            }
            Peer::Icecast => ctx.start_icecast(name, rate_bps).map(Running::Icecast),
        }
    }

    /// Which server it is.
    pub fn peer(&self) -> Peer {
        match self {
            Running::Voyandz(_) => Peer::Voyandz,
            Running::Icecast(_) => Peer::Icecast,
        }
    }

    /// The server's pid (its CPU is `CPU srv`, its descendants' `CPU kids`).
    pub fn pid(&self) -> u32 {
        match self {
            Running::Voyandz(s) => s.pid,
            Running::Icecast(i) => i.pid(),
        }
    }

    /// The feed, when it is not the server's own child: Icecast's is the bench's, and its CPU
    /// is measured apart so that `CPU kids` means the feed for both.
    pub fn foreign_feed(&self) -> Option<u32> {
        match self {
            Running::Voyandz(_) => None,
            Running::Icecast(i) => Some(i.feed_pid()),
        }
    }

    /// How many clients may connect at once without overflowing its listen backlog.
    pub fn connect_concurrency(&self) -> usize {
        match self {
            Running::Voyandz(_) => CONNECT_CONCURRENCY,
            Running::Icecast(_) => icecast::LISTEN_BACKLOG - 1,
        }
    }

    /// What a client asks for.
    pub fn request(&self, http10: bool) -> Request {
        match self {
            Running::Voyandz(s) => stream_req(s, "direct", http10),
            Running::Icecast(i) => i.request(http10),
        }
    }

    /// The server's VmRSS, KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        match self {
            Running::Voyandz(s) => s.rss_kib(),
            Running::Icecast(i) => i.rss_kib(),
        }
    }

    /// Is it (and for Icecast, its feed) still running?
    pub fn alive(&mut self) -> bool {
        match self {
            Running::Voyandz(s) => s.alive(),
            Running::Icecast(i) => i.alive(),
        }
    }

    /// Stops it; what went wrong becomes an observation.
    pub fn stop(self, ctx: &mut Ctx) {
        match self {
            Running::Voyandz(s) => ctx.stop_server(s),
            Running::Icecast(i) => ctx.stop_icecast(i),
        }
    }
}
