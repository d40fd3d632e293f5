/**
 * Pure parsers for HTCondor command output: condor_submit -terse, condor_q / condor_history
 * with -af:jt (autoformat, job id first, tab separated), condor_rm messages.
 *
 * HTCondor has no Debian package here, so these follow the formats documented in the
 * HTCondor manual (test/fixtures/condor/README.md), not a live system.
 */
import { BatchState, type BatchJobStatus } from './plugin';

/** Attributes the plugin asks condor_q / condor_history for, in this order (free text last). */
export const CONDOR_ATTRS = ['JobStatus', 'ExitCode', 'ExitBySignal', 'ExitSignal', 'FirnJobName', 'HoldReason', 'RemoveReason'] as const;

/**
 * `condor_submit -terse`: one `first - last` range per cluster (`12.0 - 12.3`) → every job id
 * in order (`12.0` … `12.3`). Also accepts the verbose summary `N job(s) submitted to
 * cluster C.` (procs 0 … N−1). [] when nothing matches.
 */
export function parseCondorSubmit(stdout: string): string[] {
  const ids: string[] = [];
  for (const line of stdout.split('\n')) {
    const terse = /^\s*(\d+)\.(\d+)\s*-\s*(\d+)\.(\d+)\s*$/.exec(line);
    if (terse) {
      const [cluster, first, cluster2, last] = [terse[1], Number(terse[2]), terse[3], Number(terse[4])];
      if (cluster !== cluster2 || last < first) continue;
      for (let p = first; p <= last; p++) ids.push(`${cluster}.${p}`);
      continue;
    }
    const verbose = /^\s*(\d+) job\(s\) submitted to cluster (\d+)\.\s*$/.exec(line);
    if (verbose) for (let p = 0; p < Number(verbose[1]); p++) ids.push(`${verbose[2]}.${p}`);
  }
  return ids;
}

/** JobStatus codes (the job ClassAd attribute) with condor_q's letter. */
export const CONDOR_JOB_STATUS: Readonly<Record<number, { word: string; letter: string; state: BatchState }>> = {
  1: { word: 'Idle', letter: 'I', state: BatchState.QUEUED },
  2: { word: 'Running', letter: 'R', state: BatchState.RUNNING },
  3: { word: 'Removed', letter: 'X', state: BatchState.CANCELLED },
  4: { word: 'Completed', letter: 'C', state: BatchState.COMPLETED },
  5: { word: 'Held', letter: 'H', state: BatchState.FAILED },
  6: { word: 'TransferringOutput', letter: '>', state: BatchState.RUNNING },
  7: { word: 'Suspended', letter: 'S', state: BatchState.RUNNING },
};

export interface AfRow {
  batchId: string;
  /** Attribute → value; `undefined` (ClassAd undefined or missing column) becomes undefined. */
  values: Record<string, string | undefined>;
}

/**
 * `-af:jt attr…` (or `-af:j`) lines: `12.0<TAB>2<TAB>undefined…`. With tabs every field may
 * contain spaces; with the space separator only the last one may. Schedd banner lines
 * (`-- Schedd: …`) and blank lines are skipped.
 */
export function parseCondorAf(stdout: string, attrs: readonly string[]): AfRow[] {
  const rows: AfRow[] = [];
  for (const raw of stdout.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (!line.trim() || line.trim().startsWith('--')) continue;
    let fields: string[];
    if (line.includes('\t')) {
      fields = line.split('\t').map((f) => f.trim());
      if (fields[0] === '') fields.shift();
    } else {
      const words = line.trim().split(/ +/);
      fields = [...words.slice(0, attrs.length), words.slice(attrs.length).join(' ')];
    }
    const id = fields[0] ?? '';
    if (!/^\d+\.\d+$/.test(id)) continue;
    const values: Record<string, string | undefined> = {};
    attrs.forEach((a, i) => {
      const v = fields[i + 1];
      values[a] = v === undefined || v === '' || v === 'undefined' ? undefined : v;
    });
    rows.push({ batchId: id, values });
  }
  return rows;
}

/** One autoformat row (CONDOR_ATTRS) → status. Held jobs count as FAILED: they wait for a person. */
export function condorStatus(row: AfRow): BatchJobStatus {
  const v = row.values;
  const code = Number(v['JobStatus']);
  const known = CONDOR_JOB_STATUS[code];
  const status: BatchJobStatus = { batchId: row.batchId, state: known?.state ?? BatchState.UNKNOWN, rawState: known?.word ?? String(v['JobStatus'] ?? '') };
  if (v['FirnJobName']) status.name = v['FirnJobName'];
  if (code === 4) {
    const bySignal = (v['ExitBySignal'] ?? '').toLowerCase() === 'true';
    const signal = Number(v['ExitSignal']);
    const exit = Number(v['ExitCode']);
    if (bySignal) {
      status.state = BatchState.FAILED;
      if (Number.isInteger(signal)) status.exitCode = 128 + signal;
      status.reason = `killed by signal ${v['ExitSignal'] ?? '?'}`;
    } else if (Number.isInteger(exit) && v['ExitCode'] !== undefined) {
      status.exitCode = exit;
      if (exit !== 0) {
        status.state = BatchState.FAILED;
        status.reason = `exit code ${exit}`;
      }
    }
  } else if (code === 5) {
    status.reason = `held: ${v['HoldReason'] ?? 'no reason given'}`;
  } else if (code === 3 && v['RemoveReason']) {
    status.reason = `removed: ${v['RemoveReason']}`;
  } else if (code === 7) {
    status.reason = 'suspended';
  }
  return status;
}

/** condor_rm (or condor_q) messages for ids the schedd does not know. */
export function isCondorUnknownJob(text: string): boolean {
  return /not found|couldn't find|could not find|no such job|does not exist/i.test(text);
}

/** A ClassAd string literal (also valid as a submit-file `+Attr = "…"` value). */
export function classAdString(value: string): string {
  if (/[\r\n\0]/.test(value)) throw new Error('a ClassAd string cannot contain newlines');
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Constraint selecting the given `cluster.proc` ids: `ClusterId == 12 && (ProcId == 0 || ProcId == 3) || …`. */
export function condorIdConstraint(ids: readonly string[]): string {
  const byCluster = new Map<string, string[]>();
  for (const id of ids) {
    const m = /^(\d+)\.(\d+)$/.exec(id);
    if (!m) throw new Error(`not an HTCondor job id: ${id}`);
    const procs = byCluster.get(m[1] as string) ?? [];
    procs.push(m[2] as string);
    byCluster.set(m[1] as string, procs);
  }
  return [...byCluster.entries()]
    .map(([c, procs]) => `(ClusterId == ${c} && (${procs.map((p) => `ProcId == ${p}`).join(' || ')}))`)
    .join(' || ');
}

/** `123.000` → `123.0` (condor_q -better-analyze pads the proc id; Firn's batch ids do not). */
function condorJobId(text: string): string | null {
  const m = /^(\d+)\.(\d+)$/.exec(text);
  return m ? `${m[1]}.${Number(m[2])}` : null;
}

/**
 * `condor_q -better-analyze <ids>` (pure): per job, why it is idle, from its run analysis summary
 * ("Of 10 machines, 10 are rejected by your job's requirements … 0 are able to run your job") and
 * the requirement conditions no slot matches (the `Slots Matched` table's zeros), e.g.
 * `0 of 10 machines can run it (10 rejected by its requirements); no slot matches TARGET.GPUs >= RequestGPUs`.
 * Keyed by batch id (`40.0`). test/fixtures/condor/analyze.txt (documented format).
 */
export function parseCondorAnalyze(stdout: string): Map<string, string> {
  const zero = new Map<string, string[]>();
  const summary = new Map<string, { of: number; counts: Array<[number, string]> }>();
  let tableJob: string | null = null;
  let summaryJob: string | null = null;
  for (const raw of stdout.split('\n')) {
    const line = raw.trimEnd();
    const reduces = /^The Requirements expression for job (\d+\.\d+) reduces to these conditions:/.exec(line);
    if (reduces) {
      tableJob = condorJobId(reduces[1]!);
      summaryJob = null;
      continue;
    }
    const head = /^(\d+\.\d+):\s+Run analysis summary.*Of (\d+) machines,?/.exec(line);
    if (head) {
      summaryJob = condorJobId(head[1]!);
      tableJob = null;
      if (summaryJob) summary.set(summaryJob, { of: Number(head[2]), counts: [] });
      continue;
    }
    const step = /^\[\d+\]\s+(\d+)\s+(.+)$/.exec(line);
    if (step && tableJob) {
      if (Number(step[1]) === 0) zero.set(tableJob, [...(zero.get(tableJob) ?? []), step[2]!.trim()]);
      continue;
    }
    const count = /^\s+(\d+)\s+(.+)$/.exec(line);
    if (count && summaryJob) {
      summary.get(summaryJob)!.counts.push([Number(count[1]), count[2]!.trim()]);
      continue;
    }
    if (line.trim() === '') summaryJob = null;
  }
  const out = new Map<string, string>();
  for (const id of new Set([...summary.keys(), ...zero.keys()])) {
    const s = summary.get(id);
    const parts: string[] = [];
    if (s) {
      const able = s.counts.find(([, what]) => /are able to run your job/.test(what))?.[0];
      const blockers = s.counts
        .filter(([n, what]) => n > 0 && !/are able to run your job/.test(what))
        .map(([n, what]) => `${n} ${what.replace(/^are /, '').replace(/your job's/g, 'its').replace(/your jobs?/g, 'it')}`);
      parts.push(`${able ?? 0} of ${s.of} machines can run it${blockers.length ? ` (${blockers.join(', ')})` : ''}`);
    }
    const z = zero.get(id);
    if (z?.length) parts.push(`no slot matches ${z.join(' and ')}`);
    out.set(id, parts.join('; '));
  }
  return out;
}
