#!/usr/bin/env bash
# Install firn-queue and firn-pilot on a cluster's login (submit) node, as a normal user.
# No root needed. Idempotent: run it again to upgrade or to change the configuration.
#
#   deploy/site/install-site.sh --grid NAME --plugin slurm|pbs|sge|condor|local \
#       --db-url URL|- --mon-url URL [options]
#
# Run it from a built Firn tree (`npm ci && npm run build`) on the login node itself, with
# the same Node.js (>= 20) that will run the daemon. It
#   1. copies firn-queue, @firn/core and their production dependencies, the JSON schemas,
#      and the one-file pilot (packages/pilot/dist/firn-pilot.js) under --prefix;
#   2. writes the daemon configuration (default ~/.config/firn/queue.ini, mode 0600) from
#      the arguments, and checks it with `firn-queue --check-config`;
#   3. with --systemd, installs and (re)starts a `systemctl --user` unit firn-queue.service.
# See docs/site-admin.md.
set -euo pipefail

PROG=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd)

usage() {
  cat <<EOF
Usage: $PROG --grid NAME --plugin PLUGIN --db-url URL|- --mon-url URL [options]

Required:
  --grid NAME            this site's grid name (datasets are assigned to it)
  --plugin PLUGIN        slurm | pbs | sge | condor | local
  --db-url URL|-         the Firn database, e.g. mysql://firn_queue:PW@db.example.org:3306/firn;
                         '-' reads it from the first line of stdin (keeps the password out
                         of 'ps' and your shell history)
  --mon-url URL          firn-mon URL the pilots report to (reachable from worker nodes)

Options:
  --source DIR           built Firn tree to install from (default: $(cd "$HERE/../.." && pwd))
  --prefix DIR           where to install (default: \$XDG_DATA_HOME/firn or ~/.local/share/firn)
  --config FILE          configuration to write (default: \$XDG_CONFIG_HOME/firn/queue.ini
                         or ~/.config/firn/queue.ini)
  --submit-dir DIR       [queue] submit_dir: scripts, passkeys and batch logs; must be on a
                         file system the worker nodes see (default: ~/firn/submit/GRID)
  --node PATH            node on the worker nodes, for the pilot (default: this node's)
  --max-queued N         tasks kept queued or running (default 100)
  --schedule CRON        node-cron schedule with seconds (default '0 * * * * *': every minute)
  --capabilities JSON    what a batch slot offers, e.g. '{"cpu":8,"gpu":0,"memory":16000,"time":1440}'
  --partition NAME       Slurm partition
  --queue NAME           PBS / SGE queue
  --account NAME         accounting project / group
  --extra-directives S   extra batch directives, separated by ';'
  --scratch DIR          [system] scratch: parent of task scratch directories on workers
  --env NAME=VALUE       a variable for every job ([environment]); repeat for several
  --systemd              install and (re)start the systemd user unit firn-queue.service
  --no-start             with --systemd: install and enable the unit, do not (re)start it
  --keep-config          do not rewrite an existing configuration file
  -h, --help             this text
EOF
}

die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
log() { printf '%s: %s\n' "$PROG" "$*"; }

# --- arguments -----------------------------------------------------------------------------
GRID='' PLUGIN='' DB_URL='' MON_URL=''
SOURCE=$(cd "$HERE/../.." && pwd)
PREFIX=${XDG_DATA_HOME:-$HOME/.local/share}/firn
CONFIG=${XDG_CONFIG_HOME:-$HOME/.config}/firn/queue.ini
SUBMIT_DIR='' NODE_WORKER='' MAX_QUEUED=100 SCHEDULE='0 * * * * *' CAPABILITIES=''
PARTITION='' QUEUE='' ACCOUNT='' EXTRA='' SCRATCH=''
ENV_VARS=()
SYSTEMD=0 START=1 KEEP_CONFIG=0

need_arg() {
  if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi
}
while [ "$#" -gt 0 ]; do
  case $1 in
    --grid) need_arg "$@"; GRID=$2; shift 2 ;;
    --plugin) need_arg "$@"; PLUGIN=$2; shift 2 ;;
    --db-url) need_arg "$@"; DB_URL=$2; shift 2 ;;
    --mon-url) need_arg "$@"; MON_URL=$2; shift 2 ;;
    --source) need_arg "$@"; SOURCE=$2; shift 2 ;;
    --prefix) need_arg "$@"; PREFIX=$2; shift 2 ;;
    --config) need_arg "$@"; CONFIG=$2; shift 2 ;;
    --submit-dir) need_arg "$@"; SUBMIT_DIR=$2; shift 2 ;;
    --node) need_arg "$@"; NODE_WORKER=$2; shift 2 ;;
    --max-queued) need_arg "$@"; MAX_QUEUED=$2; shift 2 ;;
    --schedule) need_arg "$@"; SCHEDULE=$2; shift 2 ;;
    --capabilities) need_arg "$@"; CAPABILITIES=$2; shift 2 ;;
    --partition) need_arg "$@"; PARTITION=$2; shift 2 ;;
    --queue) need_arg "$@"; QUEUE=$2; shift 2 ;;
    --account) need_arg "$@"; ACCOUNT=$2; shift 2 ;;
    --extra-directives) need_arg "$@"; EXTRA=$2; shift 2 ;;
    --scratch) need_arg "$@"; SCRATCH=$2; shift 2 ;;
    --env) need_arg "$@"; ENV_VARS+=("$2"); shift 2 ;;
    --systemd) SYSTEMD=1; shift ;;
    --no-start) START=0; shift ;;
    --keep-config) KEEP_CONFIG=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

[ -n "$GRID" ] || die "--grid is required (see --help)"
[ -n "$PLUGIN" ] || die "--plugin is required (see --help)"
[ -n "$DB_URL" ] || die "--db-url is required (see --help)"
[ -n "$MON_URL" ] || die "--mon-url is required (see --help)"
case $PLUGIN in slurm|pbs|sge|condor|local) ;; *) die "--plugin must be slurm, pbs, sge, condor or local, got '$PLUGIN'" ;; esac
case $GRID in *[!A-Za-z0-9_.-]*|.*|-*) die "--grid may hold letters, digits, '_', '.', '-' (not first), got '$GRID'" ;; esac
case $MON_URL in http://*|https://*) ;; *) die "--mon-url must be an http:// or https:// URL, got '$MON_URL'" ;; esac
case $MAX_QUEUED in ''|*[!0-9]*|0) die "--max-queued must be a positive integer, got '$MAX_QUEUED'" ;; esac
if [ "$DB_URL" = - ]; then
  IFS= read -r DB_URL || true
  [ -n "$DB_URL" ] || die "--db-url -: nothing on stdin"
fi
case $DB_URL in mysql://*|mariadb://*|sqlite:*) ;; *) die "--db-url must start with mysql://, mariadb:// or sqlite:" ;; esac
[ "$START" = 1 ] || [ "$SYSTEMD" = 1 ] || die "--no-start only makes sense with --systemd"
for kv in "${ENV_VARS[@]+"${ENV_VARS[@]}"}"; do
  case $kv in [A-Za-z_]*=*) ;; *) die "--env expects NAME=VALUE, got '$kv'" ;; esac
  name=${kv%%=*}
  case $name in *[!A-Za-z0-9_]*) die "--env: '$name' is not a valid variable name" ;; esac
done
SUBMIT_DIR=${SUBMIT_DIR:-$HOME/firn/submit/$GRID}

command -v node >/dev/null 2>&1 || die "node is not on PATH (Node.js >= 20 is needed)"
NODE=$(command -v node)
node_major=$("$NODE" -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js >= 20 is needed, $NODE is $("$NODE" --version)"
NODE_WORKER=${NODE_WORKER:-$NODE}
command -v npm >/dev/null 2>&1 || die "npm is not on PATH (it comes with Node.js; used to list the dependencies to copy)"

# Paths go unquoted into the INI file and the pilot command line.
for p in "$PREFIX" "$CONFIG" "$SUBMIT_DIR" "$NODE_WORKER" ${SCRATCH:+"$SCRATCH"}; do
  case $p in /*) ;; *) die "paths must be absolute, got '$p'" ;; esac
  case $p in *[[:space:]\;\#\"\']*) die "paths must not contain blanks, quotes, ';' or '#', got '$p'" ;; esac
done

# --- what to copy --------------------------------------------------------------------------
SOURCE=$(cd "$SOURCE" && pwd)
for f in packages/queue/bin/firn-queue packages/queue/dist/cli.js packages/core/dist/index.js \
         packages/pilot/dist/firn-pilot.js schemas/config.schema.json; do
  [ -e "$SOURCE/$f" ] || die "$SOURCE/$f is missing: run 'npm ci && npm run build' in $SOURCE first"
done

# Production dependencies of @firn/queue (and so @firn/core), as installed in the source
# tree. npm ls may exit non-zero over unrelated problems while still listing the tree.
# Sorted, so that a package comes before the packages nested in it.
deps=$(cd "$SOURCE" || exit; { npm ls --omit=dev --all --parseable --workspace @firn/queue 2>/dev/null || true; } | LC_ALL=C sort -u)
printf '%s\n' "$deps" | grep -q '/node_modules/@firn/core$' \
  || die "cannot list the dependencies of @firn/queue in $SOURCE (is it installed? npm ci)"

LIB=$PREFIX/lib
NEW=$PREFIX/lib.new.$$
cleanup() { rm -rf "$NEW"; }
trap cleanup EXIT
mkdir -p "$PREFIX"
rm -rf "$NEW"
mkdir -p "$NEW/packages/core" "$NEW/packages/queue" "$NEW/packages/pilot/dist" "$NEW/node_modules"

cp -p "$SOURCE/package.json" "$NEW/"
cp -pR "$SOURCE/schemas" "$NEW/"
cp -p "$SOURCE/packages/core/package.json" "$NEW/packages/core/"
cp -pR "$SOURCE/packages/core/dist" "$NEW/packages/core/"
cp -p "$SOURCE/packages/queue/package.json" "$NEW/packages/queue/"
cp -pR "$SOURCE/packages/queue/dist" "$SOURCE/packages/queue/bin" "$NEW/packages/queue/"
cp -p "$SOURCE/packages/pilot/package.json" "$NEW/packages/pilot/"
cp -p "$SOURCE/packages/pilot/dist/firn-pilot.js" "$NEW/packages/pilot/dist/"
count=0
while IFS= read -r dir; do
  case $dir in
    "$SOURCE"/node_modules/*|"$SOURCE"/packages/*/node_modules/*) ;;
    *) continue ;; # the workspace root and packages/* themselves
  esac
  rel=${dir#"$SOURCE"/}
  # already copied as part of the package it is nested in
  if [ -e "$NEW/$rel" ] || [ -L "$NEW/$rel" ]; then continue; fi
  mkdir -p "$NEW/$(dirname "$rel")"
  # -P: a workspace link such as node_modules/@firn/core -> ../../packages/core stays a link
  cp -PpR "$dir" "$NEW/$rel"
  count=$((count + 1))
done <<<"$deps"
find "$NEW" -name '*.map' -type f -delete
# Smoke test of the copy before it replaces the installed one.
"$NODE" "$NEW/packages/queue/bin/firn-queue" --help >/dev/null \
  || die "the copied firn-queue does not start (see the error above)"
rm -rf "$LIB.old"
if [ -e "$LIB" ]; then mv "$LIB" "$LIB.old"; fi
mv "$NEW" "$LIB"
rm -rf "$LIB.old"
trap - EXIT
version=$("$NODE" -p "require('$LIB/packages/queue/package.json').version")
log "installed firn-queue $version and firn-pilot in $LIB ($count packages)"

mkdir -p "$PREFIX/bin"
cat >"$PREFIX/bin/firn-queue" <<EOF
#!/bin/sh
# firn-queue, installed by $PROG
exec "$NODE" "$LIB/packages/queue/bin/firn-queue" "\$@"
EOF
chmod 0755 "$PREFIX/bin/firn-queue"
PILOT=$LIB/packages/pilot/dist/firn-pilot.js

# --- configuration ---------------------------------------------------------------------------
mkdir -p "$SUBMIT_DIR"
chmod 0700 "$SUBMIT_DIR"
ini=$(mktemp)
trap 'rm -f "$ini"' EXIT
{
  printf '; firn-queue for grid %s, written by %s — see docs/site-admin.md.\n' "$GRID" "$PROG"
  printf '; Run it again with new arguments to rewrite this file (or pass --keep-config).\n\n'
  printf '[db]\n; the central Firn database (account firn_queue of deploy/sql/grants.sql)\n'
  # quoted: a password may hold ';' or '#', which would otherwise start a comment
  printf 'url = "%s"\n\n' "$DB_URL"
  printf '[mon]\n; what the pilots are told to report to\nurl = %s\n\n' "$MON_URL"
  printf '[queue]\ngrid = %s\nplugin = %s\n' "$GRID" "$PLUGIN"
  printf '; node-cron, six fields (seconds first)\nschedule = %s\n' "$SCHEDULE"
  printf '; tasks kept queued or running in the batch system\nmax_queued = %s\n' "$MAX_QUEUED"
  printf '; scripts, passkeys (mode 0600) and batch logs; seen by the worker nodes\nsubmit_dir = %s\n' "$SUBMIT_DIR"
  [ -z "$CAPABILITIES" ] || printf 'capabilities = %s\n' "$CAPABILITIES"
  [ -z "$PARTITION" ] || printf 'partition = %s\n' "$PARTITION"
  [ -z "$QUEUE" ] || printf 'queue = %s\n' "$QUEUE"
  [ -z "$ACCOUNT" ] || printf 'account = %s\n' "$ACCOUNT"
  [ -z "$EXTRA" ] || printf 'extra_directives = "%s"\n' "$EXTRA"
  printf '\n[system]\n; how the worker nodes run the pilot\npilot = %s %s\n' "$NODE_WORKER" "$PILOT"
  [ -z "$SCRATCH" ] || printf 'scratch = %s\n' "$SCRATCH"
  printf '\n[environment]\n'
  for kv in "${ENV_VARS[@]+"${ENV_VARS[@]}"}"; do printf '%s = "%s"\n' "${kv%%=*}" "${kv#*=}"; done
  printf '\n[log]\n; json lines (journald, log shippers) or text\nformat = json\n'
} >"$ini"

mkdir -p "$(dirname "$CONFIG")"
chmod 0700 "$(dirname "$CONFIG")"
if [ -e "$CONFIG" ] && [ "$KEEP_CONFIG" = 1 ]; then
  log "kept $CONFIG (--keep-config)"
elif [ -e "$CONFIG" ] && cmp -s "$ini" "$CONFIG"; then
  log "$CONFIG is up to date"
else
  if [ -e "$CONFIG" ]; then
    backup="$CONFIG.$(date +%Y%m%d%H%M%S).bak"
    cp -p "$CONFIG" "$backup"
    log "previous configuration saved as $backup"
  fi
  install -m 0600 "$ini" "$CONFIG"
  log "wrote $CONFIG"
fi
rm -f "$ini"
trap - EXIT
"$PREFIX/bin/firn-queue" --config "$CONFIG" --check-config || die "$CONFIG does not pass --check-config"

# --- systemd user unit -----------------------------------------------------------------------
if [ "$SYSTEMD" = 1 ]; then
  command -v systemctl >/dev/null 2>&1 || die "--systemd: systemctl is not available"
  unit_dir=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user
  mkdir -p "$unit_dir"
  unit=$(mktemp)
  cat >"$unit" <<EOF
# firn-queue for grid $GRID, written by $PROG. See docs/site-admin.md.
[Unit]
Description=Firn queue daemon for grid $GRID
After=network-online.target

[Service]
Type=exec
ExecStart=$NODE $LIB/packages/queue/bin/firn-queue --config $CONFIG
Restart=on-failure
RestartSec=30s
# SIGTERM lets the running cycle finish; a daemon killed mid-cycle loses nothing.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=120s
NoNewPrivileges=yes

[Install]
WantedBy=default.target
EOF
  if cmp -s "$unit" "$unit_dir/firn-queue.service"; then
    log "$unit_dir/firn-queue.service is up to date"
  else
    install -m 0644 "$unit" "$unit_dir/firn-queue.service"
    log "wrote $unit_dir/firn-queue.service"
  fi
  rm -f "$unit"
  systemctl --user daemon-reload
  systemctl --user enable firn-queue.service
  if [ "$START" = 1 ]; then
    systemctl --user restart firn-queue.service
    log "started: systemctl --user status firn-queue; journalctl --user -u firn-queue -f"
  fi
  if command -v loginctl >/dev/null 2>&1 && [ "$(loginctl show-user "$USER" -p Linger --value 2>/dev/null || true)" != yes ]; then
    if loginctl enable-linger "$USER" 2>/dev/null; then
      log "enabled lingering: firn-queue keeps running after you log out"
    else
      log "WARNING: could not enable lingering; firn-queue stops when your last session ends."
      log "         Ask an administrator for 'loginctl enable-linger $USER', or see docs/site-admin.md."
    fi
  fi
else
  log "start it with: $PREFIX/bin/firn-queue --config $CONFIG"
  log "(or run this script again with --systemd for a systemd user unit)"
fi
