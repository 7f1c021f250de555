#!/bin/sh
# Installs what `make bench` needs beyond scripts/setup-debian.sh (which the Makefile runs
# first): the reference peers the bench measures in the same run as voyandz. Today that is
# Icecast 2.4 (Debian's icecast2), the fan-out reference of issue 18: the bench runs it on a
# private config in its scratch directory, as an unprivileged user, and stops it itself
# (doc/BENCHMARK.md). Its own service is not wanted, neither now nor at the next boot.
#
# Idempotent, like setup-debian.sh: nothing is installed or updated when it is there. On a
# system without dpkg it only checks for the command.
set -eu

cd "$(dirname "$0")/.."

. scripts/debian-packages.sh

missing=$(missing_packages icecast2)
if [ -n "$missing" ]; then
    install_packages icecast2
    disable_service icecast2.service
elif ! command -v icecast2 >/dev/null 2>&1 && ! command -v icecast >/dev/null 2>&1; then
    echo "setup-bench: icecast (2.4) is missing: install it (Fedora: dnf install icecast)" >&2
    exit 1
fi
echo "setup-bench: ok ($(icecast2 -v 2>/dev/null || icecast -v 2>/dev/null))"
