/**
 * Pure parsers for PBS/Torque command output (qsub, qstat, qstat -f), checked against
 * transcripts of Slurm's Torque-compatible wrappers (reference fixtures torque.txt,
 * torque-opt.txt) and written to also accept real Torque / PBS Pro output
 * (`123.server` ids, `exit_status` / `Exit_status`, wrapped attribute lines).
 */
import { BatchState, type BatchJobStatus } from './plugin';

const PBS_ID = /^\d+(?:\[\d*\])?(?:\.[A-Za-z0-9_.-]+)?$/;

/** Job id printed by qsub: `7` (Slurm wrapper), `123.server.example.org` (Torque). null if none. */
export function parseQsubOutput(stdout: string): string | null {
  const lines = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    if (PBS_ID.test(lines[i] as string)) return lines[i] as string;
  }
  return null;
}

/** The numeric part of a PBS id (`123.server` → `123`, `7` → `7`, `12[3].srv` → `12[3]`). */
export function pbsIdKey(id: string): string {
  const m = /^(\d+(?:\[\d*\])?)/.exec(id.trim());
  return m ? (m[1] as string) : id.trim();
}

/**
 * Every qstat state letter → BatchState. C/F (completed, finished) are refined by the exit
 * status when qstat gives one (real Torque / PBS Pro -f); the Slurm wrappers show every
 * finished job as `C` with no exit status.
 */
export const PBS_STATES: Readonly<Record<string, { state: BatchState; meaning: string }>> = {
  Q: { state: BatchState.QUEUED, meaning: 'queued' },
  W: { state: BatchState.QUEUED, meaning: 'waiting for its start time' },
  H: { state: BatchState.QUEUED, meaning: 'held' },
  T: { state: BatchState.QUEUED, meaning: 'being moved' },
  M: { state: BatchState.QUEUED, meaning: 'moved to another server' },
  R: { state: BatchState.RUNNING, meaning: 'running' },
  E: { state: BatchState.RUNNING, meaning: 'exiting after having run' },
  S: { state: BatchState.RUNNING, meaning: 'suspended' },
  U: { state: BatchState.RUNNING, meaning: 'suspended (workstation busy)' },
  B: { state: BatchState.RUNNING, meaning: 'array job has begun' },
  C: { state: BatchState.COMPLETED, meaning: 'completed' },
  F: { state: BatchState.COMPLETED, meaning: 'finished' },
  X: { state: BatchState.COMPLETED, meaning: 'subjob finished' },
};

/** State letter (+ exit status when known) → status fields. */
export function pbsState(letter: string, exitStatus?: number): Pick<BatchJobStatus, 'state' | 'rawState' | 'reason' | 'exitCode'> {
  const raw = letter.trim().toUpperCase();
  const known = PBS_STATES[raw];
  if (!known) return { state: BatchState.UNKNOWN, rawState: raw };
  if (known.state === BatchState.COMPLETED && exitStatus !== undefined) {
    if (exitStatus === 0) return { state: BatchState.COMPLETED, rawState: raw, exitCode: 0 };
    // Torque: negative exit_status = the job never ran properly (e.g. -11 walltime exceeded)
    return { state: BatchState.FAILED, rawState: raw, exitCode: exitStatus, reason: `exit status ${exitStatus}` };
  }
  const out: Pick<BatchJobStatus, 'state' | 'rawState' | 'reason' | 'exitCode'> = { state: known.state, rawState: raw };
  if (raw === 'H' || raw === 'W' || raw === 'S' || raw === 'M') out.reason = known.meaning;
  return out;
}

export interface QstatFullRecord {
  id: string;
  /** Attribute name → value (continuation lines joined). */
  attributes: Record<string, string>;
}

/**
 * `qstat -f` output: `Job Id: <id>` then indented `name = value` lines (tab or spaces);
 * real Torque wraps long values onto tab-indented continuation lines.
 */
export function parseQstatFull(stdout: string): QstatFullRecord[] {
  const records: QstatFullRecord[] = [];
  let current: QstatFullRecord | null = null;
  let lastKey: string | null = null;
  for (const line of stdout.split('\n')) {
    const head = /^Job Id:\s*(\S+)/.exec(line);
    if (head) {
      current = { id: head[1] as string, attributes: {} };
      records.push(current);
      lastKey = null;
      continue;
    }
    if (!current) continue;
    const attr = /^\s+([A-Za-z_][\w.]*) = ?(.*)$/.exec(line);
    if (attr) {
      lastKey = attr[1] as string;
      current.attributes[lastKey] = (attr[2] as string).trimEnd();
    } else if (lastKey && /^\s+\S/.test(line)) {
      current.attributes[lastKey] += line.trim();
    } else if (!line.trim()) {
      lastKey = null;
    }
  }
  return records;
}

function attr(record: QstatFullRecord, name: string): string | undefined {
  const key = Object.keys(record.attributes).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : record.attributes[key];
}

/** `qstat -f` records → statuses (name from Job_Name, state from job_state, exit from exit_status). */
export function qstatFullStatuses(records: readonly QstatFullRecord[]): BatchJobStatus[] {
  return records.map((r) => {
    const exitText = attr(r, 'exit_status');
    const exit = exitText !== undefined && /^-?\d+$/.test(exitText.trim()) ? Number(exitText) : undefined;
    const status: BatchJobStatus = { batchId: r.id, ...pbsState(attr(r, 'job_state') ?? '', exit) };
    const name = attr(r, 'Job_Name');
    if (name !== undefined) status.name = name;
    const comment = attr(r, 'comment');
    if (comment && status.state === BatchState.FAILED) status.reason = `${status.reason ?? ''}${status.reason ? '; ' : ''}${comment}`;
    return status;
  });
}

/** The owner's user name from `Job_Owner = user@host`. */
export function pbsOwner(record: QstatFullRecord): string | undefined {
  return attr(record, 'Job_Owner')?.split('@')[0];
}

/**
 * The tabular `qstat` and `qstat -a` listings. The state column is the one whose `-` rule
 * is one character wide; the name column is found by its header. Names are truncated by
 * qstat (16 or 20 characters), so the plugin itself uses `qstat -f`.
 */
export function parseQstatTable(stdout: string): BatchJobStatus[] {
  const lines = stdout.split('\n');
  const ruleAt = lines.findIndex((l) => /^-+(\s+-+)+\s*$/.test(l));
  if (ruleAt < 1) return [];
  const rule = lines[ruleAt] as string;
  const spans: [number, number][] = [];
  const re = /-+/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(rule))) spans.push([m.index, m.index + m[0].length]);
  const stateCol = spans.findIndex(([a, b]) => b - a === 1);
  const header = lines[ruleAt - 1] as string;
  const namePos = header.search(/\bName\b/);
  const nameCol = namePos < 0 ? -1 : spans.findIndex(([a, b]) => namePos >= a && namePos < b);
  const out: BatchJobStatus[] = [];
  for (const line of lines.slice(ruleAt + 1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length !== spans.length || !PBS_ID.test(fields[0] as string)) continue;
    const status: BatchJobStatus = { batchId: fields[0] as string, ...pbsState(stateCol >= 0 ? (fields[stateCol] as string) : '') };
    if (nameCol >= 0) status.name = fields[nameCol] as string;
    out.push(status);
  }
  return out;
}

/**
 * qstat/qdel saying an id is unknown: Torque prints `Unknown Job Id` and exits 153;
 * the Slurm wrapper's qstat exits 153 silently.
 */
export function isPbsUnknownJob(text: string, code: number | null): boolean {
  return code === 153 || /unknown job id|job has finished|does not exist/i.test(text);
}
