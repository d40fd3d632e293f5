/**
 * What `firn site install` puts on a site (pure text; install.ts uploads it):
 *
 *   <remote_dir>/firn-queue.js       the one-file firn-queue bundle (runs with node; mysql2 inside)
 *   <remote_dir>/firn-pilot          the single-executable pilot (or firn-pilot.js, the bundle)
 *   <remote_dir>/schemas/            JSON Schemas firn-queue validates its config with
 *   <remote_dir>/queue.ini           generated config (mode 0600: it holds the database password)
 *   <remote_dir>/firn-queue-ctl      start | stop [SECONDS] | status | logs [N] | check
 *   <remote_dir>/env.sh              optional, yours: sourced before starting (PATH to sbatch …)
 *   <remote_dir>/firn-queue.pid, firn-queue.log, submit/
 */
import { shellQuote } from '@firn/queue';
import type { SiteEntry } from './sites-file';

export const QUEUE_BUNDLE = 'firn-queue.js';
export const CTL_SCRIPT = 'firn-queue-ctl';
export const QUEUE_INI = 'queue.ini';
export const PID_FILE = 'firn-queue.pid';
export const LOG_FILE = 'firn-queue.log';

/** An INI value that ini.parse reads back unchanged (JSON-quoted unless plainly safe). */
export function iniValue(value: string): string {
  return /^[A-Za-z0-9_.,:@%+/*~-](?:[A-Za-z0-9_.,:@%+/*~ -]*[A-Za-z0-9_.,:@%+/*~-])?$/.test(value) ? value : JSON.stringify(value);
}

export interface QueueIniOptions {
  site: SiteEntry;
  remoteDir: string;
  dbUrl: string;
  monUrl: string;
  /** The pilot as the worker nodes run it: the executable's path, or `node …/firn-pilot.js`. */
  pilot: string;
  writtenAt?: string;
}

/** The site's firn-queue config: [db] url, [queue] grid/plugin/submit_dir, [mon] url, [system] pilot, plus --set values. */
export function renderQueueIni(o: QueueIniOptions): string {
  const sections: Record<string, Record<string, string>> = {
    db: { url: o.dbUrl },
    queue: {
      grid: o.site.name,
      plugin: o.site.plugin,
      submit_dir: `${o.remoteDir}/submit`,
      ...(o.site.capabilities && Object.keys(o.site.capabilities).length ? { capabilities: JSON.stringify(o.site.capabilities) } : {}),
    },
    mon: { url: o.monUrl },
    system: { pilot: o.pilot },
  };
  for (const [section, values] of Object.entries(o.site.settings ?? {})) sections[section] = { ...sections[section], ...values };
  const lines = [
    `# firn-queue of site ${o.site.name}, written by \`firn site install\`${o.writtenAt ? ` at ${o.writtenAt}` : ''}.`,
    '# Change it there (firn site install NAME --set section.key=value) rather than here: a re-install rewrites it.',
  ];
  for (const [section, values] of Object.entries(sections)) {
    lines.push('', `[${section}]`);
    for (const [k, v] of Object.entries(values)) lines.push(`${k} = ${iniValue(v)}`);
  }
  return lines.join('\n') + '\n';
}

/** The control script on the site: firn-queue detached (setsid + nohup), a pid file, a log file. */
export function renderCtlScript(o: { site: string; remoteDir: string; node: string }): string {
  const q = shellQuote;
  return `#!/bin/sh
# Control firn-queue of site ${o.site.replace(/[\r\n]/g, ' ')}. Written by \`firn site install\`.
# usage: ${CTL_SCRIPT} start | stop [SECONDS] | status | logs [LINES] | check
dir=${q(o.remoteDir)}
node=${q(o.node)}
pidfile="$dir/${PID_FILE}"
log="$dir/${LOG_FILE}"
cd "$dir" || exit 1
[ -r "$dir/env.sh" ] && . "$dir/env.sh"

# is the pid in the pid file a live firn-queue (not a reused pid)?
running() {
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  case $pid in ''|*[!0-9]*) return 1 ;; esac
  kill -0 "$pid" 2>/dev/null || return 1
  [ ! -r "/proc/$pid/cmdline" ] || tr '\\0' ' ' <"/proc/$pid/cmdline" | grep -q ${q(QUEUE_BUNDLE)}
}

case ${'${1:-}'} in
  start)
    if running; then echo "running $pid"; exit 0; fi
    detach=; command -v setsid >/dev/null 2>&1 && detach=setsid
    echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) starting firn-queue" >>"$log"
    $detach nohup "$node" "$dir/${QUEUE_BUNDLE}" --config "$dir/${QUEUE_INI}" </dev/null >>"$log" 2>&1 &
    echo $! >"$pidfile"
    # a daemon that cannot start (bad config, database down) exits within a moment
    n=0; while [ $n -lt 15 ] && running; do sleep 0.2; n=$((n + 1)); done
    if running; then echo "started $pid"; exit 0; fi
    rm -f "$pidfile"; echo "firn-queue exited at once; the end of $log:" >&2; tail -n 20 "$log" >&2; exit 1 ;;
  stop)
    if ! running; then rm -f "$pidfile"; echo "not running"; exit 0; fi
    kill -TERM "$pid"
    limit=$(( ${'${2:-60}'} * 5 )); n=0
    while kill -0 "$pid" 2>/dev/null && [ $n -lt $limit ]; do sleep 0.2; n=$((n + 1)); done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; rm -f "$pidfile"; echo "killed $pid (did not stop within ${'${2:-60}'} s)"; exit 0; fi
    rm -f "$pidfile"; echo "stopped $pid" ;;
  status)
    if running; then echo "running $pid"; else echo "not running"; exit 3; fi ;;
  logs)
    tail -n "${'${2:-50}'}" "$log" 2>/dev/null || echo "(no log yet: $log)" ;;
  check)
    exec "$node" "$dir/${QUEUE_BUNDLE}" --config "$dir/${QUEUE_INI}" --check-config ;;
  *)
    echo "usage: $0 start | stop [SECONDS] | status | logs [LINES] | check" >&2; exit 2 ;;
esac
`;
}
