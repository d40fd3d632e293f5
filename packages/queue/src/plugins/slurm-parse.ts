/**
 * Pure parsers for Slurm's command output (sbatch, squeue, sacct), checked against
 * transcripts of Slurm 22.05 (test/fixtures, /work/shared/reference/fixtures/slurm.txt, sacct.txt).
 */
import { BatchState, type BatchJobStatus } from './plugin';

/**
 * squeue format the plugin asks for: id (array elements as `1234_5`), the element's own
 * job id (`%A`: differs from the array's once the element started; sacct -c knows it only
 * under that id), long state, reason, name (last: it may contain `|`).
 */
export const SQUEUE_FORMAT = '%i|%A|%T|%r|%j';
/** squeue format of listJobs: SQUEUE_FORMAT plus the job comment (`%k`), which carries the grid (before the name, which may contain `|`). */
export const SQUEUE_LIST_FORMAT = '%i|%A|%T|%r|%k|%j';
/** sinfo format for the node names (`%N`) and their hostnames (`%n`), one line per node and partition with `-N`. */
export const SINFO_NODES_FORMAT = '%N|%n';
/** sacct fields the plugin asks for (`-P`, with header). */
export const SACCT_FIELDS = ['JobID', 'JobName', 'State', 'ExitCode'];

/**
 * Job id from `sbatch --parsable` (`1234` or `1234;cluster`) or plain sbatch
 * (`Submitted batch job 1234` [`on cluster x`]). null when there is none.
 */
export function parseSbatchOutput(stdout: string): { jobId: string; cluster?: string } | null {
  const lines = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i] as string;
    const parsable = /^(\d+)(?:;(\S+))?$/.exec(line);
    if (parsable) return parsable[2] ? { jobId: parsable[1] as string, cluster: parsable[2] } : { jobId: parsable[1] as string };
    const plain = /^Submitted batch job (\d+)(?: on cluster (\S+))?$/.exec(line);
    if (plain) return plain[2] ? { jobId: plain[1] as string, cluster: plain[2] } : { jobId: plain[1] as string };
  }
  return null;
}

/** Batch ids of array elements: `1234` + [0, 3] → `1234_0`, `1234_3`. */
export function arrayElementIds(jobId: string, indexes: readonly number[]): string[] {
  return indexes.map((i) => `${jobId}_${i}`);
}

/** `1234_5` → { jobId: '1234', index: 5 }; null for anything else (plain ids, `1234_[0-3]`). */
export function parseArrayElementId(id: string): { jobId: string; index: number } | null {
  const m = /^(\d+)_(\d+)$/.exec(id.trim());
  return m ? { jobId: m[1] as string, index: Number(m[2]) } : null;
}

/** squeue's compact state codes (`%t`) → long names (`%T`). */
export const SLURM_SHORT_STATES: Readonly<Record<string, string>> = {
  BF: 'BOOT_FAIL',
  CA: 'CANCELLED',
  CD: 'COMPLETED',
  CF: 'CONFIGURING',
  CG: 'COMPLETING',
  DL: 'DEADLINE',
  F: 'FAILED',
  NF: 'NODE_FAIL',
  OOM: 'OUT_OF_MEMORY',
  PD: 'PENDING',
  PR: 'PREEMPTED',
  R: 'RUNNING',
  RD: 'RESV_DEL_HOLD',
  RF: 'REQUEUE_FED',
  RH: 'REQUEUE_HOLD',
  RQ: 'REQUEUED',
  RS: 'RESIZING',
  RV: 'REVOKED',
  SI: 'SIGNALING',
  SE: 'SPECIAL_EXIT',
  SO: 'STAGE_OUT',
  ST: 'STOPPED',
  S: 'SUSPENDED',
  TO: 'TIMEOUT',
};

/** Every Slurm job state (squeue %T, sacct State) → BatchState. */
export const SLURM_STATES: Readonly<Record<string, BatchState>> = {
  PENDING: BatchState.QUEUED,
  REQUEUED: BatchState.QUEUED,
  REQUEUE_FED: BatchState.QUEUED,
  REQUEUE_HOLD: BatchState.QUEUED,
  RESV_DEL_HOLD: BatchState.QUEUED,
  RUNNING: BatchState.RUNNING,
  CONFIGURING: BatchState.RUNNING,
  COMPLETING: BatchState.RUNNING,
  SUSPENDED: BatchState.RUNNING,
  STOPPED: BatchState.RUNNING,
  SIGNALING: BatchState.RUNNING,
  STAGE_OUT: BatchState.RUNNING,
  RESIZING: BatchState.RUNNING,
  COMPLETED: BatchState.COMPLETED,
  FAILED: BatchState.FAILED,
  TIMEOUT: BatchState.FAILED,
  OUT_OF_MEMORY: BatchState.FAILED,
  NODE_FAIL: BatchState.FAILED,
  BOOT_FAIL: BatchState.FAILED,
  DEADLINE: BatchState.FAILED,
  SPECIAL_EXIT: BatchState.FAILED,
  CANCELLED: BatchState.CANCELLED,
  PREEMPTED: BatchState.CANCELLED,
  REVOKED: BatchState.CANCELLED,
};

/**
 * Normalise a state as squeue/sacct print it: `PD` → PENDING, `CANCELLED+` (truncated) →
 * CANCELLED, `CANCELLED by 1000` → CANCELLED (the `by` part is returned separately).
 */
export function normaliseSlurmState(raw: string): { word: string; by?: string } {
  const text = raw.trim().toUpperCase();
  const by = /^(\S+)\s+BY\s+(\S+)/.exec(text);
  const word = (by ? (by[1] as string) : (text.split(/\s+/)[0] ?? '')).replace(/\+$/, '');
  const long = SLURM_SHORT_STATES[word] ?? word;
  return by ? { word: long, by: by[2] as string } : { word: long };
}

/**
 * The BatchState of a normalised state word. A word this table does not know (a newer Slurm's
 * state, a garbled column) is UNOBSERVED, never UNKNOWN: the job was listed, so it exists, and
 * UNKNOWN (confirmed gone) would make the daemon evict a task whose job may be running.
 */
export function stateOfWord(word: string): BatchState {
  return SLURM_STATES[word] ?? BatchState.UNOBSERVED;
}

export function slurmState(raw: string): BatchState {
  return stateOfWord(normaliseSlurmState(raw).word);
}

/**
 * Slurm's `ExitCode` column `code:signal` → a shell-style exit code (128 + signal when
 * killed by a signal). null when unparseable.
 */
export function parseSlurmExitCode(text: string): { exitCode: number; code: number; signal: number } | null {
  const m = /^(\d+):(\d+)$/.exec(text.trim());
  if (!m) return null;
  const code = Number(m[1]);
  const signal = Number(m[2]);
  return { exitCode: signal > 0 ? 128 + signal : code, code, signal };
}

function reasonFor(word: string, state: BatchState, extra?: string): string | undefined {
  if (state === BatchState.FAILED || state === BatchState.CANCELLED) return extra ? `${word}: ${extra}` : word;
  if (state === BatchState.UNOBSERVED) return `state ${word || '(none)'} not known${extra ? `: ${extra}` : ''}`;
  return extra;
}

/** squeue's `(None)` / `None` reasons carry nothing. */
function cleanReason(text: string | undefined): string | undefined {
  const r = (text ?? '').trim().replace(/^\((.*)\)$/, '$1');
  return r && r !== 'None' && r !== 'null' ? r : undefined;
}

function isJobId(field: string): boolean {
  return /^\d+(?:_(?:\d+|\[[^\]]*\]))?(?:\+\d+)?$/.test(field);
}

/** A squeue line: a status, plus the element's own job id when the format asked for `%A` and the comment for `%k`. */
export interface SqueueJob extends BatchJobStatus {
  rawJobId?: string;
  comment?: string;
}

/** `%i|%.18j|%T` → ['i', 'j', 'T'] (field widths and justification dropped). */
function formatLetters(format: string): string[] {
  return format.split('|').map((spec) => /^%[.\-\d]*([A-Za-z])$/.exec(spec.trim())?.[1] ?? '');
}

/**
 * squeue output:
 *  - `-h -o <format>` lines separated by `|` (default SQUEUE_FORMAT; give the format used:
 *    `%i` id, `%A` own job id, `%j` name, `%T`/`%t` state, `%r`/`%R` reason, others ignored);
 *  - the default / `-l` table (header `JOBID PARTITION NAME USER ST …`; names cut to 8).
 * Headers, blank lines and the `-l` date line are skipped.
 */
export function parseSqueue(stdout: string, format: string = SQUEUE_FORMAT): SqueueJob[] {
  const letters = formatLetters(format);
  const at = (l: string): number => letters.indexOf(l);
  const idAt = at('i');
  const stateAt = at('T') >= 0 ? at('T') : at('t');
  const reasonAt = at('r') >= 0 ? at('r') : at('R');
  const nameAt = at('j');
  const rawAt = at('A');
  const commentAt = at('k');
  const out: SqueueJob[] = [];
  let table: { state: number; name: number; columns: number } | null = null;
  for (const rawLine of stdout.split('\n')) {
    const line = rawLine.trim();
    if (!line) continue;
    if (line.includes('|')) {
      let fields = line.split('|');
      if (fields.length > letters.length && nameAt === letters.length - 1) {
        fields = [...fields.slice(0, nameAt), fields.slice(nameAt).join('|')];
      }
      const id = (fields[idAt] ?? '').trim();
      if (idAt < 0 || !isJobId(id)) continue;
      const { word } = normaliseSlurmState(stateAt >= 0 ? (fields[stateAt] ?? '') : '');
      const state = stateOfWord(word);
      const status: SqueueJob = { batchId: id, state, rawState: word };
      const reasonText = reasonAt >= 0 ? (fields[reasonAt] ?? '').trim() : '';
      // %R shows the node list instead of a reason for running jobs
      const reason = letters[reasonAt] === 'R' && !reasonText.startsWith('(') ? undefined : cleanReason(reasonText);
      const why = reasonFor(word, state, reason);
      if (why) status.reason = why;
      if (nameAt >= 0 && fields[nameAt] !== undefined) status.name = (fields[nameAt] as string).trim();
      const raw = rawAt >= 0 ? (fields[rawAt] ?? '').trim() : '';
      if (/^\d+$/.test(raw)) status.rawJobId = raw;
      const comment = commentAt >= 0 ? (fields[commentAt] ?? '').trim() : '';
      if (comment && comment !== '(null)') status.comment = comment; // squeue prints (null) for none
      out.push(status);
      continue;
    }
    const words = line.split(/\s+/);
    if (words[0] === 'JOBID') {
      const state = words.findIndex((w) => w === 'ST' || w === 'STATE');
      const name = words.indexOf('NAME');
      table = state >= 0 ? { state, name, columns: words.length } : null;
      continue;
    }
    if (!table || !isJobId(words[0] ?? '')) continue;
    const { word } = normaliseSlurmState(words[table.state] ?? '');
    const state = stateOfWord(word);
    const status: SqueueJob = { batchId: words[0] as string, state, rawState: word };
    if (table.name >= 0 && words[table.name] !== undefined) status.name = words[table.name] as string;
    // last column is NODELIST(REASON): a reason is in parentheses
    const last = words.slice(table.columns - 1).join(' ');
    const why = reasonFor(word, state, last.startsWith('(') ? cleanReason(last) : undefined);
    if (why) status.reason = why;
    out.push(status);
  }
  return out;
}

/** Split a fixed-width table row by the column spans of its `---- ----` rule line. */
function spans(rule: string): [number, number][] {
  const out: [number, number][] = [];
  const re = /-+/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(rule))) out.push([m.index, m.index + m[0].length]);
  return out;
}

/**
 * sacct output → statuses of jobs (steps such as `12.batch` are skipped):
 *  - `-P` with a header line (`JobID|JobName|State|ExitCode`) or `-P -n` with `columns` given;
 *  - the default fixed-width table (header + `----` rule);
 *  - `sacct -c` (jobcomp) output, which has no ExitCode column.
 * States like `CANCELLED by 0` and truncated `CANCELLED+` are understood.
 */
export function parseSacct(stdout: string, columns: readonly string[] = SACCT_FIELDS): BatchJobStatus[] {
  const lines = stdout.split('\n').filter((l) => l.trim().length > 0);
  const rows: Record<string, string>[] = [];
  if (lines.some((l) => l.includes('|'))) {
    let header: string[] = [...columns];
    for (const line of lines) {
      const fields = line.split('|').map((f) => f.trim());
      if (fields.some((f) => /^jobid$/i.test(f))) {
        header = fields;
        continue;
      }
      rows.push(Object.fromEntries(header.map((h, i) => [h.toLowerCase(), fields[i] ?? ''])));
    }
  } else {
    const ruleAt = lines.findIndex((l) => /^[\s-]+$/.test(l) && l.includes('-'));
    if (ruleAt < 1) return [];
    const cols = spans(lines[ruleAt] as string);
    const cut = (line: string): string[] =>
      cols.map(([start, end], i) => line.slice(start, i === cols.length - 1 ? undefined : end).trim());
    const header = cut(lines[ruleAt - 1] as string).map((h) => h.toLowerCase());
    for (const line of lines.slice(ruleAt + 1)) {
      const fields = cut(line);
      rows.push(Object.fromEntries(header.map((h, i) => [h, fields[i] ?? ''])));
    }
  }
  const out: BatchJobStatus[] = [];
  for (const row of rows) {
    const id = (row['jobid'] ?? '').replace(/\+$/, '');
    if (!id || id.includes('.') || !isJobId(id)) continue;
    const { word, by } = normaliseSlurmState(row['state'] ?? '');
    const state = stateOfWord(word);
    const status: BatchJobStatus = { batchId: id, state, rawState: word };
    if (row['jobname']) status.name = row['jobname'];
    const exit = row['exitcode'] ? parseSlurmExitCode(row['exitcode']) : null;
    if (exit && state !== BatchState.QUEUED && state !== BatchState.RUNNING) status.exitCode = exit.exitCode;
    let extra: string | undefined;
    if (by) extra = `cancelled by uid ${by}`;
    else if (exit && exit.signal > 0) extra = `killed by signal ${exit.signal}`;
    else if (exit && exit.code > 0) extra = `exit code ${exit.code}`;
    const why = reasonFor(word, state, extra);
    if (why) status.reason = why;
    out.push(status);
  }
  return out;
}

/** squeue/scancel/sacct saying the id is not (any more) known: `Invalid job id specified`. */
export function isSlurmInvalidJobId(text: string): boolean {
  return /invalid job id/i.test(text);
}

/**
 * `squeue --jobs=<ids> --array --states=all` (a look-up by id): exit 0 lists the ids Slurm knows
 * (the others are silently left out: unknown); a non-zero exit with `Invalid job id specified`
 * means none of them is known (test/fixtures/slurm/squeue-by-id-*). Any other failure answers
 * nothing (`failed`).
 */
export function parseSqueueById(code: number | null, stdout: string, stderr: string, format: string = SQUEUE_FORMAT): { jobs: SqueueJob[]; failed: boolean } {
  if (code === 0) return { jobs: parseSqueue(stdout, format), failed: false };
  if (isSlurmInvalidJobId(stderr + '\n' + stdout)) return { jobs: [], failed: false };
  return { jobs: [], failed: true };
}

/** `sacct` on a cluster without slurmdbd: `Slurm accounting storage is disabled`. */
export function isSlurmAccountingDisabled(text: string): boolean {
  return /accounting storage is disabled/i.test(text);
}

/** A Slurm node: its name (what `--exclude` takes) and its hostname (`NodeHostname`, often the same). */
export interface SlurmNode {
  name: string;
  hostname: string;
}

/** `sinfo -h -a -N -o '%N|%n'` → every node once (a node in several partitions is listed once per partition). */
export function parseSinfoNodes(stdout: string): SlurmNode[] {
  const out = new Map<string, SlurmNode>();
  for (const line of stdout.split('\n')) {
    const [name = '', host = ''] = line.trim().split('|').map((f) => f.trim());
    if (!name || name === 'NODELIST' || out.has(name)) continue;
    out.set(name, { name, hostname: host && host !== '(null)' ? host : name });
  }
  return [...out.values()];
}

/** Same host? Case-insensitive; a short name matches the first label of a fully qualified one (`vm` ~ `vm.example.org`). */
function sameHost(a: string, b: string): boolean {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  if (x === y) return true;
  if (!x.includes('.')) return y.split('.')[0] === x;
  if (!y.includes('.')) return x.split('.')[0] === y;
  return false;
}

/**
 * Which Slurm nodes `--exclude` must name for hosts as pilots reported them (matched against
 * node names and NodeHostnames, short or fully qualified), and which hosts Slurm does not
 * know: sbatch refuses a whole submission naming an unknown node ("Invalid node name
 * specified"), so those are left out.
 */
export function slurmExcludeNodes(hosts: readonly string[], nodes: readonly SlurmNode[]): { nodes: string[]; unknown: string[] } {
  const excluded = new Set<string>();
  const unknown: string[] = [];
  for (const h of hosts) {
    const hits = nodes.filter((n) => sameHost(h, n.name) || sameHost(h, n.hostname));
    if (hits.length === 0) unknown.push(h);
    for (const n of hits) excluded.add(n.name);
  }
  return { nodes: [...excluded].sort(), unknown };
}
