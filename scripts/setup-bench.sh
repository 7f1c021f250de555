#!/bin/sh
# Installs what `make bench` needs beyond scripts/setup-debian.sh (which the Makefile runs
# first): the reference peers the bench measures in the same run as voyandz. Today that is
# Icecast 2.4 (Debian's icecast2), the fan-out reference of issue 18: the bench runs it on a
# private config in its scratch directory, as an unprivileged user, and stops it itself
# (doc/BENCHMARK.md). Its own service is not wanted, neither now nor at the next boot.
#
# And a D-Bus system bus daemon for the `dbus` section (issue 21: the cost of D-Bus on the data
# path): Debian's dbus-daemon, with dbus-system-bus-common for /usr/share/dbus-1/system.conf,
# the system bus config the bench's private bus runs on, in its scratch directory. Neither
# starts a bus (the host's system bus is the `dbus` package's, not needed here). Most systems
# have both already; scripts/setup-debian.sh may install them too, for the D-Bus tests.
#
# Idempotent, like setup-debian.sh: nothing is installed or updated when it is there. On a
# system without dpkg it only checks for the command.
set -eu

cd "$(dirname "$0")/.."

. scripts/debian-packages.sh

missing=$(missing_packages icecast2 dbus-daemon dbus-system-bus-common)
if [ -n "$missing" ]; then
    # shellcheck disable=SC2086 # one word a package
    install_packages $missing
    case " $missing " in
    *" icecast2 "*) disable_service icecast2.service ;;
    esac
fi
if ! command -v icecast2 >/dev/null 2>&1 && ! command -v icecast >/dev/null 2>&1; then
    echo "setup-bench: icecast (2.4) is missing: install it (Fedora: dnf install icecast)" >&2
    exit 1
fi
if ! command -v dbus-daemon >/dev/null 2>&1 || [ ! -e /usr/share/dbus-1/system.conf ]; then
    echo "setup-bench: dbus-daemon or /usr/share/dbus-1/system.conf is missing: install them (Fedora: dnf install dbus-daemon)" >&2
    exit 1
fi
echo "setup-bench: ok ($(icecast2 -v 2>/dev/null || icecast -v 2>/dev/null); $(dbus-daemon --version | head -n 1))"
