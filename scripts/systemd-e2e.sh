#!/bin/bash
# shellcheck disable=SC2016 # scripts for the guest are in single quotes: they expand there
# End-to-end test of voyandz as a systemd service, under a real systemd as PID 1 in a
# systemd-nspawn container (`make e2e`). The host needs no systemd as PID 1 (doc/SYSTEMD.md
# says why each nspawn flag is there).
#
#   scripts/systemd-e2e.sh [BINARY]     BINARY defaults to target/release/voyandz
#
# What it does: installs systemd-container and mmdebstrap if missing; builds a Debian bookworm
# minbase root file system with systemd and ffmpeg once (cached under /var/tmp/voyandz-e2e,
# ~30 s; E2E_REBUILD=1 builds it again); boots it read-only with a throw-away overlay
# (--volatile=overlay) and a network of its own; installs the binary, the units of systemd/
# and the sysusers file as doc/SYSTEMD.md says to by hand; writes a config with an ffmpeg
# test-source feed; then checks, each with a time bound, going on after a failure so that the
# report shows every check:
#
#   socket          `systemctl start voyandz.socket` listens; voyandz.service stays inactive
#   activation      a connection starts the service; curl gets MPEG-TS over IPv4 and IPv6
#   ready           the service becomes `active` (sd-notify READY=1)
#   sandbox         ffmpeg runs as voyandz with no capability, NoNewPrivs and seccomp
#   transcode       a stream that decodes, scales and encodes JPEG works under the sandbox
#   group-device    a device node of group video, mode 0660, is readable (PrivateUsers=yes)
#   journal         every line the service logged starts with `YYYY-mm-dd hh:mm:ss.sss `
#   reload          `systemctl reload` applies an added stream, same MainPID (SIGHUP reload)
#   dbus            the service owns org.voyandz.Voyandz1 on the system bus under the shipped
#                   policy; busctl lists its streams and stops and starts a feed; voyandzctl
#                   shows its status and stops a stream
#   password        a user at a terminal, in a login session, runs `voyandzctl stop`: polkit's
#                   text agent asks for the administrator's password, a wrong one is refused,
#                   the right one stops the feed
#   watchdog        a SIGSTOPped daemon is killed by the watchdog and started again
#   stop            stopping service and socket leaves no voyandz, sh or ffmpeg process
#   bus-activation  a D-Bus call to the stopped service starts it (SystemdService=), and
#                   stopping it again leaves nothing behind
#
# Exit status: 0 when every check passed, 1 when one failed, 2 when the container could not
# be set up. Needs root (mmdebstrap, nspawn, cgroups). Always tears the container down.
set -euo pipefail

# A binary named on the command line is relative to where the caller is.
BINARY=target/release/voyandz
if [ -n "${1:-}" ]; then BINARY=$(realpath -- "$1"); fi
cd "$(dirname "$0")/.."
# shellcheck source=scripts/debian-packages.sh
. scripts/debian-packages.sh

SUITE=bookworm
# systemd as PID 1; dbus so the guest boots as a normal system does; ffmpeg for the feeds;
# curl, procps (ps, pgrep) and iproute2 (ss) for the checks; polkitd (and its pkttyagent) and
# libpam-systemd (a login session for a user) for voyandzctl's password prompt.
ROOTFS_PACKAGES="systemd,systemd-sysv,dbus,ffmpeg,curl,procps,iproute2,polkitd,libpam-systemd"
CACHE=${E2E_CACHE:-/var/tmp/voyandz-e2e}
# Where the guest sees the files to install (a read-only bind mount of $WORK/stage).
GUEST_STAGE=/mnt/voyandz-e2e
# Bounds, in seconds. Every command in the guest gets CT_TIMEOUT unless it says otherwise.
ROOTFS_BUILD_TIMEOUT=900
BOOT_TIMEOUT=60
CT_TIMEOUT=30
TEARDOWN_TIMEOUT=15
# The service's WatchdogSec (read from the unit), plus the restart and some slack.
WATCHDOG_SLACK=15

NAME=voye2e-$$
WORK=$(mktemp -d /tmp/voyandz-e2e.XXXXXX)
NSPAWN_PID=""
LEADER=""
CGROUPS=""
FAILED=0
RESULTS=""

now() { date +%s.%N; }
# Seconds since $1, with milliseconds.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
log() { printf 'e2e: %s\n' "$*" >&2; }
# Shows output of the guest under a log line.
indent() { sed 's/^/      /' >&2; }
die() {
    log "SETUP FAILED: $*"
    exit 2
}

# --- teardown ----------------------------------------------------------------------------

teardown() {
    local status=$? t0 i
    t0=$(now)
    trap - EXIT INT TERM
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        # SIGTERM to nspawn = a clean poweroff of the guest.
        kill -TERM "$NSPAWN_PID" 2>/dev/null || true
        for ((i = 0; i < TEARDOWN_TIMEOUT * 10; i++)); do
            kill -0 "$NSPAWN_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$NSPAWN_PID" 2>/dev/null; then
            log "nspawn did not stop in ${TEARDOWN_TIMEOUT}s; killing it"
            kill -KILL "$NSPAWN_PID" 2>/dev/null || true
        fi
        wait "$NSPAWN_PID" 2>/dev/null || true
    fi
    # The cgroups made for this run, deepest first (nspawn's payload/ and supervisor/ too).
    for dir in $CGROUPS; do
        if [ -d "$dir" ]; then
            find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
        fi
    done
    # nspawn cannot remove this on a host whose /run is not a tmpfs (it says so at exit).
    rmdir "/run/systemd/nspawn/propagate/$NAME" 2>/dev/null || true
    if [ "$status" -ne 0 ] && [ -s "$WORK/console.log" ]; then
        log "guest console (last 40 lines):"
        tail -n 40 "$WORK/console.log" | sed 's/^/  | /' >&2
    fi
    rm -rf "$WORK"
    log "teardown: $(since "$t0") s"
    exit "$status"
}

# --- host preparation --------------------------------------------------------------------

prepare_host() {
    [ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap, systemd-nspawn, cgroups)"
    [ -x "$BINARY" ] || die "no binary at $BINARY (make build)"
    local missing
    missing=$(missing_packages systemd-container mmdebstrap)
    if [ -n "$missing" ]; then
        # A subshell: install_packages keeps an EXIT trap of its own for its policy-rc.d.
        # shellcheck disable=SC2086 # word splitting of the package list is wanted
        (install_packages $missing) || die "cannot install $missing"
    fi
    for cmd in systemd-nspawn mmdebstrap nsenter timeout curl; do
        command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is missing"
    done
}

# The guest's root file system, built once per suite and package list and kept read-only:
# --volatile=overlay puts every run's changes on a tmpfs. Built in a temporary directory and
# renamed, so an interrupted build leaves no half cache; a lock keeps parallel runs from
# building it twice.
rootfs() {
    local key dir mirror t0
    key=$(printf '%s %s\n' "$SUITE" "$ROOTFS_PACKAGES" | sha256sum | cut -c1-12)
    dir=$CACHE/$SUITE-$key
    mkdir -p "$CACHE"
    exec 9>"$CACHE/build.lock"
    flock 9
    if [ "${E2E_REBUILD:-0}" = 1 ] && [ -d "$dir" ]; then
        rm -rf "$dir"
    fi
    if [ ! -d "$dir" ]; then
        t0=$(now)
        # The host's own Debian mirror when it has one (its deb822 file), else Debian's.
        mirror=http://deb.debian.org/debian
        [ -f /etc/apt/sources.list.d/debian.sources ] && mirror=/etc/apt/sources.list.d/debian.sources
        log "building the $SUITE root file system in $dir (once)"
        rm -rf "$dir.tmp"
        if ! timeout "$ROOTFS_BUILD_TIMEOUT" mmdebstrap --quiet --variant=minbase \
            --include="$ROOTFS_PACKAGES" "$SUITE" "$dir.tmp" "$mirror" >"$WORK/mmdebstrap.log" 2>&1; then
            tail -n 30 "$WORK/mmdebstrap.log" >&2
            rm -rf "$dir.tmp"
            die "mmdebstrap failed"
        fi
        mv "$dir.tmp" "$dir"
        log "root file system built in $(since "$t0") s ($(du -sh "$dir" | cut -f1))"
    fi
    exec 9>&-
    ROOTFS=$dir
}

# --- the container -----------------------------------------------------------------------

# nspawn makes payload/ and supervisor/ cgroups under its own cgroup, which on a host without
# systemd is the root of the hierarchy: two runs would collide. It gets a cgroup of its own.
cgroup_dirs() {
    if [ -d /sys/fs/cgroup/unified ] && [ -d /sys/fs/cgroup/systemd ]; then
        echo "/sys/fs/cgroup/systemd/$NAME /sys/fs/cgroup/unified/$NAME" # hybrid
    elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        echo "/sys/fs/cgroup/$NAME" # unified
    else
        echo "/sys/fs/cgroup/systemd/$NAME" # legacy
    fi
}

# Everything below `pid`, one per line.
descendants() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}

boot() {
    local t0 dir pid state i
    t0=$(now)
    mkdir -p "$WORK/stage"
    CGROUPS=$(cgroup_dirs)
    for dir in $CGROUPS; do mkdir -p "$dir"; done
    # --keep-unit and --register=no: without them nspawn asks the (absent) system bus for a
    # scope and for machined. The subshell moves itself into the cgroups, then becomes nspawn.
    (
        for dir in $CGROUPS; do echo "$BASHPID" >"$dir/cgroup.procs"; done
        exec systemd-nspawn --quiet --keep-unit --register=no --boot \
            --directory="$ROOTFS" --volatile=overlay --private-network \
            --machine="$NAME" --bind-ro="$WORK/stage:$GUEST_STAGE" --console=pipe
    ) </dev/null >"$WORK/console.log" 2>&1 &
    NSPAWN_PID=$!
    # The guest's PID 1 as the host sees it: below nspawn, and PID 1 in its own namespace.
    for ((i = 0; i < BOOT_TIMEOUT * 10; i++)); do
        for pid in $(descendants "$NSPAWN_PID"); do
            if awk '/^NSpid:/ { exit !(NF == 3 && $3 == 1) }' "/proc/$pid/status" 2>/dev/null; then
                LEADER=$pid
            fi
        done
        [ -n "$LEADER" ] && break
        kill -0 "$NSPAWN_PID" 2>/dev/null || die "systemd-nspawn exited"
        sleep 0.1
    done
    [ -n "$LEADER" ] || die "no guest PID 1 after ${BOOT_TIMEOUT}s"
    # `is-system-running --wait` fails while the bus is not up yet: poll instead.
    state=""
    for ((i = 0; i < BOOT_TIMEOUT * 10; i++)); do
        state=$(ct systemctl is-system-running 2>/dev/null || true)
        case $state in running | degraded) break ;; esac
        kill -0 "$NSPAWN_PID" 2>/dev/null || die "systemd-nspawn exited while booting"
        sleep 0.1
    done
    case $state in
    running) ;;
    degraded) log "guest is degraded: $(ct systemctl --failed --plain --no-legend | tr '\n' ' ')" ;;
    *) die "guest not up after ${BOOT_TIMEOUT}s (state: '$state')" ;;
    esac
    log "booted $SUITE with systemd as PID 1 in $(since "$t0") s"
}

# Runs a command in the guest (all its namespaces), with a clean environment and a bound.
ct() {
    timeout "${T:-$CT_TIMEOUT}" nsenter -t "$LEADER" -a -- env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 "$@"
}
# A shell script in the guest.
ctsh() { ct sh -c "$1"; }

# The config: a test-source feed encoded to H.264 in MPEG-TS, relayed as it is (`ts`) and
# transcoded to a scaled MJPEG (`small`); a feed behind `sh -c 'a | b'` (`piped`), whose
# grandchildren must end with the service; a feed reading a device node of group video
# (`device`). The children's stderr goes to /var/log/voyandz (LogsDirectory=).
write_config() {
    cat >"$WORK/stage/voyandz.yaml" <<'YAML'
# listenaddr/listenport are not used: voyandz.socket hands the socket over.
logdir: /var/log/voyandz
feeds:
  cam:
    command: >-
      ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=160x120:rate=10
      -c:v libx264 -preset ultrafast -tune zerolatency -g 10 -f mpegts -
  piped:
    command: >-
      sh -c 'ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi
      -i testsrc2=size=160x120:rate=10 -c:v libx264 -preset ultrafast -tune zerolatency
      -g 10 -f mpegts - | cat'
  device:
    command: cat /dev/voyandz-e2e-video
streams:
  ts:
    feed: cam
    type: stream
    mimetype: video/mp2t
  small:
    feed: cam
    type: stream
    mimetype: multipart/x-mixed-replace;boundary=ffmpeg
    command: >-
      ffmpeg -hide_banner -loglevel error -nostdin -probesize 32768 -analyzeduration 0 -i -
      -vf scale=80:60 -c:v mjpeg -q:v 10 -f mpjpeg -boundary_tag ffmpeg -
  piped:
    feed: piped
    type: stream
    mimetype: video/mp2t
  device:
    feed: device
    type: stream
    mimetype: application/octet-stream
YAML
    # On the host the device node and the logdir are missing: warnings, shown only on failure.
    if ! "$BINARY" --check -f "$WORK/stage/voyandz.yaml" >"$WORK/check.log" 2>&1; then
        cat "$WORK/check.log" >&2
        die "the e2e config does not load"
    fi
}

# The by-hand install of doc/SYSTEMD.md, with the binary at /usr/bin/voyandz.
install_voyandz() {
    local t0
    t0=$(now)
    cp "$BINARY" "$WORK/stage/voyandz"
    # voyandzctl is built beside the daemon.
    cp "$(dirname "$BINARY")/voyandzctl" "$WORK/stage/voyandzctl" || die "no voyandzctl beside $BINARY"
    cp systemd/voyandz.socket systemd/voyandz.service systemd/voyandz.sysusers "$WORK/stage/"
    cp dbus/org.voyandz.Voyandz1.conf dbus/org.voyandz.Voyandz1.service "$WORK/stage/"
    cp polkit/org.voyandz.Voyandz1.policy polkit/50-voyandz.rules "$WORK/stage/"
    write_config
    ctsh "set -e
        install -m 0755 $GUEST_STAGE/voyandz $GUEST_STAGE/voyandzctl /usr/bin/
        install -m 0644 $GUEST_STAGE/voyandz.socket $GUEST_STAGE/voyandz.service /etc/systemd/system/
        install -D -m 0644 $GUEST_STAGE/voyandz.sysusers /etc/sysusers.d/voyandz.conf
        systemd-sysusers
        install -D -m 0644 $GUEST_STAGE/org.voyandz.Voyandz1.conf /usr/share/dbus-1/system.d/org.voyandz.Voyandz1.conf
        install -D -m 0644 $GUEST_STAGE/org.voyandz.Voyandz1.service /usr/share/dbus-1/system-services/org.voyandz.Voyandz1.service
        busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig
        install -D -m 0644 $GUEST_STAGE/org.voyandz.Voyandz1.policy /usr/share/polkit-1/actions/org.voyandz.Voyandz1.policy
        install -D -m 0644 $GUEST_STAGE/50-voyandz.rules /etc/polkit-1/rules.d/50-voyandz.rules
        install -d -m 0755 /etc/voyandz
        install -m 0644 $GUEST_STAGE/voyandz.yaml /etc/voyandz/voyandz.yaml
        # /dev/zero's numbers under another name: readable through the group only.
        mknod -m 0660 /dev/voyandz-e2e-video c 1 5
        chgrp video /dev/voyandz-e2e-video
        systemctl daemon-reload" || die "install in the guest failed"
    log "installed voyandz in the guest in $(since "$t0") s ($(ct id voyandz))"
}

# --- checks ------------------------------------------------------------------------------

# run_check NAME FUNCTION: runs one check, times it, records PASS or FAIL.
run_check() {
    local name=$1 t0 verdict
    t0=$(now)
    log "--- $name"
    if "$2"; then verdict=PASS; else
        verdict=FAIL
        FAILED=1
    fi
    RESULTS="$RESULTS$(printf '%-4s  %-13s %7s s' "$verdict" "$name" "$(since "$t0")")"$'\n'
    log "$verdict $name ($(since "$t0") s)"
}

# Prints the value of one property of a unit.
prop() { ct systemctl show -p "$2" --value "$1"; }

# Polls a shell condition in the guest until it holds or `seconds` pass.
wait_ct() {
    local seconds=$1 condition=$2 i
    for ((i = 0; i < seconds * 10; i++)); do
        ctsh "$condition" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# The first bytes of a stream, fetched for at most `seconds` (a live stream never ends: curl
# stopping at --max-time is the normal end). Prints their hex dump.
fetch_hex() {
    local url=$1 seconds=$2 bytes=$3
    ctsh "curl -sS --max-time $seconds '$url' 2>/dev/null | head -c $bytes | od -An -tx1 -v"
}

check_socket() {
    ct systemctl start voyandz.socket || return 1
    local socket service listening
    socket=$(ct systemctl is-active voyandz.socket || true)
    service=$(ct systemctl is-active voyandz.service || true)
    listening=$(ct ss -Hltn 'sport = :8090' || true)
    log "voyandz.socket: $socket; voyandz.service: $service; listening: $(echo "$listening" | awk '{print $4}' | tr '\n' ' ')"
    [ "$socket" = active ] && [ "$service" = inactive ] && [ -n "$listening" ]
}

# MPEG-TS: 0x47 every 188 bytes.
is_mpegts() {
    # shellcheck disable=SC2086 # one word per byte is the point
    set -- $1
    [ "$#" -ge 376 ] && [ "$1" = 47 ] && [ "${189}" = 47 ] && [ "${377:-47}" = 47 ]
}

check_activation() {
    local hex4 hex6 t0
    t0=$(now)
    hex4=$(fetch_hex http://127.0.0.1:8090/stream/ts 5 564)
    log "IPv4: 564 bytes $(since "$t0") s after connecting (the service's start and ffmpeg's included)"
    hex6=$(fetch_hex 'http://[::1]:8090/stream/ts' 5 564)
    log "IPv4 got $(echo "$hex4" | wc -w) bytes, IPv6 $(echo "$hex6" | wc -w) (of 564 wanted)"
    log "MainPID $(prop voyandz.service MainPID), state $(ct systemctl is-active voyandz.service || true)"
    is_mpegts "$hex4" && is_mpegts "$hex6"
}

check_ready() {
    # Type=notify: `active` only after READY=1. Without it systemd waits TimeoutStartSec.
    if wait_ct 10 '[ "$(systemctl is-active voyandz.service)" = active ]'; then
        log "active; StatusText: $(prop voyandz.service StatusText)"
        return 0
    fi
    log "still $(ct systemctl is-active voyandz.service || true) after 10 s: no READY=1 (sd-notify)"
    return 1
}

check_sandbox() {
    # A client keeps `ts` running; look at its ffmpeg from the inside.
    ct systemd-run --quiet --unit=e2e-client-ts --property=RuntimeMaxSec=120 \
        curl -sS -o /dev/null http://127.0.0.1:8090/stream/ts || return 1
    wait_ct 10 'pgrep -u voyandz -x ffmpeg' || {
        log "no ffmpeg of user voyandz"
        return 1
    }
    local report
    report=$(ctsh 'pid=$(pgrep -u voyandz -x ffmpeg | head -n 1)
        grep -E "^(Uid|Groups|CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/$pid/status | tr -s "\t" " "
        cat /proc/$pid/cgroup | grep -m1 voyandz.service')
    printf '%s\n' "$report" | indent
    ctsh 'ls -ln /var/log/voyandz | tail -n +2' | indent
    echo "$report" | grep -q '^CapEff: 0000000000000000$' &&
        echo "$report" | grep -q '^CapBnd: 0000000000000000$' &&
        echo "$report" | grep -q '^NoNewPrivs: 1$' &&
        echo "$report" | grep -q '^Seccomp: 2$' &&
        echo "$report" | grep -q 'voyandz.service'
}

check_transcode() {
    # Decoding, swscale and the MJPEG encoder under MemoryDenyWriteExecute and the filter.
    local body
    body=$(ctsh "curl -sS --max-time 6 http://127.0.0.1:8090/stream/small 2>/dev/null | head -c 8192 | tr -c '[:print:]' '.'")
    local parts
    parts=$(echo "$body" | grep -io -- '--ffmpeg..Content-type: image/jpeg' | wc -l || true)
    log "JPEG parts in the first 8 KiB: $parts"
    if [ "$parts" -lt 2 ]; then
        ctsh 'tail -n 5 /var/log/voyandz/* 2>/dev/null' | indent
        return 1
    fi
}

check_group_device() {
    local hex
    hex=$(fetch_hex http://127.0.0.1:8090/stream/device 3 4096)
    log "read $(echo "$hex" | wc -w) bytes through group video ($(ct stat -c '%A %U:%G' /dev/voyandz-e2e-video))"
    [ "$(echo "$hex" | wc -w)" -eq 4096 ] && ! echo "$hex" | grep -q '[1-9a-f]'
}

check_journal() {
    local lines bad
    lines=$(ct journalctl --no-pager -o cat _SYSTEMD_UNIT=voyandz.service || true)
    echo "$lines" | head -n 3 | indent
    bad=$(echo "$lines" | grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} ' || true)
    log "$(echo "$lines" | grep -c . || true) lines from the service, $bad without the timestamp"
    [ "$bad" -eq 0 ] && echo "$lines" | head -n 1 | grep -q 'voyandz '
}

check_reload() {
    local pid restarts after
    pid=$(prop voyandz.service MainPID)
    restarts=$(prop voyandz.service NRestarts)
    ctsh "printf '%s\n' '  added:' '    feed: cam' '    type: stream' '    mimetype: video/mp2t' >> /etc/voyandz/voyandz.yaml" || return 1
    T=20 ct systemctl reload voyandz.service || log "systemctl reload failed"
    if ! wait_ct 10 '[ "$(curl -s -o /dev/null --max-time 2 -w "%{http_code}" http://127.0.0.1:8090/stream/added)" = 200 ]'; then
        log "/stream/added does not answer 200"
        return 1
    fi
    after=$(prop voyandz.service MainPID)
    log "MainPID $pid -> $after, NRestarts $restarts -> $(prop voyandz.service NRestarts)"
    # A daemon that dies of SIGHUP and is restarted also serves the new stream: not a reload.
    [ "$pid" = "$after" ] && [ "$restarts" = "$(prop voyandz.service NRestarts)" ]
}

# The daemon's objects, through the guest's real system bus (as root: polkit allows root).
BUSCTL_VOYANDZ="busctl --no-pager call org.voyandz.Voyandz1"

check_dbus() {
    local owner streams state
    owner=$(ct busctl --no-pager status org.voyandz.Voyandz1 2>/dev/null | awk -F= '$1 == "PID" { print $2 }' || true)
    log "org.voyandz.Voyandz1 is owned by pid ${owner:-nobody}; MainPID $(prop voyandz.service MainPID)"
    streams=$(ct $BUSCTL_VOYANDZ /org/voyandz/Voyandz1 org.voyandz.Voyandz1.Manager ListStreams) || return 1
    log "ListStreams: ${streams:0:120}"
    ct $BUSCTL_VOYANDZ /org/voyandz/Voyandz1/feed/piped org.voyandz.Voyandz1.Feed Stop || return 1
    state=$(ct busctl --no-pager get-property org.voyandz.Voyandz1 /org/voyandz/Voyandz1/feed/piped org.voyandz.Voyandz1.Feed State)
    log "feed piped after Stop(): $state"
    ct $BUSCTL_VOYANDZ /org/voyandz/Voyandz1/feed/piped org.voyandz.Voyandz1.Feed Start || return 1
    # Start() keeps it running with no client; Restart() puts it back in its on-demand mode.
    ct $BUSCTL_VOYANDZ /org/voyandz/Voyandz1/feed/piped org.voyandz.Voyandz1.Feed Restart || return 1
    local status code
    status=$(ct voyandzctl status) || return 1
    printf '%s\n' "$status" | indent
    ct voyandzctl stop stream small || return 1
    code=$(ctsh 'curl -s -o /dev/null --max-time 2 -w "%{http_code}" http://127.0.0.1:8090/stream/small' || true)
    ct voyandzctl start stream small || return 1
    log "/stream/small while stopped by voyandzctl: $code"
    [ "$owner" = "$(prop voyandz.service MainPID)" ] && [ "$state" = 's "stopped"' ] &&
        echo "$streams" | grep -q '"/org/voyandz/Voyandz1/stream/ts"' &&
        echo "$status" | grep -q '^voyandz ' && [ "$code" = 503 ]
}

check_bus_activation() {
    local t0 answer
    t0=$(now)
    answer=$(T=20 ct $BUSCTL_VOYANDZ /org/voyandz/Voyandz1 org.voyandz.Voyandz1.Manager ListFeeds) || {
        log "the call did not start the service: $(ct systemctl is-active voyandz.service || true)"
        return 1
    }
    log "answered in $(since "$t0") s by a service now $(ct systemctl is-active voyandz.service || true) (MainPID $(prop voyandz.service MainPID))"
    T=30 ct systemctl stop voyandz.service voyandz.socket || log "systemctl stop failed"
    echo "$answer" | grep -q '"/org/voyandz/Voyandz1/feed/cam"' &&
        [ -z "$(ctsh 'pgrep -a -x voyandz; pgrep -a -u voyandz' || true)" ]
}

# The administrator's password (root's, polkit's fallback admin) and its hash in the guest.
ADMIN_PASSWORD=e2e-root-password
ADMIN_HASH='$6$voyandze2e$oMAVYVZMLvZyaNn1Cm3hsng3oN0ThazN670rdPL1FnRc8kzHlXSE40WGmxm0FMiceBJpKeVjrt00ki0kg75Qb.'

# `voyandzctl ARGS` typed by user op in a login session (runuser -l: pam_systemd) at a
# terminal (script; --session-command keeps it the command's controlling terminal), answering ANSWER once the terminal shows "Password:"; prints what the
# terminal showed, then `exit=N`.
ctl_at_terminal() {
    local answer=$1
    shift
    ctsh "trap '' PIPE
        d=\$(mktemp -d); mkfifo \$d/in
        script --quiet --return --command 'runuser -l op --session-command \"voyandzctl $*\"' /dev/null <\$d/in >\$d/out 2>&1 &
        pid=\$!
        exec 3>\$d/in
        i=0
        until grep -q 'Password:' \$d/out || [ \$i -ge 100 ]; do sleep 0.1; i=\$((i + 1)); done
        printf '%s\n' '$answer' >&3
        wait \$pid; code=\$?
        exec 3>&-
        cat \$d/out; echo exit=\$code"
}

check_password() {
    local wrong right state
    ctsh "set -e
        echo 'op:x:1600:1600::/home/op:/bin/sh' >> /etc/passwd
        echo 'op:x:1600:' >> /etc/group
        echo 'op:!:19000::::::' >> /etc/shadow
        install -d -o 1600 -g 1600 /home/op
        sed -i 's|^root:[^:]*:|root:$ADMIN_HASH:|' /etc/shadow" || return 1
    wrong=$(T=40 ctl_at_terminal not-the-password stop feed piped) || return 1
    printf '%s\n' "$wrong" | indent
    state=$(ct busctl --no-pager get-property org.voyandz.Voyandz1 /org/voyandz/Voyandz1/feed/piped org.voyandz.Voyandz1.Feed State)
    log "feed piped after a wrong password: $state"
    right=$(T=40 ctl_at_terminal "$ADMIN_PASSWORD" stop feed piped) || return 1
    printf '%s\n' "$right" | indent
    printf '%s\n' "$wrong" | grep -q 'AUTHENTICATING FOR org.voyandz.Voyandz1.manage' &&
        printf '%s\n' "$wrong" | grep -q 'exit=4' && [ "$state" != 's "stopped"' ] &&
        printf '%s\n' "$right" | grep -q 'exit=0' &&
        [ "$(ct busctl --no-pager get-property org.voyandz.Voyandz1 /org/voyandz/Voyandz1/feed/piped org.voyandz.Voyandz1.Feed State)" = 's "stopped"' ] &&
        ct $BUSCTL_VOYANDZ /org/voyandz/Voyandz1/feed/piped org.voyandz.Voyandz1.Feed Restart
}

check_watchdog() {
    local pid limit since_ts t0 after i
    pid=$(prop voyandz.service MainPID)
    # systemctl shows "10s"; systemd-analyze turns that into microseconds.
    limit=$(ct systemd-analyze timespan "$(prop voyandz.service WatchdogUSec)" | awk '$1 == "μs:" { print int($2 / 1000000) }')
    limit=${limit:-0}
    if [ "$pid" -eq 0 ] || [ "$limit" -eq 0 ]; then
        log "MainPID $pid, WatchdogSec $limit"
        return 1
    fi
    since_ts=$(ct date '+%Y-%m-%d %H:%M:%S')
    t0=$(now)
    ct kill -STOP "$pid" || return 1
    log "SIGSTOP to $pid; WatchdogSec is ${limit}s"
    after=$pid
    for ((i = 0; i < (limit + WATCHDOG_SLACK) * 10; i++)); do
        after=$(prop voyandz.service MainPID)
        [ "$after" != "$pid" ] && [ "$after" != 0 ] && break
        sleep 0.1
    done
    ct journalctl --no-pager -o cat -u voyandz.service --since "$since_ts" | grep -E 'Watchdog|watchdog|Main process exited|Scheduled restart' | indent || true
    log "new MainPID $after after $(since "$t0") s"
    # No watchdog: wake the daemon up again, so that the checks after this one still test.
    if [ "$after" = "$pid" ]; then ct kill -CONT "$pid" || true; fi
    ct journalctl --no-pager -o cat -u voyandz.service --since "$since_ts" | grep -q 'Watchdog timeout' &&
        [ "$after" != "$pid" ] && [ "$after" != 0 ] &&
        wait_ct 10 "curl -s -o /dev/null --max-time 2 http://127.0.0.1:8090/stream/ts; [ \$? = 28 ]"
}

check_stop() {
    # A client of the `sh -c '... | cat'` feed, so that the grandchildren run at stop time.
    ct systemd-run --quiet --unit=e2e-client-piped --property=RuntimeMaxSec=120 \
        curl -sS -o /dev/null http://127.0.0.1:8090/stream/piped || return 1
    # Without them running, "nothing is left" would prove nothing.
    if ! wait_ct 10 'pgrep -u voyandz -x cat && pgrep -u voyandz -x sh'; then
        log "the piped feed did not start"
        return 1
    fi
    ctsh 'pgrep -u voyandz -a | cut -c1-70' | indent
    local t0
    t0=$(now)
    T=30 ct systemctl stop voyandz.service voyandz.socket || log "systemctl stop failed"
    log "systemctl stop took $(since "$t0") s"
    ct systemctl stop e2e-client-ts e2e-client-piped 2>/dev/null || true
    local left
    left=$(ctsh 'pgrep -a -x voyandz; pgrep -a -x ffmpeg; pgrep -a -u voyandz' || true)
    if [ -n "$left" ]; then
        log "left behind: $left"
        return 1
    fi
    [ "$(ct systemctl is-active voyandz.service || true)" = inactive ] &&
        [ "$(ct systemctl is-active voyandz.socket || true)" = inactive ]
}

# --- main --------------------------------------------------------------------------------

main() {
    local t_all t0
    t_all=$(now)
    trap teardown EXIT
    trap 'exit 130' INT TERM
    t0=$(now)
    prepare_host
    rootfs
    log "host ready in $(since "$t0") s (rootfs $ROOTFS)"
    boot
    install_voyandz
    run_check socket check_socket
    run_check activation check_activation
    run_check ready check_ready
    run_check sandbox check_sandbox
    run_check transcode check_transcode
    run_check group-device check_group_device
    run_check journal check_journal
    run_check reload check_reload
    run_check dbus check_dbus
    run_check password check_password
    run_check watchdog check_watchdog
    run_check stop check_stop
    run_check bus-activation check_bus_activation
    printf '\n%s' "$RESULTS" >&2
    log "total $(since "$t_all") s (before teardown)"
    if [ "$FAILED" -eq 0 ]; then log "all checks passed"; else log "SOME CHECKS FAILED"; fi
    return "$FAILED"
}

main "$@"
