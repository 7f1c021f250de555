# Sourced by scripts/setup-debian.sh (what voyandz needs to build, run and test) and
# scripts/setup-bench.sh (what `make bench` adds: the reference peers), so that both install
# packages the same way. POSIX sh; defines functions and nothing else.
#
#   missing_packages PKG...   prints (space-separated) those dpkg does not have installed
#   install_packages PKG...   apt-get installs them, non-interactive, with no service started
#   disable_service UNIT      undoes a postinst's `enable` for the next boot (systemd only)

# Prints the packages of the list that are not installed; nothing when dpkg-query is missing
# (not Debian: the caller checks commands instead).
missing_packages() {
    command -v dpkg-query >/dev/null 2>&1 || return 0
    _missing=""
    for _pkg in "$@"; do
        _status=$(dpkg-query -W -f='${db:Status-Status}' "$_pkg" 2>/dev/null || true)
        if [ "$_status" != "installed" ]; then
            _missing="$_missing $_pkg"
        fi
    done
    printf '%s\n' "${_missing# }"
}

# Sets SUDO to "" as root, "sudo" otherwise; fails when neither can install.
_pick_sudo() {
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "setup: missing packages: $*; run this as root or install sudo" >&2
        return 1
    fi
}

# Installs the packages with apt-get. Some packages (prometheus, icecast2) start their server
# from the postinst; we only want their programs, which voyandz's tests and bench start
# themselves on private configs and ports. While installing, a policy-rc.d that denies every
# start (exit 101, Debian's invoke-rc.d policy) keeps any service from starting, unless the
# system already has its own policy (a container's). It is removed on any exit.
install_packages() {
    [ "$#" -gt 0 ] || return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup: missing packages: $* (and no apt-get to install them)" >&2
        return 1
    fi
    _pick_sudo "$@" || return 1
    echo "setup: installing: $*"
    POLICY=/usr/sbin/policy-rc.d
    if [ ! -e "$POLICY" ]; then
        trap '$SUDO rm -f "$POLICY"' EXIT
        trap 'exit 130' INT TERM
        printf '#!/bin/sh\n# voyandz setup: no service starts while it installs\nexit 101\n' |
            $SUDO tee "$POLICY" >/dev/null
        $SUDO chmod 755 "$POLICY"
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# A postinst also enables its service for the next boot: undo that when systemd runs (without
# systemd, as in a container, nothing would start it anyway).
disable_service() {
    if [ -d /run/systemd/system ]; then
        _pick_sudo "$1" || return 1
        $SUDO systemctl disable --now "$1" >/dev/null 2>&1 || true
    fi
}
