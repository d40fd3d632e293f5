#!/usr/bin/env bash
# Start every real service the integration tests use, or only those named:
#   test/services/start-all.sh                   # all of them
#   test/services/start-all.sh mariadb slurm     # only these
# Names: mariadb sge slurm sshd slapd chromium (also: all). Each start script is
# idempotent, so running this again is cheap (~seconds). Prints a timing per service.
#
# Writes /etc/firn-test/services.env: one KEY=VALUE per line, for the tests:
#   <SVC>_AVAILABLE=yes|no for MARIADB SLURM TORQUE SGE SSH LDAP CHROMIUM (checked live,
#   for every service, named or not), then the keys of each available service's own env
#   file (mariadb.env, slurm.env, sge.env, ssh.env, ldap.env, chromium.env in the same dir).
#
# Order: Grid Engine before Slurm, so that Slurm's Torque wrappers go straight to
# /opt/slurm-torque instead of being installed to /usr/bin and then removed again by
# gridengine-client (see start-slurm.sh). All missing Debian packages are installed in one
# apt-get run first (each script's `--packages`), which is much faster than one per script.
#
# Exit status: 0 if every named service started, 1 otherwise (services.env is written anyway).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
require_root

ORDER=(mariadb sge slurm sshd slapd chromium)
script_of() { case "$1" in chromium) echo "$HERE/install-chromium.sh" ;; *) echo "$HERE/start-$1.sh" ;; esac; }

want=()
if [ $# -eq 0 ] || [ "$*" = all ]; then want=("${ORDER[@]}"); else
  for a in "$@"; do
    case " ${ORDER[*]} " in *" $a "*) ;; *) die "unknown service '$a' (known: ${ORDER[*]})" ;; esac
  done
  for s in "${ORDER[@]}"; do case " $* " in *" $s "*) want+=("$s") ;; esac; done
fi
selected() { case " ${want[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
# start-slurm.sh must know that Grid Engine is coming even before it is installed
selected sge && export FIRN_SGE_PLANNED=1

echo "== firn test services: ${want[*]}"
mkdir -p "$FIRN_ETC" "$FIRN_STATE"

# --- 1. one apt-get run for everything missing -------------------------------------------
pkgs=()
for s in "${want[@]}"; do
  # shellcheck disable=SC2207
  pkgs+=($(bash "$(script_of "$s")" --packages))
done
t=$(date +%s%N)
apt_install "${pkgs[@]}"
printf '   %-10s %6d ms\n' packages $(( ($(date +%s%N) - t) / 1000000 ))

# --- 2. the start scripts, in order -------------------------------------------------------
failed=()
for s in "${want[@]}"; do
  t=$(date +%s%N)
  out=$(bash "$(script_of "$s")" 2>&1); rc=$?
  ms=$(( ($(date +%s%N) - t) / 1000000 ))
  if [ $rc -eq 0 ]; then
    printf '   %-10s %6d ms  %s\n' "$s" "$ms" "$(grep '^OK' <<<"$out" | tail -1)"
  else
    printf '   %-10s %6d ms  FAILED (exit %d):\n' "$s" "$ms" "$rc"
    sed 's/^/      | /' <<<"$out" | tail -30
    failed+=("$s")
  fi
done

# --- 3. services.env: live checks for every service, then each one's own keys -----------
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
ok_mariadb()  { mariadb --no-defaults --connect-timeout=3 -h 127.0.0.1 -P 3306 -u root -e 'SELECT 1' >/dev/null 2>&1; }
ok_slurm()    { [ -f "$FIRN_ETC/slurm.env" ] && timeout 10 sinfo -h >/dev/null 2>&1; }
ok_torque()   { ok_slurm && [ -x "$(sed -n 's/^TORQUE_BIN=//p' "$FIRN_ETC/slurm.env")/qsub" ]; }
ok_sge()      { [ -f "$FIRN_ETC/sge.env" ] && timeout 10 qstat -f -q all.q@localhost >/dev/null 2>&1; }
ok_ssh()      { [ -f "$FIRN_ETC/ssh.env" ] && alive /run/firn-test-sshd.pid; }
ok_ldap()     { [ -f "$FIRN_ETC/ldap.env" ] && timeout 10 ldapsearch -x -LLL -H ldap://127.0.0.1:3890 -s base -b '' >/dev/null 2>&1; }
ok_chromium() { [ -f "$FIRN_ETC/chromium.env" ] && [ -x /usr/bin/chromium ]; }
lines=()
for pair in MARIADB:mariadb:mariadb SLURM:slurm:slurm TORQUE:torque: SGE:sge:sge SSH:ssh:ssh LDAP:ldap:ldap CHROMIUM:chromium:chromium; do
  IFS=: read -r key fn _ <<<"$pair"
  if "ok_$fn"; then lines+=("${key}_AVAILABLE=yes"); else lines+=("${key}_AVAILABLE=no"); fi
done
for pair in MARIADB:mariadb SLURM:slurm SGE:sge SSH:ssh LDAP:ldap CHROMIUM:chromium; do
  IFS=: read -r key file <<<"$pair"
  case " ${lines[*]} " in *" ${key}_AVAILABLE=yes "*) ;; *) continue ;; esac
  while IFS= read -r l; do lines+=("$l"); done < <(grep -v '^#' "$FIRN_ETC/$file.env")
done
write_env "$FIRN_ETC/services.env" "${lines[@]}"
echo "   wrote $FIRN_ETC/services.env ($(grep -c '_AVAILABLE=yes' "$FIRN_ETC/services.env") services available)"
grep '_AVAILABLE=' "$FIRN_ETC/services.env" | tr '\n' ' '; echo

if ((${#failed[@]})); then
  echo "== FAILED: ${failed[*]} (total $(elapsed))"; exit 1
fi
echo "== all started (total $(elapsed))"
