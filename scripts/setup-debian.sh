#!/bin/sh
# Installs what voyandz needs to build, run its demo and run its tests on Debian (12 or
# later) or Ubuntu, and checks that the Rust toolchain is new enough for the crate.
#
# Idempotent: packages already installed are left alone, and `apt-get update` runs only
# when something has to be installed. Runs as root, or through sudo otherwise. On a
# system without apt-get it only reports what is missing.
set -eu

cd "$(dirname "$0")/.."

# ffmpeg/ffprobe: every feed, stream and test; build-essential: the linker (cc);
# pkg-config: build scripts of -sys crates; procps: ps/pgrep for debugging children;
# systemd: systemd-socket-activate for the socket-activation tests, systemd-analyze and
# systemd-sysusers for the unit-file tests (tests/units.rs), and systemd-journald and
# journalctl for the journald test (tests/journald.rs), which runs its own journald in a
# private mount namespace made with unshare and entered with nsenter (util-linux); curl and
# ca-certificates: rustup and the demo's URLs; chromium: the headless-browser MPJPEG test.
# The real-player test (tests/players.rs) plays streams with mpv and with GStreamer's
# gst-launch-1.0 (tools): souphttpsrc, matroskademux, qtdemux, flvdemux and vp8dec come from
# plugins-good, decodebin from plugins-base, tsdemux and h264parse from plugins-bad, and the
# H.264/AAC decoders (avdec_*) from gstreamer1.0-libav.
# prometheus: the metrics tests of issue 17 check `/metrics` with its `promtool check
# metrics` and scrape it with a `prometheus` server they start themselves on a temporary
# config and port; chromium also drives the status-page tests (headless, JS on and off). The
# package's own service is not wanted: see below.
# The D-Bus tests (tests/dbus.rs, tests/polkit.rs) start a private system bus of their own
# with dbus-daemon and call it with busctl (systemd) as other users through setpriv
# (util-linux); the polkit tests start a real polkitd on it in a private mount namespace and
# check the shipped action file with xmllint (libxml2-utils) against the DTD that polkitd
# ships. The host's own bus and polkitd, if any, are neither used nor changed.
# man-db: `make docs-check` renders every generated man page (doc/man) with its `man -l` and
# fails on a troff warning.
PACKAGES="ffmpeg build-essential pkg-config procps systemd util-linux curl ca-certificates
chromium mpv gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
gstreamer1.0-plugins-bad gstreamer1.0-libav prometheus dbus-daemon polkitd libxml2-utils man-db"

. scripts/debian-packages.sh

# The metrics tests' prometheus is one of the packages whose postinst would start a server
# (port 9090): install_packages keeps it from starting, and disable_service from starting
# at the next boot.
# shellcheck disable=SC2086 # word splitting of the package list is wanted
missing=$(missing_packages $PACKAGES)
if [ -n "$missing" ]; then
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    install_packages $missing
    case " $missing " in
    *" prometheus "*) disable_service prometheus.service ;;
    esac
elif ! command -v dpkg-query >/dev/null 2>&1; then
    # Not Debian: check the commands themselves (see README.md for Fedora).
    for cmd in ffmpeg ffprobe cc pkg-config curl mpv gst-launch-1.0 promtool prometheus \
        journalctl unshare nsenter dbus-daemon busctl setpriv /usr/lib/polkit-1/polkitd \
        xmllint man; do
        if ! command -v "$cmd" >/dev/null 2>&1; then
            echo "setup: '$cmd' is missing; see README.md (Fedora notes) for what to install" >&2
            exit 1
        fi
    done
fi

# Rust: the crates need at least the `rust-version` of Cargo.toml. rustup installs into
# ~/.cargo/bin, which a fresh login shell may not have on PATH yet.
need=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n 1)
if ! command -v rustc >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/rustc" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v rustc >/dev/null 2>&1 || ! command -v cargo >/dev/null 2>&1; then
    cat >&2 <<MSG
setup: Rust $need or newer is needed, and no rustc/cargo was found.
       Install it with rustup (Debian's own rustc is too old):
         curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
         . "\$HOME/.cargo/env"
       then run this command again.
MSG
    exit 1
fi
have=$(rustc --version | sed -n 's/^rustc \([0-9][0-9.]*\).*/\1/p')
lowest=$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n 1)
if [ "$lowest" != "$need" ]; then
    cat >&2 <<MSG
setup: rustc $have is older than $need, the minimum of voyandz's crates (rust-version in Cargo.toml).
       Update it:  rustup update stable   (then: rustup default stable)
       No rustup?  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
MSG
    exit 1
fi
for component in rustfmt clippy; do
    if ! cargo "$(echo "$component" | sed 's/rustfmt/fmt/')" --version >/dev/null 2>&1; then
        if command -v rustup >/dev/null 2>&1; then
            echo "setup: adding the Rust component $component"
            rustup component add "$component"
        else
            echo "setup: cargo $component is missing (rustup component add $component)" >&2
            exit 1
        fi
    fi
done
echo "setup: ok (rustc $have >= $need; ffmpeg $(ffmpeg -version | sed -n '1s/^ffmpeg version \([^ ]*\).*/\1/p'))"
