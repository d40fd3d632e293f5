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
  debconf_preseed "${need[@]}"
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

# Answers for the packages that would otherwise ask (DEBIAN_FRONTEND=noninteractive takes
# the defaults, which are wrong for these two):
#  * slapd: no_configuration=true -> the postinst builds no cn=config and no dc=nodomain
#    directory; start-slapd.sh runs its own slapd.conf.
#  * gridengine-*: let the postinst create cell "default" with master "localhost"
#    (see start-sge.sh for why the host is called localhost).
debconf_preseed() {
  local p q
  for p in "$@"; do
    case "$p" in
      slapd) echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections ;;
      gridengine-*)
        for q in gridengine-common gridengine-master gridengine-exec gridengine-client; do
          printf '%s shared/gridengineconfig boolean true\n%s shared/gridenginecell string default\n%s shared/gridenginemaster string localhost\n' \
            "$q" "$q" "$q" | debconf-set-selections
        done ;;
    esac
  done
}

# remember that we started a daemon (teardown.sh only stops those)
mark_started() { mkdir -p "$FIRN_STATE/started"; touch "$FIRN_STATE/started/$1"; }

# running: the pid exists and is not a zombie. (PID 1 on these machines is not an init
# that reaps promptly: a daemon that exited can linger as a zombie for a few seconds.)
pid_running() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
alive() { [ -s "$1" ] && pid_running "$(cat "$1")"; }

# wait_gone PID [SECONDS]: wait until PID has exited (default 15 s)
wait_gone() {
  local n=$(( ${2:-15} * 10 ))
  for _ in $(seq "$n"); do pid_running "$1" || return 0; sleep 0.1; done
  return 1
}

# stop_pidfile FILE: TERM the pid in FILE (a daemon of ours), KILL it after 15 s
stop_pidfile() {
  alive "$1" || return 0
  local p; p=$(cat "$1"); kill "$p" 2>/dev/null || true
  wait_gone "$p" 15 && return 0
  log "pid $p ($1) did not stop on TERM, sending KILL"; kill -9 "$p" 2>/dev/null || true
  wait_gone "$p" 5
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
