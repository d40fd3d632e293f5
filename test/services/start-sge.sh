#!/usr/bin/env bash
# Son of Grid Engine 8.1.9 (Debian 12 gridengine-master/-exec/-client), one host, no systemd.
# Cell "default", SGE_ROOT=/var/lib/gridengine; inside SGE this host is called "localhost".
# Queue all.q on this host with SGE_SLOTS slots (default max(nproc, 8): test jobs mostly
# sleep, so the host is deliberately oversubscribed), 1 s scheduling interval, jobs of
# any uid (root included). Writes /etc/firn-test/sge.env.
#
# Pitfalls handled here:
#  * gridengine-client and slurm-wlm-torque both ship /usr/bin/qsub, qstat, qdel, so
#    installing Grid Engine REMOVES slurm-wlm-torque. If it was installed, start-slurm.sh
#    is re-run afterwards: it then unpacks the Torque wrappers into /opt/slurm-torque.
#  * The host name resolves to 127.0.0.1, whose reverse name is "localhost"; commlib then
#    refuses clients ("client IP resolved to host name localhost. This is not identical
#    to clients host name vm"). A host_aliases file makes every local name "localhost".
#  * min_uid/min_gid default to 1000 in the global config: execd refuses root's jobs.
#  * The default scheduling interval is 15 s, and accounting (qacct) is flushed every 15 s.
#
# Idempotent: starts only daemons that are not running and re-applies the configuration.
# `--packages` prints the Debian packages this script needs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
PKGS=(gridengine-master gridengine-exec gridengine-client)
if [ "${1:-}" = --packages ]; then echo "${PKGS[*]}"; exit 0; fi
require_root

SGEH=localhost                              # the name SGE uses for this host
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
CFG=$SGE_ROOT/$SGE_CELL/common
QPID=/var/spool/gridengine/qmaster/qmaster.pid
EPID=/var/run/gridengine/execd.pid
WORK=$FIRN_STATE/sge
SLOTS=${SGE_SLOTS:-$(( $(nproc) > 8 ? $(nproc) : 8 ))}

# --- 1. install (preseeded: the postinst then runs init_cluster for cell "default")
had_torque=0; installed slurm-wlm-torque && had_torque=1
if ! installed gridengine-client && ((had_torque)); then
  log "NOTE: installing gridengine-client removes slurm-wlm-torque (both own /usr/bin/qsub)"
fi
apt_install "${PKGS[@]}"       # debconf answers: see debconf_preseed in lib.sh

# --- 2. cell files; run init_cluster if the postinst did not ------------------------------
if [ ! -e /var/spool/gridengine/spooldb/sge ]; then
  log "init_cluster"
  install -d -o sgeadmin -g sgeadmin "$CFG" /var/spool/gridengine/qmaster /var/spool/gridengine/spooldb /var/spool/gridengine/execd
  [ -f "$CFG/bootstrap" ] || install -m0644 -o sgeadmin -g sgeadmin /usr/share/gridengine/default-bootstrap "$CFG/bootstrap"
  su -s /bin/sh -c "/usr/share/gridengine/scripts/init_cluster $SGE_ROOT $SGE_CELL /var/spool/gridengine/spooldb sgeadmin" sgeadmin >/dev/null
fi
names=$(printf '%s\n' "$(hostname)" "$(hostname -s)" "$(hostname -f 2>/dev/null || true)" | grep -vx -e '' -e localhost | sort -u | tr '\n' ' ')
write_if_changed "$CFG/host_aliases" "localhost ${names% }" || true
write_if_changed "$CFG/act_qmaster" "$SGEH" || true
chown sgeadmin:sgeadmin "$CFG/host_aliases" "$CFG/act_qmaster"
install -d -o sgeadmin -g sgeadmin /var/run/gridengine

# --- 3. qmaster (the init script is called directly: invoke-rc.d is blocked by policy-rc.d)
if ! alive "$QPID"; then
  log "starting sge_qmaster"
  /etc/init.d/gridengine-master start >/dev/null
  mark_started sge_qmaster
fi
wait_until 30 qconf -sh || die "sge_qmaster does not answer (qconf -sh), see /var/spool/gridengine/qmaster/messages"

# --- 4. configuration (every step idempotent) ---------------------------------------------
install -d -m 0700 "$WORK"; cd "$WORK"
# global: allow jobs of uid/gid 0 (root's tests), write the accounting file every second
qconf -sconf global > global
if grep -qE '^min_(u|g)id +[1-9]|flush_time=00:00:(0[2-9]|[1-5][0-9])' global; then
  sed -i -E 's/^(min_uid|min_gid)( +).*/\1\20/; s/flush_time=00:00:[0-9]+/flush_time=00:00:01/' global
  qconf -Mconf global >/dev/null 2>&1      # the file's name must be the config's name: "global"
  alive "$EPID" && { log "global config changed: restarting sge_execd"; stop_pidfile "$EPID"; }
fi
# scheduler: 1 s interval, start/finish triggers a run, no load adjustment
# (each qconf call costs ~60 ms: only write what differs, so a warm run stays fast)
qconf -ssconf > sched.old
sed -E 's/^(schedule_interval +).*/\10:0:1/; s/^(flush_submit_sec +).*/\11/; s/^(flush_finish_sec +).*/\11/; s/^(job_load_adjustments +).*/\1NONE/; s/^(load_adjustment_decay_time +).*/\10:0:0/' sched.old > sched
cmp -s sched sched.old || qconf -Msconf sched >/dev/null 2>&1 || true
qconf -ss 2>/dev/null | grep -qx "$SGEH" || qconf -as "$SGEH" >/dev/null 2>&1
# parallel environments: the default queue template refers to make/smp/mpi
pes=$(qconf -spl 2>/dev/null || true)
for pe in /usr/share/gridengine/util/resources/pe/*; do
  grep -qx "$(basename "$pe")" <<<"$pes" || qconf -Ap "$pe" >/dev/null 2>&1 || true
done
if ! qconf -shgrp @allhosts >/dev/null 2>&1; then
  printf 'group_name @allhosts\nhostlist %s\n' "$SGEH" > allhosts
  qconf -Ahgrp allhosts >/dev/null 2>&1
fi
# queue all.q through qconf's own template and a non-interactive "editor"
cat > edit-queue <<EOF
#!/bin/sh
sed -i -E 's/^(hostlist +).*/\1@allhosts/; s/^(slots +).*/\1$SLOTS/; s/^(load_thresholds +).*/\1NONE/; s/^(shell +).*/\1\/bin\/bash/' "\$1"
EOF
chmod +x edit-queue
queue_ok() {
  local q; q=$(qconf -sq all.q 2>/dev/null) || return 1
  grep -qE "^hostlist +@allhosts\$" <<<"$q" && grep -qE "^slots +$SLOTS\$" <<<"$q" \
    && grep -qE '^load_thresholds +NONE$' <<<"$q" && grep -qE '^shell +/bin/bash$' <<<"$q"
}
if ! qconf -sq all.q >/dev/null 2>&1; then
  EDITOR="$WORK/edit-queue" qconf -aq all.q >/dev/null 2>&1
elif ! queue_ok; then
  EDITOR="$WORK/edit-queue" qconf -mq all.q >/dev/null 2>&1 || true
fi
queue_ok || die "queue all.q was not configured: $(qconf -sq all.q 2>&1 | grep -E '^(hostlist|slots|load_thresholds|shell) ')"

# --- 5. execd (after the min_uid change: execd caches the global config it read at start)
if ! alive "$EPID"; then
  log "starting sge_execd"
  /etc/init.d/gridengine-exec start >/dev/null
  mark_started sge_execd
fi

# --- 6. wait for the queue instance: load reported (not -NA-), no u(nknown)/E(rror) state
qready() {
  local line; line=$(qstat -f -q "all.q@$SGEH" 2>/dev/null | awk -v q="all.q@$SGEH" '$1==q')
  [ -n "$line" ] && [ "$(awk '{print $4}' <<<"$line")" != -NA- ] && ! awk '{print $6}' <<<"$line" | grep -q '[uEd]'
}
for _ in $(seq 150); do
  qready && break
  qmod -c "all.q@$SGEH" >/dev/null 2>&1 || true     # clear an error state from an old failure
  qmod -e "all.q@$SGEH" >/dev/null 2>&1 || true
  sleep 0.2
done
qready || die "queue all.q@$SGEH not ready: $(qstat -f 2>&1 | tail -3)"

# --- 7. Slurm's Torque wrappers may have lost /usr/bin to gridengine-client: move them
if ((had_torque)) && ! installed slurm-wlm-torque; then
  log "slurm-wlm-torque was removed; re-running start-slurm.sh to unpack it into /opt/slurm-torque"
  "$HERE/start-slurm.sh"
fi

ver=$(dpkg-query -W -f='${Version}' gridengine-master)
write_env "$FIRN_ETC/sge.env" \
  "SGE_ROOT=$SGE_ROOT" "SGE_CELL=$SGE_CELL" "SGE_BIN=/usr/bin" "SGE_QUEUE=all.q" \
  "SGE_HOST=$SGEH" "SGE_SLOTS=$SLOTS" "SGE_VERSION=$ver"
echo "OK sge $ver: SGE_ROOT=$SGE_ROOT cell=$SGE_CELL queue=all.q@$SGEH slots=$SLOTS qmaster=$(cat "$QPID") execd=$(cat "$EPID") ($(elapsed))"
