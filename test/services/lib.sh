# shellcheck shell=bash
# Helpers shared by test/services/*.sh (sourced, never run directly).
#
# Where things live:
#   /etc/firn-test/*.env       KEY=VALUE files the tests read (one per service + services.env)
#   /etc/firn-test/ssh/        the test SSH key pair
#   /var/lib/firn-test/        state of these scripts: which daemons/packages *we* started or
#                              installed (teardown.sh stops/purges only those), slapd data
#
# The machine is Debian 12 without systemd, and /usr/sbin/policy-rc.d exits 101, so
# `apt-get install` never starts a service: every script starts its daemons itself.

FIRN_ETC=${FIRN_ETC:-/etc/firn-test}
FIRN_STATE=${FIRN_STATE:-/var/lib/firn-test}
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)

_T0=$(date +%s%N)
_NAME=$(basename "$0" .sh)
elapsed() { echo "$(( ($(date +%s%N) - _T0) / 1000000 ))ms"; }
log() { echo "[$_NAME +$(elapsed)] $*" >&2; }
die() { echo "[$_NAME +$(elapsed)] ERROR: $*" >&2; exit 1; }

require_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# apt_install PKG...: install the missing ones (no recommends); `apt-get update` at most
# once per 6 h (a fresh machine may have no package lists at all). Packages that this
# call really installed are remembered in $FIRN_STATE/installed-packages so that
# `teardown.sh --purge` removes only what we added, never what the machine came with.
apt_install() {
  local need=() p
  for p in "$@"; do installed "$p" || need+=("$p"); done
  ((${#need[@]})) || return 0
  mkdir -p "$FIRN_STATE"
  local stamp=$FIRN_STATE/apt-updated
  if [ -z "$(find "$stamp" -mmin -360 2>/dev/null)" ]; then
    log "apt-get update"
    "${APT[@]}" update -qq >/dev/null || die "apt-get update failed"
    touch "$stamp"
  fi
  log "apt-get install ${need[*]}"
  "${APT[@]}" install -y -qq --no-install-recommends "${need[@]}" >"$FIRN_STATE/apt-install.log" 2>&1 \
    || { tail -20 "$FIRN_STATE/apt-install.log" >&2; die "apt-get install ${need[*]} failed"; }
  for p in "${need[@]}"; do
    installed "$p" && echo "$p" >> "$FIRN_STATE/installed-packages"
  done
  sort -u -o "$FIRN_STATE/installed-packages" "$FIRN_STATE/installed-packages"
}

# remember that we started a daemon (teardown.sh only stops those)
mark_started() { mkdir -p "$FIRN_STATE/started"; touch "$FIRN_STATE/started/$1"; }

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pidfile FILE: TERM the pid in FILE (a daemon of ours), wait up to 10 s
stop_pidfile() {
  alive "$1" || return 0
  local p; p=$(cat "$1"); kill "$p" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  log "pid $p ($1) did not stop on TERM, sending KILL"; kill -9 "$p" 2>/dev/null || true
}

# wait_until SECONDS CMD...: poll CMD every 0.2 s until it succeeds
wait_until() {
  local n=$(( $1 * 5 )); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  "$@" >/dev/null 2>&1
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# write_env FILE KEY=VALUE...: (re)write a KEY=VALUE file atomically, mode 0644.
# Values are written verbatim (no quoting): keep them free of spaces and quotes so the
# file is both `source`-able by sh and trivially parseable by the tests.
write_env() {
  local f=$1; shift
  mkdir -p "$(dirname "$f")"
  { echo "# written by test/services/$_NAME.sh at $(date -u +%Y-%m-%dT%H:%M:%SZ)"; printf '%s\n' "$@"; } > "$f.tmp"
  chmod 0644 "$f.tmp"; mv -f "$f.tmp" "$f"
}

# write_if_changed FILE CONTENT: returns 0 if the file was (re)written, 1 if unchanged
write_if_changed() {
  if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then return 1; fi
  mkdir -p "$(dirname "$1")"; printf '%s\n' "$2" > "$1"; return 0
}
