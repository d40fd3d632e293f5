#!/usr/bin/env bash
# Stop what the test/services/start-*.sh scripts started, and only that: each of them
# leaves a marker in /var/lib/firn-test/started/<daemon> when it starts a daemon, so a
# MariaDB (or anything else) that was already running before is left alone.
#
#   teardown.sh            stop our daemons (by pid file / their own shutdown command)
#   teardown.sh --purge    also purge the Debian packages these scripts installed (listed in
#                          /var/lib/firn-test/installed-packages), delete their state
#                          (Slurm/munge/SGE spool, slapd data, sshd keys, /etc/firn-test,
#                          /opt/slurm-torque) and the user firnsite: back to a cold machine.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
require_root
PURGE=0; [ "${1:-}" = --purge ] && PURGE=1

ours() { [ -e "$FIRN_STATE/started/$1" ]; }
done_() { rm -f "$FIRN_STATE/started/$1"; }
# SGE daemons shut down on request, but qmaster may take a while: TERM after 30 s
sge_stop() {  # sge_stop PIDFILE QCONF-ARGS...
  local pf=$1 p; shift; p=$(cat "$pf")
  "$@" >/dev/null 2>&1 || kill "$p" 2>/dev/null
  wait_gone "$p" 30 || { log "pid $p still alive: TERM"; stop_pidfile "$pf"; }
}

# SGE: ask the daemons to shut down (qconf -ke / -km), fall back to TERM by pid file
QPF=/var/spool/gridengine/qmaster/qmaster.pid EPF=/var/run/gridengine/execd.pid
if ours sge_execd && alive "$EPF"; then log "stopping sge_execd"; sge_stop "$EPF" qconf -ke localhost; fi
ours sge_execd && done_ sge_execd
if ours sge_qmaster && alive "$QPF"; then log "stopping sge_qmaster"; sge_stop "$QPF" qconf -km; fi
ours sge_qmaster && done_ sge_qmaster

# Slurm, munge, sshd, slapd: TERM by pid file
for d in slurmd:/run/slurmd.pid slurmctld:/run/slurmctld.pid slurmdbd:/run/slurmdbd.pid \
         munged:/run/munge/munged.pid sshd:/run/firn-test-sshd.pid slapd:/var/lib/firn-test/slapd/slapd.pid; do
  name=${d%%:*} pf=${d#*:}
  if ours "$name"; then
    alive "$pf" && { log "stopping $name"; stop_pidfile "$pf"; }
    done_ "$name"
  fi
done

# MariaDB: only if we started it (clean shutdown)
if ours mariadb; then
  if [ -s /run/mysqld/mysqld.pid ] && alive /run/mysqld/mysqld.pid; then
    log "stopping mariadbd"; p=$(cat /run/mysqld/mysqld.pid)
    mariadb-admin --no-defaults --protocol=socket -S /run/mysqld/mysqld.sock -u root shutdown 2>/dev/null || kill "$p"
    wait_gone "$p" 60 || log "mariadbd $p still alive"
  fi
  done_ mariadb
fi

if ((PURGE)); then
  if [ -s "$FIRN_STATE/installed-packages" ]; then
    mapfile -t pk < "$FIRN_STATE/installed-packages"
    log "purging ${pk[*]}"
    # slurm-wlm-torque may be listed although gridengine-client removed it since
    present=(); for p in "${pk[@]}"; do installed "$p" && present+=("$p"); done
    ((${#present[@]})) && "${APT[@]}" purge --autoremove -y -qq "${present[@]}" >/dev/null 2>&1
  fi
  rm -rf /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm \
         /var/lib/gridengine /var/spool/gridengine /run/gridengine /opt/slurm-torque \
         "$FIRN_STATE" "$FIRN_ETC" /var/log/firn-test-sshd.log
  # munge's key only if we installed munge (it may belong to something else otherwise)
  installed munge || rm -rf /etc/munge /var/lib/munge /var/log/munge /run/munge
  id firnsite >/dev/null 2>&1 && userdel -r firnsite 2>/dev/null
  log "purged"
fi
echo "teardown done ($(elapsed))"
