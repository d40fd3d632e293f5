#!/usr/bin/env bash
# Re-record the batch-system fixtures under test/fixtures/{slurm,torque,sge}/ by running the
# real command-line tools against the services of start-slurm.sh / start-sge.sh.
#
#   test/services/capture-fixtures.sh [slurm] [torque] [sge]      (default: all three)
#
# One case per command: NAME.out (raw stdout), NAME.err (raw stderr), NAME.code (exit code).
# <system>/index.txt lists every case with its exact command line, exit code, the tool
# version and date. Cases whose name starts with "ref-" were copied from older transcripts
# (see test/fixtures/README.md) and are left alone; every other case is replaced.
# Job ids, dates and paths are whatever the live system gave: parsers must not depend on them.
# Takes about 2 minutes (a Slurm job has to hit its 1-minute time limit).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
require_root
FIX=${FIXTURES_DIR:-$(cd "$HERE/../fixtures" && pwd)}
WANT=("$@"); [ ${#WANT[@]} -eq 0 ] && WANT=(slurm torque sge)
W=$(mktemp -d /tmp/firn-fixtures.XXXX); chmod 0755 "$W"; cd "$W" || exit 1

SYS='' DIR=''
begin() {   # begin SYSTEM VERSION: start a fresh set of cases for SYSTEM
  SYS=$1 DIR=$FIX/$1; mkdir -p "$DIR"
  find "$DIR" -maxdepth 1 -type f ! -name 'ref-*' ! -name 'README*' -delete
  printf '# %s fixtures recorded %s on %s (Debian %s) with %s\n# name\texit\tcommand\n' \
    "$SYS" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(hostname -s)" "$(cat /etc/debian_version)" "$2" > "$DIR/index.txt"
  log "recording $SYS into $DIR"
}
rec() {     # rec NAME CMD...: run CMD, keep stdout/stderr/exit code as NAME.{out,err,code}
  local name=$1; shift
  "$@" >"$DIR/$name.out" 2>"$DIR/$name.err"; local rc=$?
  echo "$rc" > "$DIR/$name.code"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(printf '%q ' "$@" | sed 's/ $//')" >> "$DIR/index.txt"
  return 0
}
note() { printf '#\t\t%s\n' "$*" >> "$DIR/index.txt"; }
waitfor() { # waitfor SECONDS CMD...: poll until CMD succeeds
  local n=$(( $1 * 4 )); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done; return 1
}
sq_state() { [ "$(squeue -h -j "$1" -o %T 2>/dev/null | head -1)" = "$2" ]; }
sq_gone()   { ! squeue -h -j "$1" -t PD,R,CG,S -o %i 2>/dev/null | grep -q .; }

# ------------------------------------------------------------------------------- Slurm
slurm() {
  begin slurm "slurm-wlm $(sinfo --version | awk '{print $2}') (jobcomp/filetxt, no slurmdbd)"
  # finished-job cases first: the time limit one needs a minute
  TIMEOUT=$(sbatch --parsable -J firn-timeout --time=1 --wrap 'sleep 300')
  OK=$(sbatch --parsable -J firn-ok --wrap 'echo hello')
  FAIL=$(sbatch --parsable -J firn-fail --wrap 'echo failing >&2; exit 3')
  OOM=$(sbatch --parsable -J firn-oom --mem=50M --wrap 'python3 -c "b=bytearray(400*1024*1024); import time; time.sleep(20)"')
  CANC=$(sbatch --parsable -J firn-cancel --wrap 'sleep 300')
  note "background jobs: timeout=$TIMEOUT ok=$OK fail=$FAIL oom=$OOM cancelled=$CANC"
  rec sinfo sinfo
  # submissions
  rec sbatch-parsable sbatch --parsable -J firn-single --wrap 'sleep 60'
  SINGLE=$(cat "$DIR/sbatch-parsable.out")
  rec sbatch-plain sbatch -J firn-plain --wrap 'sleep 60'
  rec sbatch-array-parsable sbatch --parsable -J firn-array --array=0-3 --wrap 'sleep 60'
  ARR=$(cat "$DIR/sbatch-array-parsable.out")
  rec sbatch-array-throttled sbatch --parsable -J firn-throttled --array=0-3%1 --wrap 'sleep 60'
  note "throttled array job: $(cat "$DIR/sbatch-array-throttled.out")"
  rec sbatch-held sbatch --parsable -J firn-held --hold --wrap 'true'
  HELD=$(cat "$DIR/sbatch-held.out")
  rec sbatch-dependency sbatch --parsable -J firn-after --dependency="afterok:$SINGLE" --wrap 'true'
  rec sbatch-begin sbatch --parsable -J firn-later --begin=now+1hour --wrap 'true'
  rec sbatch-too-big sbatch --parsable -J firn-big --cpus-per-task=9999 --wrap 'true'
  rec sbatch-bad-option sbatch --parsable --no-such-option --wrap 'true'
  rec sbatch-array-pending-parsable sbatch --parsable -J firn-array-pd --cpus-per-task=8 --array=0-2 --wrap 'sleep 5'
  waitfor 20 sq_state "$SINGLE" RUNNING
  waitfor 20 sq_state "$CANC" RUNNING
  sleep 1
  # queue listings with pending, running and array elements
  rec squeue-fmt squeue -h -o '%i|%j|%T|%r'
  rec squeue-fmt-array squeue -h -r -o '%i|%j|%T|%r'
  rec squeue-fmt-array-ids squeue -h -r -o '%i|%A|%a|%F|%K|%j|%u|%T|%r|%M|%l|%N'
  rec squeue-default squeue
  rec squeue-jobs squeue -h -o '%i|%j|%T|%r' -j "$SINGLE,$ARR,$HELD"
  rec squeue-array-job squeue -h -r -o '%i|%j|%T|%r' -j "$ARR"
  rec squeue-unknown squeue -j 999999
  rec squeue-unknown-fmt squeue -h -o '%i|%j|%T|%r' -j 999999
  rec squeue-known-and-unknown squeue -h -o '%i|%j|%T|%r' -j "$SINGLE,999999"
  rec scontrol-show-job-running scontrol show job -o "$SINGLE"
  # cancellations
  rec scancel-running scancel "$CANC"
  rec scancel-array-element scancel "${ARR}_1"
  rec scancel-unknown scancel 999999
  rec scancel-unknown-verbose scancel -v 999999
  rec sacct-disabled sacct
  sleep 3
  rec squeue-after-cancel squeue -h -t all -r -o '%i|%j|%T|%r'
  # wait for the time limit (1 min; slurmctld checks limits every ~30 s)
  log "waiting for job $TIMEOUT to time out"
  waitfor 150 sq_gone "$TIMEOUT" || log "job $TIMEOUT did not time out"
  sleep 2
  rec scontrol-show-job-completed scontrol show job -o "$OK"
  rec scontrol-show-job-failed scontrol show job -o "$FAIL"
  rec scontrol-show-job-oom scontrol show job -o "$OOM"
  rec scontrol-show-job-timeout scontrol show job -o "$TIMEOUT"
  rec scontrol-show-job-cancelled scontrol show job -o "$CANC"
  rec squeue-finished squeue -h -t all -o '%i|%j|%T|%r' -j "$OK,$FAIL,$OOM,$TIMEOUT,$CANC"
  ids="$OK,$FAIL,$OOM,$TIMEOUT,$CANC"
  rec sacct-c-parsable sacct -c -P -n -o JobID,JobName,State,ExitCode,Reason -j "$ids"
  rec sacct-c-parsable-header sacct -c -P -o JobID,JobName,UID,State,ExitCode,Start,End,Elapsed,NodeList -j "$ids"
  rec sacct-c-default sacct -c -j "$ids"
  rec sacct-c-array sacct -c -P -n -o JobID,JobName,State,ExitCode -j "$ARR"
  rec sacct-c-unknown sacct -c -P -n -o JobID,JobName,State,ExitCode -j 999999
  rec job-output-oom cat "slurm-$OOM.out"
  rec job-output-timeout cat "slurm-$TIMEOUT.out"
  rec jobcomp-log-lines grep -E "^JobId=($(tr ',' '|' <<<"$ids")) " /var/log/slurm/jobcomp.log
  for j in $(squeue -h -o %A | sort -u); do scancel "$j"; done
  # grids (job comments, as firn-queue's listJobs reads them) and black-holed node exclusion
  sleep 2
  local A B C D E
  A=$(sbatch --parsable --hold -J firn-7 --comment=firn:grid-a --wrap true)
  B=$(sbatch --parsable --hold -J firn-a100 --array=0,1,3 --comment=firn:grid-a --wrap true)
  C=$(sbatch --parsable --hold -J firn-8 --comment=firn:other%20grid --wrap true)
  D=$(sbatch --parsable --hold -J firn-9 --wrap true)
  E=$(sbatch --parsable --hold -J wrap --comment='not firn' --wrap true)
  note "held jobs: grid-a firn-7=$A grid-a array firn-a100=$B other grid firn-8=$C no comment firn-9=$D other job=$E"
  rec squeue-fmt-comment squeue --me --noheader --array --format='%i|%A|%T|%r|%k|%j'
  rec sinfo-nodes sinfo -h -a -N -o '%N|%n'
  rec sbatch-exclude-unknown-node sbatch --parsable --exclude=nosuchnode --wrap true
  rec sbatch-exclude-every-node sbatch --parsable --exclude="$(sinfo -h -N -o %N | sort -u | paste -sd,)" --wrap true
  # clean up whatever is left
  for j in $(squeue -h -o %A | sort -u); do scancel "$j"; done
}

# --------------------------------------------------------- Torque wrappers over Slurm
torque() {
  local Q; Q=$(sed -n 's/^TORQUE_BIN=//p' "$FIRN_ETC/slurm.env" 2>/dev/null); Q=${Q:-/usr/bin}
  begin torque "slurm-wlm-torque $(sinfo --version | awk '{print $2}') wrappers in $Q"
  printf '#!/bin/bash\n#PBS -N tjob\n#PBS -l nodes=1:ppn=1,walltime=00:05:00\nhostname\nsleep 60\necho done\n' > tjob.sh
  printf '#!/bin/bash\n#PBS -N tfail\necho failing >&2\nexit 3\n' > tfail.sh
  printf '#!/bin/bash\n#PBS -N tok\necho ok\n' > tok.sh
  rec qsub-fail "$Q/qsub" tfail.sh; FAIL=$(cat "$DIR/qsub-fail.out")
  rec qsub-ok "$Q/qsub" tok.sh; OK=$(cat "$DIR/qsub-ok.out")
  rec qsub "$Q/qsub" tjob.sh; RUN=$(cat "$DIR/qsub.out")
  rec qsub-named "$Q/qsub" -N second tjob.sh
  rec qsub-held "$Q/qsub" -h -N held tjob.sh; HELD=$(cat "$DIR/qsub-held.out")
  rec qsub-array "$Q/qsub" -t 0-3 -N tarray tjob.sh
  rec qsub-queue "$Q/qsub" -q debug -N inqueue tjob.sh
  rec qsub-bad-queue "$Q/qsub" -q nosuchqueue tjob.sh
  rec qsub-missing-script "$Q/qsub" /nonexistent/job.sh
  waitfor 20 sq_state "$RUN" RUNNING
  sleep 2
  rec qstat "$Q/qstat"
  rec qstat-a "$Q/qstat" -a
  rec qstat-running "$Q/qstat" "$RUN"
  rec qstat-f-running "$Q/qstat" -f "$RUN"
  rec qstat-held "$Q/qstat" "$HELD"
  rec qstat-f-held "$Q/qstat" -f "$HELD"
  rec qstat-completed "$Q/qstat" "$OK"
  rec qstat-f-completed "$Q/qstat" -f "$OK"
  rec qstat-f-failed "$Q/qstat" -f "$FAIL"
  rec qstat-unknown "$Q/qstat" 999999
  rec qstat-f-unknown "$Q/qstat" -f 999999
  rec qstat-x-unsupported "$Q/qstat" -x
  rec qdel-running "$Q/qdel" "$RUN"
  rec qdel-unknown "$Q/qdel" 999999
  sleep 3
  rec qstat-after-qdel "$Q/qstat" "$RUN"
  rec qstat-f-after-qdel "$Q/qstat" -f "$RUN"
  for j in $(squeue -h -o %A | sort -u); do scancel "$j"; done
}

# ------------------------------------------------------------------------ Grid Engine
sge() {
  begin sge "gridengine $(dpkg-query -W -f='${Version}' gridengine-master) (cell default, queue all.q, 8 slots)"
  printf '#!/bin/bash\n#$ -N sgefail\n#$ -cwd\necho failing >&2\nexit 3\n' > fail.sh
  printf '#!/bin/bash\n#$ -N sgejob\n#$ -cwd\nhostname\nsleep 60\necho done\n' > job.sh
  rec qsub-terse-ok qsub -terse -cwd -b y -N firn-ok true; OK=$(cat "$DIR/qsub-terse-ok.out")
  rec qsub-terse-fail qsub -terse fail.sh; FAIL=$(cat "$DIR/qsub-terse-fail.out")
  rec qsub-terse qsub -terse -cwd -b y -N firn-single sleep 60; SINGLE=$(cat "$DIR/qsub-terse.out")
  rec qsub-plain qsub -cwd job.sh
  rec qsub-terse-array qsub -terse -cwd -b y -N firn-array -t 1-4 sleep 60
  ARR=$(cut -d. -f1 "$DIR/qsub-terse-array.out")
  rec qsub-array-plain qsub -cwd -b y -N firn-array2 -t 1-3 -tc 1 sleep 60
  rec qsub-terse-held qsub -terse -cwd -b y -N firn-held -h true
  rec qsub-terse-long-name qsub -terse -cwd -b y -N firn-a-rather-long-job-name-1234 sleep 60
  rec qsub-error-name-with-spaces qsub -terse -cwd -b y 'hostname; sleep 2'
  rec qsub-error-bad-queue qsub -terse -cwd -b y -q nosuch.q true
  rec qsub-error-missing-script qsub -terse /nonexistent/job.sh
  sleep 3
  rec qstat qstat
  rec qstat-xml qstat -xml
  rec qstat-xml-all-users qstat -xml -u '*'
  rec qstat-f-xml qstat -f -xml
  rec qstat-j-running qstat -j "$SINGLE"
  rec qstat-j-unknown qstat -j 999999
  rec qstat-j-unknown-xml qstat -xml -j 999999
  rec qdel-running qdel "$SINGLE"
  rec qdel-array-task qdel "$ARR" -t 2
  rec qdel-unknown qdel 999999
  sleep 3
  rec qstat-xml-after-qdel qstat -xml
  rec qacct-ok qacct -j "$OK"
  rec qacct-failed qacct -j "$FAIL"
  rec qacct-deleted qacct -j "$SINGLE"
  rec qacct-unknown qacct -j 999999
  qdel -u root >/dev/null 2>&1 || true
  # grid-tagged names (grid "grid-s" is tagged grid_s_f4868d29) beside another grid's, untagged and foreign jobs; host exclusion
  sleep 2
  local A B C D E F G
  A=$(qsub -terse -h -N firn-grid_s_f4868d29-7 job.sh)
  B=$(qsub -terse -h -N firn-grid_s_f4868d29-a40 -t 1-3 job.sh)
  C=$(qsub -terse -h -N firn-other-8 job.sh)
  D=$(qsub -terse -h -N firn-9 job.sh)
  E=$(qsub -terse -h -N firn-a50 -t 1-2 job.sh)
  F=$(qsub -terse -h -N analysis job.sh)
  note "held jobs (grid-s is tagged grid_s_f4868d29): grid-s firn-…-7=$A grid-s array firn-…-a40=$B other grid firn-other-8=$C untagged firn-9=$D untagged array firn-a50=$E other job=$F"
  rec qstat-xml-grids qstat -xml -u root
  rec qsub-terse-exclude-host qsub -terse -N firn-grid_s_f4868d29-12 -l 'hostname=!localhost&!localhost.*' job.sh
  G=$(cat "$DIR/qsub-terse-exclude-host.out")
  sleep 8
  rec qstat-j-excluded-host qstat -j "$G"
  qdel -u root >/dev/null 2>&1 || true
}

for s in "${WANT[@]}"; do
  case "$s" in slurm|torque|sge) "$s" ;; *) die "unknown system '$s' (slurm, torque, sge)" ;; esac
done
rm -rf "$W"
log "done"
